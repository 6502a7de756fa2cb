/*
 * master - the supervisor: owns every listener, starts and restarts daemons.
 *
 *   master [-c DIR] [-f] [-t] [-v]
 *     -f  stay in the foreground   -t  check the configuration and exit
 *
 * Start: load main.cf and master.cf, make the queue directories, take the
 * pid-file lock (one master per queue), open every listener, daemonize,
 * then supervise. Signals: SIGHUP reloads, SIGTERM/SIGINT stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dirsync.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "queue_pool.h"
#include "strbuf.h"

const char *master_config_dir;

static volatile sig_atomic_t master_got_hup;
static volatile sig_atomic_t master_got_term;
static int master_sigpipe[2] = {-1, -1};
static int master_pid_fd = -1;
static char *master_pid_path;
static pid_t master_pid;
static int master_control_fd = -1;
static char *master_control_path;

static void master_usage(void)
{
    fprintf(stderr, "usage: master [-c CONFIG_DIR] [-f] [-t] [-v]\n");
    exit(2);
}

static void master_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        master_got_hup = 1;
    else if (sig == SIGTERM || sig == SIGINT)
        master_got_term = sig;
    if (master_sigpipe[1] >= 0) {
        char c = 0;
        if (write(master_sigpipe[1], &c, 1) < 0) {
            /* the pipe is full: the loop wakes up anyway */
        }
    }
    errno = saved;
}

static void master_fatal_hook(void)
{
    /* Only the master itself, never a child between fork and exec. */
    if (getpid() == master_pid && master_pid_path)
        unlink(master_pid_path);
}

/* Close every inherited fd above stderr, then pin fds 3 to 6 so that no fd
 * of ours ever lands where children expect the listener, status pipe,
 * template socket and scoreboard. */
static void master_clean_fds(void)
{
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 1024); fd++)
            close((int)fd);
    }
    for (int fd = 0; fd <= SERVER_SCORE_FD; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n < 0)
            msg_fatal("open /dev/null: %s", strerror(errno));
        if (n >= 3)
            (void)fcntl(n, F_SETFD, FD_CLOEXEC);
    }
}

static void master_log_warnings(struct strbuf *errors)
{
    char *s = errors->data;
    while (s && *s) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = 0;
        if (*s)
            msg_warn("%s", s);
        if (!nl)
            break;
        s = nl + 1;
    }
    strbuf_reset(errors);
}

/*
 * One master per queue: an exclusive flock on pid/master.pid held for our
 * lifetime (it survives the daemonizing fork: the lock belongs to the open
 * file, which the child inherits).
 */
static void master_lock_pid_file(void)
{
    struct strbuf path = STRBUF_INIT;
    strbuf_printf(&path, "%s/pid/master.pid", config_str("queue_directory"));
    for (int attempt = 0; attempt < 5; attempt++) {
        int fd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            msg_fatal("open %s: %s", path.data, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            char buf[32] = "";
            int err = errno;
            ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
            buf[n > 0 ? n : 0] = 0;
            buf[strcspn(buf, "\n")] = 0;
            if (err == EWOULDBLOCK || err == EAGAIN)
                msg_fatal("the master is already running (pid %s, lock on %s)", *buf ? buf : "?",
                          path.data);
            msg_fatal("lock %s: %s", path.data, strerror(err));
        }
        /* The old master may have unlinked the file between our open and lock. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path.data, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            master_pid_fd = fd;
            master_pid_path = strbuf_detach(&path, NULL);
            return;
        }
        close(fd);
    }
    msg_fatal("cannot lock %s: it keeps changing", path.data);
}

static void master_write_pid_file(void)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(master_pid_fd, 0) < 0 || pwrite(master_pid_fd, buf, (size_t)n, 0) != n)
        msg_fatal("write %s: %s", master_pid_path, strerror(errno));
}

static void master_daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        msg_fatal("fork: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        msg_fatal("setsid: %s", strerror(errno));
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        msg_fatal("open /dev/null: %s", strerror(errno));
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

/* Queue directories exist and, when we are root outside a sandbox, belong to mail_owner. */
static void master_prepare_queue(void)
{
    struct strbuf err = STRBUF_INIT;
    const char *qdir = config_str("queue_directory");
    bool sandbox = config_bool("sandbox");

    if (queue_make_dirs(qdir, sandbox, &err) < 0)
        msg_fatal("queue directory %s: %s", qdir, strbuf_str(&err));
    strbuf_release(&err);
    if (geteuid() == 0 && !sandbox) {
        static const char *const owned[] = {"maildrop", "incoming", "active",  "deferred",
                                            "hold",     "corrupt",  "private", "public"};
        struct strbuf p = STRBUF_INIT;
        for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
            strbuf_reset(&p);
            strbuf_printf(&p, "%s/%s", qdir, owned[i]);
            master_chown_owner(p.data);
        }
        strbuf_release(&p);
    }
    /* Before any smtpd can take a pool file: none may also be a queued message. */
    (void)queue_pool_recover();
    /* The shared map of directory fsyncs (libmail/dirsync.c): pid/ is not mail_owner's. */
    struct strbuf ds = STRBUF_INIT;
    strbuf_printf(&ds, "%s/pid/dirsync", qdir);
    if (dirsync_create(qdir) < 0)
        msg_warn("create %s: %s (directory fsyncs are not shared)", ds.data, strerror(errno));
    else if (geteuid() == 0 && !sandbox)
        master_chown_owner(ds.data);
    strbuf_release(&ds);
}

static void master_open_log(void)
{
    const char *logfile = config_str("maillog_file");
    msg_open_file(logfile && *logfile ? logfile : NULL);
}

static void master_reload(void)
{
    struct strbuf errors = STRBUF_INIT;
    struct master_service *fresh = NULL;

    msg_info("reload -- configuration %s", master_config_dir);
    /*
     * The config module has one global state, and a failed load leaves it
     * half-empty (a default queue_directory would be a disaster). So try the
     * new files in a throw-away child first and apply them only if it liked them.
     */
    pid_t pid = fork();
    if (pid == 0) {
        struct master_service *probe = NULL;
        master_pid = -1; /* never run the fatal hook here */
        config_reset();
        int rc = config_load(&errors) < 0 || master_services_read(&probe, &errors) < 0;
        if (rc)
            master_log_warnings(&errors);
        _exit(rc);
    }
    if (pid > 0) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            msg_warn("reload failed: configuration has errors; keeping the running services");
            strbuf_release(&errors);
            return;
        }
    }
    config_reset();
    if (config_load(&errors) < 0) {
        master_log_warnings(&errors);
        msg_warn("reload failed: main.cf has errors; keeping the running services");
        strbuf_release(&errors);
        return;
    }
    master_log_warnings(&errors);
    master_open_log();
    if (master_services_read(&fresh, &errors) < 0) {
        master_log_warnings(&errors);
        msg_warn("reload failed: master.cf has errors; keeping the running services");
        strbuf_release(&errors);
        return;
    }
    master_log_warnings(&errors);
    strbuf_release(&errors);
    /* Every running process stops after its current client and a fresh one,
     * reading the new configuration, takes over. */
    master_stop_children(NULL, SIGTERM);
    master_services_reconcile(fresh);
}

