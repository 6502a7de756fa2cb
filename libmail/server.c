/*
 * server - the daemon skeleton every service process runs in (see server.h).
 *
 * Process life: parse master's argv, load main.cf and the -o overrides, open
 * the log, pre_init (still privileged), drop privileges in one place,
 * post_init, then the SINGLE accept loop or the LONG loop.
 *
 * How a child notices that master is gone: master holds the only read end
 * of the status pipe, so when master exits the write end on fd 4 polls
 * POLLERR. As a second opinion we compare getppid() with the parent we
 * started under (reparenting to init or a subreaper).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "scoreboard.h"
#include "sock.h"
#include "strbuf.h"

static const char *server_name = "";
static char **server_extra_args;
static int server_extra_count;
static volatile sig_atomic_t server_exit_flag;
static pid_t server_parent;
static bool server_status_ok;           /* fd 4 is a usable status pipe */
static struct scoreboard *server_score; /* the service's board (fd 6), or NULL */
static int server_score_slot = -1;      /* this worker's slot on it */
static char *server_template_arg;       /* our "-T" in argv (we are a template), "-W" in workers */

const char *server_service_name(void)
{
    return server_name;
}

char **server_args(int *count_r)
{
    if (count_r)
        *count_r = server_extra_count;
    return server_extra_args;
}

/* True when master has gone away: status pipe reader closed, or reparented. */
static bool server_master_gone(void)
{
    if (server_parent > 1 && getppid() != server_parent)
        return true;
    if (server_status_ok) {
        struct pollfd p = {.fd = SERVER_STATUS_FD, .events = 0, .revents = 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
            return true;
    }
    return false;
}

/*
 * Asked once per request by the request loops: the master check (two
 * system calls) runs at most once a second; SIGTERM is seen at once.
 */
bool server_should_exit(void)
{
    static long long checked_ms = -1000;
    if (server_exit_flag)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now - checked_ms < 1000)
        return false;
    checked_ms = now;
    if (server_master_gone()) {
        server_exit_flag = 1;
        return true;
    }
    return false;
}

static void server_sigterm(int sig)
{
    (void)sig;
    server_exit_flag = 1;
}

/* Tell master we are busy or idle. A record is 8 bytes < PIPE_BUF: atomic. */
static void server_report(char status)
{
    struct server_status st;

    if (!server_status_ok)
        return;
    memset(&st, 0, sizeof(st));
    st.pid = msg_pid();
    st.status = status;
    for (;;) {
        ssize_t n = write(SERVER_STATUS_FD, &st, sizeof(st));
        if (n == (ssize_t)sizeof(st))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EPIPE) {
            /* master is gone: finish up and let a new master start fresh */
            server_exit_flag = 1;
            server_status_ok = false;
            return;
        }
        msg_warn("write status to master: %s", n < 0 ? strerror(errno) : "short write");
        return;
    }
}

void server_drop_privileges(void)
{
    if (getuid() != 0 && geteuid() != 0)
        return;
    if (config_bool("sandbox"))
        return;

    const char *owner = config_str("mail_owner");
    errno = 0;
    struct passwd *pw = getpwnam(owner);
    if (pw == NULL)
        msg_fatal("mail_owner %s: unknown user%s%s", owner, errno ? ": " : "",
                  errno ? strerror(errno) : "");
    if (pw->pw_uid == 0 || pw->pw_gid == 0)
        msg_fatal("mail_owner %s must not have uid or gid 0", owner);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    char *name = mystrdup(pw->pw_name);

    if (setgid(gid) < 0)
        msg_fatal("setgid(%ld): %s", (long)gid, strerror(errno));
    if (initgroups(name, gid) < 0)
        msg_fatal("initgroups(%s): %s", name, strerror(errno));
    if (setresuid(uid, uid, uid) < 0)
        msg_fatal("setresuid(%ld): %s", (long)uid, strerror(errno));
    myfree(name);
    /* A drop that can be undone is no drop. */
    if (setuid(0) == 0 || seteuid(0) == 0)
        msg_fatal("privilege drop to %s failed: could regain root", owner);
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
        msg_fatal("privilege drop to %s failed: ids not as expected", owner);
    msg_debug("dropped privileges to %s (uid %ld gid %ld)", owner, (long)uid, (long)gid);
}

