/*
 * session - one SMTP session: read a command, check it, reply, act.
 *
 * PIPELINING (RFC 2920): replies are buffered and flushed only when no
 * more input is buffered (the client waits for us), before DATA's 354, and
 * at the end of the session; a pipelined batch costs one read and one
 * write.
 *
 * Bounds (DESIGN invariant 3): command lines (smtpd_line_length_limit; the
 * rest of a longer line is discarded), recipients (smtpd_recipient_limit),
 * errors (smtpd_hard_error_limit → 421), idle time (smtpd_timeout → 421),
 * message size (data.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"
#include "server.h"
#include "smtpd.h"
#include "stream.h"
#include "tls.h"

struct smtpd_session {
    struct stream *stream;
    const struct smtpd_limits *limits;
    struct smtpd_policy policy;
    char **forbidden;
    const char *client_name;
    const char *client_addr;
    struct smtpd_state st;
    char *helo;
    char *sender;
    char **rcpts;
    size_t rcpt_cap;
    int errors;
    unsigned counts[SMTP_VERB_COUNT];
    unsigned ncommands;
    const char *last_verb; /* for "timeout after X" logs */
    struct tls_conn *tls;  /* STARTTLS or implicit TLS (tls.c) */
    char *tls_info;        /* "TLSv1.3 with cipher ..." */
    char *sasl_user;       /* after AUTH (auth.c) */
    int auth_failures;
    struct smtpd_envelope env; /* SMTPUTF8/DSN options of the transaction (esmtp.c) */
    struct smtpd_bdat *bdat;   /* BDAT transaction in progress (bdat.c) */
};

static void reset_transaction(struct smtpd_session *s)
{
    for (size_t i = 0; i < s->st.nrcpt; i++)
        myfree(s->rcpts[i]);
    s->st.nrcpt = 0;
    myfree(s->sender);
    s->sender = NULL;
    s->st.mail_seen = false;
    smtpd_envelope_reset(&s->env);
    smtpd_bdat_free(&s->bdat);
    s->st.smtputf8 = s->st.binarymime = s->st.bdat = false;
}

static bool is_forbidden(const struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    if (s->forbidden == NULL || cmd->verb_text[0] == '\0')
        return false;
    for (char **f = s->forbidden; *f; f++)
        if (strcasecmp(*f, cmd->verb_text) == 0)
            return true;
    return false;
}

void smtpd_reply_direct(struct stream *stream, const char *line)
{
    /* Not a raw send(): under TLS that would put clear text into the record stream. */
    stream_puts(stream, line);
    stream_puts(stream, "\r\n");
    (void)stream_flush(stream);
}

static void reply_line(struct smtpd_session *s, const char *text)
{
    stream_puts(s->stream, text);
    stream_puts(s->stream, "\r\n");
}

static void log_reject(struct smtpd_session *s, const struct smtp_cmd *cmd,
                       const struct strbuf *reply)
{
    struct strbuf to = STRBUF_INIT;
    if (cmd->verb == SMTP_VERB_RCPT && cmd->has_path) {
        address_format(&cmd->path, &to);
    }
    msg_info("NOQUEUE: reject: %s from %s[%s]: %s; from=<%s> to=<%s> proto=%s helo=<%s>",
             smtp_verb_name(cmd->verb), s->client_name, s->client_addr, strbuf_str(reply),
             s->sender ? s->sender : "", strbuf_str(&to), s->st.esmtp ? "ESMTP" : "SMTP",
             s->helo ? s->helo : "");
    strbuf_release(&to);
}

