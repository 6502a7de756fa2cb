/*
 * bounce - queue a delivery status notification for failed recipients
 * (qmgr_bounce) and, for recipients that asked with NOTIFY=SUCCESS (RFC
 * 3461 §4.1), for delivered ones (qmgr_success).
 *
 * The DSN is an ordinary new queue file in incoming/ (null sender, the
 * is-bounce flag, one recipient: the original sender), committed (fsync +
 * rename + directory fsync) before the failed recipients are marked done,
 * and then put on the todo list like any new message.
 *
 * Success reports are best effort: local has already fsync'ed the mailbox
 * and qmgr marked the recipient done, so a crash before the report is
 * committed loses the report, never the mail (Postfix' trace is the same).
 * They return headers only (RET applies to failures, RFC 3461 §4.3).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dsn.h"
#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"

static bool ascii_only(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Compose and queue one DSN for recipients idx[0..n) with the given action. */
static int queue_dsn(struct qmgr_msg *m, const size_t *idx, size_t n, enum dsn_action action)
{
    struct dsn_rcpt *dr = mycalloc(n ? n : 1, sizeof(*dr));
    struct strbuf orig = STRBUF_INIT, text = STRBUF_INIT, err = STRBUF_INIT;
    struct dsn_request req;
    struct queue_new qn;
    struct qf_writer *w;
    bool full = false;
    int ret = -1;

    for (size_t k = 0; k < n; k++) {
        const struct qf_recipient *r = &m->qf.rcpts[idx[k]];
        const struct qmgr_rcpt_state *st = &m->st[idx[k]];
        dr[k].address = r->address;
        dr[k].orig = r->orig;
        dr[k].action = action;
        dr[k].status = st->dsn;
        dr[k].reason = st->reason;
    }
    /* A full_limit of 0 returns the headers only (RFC 3461 §4.3: RET is for failures). */
    size_t full_limit = action == DSN_ACTION_FAILED ? (size_t)qmgr.bounce_size_limit : 0;
    if (dsn_read_original(m->fd, &m->qf, full_limit, &orig, &full) < 0) {
        msg_warn("%s: read original for the notification: %m", m->id);
        strbuf_reset(&orig);
        full = false;
    }
    memset(&req, 0, sizeof(req));
    req.msg = &m->qf;
    req.queue_id = m->id;
    req.myhostname = qmgr.myhostname;
    req.rcpts = dr;
    req.nrcpts = n;
    req.original = orig.data;
    req.original_len = orig.len;
    req.original_full = full;
    req.now = time(NULL);
    if (action == DSN_ACTION_DELAYED) {
        bool bounce_like = m->qf.is_bounce || m->qf.sender[0] == '\0';
        req.will_retry_until =
            m->qf.arrival + (time_t)(bounce_like ? qmgr.bounce_lifetime : qmgr.lifetime);
    }
    dsn_compose(&req, &text);

    if (queue_create(QUEUE_INCOMING, &qn, &err) < 0) {
        msg_warn("%s: cannot create the non-delivery notification: %s", m->id, strbuf_str(&err));
        goto out;
    }
    w = qf_writer_new(qn.fd);
    qf_writer_sender(w, "");
    qf_writer_arrival(w, req.now);
    qf_writer_flags(w, !ascii_only(m->qf.sender), true);
    qf_writer_recipient(w, m->qf.sender, NULL, 0);
    qf_writer_content_begin(w);
    qf_writer_content(w, text.data, text.len);
    qf_writer_content_end(w);
    if (qf_writer_finish(&w, &err) < 0) {
        msg_warn("%s: write the non-delivery notification: %s", m->id, strbuf_str(&err));
        queue_abort(&qn);
        goto out;
    }
    if (queue_commit(&qn, &err) < 0) {
        msg_warn("%s: commit the non-delivery notification: %s", m->id, strbuf_str(&err));
        goto out;
    }
    msg_info("%s: sender %s notification: %s", m->id,
             action == DSN_ACTION_DELIVERED ? "delivery status"
             : action == DSN_ACTION_DELAYED ? "delay"
                                            : "non-delivery",
             qn.id);
    qmgr_todo_add(QUEUE_INCOMING, qn.id, false);
    ret = 0;
out:
    strbuf_release(&orig);
    strbuf_release(&text);
    strbuf_release(&err);
    myfree(dr);
    return ret;
}

int qmgr_bounce(struct qmgr_msg *m, const size_t *idx, size_t n)
{
    return queue_dsn(m, idx, n, DSN_ACTION_FAILED);
}

void qmgr_success(struct qmgr_msg *m)
{
    size_t n = 0;
    size_t *idx;

    if (!dsn_wanted(&m->qf))
        return; /* never to the null sender, never about a bounce */
    idx = mycalloc(m->qf.nrcpts ? m->qf.nrcpts : 1, sizeof(*idx));
    for (size_t i = 0; i < m->qf.nrcpts; i++)
        if (m->st[i].result == '2' && dsn_rcpt_notify(&m->qf.rcpts[i], DSN_ACTION_DELIVERED))
            idx[n++] = i;
    if (n > 0 && queue_dsn(m, idx, n, DSN_ACTION_DELIVERED) < 0)
        msg_warn("%s: delivery status notification for %zu recipient%s lost", m->id, n,
                 n == 1 ? "" : "s");
    myfree(idx);
}

void qmgr_delay_warning(struct qmgr_msg *m, long long age)
{
    size_t n = 0;
    size_t *idx;

    if (qmgr.delay_warning <= 0 || age < qmgr.delay_warning || m->qf.warn_status != QF_RCPT_PENDING)
        return; /* off, too young, already sent, or a file from before the W record */
    if (!dsn_wanted(&m->qf))
        return; /* never to the null sender, never about a bounce */
    idx = mycalloc(m->qf.nrcpts ? m->qf.nrcpts : 1, sizeof(*idx));
    for (size_t i = 0; i < m->qf.nrcpts; i++) {
        struct qmgr_rcpt_state *st = &m->st[i];
        if (m->qf.rcpts[i].status != QF_RCPT_PENDING || st->result == '5')
            continue;
        if (!dsn_rcpt_notify(&m->qf.rcpts[i], DSN_ACTION_DELAYED))
            continue;
        if (st->dsn[0] != '4') /* RFC 3464 §2.3.4: a delay is a 4.X.X */
            snprintf(st->dsn, sizeof(st->dsn), "4.0.0");
        idx[n++] = i;
    }
    /* Nobody to tell is also "done": the notice is never due again. */
    if (n == 0 || queue_dsn(m, idx, n, DSN_ACTION_DELAYED) == 0) {
        if (qf_mark_warned(m->fd, &m->qf) < 0)
            msg_warn("%s: record the delay warning: %m", m->id);
        else
            m->dirty = true;
    }
    myfree(idx);
}
