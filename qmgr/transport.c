/*
 * transport - delivery transports (local, smtp), their connection pools,
 * and the per-destination queues the scheduler dispatches from.
 *
 * A transport is a UNIX socket (private/local, private/smtp) and a pool of
 * persistent connections to it, each carrying one request at a time
 * (docs/protocols.md): local up to local_destination_concurrency_limit,
 * smtp up to qmgr_smtp_connection_limit. The request and reply records are
 * the same for both; smtp requests add `nexthop`, smtp replies add `relay`
 * per recipient and `dest_status`.
 *
 * A destination is transport + nexthop (local has one, nexthop ""). It
 * queues jobs (at most the transport's recipient limit of one message) and
 * has a concurrency window (window.c): local's is fixed at its limit, smtp's
 * starts at initial_destination_concurrency and follows dest_status. When a
 * connection is free, the transport's destinations are visited round-robin
 * and the next one with a job and room in its window sends one; so a slow
 * or hanging destination ties up at most its window, never the pool. A
 * dead destination's jobs are deferred at once, without a connection,
 * until minimal_backoff_time has passed.
 *
 * A connection that fails while a request is outstanding defers its
 * recipients (4.4.2) - unless it was an idle, reused connection that the
 * agent closed just as we wrote (no reply byte seen): that request is sent
 * again once on a fresh connection. Either way nothing is lost: the
 * recipients stay pending in the queue file.
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
#include "window.h"

#define REPLY_MAX (1024 * 1024) /* shared protocol bound */
#define CONNECT_TIMEOUT_MS 10000
#define DEST_BUCKETS 4096

struct qmgr_transport;

struct conn {
    struct qmgr_transport *tp;
    int fd;               /* -1: not connected */
    struct qmgr_job *job; /* outstanding request, or NULL when idle */
    struct strbuf in;     /* reply bytes not yet decoded */
    time_t started;       /* request sent at */
    time_t last_used;
    unsigned long done; /* requests completed on this connection */
};

struct qmgr_dest {
    struct qmgr_transport *tp;
    char *nexthop;
    char *label; /* "smtp:example.test" for the log */
    struct qmgr_job *head, *tail;
    size_t njobs;
    size_t active; /* requests in flight */
    struct qmgr_window win;
    time_t dead_until; /* 0: alive */
    char dead_dsn[12];
    char *dead_reason;
    struct qmgr_dest *prev, *next; /* the transport's round-robin list */
    struct qmgr_dest *hnext;       /* hash chain */
};

struct qmgr_transport {
    const char *name; /* "local", "smtp" (also the relay name for local) */
    struct strbuf path;
    struct conn *conns;
    size_t nconns;
    long long timeout;
    size_t rcpt_limit;
    unsigned init_window, dest_limit;
    bool feedback; /* smtp: dest_status drives the window */
    time_t connect_retry_at;
    struct qmgr_dest *dests, *cursor; /* list, and where round-robin resumes */
    size_t ndests;
    size_t queued; /* jobs waiting in all destinations */
    bool flush_dead;
};

static struct qmgr_transport transports[QMGR_TP_COUNT];
static struct qmgr_dest *buckets[DEST_BUCKETS];
static struct conn **poll_map; /* pollfd slot -> conn */
static size_t poll_max;
static struct attr_list req_attrs = ATTR_LIST_INIT;
static struct attr_list reply_attrs = ATTR_LIST_INIT;
static struct strbuf req_buf = STRBUF_INIT;
static long long idle_close;

static void tp_init(struct qmgr_transport *tp, const char *name, size_t nconns, long long timeout,
                    size_t rcpt_limit, unsigned init_window, unsigned dest_limit, bool feedback)
{
    tp->name = name;
    strbuf_init(&tp->path, 128);
    strbuf_printf(&tp->path, "%s/private/%s", queue_root(), name);
    tp->nconns = nconns;
    tp->conns = mycalloc(nconns, sizeof(*tp->conns));
    for (size_t i = 0; i < nconns; i++) {
        tp->conns[i].tp = tp;
        tp->conns[i].fd = -1;
        strbuf_init(&tp->conns[i].in, 256);
    }
    tp->timeout = timeout;
    tp->rcpt_limit = rcpt_limit;
    tp->init_window = init_window;
    tp->dest_limit = dest_limit;
    tp->feedback = feedback;
}

