/*
 * check - decide the reply to each SMTP command (RFC 5321, 1870, 2034,
 * 2920, 3463, 6152). Pure: reads the state and the parsed command, writes
 * the reply text, changes nothing. session.c acts on the verdict.
 *
 * Every reply carries an enhanced status code (RFC 2034) except the HELO
 * and EHLO answers, which RFC 2034 §4 exempts.
 */
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "esmtp_params.h"
#include "smtpd.h"

static struct smtpd_verdict reply(struct strbuf *out, int code, const char *fmt, ...)
    MSG_PRINTF(3, 4);

static struct smtpd_verdict reply(struct strbuf *out, int code, const char *fmt, ...)
{
    struct smtpd_verdict v = {.code = code, .count_error = code >= 400};
    va_list ap;
    strbuf_reset(out);
    strbuf_printf(out, "%d ", code);
    va_start(ap, fmt);
    strbuf_vprintf(out, fmt, ap);
    va_end(ap);
    return v;
}

/* AUTH is advertised and accepted: enabled, and under TLS unless allowed in the clear. */
static bool auth_offered(const struct smtpd_state *st, const struct smtpd_policy *pol)
{
    return pol->auth_enabled && (st->tls || !pol->auth_tls_only);
}

static struct smtpd_verdict check_helo(const struct smtpd_state *st, const struct smtpd_policy *pol,
                                       const struct smtp_cmd *cmd, struct strbuf *out)
{
    (void)st;
    const char *syntax = cmd->verb == SMTP_VERB_EHLO ? "EHLO" : "HELO";
    if (*cmd->arg == '\0')
        return reply(out, 501, "5.5.4 Syntax: %s hostname", syntax);
    if (strlen(cmd->arg) > ADDRESS_DOMAIN_MAX)
        return reply(out, 501, "5.5.4 Syntax: %s hostname (too long)", syntax);
    struct smtpd_verdict v = {.code = 250};
    strbuf_reset(out);
    if (cmd->verb == SMTP_VERB_HELO) {
        strbuf_printf(out, "250 %s", pol->myhostname);
        return v;
    }
    /* RFC 5321 §4.1.1.1, RFC 2920, 1870, 6152, 2034. */
    strbuf_printf(out, "250-%s\r\n250-PIPELINING\r\n", pol->myhostname);
    if (pol->limits->size_limit > 0)
        strbuf_printf(out, "250-SIZE %llu\r\n", pol->limits->size_limit);
    else
        strbuf_puts(out, "250-SIZE\r\n");
    strbuf_puts(out, "250-8BITMIME\r\n");
    /* RFC 3461, 6531, 3030 (esmtp.c, bdat.c). */
    strbuf_puts(out, "250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n");
    /* RFC 3207 §4: STARTTLS only before TLS; RFC 4954 §3: AUTH per policy. */
    if (pol->tls_available && !st->tls)
        strbuf_puts(out, "250-STARTTLS\r\n");
    if (auth_offered(st, pol))
        strbuf_puts(out, "250-AUTH PLAIN LOGIN\r\n");
    strbuf_puts(out, "250 ENHANCEDSTATUSCODES");
    return v;
}

