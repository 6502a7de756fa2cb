/*
 * bounce - queue a delivery status notification for failed recipients.
 *
 * The DSN is an ordinary new queue file in incoming/ (null sender, the
 * is-bounce flag, one recipient: the original sender), committed (fsync +
 * rename + directory fsync) before the failed recipients are marked done,
 * and then put on the todo list like any new message.
 */
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

int qmgr_bounce(struct qmgr_msg *m, const size_t *idx, size_t n)
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
        dr[k].action = DSN_ACTION_FAILED;
        dr[k].status = st->dsn;
        dr[k].reason = st->reason;
    }
    if (dsn_read_original(m->fd, &m->qf, (size_t)qmgr.bounce_size_limit, &orig, &full) < 0) {
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
    msg_info("%s: sender non-delivery notification: %s", m->id, qn.id);
    qmgr_todo_add(QUEUE_INCOMING, qn.id, false);
    ret = 0;
out:
    strbuf_release(&orig);
    strbuf_release(&text);
    strbuf_release(&err);
    myfree(dr);
    return ret;
}
