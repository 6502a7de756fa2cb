/*
 * mailctl - tegami administration: life cycle, users, queue, tables.
 *
 *   mailctl [-c DIR] COMMAND [ARGS...]
 *
 * DIR defaults to $MAIL_CONFIG, then /etc/tegami. Run as "newaliases"
 * (argv[0]), it rebuilds the alias database. Exit codes: 0 ok, 1 error,
 * 2 usage, 3 not running (status).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mailctl.h"
#include "msg.h"
#include "mymalloc.h"

_Noreturn void mailctl_usage(void)
{
    fputs("usage: mailctl [-c DIR] COMMAND [ARGS...]\n"
          "  init [--sandbox] [--domain D] [--port-offset N] [--address A]\n"
          "  start | stop | status | reload | check | flush\n"
          "  user add NAME | user passwd NAME | user del NAME | user list\n"
          "       (add and passwd read the password from stdin, one line)\n"
          "  queue list [--json] | queue show ID | queue delete ID | queue hold ID\n"
          "  queue release ID | queue requeue [ID]\n"
          "  map build FILE | newaliases\n"
          "  config [-d] [--markdown] [NAME...]   (parameters, like postconf)\n"
          "DIR defaults to $MAIL_CONFIG, then /etc/tegami.\n",
          stderr);
    exit(MAILCTL_USAGE);
}

void mailctl_print_lines(const char *text)
{
    const char *s = text;

    while (s && *s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);

        if (n)
            fprintf(stderr, "mailctl: %.*s\n", (int)n, s);
        if (!nl)
            break;
        s = nl + 1;
    }
}

int mailctl_load_config(void)
{
    struct strbuf errors = STRBUF_INIT;
    const char *log;

    strbuf_reset(&errors);
    if (config_load(&errors) < 0) {
        mailctl_print_lines(errors.data);
        strbuf_release(&errors);
        return -1;
    }
    strbuf_release(&errors);
    /* Log administrative actions where the daemons log, when we may write there. */
    log = config_str("maillog_file");
    if (*log && access(log, W_OK) == 0)
        msg_open_file(log);
    return 0;
}

int mailctl_write_file(const char *path, const char *text, int mode, bool excl)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (excl ? O_EXCL : O_TRUNC), mode);
    size_t len = strlen(text), off = 0;

    if (fd < 0) {
        fprintf(stderr, "mailctl: create %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "mailctl: write %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fprintf(stderr, "mailctl: write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* An absolute form of dir (daemons chdir, so relative paths would break). */
static char *mailctl_absolute(const char *dir)
{
    char cwd[PATH_MAX];
    char real[PATH_MAX];
    struct strbuf sb = STRBUF_INIT;

    if (realpath(dir, real))
        return mystrdup(real);
    if (dir[0] == '/')
        return mystrdup(dir);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return mystrdup(dir);
    strbuf_printf(&sb, "%s/%s", cwd, dir);
    return strbuf_detach(&sb, NULL);
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    char *dir = NULL;
    const char *cmd;
    int i = 1;
    int rc;

    base = base ? base + 1 : argv[0];
    msg_init("mailctl");
    msg_set_stderr(true);
    umask(022);

    while (i < argc && argv[i][0] == '-') {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-C") == 0) && i + 1 < argc) {
            myfree(dir);
            dir = mailctl_absolute(argv[i + 1]);
            i += 2;
        } else if (strcmp(argv[i], "-v") == 0) {
            msg_set_verbose(msg_verbose + 1);
            i++;
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            mailctl_usage();
        } else {
            fprintf(stderr, "mailctl: unknown option %s\n", argv[i]);
            mailctl_usage();
        }
    }
    if (dir)
        config_set_directory(dir);

    if (strcmp(base, "newaliases") == 0) {
        rc = mailctl_newaliases(argc - i, argv + i);
        myfree(dir);
        return rc;
    }
    if (i >= argc)
        mailctl_usage();
    cmd = argv[i];
    argc -= i;
    argv += i;
    if (strcmp(cmd, "init") == 0)
        rc = mailctl_init(argc, argv);
    else if (strcmp(cmd, "start") == 0)
        rc = mailctl_start(argc, argv);
    else if (strcmp(cmd, "stop") == 0)
        rc = mailctl_stop(argc, argv);
    else if (strcmp(cmd, "status") == 0)
        rc = mailctl_status(argc, argv);
    else if (strcmp(cmd, "reload") == 0)
        rc = mailctl_reload(argc, argv);
    else if (strcmp(cmd, "check") == 0)
        rc = mailctl_check(argc, argv);
    else if (strcmp(cmd, "flush") == 0)
        rc = mailctl_flush(argc, argv);
    else if (strcmp(cmd, "user") == 0)
        rc = mailctl_user(argc, argv);
    else if (strcmp(cmd, "queue") == 0)
        rc = mailctl_queue(argc, argv);
    else if (strcmp(cmd, "map") == 0)
        rc = mailctl_map(argc, argv);
    else if (strcmp(cmd, "newaliases") == 0)
        rc = mailctl_newaliases(argc - 1, argv + 1);
    else if (strcmp(cmd, "config") == 0)
        rc = mailctl_config(argc, argv);
    else {
        fprintf(stderr, "mailctl: unknown command \"%s\"\n", cmd);
        mailctl_usage();
    }
    myfree(dir);
    return rc;
}
