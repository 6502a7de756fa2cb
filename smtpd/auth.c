/*
 * auth - SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN against the
 * virtual users (vuser).
 *
 * check.c decides whether AUTH may run at all (EHLO seen, not yet
 * authenticated, no transaction, TLS unless smtpd_tls_auth_only = no, a
 * known mechanism); this file runs the exchange. Decoding is libmail/sasl.c.
 *
 * Password guessing: each failure costs the client a delay that doubles
 * (smtpd_auth_failure_delay up to smtpd_auth_failure_delay_max) before the
 * 535, and at smtpd_auth_failure_limit failures the 535 is followed by 421
 * and the connection is closed. Unknown users cost the same crypt(3) time
 * as wrong passwords, and get the same reply.
 *
 * A guesser who reconnects after each refusal is held by the per-client
 * limit (abuse.c): every failure is reported to anvil, which counts the
 * client address's failures over all its connections in an
 * anvil_rate_time_unit window; at smtpd_client_auth_failure_limit the 535
 * is followed by "421 ... from ADDR", and a client already at the limit
 * gets that 421 at its next AUTH, before any password is looked at. The
 * delay grows with the larger of the session's and the client's count, so
 * reconnecting does not reset it either. Without anvil (down, or the client
 * is exempt) only the per-session limit applies.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "abuse.h"
#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "sasl.h"
#include "smtpd.h"
#include "stream.h"
#include "login.h"
#include "vuser.h"

/* Outcome of reading one client response. */
enum auth_read { AUTH_READ_OK, AUTH_READ_CANCEL, AUTH_READ_BAD, AUTH_READ_END };

/* The per-client limit is reached: log, 421 naming the address (the caller ends the session). */
static void auth_client_limit(struct stream *stream, const char *client_name,
                              const char *client_addr, unsigned failures)
{
    char reply[200];
    msg_warn("AUTH failure limit exceeded: %u from %s[%s], disconnecting", failures, client_name,
             client_addr);
    snprintf(reply, sizeof(reply), "421 4.7.0 Error: too many authentication failures from %s\r\n",
             client_addr);
    stream_puts(stream, reply);
}

