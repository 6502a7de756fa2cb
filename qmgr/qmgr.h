/*
 * qmgr - the queue manager's internal interfaces (one process, one loop).
 *
 * Life of a message in qmgr:
 *   todo list (from a fifo wake-up or a directory scan)
 *     -> qmgr_activate(): rename to active/, qf_read, route each recipient
 *        (resolve.c: local, smtp:nexthop, error), cut jobs of at most the
 *        transport's recipient limit per destination (transport + nexthop)
 *     -> transport.c: per-destination queues, dispatched round-robin within
 *        each destination's concurrency window (window.c); each job is one
 *        request on one persistent connection to private/local or
 *        private/smtp; replies are recorded per recipient
 *     -> qmgr_finalize() once no job is outstanding: queue the DSN for failed
 *        recipients, then remove the file, or move it to deferred/ with its
 *        mtime set to the next retry time.
 *
 * Everything runs in one thread; the only blocking calls are local file
 * system operations and writing a (small) request to a local socket.
 */
#ifndef TEGAMI_QMGR_H
#define TEGAMI_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <poll.h>
#include <time.h>

#include "queue.h"
#include "queue_file.h"
#include "strbuf.h"

/* This round's outcome for one recipient. */
struct qmgr_rcpt_state {
    char result;  /* 0 = not tried (or already done), '2', '4', '5' */
    char dsn[12]; /* "5.1.1" */
    char *reason; /* owned */
    char *relay;  /* owned: "local", "none", "mx.example[192.0.2.1]:25" */
};

struct qmgr_msg {
    char id[QUEUE_ID_MAX];
    int fd;     /* active/ID, read-write */
    off_t size; /* of the file when it was opened (done marks never change it) */
    struct qf_message qf;
    struct qmgr_rcpt_state *st; /* qf.nrcpts entries */
    size_t jobs;                /* delivery requests not yet answered */
    bool dirty;                 /* done marks written since the last fsync */
    bool was_deferred;          /* activated from deferred/: may have a defer/ID file */
};

struct qmgr_dest;

/* One delivery request: some recipients of one message, for one destination. */
struct qmgr_job {
    struct qmgr_msg *msg;
    struct qmgr_dest *dest;
    size_t *idx; /* recipient indexes into msg->qf.rcpts */
    size_t n, cap;
    unsigned retries; /* resent after a stale connection failed */
    struct qmgr_job *next;
};

/* A queue file waiting to be activated. */
struct qmgr_todo {
    struct qmgr_todo *next;
    enum queue_dir dir;
    bool force; /* deferred: ignore the retry time (flush) */
    char id[QUEUE_ID_MAX];
};

struct qmgr_state {
    /* parameters */
    long long run_delay;
    long long active_limit;
    long long min_backoff, max_backoff;
    long long lifetime, bounce_lifetime;
    long long concurrency, rcpt_limit; /* local */
    long long smtp_connections, smtp_dest_limit, smtp_rcpt_limit, init_concurrency;
    long long cohort_limit;
    long long smtp_timeout;
    long long delay_warning;
    long long bounce_size_limit;
    long long stale_time;
    long long ipc_timeout;
    long long reuse_limit; /* queue_file_reuse_limit */
    const char *myhostname;

    /* state */
    size_t nactive;
    struct qmgr_todo *todo_head, *todo_tail;
    size_t ntodo;
    bool rescan_incoming; /* the todo list overflowed: scan incoming/ when it empties */
    size_t pool_files;    /* estimate of the files in pool/ (recounted every queue run) */
};

extern struct qmgr_state qmgr;

/* scan.c */
void qmgr_recover_active(void);
void qmgr_scan(enum queue_dir dir, bool force);
/* Append to the todo list; false (dropped, found again by a later scan) when it is full. */
bool qmgr_todo_add(enum queue_dir dir, const char *id, bool force);
/* Activate from the todo list while there is room; at most max files. */
void qmgr_todo_run(size_t max);

/* active.c */
void qmgr_activate(enum queue_dir dir, const char *id, bool force);
void qmgr_finalize(struct qmgr_msg *m);
void qmgr_log_rcpt(const struct qmgr_msg *m, size_t i, const char *status);
void qmgr_set_result(struct qmgr_msg *m, size_t i, char result, const char *dsn, const char *reason,
                     const char *relay);

/* transport.c */
enum qmgr_transport_id { QMGR_TP_LOCAL, QMGR_TP_SMTP, QMGR_TP_COUNT };
void qmgr_deliver_init(void);
/* The destination (transport + nexthop; "" for local), created on demand. */
struct qmgr_dest *qmgr_dest_find(enum qmgr_transport_id tp, const char *nexthop);
/* Recipients per job for the destination's transport. */
size_t qmgr_dest_rcpt_limit(const struct qmgr_dest *d);
/* Queue a job (job->dest set) at the end (or the front) of its destination's queue. */
void qmgr_job_add(struct qmgr_job *job, bool front);
/* Most connections all transports together may have open (pollfd slots). */
size_t qmgr_deliver_maxfds(void);
/* Start requests on idle connections, round-robin over destinations with room. */
void qmgr_deliver_dispatch(void);
/* pollfd handling: add connection fds, then process events. */
size_t qmgr_deliver_pollfds(struct pollfd *pfd, size_t max);
void qmgr_deliver_events(const struct pollfd *pfd, size_t n);
/* Abort requests older than their transport's timeout. */
void qmgr_deliver_timeouts(void);
/* mailctl flush: destinations marked dead are tried again at once. */
void qmgr_deliver_revive_all(void);
void qmgr_deliver_shutdown(void);

/* bounce.c */
/* Queue one DSN for the listed recipients (this round's failures). 0, or -1: keep them pending. */
int qmgr_bounce(struct qmgr_msg *m, const size_t *idx, size_t n);
/* Queue one success DSN for this round's delivered recipients that asked (NOTIFY=SUCCESS). */
void qmgr_success(struct qmgr_msg *m);
/* Once per message: a delay notice (Action: delayed) for the pending recipients that want it
 * when the message is older than delay_warning_time; recorded in the queue file. */
void qmgr_delay_warning(struct qmgr_msg *m, long long age);

/* defer_log.c: defer/ID, the last deferral reasons shown by mailq */
void qmgr_defer_log_init(void);
void qmgr_defer_log_write(const struct qmgr_msg *m);
void qmgr_defer_log_remove(const char *id);

/* retry.c */
/* Seconds until the next attempt of a message that is age seconds old. */
long long qmgr_backoff(long long age, long long min_backoff, long long max_backoff);
/* True when a message of this age has outlived its queue lifetime. */
bool qmgr_expired(long long age, long long lifetime);

#endif
