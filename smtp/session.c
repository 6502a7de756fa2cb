/*
 * session - one SMTP session of the smtp client with one server address.
 *
 * Open: connect, greeting (220, else the next host: a 4xx/5xx greeting is
 * about this host, not about the mail), EHLO (HELO when EHLO gets 5xx),
 * STARTTLS per the security level, EHLO again, AUTH when configured.
 * Deliver: MAIL, RCPT..., DATA - written in one go when the server offers
 * PIPELINING (RFC 2920), then the replies read in order - the content
 * (LF → CRLF, dot-stuffing, RFC 5321 §4.5.2) and the final dot.
 * Every read waits at most the RFC 5321 §4.5.3.2 timeout of its stage.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dict.h"
#include "mime8to7.h"
#include "msg.h"
#include "mymalloc.h"
#include "sasl.h"
#include "smtp.h"
#include "smtp_parse.h"
#include "sock.h"
#include "stream.h"

/* Bytes of one over-long reply line that are read and dropped before giving up. */
#define SMTP_REPLY_SKIP_MAX (1024 * 1024)

/* What went wrong with the last read. */
enum sess_io { SESS_IO_OK, SESS_IO_LOST, SESS_IO_TIMEOUT, SESS_IO_BAD };

struct smtp_session {
    struct stream *s;
    struct tls_conn *tls;
    struct smtp_addr addr;
    char relay[DNS_NAME_MAX + DNS_ADDR_TEXT_MAX + 16];   /* host[addr]:port */
    char hostaddr[DNS_NAME_MAX + DNS_ADDR_TEXT_MAX + 8]; /* host[addr] */
    struct smtp_ehlo ehlo;
    struct smtp_reply reply;
    struct strbuf line;
    enum sess_io io;
    const char *io_why; /* SESS_IO_BAD: the parser's reason */
    bool broken;        /* unusable: do not send QUIT, do not cache */
};

void smtp_fail_set(struct smtp_fail *f, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    f->status = status;
    snprintf(f->dsn, sizeof(f->dsn), "%s", dsn);
    strbuf_reset(&f->reason);
    va_start(ap, fmt);
    strbuf_vprintf(&f->reason, fmt, ap);
    va_end(ap);
}

const char *smtp_session_relay(const struct smtp_session *sess)
{
    return sess->relay;
}

/* Write a command line (CRLF added) into the output buffer; no flush. */
static void sess_put(struct smtp_session *sess, const char *fmt, ...) MSG_PRINTF(2, 3);

static void sess_put(struct smtp_session *sess, const char *fmt, ...)
{
    struct strbuf b = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    strbuf_puts(&b, "\r\n");
    if (msg_verbose)
        msg_debug("> %s: %.*s", sess->hostaddr, (int)(b.len - 2), b.data);
    stream_write(sess->s, b.data, b.len);
    strbuf_release(&b);
}

static bool sess_flush(struct smtp_session *sess, int timeout_ms)
{
    stream_set_timeout(sess->s, timeout_ms);
    if (stream_flush(sess->s) < 0) {
        sess->io = stream_status(sess->s) == STREAM_TIMEOUT ? SESS_IO_TIMEOUT : SESS_IO_LOST;
        sess->broken = true;
        return false;
    }
    return true;
}

/* Read one complete reply into sess->reply. Its code, or -1 (sess->io says why). */
static int sess_reply(struct smtp_session *sess, int timeout_ms)
{
    const char *why = NULL;
    stream_set_timeout(sess->s, timeout_ms);
    smtp_reply_reset(&sess->reply);
    for (;;) {
        enum stream_result r = stream_read_line(sess->s, &sess->line, SMTP_REPLY_LINE_MAX);
        if (r == STREAM_PARTIAL) {
            /*
             * Over-long line: keep what we have, drop the rest of it - but not
             * forever: a server streaming bytes without LF is broken.
             */
            struct strbuf rest = STRBUF_INIT;
            enum stream_result r2 = STREAM_PARTIAL;
            for (size_t n = 0; r2 == STREAM_PARTIAL && n < SMTP_REPLY_SKIP_MAX;
                 n += SMTP_REPLY_LINE_MAX)
                r2 = stream_read_line(sess->s, &rest, SMTP_REPLY_LINE_MAX);
            strbuf_release(&rest);
            if (r2 == STREAM_PARTIAL) {
                sess->io = SESS_IO_BAD;
                sess->io_why = "reply line too long";
                sess->broken = true;
                msg_warn("%s: malformed reply from %s: reply line too long", smtp_log_id,
                         sess->hostaddr);
                return -1;
            }
            if (r2 != STREAM_OK)
                r = r2;
        }
        if (r != STREAM_OK && r != STREAM_PARTIAL) {
            sess->io = r == STREAM_TIMEOUT ? SESS_IO_TIMEOUT : SESS_IO_LOST;
            sess->broken = true;
            return -1;
        }
        enum smtp_reply_status st =
            smtp_reply_feed(&sess->reply, sess->line.data, sess->line.len, &why);
        if (st == SMTP_REPLY_BAD) {
            sess->io = SESS_IO_BAD;
            sess->io_why = why;
            sess->broken = true;
            msg_warn("%s: malformed reply from %s: %s", smtp_log_id, sess->hostaddr, why);
            return -1;
        }
        if (st == SMTP_REPLY_DONE)
            break;
    }
    if (msg_verbose)
        msg_debug("< %s: %s", sess->hostaddr, sess->reply.text.data);
    if (sess->reply.code == 421)
        sess->broken = true; /* the server is closing the session */
    return sess->reply.code;
}