static void server_usage(const char *prog)
{
    msg_fatal("usage: %s -c CONFIG_DIR -n SERVICE -t TYPE [-u] [-T] [-v] [-o name=value]... [args]",
              prog);
}

static bool server_fd_valid(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/*
 * The end of a single-connection process. A worker forked from a template
 * leaves with _exit(): exit() would run OpenSSL's and the lookup tables'
 * clean-up handlers, whose frees write to (and so copy) heap pages shared
 * with the template, only for the kernel to discard them a moment later.
 * Nothing is buffered (log lines are written whole) and connections are
 * closed by then. Sanitizer builds keep exit() for the leak check.
 */
static _Noreturn void server_worker_exit(void)
{
    if (server_score_slot >= 0)
        scoreboard_set(server_score, server_score_slot, SCORE_EXITING);
#if defined(__SANITIZE_ADDRESS__)
    exit(0);
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    exit(0);
#endif
#endif
    if (server_template_arg != NULL)
        _exit(0);
    exit(0);
}

/* Busy or idle: on the scoreboard when we have a slot, else on the pipe. */
static void server_set_busy(bool busy)
{
    if (server_score_slot < 0) {
        server_report(busy ? SERVER_STATUS_BUSY : SERVER_STATUS_IDLE);
        return;
    }
    scoreboard_set(server_score, server_score_slot, busy ? SCORE_BUSY | SCORE_SERVED : SCORE_IDLE);
    /* Master starts another process only when none is idle: wake it then. */
    if (busy && !scoreboard_other_idle(server_score, server_score_slot))
        server_report(SERVER_STATUS_BUSY);
}

/*
 * Accept one connection from the listener (non-blocking). false when there
 * is none (a sibling was faster: normal; quiet says the caller only tried)
 * or it failed.
 */
static bool server_accept(struct server_client *client, bool quiet)
{
    memset(client, 0, sizeof(*client));
    client->peer_len = sizeof(client->peer);
    /* Non-blocking already: the services' streams want it so (stream.c). */
    client->fd = accept4(SERVER_LISTEN_FD, (struct sockaddr *)&client->peer, &client->peer_len,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client->fd < 0) {
        /* EAGAIN: none waiting, or a sibling won the race. Others: the peer left early. */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED &&
            errno != EPROTO && !quiet)
            msg_warn("accept: %s", strerror(errno));
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            sleep(1);
        return false;
    }
    sock_addr_text((struct sockaddr *)&client->peer, client->addr, sizeof(client->addr),
                   &client->port);
    client->nonblock_socket = true;
    return true;
}

