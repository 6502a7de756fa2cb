/*
 * active - a message's stay in active/: activation (read the envelope,
 * choose a transport per recipient, cut delivery jobs) and finalization
 * (bounce, then remove or defer).
 *
 * Durability order (at-least-once, never zero times):
 *  - a recipient delivered by local (status 2) is marked done with one
 *    pwrite right away: local has already fsync'ed the mailbox;
 *  - a recipient that failed (status 5, or its lifetime ran out) is marked
 *    done only after its DSN was committed to incoming/ (fsync'ed);
 *  - a file that stays queued is fsync'ed once (if any mark was written)
 *    before it moves to deferred/; a file with nothing pending is unlinked.
 * A crash anywhere in between leaves the file in active/, which the next
 * qmgr moves back to incoming/: at worst a recipient gets a copy twice.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "dsn.h"
#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"
#include "queue_pool.h"
#include "resolve.h"

static double now_seconds(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void qmgr_set_result(struct qmgr_msg *m, size_t i, char result, const char *dsn, const char *reason,
                     const char *relay)
{
    struct qmgr_rcpt_state *st = &m->st[i];

    st->result = result;
    snprintf(st->dsn, sizeof(st->dsn), "%s", dsn != NULL ? dsn : "");
    myfree(st->reason);
    st->reason = mystrdup(reason != NULL ? reason : "");
    if (st->relay == NULL || strcmp(st->relay, relay != NULL ? relay : "none") != 0) {
        myfree(st->relay);
        st->relay = mystrdup(relay != NULL ? relay : "none");
    }
}

void qmgr_log_rcpt(const struct qmgr_msg *m, size_t i, const char *status)
{
    const struct qf_recipient *r = &m->qf.rcpts[i];
    const struct qmgr_rcpt_state *st = &m->st[i];
    double delay = now_seconds() - (double)m->qf.arrival;
    bool orig = r->orig != NULL && r->orig[0] != '\0';

    if (delay < 0)
        delay = 0;
    msg_info("%s: to=<%s>%s%s%s, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", m->id, r->address,
             orig ? ", orig_to=<" : "", orig ? r->orig : "", orig ? ">" : "",
             st->relay != NULL ? st->relay : "none", delay, st->dsn, status,
             st->reason != NULL ? st->reason : "");
}

static void msg_free(struct qmgr_msg **mp)
{
    struct qmgr_msg *m = *mp;

    if (m->st != NULL)
        for (size_t i = 0; i < m->qf.nrcpts; i++) {
            myfree(m->st[i].reason);
            myfree(m->st[i].relay);
        }
    myfree(m->st);
    qf_message_release(&m->qf);
    if (m->fd >= 0)
        close(m->fd);
    myfree(m);
    *mp = NULL;
}

/*
 * Route every pending recipient and cut the jobs: recipients of one
 * destination go together, at most the transport's recipient limit per
 * job. Bounced (error transport) and deferred (unknown transport, table
 * error) recipients are settled here; qmgr_finalize reports them.
 */
static void route_recipients(struct qmgr_msg *m)
{
    struct qmgr_route route = QMGR_ROUTE_INIT;
    struct qmgr_job **open = NULL; /* the message's unfilled job per destination seen */
    size_t nopen = 0, capopen = 0;

    for (size_t i = 0; i < m->qf.nrcpts; i++) {
        const struct qf_recipient *r = &m->qf.rcpts[i];
        struct qmgr_dest *d;
        struct qmgr_job *job = NULL;

        if (r->status != QF_RCPT_PENDING)
            continue;
        qmgr_resolve(r->address, &route);
        switch (route.kind) {
        case QMGR_ROUTE_ERROR:
            qmgr_set_result(m, i, '5', route.dsn, strbuf_str(&route.reason), "none");
            qmgr_log_rcpt(m, i, "bounced");
            continue;
        case QMGR_ROUTE_DEFER:
            qmgr_set_result(m, i, '4', route.dsn, strbuf_str(&route.reason), "none");
            qmgr_log_rcpt(m, i, "deferred");
            continue;
        case QMGR_ROUTE_SMTP:
            d = qmgr_dest_find(QMGR_TP_SMTP, strbuf_str(&route.nexthop));
            break;
        case QMGR_ROUTE_LOCAL:
        default:
            d = qmgr_dest_find(QMGR_TP_LOCAL, "");
            break;
        }
        /* Few destinations per message as a rule: a linear search is fine, and bounded
         * by dropping full jobs from the list. */
        for (size_t k = nopen; k > 0 && k + 64 > nopen; k--)
            if (open[k - 1]->dest == d) {
                job = open[k - 1];
                break;
            }
        if (job == NULL) {
            size_t limit = qmgr_dest_rcpt_limit(d);
            job = mycalloc(1, sizeof(*job));
            job->msg = m;
            job->dest = d;
            job->cap = limit < m->qf.nrcpts - i ? limit : m->qf.nrcpts - i;
            job->idx = mymalloc((job->cap < 8 ? job->cap : 8) * sizeof(*job->idx));
            m->jobs++;
            qmgr_job_add(job, false);
            if (nopen == capopen) {
                capopen = capopen ? capopen * 2 : 8;
                open = myreallocarray(open, capopen, sizeof(*open));
            }
            open[nopen++] = job;
        }
        if (job->n >= 8 && (job->n & (job->n - 1)) == 0) /* grow at 8, 16, 32... */
            job->idx = myreallocarray(job->idx, job->n * 2 < job->cap ? job->n * 2 : job->cap,
                                      sizeof(*job->idx));
        job->idx[job->n++] = i;
        if (job->n == job->cap)
            for (size_t k = nopen; k > 0; k--)
                if (open[k - 1] == job) {
                    open[k - 1] = open[--nopen];
                    break;
                }
    }
    myfree(open);
    qmgr_route_release(&route);
}