/* Enhanced status code for the current reply: its own, or class.0.0. */
static void reply_dsn(const struct smtp_session *sess, char *dsn, size_t len)
{
    if (sess->reply.dsn[0])
        snprintf(dsn, len, "%s", sess->reply.dsn);
    else
        snprintf(dsn, len, "%d.0.0", sess->reply.code / 100);
}

/* A failure after a read/write problem during stage ("sending RCPT TO"). */
static void fail_io(struct smtp_session *sess, struct smtp_fail *f, const char *stage)
{
    if (sess->io == SESS_IO_TIMEOUT)
        smtp_fail_set(f, 4, "4.4.2", "conversation with %s timed out while %s", sess->hostaddr,
                      stage);
    else if (sess->io == SESS_IO_BAD)
        smtp_fail_set(f, 4, "4.5.0", "malformed reply from %s while %s: %s", sess->hostaddr, stage,
                      sess->io_why ? sess->io_why : "?");
    else
        smtp_fail_set(f, 4, "4.4.2", "lost connection with %s while %s", sess->hostaddr, stage);
}

/* A failure from a server reply to command ("RCPT TO"). */
static void fail_reply(struct smtp_session *sess, struct smtp_fail *f, const char *command)
{
    char dsn[16];
    reply_dsn(sess, dsn, sizeof(dsn));
    smtp_fail_set(f, sess->reply.code >= 500 ? 5 : 4, dsn, "host %s said: %s (in reply to %s)",
                  sess->hostaddr, sess->reply.text.data, command);
}

static struct smtp_session *sess_new(const struct smtp_addr *addr, int fd)
{
    struct smtp_session *sess = mycalloc(1, sizeof(*sess));
    sess->s = stream_fdopen(fd);
    sess->addr = *addr;
    snprintf(sess->hostaddr, sizeof(sess->hostaddr), "%s[%s]", addr->host, addr->addr);
    snprintf(sess->relay, sizeof(sess->relay), "%s[%s]:%d", addr->host, addr->addr, addr->port);
    smtp_reply_init(&sess->reply);
    strbuf_init(&sess->line, 256);
    return sess;
}

void smtp_session_close(struct smtp_session **sessp, bool quit)
{
    struct smtp_session *sess = *sessp;
    if (sess == NULL)
        return;
    if (quit && !sess->broken) {
        sess_put(sess, "QUIT");
        if (sess_flush(sess, smtp_params.quit_timeout_ms))
            (void)sess_reply(sess, smtp_params.quit_timeout_ms);
    }
    if (sess->tls)
        tls_conn_free(&sess->tls);
    stream_free(&sess->s);
    smtp_reply_release(&sess->reply);
    strbuf_release(&sess->line);
    myfree(sess);
    *sessp = NULL;
}

/* EHLO, or HELO when EHLO gets 5xx. true when the server greeted us back. */
static bool sess_ehlo(struct smtp_session *sess, bool helo_ok, struct smtp_fail *f)
{
    sess_put(sess, "EHLO %s", smtp_params.helo_name);
    if (!sess_flush(sess, smtp_params.helo_timeout_ms) ||
        sess_reply(sess, smtp_params.helo_timeout_ms) < 0) {
        fail_io(sess, f, "performing the EHLO handshake");
        return false;
    }
    if (sess->reply.code / 100 == 2) {
        smtp_ehlo_parse(&sess->reply, &sess->ehlo);
        return true;
    }
    if (sess->reply.code / 100 != 5 || !helo_ok) {
        fail_reply(sess, f, "EHLO command");
        return false;
    }
    /* RFC 5321 §3.2: a server that does not know EHLO answers 5xx; fall back to HELO. */
    memset(&sess->ehlo, 0, sizeof(sess->ehlo));
    sess_put(sess, "HELO %s", smtp_params.helo_name);
    if (!sess_flush(sess, smtp_params.helo_timeout_ms) ||
        sess_reply(sess, smtp_params.helo_timeout_ms) < 0) {
        fail_io(sess, f, "performing the HELO handshake");
        return false;
    }
    if (sess->reply.code / 100 != 2) {
        fail_reply(sess, f, "HELO command");
        return false;
    }
    return true;
}

