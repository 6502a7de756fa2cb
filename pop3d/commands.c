/*
 * pop3d commands - each POP3 command as check (state, arguments, decide the
 * reply) then act (change the session or mailbox).
 */
#include "pop3d.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "mymalloc.h"
#include "sasl.h"
#include "login.h"
#include "vuser.h"

/* ---- helpers ---------------------------------------------------------- */

static void sleep_seconds(long long secs)
{
    struct timespec ts = {(time_t)secs, 0};
    while (secs > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * May this session send a password? Under TLS always; without it only from
 * loopback (pop3d_plaintext_auth_loopback) or with pop3d_plaintext_auth.
 */
static bool login_allowed(const struct pop3_session *sess)
{
    return sess->tls != NULL || pop3d_params.plaintext_auth ||
           (sess->loopback && pop3d_params.plaintext_auth_loopback);
}

static void reply_plaintext_refused(struct pop3_session *sess)
{
    msg_info("plaintext login refused without TLS from %s", sess->client);
    pop3_session_error(sess, "-ERR [AUTH] Plaintext authentication disallowed without TLS");
}

static void reply_bad_state(struct pop3_session *sess)
{
    pop3_session_error(sess, "-ERR Command not valid in this state");
}

static void reply_no_such_message(struct pop3_session *sess)
{
    pop3_reply(sess, "-ERR no such message");
}

/* ---- AUTHORIZATION ---------------------------------------------------- */

static void cmd_user(struct pop3_session *sess, const struct pop3_command *cmd)
{
    if (!login_allowed(sess)) {
        reply_plaintext_refused(sess);
        return;
    }
    myfree(sess->user);
    /* Always "+OK": an -ERR here would tell who has a mailbox. An invalid
     * name is remembered as "" and fails at PASS like a wrong password. */
    sess->user = login_user_name(cmd->arg);
    if (sess->user == NULL)
        sess->user = mystrdup("");
    pop3_reply(sess, "+OK");
}

static void auth_failed(struct pop3_session *sess)
{
    sess->auth_failures++;
    msg_warn("authentication failed: user=%s, client=%s, failures=%u",
             sess->user[0] ? sess->user : "<invalid>", sess->client, sess->auth_failures);
    myfree(sess->user);
    sess->user = NULL;
    /* Slow down password guessing. */
    sleep_seconds(pop3d_params.auth_delay);
    pop3_reply(sess, "-ERR [AUTH] Authentication failed");
    if (sess->auth_failures >= (unsigned long long)pop3d_params.auth_limit) {
        msg_warn("too many authentication failures from %s, disconnecting", sess->client);
        sess->state = POP3_STATE_DONE;
    }
}

/* Verify sess->user (set, "" = invalid) with password; on success TRANSACTION begins. */
static void login(struct pop3_session *sess, const char *password, const char *method)
{
    struct vuser u;
    struct strbuf err = STRBUF_INIT;
    const char *why;
    int found = login_verify(sess->user, password, &u, &why, &err);
    if (found < 0) {
        msg_warn("user lookup %s: %s", sess->user, strbuf_str(&err));
        strbuf_release(&err);
        myfree(sess->user);
        sess->user = NULL;
        pop3_reply(sess, "-ERR [SYS/TEMP] Authentication temporarily unavailable");
        return;
    }
    if (found == 0) {
        strbuf_release(&err);
        auth_failed(sess);
        return;
    }

    /* Act: lock and list the Maildir; TRANSACTION begins. */
    const char *resp = NULL;
    if (pop3_mailbox_open(&sess->mb, u.maildir, &resp, &err) < 0) {
        msg_warn("login: user=%s, client=%s: %s", sess->user, sess->client, strbuf_str(&err));
        pop3_reply(sess, "%s", resp);
        vuser_release(&u);
        strbuf_release(&err);
        /* RFC 1939 §7 PASS: the server may close after a maildrop it cannot open. */
        sess->state = POP3_STATE_DONE;
        return;
    }
    vuser_release(&u);
    strbuf_release(&err);
    sess->have_mailbox = true;
    sess->login = sess->user;
    sess->user = NULL;
    sess->state = POP3_STATE_TRANSACTION;
    size_t count;
    unsigned long long size;
    pop3_mailbox_stat(&sess->mb, &count, &size);
    msg_info("login: user=%s, client=%s, method=%s, tls=%s, messages=%zu, size=%llu", sess->login,
             sess->client, method, sess->tls ? tls_conn_version(sess->tls) : "no", count, size);
    pop3_reply(sess, "+OK Logged in, %zu messages (%llu octets)", count, size);
}

static void cmd_pass(struct pop3_session *sess, const struct pop3_command *cmd)
{
    if (!login_allowed(sess)) {
        reply_plaintext_refused(sess);
        return;
    }
    if (sess->user == NULL) {
        pop3_session_error(sess, "-ERR USER first");
        return;
    }
    login(sess, cmd->arg, "USER");
}

/* RFC 2595 §4: STLS, then the session starts over (a USER given before is forgotten). */
static void cmd_stls(struct pop3_session *sess)
{
    if (pop3d_tls_ctx == NULL) {
        pop3_session_error(sess, "-ERR STLS not available");
        return;
    }
    if (sess->tls != NULL) {
        pop3_session_error(sess, "-ERR Command not permitted when TLS active");
        return;
    }
    pop3_reply(sess, "+OK Begin TLS negotiation");
    if (pop3_session_start_tls(sess) < 0) {
        sess->state = POP3_STATE_DONE;
        return;
    }
    myfree(sess->user);
    sess->user = NULL;
}

/*
 * RFC 5034 AUTH PLAIN, with an initial response (SASL-IR) or after a "+ "
 * continuation. "AUTH" alone lists the mechanisms.
 */
static void cmd_auth(struct pop3_session *sess, const struct pop3_command *cmd)
{
    if (cmd->arg_len == 0) {
        pop3_reply(sess, "+OK");
        if (login_allowed(sess))
            pop3_reply(sess, "PLAIN");
        pop3_reply(sess, ".");
        return;
    }
    const char *sp = strchr(cmd->arg, ' ');
    size_t mlen = sp ? (size_t)(sp - cmd->arg) : cmd->arg_len;
    if (mlen != 5 || strncasecmp(cmd->arg, "PLAIN", 5) != 0) {
        pop3_session_error(sess, "-ERR [AUTH] Unsupported authentication mechanism");
        return;
    }
    if (!login_allowed(sess)) {
        reply_plaintext_refused(sess);
        return;
    }
    struct strbuf line = STRBUF_INIT;
    const char *resp;
    size_t rlen;
    if (sp) {
        resp = sp + 1;
        rlen = cmd->arg_len - mlen - 1;
    } else {
        pop3_reply(sess, "+ ");
        if (stream_flush(sess->stream) < 0) {
            sess->state = POP3_STATE_DONE;
            return;
        }
        enum stream_result r =
            stream_read_line(sess->stream, &line, (size_t)pop3d_params.line_limit);
        if (r != STREAM_OK) {
            if (r == STREAM_PARTIAL)
                msg_warn("SASL response too long from %s", sess->client);
            else
                msg_info("lost connection during AUTH from %s", sess->client);
            strbuf_release(&line);
            sess->state = POP3_STATE_DONE;
            return;
        }
        strbuf_truncate(&line, line.len - 1);
        if (line.len > 0 && line.data[line.len - 1] == '\r')
            strbuf_truncate(&line, line.len - 1);
        resp = line.data;
        rlen = line.len;
    }
    if (sasl_is_cancel(resp, rlen)) {
        strbuf_release(&line);
        pop3_reply(sess, "-ERR [AUTH] Authentication cancelled");
        return;
    }
    struct sasl_creds cr;
    const char *why = NULL;
    int r = sasl_plain_decode(resp, rlen, &cr, &why);
    if (line.data)
        explicit_bzero(line.data, line.len);
    strbuf_release(&line);
    if (r < 0) {
        msg_warn("malformed SASL PLAIN response from %s: %s", sess->client, why);
        pop3_session_error(sess, "-ERR [AUTH] Malformed authentication response");
        return;
    }
    myfree(sess->user);
    /* RFC 4616: an authzid other than the login asks to act as someone else: refused. */
    if (cr.authzid[0] != '\0' && strcmp(cr.authzid, cr.authcid) != 0)
        sess->user = NULL;
    else
        sess->user = login_user_name(cr.authcid);
    if (sess->user == NULL)
        sess->user = mystrdup("");
    login(sess, cr.passwd, "PLAIN");
    sasl_creds_release(&cr);
}

/* RFC 2449 §5. STLS and SASL only before login. */
static void cmd_capa(struct pop3_session *sess)
{
    pop3_reply(sess, "+OK Capability list follows");
    pop3_reply(sess, "TOP");
    pop3_reply(sess, "UIDL");
    /* RFC 2595 §4 / RFC 5034: logins only where passwords may be sent. */
    if (login_allowed(sess))
        pop3_reply(sess, "USER");
    pop3_reply(sess, "RESP-CODES");
    pop3_reply(sess, "AUTH-RESP-CODE");
    pop3_reply(sess, "PIPELINING");
    pop3_reply(sess, "EXPIRE NEVER");
    pop3_reply(sess, "IMPLEMENTATION tegami");
    if (sess->state == POP3_STATE_AUTH && pop3d_tls_ctx != NULL && sess->tls == NULL)
        pop3_reply(sess, "STLS");
    if (sess->state == POP3_STATE_AUTH && login_allowed(sess))
        pop3_reply(sess, "SASL PLAIN");
    pop3_reply(sess, ".");
}

/* ---- TRANSACTION -------------------------------------------------------- */

static void cmd_stat(struct pop3_session *sess)
{
    size_t count;
    unsigned long long size;
    pop3_mailbox_stat(&sess->mb, &count, &size);
    pop3_reply(sess, "+OK %zu %llu", count, size);
}

static void cmd_list(struct pop3_session *sess, const struct pop3_command *cmd)
{
    if (cmd->nargs == 1) {
        const struct maildir_msg *m = pop3_mailbox_get(&sess->mb, cmd->num[0]);
        if (m == NULL)
            reply_no_such_message(sess);
        else
            pop3_reply(sess, "+OK %lu %zu", cmd->num[0], m->vsize);
        return;
    }
    size_t count;
    unsigned long long size;
    pop3_mailbox_stat(&sess->mb, &count, &size);
    pop3_reply(sess, "+OK %zu messages (%llu octets)", count, size);
    for (size_t i = 0; i < sess->mb.count; i++) {
        if (!sess->mb.deleted[i])
            pop3_reply(sess, "%zu %zu", i + 1, sess->mb.msgs[i].vsize);
    }
    pop3_reply(sess, ".");
}

static void cmd_uidl(struct pop3_session *sess, const struct pop3_command *cmd)
{
    if (cmd->nargs == 1) {
        if (pop3_mailbox_get(&sess->mb, cmd->num[0]) == NULL)
            reply_no_such_message(sess);
        else
            pop3_reply(sess, "+OK %lu %s", cmd->num[0], sess->mb.uidl[cmd->num[0] - 1]);
        return;
    }
    pop3_reply(sess, "+OK Unique-ID list follows");
    for (size_t i = 0; i < sess->mb.count; i++) {
        if (!sess->mb.deleted[i])
            pop3_reply(sess, "%zu %s", i + 1, sess->mb.uidl[i]);
    }
    pop3_reply(sess, ".");
}

/* RETR (top_lines < 0) and TOP. */
static void send_message(struct pop3_session *sess, unsigned long n, long top_lines)
{
    const struct maildir_msg *m = pop3_mailbox_get(&sess->mb, n);
    if (m == NULL) {
        reply_no_such_message(sess);
        return;
    }
    struct strbuf ok = STRBUF_INIT;
    if (top_lines < 0)
        strbuf_printf(&ok, "+OK %zu octets", m->vsize);
    else
        strbuf_puts(&ok, "+OK");
    size_t vsize = m->vsize;
    int r = pop3_mailbox_send(&sess->mb, n, top_lines, sess->stream, ok.data);
    strbuf_release(&ok);
    if (r > 0) {
        pop3_reply(sess, "-ERR [SYS/TEMP] Cannot read message");
    } else if (r < 0) {
        msg_warn("transfer of message %lu failed: user=%s, client=%s", n, sess->login,
                 sess->client);
        sess->state = POP3_STATE_DONE;
    } else if (top_lines < 0) {
        sess->retrieved++;
        sess->retrieved_bytes += vsize;
    }
}

static void cmd_dele(struct pop3_session *sess, const struct pop3_command *cmd)
{
    unsigned long n = cmd->num[0];
    if (n == 0 || n > sess->mb.count) {
        reply_no_such_message(sess);
        return;
    }
    if (sess->mb.deleted[n - 1]) {
        pop3_reply(sess, "-ERR message %lu already deleted", n);
        return;
    }
    sess->mb.deleted[n - 1] = true;
    pop3_reply(sess, "+OK message %lu deleted", n);
}

static void cmd_rset(struct pop3_session *sess)
{
    for (size_t i = 0; i < sess->mb.count; i++)
        sess->mb.deleted[i] = false;
    size_t count;
    unsigned long long size;
    pop3_mailbox_stat(&sess->mb, &count, &size);
    pop3_reply(sess, "+OK maildrop has %zu messages (%llu octets)", count, size);
}

static void cmd_quit(struct pop3_session *sess)
{
    if (sess->state != POP3_STATE_TRANSACTION) {
        pop3_reply(sess, "+OK tegami POP3 signing off");
        sess->state = POP3_STATE_DONE;
        return;
    }
    /* UPDATE state (RFC 1939 §6): only now do DELE marks touch the disk. */
    size_t deleted = 0;
    size_t failed = pop3_mailbox_update(&sess->mb, &deleted);
    size_t kept = sess->mb.count - deleted - failed;
    msg_info("update: user=%s, client=%s, deleted=%zu, failed=%zu, kept=%zu", sess->login,
             sess->client, deleted, failed, kept);
    if (failed > 0)
        pop3_reply(sess, "-ERR [SYS/TEMP] %zu deleted messages not removed", failed);
    else
        pop3_reply(sess, "+OK tegami POP3 signing off (%zu messages deleted)", deleted);
    sess->state = POP3_STATE_DONE;
}

/* ---- dispatch ----------------------------------------------------------- */

void pop3_command_run(struct pop3_session *sess, const struct pop3_command *cmd)
{
    bool auth = sess->state == POP3_STATE_AUTH;
    switch (cmd->verb) {
    case POP3_CAPA:
        cmd_capa(sess);
        return;
    case POP3_QUIT:
        cmd_quit(sess);
        return;
    case POP3_USER:
    case POP3_PASS:
    case POP3_STLS:
    case POP3_AUTH:
        if (!auth) {
            reply_bad_state(sess);
            return;
        }
        if (cmd->verb == POP3_USER)
            cmd_user(sess, cmd);
        else if (cmd->verb == POP3_PASS)
            cmd_pass(sess, cmd);
        else if (cmd->verb == POP3_STLS)
            cmd_stls(sess);
        else
            cmd_auth(sess, cmd);
        return;
    default:
        break;
    }
    if (auth) {
        reply_bad_state(sess);
        return;
    }
    switch (cmd->verb) {
    case POP3_STAT:
        cmd_stat(sess);
        break;
    case POP3_LIST:
        cmd_list(sess, cmd);
        break;
    case POP3_UIDL:
        cmd_uidl(sess, cmd);
        break;
    case POP3_RETR:
        send_message(sess, cmd->num[0], -1);
        break;
    case POP3_TOP:
        send_message(sess, cmd->num[0], (long)cmd->num[1]);
        break;
    case POP3_DELE:
        cmd_dele(sess, cmd);
        break;
    case POP3_RSET:
        cmd_rset(sess);
        break;
    case POP3_NOOP:
        pop3_reply(sess, "+OK");
        break;
    default:
        reply_bad_state(sess);
        break;
    }
}