static struct smtpd_verdict check_mail(const struct smtpd_state *st, const struct smtpd_policy *pol,
                                       enum smtp_parse_result pr, const char *perr,
                                       const struct smtp_cmd *cmd, struct strbuf *out)
{
    if (!st->helo_seen)
        return reply(out, 503, "5.5.1 Error: send HELO/EHLO first");
    if (st->mail_seen)
        return reply(out, 503, "5.5.1 Error: nested MAIL command");
    /* RFC 6409 §4.3 / RFC 4954 §6: submission needs AUTH first. */
    if (pol->submission && st->sasl_user == NULL)
        return reply(out, 530, "5.7.0 Authentication required");
    if (pr == SMTP_PARSE_ADDRESS)
        return reply(out, 501, "5.1.7 Bad sender address syntax");
    if (pr != SMTP_PARSE_OK)
        return reply(out, 501, "5.5.4 Syntax: MAIL FROM:<address> (%s)",
                     perr ? perr : "syntax error");
    /* RFC 5321 §4.1.1.11: parameters need the EHLO-advertised extensions. */
    if (!st->esmtp && cmd->nparams > 0)
        return reply(out, 555, "5.5.4 Unsupported option: %s", cmd->params[0].key);
    struct esmtp_mail em;
    const char *key = NULL, *why = NULL;
    switch (esmtp_mail_parse(cmd->params, cmd->nparams,
                             auth_offered(st, pol) ? ESMTP_ALLOW_AUTH : 0, &em, &key, &why)) {
    case ESMTP_OK:
        break;
    case ESMTP_SYNTAX:
        return reply(out, 501, "5.5.4 Bad %s parameter (%s)", key, why);
    default:
        return reply(out, 555, "5.5.4 Unsupported option: %s", key);
    }
    /* RFC 6531 §3.5: a UTF-8 address needs SMTPUTF8 on this MAIL. */
    if (cmd->path.utf8 && !em.smtputf8)
        return reply(out, 553, "5.6.7 Error: non-ASCII sender address requires SMTPUTF8");
    unsigned long long size = em.size;
    /* RFC 1870 §6.1: refuse at MAIL when the declared size is too big. */
    if (pol->limits->size_limit > 0 && size > pol->limits->size_limit)
        return reply(out, 552, "5.3.4 Message size exceeds fixed limit");
    /* An authenticated client may only send as addresses its login owns. */
    if (st->sasl_user != NULL && pol->sender_owned != NULL) {
        struct strbuf addr = STRBUF_INIT, err = STRBUF_INIT;
        address_format(&cmd->path, &addr);
        int owned = pol->sender_owned(st->sasl_user, strbuf_str(&addr), &err);
        struct smtpd_verdict r = {.code = 0};
        if (owned < 0)
            r = reply(out, 451, "4.3.0 <%s>: Sender address rejected: temporary lookup failure",
                      strbuf_str(&addr));
        else if (owned == 0)
            r = reply(out, 553, "5.7.1 <%s>: Sender address rejected: not owned by user %s",
                      strbuf_str(&addr), st->sasl_user);
        strbuf_release(&addr);
        strbuf_release(&err);
        if (r.code != 0)
            return r;
    }
    struct smtpd_verdict v = reply(out, 250, "2.1.0 Ok");
    v.size = size;
    return v;
}

static struct smtpd_verdict check_rcpt(const struct smtpd_state *st, const struct smtpd_policy *pol,
                                       enum smtp_parse_result pr, const char *perr,
                                       const struct smtp_cmd *cmd, struct strbuf *out)
{
    if (!st->mail_seen)
        return reply(out, 503, "5.5.1 Error: need MAIL command");
    if (pr == SMTP_PARSE_ADDRESS)
        return reply(out, 501, "5.1.3 Bad recipient address syntax");
    if (pr != SMTP_PARSE_OK)
        return reply(out, 501, "5.5.4 Syntax: RCPT TO:<address> (%s)",
                     perr ? perr : "syntax error");
    struct esmtp_rcpt er;
    const char *key = NULL, *why = NULL;
    switch (esmtp_rcpt_parse(cmd->params, cmd->nparams, st->smtputf8, &er, &key, &why)) {
    case ESMTP_OK:
        break;
    case ESMTP_SYNTAX:
        return reply(out, 501, "5.5.4 Bad %s parameter (%s)", key, why);
    default:
        return reply(out, 555, "5.5.4 Unsupported option: %s", key);
    }
    /* RFC 6531 §3.5: UTF-8 recipients only in an SMTPUTF8 transaction. */
    if (cmd->path.utf8 && !st->smtputf8)
        return reply(out, 553, "5.6.7 Error: non-ASCII recipient address requires SMTPUTF8");
    if (st->nrcpt >= pol->limits->rcpt_limit) {
        /* RFC 5321 §4.5.3.1.8: 452 tells the client to retry the rest later. */
        struct smtpd_verdict v = reply(out, 452, "4.5.3 Error: too many recipients");
        v.count_error = false;
        return v;
    }
    struct strbuf addr = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    address_format(&cmd->path, &addr);
    struct smtpd_verdict v;
    switch (pol->classify(strbuf_str(&addr), &err)) {
    case RECIPIENT_LOCAL:
        v = reply(out, 250, "2.1.5 Ok");
        break;
    case RECIPIENT_UNKNOWN_USER:
        v = reply(out, 550, "5.1.1 <%s>: Recipient address rejected: User unknown",
                  strbuf_str(&addr));
        break;
    case RECIPIENT_REMOTE:
        /* DESIGN invariant 5: no open relay (RFC 4954 §8: authenticated clients may). */
        if (pol->client_trusted || st->sasl_user != NULL)
            v = reply(out, 250, "2.1.5 Ok");
        else
            v = reply(out, 554, "5.7.1 <%s>: Relay access denied", strbuf_str(&addr));
        break;
    case RECIPIENT_ERROR:
    default:
        v = reply(out, 451, "4.3.0 <%s>: Temporary lookup failure", strbuf_str(&addr));
        break;
    }
    strbuf_release(&addr);
    strbuf_release(&err);
    return v;
}