static _Noreturn void master_stop(int sig)
{
    long long timeout = config_time("master_stop_timeout");
    time_t deadline = time(NULL) + (time_t)timeout;

    msg_info("terminating on signal %d", sig);
    for (struct master_service *svc = master_services; svc; svc = svc->next)
        if (svc->listen_fd >= 0) {
            close(svc->listen_fd);
            svc->listen_fd = -1;
        }
    if (master_control_fd >= 0) {
        close(master_control_fd);
        master_control_fd = -1;
        unlink(master_control_path);
    }
    master_stop_children(NULL, SIGTERM);
    while (master_children && time(NULL) < deadline) {
        struct pollfd p = {.fd = master_sigpipe[0], .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 200) > 0) {
            char buf[64];
            while (read(master_sigpipe[0], buf, sizeof(buf)) > 0)
                ;
        }
        master_reap();
    }
    if (master_children) {
        int n = 0;
        for (struct master_child *c = master_children; c; c = c->next, n++)
            (void)kill(c->pid, SIGKILL);
        msg_warn("%d process(es) still running after %llds: killed", n, timeout);
        while (master_children) {
            int status;
            pid_t pid = waitpid(-1, &status, 0);
            if (pid < 0 && errno == EINTR)
                continue;
            if (pid < 0)
                break;
            /* let master_reap do the bookkeeping on the next call */
            for (struct master_child **pp = &master_children; *pp; pp = &(*pp)->next)
                if ((*pp)->pid == pid) {
                    struct master_child *c = *pp;
                    *pp = c->next;
                    myfree(c->command);
                    myfree(c->svc_name);
                    myfree(c);
                    break;
                }
        }
    }
    master_service_free_list(&master_services);
    unlink(master_pid_path);
    msg_info("stopped");
    exit(0);
}

