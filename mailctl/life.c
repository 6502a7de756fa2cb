/*
 * mailctl start / stop / status / reload / check / flush.
 *
 * start runs $daemon_directory/master (which daemonizes once its listeners
 * are open) and returns when every inet listener accepts a TCP connection
 * and the pid file names a live master. stop sends SIGTERM and waits until
 * the master (which waits for its children) is gone. status asks master
 * over its control socket public/master (docs/protocols.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "dict.h"
#include "mailctl.h"
#include "mymalloc.h"
#include "queue.h"
#include "recipient.h"
#include "sock.h"
#include "stream.h"

extern char **environ;

#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 30000
#define STATUS_MAX_RECORDS 10000
#define STATUS_MAX_RECORD 65536

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void no_args(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "mailctl: %s: unexpected argument \"%s\"\n", argv[0], argv[1]);
        mailctl_usage();
    }
}

/*
 * The pid of the running master, or 0. The pid file can outlive a master
 * killed with -9, so the pid must be alive and be a process named master.
 */
static pid_t master_running(void)
{
    struct strbuf path = STRBUF_INIT;
    char buf[64];
    ssize_t n;
    long pid;
    char *end;
    int fd;

    strbuf_printf(&path, "%s/pid/master.pid", config_str("queue_directory"));
    fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    strbuf_release(&path);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    pid = strtol(buf, &end, 10);
    if (end == buf || pid <= 1 || (*end && *end != '\n'))
        return 0;
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return 0;
    snprintf(buf, sizeof(buf), "/proc/%ld/comm", pid);
    fd = open(buf, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
            buf[n] = 0;
            buf[strcspn(buf, "\n")] = 0;
            if (strcmp(buf, "master") != 0)
                return 0;
        }
    }
    return (pid_t)pid;
}

static void print_log_tail(void)
{
    const char *log = config_str("maillog_file");
    struct strbuf text = STRBUF_INIT;
    char buf[8192];
    ssize_t n;
    off_t size;
    int fd, lines = 0;
    size_t start;

    if (*log == 0) {
        fprintf(stderr, "mailctl: see the system log (facility mail) for details\n");
        return;
    }
    fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mailctl: no log at %s\n", log);
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size > 16384)
        (void)lseek(fd, size - 16384, SEEK_SET);
    else
        (void)lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        strbuf_append(&text, buf, (size_t)n);
    close(fd);
    start = text.len;
    while (start > 0) {
        if (text.data[start - 1] == '\n' && start != text.len && ++lines > 20)
            break;
        start--;
    }
    fprintf(stderr, "mailctl: last lines of %s:\n%s", log, text.data ? text.data + start : "");
    strbuf_release(&text);
}

/* host and port to probe for an inet service spec. */
static int probe_target(const char *spec, char *host, size_t hostlen, int *port_r)
{
    const char *port = spec;
    size_t hl = 0;
    const char *h = "";

    if (*spec == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close[1] != ':')
            return -1;
        h = spec + 1;
        hl = (size_t)(close - spec - 1);
        port = close + 2;
    } else if (strrchr(spec, ':')) {
        port = strrchr(spec, ':') + 1;
        h = spec;
        hl = (size_t)(port - 1 - spec);
    }
    if (hl >= hostlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (hl == 0 || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, hostlen, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, hostlen, "::1");
    if (*port >= '0' && *port <= '9') {
        *port_r = atoi(port);
    } else {
        struct servent *se = getservbyname(port, "tcp");

        if (se == NULL)
            return -1;
        *port_r = ntohs((uint16_t)se->s_port);
    }
    return 0;
}