/* Serve connections one at a time until max_use, max_idle, SIGTERM or master exit. */
static _Noreturn void server_single_loop(const struct server_spec *spec)
{
    long long max_use = config_int("max_use");
    long long max_idle = config_time("max_idle");
    long long used = 0;
    struct stat st;
    bool is_socket;

    if (fstat(SERVER_LISTEN_FD, &st) < 0)
        msg_fatal("fstat listener fd %d: %s", SERVER_LISTEN_FD, strerror(errno));
    is_socket = S_ISSOCK(st.st_mode);
    int fl = fcntl(SERVER_LISTEN_FD, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        (void)fcntl(SERVER_LISTEN_FD, F_SETFL, fl | O_NONBLOCK);

    /*
     * SIGTERM is never blocked here, so blocking calls in service() return
     * EINTR. One that arrives between the flag check and the wait is seen
     * when the wait ends, within a second (its longest timeout): cheaper
     * than two sigprocmask() calls around every connection.
     */

    /*
     * All idle processes of a service wait on the same listener. With poll()
     * every connection would wake all of them and all but one would find
     * nothing to accept; EPOLLEXCLUSIVE wakes one (the "accept lock" of
     * Postfix, without a lock). The status pipe is watched for master's exit.
     */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        msg_fatal("epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN | (is_socket ? EPOLLEXCLUSIVE : 0u), .data.u32 = 0};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, SERVER_LISTEN_FD, &ev) < 0)
        msg_fatal("epoll_ctl listener fd %d: %s", SERVER_LISTEN_FD, strerror(errno));
    if (server_status_ok) {
        struct epoll_event sev = {.events = 0, .data.u32 = 1}; /* EPOLLERR/EPOLLHUP only */
        if (epoll_ctl(ep, EPOLL_CTL_ADD, SERVER_STATUS_FD, &sev) < 0)
            msg_fatal("epoll_ctl status fd: %s", strerror(errno));
    }

    /*
     * Master's exit shows on the status pipe (the epoll set above) and makes
     * the next status write fail; getppid() is only asked when a wait ends
     * without an event, so a busy process makes no extra calls per connection.
     */
    if (server_score != NULL && (server_score_slot = scoreboard_claim(server_score, msg_pid())) < 0)
        msg_debug("scoreboard full: reporting on the status pipe");
    time_t idle_since = time(NULL);
    if (server_should_exit())
        server_worker_exit();
    bool busy = false; /* what master last heard from us */
    while (!server_exit_flag) {
        struct server_client client;
        /*
         * Just done with a connection: one already waiting is served at
         * once, with no idle/busy pair of reports to master and no other
         * process woken for it (master's exit is still looked for, at most
         * once a second). Otherwise tell master we are idle and wait.
         */
        bool have = busy && is_socket && !server_should_exit() && server_accept(&client, true);
        if (!have && busy) {
            server_set_busy(false);
            busy = false;
            idle_since = time(NULL);
        }
        if (!have) {
            long long left = max_idle > 0 ? max_idle - (long long)(time(NULL) - idle_since) : 1;
            if (max_idle > 0 && left <= 0) {
                msg_debug("idle for %llds, exiting", max_idle);
                break;
            }
            /* Wake at least every second to notice reparenting. */
            struct epoll_event got[2];
            int r = epoll_wait(ep, got, 2, left > 1 ? 1000 : (int)left * 1000);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                msg_fatal("epoll_wait: %s", strerror(errno));
            }
            if (r == 0) {
                if (server_should_exit())
                    break;
                continue;
            }
            bool readable = false, master_gone = false;
            for (int k = 0; k < r; k++) {
                if (got[k].data.u32 == 1 && (got[k].events & (EPOLLERR | EPOLLHUP)))
                    master_gone = true;
                else if (got[k].data.u32 == 0)
                    readable = true;
            }
            if (master_gone) {
                msg_debug("master went away, exiting");
                break;
            }
            if (!readable)
                continue;
            if (is_socket) {
                if (!server_accept(&client, false))
                    continue;
            } else {
                /* A fifo served in single mode: hand over a copy of the fifo. */
                memset(&client, 0, sizeof(client));
                client.fd = fcntl(SERVER_LISTEN_FD, F_DUPFD_CLOEXEC, 5);
                if (client.fd < 0)
                    msg_fatal("dup fifo: %s", strerror(errno));
                snprintf(client.addr, sizeof(client.addr), "fifo");
            }
        }
        if (!busy) {
            server_set_busy(true);
            busy = true;
        }
        spec->service(&client);
        used++;
        if (max_use > 0 && used >= max_use) {
            msg_debug("served %lld connections, exiting", used);
            break;
        }
    }
    server_worker_exit();
}

/* One message to master on the template socket; false when master is gone. */
static bool server_template_send(const char *text)
{
    for (;;) {
        ssize_t n = send(SERVER_TEMPLATE_FD, text, strlen(text), MSG_NOSIGNAL);
        if (n >= 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

/*
 * In the worker, just forked: wait until the intermediate process has gone
 * and master (a child subreaper) has adopted us, so that getppid() means
 * master again and master, not the template, reaps us.
 */
static void server_worker_adopted(pid_t middle)
{
    for (int i = 0; i < 2000; i++) {
        pid_t pp = getppid();
        if (pp == server_parent)
            return;
        if (pp != middle)
            break;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    /* Not adopted by master (no subreaper?): nobody would supervise us. */
    msg_warn("worker pid %ld: parent is %ld, not master %ld; exiting", (long)getpid(),
             (long)getppid(), (long)server_parent);
    _exit(1);
}

/*
 * Fork one worker: fork a middle process that forks the worker, reports its
 * pid and exits at once, so the worker is re-parented to master. Returns in
 * the worker only; the template and the middle process never return.
 */
static bool server_template_fork(void)
{
    pid_t middle = fork();
    if (middle < 0) {
        char buf[128];
        snprintf(buf, sizeof(buf), "Ffork: %s", strerror(errno));
        msg_warn("template: %s", buf + 1);
        (void)server_template_send(buf);
        return false;
    }
    if (middle > 0) {
        int status;
        while (waitpid(middle, &status, 0) < 0 && errno == EINTR)
            ;
        return false;
    }
    pid_t me = getpid();
    pid_t worker = fork();
    if (worker == 0) {
        close(SERVER_TEMPLATE_FD);
        if (server_template_arg)
            server_template_arg[1] = 'W'; /* ps tells workers from the template */
        server_worker_adopted(me);
        return true;
    }
    char buf[64];
    if (worker < 0)
        snprintf(buf, sizeof(buf), "Ffork: %s", strerror(errno));
    else
        snprintf(buf, sizeof(buf), "P%ld", (long)worker);
    if (!server_template_send(buf) && worker > 0)
        (void)kill(worker, SIGTERM); /* master cannot know it: do not let it serve */
    _exit(0);
}

/*
 * The template's life: tell master we are ready, then fork a worker for
 * every "S" until master closes the socket, SIGTERM, or master goes away.
 * Returns in a worker (with the caller's signal mask restored).
 */
static void server_template_loop(void)
{
    sigset_t block, orig;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &orig);
    sigset_t waitmask = orig;
    sigdelset(&waitmask, SIGTERM);

    if (!server_template_send("R"))
        exit(0);
    msg_debug("template ready");
    while (!server_should_exit()) {
        struct pollfd p[2] = {{.fd = SERVER_TEMPLATE_FD, .events = POLLIN, .revents = 0},
                              {.fd = SERVER_STATUS_FD, .events = 0, .revents = 0}};
        struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
        int r = ppoll(p, server_status_ok ? 2 : 1, &ts, &waitmask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            msg_fatal("template: poll: %s", strerror(errno));
        }
        if (r == 0)
            continue;
        if (server_status_ok && (p[1].revents & (POLLERR | POLLHUP | POLLNVAL)))
            break;
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char req[16];
        ssize_t n = recv(SERVER_TEMPLATE_FD, req, sizeof(req), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; /* master closed our socket: we are done */
        if (req[0] != 'S') {
            msg_warn("template: unknown request 0x%02x from master", (unsigned char)req[0]);
            continue;
        }
        if (server_template_fork()) {
            sigprocmask(SIG_SETMASK, &orig, NULL);
            return;
        }
    }
    exit(0);
}

_Noreturn void server_main(int argc, char **argv, const struct server_spec *spec)
{
    const char *prog = argv[0] ? strrchr(argv[0], '/') : NULL;
    prog = prog ? prog + 1 : (argv[0] ? argv[0] : "server");
    const char *confdir = NULL;
    const char *type = "";
    bool unpriv = false;
    int verbose = 0;
    char **overrides = mycalloc((size_t)argc + 1, sizeof(char *));
    size_t noverrides = 0;
    char **extra = mycalloc((size_t)argc + 1, sizeof(char *));
    int nextra = 0;

    msg_init(prog);
    server_parent = getppid();

    /*
     * Options may also follow the master.cf arguments (Postfix lets a
     * command line in master.cf carry -o and -v), so scan everything and
     * keep non-options as service arguments. "--" ends option parsing.
     */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                extra[nextra++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == 0 || a[2] != 0) {
            extra[nextra++] = argv[i];
            continue;
        }
        switch (a[1]) {
        case 'c':
        case 'n':
        case 't':
        case 'o':
            if (i + 1 >= argc)
                server_usage(prog);
            if (a[1] == 'c')
                confdir = argv[++i];
            else if (a[1] == 'n')
                server_name = argv[++i];
            else if (a[1] == 't')
                type = argv[++i];
            else
                overrides[noverrides++] = argv[++i];
            break;
        case 'u':
            unpriv = true;
            break;
        case 'T':
            server_template_arg = argv[i];
            break;
        case 'W':
            break; /* how a template's worker shows in ps: nothing to do */
        case 'v':
            verbose++;
            break;
        default:
            server_usage(prog);
        }
    }
    server_extra_args = extra;
    server_extra_count = nextra;
    if (verbose)
        msg_set_verbose(verbose);

    if (confdir)
        config_set_directory(confdir);
    config_load_or_die();
    for (size_t i = 0; i < noverrides; i++) {
        struct strbuf err = STRBUF_INIT;
        const char *eq = strchr(overrides[i], '=');
        if (eq == NULL || eq == overrides[i])
            msg_fatal("bad -o argument \"%s\": expected name=value", overrides[i]);
        char *name = mystrndup(overrides[i], (size_t)(eq - overrides[i]));
        if (config_override(name, eq + 1, &err) < 0)
            msg_fatal("-o %s: %s", overrides[i], strbuf_str(&err));
        myfree(name);
        strbuf_release(&err);
    }
    myfree(overrides);

    const char *logfile = config_str("maillog_file");
    if (logfile && *logfile)
        msg_open_file(logfile);

    /* Signals: SIGTERM asks us to stop (no SA_RESTART: blocking calls return). */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = server_sigterm;
    sa.sa_flags = 0;
    sigaction(SIGTERM, &sa, NULL);

    server_status_ok = server_fd_valid(SERVER_STATUS_FD);
    /* Mapped now, before the daemon's own files could land on fd 6. */
    if ((server_score = scoreboard_attach(SERVER_SCORE_FD)) != NULL)
        close(SERVER_SCORE_FD);
    if (!server_fd_valid(SERVER_LISTEN_FD))
        msg_fatal("no listener on fd %d: %s must be started by master", SERVER_LISTEN_FD, prog);
    msg_debug("service=%s, type=%s, unpriv=%s", server_name, type, unpriv ? "y" : "n");

    if (server_template_arg) {
        if (!server_fd_valid(SERVER_TEMPLATE_FD))
            msg_fatal("-T without a template socket on fd %d", SERVER_TEMPLATE_FD);
        if (spec->mode != SERVER_SINGLE || !spec->template_ok) {
            /* Not for this daemon: master starts its processes directly. */
            (void)server_template_send("N");
            exit(0);
        }
    }
    if (spec->pre_init)
        spec->pre_init();
    if (unpriv)
        server_drop_privileges();
    if (spec->post_init)
        spec->post_init();

    if (server_template_arg)
        server_template_loop(); /* returns in a forked worker */

    if (spec->mode == SERVER_LONG) {
        if (spec->loop == NULL)
            msg_panic("server_main: SERVER_LONG without loop");
        spec->loop(SERVER_LISTEN_FD);
        exit(0);
    }
    if (spec->service == NULL)
        msg_panic("server_main: SERVER_SINGLE without service");
    server_single_loop(spec);
}