/*
 * STARTTLS under level. Returns SMTP_SESS_OK (TLS up, or skipped at may),
 * SMTP_SESS_NEXT (required and failed) or SMTP_SESS_RETRY_PLAIN (may, the
 * handshake failed: the connection is unusable).
 */
static enum smtp_sess_result sess_starttls(struct smtp_session *sess, enum tls_level level,
                                           struct smtp_fail *f)
{
    struct dns_reply tlsa_rep;
    struct tls_tlsa *tlsa = NULL;
    size_t ntlsa = 0;
    struct strbuf err = STRBUF_INIT;
    enum smtp_sess_result res = SMTP_SESS_OK;
    bool required;

    memset(&tlsa_rep, 0, sizeof(tlsa_rep));
    if (level == TLS_LEVEL_DANE) {
        int n = smtp_dest_tlsa(&sess->addr, &tlsa_rep);
        if (n < 0) {
            smtp_fail_set(f, 4, "4.7.5", "TLSA lookup error for %s:%d", sess->addr.host,
                          sess->addr.port);
            return SMTP_SESS_NEXT;
        }
        if (n == 0) {
            level = TLS_LEVEL_MAY; /* RFC 7672 §2.2: no secure TLSA, opportunistic TLS */
        } else {
            tlsa = mycalloc((size_t)n, sizeof(*tlsa));
            for (size_t i = 0; i < tlsa_rep.count; i++) {
                if (tlsa_rep.rr[i].type != DNS_T_TLSA)
                    continue;
                tlsa[ntlsa].usage = tlsa_rep.rr[i].tlsa_usage;
                tlsa[ntlsa].selector = tlsa_rep.rr[i].tlsa_selector;
                tlsa[ntlsa].mtype = tlsa_rep.rr[i].tlsa_mtype;
                tlsa[ntlsa].data = tlsa_rep.rr[i].tlsa_data;
                tlsa[ntlsa].len = tlsa_rep.rr[i].tlsa_len;
                ntlsa++;
            }
        }
    }
    required = level >= TLS_LEVEL_ENCRYPT;
    if (!sess->ehlo.starttls) {
        if (required) {
            smtp_fail_set(f, 4, "4.7.4", "TLS is required, but was not offered by host %s",
                          sess->hostaddr);
            res = SMTP_SESS_NEXT;
        }
        goto out;
    }
    if (smtp_params.tls == NULL) {
        if (required) {
            smtp_fail_set(f, 4, "4.7.5", "TLS is required, but no TLS client context is available");
            res = SMTP_SESS_NEXT;
        }
        goto out;
    }
    sess_put(sess, "STARTTLS");
    if (!sess_flush(sess, smtp_params.starttls_timeout_ms) ||
        sess_reply(sess, smtp_params.starttls_timeout_ms) < 0) {
        fail_io(sess, f, "sending STARTTLS");
        res = level == TLS_LEVEL_MAY ? SMTP_SESS_RETRY_PLAIN : SMTP_SESS_NEXT;
        goto out;
    }
    if (sess->reply.code != 220) {
        if (required) {
            fail_reply(sess, f, "STARTTLS command");
            f->status = 4;
            snprintf(f->dsn, sizeof(f->dsn), "4.7.5");
            res = SMTP_SESS_NEXT;
        } else {
            msg_info("%s: %s refused STARTTLS: %s; continuing without TLS", smtp_log_id,
                     sess->hostaddr, sess->reply.text.data);
        }
        goto out;
    }
    /* RFC 3207 §4.2: nothing the server sent before the handshake counts. */
    stream_discard_input(sess->s);
    bool literal = strcmp(sess->addr.host, sess->addr.addr) == 0;
    const char *names[1] = {sess->addr.host};
    struct tls_client_policy pol = {
        .level = level,
        .servername = literal ? NULL : sess->addr.host,
        .verify_names = names,
        .nverify_names = 1,
        .tlsa = tlsa,
        .ntlsa = ntlsa,
    };
    sess->tls =
        tls_client_start(smtp_params.tls, sess->s, &pol, smtp_params.starttls_timeout_ms, &err);
    if (sess->tls == NULL) {
        sess->broken = true;
        msg_warn("%s: TLS handshake with %s failed: %s", smtp_log_id, sess->relay,
                 strbuf_str(&err));
        smtp_fail_set(f, 4, "4.7.5", "TLS handshake with %s failed: %s", sess->hostaddr,
                      strbuf_str(&err));
        res = level == TLS_LEVEL_MAY ? SMTP_SESS_RETRY_PLAIN : SMTP_SESS_NEXT;
        goto out;
    }
    struct strbuf desc = STRBUF_INIT;
    tls_conn_describe(sess->tls, &desc);
    enum tls_peer_trust trust = tls_conn_peer_trust(sess->tls);
    /* Postfix's words: Verified = authenticated as the level asked, Trusted = the chain
     * verified but the name was not checked, Anonymous = not authenticated. */
    msg_info("%s: %s TLS connection established to %s: %s", smtp_log_id,
             trust != TLS_PEER_ANON         ? "Verified"
             : tls_conn_verified(sess->tls) ? "Trusted"
                                            : "Anonymous",
             sess->relay, desc.data);
    strbuf_release(&desc);
    /* RFC 3207 §4.2: forget what we knew and say EHLO again. */
    if (!sess_ehlo(sess, false, f))
        res = SMTP_SESS_NEXT;
out:
    myfree(tlsa);
    dns_reply_free(&tlsa_rep);
    strbuf_release(&err);
    return res;
}