int mailctl_start(int argc, char **argv)
{
    struct strbuf err = STRBUF_INIT, prog = STRBUF_INIT;
    struct master_entry *ents = NULL;
    size_t nents = 0;
    pid_t pid, running;
    int status;
    long long deadline;
    bool *ready = NULL;
    int rc = MAILCTL_ERROR;

    no_args(argc, argv);
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    strbuf_reset(&err);
    if (master_cf_load(&ents, &nents, &err) < 0) {
        mailctl_print_lines(err.data);
        strbuf_release(&err);
        return MAILCTL_ERROR;
    }
    if ((running = master_running()) > 0) {
        fprintf(stderr, "mailctl: the master is already running (pid %ld)\n", (long)running);
        goto out;
    }
    strbuf_printf(&prog, "%s/master", config_str("daemon_directory"));
    if (access(prog.data, X_OK) < 0) {
        fprintf(stderr, "mailctl: %s: %s\n", prog.data, strerror(errno));
        goto out;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mailctl: fork: %s\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        char *args[] = {prog.data, "-c", (char *)config_directory(), NULL};

        execve(prog.data, args, environ);
        fprintf(stderr, "mailctl: exec %s: %s\n", prog.data, strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "mailctl: master failed to start\n");
        print_log_tail();
        goto out;
    }
    /* Wait until every inet listener accepts and the pid file names a live master. */
    ready = mycalloc(nents ? nents : 1, sizeof(*ready));
    deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        bool all = true;
        const char *pending = NULL;

        for (size_t i = 0; i < nents; i++) {
            char host[256];
            int port, fd;

            if (ready[i] || strcmp(ents[i].type, "inet") != 0)
                continue;
            if (probe_target(ents[i].service, host, sizeof(host), &port) < 0) {
                ready[i] = true; /* cannot probe a service name we cannot resolve */
                continue;
            }
            strbuf_reset(&err);
            fd = sock_inet_connect(host, port, 500, &err);
            if (fd >= 0) {
                close(fd);
                ready[i] = true;
            } else {
                all = false;
                pending = ents[i].service;
            }
        }
        running = master_running();
        if (all && running > 0) {
            printf("mailctl: tegami started (master pid %ld)\n", (long)running);
            rc = MAILCTL_OK;
            break;
        }
        if (now_ms() > deadline) {
            if (pending)
                fprintf(stderr, "mailctl: %s does not accept connections after %d s: %s\n", pending,
                        START_TIMEOUT_MS / 1000, err.data);
            else
                fprintf(stderr, "mailctl: the master is not running after %d s\n",
                        START_TIMEOUT_MS / 1000);
            print_log_tail();
            break;
        }
        sleep_ms(100);
    }
out:
    myfree(ready);
    master_cf_free(&ents, nents);
    strbuf_release(&err);
    strbuf_release(&prog);
    return rc;
}

int mailctl_stop(int argc, char **argv)
{
    pid_t pid;
    long long deadline;

    no_args(argc, argv);
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    if ((pid = master_running()) == 0) {
        fprintf(stderr, "mailctl: the master is not running\n");
        return MAILCTL_OK;
    }
    if (kill(pid, SIGTERM) < 0) {
        fprintf(stderr, "mailctl: kill %ld: %s\n", (long)pid, strerror(errno));
        return MAILCTL_ERROR;
    }
    deadline = now_ms() + STOP_TIMEOUT_MS;
    while (kill(pid, 0) == 0 || errno != ESRCH) {
        if (now_ms() > deadline) {
            fprintf(stderr, "mailctl: master (pid %ld) did not stop within %d s\n", (long)pid,
                    STOP_TIMEOUT_MS / 1000);
            return MAILCTL_ERROR;
        }
        sleep_ms(50);
    }
    printf("mailctl: tegami stopped\n");
    return MAILCTL_OK;
}

int mailctl_reload(int argc, char **argv)
{
    pid_t pid;

    no_args(argc, argv);
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    if ((pid = master_running()) == 0) {
        fprintf(stderr, "mailctl: the master is not running\n");
        return MAILCTL_ERROR;
    }
    if (kill(pid, SIGHUP) < 0) {
        fprintf(stderr, "mailctl: kill %ld: %s\n", (long)pid, strerror(errno));
        return MAILCTL_ERROR;
    }
    printf("mailctl: reload requested (master pid %ld)\n", (long)pid);
    return MAILCTL_OK;
}

int mailctl_flush(int argc, char **argv)
{
    no_args(argc, argv);
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    queue_notify("qmgr", "F\n");
    return MAILCTL_OK;
}

/* Files (not starting with '.') in a queue directory, or -1. */
static long count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void print_queue_sizes(void)
{
    struct strbuf path = STRBUF_INIT;

    printf("queue");
    for (int d = 0; d < QUEUE_DIR_COUNT; d++) {
        long n;

        strbuf_reset(&path);
        strbuf_printf(&path, "%s/%s", queue_root(), queue_dir_name((enum queue_dir)d));
        n = count_dir(path.data);
        if (n < 0)
            printf(" %s=?", queue_dir_name((enum queue_dir)d));
        else
            printf(" %s=%ld", queue_dir_name((enum queue_dir)d), n);
    }
    printf("\n");
    strbuf_release(&path);
}

