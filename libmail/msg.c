#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int msg_verbose;
static char msg_name[64] = "tegami";
static int msg_fd = -1;
static bool msg_stderr;
static bool msg_syslog_open;
static void (*msg_fatal_hook)(void);

/*
 * Held lines (msg_hold): informational lines for the log file collect here
 * and go out in one write() at msg_flush(), or as soon as a warning or
 * worse is logged, or when the buffer would overflow.
 */
#define MSG_HELD_MAX 8192
static bool msg_holding;
static char msg_held[MSG_HELD_MAX];
static size_t msg_held_len;

static void msg_write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(msg_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere left to report it */
        data += n;
        len -= (size_t)n;
    }
}

void msg_flush(void)
{
    if (msg_held_len > 0 && msg_fd >= 0)
        msg_write_all(msg_held, msg_held_len);
    msg_held_len = 0;
}

void msg_hold(bool on)
{
    static bool registered;
    if (on && !registered) {
        (void)atexit(msg_flush);
        registered = true;
    }
    if (!on)
        msg_flush();
    msg_holding = on;
}

/*
 * getpid() is a real system call (glibc caches nothing), and every log line
 * and several per-message paths want the pid; keep it, and forget it in
 * every child fork() makes.
 */
static pid_t msg_cached_pid;
static pthread_once_t msg_pid_once = PTHREAD_ONCE_INIT;

static void msg_pid_forget(void)
{
    msg_cached_pid = 0;
    msg_held_len = 0; /* the parent's held lines are the parent's to write */
}

static void msg_pid_register(void)
{
    (void)pthread_atfork(NULL, NULL, msg_pid_forget);
}

pid_t msg_pid(void)
{
    if (msg_cached_pid == 0) {
        (void)pthread_once(&msg_pid_once, msg_pid_register);
        msg_cached_pid = getpid();
    }
    return msg_cached_pid;
}

void msg_init(const char *progname)
{
    snprintf(msg_name, sizeof(msg_name), "%s", progname);
}

const char *msg_progname(void)
{
    return msg_name;
}

void msg_open_file(const char *path)
{
    msg_flush();
    if (msg_fd >= 0) {
        close(msg_fd);
        msg_fd = -1;
    }
    if (path == NULL || *path == 0)
        return;
    msg_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (msg_fd < 0) {
        int err = errno;
        msg_set_stderr(true);
        msg_fatal("open log file %s: %s", path, strerror(err));
    }
    /* Keep clear of 3-6, the descriptors master wires up for its children
     * between fork and exec: a log line must never land on a listener. */
    if (msg_fd < 10) {
        int high = fcntl(msg_fd, F_DUPFD_CLOEXEC, 10);
        if (high >= 0) {
            close(msg_fd);
            msg_fd = high;
        }
    }
}

void msg_set_stderr(bool on)
{
    msg_stderr = on;
}

void msg_set_verbose(int level)
{
    msg_verbose = level;
}

void msg_set_fatal_hook(void (*hook)(void))
{
    msg_fatal_hook = hook;
}

static const char *msg_level_prefix(int priority)
{
    switch (priority) {
    case LOG_WARNING:
        return "warning: ";
    case LOG_ERR:
        return "error: ";
    case LOG_CRIT:
        return "fatal: ";
    case LOG_ALERT:
        return "panic: ";
    default:
        return "";
    }
}

void msg_vlog(int priority, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char text[2048];
    va_list aq;

    va_copy(aq, ap);
    vsnprintf(text, sizeof(text), fmt, aq);
    va_end(aq);
    /* Never let a peer's bytes forge log lines or terminal escapes. */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';

    if (msg_fd >= 0) {
        char line[2300];
        char stamp[32];
        static char host[64];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        if (host[0] == 0 && gethostname(host, sizeof(host) - 1) < 0)
            snprintf(host, sizeof(host), "localhost");
        int n = snprintf(line, sizeof(line), "%s %s tegami/%s[%ld]: %s%s\n", stamp, host, msg_name,
                         (long)msg_pid(), msg_level_prefix(priority), text);
        if (n > (int)sizeof(line) - 1) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
        if (msg_holding && priority >= LOG_NOTICE) {
            if (msg_held_len + (size_t)n > sizeof(msg_held))
                msg_flush();
            memcpy(msg_held + msg_held_len, line, (size_t)n);
            msg_held_len += (size_t)n;
        } else {
            msg_flush(); /* in order: what was held comes first */
            msg_write_all(line, (size_t)n);
        }
    } else if (!msg_stderr || priority != LOG_DEBUG) {
        if (!msg_syslog_open) {
            static char ident[80];
            snprintf(ident, sizeof(ident), "tegami/%s", msg_name);
            openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
            msg_syslog_open = true;
        }
        syslog(priority, "%s%s", msg_level_prefix(priority), text);
    }
    if (msg_stderr)
        fprintf(stderr, "%s: %s%s\n", msg_name, msg_level_prefix(priority), text);
    errno = saved_errno;
}

#define MSG_BODY(prio)                                                                             \
    va_list ap;                                                                                    \
    va_start(ap, fmt);                                                                             \
    msg_vlog(prio, fmt, ap);                                                                       \
    va_end(ap)

void msg_debug(const char *fmt, ...)
{
    if (msg_verbose <= 0)
        return;
    MSG_BODY(LOG_DEBUG);
}

void msg_info(const char *fmt, ...)
{
    MSG_BODY(LOG_INFO);
}

void msg_warn(const char *fmt, ...)
{
    MSG_BODY(LOG_WARNING);
}

void msg_error(const char *fmt, ...)
{
    MSG_BODY(LOG_ERR);
}

void msg_fatal(const char *fmt, ...)
{
    static int nesting;
    MSG_BODY(LOG_CRIT);
    if (nesting++ == 0 && msg_fatal_hook)
        msg_fatal_hook();
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    MSG_BODY(LOG_ALERT);
    abort();
}