void qmgr_deliver_init(void)
{
    tp_init(&transports[QMGR_TP_LOCAL], "local", (size_t)qmgr.concurrency, qmgr.ipc_timeout,
            (size_t)qmgr.rcpt_limit, (unsigned)qmgr.concurrency, (unsigned)qmgr.concurrency, false);
    tp_init(&transports[QMGR_TP_SMTP], "smtp", (size_t)qmgr.smtp_connections, qmgr.smtp_timeout,
            (size_t)qmgr.smtp_rcpt_limit, (unsigned)qmgr.init_concurrency,
            (unsigned)qmgr.smtp_dest_limit, true);
    poll_max = qmgr_deliver_maxfds();
    poll_map = mycalloc(poll_max, sizeof(*poll_map));
    idle_close = config_time("max_idle");
}

size_t qmgr_deliver_maxfds(void)
{
    return (size_t)qmgr.concurrency + (size_t)qmgr.smtp_connections;
}

/* ---- destinations ---- */

static size_t dest_hash(enum qmgr_transport_id tp, const char *s)
{
    size_t h = (size_t)tp * 31 + 7;
    for (; *s != '\0'; s++)
        h = h * 33 + (unsigned char)*s;
    return h % DEST_BUCKETS;
}

struct qmgr_dest *qmgr_dest_find(enum qmgr_transport_id id, const char *nexthop)
{
    struct qmgr_transport *tp = &transports[id];
    size_t h = dest_hash(id, nexthop);
    struct qmgr_dest *d;

    for (d = buckets[h]; d != NULL; d = d->hnext)
        if (d->tp == tp && strcmp(d->nexthop, nexthop) == 0)
            return d;
    d = mycalloc(1, sizeof(*d));
    d->tp = tp;
    d->nexthop = mystrdup(nexthop);
    {
        struct strbuf l = STRBUF_INIT;
        strbuf_printf(&l, "%s:%s", tp->name, nexthop);
        d->label = strbuf_detach(&l, NULL);
    }
    qmgr_window_init(&d->win, tp->init_window, tp->dest_limit, (unsigned)qmgr.cohort_limit);
    d->hnext = buckets[h];
    buckets[h] = d;
    /* Append to the round-robin list. */
    if (tp->dests == NULL) {
        d->prev = d->next = d;
        tp->dests = d;
        tp->cursor = d;
    } else {
        d->next = tp->dests;
        d->prev = tp->dests->prev;
        d->prev->next = d;
        tp->dests->prev = d;
    }
    tp->ndests++;
    return d;
}

size_t qmgr_dest_rcpt_limit(const struct qmgr_dest *d)
{
    return d->tp->rcpt_limit;
}

/* Free a destination that has nothing queued, nothing in flight, and is not dead. */
static void dest_free(struct qmgr_dest *d)
{
    struct qmgr_transport *tp = d->tp;
    size_t h = dest_hash((enum qmgr_transport_id)(tp - transports), d->nexthop);
    struct qmgr_dest **pp;

    for (pp = &buckets[h]; *pp != NULL; pp = &(*pp)->hnext)
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    if (d->next == d) {
        tp->dests = tp->cursor = NULL;
    } else {
        d->prev->next = d->next;
        d->next->prev = d->prev;
        if (tp->dests == d)
            tp->dests = d->next;
        if (tp->cursor == d)
            tp->cursor = d->next;
    }
    tp->ndests--;
    myfree(d->nexthop);
    myfree(d->label);
    myfree(d->dead_reason);
    myfree(d);
}

static bool dest_idle(const struct qmgr_dest *d, time_t now)
{
    return d->njobs == 0 && d->active == 0 && (d->dead_until == 0 || d->dead_until <= now);
}

void qmgr_job_add(struct qmgr_job *job, bool front)
{
    struct qmgr_dest *d = job->dest;

    if (front) {
        job->next = d->head;
        d->head = job;
        if (d->tail == NULL)
            d->tail = job;
    } else {
        job->next = NULL;
        if (d->tail != NULL)
            d->tail->next = job;
        else
            d->head = job;
        d->tail = job;
    }
    d->njobs++;
    d->tp->queued++;
    if (d->dead_until != 0)
        d->tp->flush_dead = true;
}

static struct qmgr_job *job_pop(struct qmgr_dest *d)
{
    struct qmgr_job *job = d->head;

