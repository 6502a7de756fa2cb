/*
 * master children: fork/exec, status records, reaping, throttling.
 *
 * Accounting follows Postfix's master: a fresh child counts as idle; it
 * reports 'B' when it takes a connection and 'I' when it is done. When a
 * service has no idle child and is below its process limit, master starts
 * one more. A child that master told to stop no longer counts as idle.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"

struct master_child *master_children;

static struct master_child *master_child_find(pid_t pid)
{
    for (struct master_child *c = master_children; c; c = c->next)
        if (c->pid == pid)
            return c;
    return NULL;
}

static void master_child_set_avail(struct master_child *c, bool avail)
{
    if (c->avail == avail)
        return;
    c->avail = avail;
    if (c->svc)
        c->svc->avail += avail ? 1 : -1;
}

/* In the child: wire fds 3 and 4, reset signals, exec. Never returns. */
static _Noreturn void master_exec_child(struct master_service *svc, const char *path)
{
    sigset_t none;
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Move out of the way first so that dup2 never hits its own source. */
    int l = fcntl(svc->listen_fd, F_DUPFD_CLOEXEC, 10);
    int s = fcntl(svc->status_wr, F_DUPFD_CLOEXEC, 10);
    if (l < 0 || s < 0 || dup2(l, SERVER_LISTEN_FD) < 0 || dup2(s, SERVER_STATUS_FD) < 0) {
        msg_warn("process %s: set up fds: %s", path, strerror(errno));
        _exit(126);
    }
    close(l);
    close(s);
    /* Everything else master holds is close-on-exec. */

    size_t n = 0, cap = 10;
    for (char **a = svc->argv; *a; a++)
        cap++;
    for (char **o = svc->overrides; *o; o++)
        cap += 2;
    char **argv = mycalloc(cap, sizeof(char *));
    argv[n++] = (char *)path;
    argv[n++] = "-c";
    argv[n++] = (char *)master_config_dir;
    argv[n++] = "-n";
    argv[n++] = svc->name;
    argv[n++] = "-t";
    argv[n++] = svc->type;
    if (svc->unpriv)
        argv[n++] = "-u";
    for (char **o = svc->overrides; *o; o++) {
        argv[n++] = "-o";
        argv[n++] = *o;
    }
    for (char **a = svc->argv + 1; *a; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    execv(path, argv);
    msg_warn("process %s: exec: %s", path, strerror(errno));
    _exit(127);
}

static void master_spawn(struct master_service *svc, time_t now)
{
    struct strbuf path = STRBUF_INIT;
    const char *cmd = svc->argv[0];

    if (cmd[0] == '/')
        strbuf_puts(&path, cmd);
    else
        strbuf_printf(&path, "%s/%s", config_str("daemon_directory"), cmd);

    pid_t pid = fork();
    if (pid < 0) {
        msg_warn("service %s: fork: %s", svc->name, strerror(errno));
        if (throttle_failure(&svc->throttle, now, (int)config_int("service_throttle_limit"),
                             (time_t)config_time("service_throttle_time")))
            svc->throttle_logged = false;
        strbuf_release(&path);
        return;
    }
    if (pid == 0)
        master_exec_child(svc, path.data);

    struct master_child *c = mycalloc(1, sizeof(*c));
    c->pid = pid;
    c->svc = svc;
    c->command = strbuf_detach(&path, NULL);
    c->svc_name = mystrdup(svc->name);
    c->started = now;
    c->next = master_children;
    master_children = c;
    svc->total++;
    master_child_set_avail(c, true);
    msg_debug("service %s: started process %s pid %ld", svc->name, c->command, (long)pid);
}

void master_spawn_needed(time_t now)
{
    for (struct master_service *svc = master_services; svc; svc = svc->next) {
        if (svc->listen_fd < 0)
            continue;
        if (throttle_active(&svc->throttle, now)) {
            if (!svc->throttle_logged) {
                msg_warn("service %s (%s) throttled: more than %lld abnormal exits within "
                         "%llds, waiting %llds before starting it again",
                         svc->name, svc->argv[0], config_int("service_throttle_limit"),
                         config_time("service_throttle_time"),
                         (long long)throttle_remaining(&svc->throttle, now));
                svc->throttle_logged = true;
            }
            continue;
        }
        if (svc->throttle_logged) {
            msg_info("service %s (%s): throttle ended, starting it again", svc->name, svc->argv[0]);
            svc->throttle_logged = false;
        }
        if (svc->avail > 0)
            continue;
        if (svc->maxproc > 0 && svc->total >= svc->maxproc)
            continue;
        master_spawn(svc, now);
    }
}

bool master_any_throttled(time_t now)
{
    for (struct master_service *svc = master_services; svc; svc = svc->next)
        if (throttle_active(&svc->throttle, now) || svc->throttle_logged)
            return true;
    return false;
}

static void master_child_exited(struct master_child *c, int status, time_t now)
{
    struct master_service *svc = c->svc;
    bool abnormal = false;
    bool quiet = false;

    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        abnormal = true;
        /* A child we told to stop may die of that very signal. */
        if (c->stopping && (sig == SIGTERM || sig == SIGKILL))
            abnormal = false;
        if (abnormal)
            msg_warn("process %s pid %ld killed by signal %d", c->command, (long)c->pid, sig);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        abnormal = true;
        msg_warn("process %s pid %ld exit status %d", c->command, (long)c->pid,
                 WEXITSTATUS(status));
    } else if (!c->served && !c->stopping && now - c->started < 1) {
        /* A clean exit before doing any work, at once: don't let it spin. */
        abnormal = true;
        quiet = true;
    }

    if (svc) {
        master_child_set_avail(c, false);
        svc->total--;
        /*
         * Only a process that dies before doing any work counts towards the
         * throttle (a daemon that cannot start). One killed while it was
         * serving, e.g. kill -9 of a busy local, is simply replaced at once.
         */
        bool startup_failure = !c->served && now - c->started < MASTER_STARTUP_SECONDS;
        if (abnormal && !c->stopping && startup_failure) {
            if (throttle_failure(&svc->throttle, now, (int)config_int("service_throttle_limit"),
                                 (time_t)config_time("service_throttle_time")))
                svc->throttle_logged = false; /* master_spawn_needed logs it */
        }
    }
    (void)quiet;
}

