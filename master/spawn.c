/*
 * master children: fork/exec, status records, reaping, throttling.
 *
 * Accounting follows Postfix's master: a fresh child counts as idle; then
 * its slot on the service's scoreboard says whether it is (or, without a
 * slot, its last 'B' or 'I' record on the status pipe). When a service has
 * no idle child and is below its process limit, master starts one more. A
 * child that master told to stop no longer counts as idle.
 *
 * Templates (service_templates = yes, services with a process limit other
 * than 1): master starts one template per service with -T and a socket on
 * fd 5, and asks it for workers instead of exec'ing each one. The template
 * forks twice so each worker becomes master's child (master is a child
 * subreaper, see main.c); its "P<pid>" reply registers the worker here,
 * and from then on it is accounted exactly like an exec'ed child. A
 * daemon that does not support it answers "N"; a template that cannot
 * start is throttled like any process; either way the service falls back
 * to fork+exec until the next reload.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"

struct master_child *master_children;
bool master_subreaper;

static struct master_child *master_child_find(pid_t pid)
{
    for (struct master_child *c = master_children; c; c = c->next)
        if (c->pid == pid)
            return c;
    return NULL;
}

/* A worker's state on its service's board (SCORE_FREE when it has no slot yet). */
static uint32_t master_child_score(struct master_child *c)
{
    struct scoreboard *sb = c->svc ? c->svc->score : NULL;
    if (sb == NULL || c->is_template)
        return SCORE_FREE;
    if (c->slot < 0)
        c->slot = scoreboard_find(sb, c->pid);
    uint32_t state = scoreboard_state(sb, c->slot, c->pid);
    if (state & SCORE_SERVED)
        c->served = true;
    return state;
}

int master_service_avail(struct master_service *svc)
{
    int n = 0;
    for (struct master_child *c = master_children; c; c = c->next) {
        if (c->svc != svc || c->is_template || c->stopping)
            continue;
        uint32_t state = master_child_score(c) & SCORE_STATE_MASK;
        /* A worker without a slot yet is as fresh as master started it: idle. */
        if (state == SCORE_FREE ? c->avail : state == SCORE_IDLE)
            n++;
    }
    return n;
}