static void auth_sleep(long long secs)
{
    struct timespec ts = {(time_t)secs, 0};
    while (secs > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Send a 334 challenge and read the response line (CRLF removed) into line. */
static enum auth_read auth_challenge(struct stream *stream, const struct smtpd_limits *limits,
                                     const char *challenge, struct strbuf *line,
                                     const char *client_name, const char *client_addr)
{
    stream_printf(stream, "334 %s\r\n", challenge);
    if (stream_flush(stream) < 0)
        return AUTH_READ_END;
    enum stream_result r = stream_read_line(stream, line, limits->line_limit);
    if (r == STREAM_PARTIAL) {
        msg_info("warning: SASL response too long from %s[%s]", client_name, client_addr);
        if (stream_skip_line(stream) != STREAM_OK)
            return AUTH_READ_END;
        stream_puts(stream, "500 5.5.6 Error: authentication response too long\r\n");
        return AUTH_READ_BAD;
    }
    if (r == STREAM_TIMEOUT) {
        msg_info("timeout after AUTH from %s[%s]", client_name, client_addr);
        smtpd_reply_direct(stream, "421 4.4.2 Error: timeout exceeded");
        return AUTH_READ_END;
    }
    if (r != STREAM_OK) {
        msg_info("lost connection after AUTH from %s[%s]", client_name, client_addr);
        return AUTH_READ_END;
    }
    strbuf_truncate(line, line->len - 1);
    if (line->len > 0 && line->data[line->len - 1] == '\r')
        strbuf_truncate(line, line->len - 1);
    if (sasl_is_cancel(line->data, line->len)) {
        /* RFC 4954 §4: "*" cancels with 501. */
        stream_puts(stream, "501 5.7.0 Authentication aborted\r\n");
        return AUTH_READ_CANCEL;
    }
    return AUTH_READ_OK;
}

/* 1 valid, 0 invalid, -1 table error. *user_r gets the login on success. */
static int auth_check(const struct sasl_creds *cr, char **user_r, const char **why_r)
{
    /* RFC 4616 §2: an authzid other than the authcid asks to act as someone else. */
    if (cr->authzid[0] != '\0' && strcmp(cr->authzid, cr->authcid) != 0) {
        login_verify_dummy(cr->passwd);
        *why_r = "authorization identity differs from login";
        return 0;
    }
    char *name = login_user_name(cr->authcid);
    struct vuser u;
    struct strbuf err = STRBUF_INIT;
    int r = login_verify(name, cr->passwd, &u, why_r, &err);
    if (r < 0)
        msg_warn("SASL: user lookup %s: %s", name, strbuf_str(&err));
    strbuf_release(&err);
    if (r != 1) {
        myfree(name);
        return r;
    }
    vuser_release(&u);
    *user_r = name;
    return 1;
}

int smtpd_auth_run(struct stream *stream, const struct smtpd_limits *limits,
                   const struct smtp_cmd *cmd, const char *client_name, const char *client_addr,
                   int *failures, char **user_r)
{
    char mech_name[32];
    const char *arg = cmd->arg;
    const char *sp = strchr(arg, ' ');
    size_t mlen = sp ? (size_t)(sp - arg) : strlen(arg);
    const char *ir = sp ? sp + 1 : NULL; /* initial response (RFC 4954 §4) */
    struct sasl_creds cr;
    struct strbuf line = STRBUF_INIT;
    const char *why = NULL;
    enum auth_read rd;
    int rc = 0;

    *user_r = NULL;
    memset(&cr, 0, sizeof(cr));
    {
        /* Over the per-client limit already (earlier connections): no more guesses. */
        bool over = false;
        unsigned earlier = smtpd_abuse_auth_failures(client_addr, &over);
        if (over) {
            auth_client_limit(stream, client_name, client_addr, earlier);
            return -1;
        }
    }
    if (mlen >= sizeof(mech_name))
        mlen = sizeof(mech_name) - 1;
    memcpy(mech_name, arg, mlen);
    mech_name[mlen] = '\0';
    enum sasl_mech mech = sasl_mech_find(mech_name);

    if (mech == SASL_MECH_PLAIN) {
        if (ir == NULL) {
            rd = auth_challenge(stream, limits, "", &line, client_name, client_addr);
            if (rd != AUTH_READ_OK) {
                rc = rd == AUTH_READ_END ? -1 : 0;
                goto out;
            }
            ir = line.data;
        }
        if (sasl_plain_decode(ir, strlen(ir), &cr, &why) < 0) {
            msg_info("warning: %s[%s]: SASL PLAIN: %s", client_name, client_addr, why);
            stream_puts(stream, "501 5.5.2 Error: malformed authentication response\r\n");
            goto out;
        }
    } else {
        /* LOGIN: "Username:" and "Password:" challenges (base64). */
        if (ir != NULL) {
            if (sasl_login_decode(ir, strlen(ir), cr.authcid, &why) < 0)
                goto bad_login;
        } else {
            rd = auth_challenge(stream, limits, "VXNlcm5hbWU6", &line, client_name, client_addr);
            if (rd != AUTH_READ_OK) {
                rc = rd == AUTH_READ_END ? -1 : 0;
                goto out;
            }
            if (sasl_login_decode(line.data, line.len, cr.authcid, &why) < 0)
                goto bad_login;
        }
        rd = auth_challenge(stream, limits, "UGFzc3dvcmQ6", &line, client_name, client_addr);
        if (rd != AUTH_READ_OK) {
            rc = rd == AUTH_READ_END ? -1 : 0;
            goto out;
        }
        if (sasl_login_decode(line.data, line.len, cr.passwd, &why) < 0)
            goto bad_login;
    }

    char *user = NULL;
    int ok = auth_check(&cr, &user, &why);
    if (ok < 0) {
        stream_puts(stream, "454 4.7.0 Temporary authentication failure\r\n");
        goto out;
    }
    if (ok > 0) {
        msg_info("%s[%s]: sasl_method=%s, sasl_username=%s", client_name, client_addr,
                 mech == SASL_MECH_PLAIN ? "PLAIN" : "LOGIN", user);
        stream_puts(stream, "235 2.7.0 Authentication successful\r\n");
        *user_r = user;
        rc = 1;
        goto out;
    }
    (*failures)++;
    /* Reported before the delay, so that the client's parallel connections see it at once. */
    bool client_over = false;
    unsigned client_failures = smtpd_abuse_auth_failed(client_addr, &client_over);
    msg_warn("%s[%s]: SASL %s authentication failed: %s (failure %d, client failures %u)",
             client_name, client_addr, mech == SASL_MECH_PLAIN ? "PLAIN" : "LOGIN", why, *failures,
             client_failures);
    {
        /* Growing delay: base, 2*base, 4*base ... up to the maximum. */
        long long delay = config_time("smtpd_auth_failure_delay");
        long long max = config_time("smtpd_auth_failure_delay_max");
        unsigned steps = *failures > 0 ? (unsigned)*failures : 0;
        if (client_failures > steps)
            steps = client_failures;
        for (unsigned i = 1; i < steps && delay > 0 && delay < max; i++)
            delay *= 2;
        if (delay > max)
            delay = max;
        if (delay > 0) {
            stream_flush(stream);
            auth_sleep(delay);
        }
    }
    stream_puts(stream, "535 5.7.8 Error: authentication failed\r\n");
    if (*failures >= (int)config_int("smtpd_auth_failure_limit")) {
        msg_warn("too many AUTH failures from %s[%s], disconnecting", client_name, client_addr);
        stream_puts(stream, "421 4.7.0 Error: too many authentication failures\r\n");
        rc = -1;
    } else if (client_over) {
        auth_client_limit(stream, client_name, client_addr, client_failures);
        rc = -1;
    }
    goto out;

bad_login:
    msg_info("warning: %s[%s]: SASL LOGIN: %s", client_name, client_addr, why);
    stream_puts(stream, "501 5.5.2 Error: malformed authentication response\r\n");
out:
    sasl_creds_release(&cr);
    if (line.data)
        explicit_bzero(line.data, line.len);
    strbuf_release(&line);
    return rc;
}