/* Act on an accepted (2xx) command. */
static void act(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    switch (cmd->verb) {
    case SMTP_VERB_HELO:
    case SMTP_VERB_EHLO:
        reset_transaction(s);
        myfree(s->helo);
        s->helo = mystrdup(cmd->arg);
        s->st.helo_seen = true;
        s->st.esmtp = cmd->verb == SMTP_VERB_EHLO;
        break;
    case SMTP_VERB_MAIL: {
        struct strbuf a = STRBUF_INIT;
        address_format(&cmd->path, &a);
        s->sender = strbuf_detach(&a, NULL);
        s->st.mail_seen = true;
        smtpd_envelope_mail(&s->env, cmd);
        s->st.smtputf8 = s->env.smtputf8;
        s->st.binarymime = s->env.binarymime;
        break;
    }
    case SMTP_VERB_RCPT: {
        struct strbuf a = STRBUF_INIT;
        address_format(&cmd->path, &a);
        /* Duplicates are accepted but delivered once. */
        for (size_t i = 0; i < s->st.nrcpt; i++) {
            if (strcmp(s->rcpts[i], strbuf_str(&a)) == 0) {
                strbuf_release(&a);
                return;
            }
        }
        if (s->st.nrcpt == s->rcpt_cap) {
            s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 8;
            s->rcpts = myreallocarray(s->rcpts, s->rcpt_cap, sizeof(*s->rcpts));
        }
        s->rcpts[s->st.nrcpt++] = strbuf_detach(&a, NULL);
        smtpd_envelope_rcpt(&s->env, s->st.nrcpt - 1, cmd);
        break;
    }
    case SMTP_VERB_RSET:
        reset_transaction(s);
        break;
    default:
        break;
    }
}

/*
 * STARTTLS after its 220 was queued. RFC 3207 §4.2 / CVE-2011-0411:
 * anything pipelined after the command is discarded, never executed, and
 * everything learnt before TLS (HELO, transaction, AUTH) is forgotten.
 */
static int start_tls(struct smtpd_session *s)
{
    if (stream_buffered(s->stream) > 0)
        msg_info("warning: discarding %zu bytes pipelined after STARTTLS from %s[%s]",
                 stream_buffered(s->stream), s->client_name, s->client_addr);
    stream_discard_input(s->stream);
    if (stream_flush(s->stream) < 0)
        return -1;
    if (smtpd_tls_handshake(s->stream, s->client_name, s->client_addr, &s->tls, &s->tls_info) < 0)
        return -1;
    reset_transaction(s);
    myfree(s->helo);
    s->helo = NULL;
    myfree(s->sasl_user);
    s->sasl_user = NULL;
    s->st.helo_seen = s->st.esmtp = false;
    s->st.sasl_user = NULL;
    s->st.tls = true;
    return 0;
}

/* AUTH after its check passed (auth.c): returns -1 to end the session. */
static int start_auth(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    char *user = NULL;
    int r = smtpd_auth_run(s->stream, s->limits, cmd, s->client_name, s->client_addr,
                           &s->auth_failures, &user);
    if (r > 0)
        s->st.sasl_user = s->sasl_user = user;
    else if (r == 0)
        s->errors++;
    return r < 0 ? -1 : 0;
}

/* The transaction as data.c and bdat.c need it. */
static struct smtpd_data_ctx data_ctx(struct smtpd_session *s)
{
    struct smtpd_data_ctx c = {
        .stream = s->stream,
        .limits = s->limits,
        .myhostname = s->policy.myhostname,
        .client_name = s->client_name,
        .client_addr = s->client_addr,
        .helo = s->helo,
        .protocol = smtpd_protocol_name(s->st.esmtp, s->tls != NULL, s->sasl_user != NULL),
        .sender = s->sender ? s->sender : "",
        .rcpts = s->rcpts,
        .nrcpt = s->st.nrcpt,
        .errors = &s->errors,
        .tls_info = s->tls_info,
        .sasl_user = s->sasl_user,
        .submission = s->policy.submission,
        .env = &s->env,
    };
    c.protocol = smtpd_envelope_protocol(&s->env, c.protocol);
    return c;
}