void qmgr_activate(enum queue_dir dir, const char *id, bool force)
{
    struct strbuf err = STRBUF_INIT;
    struct qmgr_msg *m;
    int fd;

    if (!queue_id_valid(id))
        return;
    if (dir == QUEUE_DEFERRED && !force) {
        struct stat st;
        struct strbuf path = STRBUF_INIT;
        queue_path(&path, QUEUE_DEFERRED, id);
        int rc = stat(path.data, &st);
        strbuf_release(&path);
        if (rc < 0 || st.st_mtime > time(NULL))
            return; /* gone, or its retry time was moved on since the scan */
    }
    if (dir != QUEUE_ACTIVE && queue_move(id, dir, QUEUE_ACTIVE) < 0) {
        /* ENOENT: taken already (a duplicate wake-up, or a scan that raced one). */
        if (errno != ENOENT)
            msg_warn("%s: move from %s to active: %m", id, queue_dir_name(dir));
        return;
    }
    if ((fd = queue_open(QUEUE_ACTIVE, id, true)) < 0) {
        msg_warn("%s: open active file: %m", id);
        if (queue_move(id, QUEUE_ACTIVE, dir) < 0)
            msg_warn("%s: move back to %s: %m", id, queue_dir_name(dir));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        msg_warn("%s: fstat active file: %m", id);
        close(fd);
        if (queue_move(id, QUEUE_ACTIVE, dir) < 0)
            msg_warn("%s: move back to %s: %m", id, queue_dir_name(dir));
        return;
    }
    {
        /* An empty file is one we emptied for reuse (queue_pool_put) and then crashed. */
        if (st.st_size == 0) {
            msg_info("%s: empty queue file (delivered, emptied for reuse): removed", id);
            if (queue_remove(QUEUE_ACTIVE, id) < 0 && errno != ENOENT)
                msg_warn("%s: remove: %m", id);
            close(fd);
            return;
        }
    }
    m = mycalloc(1, sizeof(*m));
    m->fd = fd;
    m->was_deferred = dir == QUEUE_DEFERRED;
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->size = st.st_size;
    if (qf_read_st(fd, &st, &m->qf, &err) < 0) {
        /* A damaged file is kept for inspection, never delivered, never fatal. */
        msg_warn("%s: corrupt queue file (%s): moved to corrupt/", id, strbuf_str(&err));
        if (queue_move(id, QUEUE_ACTIVE, QUEUE_CORRUPT) < 0)
            msg_warn("%s: move to corrupt: %m", id);
        msg_free(&m);
        strbuf_release(&err);
        return;
    }
    qmgr.nactive++;
    m->st = mycalloc(m->qf.nrcpts ? m->qf.nrcpts : 1, sizeof(*m->st));
    msg_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", id, m->qf.sender,
             m->qf.content_size, m->qf.nrcpts);

    route_recipients(m);
    strbuf_release(&err);
    if (m->jobs == 0)
        qmgr_finalize(m);
}

/* Mark a failed recipient done once its fate is settled (DSN queued or not wanted). */
static void mark_done(struct qmgr_msg *m, size_t i)
{
    struct qf_recipient *r = &m->qf.rcpts[i];

    if (qf_mark_recipient(m->fd, r, QF_RCPT_DONE) < 0) {
        msg_warn("%s: mark recipient %s done: %m", m->id, r->address);
        return;
    }
    r->status = QF_RCPT_DONE;
    m->dirty = true;
}

