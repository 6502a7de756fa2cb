/*
 * qmgr - the queue manager: the only scheduler of tegami.
 *
 * Runs as a SERVER_LONG service: master hands us the public/qmgr fifo on
 * fd 3 (opened read-write by master, so it never reports EOF). One poll()
 * loop watches the fifo, the connections to local and smtp, and a timer.
 *
 * Wake-ups (docs/protocols-qmgr.md): "I<id>" activates that incoming file
 * directly (the fast path, no directory scan), "S" scans incoming/, "F"
 * retries all deferred mail now. At start, active/ left by a killed qmgr is
 * moved back to incoming/ and both incoming/ and deferred/ are scanned;
 * every queue_run_delay deferred/ is scanned for mail whose time has come.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"
#include "queue_pool.h"
#include "server.h"

#define FIFO_LINE_MAX 64 /* "I" + queue ID + LF fits with room to spare */
#define TODO_BATCH 256   /* activations per loop turn, so replies keep flowing */

struct qmgr_state qmgr;

/*
 * Every active message holds its queue file open: make sure the descriptor
 * limit allows qmgr_message_active_limit of them, or lower the limit.
 */
static void fit_active_limit(void)
{
    struct rlimit rl;
    rlim_t conns = (rlim_t)qmgr.concurrency + (rlim_t)qmgr.smtp_connections;
    rlim_t want = (rlim_t)qmgr.active_limit + conns + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        long long fit = (long long)rl.rlim_cur - (long long)conns - 64;
        if (fit < 1)
            fit = 1;
        msg_warn("open file limit %llu is too low for qmgr_message_active_limit=%lld: using %lld",
                 (unsigned long long)rl.rlim_cur, qmgr.active_limit, fit);
        qmgr.active_limit = fit;
    }
}

static void qmgr_post_init(void)
{
    qmgr.run_delay = config_time("queue_run_delay");
    qmgr.active_limit = config_int("qmgr_message_active_limit");
    qmgr.min_backoff = config_time("minimal_backoff_time");
    qmgr.max_backoff = config_time("maximal_backoff_time");
    qmgr.lifetime = config_time("maximal_queue_lifetime");
    qmgr.bounce_lifetime = config_time("bounce_queue_lifetime");
    qmgr.concurrency = config_int("local_destination_concurrency_limit");
    qmgr.rcpt_limit = config_int("local_destination_recipient_limit");
    qmgr.bounce_size_limit = config_size("bounce_size_limit");
    qmgr.stale_time = config_time("qmgr_stale_file_time");
    qmgr.ipc_timeout = config_time("ipc_timeout");
    qmgr.reuse_limit = config_int("queue_file_reuse_limit");
    qmgr.myhostname = config_str("myhostname");
    qmgr.smtp_connections = config_int("qmgr_smtp_connection_limit");
    qmgr.smtp_dest_limit = config_int("smtp_destination_concurrency_limit");
    qmgr.smtp_rcpt_limit = config_int("smtp_destination_recipient_limit");
    qmgr.init_concurrency = config_int("initial_destination_concurrency");
    qmgr.cohort_limit = config_int("destination_concurrency_failed_cohort_limit");
    qmgr.smtp_timeout = config_time("smtp_request_timeout");
    qmgr.delay_warning = config_time("delay_warning_time");
    fit_active_limit();
    signal(SIGPIPE, SIG_IGN);
}

/* Carry-over of a partial fifo line between reads. */
static char fifo_line[FIFO_LINE_MAX];
static size_t fifo_len;
static bool fifo_skip; /* discarding an over-long line */