int mailctl_status(int argc, char **argv)
{
    struct strbuf err = STRBUF_INIT, path = STRBUF_INIT;
    struct attr_list req = ATTR_LIST_INIT, rep = ATTR_LIST_INIT;
    struct stream *s;
    int fd, rc = MAILCTL_ERROR;
    pid_t pid;

    no_args(argc, argv);
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    strbuf_printf(&path, "%s/public/master", config_str("queue_directory"));
    pid = master_running();
    fd = sock_unix_connect(path.data, 2000, &err);
    if (fd < 0) {
        printf("master: not running\n");
        print_queue_sizes();
        strbuf_release(&err);
        strbuf_release(&path);
        return MAILCTL_NOT_RUNNING;
    }
    s = stream_fdopen(fd);
    stream_set_timeout(s, (int)config_time("ipc_timeout") * 1000);
    attr_list_add_str(&req, "request", "status");
    if (attr_write(s, &req) < 0) {
        fprintf(stderr, "mailctl: %s: write failed\n", path.data);
        goto out;
    }
    if (pid > 0)
        printf("master: running (pid %ld)\n", (long)pid);
    else
        printf("master: running\n");
    for (int i = 0; i < STATUS_MAX_RECORDS; i++) {
        const char *why = NULL;
        const char *v;
        int r = attr_read(s, STATUS_MAX_RECORD, &rep, &why);

        if (r != 0) {
            fprintf(stderr, "mailctl: %s: %s\n", path.data,
                    r > 0 ? (why ? why : "malformed reply") : "connection lost");
            goto out;
        }
        if (attr_list_get(&rep, "end")) {
            if ((v = attr_list_get(&rep, "error")) != NULL) {
                fprintf(stderr, "mailctl: master: %s\n", v);
                goto out;
            }
            break;
        }
        {
            const char *pids = attr_list_get(&rep, "pids");
            const char *throttled = attr_list_get(&rep, "throttled");
            const char *tmpl = attr_list_get(&rep, "template");
            char *list = mystrdup(pids ? pids : "");

            for (char *p = list; *p; p++)
                if (*p == ' ')
                    *p = ',';
#define A(n) (attr_list_get(&rep, n) ? attr_list_get(&rep, n) : "-")
            printf("%-22s %-5s %-8s procs=%s busy=%s maxproc=%s pids=%s%s%s%s%s\n", A("service"),
                   A("type"), A("command"), A("procs"), A("busy"), A("maxproc"), list,
                   tmpl ? " template=" : "", tmpl ? tmpl : "", throttled ? " throttled=" : "",
                   throttled ? throttled : "");
#undef A
            myfree(list);
        }
    }
    print_queue_sizes();
    rc = MAILCTL_OK;
out:
    stream_free(&s);
    attr_list_release(&req);
    attr_list_release(&rep);
    strbuf_release(&err);
    strbuf_release(&path);
    return rc;
}

/* ---------------------------------------------------------------- check */

struct check_state {
    int errors;
    int warnings;
};

static void check_report(struct check_state *cs, const char *text)
{
    const char *s = text;

    while (s && *s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);

        if (n) {
            bool warn = memmem(s, n, ": warning: ", 11) != NULL;

            printf("%s%.*s\n", warn ? "" : "error: ", (int)n, s);
            if (warn)
                cs->warnings++;
            else
                cs->errors++;
        }
        if (!nl)
            break;
        s = nl + 1;
    }
}

static void check_error(struct check_state *cs, const char *fmt, ...) MSG_PRINTF(2, 3);