void qmgr_finalize(struct qmgr_msg *m)
{
    time_t now = time(NULL);
    long long age = (long long)now - (long long)m->qf.arrival;
    bool bounce_like = m->qf.is_bounce || m->qf.sender[0] == '\0';
    long long lifetime = bounce_like ? qmgr.bounce_lifetime : qmgr.lifetime;
    size_t n = m->qf.nrcpts, nfail = 0, npending = 0, nnotify = 0, i;
    size_t *fail = mycalloc(n ? n : 1, sizeof(*fail));
    size_t *notify = mycalloc(n ? n : 1, sizeof(*notify));

    for (i = 0; i < n; i++) {
        if (m->qf.rcpts[i].status != QF_RCPT_PENDING)
            continue;
        if (m->st[i].result == '5')
            fail[nfail++] = i;
        else
            npending++;
    }
    if (npending > 0 && qmgr_expired(age, lifetime)) {
        /* RFC 3464: report the expiry as failed with 4.4.7. */
        for (i = 0; i < n; i++) {
            struct qmgr_rcpt_state *st = &m->st[i];
            if (m->qf.rcpts[i].status != QF_RCPT_PENDING || st->result == '5')
                continue;
            struct strbuf why = STRBUF_INIT;
            strbuf_printf(&why, "delivery time expired%s%s%s",
                          st->reason != NULL && st->reason[0] ? " (last error: " : "",
                          st->reason != NULL ? st->reason : "",
                          st->reason != NULL && st->reason[0] ? ")" : "");
            qmgr_set_result(m, i, '5', "4.4.7", why.data, st->relay != NULL ? st->relay : "none");
            strbuf_release(&why);
            qmgr_log_rcpt(m, i, "expired");
            fail[nfail++] = i;
            npending--;
        }
    }
    if (nfail > 0) {
        bool settled = true;
        if (dsn_wanted(&m->qf)) {
            for (i = 0; i < nfail; i++)
                if (dsn_rcpt_notify(&m->qf.rcpts[fail[i]], DSN_ACTION_FAILED))
                    notify[nnotify++] = fail[i];
            if (nnotify > 0 && qmgr_bounce(m, notify, nnotify) < 0) {
                /* No DSN could be queued: keep them pending, try again later. */
                settled = false;
                npending += nfail;
            }
        } else {
            /* Never bounce a bounce, never answer the null sender. */
            msg_info("%s: sender=<%s>%s: %zu undeliverable recipient%s discarded, no notification",
                     m->id, m->qf.sender, m->qf.is_bounce ? " (bounce)" : "", nfail,
                     nfail == 1 ? "" : "s");
        }
        if (settled)
            for (i = 0; i < nfail; i++)
                mark_done(m, fail[i]);
    }
    myfree(fail);
    myfree(notify);
    qmgr_success(m); /* RFC 3461 NOTIFY=SUCCESS: this round's deliveries (bounce.c) */

    if (npending == 0) {
        /* Done: the file goes to pool/ for the next message (queue_pool.h). */
        if (qmgr.pool_files < (size_t)qmgr.reuse_limit &&
            queue_pool_put(QUEUE_ACTIVE, m->id, m->fd, m->size) == 0) {
            qmgr.pool_files++;
            msg_info("%s: removed", m->id);
        } else if (queue_remove(QUEUE_ACTIVE, m->id) < 0 && errno != ENOENT) {
            msg_warn("%s: remove: %m", m->id);
        } else {
            msg_info("%s: removed", m->id);
        }
        close(m->fd);
        m->fd = -1;
        if (m->was_deferred) /* no unlink per message on the fast path */
            qmgr_defer_log_remove(m->id);
    } else {
        long long delay = qmgr_backoff(age, qmgr.min_backoff, qmgr.max_backoff);
        qmgr_delay_warning(m, age);
        qmgr_defer_log_write(m);
        struct timespec ts[2];
        /* One fsync per durable step: the done marks must not come back after a crash
         * once the file has left active/. */
        if (m->dirty && fsync(m->fd) < 0)
            msg_warn("%s: fsync: %m", m->id);
        ts[0].tv_sec = now;
        ts[0].tv_nsec = 0;
        ts[1].tv_sec = now + (time_t)delay;
        ts[1].tv_nsec = 0;
        if (futimens(m->fd, ts) < 0)
            msg_warn("%s: set retry time: %m", m->id);
        close(m->fd);
        m->fd = -1;
        if (queue_move(m->id, QUEUE_ACTIVE, QUEUE_DEFERRED) < 0)
            msg_warn("%s: move to deferred: %m", m->id);
    }
    qmgr.nactive--;
    msg_free(&m);
}