static struct smtpd_verdict check_data(const struct smtpd_state *st, const struct smtp_cmd *cmd,
                                       struct strbuf *out)
{
    if (!st->mail_seen)
        return reply(out, 503, "5.5.1 Error: need MAIL command");
    if (st->nrcpt == 0)
        /* RFC 2920 §3.1: DATA after all RCPTs failed must be refused. */
        return reply(out, 554, "5.5.1 Error: no valid recipients");
    if (*cmd->arg != '\0')
        return reply(out, 501, "5.5.4 Syntax: DATA");
    /* RFC 3030 §2, §3: no DATA after BDAT, none with BODY=BINARYMIME. */
    if (st->bdat)
        return reply(out, 503, "5.5.1 Error: DATA not allowed after BDAT; send RSET");
    if (st->binarymime)
        return reply(out, 503, "5.5.1 Error: BODY=BINARYMIME requires BDAT");
    return reply(out, 354, "End data with <CR><LF>.<CR><LF>");
}

/*
 * RFC 3030 §2. A malformed size cannot be skipped, so the session ends
 * (disconnect: the chunk's bytes must never be read as commands). Any
 * other verdict applies after bdat.c has read the chunk: 250 means "take
 * it" (bdat.c may still refuse it: size limit, failed transaction), an
 * error means "read and discard it, then reply".
 */
static struct smtpd_verdict check_bdat(const struct smtpd_state *st, const struct smtp_cmd *cmd,
                                       struct strbuf *out)
{
    unsigned long long size;
    bool last;
    const char *why = NULL;
    if (!esmtp_bdat_parse(cmd->arg, &size, &last, &why)) {
        struct smtpd_verdict v = reply(out, 501, "5.5.4 Syntax: BDAT chunk-size [LAST] (%s)", why);
        v.disconnect = true;
        return v;
    }
    if (!st->esmtp)
        return reply(out, 503, "5.5.1 Error: send EHLO first");
    if (!st->mail_seen)
        return reply(out, 503, "5.5.1 Error: need MAIL command");
    if (st->nrcpt == 0)
        return reply(out, 554, "5.5.1 Error: no valid recipients");
    struct smtpd_verdict v = reply(out, 250, "2.0.0 Ok");
    v.size = size;
    return v;
}

/* RFC 3207 §4. 220 means: session.c discards pipelined input and runs the handshake. */
static struct smtpd_verdict check_starttls(const struct smtpd_state *st,
                                           const struct smtpd_policy *pol,
                                           const struct smtp_cmd *cmd, struct strbuf *out)
{
    if (!pol->tls_available)
        return reply(out, 502, "5.5.1 Error: command not implemented");
    if (st->tls)
        return reply(out, 554, "5.5.1 Error: TLS already active");
    if (*cmd->arg != '\0')
        return reply(out, 501, "5.5.4 Syntax: STARTTLS");
    return reply(out, 220, "2.0.0 Ready to start TLS");
}

