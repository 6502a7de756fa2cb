/*
 * esmtp - the ESMTP options of one mail transaction: SMTPUTF8 (RFC 6531),
 * DSN (RFC 3461) and BODY (RFC 6152, 3030), kept from the MAIL and RCPT
 * commands that check.c accepted and written into the queue file by data.c
 * and bdat.c (qf_writer_flags, qf_writer_dsn, per-recipient ORCPT and
 * NOTIFY). Values were validated by check.c through esmtp_params; they are
 * decoded here again (cheap, and the check stays free of side effects).
 */
#include <string.h>
#include <strings.h>

#include "esmtp_params.h"
#include "mymalloc.h"
#include "queue_file.h"
#include "smtpd.h"

/* The queue file stores esmtp_params' bits and RET values as they are. */
_Static_assert(ESMTP_NOTIFY_NEVER == QF_NOTIFY_NEVER && ESMTP_NOTIFY_SUCCESS == QF_NOTIFY_SUCCESS &&
                   ESMTP_NOTIFY_FAILURE == QF_NOTIFY_FAILURE &&
                   ESMTP_NOTIFY_DELAY == QF_NOTIFY_DELAY,
               "NOTIFY bits differ");

unsigned smtpd_parse_flags(const struct smtpd_state *st, const char *line, size_t len)
{
    /*
     * SMTPUTF8 is advertised in every EHLO reply, so MAIL and RCPT may carry
     * UTF-8 paths; check.c refuses them (553 5.6.7) unless the MAIL had
     * SMTPUTF8. Other commands stay ASCII-only.
     */
    if (st->esmtp && len >= 5 &&
        (strncasecmp(line, "MAIL ", 5) == 0 || strncasecmp(line, "RCPT ", 5) == 0))
        return SMTP_PARSE_UTF8;
    return 0;
}

void smtpd_envelope_mail(struct smtpd_envelope *e, const struct smtp_cmd *cmd)
{
    struct esmtp_mail em;

    smtpd_envelope_reset(e);
    if (esmtp_mail_parse(cmd->params, cmd->nparams, ESMTP_ALLOW_AUTH, &em, NULL, NULL) != ESMTP_OK)
        return; /* cannot happen: check.c accepted it */
    e->smtputf8 = em.smtputf8;
    e->binarymime = em.body == ESMTP_BODY_BINARYMIME;
    e->ret = em.ret;
    if (em.envid[0] != '\0')
        e->envid = mystrdup(em.envid);
}

void smtpd_envelope_rcpt(struct smtpd_envelope *e, size_t index, const struct smtp_cmd *cmd)
{
    struct esmtp_rcpt er;

    if (index >= e->cap) {
        size_t ncap = e->cap ? e->cap : 8;
        while (ncap <= index)
            ncap *= 2;
        e->orcpt = myreallocarray(e->orcpt, ncap, sizeof(*e->orcpt));
        e->notify = myreallocarray(e->notify, ncap, sizeof(*e->notify));
        for (size_t i = e->cap; i < ncap; i++) {
            e->orcpt[i] = NULL;
            e->notify[i] = 0;
        }
        e->cap = ncap;
    }
    myfree(e->orcpt[index]);
    e->orcpt[index] = NULL;
    e->notify[index] = 0;
    if (esmtp_rcpt_parse(cmd->params, cmd->nparams, e->smtputf8, &er, NULL, NULL) != ESMTP_OK)
        return;
    e->notify[index] = er.notify;
    if (er.orcpt[0] != '\0')
        e->orcpt[index] = mystrdup(er.orcpt);
}

void smtpd_envelope_reset(struct smtpd_envelope *e)
{
    for (size_t i = 0; i < e->cap; i++) {
        myfree(e->orcpt[i]);
        e->orcpt[i] = NULL;
        e->notify[i] = 0;
    }
    myfree(e->envid);
    e->envid = NULL;
    e->smtputf8 = e->binarymime = false;
    e->ret = 0;
}

void smtpd_envelope_release(struct smtpd_envelope *e)
{
    smtpd_envelope_reset(e);
    myfree(e->orcpt);
    myfree(e->notify);
    memset(e, 0, sizeof(*e));
}

void smtpd_envelope_write(const struct smtpd_envelope *e, struct qf_writer *w, char **rcpts,
                          size_t nrcpt)
{
    bool utf8 = e != NULL && e->smtputf8;

    qf_writer_flags(w, utf8, false);
    if (e != NULL && (e->envid != NULL || e->ret != 0))
        qf_writer_dsn(w, e->envid, e->ret);
    for (size_t i = 0; i < nrcpt; i++) {
        bool have = e != NULL && i < e->cap;
        qf_writer_recipient(w, rcpts[i], have ? e->orcpt[i] : NULL, have ? e->notify[i] : 0);
    }
}

const char *smtpd_envelope_protocol(const struct smtpd_envelope *e, const char *protocol)
{
    static const char *const map[][2] = {
        {"ESMTP", "UTF8SMTP"},
        {"ESMTPS", "UTF8SMTPS"},
        {"ESMTPA", "UTF8SMTPA"},
        {"ESMTPSA", "UTF8SMTPSA"},
    };
    if (e == NULL || !e->smtputf8)
        return protocol;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(protocol, map[i][0]) == 0)
            return map[i][1];
    return protocol;
}