/* user:password for this nexthop (as given), then the host name. */
static bool sasl_lookup(const char *nexthop, const char *host, struct strbuf *value)
{
    const char *keys[2] = {nexthop, host};
    for (size_t k = 0; k < 2; k++) {
        if (keys[k] == NULL || *keys[k] == 0)
            continue;
        for (size_t i = 0; i < smtp_params.nsasl_password_maps; i++) {
            enum dict_result r = dict_lookup(smtp_params.sasl_password_maps[i], keys[k], value);
            if (r == DICT_FOUND)
                return true;
            if (r == DICT_ERROR)
                msg_warn("%s: cannot read %s", smtp_log_id,
                         dict_spec(smtp_params.sasl_password_maps[i]));
        }
    }
    return false;
}

static bool sess_auth(struct smtp_session *sess, const char *nexthop, struct smtp_fail *f)
{
    struct strbuf value = STRBUF_INIT;
    char b64[1024];
    bool ok = true;

    if (!sasl_lookup(nexthop, sess->addr.host, &value))
        goto out;
    char *colon = strchr(value.data, ':');
    if (colon == NULL || colon == value.data || strlen(value.data) > 2 * SASL_FIELD_MAX) {
        msg_warn("%s: smtp_sasl_password_maps: value for %s is not user:password", smtp_log_id,
                 nexthop);
        goto out;
    }
    *colon = 0;
    const char *user = value.data, *pass = colon + 1;
    if (sess->tls == NULL && smtp_params.sasl_tls_only) {
        /* Never a password in the clear: the server will probably refuse to relay. */
        msg_warn("%s: not sending SASL credentials to %s without TLS (smtp_sasl_tls_only = yes)",
                 smtp_log_id, sess->hostaddr);
        goto out;
    }
    if (sess->ehlo.auth & SMTP_EHLO_AUTH_PLAIN) {
        struct strbuf msg = STRBUF_INIT;
        strbuf_putc(&msg, 0);
        strbuf_puts(&msg, user);
        strbuf_putc(&msg, 0);
        strbuf_puts(&msg, pass);
        sasl_base64_encode(msg.data, msg.len, b64, sizeof(b64));
        explicit_bzero(msg.data, msg.len);
        strbuf_release(&msg);
        sess_put(sess, "AUTH PLAIN %s", b64);
    } else if (sess->ehlo.auth & SMTP_EHLO_AUTH_LOGIN) {
        sess_put(sess, "AUTH LOGIN");
        if (!sess_flush(sess, smtp_params.helo_timeout_ms) ||
            sess_reply(sess, smtp_params.helo_timeout_ms) < 0)
            goto io;
        if (sess->reply.code != 334)
            goto refused;
        sasl_base64_encode(user, strlen(user), b64, sizeof(b64));
        sess_put(sess, "%s", b64);
        if (!sess_flush(sess, smtp_params.helo_timeout_ms) ||
            sess_reply(sess, smtp_params.helo_timeout_ms) < 0)
            goto io;
        if (sess->reply.code != 334)
            goto refused;
        sasl_base64_encode(pass, strlen(pass), b64, sizeof(b64));
        sess_put(sess, "%s", b64);
    } else {
        msg_warn("%s: %s offers no SASL mechanism we support (PLAIN, LOGIN); sending without "
                 "authentication",
                 smtp_log_id, sess->hostaddr);
        goto out;
    }
    if (!sess_flush(sess, smtp_params.helo_timeout_ms) ||
        sess_reply(sess, smtp_params.helo_timeout_ms) < 0)
        goto io;
    if (sess->reply.code != 235)
        goto refused;
    msg_info("%s: SASL authentication to %s succeeded as %s", smtp_log_id, sess->hostaddr, user);
    goto out;
io:
    fail_io(sess, f, "authenticating");
    ok = false;
    goto out;
refused:
    /* A wrong password is the administrator's problem: defer, never bounce (as Postfix). */
    msg_warn("%s: SASL authentication failed; server %s said: %s", smtp_log_id, sess->hostaddr,
             sess->reply.text.data);
    smtp_fail_set(f, 4, "4.7.0", "SASL authentication failed; server %s said: %s", sess->hostaddr,
                  sess->reply.text.data);
    ok = false;
out:
    explicit_bzero(b64, sizeof(b64));
    if (value.data)
        explicit_bzero(value.data, value.len);
    strbuf_release(&value);
    return ok;
}