static void fifo_request(const char *line, size_t len)
{
    char id[QUEUE_ID_MAX];

    if (len == 0)
        return;
    switch (line[0]) {
    case QMGR_REQ_INCOMING:
        if (len - 1 >= sizeof(id)) {
            msg_warn("fifo: queue ID too long: ignored");
            return;
        }
        memcpy(id, line + 1, len - 1);
        id[len - 1] = '\0';
        if (!queue_id_valid(id)) {
            msg_warn("fifo: bad queue ID \"%s\": ignored", id);
            return;
        }
        /* New mail most likely took a file from pool/ (a guess; recounted every run). */
        if (qmgr.pool_files > 0)
            qmgr.pool_files--;
        /* Fast path: straight to active/ when there is room, no scan. */
        if (qmgr.todo_head == NULL && qmgr.nactive < (size_t)qmgr.active_limit)
            qmgr_activate(QUEUE_INCOMING, id, false);
        else
            qmgr_todo_add(QUEUE_INCOMING, id, false);
        break;
    case QMGR_REQ_SCAN:
        qmgr_scan(QUEUE_INCOMING, false);
        break;
    case QMGR_REQ_FLUSH:
        msg_info("flush: retrying all deferred mail");
        qmgr_deliver_revive_all();
        qmgr_scan(QUEUE_INCOMING, false);
        qmgr_scan(QUEUE_DEFERRED, true);
        break;
    default:
        msg_warn("fifo: unknown request '%c': ignored",
                 (line[0] >= 0x20 && line[0] < 0x7f) ? line[0] : '?');
        break;
    }
}

static void fifo_read(int fd)
{
    char buf[8192];

    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* EAGAIN, or (never with master's read-write open) EOF */
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n') {
                if (!fifo_skip)
                    fifo_request(fifo_line, fifo_len);
                fifo_len = 0;
                fifo_skip = false;
            } else if (fifo_skip) {
                continue;
            } else if (fifo_len >= sizeof(fifo_line)) {
                msg_warn("fifo: request line too long: ignored");
                fifo_skip = true;
                fifo_len = 0;
            } else {
                fifo_line[fifo_len++] = c;
            }
        }
        if ((size_t)n < sizeof(buf))
            return; /* drained: poll says when more comes, no read just for EAGAIN */
    }
}

static void qmgr_loop(int fifo_fd)
{
    size_t maxfds = qmgr_deliver_maxfds() + 1;
    struct pollfd *pfd = mycalloc(maxfds, sizeof(*pfd));
    time_t next_run;
    int fl = fcntl(fifo_fd, F_GETFL);

    if (fl >= 0)
        (void)fcntl(fifo_fd, F_SETFL, fl | O_NONBLOCK);
    qmgr_deliver_init();
    qmgr_defer_log_init();
    qmgr_recover_active();
    qmgr_scan(QUEUE_INCOMING, false);
    qmgr_scan(QUEUE_DEFERRED, false);
    qmgr.pool_files = queue_pool_trim((size_t)qmgr.reuse_limit, (time_t)qmgr.run_delay);
    next_run = time(NULL) + qmgr.run_delay;

    /* A loop's log lines go out in one write, before it waits (msg.h). */
    msg_hold(true);
    while (!server_should_exit()) {
        qmgr_todo_run(TODO_BATCH);
        qmgr_deliver_dispatch();

        pfd[0].fd = fifo_fd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        size_t n = 1 + qmgr_deliver_pollfds(pfd + 1, maxfds - 1);
        bool more = (qmgr.todo_head != NULL || qmgr.rescan_incoming) &&
                    qmgr.nactive < (size_t)qmgr.active_limit;
        if (!more)
            msg_flush();
        int rc = poll(pfd, (nfds_t)n, more ? 0 : 1000);
        if (rc < 0 && errno != EINTR)
            msg_fatal("poll: %m");
        if (rc > 0) {
            if (pfd[0].revents != 0)
                fifo_read(fifo_fd);
            qmgr_deliver_events(pfd + 1, n - 1);
        }
        qmgr_deliver_timeouts();

        time_t now = time(NULL);
        if (now >= next_run) {
            qmgr_scan(QUEUE_DEFERRED, false);
            if (qmgr.todo_head == NULL)
                qmgr_scan(QUEUE_INCOMING, false); /* a lost wake-up must not strand mail */
            /* Files unused for a whole run are not needed: give their inodes back. */
            qmgr.pool_files = queue_pool_trim((size_t)qmgr.reuse_limit, (time_t)qmgr.run_delay);
            next_run = now + qmgr.run_delay;
        }
    }
    /* Messages still in active/ are moved back to incoming/ by the next qmgr. */
    qmgr_deliver_shutdown();
    myfree(pfd);
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_LONG,
        .pre_init = NULL,
        .post_init = qmgr_post_init,
        .service = NULL,
        .loop = qmgr_loop,
    };

    server_main(argc, argv, &spec);
}
