/*
 * deliver - the pool of persistent connections to private/local.
 *
 * Up to local_destination_concurrency_limit connections, each carrying one
 * request at a time (docs/protocols-qmgr.md). A request is small (at most
 * local_destination_recipient_limit recipients), so it is written at once,
 * waiting at most ipc_timeout; replies are read when poll() says readable,
 * accumulated, and decoded with attr_decode, bounded to 1 MiB.
 *
 * A connection that fails while a request is outstanding defers its
 * recipients (4.4.2) - unless it was an idle, reused connection that local
 * closed just as we wrote (no reply byte seen): that request is sent again
 * once on a fresh connection. Either way nothing is lost: the recipients
 * stay pending in the queue file.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"
#include "sock.h"

#define LOCAL_REPLY_MAX (1024 * 1024) /* shared protocol bound */
#define CONNECT_TIMEOUT_MS 10000

struct conn {
    int fd;               /* -1: not connected */
    struct qmgr_job *job; /* outstanding request, or NULL when idle */
    struct strbuf in;     /* reply bytes not yet decoded */
    time_t started;       /* request sent at */
    time_t last_used;
    unsigned long done; /* requests completed on this connection */
};

static struct conn *conns;
static size_t nconns;
static size_t *poll_map; /* pollfd slot -> conn index */
static struct attr_list req_attrs = ATTR_LIST_INIT;
static struct attr_list reply_attrs = ATTR_LIST_INIT;
static struct strbuf req_buf = STRBUF_INIT;
static long long idle_close;

void qmgr_deliver_init(void)
{
    nconns = (size_t)qmgr.concurrency;
    conns = mycalloc(nconns, sizeof(*conns));
    poll_map = mycalloc(nconns, sizeof(*poll_map));
    for (size_t i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        strbuf_init(&conns[i].in, 256);
    }
    idle_close = config_time("max_idle");
}

void qmgr_job_add(struct qmgr_job *job, bool front)
{
    if (front) {
        job->next = qmgr.job_head;
        qmgr.job_head = job;
        if (qmgr.job_tail == NULL)
            qmgr.job_tail = job;
    } else {
        job->next = NULL;
        if (qmgr.job_tail != NULL)
            qmgr.job_tail->next = job;
        else
            qmgr.job_head = job;
        qmgr.job_tail = job;
    }
    qmgr.njobs++;
}

static struct qmgr_job *job_pop(void)
{
    struct qmgr_job *job = qmgr.job_head;

    if (job != NULL) {
        qmgr.job_head = job->next;
        if (qmgr.job_head == NULL)
            qmgr.job_tail = NULL;
        job->next = NULL;
        qmgr.njobs--;
    }
    return job;
}

/* The job's request is answered (or given up on): the message may be finished. */
static void job_done(struct qmgr_job *job)
{
    struct qmgr_msg *m = job->msg;

    myfree(job->idx);
    myfree(job);
    if (--m->jobs == 0)
        qmgr_finalize(m);
}

/* Defer every recipient of a job that got no answer. */
static void job_defer(struct qmgr_job *job, const char *dsn, const char *reason)
{
    for (size_t k = 0; k < job->n; k++) {
        qmgr_set_result(job->msg, job->idx[k], '4', dsn, reason, "local");
        qmgr_log_rcpt(job->msg, job->idx[k], "deferred");
    }
    job_done(job);
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->job = NULL;
    c->done = 0;
    strbuf_reset(&c->in);
}

/* The connection broke: close it and settle its request. */
static void conn_fail(struct conn *c, const char *why)
{
    struct qmgr_job *job = c->job;
    bool stale = c->done > 0 && c->in.len == 0;

    conn_close(c);
    if (job == NULL)
        return;
    if (stale && job->retries == 0) {
        /* local closed a reused idle connection as we wrote: resend once. */
        job->retries++;
        msg_debug("%s: resending to local after: %s", job->msg->id, why);
        qmgr_job_add(job, true);
        return;
    }
    struct strbuf reason = STRBUF_INIT;
    strbuf_printf(&reason, "lost connection with local while delivering: %s", why);
    job_defer(job, "4.4.2", reason.data);
    strbuf_release(&reason);
}