/* RFC 4954 §4. 334 means: session.c runs the exchange (auth.c). */
static struct smtpd_verdict check_auth(const struct smtpd_state *st, const struct smtpd_policy *pol,
                                       const struct smtp_cmd *cmd, struct strbuf *out)
{
    if (!pol->auth_enabled)
        return reply(out, 503, "5.5.1 Error: authentication not enabled");
    if (!st->tls && pol->auth_tls_only)
        return reply(out, 538, "5.7.11 Encryption required for requested authentication mechanism");
    if (!st->esmtp)
        return reply(out, 503, "5.5.1 Error: send EHLO first");
    if (st->sasl_user != NULL)
        return reply(out, 503, "5.5.1 Error: already authenticated");
    if (st->mail_seen)
        return reply(out, 503, "5.5.1 Error: MAIL transaction in progress");
    const char *sp = strchr(cmd->arg, ' ');
    size_t mlen = sp ? (size_t)(sp - cmd->arg) : strlen(cmd->arg);
    if (mlen == 0)
        return reply(out, 501, "5.5.4 Syntax: AUTH mechanism");
    char mech[16];
    if (mlen >= sizeof(mech) || (sp && (sp[1] == '\0' || strchr(sp + 1, ' '))))
        return reply(out, 504, "5.5.4 Unsupported authentication mechanism");
    memcpy(mech, cmd->arg, mlen);
    mech[mlen] = '\0';
    if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0)
        return reply(out, 504, "5.5.4 Unsupported authentication mechanism");
    struct smtpd_verdict v = {.code = 334};
    strbuf_reset(out);
    return v;
}

struct smtpd_verdict smtpd_check(const struct smtpd_state *st, const struct smtpd_policy *pol,
                                 enum smtp_parse_result pr, const char *perr,
                                 const struct smtp_cmd *cmd, bool forbidden, struct strbuf *out)
{
    if (forbidden) {
        struct smtpd_verdict v = reply(out, 221, "2.7.0 Error: I can break rules, too. Goodbye.");
        v.disconnect = true;
        return v;
    }
    if (pr == SMTP_PARSE_UNKNOWN || (pr != SMTP_PARSE_OK && cmd->verb == SMTP_VERB_UNKNOWN)) {
        if (pr == SMTP_PARSE_UNKNOWN)
            return reply(out, 502, "5.5.2 Error: command not recognized");
        return reply(out, 500, "5.5.2 Error: bad syntax");
    }
    switch (cmd->verb) {
    case SMTP_VERB_HELO:
    case SMTP_VERB_EHLO:
        return check_helo(st, pol, cmd, out);
    case SMTP_VERB_MAIL:
        return check_mail(st, pol, pr, perr, cmd, out);
    case SMTP_VERB_RCPT:
        return check_rcpt(st, pol, pr, perr, cmd, out);
    case SMTP_VERB_DATA:
        return check_data(st, cmd, out);
    case SMTP_VERB_RSET:
        if (*cmd->arg != '\0')
            return reply(out, 501, "5.5.4 Syntax: RSET");
        return reply(out, 250, "2.0.0 Ok");
    case SMTP_VERB_NOOP:
        return reply(out, 250, "2.0.0 Ok");
    case SMTP_VERB_VRFY:
        if (*cmd->arg == '\0')
            return reply(out, 501, "5.5.4 Syntax: VRFY address");
        /* RFC 5321 §3.5.3: never reveal whether a user exists. */
        return reply(out, 252,
                     "2.5.2 Cannot VRFY user, but will accept message and attempt "
                     "delivery");
    case SMTP_VERB_HELP:
        return reply(out, 214,
                     "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY "
                     "HELP STARTTLS AUTH QUIT");
    case SMTP_VERB_QUIT: {
        struct smtpd_verdict v = reply(out, 221, "2.0.0 Bye");
        v.disconnect = true;
        return v;
    }
    case SMTP_VERB_STARTTLS:
        return check_starttls(st, pol, cmd, out);
    case SMTP_VERB_AUTH:
        return check_auth(st, pol, cmd, out);
    case SMTP_VERB_BDAT:
        return check_bdat(st, cmd, out);
    case SMTP_VERB_EXPN:
    case SMTP_VERB_ETRN:
    default:
        return reply(out, 502, "5.5.2 Error: command not recognized");
    }
}