/* In the child: wire fds 3 to 6, reset signals, exec. Never returns. */
static _Noreturn void master_exec_child(struct master_service *svc, const char *path, int tmpl)
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
    int t = tmpl >= 0 ? fcntl(tmpl, F_DUPFD_CLOEXEC, 10) : -1;
    int b = svc->score_fd >= 0 ? fcntl(svc->score_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (l < 0 || s < 0 || (tmpl >= 0 && t < 0) || (svc->score_fd >= 0 && b < 0) ||
        dup2(l, SERVER_LISTEN_FD) < 0 || dup2(s, SERVER_STATUS_FD) < 0 ||
        (t >= 0 && dup2(t, SERVER_TEMPLATE_FD) < 0) || (b >= 0 && dup2(b, SERVER_SCORE_FD) < 0)) {
        msg_warn("process %s: set up fds: %s", path, strerror(errno));
        _exit(126);
    }
    close(l);
    close(s);
    if (t >= 0)
        close(t);
    if (b >= 0)
        close(b);
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
    if (tmpl >= 0)
        argv[n++] = "-T";
    for (char **o = svc->overrides; *o; o++) {
        argv[n++] = "-o";
        argv[n++] = *o;
    }
    for (char **a = svc->argv + 1; *a; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    execv(path, argv);
    /* Safe to log: master parked fds 0-5 at start, so neither the log file
     * nor syslog's socket was one of the descriptors just replaced. */
    msg_warn("process %s: exec: %s", path, strerror(errno));
    _exit(127);
}

/* A new child record (counted in its service unless it is a template). */
static struct master_child *master_child_add(struct master_service *svc, pid_t pid, char *command,
                                             time_t now, bool is_template)
{
    struct master_child *c = mycalloc(1, sizeof(*c));
    c->pid = pid;
    c->svc = svc;
    c->command = command;
    c->svc_name = mystrdup(svc->name);
    c->started = now;
    c->is_template = is_template;
    c->slot = -1;
    c->next = master_children;
    master_children = c;
    if (!is_template) {
        svc->total++;
        c->avail = true; /* fresh: idle until it says otherwise */
    }
    return c;
}

/* fork+exec the service's command: a worker, or with as_template its template. */
static void master_spawn(struct master_service *svc, time_t now, bool as_template)
{
    struct strbuf path = STRBUF_INIT;
    const char *cmd = svc->argv[0];
    int sv[2] = {-1, -1};

    if (cmd[0] == '/')
        strbuf_puts(&path, cmd);
    else
        strbuf_printf(&path, "%s/%s", config_str("daemon_directory"), cmd);

    if (as_template && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        msg_warn("service %s: template socket: %s; starting processes directly", svc->name,
                 strerror(errno));
        svc->tmpl_refused = true;
        strbuf_release(&path);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        msg_warn("service %s: fork: %s", svc->name, strerror(errno));
        if (throttle_failure(&svc->throttle, now, (int)config_int("service_throttle_limit"),
                             (time_t)config_time("service_throttle_time")))
            svc->throttle_logged = false;
        strbuf_release(&path);
        if (sv[0] >= 0) {
            close(sv[0]);
            close(sv[1]);
        }
        return;
    }
    if (pid == 0)
        master_exec_child(svc, path.data, sv[1]);

    struct master_child *c =
        master_child_add(svc, pid, strbuf_detach(&path, NULL), now, as_template);
    if (as_template) {
        close(sv[1]);
        (void)fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
        svc->tmpl = c;
        svc->tmpl_fd = sv[0];
        svc->tmpl_ready = false;
        svc->tmpl_pending = 0;
        msg_debug("service %s: started template %s pid %ld", svc->name, c->command, (long)pid);
    } else {
        msg_debug("service %s: started process %s pid %ld", svc->name, c->command, (long)pid);
    }
}

/*
 * Workers whose exit master reaped before it read the template's "P" for
 * them (a worker that died at once). Kept briefly so that the late "P"
 * does not register a process that no longer exists.
 */
#define MASTER_EARLY_MAX 64
static struct {
    pid_t pid;
    time_t when;
} master_early[MASTER_EARLY_MAX];

static void master_early_add(pid_t pid, time_t now)
{
    size_t oldest = 0;
    for (size_t i = 0; i < MASTER_EARLY_MAX; i++) {
        if (master_early[i].pid == 0 || now - master_early[i].when > 60) {
            oldest = i;
            break;
        }
        if (master_early[i].when < master_early[oldest].when)
            oldest = i;
    }
    master_early[oldest].pid = pid;
    master_early[oldest].when = now;
}

static bool master_early_take(pid_t pid)
{
    for (size_t i = 0; i < MASTER_EARLY_MAX; i++)
        if (master_early[i].pid == pid) {
            master_early[i].pid = 0;
            return true;
        }
    return false;
}

static bool master_use_template(const struct master_service *svc)
{
    return master_subreaper && config_bool("service_templates") && !svc->tmpl_refused &&
           svc->maxproc != 1 && strcmp(svc->type, "fifo") != 0;
}

/* The worker pid of a template's "P<pid>" packet; false if it is not one. */
static bool template_pid(const char *packet, pid_t *pid_r)
{
    char *end;
    if (packet[0] != 'P')
        return false;
    long pid = strtol(packet + 1, &end, 10);
    if (end == packet + 1 || *end != 0 || pid <= 1 || pid != (pid_t)pid)
        return false;
    *pid_r = (pid_t)pid;
    return true;
}

void master_template_drop(struct master_service *svc)
{
    if (svc->tmpl_fd >= 0) {
        /*
         * A worker the template forked whose "P" is still unread would be
         * nobody's: not stopped now, not counted, serving until max_use. So
         * shut the socket for reading first (the template's next "P" then
         * fails and it stops that worker itself), stop every worker named
         * in what is queued, and only then close.
         */
        (void)shutdown(svc->tmpl_fd, SHUT_RD);
        char buf[64];
        ssize_t n;
        while ((n = recv(svc->tmpl_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
            buf[n] = 0;
            pid_t pid;
            if (template_pid(buf, &pid)) {
                msg_debug("service %s: stopping pid %ld, forked as the template was dropped",
                          svc->name, (long)pid);
                if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
                    msg_warn("kill %ld: %s", (long)pid, strerror(errno));
            }
        }
        close(svc->tmpl_fd); /* the template exits when it sees EOF */
        svc->tmpl_fd = -1;
    }
    if (svc->tmpl) {
        svc->tmpl->stopping = true;
        if (kill(svc->tmpl->pid, SIGTERM) < 0 && errno != ESRCH)
            msg_warn("kill %ld: %s", (long)svc->tmpl->pid, strerror(errno));
        svc->tmpl = NULL;
    }
    svc->tmpl_ready = false;
    svc->tmpl_pending = 0;
}

/* The template failed us: stop it and start processes directly until reload. */
static void master_template_give_up(struct master_service *svc, const char *why)
{
    msg_warn("service %s: template %s; starting its processes directly", svc->name, why);
    master_template_drop(svc);
    svc->tmpl_refused = true;
}

void master_template_read(struct master_service *svc, time_t now)
{
    while (svc->tmpl_fd >= 0) {
        char buf[64];
        ssize_t n = recv(svc->tmpl_fd, buf, sizeof(buf) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            /* The template went away; its exit is reaped separately. */
            close(svc->tmpl_fd);
            svc->tmpl_fd = -1;
            svc->tmpl_ready = false;
            svc->tmpl_pending = 0;
            return;
        }
        buf[n] = 0;
        msg_debug("service %s: template says \"%s\" (%zd bytes)", svc->name, buf, n);
        switch (buf[0]) {
        case 'R':
            svc->tmpl_ready = true;
            break;
        case 'N':
            msg_debug("service %s: %s cannot run as a template; starting its processes directly",
                      svc->name, svc->argv[0]);
            master_template_drop(svc);
            svc->tmpl_refused = true;
            return;
        case 'F':
            if (svc->tmpl_pending > 0)
                svc->tmpl_pending--;
            msg_warn("service %s: template could not start a process: %s", svc->name, buf + 1);
            if (throttle_failure(&svc->throttle, now, (int)config_int("service_throttle_limit"),
                                 (time_t)config_time("service_throttle_time")))
                svc->throttle_logged = false;
            break;
        case 'P': {
            pid_t pid;
            if (svc->tmpl_pending > 0)
                svc->tmpl_pending--;
            if (!template_pid(buf, &pid)) {
                master_template_give_up(svc, "sent a bad process id");
                return;
            }
            if (master_early_take(pid))
                break; /* already gone */
            struct master_child *c = master_child_add(
                svc, pid, mystrdup(svc->tmpl ? svc->tmpl->command : ""), now, false);
            msg_debug("service %s: template forked process pid %ld", svc->name, (long)c->pid);
            break;
        }
        default:
            master_template_give_up(svc, "sent an unknown message");
            return;
        }
    }
}

/* Ask the template for one worker; false when it cannot be asked. */
static bool master_template_request(struct master_service *svc)
{
    for (;;) {
        ssize_t n = send(svc->tmpl_fd, "S", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == 1) {
            svc->tmpl_pending++;
            return true;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return false;
    }
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
        if (svc->tmpl_pending > 0 || master_service_avail(svc) > 0)
            continue;
        if (svc->maxproc > 0 && svc->total + svc->tmpl_pending >= svc->maxproc)
            continue;
        if (master_use_template(svc)) {
            if (svc->tmpl == NULL) {
                master_spawn(svc, now, true);
                if (svc->tmpl != NULL)
                    continue;
            } else if (!svc->tmpl_ready) {
                /* Starting; a template that hangs in its start is replaced. */
                if (now - svc->tmpl->started < MASTER_STARTUP_SECONDS)
                    continue;
                master_template_give_up(svc, "did not become ready");
            } else if (master_template_request(svc)) {
                continue;
            } else {
                master_template_give_up(svc, "does not take requests");
            }
        }
        master_spawn(svc, now, false);
    }
}

bool master_any_throttled(time_t now)
{
    for (struct master_service *svc = master_services; svc; svc = svc->next)
        if (throttle_active(&svc->throttle, now) || svc->throttle_logged ||
            (svc->tmpl != NULL && !svc->tmpl_ready))
            return true; /* a starting template is checked for a hang each second */
    return false;
}

static void master_child_exited(struct master_child *c, int status, time_t now)
{
    struct master_service *svc = c->svc;
    bool abnormal = false;
    bool quiet = false;

    /* Its last state on the board (did it serve?), then its slot is free. */
    if (svc && svc->score && !c->is_template) {
        (void)master_child_score(c);
        scoreboard_release(svc->score, c->slot, c->pid);
    }
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

    if (svc && c->is_template) {
        if (svc->tmpl == c) {
            master_template_read(svc, now); /* what it said before it went: "N", "P" */
            if (svc->tmpl == c) {
                svc->tmpl = NULL;
                master_template_drop(svc); /* closes the socket, forgets requests */
            }
        }
        /* A template that dies before it is ready failed to start. */
        if (abnormal && !c->stopping && !svc->tmpl_refused &&
            now - c->started < MASTER_STARTUP_SECONDS) {
            if (throttle_failure(&svc->throttle, now, (int)config_int("service_throttle_limit"),
                                 (time_t)config_time("service_throttle_time")))
                svc->throttle_logged = false;
        }
    } else if (svc) {
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
        if (c == NULL) {
            /* A worker whose "P" is still unread, or an orphan we adopted. */
            master_early_add(pid, now);
            continue;
        }
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
        c->avail = false;
    } else if (st->status == SERVER_STATUS_IDLE) {
        c->avail = true;
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
        if (c->is_template && c->svc && c->svc->tmpl == c)
            master_template_drop(c->svc);
        c->stopping = true; /* no longer counted as idle */
        if (kill(c->pid, sig) < 0 && errno != ESRCH)
            msg_warn("kill %ld: %s", (long)c->pid, strerror(errno));
    }
}
