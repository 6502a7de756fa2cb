/*
 * qmgr - the queue manager's internal interfaces (one process, one loop).
 *
 * Life of a message in qmgr:
 *   todo list (from a fifo wake-up or a directory scan)
 *     -> qmgr_activate(): rename to active/, qf_read, classify recipients,
 *        cut the local recipients into jobs of <= local_destination_recipient_limit
 *     -> deliver.c: each job is one request on one persistent connection to
 *        private/local; replies are recorded per recipient
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
    char result;       /* 0 = not tried (or already done), '2', '4', '5' */
    char dsn[12];      /* "5.1.1" */
    char *reason;      /* owned */
    const char *relay; /* "local", "none" (static) */
};

struct qmgr_msg {
    char id[QUEUE_ID_MAX];
    int fd; /* active/ID, read-write */
    struct qf_message qf;
    struct qmgr_rcpt_state *st; /* qf.nrcpts entries */
    size_t jobs;                /* delivery requests not yet answered */
    bool dirty;                 /* done marks written since the last fsync */
};

/* One delivery request: some recipients of one message. */
struct qmgr_job {
    struct qmgr_msg *msg;
    size_t *idx; /* recipient indexes into msg->qf.rcpts */
    size_t n;
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
    long long concurrency, rcpt_limit;
    long long bounce_size_limit;
    long long stale_time;
    long long ipc_timeout;
    long long reuse_limit; /* queue_file_reuse_limit */
    const char *myhostname;
    struct strbuf local_path;

    /* state */
    size_t nactive;
    struct qmgr_todo *todo_head, *todo_tail;
    size_t ntodo;
    bool rescan_incoming; /* the todo list overflowed: scan incoming/ when it empties */
    struct qmgr_job *job_head, *job_tail;
    size_t njobs;
    size_t pool_files; /* estimate of the files in pool/ (recounted every queue run) */
};

extern struct qmgr_state qmgr;

/* scan.c */
void qmgr_recover_active(void);
void qmgr_scan(enum queue_dir dir, bool force);
void qmgr_todo_add(enum queue_dir dir, const char *id, bool force);
/* Activate from the todo list while there is room; at most max files. */
void qmgr_todo_run(size_t max);

/* active.c */
void qmgr_activate(enum queue_dir dir, const char *id, bool force);
void qmgr_finalize(struct qmgr_msg *m);
void qmgr_log_rcpt(const struct qmgr_msg *m, size_t i, const char *status);
void qmgr_set_result(struct qmgr_msg *m, size_t i, char result, const char *dsn, const char *reason,
                     const char *relay);

/* deliver.c */
void qmgr_deliver_init(void);
void qmgr_job_add(struct qmgr_job *job, bool front);
/* Start requests on idle connections. */
void qmgr_deliver_dispatch(void);
/* pollfd handling: add connection fds, then process events. */
size_t qmgr_deliver_pollfds(struct pollfd *pfd, size_t max);
void qmgr_deliver_events(const struct pollfd *pfd, size_t n);
/* Abort requests older than ipc_timeout. */
void qmgr_deliver_timeouts(void);
void qmgr_deliver_shutdown(void);

/* bounce.c */
/* Queue one DSN for the listed recipients (this round's failures). 0, or -1: keep them pending. */
int qmgr_bounce(struct qmgr_msg *m, const size_t *idx, size_t n);
/* Queue one success DSN for this round's delivered recipients that asked (NOTIFY=SUCCESS). */
void qmgr_success(struct qmgr_msg *m);

/* retry.c */
/* Seconds until the next attempt of a message that is age seconds old. */
long long qmgr_backoff(long long age, long long min_backoff, long long max_backoff);
/* True when a message of this age has outlived its queue lifetime. */
bool qmgr_expired(long long age, long long lifetime);

#endif