    if (job != NULL) {
        d->head = job->next;
        if (d->head == NULL)
            d->tail = NULL;
        job->next = NULL;
        d->njobs--;
        d->tp->queued--;
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
    const char *relay = job->dest->tp == &transports[QMGR_TP_LOCAL] ? "local" : "none";

    for (size_t k = 0; k < job->n; k++) {
        qmgr_set_result(job->msg, job->idx[k], '4', dsn, reason, relay);
        qmgr_log_rcpt(job->msg, job->idx[k], "deferred");
    }
    job_done(job);
}

/* Mark d dead: its mail is deferred without a connection until the back-off ends. */
static void dest_kill(struct qmgr_dest *d, const char *dsn, const char *reason)
{
    long long wait = qmgr.min_backoff;

    d->dead_until = time(NULL) + (time_t)wait;
    snprintf(d->dead_dsn, sizeof(d->dead_dsn), "%s", dsn != NULL && dsn[0] == '4' ? dsn : "4.4.1");
    myfree(d->dead_reason);
    d->dead_reason =
        mystrdup(reason != NULL && reason[0] != '\0' ? reason : "destination not reachable");
    msg_warn("%s: destination is dead (%s): its mail is deferred for %llds", d->label,
             d->dead_reason, wait);
    d->tp->flush_dead = true;
}

/* mailctl flush: forget that destinations were dead, so their mail is tried now. */
void qmgr_deliver_revive_all(void)
{
    for (size_t t = 0; t < QMGR_TP_COUNT; t++) {
        struct qmgr_transport *tp = &transports[t];
        struct qmgr_dest *d = tp->dests;
        for (size_t k = 0; d != NULL && k < tp->ndests; k++, d = d->next) {
            if (d->dead_until != 0) {
                d->dead_until = 1; /* in the past: flush_dead() revives it */
                tp->flush_dead = true;
            }
        }
    }
}

/* Defer the jobs of dead destinations; revive those whose time is up. */
static void flush_dead(struct qmgr_transport *tp, time_t now)
{
    struct qmgr_dest *d = tp->dests;

    tp->flush_dead = false;
    for (size_t k = 0; d != NULL && k < tp->ndests; k++, d = d->next) {
        if (d->dead_until == 0)
            continue;
        if (d->dead_until <= now) {
            d->dead_until = 0;
            qmgr_window_revive(&d->win);
            msg_info("%s: retrying the destination with a concurrency of 1", d->label);
            continue;
        }
        if (d->njobs > 0)
            tp->flush_dead = true; /* still dead: jobs added later are deferred, too */
        while (d->njobs > 0) {
            struct strbuf why = STRBUF_INIT;
            strbuf_printf(&why, "%s (destination marked dead, not tried again yet)",
                          d->dead_reason);
            job_defer(job_pop(d), d->dead_dsn, why.data);
            strbuf_release(&why);
        }
    }
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->job = NULL;
    c->done = 0;
    strbuf_reset(&c->in);
}

/* Feedback from one finished smtp request (dest_status, or a failure of the request). */
static void dest_feedback(struct qmgr_dest *d, bool ok, const char *dsn, const char *reason)
{
    if (!d->tp->feedback)
        return;
    if (ok) {
        if (qmgr_window_ok(&d->win))
            msg_info("%s: concurrency window %u", d->label, d->win.window);
    } else if (d->dead_until == 0) {
        if (qmgr_window_dead(&d->win, d->active))
            dest_kill(d, dsn, reason);
        else
            msg_info("%s: destination not reachable: concurrency window 1", d->label);
    }
}

/* The connection broke: close it and settle its request. */
static void conn_fail(struct conn *c, const char *why)
{
    struct qmgr_job *job = c->job;
    bool stale = c->done > 0 && c->in.len == 0;

    conn_close(c);
    if (job == NULL)
        return;
    job->dest->active--;
    if (stale && job->retries == 0) {
        /* The agent closed a reused idle connection as we wrote: resend once. */
        job->retries++;
        msg_debug("%s: resending to %s after: %s", job->msg->id, c->tp->name, why);
        qmgr_job_add(job, true);
        return;
    }
    struct strbuf reason = STRBUF_INIT;
    strbuf_printf(&reason, "lost connection with %s while delivering: %s", c->tp->name, why);
    dest_feedback(job->dest, false, "4.4.2", reason.data);
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
    int fd = sock_unix_connect(c->tp->path.data, CONNECT_TIMEOUT_MS, &err);

    if (fd < 0) {
        msg_warn("connect to %s: %s", c->tp->path.data, strbuf_str(&err));
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
    long long timeout_ms = qmgr.ipc_timeout * 1000; /* writing a small request */

    attr_list_reset(&req_attrs);
    attr_list_add_str(&req_attrs, "request", "deliver");
    attr_list_add_str(&req_attrs, "queue_id", m->id);
    attr_list_add_str(&req_attrs, "sender", m->qf.sender);
    attr_list_add_int(&req_attrs, "offset", (long long)m->qf.content_offset);
    attr_list_add_int(&req_attrs, "size", (long long)m->qf.content_size);
    if (c->tp->feedback)
        attr_list_add_str(&req_attrs, "nexthop", job->dest->nexthop);
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
    job->dest->active++;
    strbuf_reset(&c->in);
    if (write_all(c->fd, req_buf.data, req_buf.len,
                  timeout_ms > 2000000000 ? 2000000000 : (int)timeout_ms) < 0) {
        char why[128];
        snprintf(why, sizeof(why), "write: %s", strerror(errno));
        conn_fail(c, why);
    }
}

/* Next destination (round-robin from the cursor) with a job and room in its window. */
static struct qmgr_dest *dest_next(struct qmgr_transport *tp, time_t now)
{
    struct qmgr_dest *d = tp->cursor;

    for (size_t k = 0; d != NULL && k < tp->ndests; k++, d = d->next) {
        if (d->njobs == 0 || (d->dead_until != 0 && d->dead_until > now))
            continue;
        if (!qmgr_window_room(&d->win, d->active))
            continue;
        tp->cursor = d->next;
        return d;
    }
    return NULL;
}

static void tp_dispatch(struct qmgr_transport *tp)
{
    time_t now = time(NULL);

    if (tp->flush_dead)
        flush_dead(tp, now);
    while (tp->queued > 0) {
        struct conn *idle = NULL, *empty = NULL;
        bool busy = false;
        for (size_t i = 0; i < tp->nconns; i++) {
            if (tp->conns[i].fd >= 0 && tp->conns[i].job == NULL) {
                idle = &tp->conns[i];
                break;
            }
            if (tp->conns[i].fd >= 0)
                busy = true;
            else if (empty == NULL)
                empty = &tp->conns[i];
        }
        if (idle == NULL && empty == NULL)
            return; /* all busy: wait for a reply */
        struct qmgr_dest *d = dest_next(tp, now);
        if (d == NULL)
            return; /* every destination with mail is at its window */
        if (idle == NULL) {
            /*
             * The agent is unreachable: one connect attempt per second at
             * most (a connect may block up to its timeout). While other
             * connections work, jobs wait for them; with none, they are
             * deferred and the queue file keeps them.
             */
            struct strbuf why = STRBUF_INIT;
            if (time(NULL) < tp->connect_retry_at) {
                if (busy)
                    return;
                strbuf_printf(&why, "the %s delivery agent is not reachable", tp->name);
                job_defer(job_pop(d), "4.4.1", why.data);
                strbuf_release(&why);
                continue;
            }
            if (!conn_open(empty)) {
                tp->connect_retry_at = time(NULL) + 1;
                if (busy)
                    return;
                strbuf_printf(&why, "cannot connect to the %s delivery agent", tp->name);
                job_defer(job_pop(d), "4.4.1", why.data);
                strbuf_release(&why);
                continue;
            }
            strbuf_release(&why);
            idle = empty;
        }
        conn_send(idle, job_pop(d));
    }
}

/* Forget destinations with nothing to do (a few per call, from the cursor). */
static void tp_gc(struct qmgr_transport *tp)
{
    time_t now = time(NULL);
    struct qmgr_dest *d = tp->dests;
    size_t n = tp->ndests;

    for (size_t k = 0; d != NULL && k < n; k++) {
        struct qmgr_dest *next = d->next;
        if (dest_idle(d, now))
            dest_free(d);
        if (tp->dests == NULL)
            break;
        d = next;
    }
}

void qmgr_deliver_dispatch(void)
{
    static time_t last_gc;
    time_t now = time(NULL);

    for (size_t t = 0; t < QMGR_TP_COUNT; t++)
        tp_dispatch(&transports[t]);
    if (now != last_gc) {
        last_gc = now;
        for (size_t t = 0; t < QMGR_TP_COUNT; t++)
            tp_gc(&transports[t]);
    }
}

size_t qmgr_deliver_pollfds(struct pollfd *pfd, size_t max)
{
    size_t n = 0;

    if (max > poll_max)
        max = poll_max;
    for (size_t t = 0; t < QMGR_TP_COUNT; t++) {
        struct qmgr_transport *tp = &transports[t];
        for (size_t i = 0; i < tp->nconns && n < max; i++) {
            if (tp->conns[i].fd < 0)
                continue;
            pfd[n].fd = tp->conns[i].fd;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            poll_map[n] = &tp->conns[i];
            n++;
        }
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

/* A relay name from the agent: printable ASCII without spaces, else "none". */
static const char *relay_name(const struct qmgr_transport *tp, const char *relay)
{
    if (!tp->feedback)
        return "local";
    if (relay == NULL || relay[0] == '\0' || strlen(relay) > 300)
        return "none";
    for (const char *p = relay; *p != '\0'; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return "none";
    return relay;
}

static void apply_result(struct qmgr_transport *tp, struct qmgr_msg *m, size_t i,
                         const char *status, const char *dsn, const char *reason, const char *relay)
{
    struct qf_recipient *r = &m->qf.rcpts[i];
    char s = status != NULL && status[0] != '\0' && status[1] == '\0' ? status[0] : '?';

    relay = relay_name(tp, relay);
    if (reason == NULL)
        reason = "";
    switch (s) {
    case '2':
        qmgr_set_result(m, i, '2', dsn != NULL ? dsn : "2.0.0", reason, relay);
        if (qf_mark_recipient(m->fd, r, QF_RCPT_DONE) < 0) {
            msg_warn("%s: mark recipient %s done: %m", m->id, r->address);
        } else {
            r->status = QF_RCPT_DONE;
            m->dirty = true;
        }
        qmgr_log_rcpt(m, i, "sent");
        break;
    case '5':
        qmgr_set_result(m, i, '5', dsn != NULL ? dsn : "5.0.0", reason, relay);
        qmgr_log_rcpt(m, i, "bounced");
        break;
    case '4':
        qmgr_set_result(m, i, '4', dsn != NULL ? dsn : "4.0.0", reason, relay);
        qmgr_log_rcpt(m, i, "deferred");
        break;
    default: {
        struct strbuf why = STRBUF_INIT;
        strbuf_printf(&why, "invalid status from the %s delivery agent", tp->name);
        qmgr_set_result(m, i, '4', "4.3.0", why.data, relay);
        strbuf_release(&why);
        qmgr_log_rcpt(m, i, "deferred");
        break;
    }
    }
}

/*
 * Apply one reply record to c's job. Returns false on a protocol error
 * (the caller drops the connection; unanswered recipients are deferred).
 */
static bool conn_reply(struct conn *c, const struct attr_list *l)
{
    struct qmgr_transport *tp = c->tp;
    struct qmgr_job *job = c->job;
    struct qmgr_dest *d = job->dest;
    struct qmgr_msg *m = job->msg;
    bool *answered = mycalloc(job->n ? job->n : 1, sizeof(*answered));
    bool ok = true, have = false, end = false;
    size_t cur = 0, k;
    const char *status = NULL, *dsn = NULL, *reason = NULL, *relay = NULL;
    const char *dest_status = NULL;
    struct strbuf last_reason = STRBUF_INIT;
    char last_dsn[12] = "";

    for (size_t a = 0; a <= l->count && ok && !end; a++) {
        const struct attr *at = a < l->count ? &l->items[a] : NULL;
        if (at == NULL || strcmp(at->name, "index") == 0 || strcmp(at->name, "end") == 0 ||
            strcmp(at->name, "dest_status") == 0) {
            if (have) {
                apply_result(tp, m, job->idx[cur], status, dsn, reason, relay);
                if (status != NULL && status[0] == '4' && reason != NULL) {
                    strbuf_reset(&last_reason);
                    strbuf_puts(&last_reason, reason);
                    snprintf(last_dsn, sizeof(last_dsn), "%s", dsn != NULL ? dsn : "4.0.0");
                }
                answered[cur] = true;
                have = false;
            }
            if (at == NULL)
                break;
            if (strcmp(at->name, "end") == 0) {
                end = true;
                break;
            }
            if (strcmp(at->name, "dest_status") == 0) {
                dest_status = at->value;
                continue;
            }
            size_t i;
            if (!parse_index(at->value, &i) || (cur = job_slot(job, i)) == job->n ||
                answered[cur]) {
                msg_warn("%s: %s reply names an unknown recipient index \"%.20s\"", m->id, tp->name,
                         at->value);
                ok = false;
                break;
            }
            have = true;
            status = dsn = reason = relay = NULL;
        } else if (have && strcmp(at->name, "status") == 0) {
            status = at->value;
        } else if (have && strcmp(at->name, "dsn") == 0) {
            dsn = at->value;
        } else if (have && strcmp(at->name, "reason") == 0) {
            reason = at->value;
        } else if (have && strcmp(at->name, "relay") == 0) {
            relay = at->value;
        }
        /* other attributes are ignored (room to grow) */
    }
    if (ok && !end)
        msg_warn("%s: %s reply without end attribute", m->id, tp->name);
    for (k = 0; k < job->n; k++) {
        if (!answered[k]) {
            struct strbuf why = STRBUF_INIT;
            strbuf_printf(&why, "no result from the %s delivery agent", tp->name);
            qmgr_set_result(m, job->idx[k], '4', "4.3.0", why.data,
                            tp->feedback ? "none" : "local");
            strbuf_release(&why);
            qmgr_log_rcpt(m, job->idx[k], "deferred");
        }
    }
    myfree(answered);
    c->job = NULL;
    c->done++;
    c->last_used = time(NULL);
    d->active--;
    if (dest_status != NULL && strcmp(dest_status, "ok") == 0)
        dest_feedback(d, true, NULL, NULL);
    else if (dest_status != NULL && strcmp(dest_status, "dead") == 0)
        dest_feedback(d, false, last_dsn, strbuf_str(&last_reason));
    strbuf_release(&last_reason);
    job_done(job);
    return ok;
}

/* Decode and apply every complete reply in c->in. false if c was closed. */
static bool conn_decode(struct conn *c)
{
    while (c->job != NULL && c->in.len > 0) {
        const char *error = NULL;
        ssize_t used = attr_decode(c->in.data, c->in.len, REPLY_MAX, &reply_attrs, &error);
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
        msg_warn("unexpected data from %s outside a request: connection dropped", c->tp->name);
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
            /* The agent went away; harmless when no request is outstanding. */
            char why[128];
            snprintf(why, sizeof(why), "%s", n == 0 ? "connection closed" : strerror(errno));
            if (c->job != NULL)
                conn_fail(c, why);
            else
                conn_close(c);
            return;
        }
        strbuf_append(&c->in, buf, (size_t)n);
        if (c->in.len > REPLY_MAX + 64 && c->job != NULL) {
            c->done = 0;
            conn_fail(c, "reply too large");
            return;
        }
        if (!conn_decode(c))
            return;
        if ((size_t)n < sizeof(buf))
            return; /* drained: poll says when more comes, no read just for EAGAIN */
    }
}

void qmgr_deliver_events(const struct pollfd *pfd, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct conn *c = poll_map[k];
        if (pfd[k].revents == 0 || c->fd != pfd[k].fd)
            continue;
        conn_readable(c);
    }
}

void qmgr_deliver_timeouts(void)
{
    time_t now = time(NULL);

    for (size_t t = 0; t < QMGR_TP_COUNT; t++) {
        struct qmgr_transport *tp = &transports[t];
        for (size_t i = 0; i < tp->nconns; i++) {
            struct conn *c = &tp->conns[i];
            if (c->fd < 0)
                continue;
            if (c->job != NULL && now - c->started > tp->timeout) {
                c->job->retries++; /* a timeout is not a stale connection: no resend */
                conn_fail(c, "timeout");
            } else if (c->job == NULL && idle_close > 0 && now - c->last_used > idle_close) {
                conn_close(c); /* let the agent's process go */
            }
        }
    }
}

void qmgr_deliver_shutdown(void)
{
    for (size_t t = 0; t < QMGR_TP_COUNT; t++) {
        struct qmgr_transport *tp = &transports[t];
        for (size_t i = 0; i < tp->nconns; i++)
            if (tp->conns[i].fd >= 0) {
                close(tp->conns[i].fd);
                tp->conns[i].fd = -1;
            }
    }
}