/* DATA after its check passed: returns -1 to end the session. */
static int act_data(struct smtpd_session *s)
{
    struct smtpd_data_ctx c = data_ctx(s);
    int r = smtpd_data(&c);
    reset_transaction(s);
    return r;
}

/* BDAT, whatever the check said (the chunk is always read): -1 ends the session. */
static int act_bdat(struct smtpd_session *s, const struct smtp_cmd *cmd, int code,
                    const struct strbuf *reply)
{
    struct smtpd_data_ctx c = data_ctx(s);
    bool done = false;
    int r = smtpd_bdat(&s->bdat, &c, cmd, code, strbuf_str(reply), &done);
    s->st.bdat = s->bdat != NULL;
    if (done)
        reset_transaction(s);
    return r;
}

/* Tarpit (Postfix' smtpd_error_sleep_time): slow down clients that keep failing. */
static void error_delay(struct smtpd_session *s)
{
    if (s->limits->soft_error_limit > 0 && s->errors >= s->limits->soft_error_limit &&
        s->limits->error_sleep > 0) {
        if (s->errors == s->limits->soft_error_limit) /* log once, when the tarpit starts */
            msg_info("tarpit: %d errors from %s[%s], delaying each reply by %ds", s->errors,
                     s->client_name, s->client_addr, s->limits->error_sleep);
        stream_flush(s->stream);
        sleep((unsigned)s->limits->error_sleep);
    }
}

static void session_loop(struct smtpd_session *s)
{
    struct strbuf line = STRBUF_INIT;
    struct strbuf reply = STRBUF_INIT;
    struct smtp_cmd cmd;
    smtp_cmd_init(&cmd);

    for (;;) {
        if (s->errors >= s->limits->hard_error_limit) {
            msg_info("too many errors after %s from %s[%s]", s->last_verb, s->client_name,
                     s->client_addr);
            reply_line(s, "421 4.7.0 Error: too many errors");
            break;
        }
        /*
         * XXX: SIGTERM (reload, stop) does not cut a session short: master
         * sends the same signal for both, and a reload must not drop a
         * client mid-transaction. The session ends by QUIT, error or
         * smtpd_timeout; master's stop timeout bounds the wait.
         */
        /* RFC 2920 §3.2: flush only when the client is waiting for us. */
        if (stream_buffered(s->stream) == 0 && stream_flush(s->stream) < 0) {
            msg_info("lost connection after %s from %s[%s]", s->last_verb, s->client_name,
                     s->client_addr);
            break;
        }
        enum stream_result r = stream_read_line(s->stream, &line, s->limits->line_limit);
        if (r == STREAM_PARTIAL) {
            /* Too long: discard the rest of the line (bounded memory). */
            msg_info("warning: line too long from %s[%s]", s->client_name, s->client_addr);
            r = stream_skip_line(s->stream);
            if (r == STREAM_OK) {
                s->errors++;
                error_delay(s);
                reply_line(s, "500 5.5.2 Error: line too long");
                continue;
            }
        }
        if (r == STREAM_TIMEOUT) {
            msg_info("timeout after %s from %s[%s]", s->last_verb, s->client_name, s->client_addr);
            smtpd_reply_direct(s->stream, "421 4.4.2 Error: timeout exceeded");
            break;
        }
        if (r != STREAM_OK) {
            msg_info("lost connection after %s from %s[%s]", s->last_verb, s->client_name,
                     s->client_addr);
            break;
        }
        size_t len = line.len;
        if (len > 0 && line.data[len - 1] == '\n')
            len--;
        if (len > 0 && line.data[len - 1] == '\r')
            len--;

        const char *perr = NULL;
        enum smtp_parse_result pr = smtp_parse_command(
            line.data, len, smtpd_parse_flags(&s->st, line.data, len), &cmd, &perr);
        s->ncommands++;
        s->counts[cmd.verb]++;
        s->last_verb = cmd.verb == SMTP_VERB_UNKNOWN ? "UNKNOWN" : smtp_verb_name(cmd.verb);
        bool forbidden = is_forbidden(s, &cmd);
        if (forbidden)
            msg_warn("non-SMTP command from %s[%s]: %.100s", s->client_name, s->client_addr,
                     line.data);
        struct smtpd_verdict v = smtpd_check(&s->st, &s->policy, pr, perr, &cmd, forbidden, &reply);
        if (v.count_error) {
            s->errors++;
            if (cmd.verb == SMTP_VERB_RCPT || cmd.verb == SMTP_VERB_MAIL)
                log_reject(s, &cmd, &reply);
            error_delay(s);
        }
        if (cmd.verb == SMTP_VERB_BDAT && !v.disconnect) { /* reads the chunk (bdat.c) */
            if (act_bdat(s, &cmd, v.code, &reply) < 0)
                break;
            continue;
        }
        if (v.code == 354) {
            if (act_data(s) < 0)
                break;
            continue;
        }
        if (v.code == 334) { /* AUTH accepted by the check: run the exchange */
            if (start_auth(s, &cmd) < 0)
                break;
            continue;
        }
        if (v.code == 220 && cmd.verb == SMTP_VERB_STARTTLS) {
            reply_line(s, strbuf_str(&reply));
            if (start_tls(s) < 0)
                break;
            continue;
        }
        reply_line(s, strbuf_str(&reply));
        if (v.code >= 200 && v.code < 300)
            act(s, &cmd);
        if (v.disconnect)
            break;
    }
    stream_flush(s->stream);
    smtp_cmd_release(&cmd);
    strbuf_release(&line);
    strbuf_release(&reply);
}