static void check_error(struct check_state *cs, const char *fmt, ...)
{
    va_list ap;

    printf("error: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    cs->errors++;
}

static void check_tables(struct check_state *cs, const char *param)
{
    size_t n;
    char **list = config_list(param, &n);

    for (size_t i = 0; i < n; i++) {
        struct strbuf err = STRBUF_INIT;
        struct dict *d;
        const char *colon = strchr(list[i], ':');

        strbuf_reset(&err);
        d = dict_open(list[i], &err);
        if (d == NULL) {
            check_error(cs, "%s: %s: %s", param, list[i], err.data);
        } else {
            dict_close(&d);
            /* A source edited after the last build is a common mistake. */
            if (colon &&
                (strncmp(list[i], "hash:", 5) == 0 || strncmp(list[i], "btree:", 6) == 0)) {
                struct stat src, db;
                struct strbuf dbpath = STRBUF_INIT;

                strbuf_printf(&dbpath, "%s.db", colon + 1);
                if (stat(colon + 1, &src) == 0 && stat(dbpath.data, &db) == 0 &&
                    src.st_mtime > db.st_mtime) {
                    printf("%s: warning: %s is newer than %s; rebuild it (%s)\n", param, colon + 1,
                           dbpath.data,
                           strcmp(param, "virtual_user_maps") == 0 ? "mailctl user ..."
                           : strcmp(param, "alias_maps") == 0      ? "mailctl newaliases"
                                                                   : "mailctl map build");
                    cs->warnings++;
                }
                strbuf_release(&dbpath);
            }
        }
        strbuf_release(&err);
    }
    config_list_free(&list);
}

/*
 * smtpd accepts postmaster at every local domain without a lookup (RFC 5321
 * §4.5.1), so mail to it bounces at delivery unless it resolves: say so.
 */
static void check_postmaster(struct check_state *cs)
{
    struct strbuf err = STRBUF_INIT;
    int r = recipient_user_exists("postmaster", &err);

    if (r < 0) {
        check_error(cs, "postmaster: cannot look it up: %s", err.data);
    } else if (r == 0) {
        printf("alias_maps: warning: postmaster is neither an alias nor a user, so mail to "
               "postmaster bounces; add an alias \"postmaster: NAME\" and run mailctl "
               "newaliases\n");
        cs->warnings++;
    }
    strbuf_release(&err);
}

int mailctl_check(int argc, char **argv)
{
    struct check_state cs = {0, 0};
    struct strbuf err = STRBUF_INIT, path = STRBUF_INIT;
    struct master_entry *ents = NULL;
    size_t nents = 0;
    static const char *const qdirs[] = {"maildrop", "incoming", "active", "deferred", "hold",
                                        "corrupt",  "private",  "public", "pid"};
    struct sock_networks *nets;

    no_args(argc, argv);
    strbuf_reset(&err);
    if (config_load(&err) < 0 ||
        (check_report(&cs, err.data), strbuf_reset(&err), config_check(&err) < 0)) {
        /*
         * main.cf is broken: its values cannot be trusted (a getter would die
         * on them), so check master.cf's syntax with the defaults and stop.
         */
        check_report(&cs, err.data);
        config_reset();
        strbuf_reset(&err);
        if (master_cf_load(&ents, &nents, &err) < 0)
            check_report(&cs, err.data);
        master_cf_free(&ents, nents);
        printf("mailctl: %d error(s), %d warning(s); fix main.cf first\n", cs.errors, cs.warnings);
        strbuf_release(&err);
        return MAILCTL_ERROR;
    }

    strbuf_reset(&err);
    if (master_cf_load(&ents, &nents, &err) < 0) {
        check_report(&cs, err.data);
    } else {
        for (size_t i = 0; i < nents; i++) {
            /* Re-read each time: config_reset below frees the previous value. */
            const char *dd = config_str("daemon_directory");

            strbuf_reset(&path);
            strbuf_printf(&path, "%s/%s", dd, ents[i].argv[0]);
            if (access(path.data, X_OK) < 0)
                check_error(&cs, "%s/master.cf:%d: command %s: %s: %s", config_directory(),
                            ents[i].line, ents[i].argv[0], path.data, strerror(errno));
            for (size_t o = 0; o < ents[i].noverrides; o++) {
                /* Validate each override the way the daemon will. */
                char *name = mystrdup(ents[i].overrides[o]);
                char *eq = strchr(name, '=');

                *eq = 0;
                strbuf_reset(&err);
                if (config_override(name, eq + 1, &err) < 0)
                    check_error(
                        &cs, "%s/master.cf:%d: %.*s", config_directory(), ents[i].line,
                        (int)(err.len && err.data[err.len - 1] == '\n' ? err.len - 1 : err.len),
                        err.data);
                myfree(name);
            }
            /* Overrides apply to one service only: forget them again. */
            if (ents[i].noverrides) {
                config_reset();
                strbuf_reset(&err);
                (void)config_load(&err);
            }
        }
    }
    master_cf_free(&ents, nents);

    for (size_t i = 0; i < sizeof(qdirs) / sizeof(qdirs[0]); i++) {
        struct stat st;

        strbuf_reset(&path);
        strbuf_printf(&path, "%s/%s", config_str("queue_directory"), qdirs[i]);
        if (stat(path.data, &st) < 0)
            check_error(&cs, "queue directory %s: %s", path.data, strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            check_error(&cs, "queue directory %s: not a directory", path.data);
        else if (access(path.data, W_OK | X_OK) < 0)
            check_error(&cs, "queue directory %s: not writable: %s", path.data, strerror(errno));
    }

    int table_errors = cs.errors;
    check_tables(&cs, "virtual_user_maps");
    check_tables(&cs, "alias_maps");
    if (cs.errors == table_errors) /* else the lookup would only repeat those errors */
        check_postmaster(&cs);

    strbuf_reset(&err);
    nets = sock_networks_parse(config_str("mynetworks"), &err);
    if (nets == NULL)
        check_error(&cs, "mynetworks: %s", err.data);
    sock_networks_free(&nets);

    if (cs.errors)
        printf("mailctl: %d error(s), %d warning(s)\n", cs.errors, cs.warnings);
    else
        printf("mailctl: configuration in %s is OK%s\n", config_directory(),
               cs.warnings ? " (with warnings)" : "");
    strbuf_release(&err);
    strbuf_release(&path);
    return cs.errors ? MAILCTL_ERROR : MAILCTL_OK;
}
