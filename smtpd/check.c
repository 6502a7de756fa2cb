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

/* RFC 1870: size-value = 1*20DIGIT. false when malformed; huge values saturate. */
static bool parse_size(const char *s, unsigned long long *size_r)
{
    unsigned long long n = 0;
    size_t i = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 20)
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (~0ULL - d) / 10)
            n = ~0ULL;
        else
            n = n * 10 + d;
    }
    *size_r = n;
    return true;
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
    strbuf_puts(out, "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES");
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
    if (pr == SMTP_PARSE_ADDRESS)
        return reply(out, 501, "5.1.7 Bad sender address syntax");
    if (pr != SMTP_PARSE_OK)
        return reply(out, 501, "5.5.4 Syntax: MAIL FROM:<address> (%s)",
                     perr ? perr : "syntax error");
    unsigned long long size = 0;
    for (size_t i = 0; i < cmd->nparams; i++) {
        const struct smtp_param *p = &cmd->params[i];
        /* RFC 5321 §4.1.1.11: parameters need the EHLO-advertised extensions. */
        if (!st->esmtp)
            return reply(out, 555, "5.5.4 Unsupported option: %s", p->key);
        if (strcmp(p->key, "SIZE") == 0) {
            if (!parse_size(p->value, &size))
                return reply(out, 501, "5.5.4 Bad SIZE parameter");
        } else if (strcmp(p->key, "BODY") == 0) {
            if (p->value == NULL ||
                (strcasecmp(p->value, "7BIT") != 0 && strcasecmp(p->value, "8BITMIME") != 0))
                return reply(out, 501, "5.5.4 Bad BODY parameter");
        } else {
            return reply(out, 555, "5.5.4 Unsupported option: %s", p->key);
        }
    }
    /* RFC 1870 §6.1: refuse at MAIL when the declared size is too big. */
    if (pol->limits->size_limit > 0 && size > pol->limits->size_limit)
        return reply(out, 552, "5.3.4 Message size exceeds fixed limit");
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
    if (cmd->nparams > 0)
        return reply(out, 555, "5.5.4 Unsupported option: %s", cmd->params[0].key);
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
        /* DESIGN invariant 5: no open relay. */
        if (pol->client_trusted)
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
    return reply(out, 354, "End data with <CR><LF>.<CR><LF>");
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
        return reply(out, 214, "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT");
    case SMTP_VERB_QUIT: {
        struct smtpd_verdict v = reply(out, 221, "2.0.0 Bye");
        v.disconnect = true;
        return v;
    }
    case SMTP_VERB_BDAT:
    case SMTP_VERB_EXPN:
    case SMTP_VERB_STARTTLS:
    case SMTP_VERB_AUTH:
    case SMTP_VERB_ETRN:
    default:
        return reply(out, 502, "5.5.2 Error: command not recognized");
    }
}