/* Write all of buf, waiting at most timeout_ms in total. 0 or -1 (errno). */
static int write_all(int fd, const char *buf, size_t len, int timeout_ms)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {fd, POLLOUT, 0};
            int rc = poll(&p, 1, timeout_ms);
            if (rc == 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            if (rc < 0 && errno != EINTR)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

static bool conn_open(struct conn *c)
{
    struct strbuf err = STRBUF_INIT;
    int fd = sock_unix_connect(qmgr.local_path.data, CONNECT_TIMEOUT_MS, &err);

    if (fd < 0) {
        msg_warn("connect to %s: %s", qmgr.local_path.data, strbuf_str(&err));
        strbuf_release(&err);
        return false;
    }
    strbuf_release(&err);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    c->fd = fd;
    c->job = NULL;
    c->done = 0;
    c->last_used = time(NULL);
    strbuf_reset(&c->in);
    return true;
}

/* Build and send the deliver request for job on c. */
static void conn_send(struct conn *c, struct qmgr_job *job)
{
    const struct qmgr_msg *m = job->msg;
    long long timeout_ms = qmgr.ipc_timeout * 1000;

    attr_list_reset(&req_attrs);
    attr_list_add_str(&req_attrs, "request", "deliver");
    attr_list_add_str(&req_attrs, "queue_id", m->id);
    attr_list_add_str(&req_attrs, "sender", m->qf.sender);
    attr_list_add_int(&req_attrs, "offset", (long long)m->qf.content_offset);
    attr_list_add_int(&req_attrs, "size", (long long)m->qf.content_size);
    for (size_t k = 0; k < job->n; k++) {
        const struct qf_recipient *r = &m->qf.rcpts[job->idx[k]];
        attr_list_add_int(&req_attrs, "index", (long long)job->idx[k]);
        attr_list_add_str(&req_attrs, "rcpt", r->address);
        attr_list_add_str(&req_attrs, "orig", r->orig != NULL ? r->orig : "");
    }
    strbuf_reset(&req_buf);
    attr_encode(&req_attrs, &req_buf);

    c->job = job;
    c->started = time(NULL);
    strbuf_reset(&c->in);
    if (write_all(c->fd, req_buf.data, req_buf.len,
                  timeout_ms > 2000000000 ? 2000000000 : (int)timeout_ms) < 0) {
        char why[128];
        snprintf(why, sizeof(why), "write: %s", strerror(errno));
        conn_fail(c, why);
    }
}

void qmgr_deliver_dispatch(void)
{
    static time_t connect_retry_at; /* after a failed connect, wait before the next one */

    while (qmgr.job_head != NULL) {
        struct conn *idle = NULL, *empty = NULL;
        bool busy = false;
        for (size_t i = 0; i < nconns; i++) {
            if (conns[i].fd >= 0 && conns[i].job == NULL) {
                idle = &conns[i];
                break;
            }
            if (conns[i].fd >= 0)
                busy = true;
            else if (empty == NULL)
                empty = &conns[i];
        }
        if (idle == NULL && empty == NULL)
            return; /* all busy: wait for a reply */
        if (idle == NULL) {
            /*
             * local unreachable: one connect attempt per second at most (a
             * connect may block up to its timeout). While other connections
             * work, jobs wait for them; with none, they are deferred and the
             * queue file keeps them.
             */
            if (time(NULL) < connect_retry_at) {
                if (busy)
                    return;
                job_defer(job_pop(), "4.4.1", "the local delivery agent is not reachable");
                continue;
            }
            if (!conn_open(empty)) {
                connect_retry_at = time(NULL) + 1;
                if (busy)
                    return;
                job_defer(job_pop(), "4.4.1", "cannot connect to the local delivery agent");
                continue;
            }
            idle = empty;
        }
        conn_send(idle, job_pop());
    }
}

size_t qmgr_deliver_pollfds(struct pollfd *pfd, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < nconns && n < max; i++) {
        if (conns[i].fd < 0)
            continue;
        pfd[n].fd = conns[i].fd;
        pfd[n].events = POLLIN;
        pfd[n].revents = 0;
        poll_map[n] = i;
        n++;
    }
    return n;
}