static void master_install_signals(void)
{
    struct sigaction sa;

    if (pipe2(master_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
        msg_fatal("pipe: %s", strerror(errno));
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = master_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
}

static _Noreturn void master_loop(void)
{
    struct pollfd *p = NULL;
    size_t cap = 0;

    for (;;) {
        if (master_got_term)
            master_stop(master_got_term);
        if (master_got_hup) {
            master_got_hup = 0;
            master_reload();
        }
        master_reap();
        time_t now = time(NULL);
        master_spawn_needed(now);

        size_t n = 0, nsvc = 0;
        for (struct master_service *svc = master_services; svc; svc = svc->next)
            nsvc++;
        if (cap < 2 * nsvc + 2) {
            cap = 2 * nsvc + 2;
            p = myreallocarray(p, cap, sizeof(*p));
        }
        p[n++] = (struct pollfd){.fd = master_sigpipe[0], .events = POLLIN, .revents = 0};
        p[n++] = (struct pollfd){.fd = master_control_fd, .events = POLLIN, .revents = 0};
        for (struct master_service *svc = master_services; svc; svc = svc->next)
            p[n++] = (struct pollfd){.fd = svc->status_rd, .events = POLLIN, .revents = 0};
        /* Template sockets (fd -1 is ignored by poll). */
        for (struct master_service *svc = master_services; svc; svc = svc->next)
            p[n++] = (struct pollfd){.fd = svc->tmpl_fd, .events = POLLIN, .revents = 0};

        int timeout = master_any_throttled(now) ? 1000 : -1;
        int r = poll(p, n, timeout);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            msg_fatal("poll: %s", strerror(errno));
        }
        if (p[0].revents) {
            char buf[64];
            while (read(master_sigpipe[0], buf, sizeof(buf)) > 0)
                ;
        }
        /*
         * Templates first (a worker is registered before its first status
         * record is read), then status: the counts must be current before
         * anyone asks for them.
         */
        size_t i = 2 + nsvc;
        for (struct master_service *svc = master_services; svc; svc = svc->next, i++)
            if (p[i].revents && svc->tmpl_fd >= 0)
                master_template_read(svc, time(NULL));
        i = 2;
        for (struct master_service *svc = master_services; svc; svc = svc->next, i++)
            if (p[i].revents & (POLLIN | POLLHUP))
                master_status_read(svc);
        if (p[1].revents & POLLIN)
            master_control_accept(master_control_fd);
    }
}

int main(int argc, char **argv)
{
    bool foreground = false, test_only = false;
    int verbose = 0;
    const char *confdir = NULL;
    int ch;

    master_clean_fds();
    master_pid = getpid();
    msg_init("master");
    msg_set_stderr(true);
    msg_set_fatal_hook(master_fatal_hook);

    while ((ch = getopt(argc, argv, "c:ftv")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 't':
            test_only = true;
            break;
        case 'v':
            verbose++;
            break;
        default:
            master_usage();
        }
    }
    if (optind != argc)
        master_usage();
    if (verbose)
        msg_set_verbose(verbose);

    /* Children get -c with an absolute path: they must not depend on our cwd. */
    char *abs = realpath(confdir ? confdir : config_directory(), NULL);
    if (abs == NULL)
        msg_fatal("config directory %s: %s", confdir ? confdir : config_directory(),
                  strerror(errno));
    config_set_directory(abs);
    master_config_dir = abs;

    if (test_only) {
        struct strbuf errors = STRBUF_INIT;
        struct master_service *list = NULL;
        int rc = config_load(&errors);
        if (rc == 0 && config_check(&errors) < 0)
            rc = -1;
        if (rc == 0 && master_services_read(&list, &errors) < 0)
            rc = -1;
        if (errors.len)
            fprintf(stderr, "%s%s", errors.data, errors.data[errors.len - 1] == '\n' ? "" : "\n");
        master_service_free_list(&list);
        if (rc == 0)
            printf("master: configuration %s: ok\n", abs);
        exit(rc == 0 ? 0 : 1);
    }

    config_load_or_die();
    master_open_log();

    struct strbuf errors = STRBUF_INIT;
    if (master_services_read(&master_services, &errors) < 0) {
        while (errors.len && errors.data[errors.len - 1] == '\n')
            strbuf_truncate(&errors, errors.len - 1);
        msg_fatal("%s", errors.data);
    }
    master_log_warnings(&errors);

    master_prepare_queue();
    master_lock_pid_file();

    /* Listeners before we detach: when `master` returns, every port accepts. */
    for (struct master_service *svc = master_services; svc; svc = svc->next) {
        strbuf_reset(&errors);
        if (master_service_open(svc, &errors) < 0)
            msg_fatal("service %s/%s: cannot listen on %s: %s", svc->name, svc->type, svc->listen,
                      errors.data);
    }
    strbuf_reset(&errors);
    strbuf_printf(&errors, "%s/public/master", config_str("queue_directory"));
    master_control_path = strbuf_detach(&errors, NULL);
    master_control_fd = master_control_open(master_control_path, &errors);
    if (master_control_fd < 0)
        msg_fatal("control socket %s: %s", master_control_path, errors.data);
    strbuf_release(&errors);

    if (!foreground)
        master_daemonize();
    master_pid = getpid();
    master_write_pid_file();
    if (!foreground || !isatty(2))
        msg_set_stderr(false);
    master_install_signals();
    /*
     * Workers forked by a service's template (service_templates) are its
     * grandchildren; as a child subreaper master adopts them when the
     * intermediate process exits, and reaps and supervises them itself.
     */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) == 0)
        master_subreaper = true;
    else
        msg_warn("prctl(PR_SET_CHILD_SUBREAPER): %s; service templates are off", strerror(errno));
    msg_info("daemon started -- configuration %s", master_config_dir);
    master_loop();
}