enum smtp_sess_result smtp_session_open(const struct smtp_addr *addr, const char *nexthop,
                                        enum tls_level level, bool no_tls,
                                        struct smtp_session **sess_r, struct smtp_fail *f)
{
    struct strbuf err = STRBUF_INIT;
    enum smtp_sess_result res = SMTP_SESS_NEXT;
    struct smtp_session *sess = NULL;

    *sess_r = NULL;
    int fd = sock_inet_connect(addr->addr, addr->port, smtp_params.connect_timeout_ms, &err);
    if (fd < 0) {
        /* sock's text is "ADDR:PORT: reason" */
        const char *why = strstr(err.data ? err.data : "", ": ");
        why = why ? why + 2 : strbuf_str(&err);
        smtp_fail_set(f, 4, "4.4.1", "connect to %s[%s]:%d: %s", addr->host, addr->addr, addr->port,
                      why);
        msg_info("%s: %s", smtp_log_id, f->reason.data);
        goto out;
    }
    sess = sess_new(addr, fd);
    if (sess_reply(sess, smtp_params.helo_timeout_ms) < 0) {
        fail_io(sess, f, "receiving the initial server greeting");
        msg_info("%s: %s", smtp_log_id, f->reason.data);
        goto out;
    }
    if (sess->reply.code != 220) {
        /* A greeting is about this host, not the mail: never bounce on it (as Postfix's
         * smtp_skip_5xx_greeting), the next host or a later retry may take it. */
        char dsn[16];
        reply_dsn(sess, dsn, sizeof(dsn));
        dsn[0] = '4';
        smtp_fail_set(f, 4, dsn, "host %s refused to talk to me: %s", sess->hostaddr,
                      sess->reply.text.data);
        msg_info("%s: %s", smtp_log_id, f->reason.data);
        goto out;
    }
    if (!sess_ehlo(sess, true, f)) {
        msg_info("%s: %s", smtp_log_id, f->reason.data);
        goto out;
    }
    if (level != TLS_LEVEL_NONE && !no_tls) {
        res = sess_starttls(sess, level, f);
        if (res != SMTP_SESS_OK) {
            msg_info("%s: %s", smtp_log_id, f->reason.data);
            goto out;
        }
        res = SMTP_SESS_NEXT;
    }
    if (smtp_params.sasl_enable && !sess_auth(sess, nexthop, f))
        goto out;
    res = SMTP_SESS_OK;
    *sess_r = sess;
    sess = NULL;
out:
    if (sess != NULL)
        smtp_session_close(&sess, true);
    strbuf_release(&err);
    return res;
}

bool smtp_session_reset(struct smtp_session *sess)
{
    if (sess->broken)
        return false;
    sess_put(sess, "RSET");
    if (!sess_flush(sess, smtp_params.quit_timeout_ms) ||
        sess_reply(sess, smtp_params.quit_timeout_ms) < 0)
        return false;
    return sess->reply.code / 100 == 2;
}

/* ---- the transaction ---- */

/* Content writer: LF → CRLF, a leading '.' doubled (RFC 5321 §4.5.2). */
struct body_writer {
    struct smtp_session *sess;
    bool at_bol;
    bool failed;
};