static void log_disconnect(const struct smtpd_session *s)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "disconnect from %s[%s]", s->client_name, s->client_addr);
    for (int v = 0; v < SMTP_VERB_COUNT; v++) {
        if (s->counts[v] == 0)
            continue;
        const char *name = smtp_verb_name((enum smtp_verb)v);
        strbuf_putc(&sb, ' ');
        for (const char *p = name; *p; p++)
            strbuf_putc(&sb, (*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        strbuf_printf(&sb, "=%u", s->counts[v]);
    }
    strbuf_printf(&sb, " commands=%u", s->ncommands);
    msg_info("%s", strbuf_str(&sb));
    strbuf_release(&sb);
}

void smtpd_session_run(struct server_client *client, const struct smtpd_limits *limits,
                       const struct smtpd_policy *policy_template, const struct strbuf *banner,
                       char **forbidden)
{
    struct smtpd_session s;
    memset(&s, 0, sizeof(s));
    s.limits = limits;
    s.policy = *policy_template;
    s.forbidden = forbidden;
    /* No reverse DNS yet: the client name is always "unknown". */
    s.client_name = "unknown";
    s.client_addr = client->addr;
    s.last_verb = "CONNECT";
    s.stream = client->nonblock_socket ? stream_sockopen(client->fd) : stream_fdopen(client->fd);
    stream_set_timeout(s.stream, limits->timeout * 1000);

    msg_info("connect from %s[%s]", s.client_name, s.client_addr);
    /* RFC 8314 implicit TLS: the handshake comes before the greeting. */
    if (!smtpd_tls_wrappermode() ||
        smtpd_tls_handshake(s.stream, s.client_name, s.client_addr, &s.tls, &s.tls_info) == 0) {
        s.st.tls = s.tls != NULL;
        stream_printf(s.stream, "220 %s\r\n", strbuf_str(banner));
        session_loop(&s);
    }
    log_disconnect(&s);

    reset_transaction(&s);
    smtpd_envelope_release(&s.env);
    myfree(s.rcpts);
    myfree(s.helo);
    myfree(s.sasl_user);
    myfree(s.tls_info);
    tls_conn_free(&s.tls);
    stream_free(&s.stream);
    client->fd = -1;
}