bool master_reap(void)
{
    bool any = false;
    int status;
    pid_t pid;
    time_t now = time(NULL);

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct master_child **pp, *c = NULL;
        for (pp = &master_children; *pp; pp = &(*pp)->next)
            if ((*pp)->pid == pid) {
                c = *pp;
                *pp = c->next;
                break;
            }
        if (c == NULL)
            continue; /* not ours (e.g. a daemonizing leftover) */
        any = true;
        master_child_exited(c, status, now);
        myfree(c->command);
        myfree(c->svc_name);
        myfree(c);
    }
    return any;
}

static void master_status_record(struct master_service *svc, const struct server_status *st)
{
    struct master_child *c = master_child_find(st->pid);
    if (c == NULL || c->svc != svc)
        return; /* already reaped, or not this service's: ignore */
    if (c->stopping)
        return;
    if (st->status == SERVER_STATUS_BUSY) {
        c->served = true;
        master_child_set_avail(c, false);
    } else if (st->status == SERVER_STATUS_IDLE) {
        master_child_set_avail(c, true);
    } else {
        msg_warn("service %s: pid %ld sent unknown status 0x%02x", svc->name, (long)st->pid,
                 (unsigned char)st->status);
    }
}

void master_status_read(struct master_service *svc)
{
    char buf[sizeof(struct server_status) * 64];

    for (;;) {
        ssize_t n = read(svc->status_rd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (ssize_t i = 0; i < n; i++) {
            svc->statbuf[svc->statlen++] = buf[i];
            if (svc->statlen == sizeof(struct server_status)) {
                struct server_status st;
                memcpy(&st, svc->statbuf, sizeof(st));
                svc->statlen = 0;
                master_status_record(svc, &st);
            }
        }
        if ((size_t)n < sizeof(buf))
            return;
    }
}

void master_stop_children(struct master_service *svc, int sig)
{
    for (struct master_child *c = master_children; c; c = c->next) {
        if (svc != NULL && c->svc != svc)
            continue;
        master_child_set_avail(c, false);
        c->stopping = true;
        if (kill(c->pid, sig) < 0 && errno != ESRCH)
            msg_warn("kill %ld: %s", (long)c->pid, strerror(errno));
    }
}