static int body_write(void *ctx, const char *buf, size_t len)
{
    struct body_writer *w = ctx;
    struct stream *s = w->sess->s;
    size_t pos = 0;
    while (pos < len) {
        if (w->at_bol && buf[pos] == '.')
            stream_write(s, ".", 1);
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        stream_write(s, buf + pos, n);
        pos += n;
        if (nl) {
            stream_write(s, "\r\n", 2);
            pos++;
            w->at_bol = true;
        } else {
            w->at_bol = false;
        }
    }
    if (stream_status(s) != STREAM_OK) {
        w->failed = true;
        return -1;
    }
    return 0;
}

static int body_collect(void *ctx, const char *buf, size_t len)
{
    strbuf_append(ctx, buf, len);
    return 0;
}

/* Size of LF-terminated text once its line ends are CRLF. */
static size_t crlf_size(const char *data, size_t len)
{
    size_t n = len;
    for (const char *p = data; p && (p = memchr(p, '\n', (size_t)(data + len - p))) != NULL; p++)
        n++;
    return n;
}

/* ORCPT=addr-type;xtext (RFC 3461 §4.2); orig as queued: "rfc822;x@y" or "x@y". */
static void put_orcpt(struct strbuf *cmd, const char *orig)
{
    const char *semi = strchr(orig, ';');
    bool typed = semi != NULL && semi > orig;
    for (const char *p = orig; typed && p < semi; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-'))
            typed = false;
    strbuf_puts(cmd, " ORCPT=");
    if (typed) {
        strbuf_append(cmd, orig, (size_t)(semi - orig) + 1);
        orig = semi + 1;
    } else {
        strbuf_puts(cmd, "rfc822;");
    }
    smtp_xtext_encode(orig, strlen(orig), cmd);
}

/* Set every undecided recipient (status 0 or 4, selected) to f. */
static void fail_pending(struct smtp_request *q, const struct smtp_fail *f, bool only_accepted)
{
    for (size_t i = 0; i < q->nrcpts; i++) {
        struct smtp_rcpt *r = &q->rcpts[i];
        if (r->status == 2 || r->status == 5 || r->status < 0)
            continue;
        if (only_accepted && !r->accepted)
            continue;
        r->status = f->status;
        snprintf(r->dsn, sizeof(r->dsn), "%s", f->dsn);
        strbuf_reset(&r->reason);
        strbuf_puts(&r->reason, f->reason.data);
    }
}

bool smtp_session_deliver(struct smtp_session *sess, struct smtp_request *q)
{
    struct smtp_fail f = {0, "", STRBUF_INIT};
    struct strbuf cmd = STRBUF_INIT, raw = STRBUF_INIT, conv = STRBUF_INIT, err = STRBUF_INIT;
    const struct smtp_ehlo *e = &sess->ehlo;
    bool usable = true;
    size_t ntry = 0, naccepted = 0;

    /* This transaction's recipients: not yet decided, or deferred at an earlier host. */
    for (size_t i = 0; i < q->nrcpts; i++) {
        q->rcpts[i].accepted = false;
        if (q->rcpts[i].status == 0 || q->rcpts[i].status == 4)
            ntry++;
    }
    if (ntry == 0)
        goto out;

    /* RFC 6531 §3.4: SMTPUTF8 mail cannot go to a server without SMTPUTF8. */
    if (q->msg.smtputf8 && !e->smtputf8) {
        smtp_fail_set(&f, 5, "5.6.7", "SMTPUTF8 is required, but was not offered by host %s",
                      sess->hostaddr);
        fail_pending(q, &f, false);
        goto out;
    }
    /* RFC 1870 §6: do not send what the server announced it will not take. */
    if (e->size && e->size_limit > 0 && q->wire_size > e->size_limit) {
        smtp_fail_set(&f, 5, "5.3.4", "message size %zu exceeds size limit %llu of server %s",
                      q->wire_size, e->size_limit, sess->hostaddr);
        fail_pending(q, &f, false);
        goto out;
    }
    /* RFC 6152 §3: 8-bit content to a server without 8BITMIME is converted to 7 bits. */
    bool body8 = q->has_8bit && e->eightbitmime;
    bool convert = q->has_8bit && !e->eightbitmime;
    if (convert) {
        if (qf_copy_content(q->fd, &q->msg, body_collect, &raw) < 0) {
            smtp_fail_set(&f, 4, "4.3.0", "cannot read queue file: %s", strerror(errno));
            fail_pending(q, &f, false);
            goto out;
        }
        if (mime_8to7(raw.data ? raw.data : "", raw.len, &conv, &err) < 0) {
            smtp_fail_set(&f, 5, "5.6.3", "cannot convert 8-bit message for %s (no 8BITMIME): %s",
                          sess->hostaddr, strbuf_str(&err));
            fail_pending(q, &f, false);
            goto out;
        }
        strbuf_release(&raw);
    }

    strbuf_printf(&cmd, "MAIL FROM:<%s>", q->sender);
    if (e->size)
        strbuf_printf(&cmd, " SIZE=%zu", convert ? crlf_size(conv.data, conv.len) : q->wire_size);
    if (body8)
        strbuf_puts(&cmd, " BODY=8BITMIME");
    if (q->msg.smtputf8 && e->smtputf8)
        strbuf_puts(&cmd, " SMTPUTF8");
    if (e->dsn) {
        if (q->msg.dsn_ret == 1)
            strbuf_puts(&cmd, " RET=FULL");
        else if (q->msg.dsn_ret == 2)
            strbuf_puts(&cmd, " RET=HDRS");
        if (q->msg.envid && *q->msg.envid) {
            strbuf_puts(&cmd, " ENVID=");
            smtp_xtext_encode(q->msg.envid, strlen(q->msg.envid), &cmd);
        }
    }
    sess_put(sess, "%s", cmd.data);
    q->dest_ok = true;
    bool pipe = e->pipelining;
    int mail_code = 0;
    if (!pipe) {
        if (!sess_flush(sess, smtp_params.mail_timeout_ms) ||
            (mail_code = sess_reply(sess, smtp_params.mail_timeout_ms)) < 0) {
            fail_io(sess, &f, "sending MAIL FROM");
            fail_pending(q, &f, false);
            usable = false;
            goto out;
        }
        if (mail_code / 100 != 2) {
            fail_reply(sess, &f, "MAIL FROM command");
            fail_pending(q, &f, false);
            goto out;
        }
    }

    /* RCPT TO for each; with PIPELINING all of them and DATA go in the same write. */
    for (size_t i = 0; i < q->nrcpts; i++) {
        struct smtp_rcpt *r = &q->rcpts[i];
        if (r->status != 0 && r->status != 4)
            continue;
        strbuf_reset(&cmd);
        strbuf_printf(&cmd, "RCPT TO:<%s>", r->address);
        if (e->dsn) {
            if (r->notify & QF_NOTIFY_NEVER) {
                strbuf_puts(&cmd, " NOTIFY=NEVER");
            } else if (r->notify) {
                const char *sep = " NOTIFY=";
                if (r->notify & QF_NOTIFY_SUCCESS) {
                    strbuf_printf(&cmd, "%sSUCCESS", sep);
                    sep = ",";
                }
                if (r->notify & QF_NOTIFY_FAILURE) {
                    strbuf_printf(&cmd, "%sFAILURE", sep);
                    sep = ",";
                }
                if (r->notify & QF_NOTIFY_DELAY)
                    strbuf_printf(&cmd, "%sDELAY", sep);
            }
            if (r->orig && *r->orig)
                put_orcpt(&cmd, r->orig);
        }
        sess_put(sess, "%s", cmd.data);
        if (pipe)
            continue;
        if (!sess_flush(sess, smtp_params.rcpt_timeout_ms) ||
            sess_reply(sess, smtp_params.rcpt_timeout_ms) < 0) {
            fail_io(sess, &f, "sending RCPT TO");
            fail_pending(q, &f, false);
            usable = false;
            goto out;
        }
        if (sess->reply.code / 100 == 2) {
            r->accepted = true;
            naccepted++;
        } else {
            fail_reply(sess, &f, "RCPT TO command");
            r->status = f.status;
            snprintf(r->dsn, sizeof(r->dsn), "%s", f.dsn);
            strbuf_reset(&r->reason);
            strbuf_puts(&r->reason, f.reason.data);
            r->status = r->status == 4 ? -4 : r->status; /* decided here; see below */
        }
    }

    int data_code = 0;
    if (pipe) {
        sess_put(sess, "DATA");
        if (!sess_flush(sess, smtp_params.mail_timeout_ms) ||
            (mail_code = sess_reply(sess, smtp_params.mail_timeout_ms)) < 0) {
            fail_io(sess, &f, "sending MAIL FROM");
            fail_pending(q, &f, false);
            usable = false;
            goto out;
        }
        struct smtp_fail mail_fail = {0, "", STRBUF_INIT};
        if (mail_code / 100 != 2)
            fail_reply(sess, &mail_fail, "MAIL FROM command");
        for (size_t i = 0; i < q->nrcpts; i++) {
            struct smtp_rcpt *r = &q->rcpts[i];
            if (r->status != 0 && r->status != 4)
                continue;
            if (sess_reply(sess, smtp_params.rcpt_timeout_ms) < 0) {
                fail_io(sess, &f, "sending RCPT TO");
                fail_pending(q, &f, false);
                strbuf_release(&mail_fail.reason);
                usable = false;
                goto out;
            }
            if (mail_code / 100 != 2) {
                continue; /* the MAIL error decides (below) */
            } else if (sess->reply.code / 100 == 2) {
                r->accepted = true;
                naccepted++;
            } else {
                fail_reply(sess, &f, "RCPT TO command");
                r->status = f.status == 4 ? -4 : f.status;
                snprintf(r->dsn, sizeof(r->dsn), "%s", f.dsn);
                strbuf_reset(&r->reason);
                strbuf_puts(&r->reason, f.reason.data);
            }
        }
        data_code = sess_reply(sess, smtp_params.data_init_timeout_ms);
        if (data_code < 0) {
            fail_io(sess, &f, "sending DATA command");
            fail_pending(q, &f, false);
            strbuf_release(&mail_fail.reason);
            usable = false;
            goto out;
        }
        if (mail_code / 100 != 2) {
            fail_pending(q, &mail_fail, false);
            strbuf_release(&mail_fail.reason);
            if (data_code == 354) {
                /* RFC 2920 §3.1: a server that said 354 anyway gets an empty message ended. */
                sess_put(sess, ".");
                if (!sess_flush(sess, smtp_params.data_done_timeout_ms) ||
                    sess_reply(sess, smtp_params.data_done_timeout_ms) < 0)
                    usable = false;
            }
            goto out;
        }
        strbuf_release(&mail_fail.reason);
        if (naccepted == 0) {
            if (data_code == 354) {
                sess_put(sess, ".");
                if (!sess_flush(sess, smtp_params.data_done_timeout_ms) ||
                    sess_reply(sess, smtp_params.data_done_timeout_ms) < 0)
                    usable = false;
            }
            goto out;
        }
    } else {
        if (naccepted == 0)
            goto out; /* RSET comes with the next use or QUIT */
        sess_put(sess, "DATA");
        if (!sess_flush(sess, smtp_params.data_init_timeout_ms) ||
            (data_code = sess_reply(sess, smtp_params.data_init_timeout_ms)) < 0) {
            fail_io(sess, &f, "sending DATA command");
            fail_pending(q, &f, true);
            usable = false;
            goto out;
        }
    }
    if (data_code != 354) {
        fail_reply(sess, &f, "DATA command");
        fail_pending(q, &f, true);
        goto out;
    }

    /* The content, then the final dot. */
    struct body_writer w = {sess, true, false};
    stream_set_timeout(sess->s, smtp_params.data_xfer_timeout_ms);
    int rc;
    if (convert)
        rc = body_write(&w, conv.data ? conv.data : "", conv.len);
    else
        rc = qf_copy_content(q->fd, &q->msg, body_write, &w);
    if (rc < 0 && !w.failed) {
        /* Our queue file let us down mid-message: we cannot end the DATA cleanly. */
        smtp_fail_set(&f, 4, "4.3.0", "cannot read queue file: %s", strerror(errno));
        fail_pending(q, &f, true);
        sess->broken = true;
        usable = false;
        goto out;
    }
    if (!w.at_bol)
        stream_write(sess->s, "\r\n", 2);
    stream_write(sess->s, ".\r\n", 3);
    if (w.failed || !sess_flush(sess, smtp_params.data_xfer_timeout_ms)) {
        sess->io = stream_status(sess->s) == STREAM_TIMEOUT ? SESS_IO_TIMEOUT : SESS_IO_LOST;
        sess->broken = true;
        fail_io(sess, &f, "sending message body");
        fail_pending(q, &f, true);
        usable = false;
        goto out;
    }
    if (sess_reply(sess, smtp_params.data_done_timeout_ms) < 0) {
        fail_io(sess, &f, "sending end of data -- message may be sent more than once");
        fail_pending(q, &f, true);
        usable = false;
        goto out;
    }
    if (sess->reply.code / 100 == 2) {
        char dsn[16];
        reply_dsn(sess, dsn, sizeof(dsn));
        smtp_fail_set(&f, 2, dsn, "%s", sess->reply.text.data);
    } else {
        fail_reply(sess, &f, "end of DATA command");
    }
    fail_pending(q, &f, true);

out:
    /* -4: deferred by this host's RCPT reply (kept apart from earlier hosts' 4s above). */
    for (size_t i = 0; i < q->nrcpts; i++)
        if (q->rcpts[i].status == -4)
            q->rcpts[i].status = 4;
    if (sess->broken)
        usable = false;
    strbuf_release(&f.reason);
    strbuf_release(&cmd);
    strbuf_release(&raw);
    strbuf_release(&conv);
    strbuf_release(&err);
    return usable;
}