static bool parse_index(const char *s, size_t *out)
{
    size_t v = 0;

    if (*s == '\0' || strlen(s) > 9)
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (size_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* Position of recipient index i in job, or job->n if it is not part of it. */
static size_t job_slot(const struct qmgr_job *job, size_t i)
{
    for (size_t k = 0; k < job->n; k++)
        if (job->idx[k] == i)
            return k;
    return job->n;
}

static void apply_result(struct qmgr_msg *m, size_t i, const char *status, const char *dsn,
                         const char *reason)
{
    struct qf_recipient *r = &m->qf.rcpts[i];
    char s = status != NULL && status[1] == '\0' ? status[0] : '?';

    if (reason == NULL)
        reason = "";
    switch (s) {
    case '2':
        qmgr_set_result(m, i, '2', dsn != NULL ? dsn : "2.0.0", reason, "local");
        if (qf_mark_recipient(m->fd, r, QF_RCPT_DONE) < 0) {
            msg_warn("%s: mark recipient %s done: %m", m->id, r->address);
        } else {
            r->status = QF_RCPT_DONE;
            m->dirty = true;
        }
        qmgr_log_rcpt(m, i, "sent");
        break;
    case '5':
        qmgr_set_result(m, i, '5', dsn != NULL ? dsn : "5.0.0", reason, "local");
        qmgr_log_rcpt(m, i, "bounced");
        break;
    case '4':
        qmgr_set_result(m, i, '4', dsn != NULL ? dsn : "4.0.0", reason, "local");
        qmgr_log_rcpt(m, i, "deferred");
        break;
    default:
        qmgr_set_result(m, i, '4', "4.3.0", "invalid status from the local delivery agent",
                        "local");
        qmgr_log_rcpt(m, i, "deferred");
        break;
    }
}

/*
 * Apply one reply record to c's job. Returns false on a protocol error
 * (the caller drops the connection; unanswered recipients are deferred).
 */
static bool conn_reply(struct conn *c, const struct attr_list *l)
{
    struct qmgr_job *job = c->job;
    struct qmgr_msg *m = job->msg;
    bool *answered = mycalloc(job->n ? job->n : 1, sizeof(*answered));
    bool ok = true, have = false, end = false;
    size_t cur = 0, k;
    const char *status = NULL, *dsn = NULL, *reason = NULL;

    for (size_t a = 0; a <= l->count && ok && !end; a++) {
        const struct attr *at = a < l->count ? &l->items[a] : NULL;
        if (at == NULL || strcmp(at->name, "index") == 0 || strcmp(at->name, "end") == 0) {
            if (have) {
                apply_result(m, job->idx[cur], status, dsn, reason);
                answered[cur] = true;
                have = false;
            }
            if (at == NULL)
                break;
            if (strcmp(at->name, "end") == 0) {
                end = true;
                break;
            }
            size_t i;
            if (!parse_index(at->value, &i) || (cur = job_slot(job, i)) == job->n ||
                answered[cur]) {
                msg_warn("%s: local reply names an unknown recipient index \"%.20s\"", m->id,
                         at->value);
                ok = false;
                break;
            }
            have = true;
            status = dsn = reason = NULL;
        } else if (have && strcmp(at->name, "status") == 0) {
            status = at->value;
        } else if (have && strcmp(at->name, "dsn") == 0) {
            dsn = at->value;
        } else if (have && strcmp(at->name, "reason") == 0) {
            reason = at->value;
        }
        /* other attributes are ignored (room to grow) */
    }
    if (ok && !end)
        msg_warn("%s: local reply without end attribute", m->id);
    for (k = 0; k < job->n; k++) {
        if (!answered[k]) {
            qmgr_set_result(m, job->idx[k], '4', "4.3.0", "no result from the local delivery agent",
                            "local");
            qmgr_log_rcpt(m, job->idx[k], "deferred");
        }
    }
    myfree(answered);
    c->job = NULL;
    c->done++;
    c->last_used = time(NULL);
    job_done(job);
    return ok;
}

/* Decode and apply every complete reply in c->in. false if c was closed. */
static bool conn_decode(struct conn *c)
{
    while (c->job != NULL && c->in.len > 0) {
        const char *error = NULL;
        ssize_t used = attr_decode(c->in.data, c->in.len, LOCAL_REPLY_MAX, &reply_attrs, &error);
        if (used == 0)
            return true; /* need more */
        if (used < 0) {
            char why[160];
            snprintf(why, sizeof(why), "malformed reply: %s", error != NULL ? error : "?");
            msg_warn("%s: %s", c->job->msg->id, why);
            c->done = 0; /* never resend after a protocol error */
            conn_fail(c, why);
            return false;
        }
        size_t rest = c->in.len - (size_t)used;
        memmove(c->in.data, c->in.data + used, rest);
        strbuf_truncate(&c->in, rest);
        if (!conn_reply(c, &reply_attrs)) {
            conn_close(c);
            return false;
        }
    }
    if (c->job == NULL && c->in.len > 0) {
        msg_warn("unexpected data from local outside a request: connection dropped");
        conn_close(c);
        return false;
    }
    return true;
}

static void conn_readable(struct conn *c)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            /* local went away; harmless when no request is outstanding. */
            char why[128];
            snprintf(why, sizeof(why), "%s", n == 0 ? "connection closed" : strerror(errno));
            if (c->job != NULL)
                conn_fail(c, why);
            else
                conn_close(c);
            return;
        }
        strbuf_append(&c->in, buf, (size_t)n);
        if (c->in.len > LOCAL_REPLY_MAX + 64 && c->job != NULL) {
            c->done = 0;
            conn_fail(c, "reply too large");
            return;
        }
        if (!conn_decode(c))
            return;
    }
}

void qmgr_deliver_events(const struct pollfd *pfd, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct conn *c = &conns[poll_map[k]];
        if (pfd[k].revents == 0 || c->fd != pfd[k].fd)
            continue;
        conn_readable(c);
    }
}

void qmgr_deliver_timeouts(void)
{
    time_t now = time(NULL);

    for (size_t i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if (c->job != NULL && now - c->started > qmgr.ipc_timeout) {
            c->job->retries++; /* a timeout is not a stale connection: no resend */
            conn_fail(c, "timeout");
        } else if (c->job == NULL && idle_close > 0 && now - c->last_used > idle_close) {
            conn_close(c); /* let the local process go */
        }
    }
}

void qmgr_deliver_shutdown(void)
{
    for (size_t i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) {
            close(conns[i].fd);
            conns[i].fd = -1;
        }
}
