/*
 * mailctl user / queue / map / newaliases.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dict.h"
#include "mailbox.h"
#include "maildir.h"
#include "mailctl.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "queue_file.h"
#include "queue_list.h"
#include "vuser.h"

#define PASSWORD_MAX 1024

/* ---------------------------------------------------------------- user */

/* One line from stdin, without its line end. 0, or -1 (message printed). */
static int read_password(struct strbuf *pw)
{
    int c;

    strbuf_reset(pw);
    while ((c = getchar()) != EOF && c != '\n') {
        if (pw->len >= PASSWORD_MAX) {
            fprintf(stderr, "mailctl: password too long (more than %d bytes)\n", PASSWORD_MAX);
            return -1;
        }
        if (c == 0) {
            fprintf(stderr, "mailctl: password contains a NUL byte\n");
            return -1;
        }
        strbuf_putc(pw, c);
    }
    if (pw->len && pw->data[pw->len - 1] == '\r')
        strbuf_truncate(pw, pw->len - 1);
    if (pw->len == 0) {
        fprintf(stderr, "mailctl: empty password (give it on stdin, one line)\n");
        return -1;
    }
    return 0;
}

/* As root outside a sandbox, mailboxes belong to mail_owner. */
static void chown_to_owner(const char *path)
{
    struct passwd *pw;

    if (geteuid() != 0 || config_bool("sandbox"))
        return;
    pw = getpwnam(config_str("mail_owner"));
    if (pw == NULL) {
        fprintf(stderr, "mailctl: warning: mail_owner %s does not exist\n",
                config_str("mail_owner"));
        return;
    }
    if (lchown(path, pw->pw_uid, pw->pw_gid) < 0)
        fprintf(stderr, "mailctl: warning: chown %s: %s\n", path, strerror(errno));
}

static int user_maildir(const char *name)
{
    struct strbuf md = STRBUF_INIT, err = STRBUF_INIT, p = STRBUF_INIT;
    static const char *const subs[] = {"", "/cur", "/new", "/tmp"};
    int rc = 0;

    vuser_maildir(name, &md);
    strbuf_reset(&err);
    /* INBOX plus Sent, Drafts, Trash and Junk (SPECIAL-USE), subscribed. */
    if (mailbox_create_defaults(md.data, &err) < 0) {
        fprintf(stderr, "mailctl: Maildir %s: %s\n", md.data, err.data);
        rc = -1;
    } else {
        static const char *const folders[] = {"", "/.Sent", "/.Drafts", "/.Trash", "/.Junk"};
        strbuf_printf(&p, "%s/%s", config_str("virtual_mailbox_base"), name);
        chown_to_owner(p.data);
        for (size_t f = 0; f < sizeof(folders) / sizeof(folders[0]); f++) {
            for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
                strbuf_reset(&p);
                strbuf_printf(&p, "%s%s%s", md.data, folders[f], subs[i]);
                chown_to_owner(p.data);
            }
        }
        static const char *const files[] = {"/subscriptions",        "/tegami-subscriptions.lock",
                                            "/.Sent/maildirfolder",  "/.Drafts/maildirfolder",
                                            "/.Trash/maildirfolder", "/.Junk/maildirfolder"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            strbuf_reset(&p);
            strbuf_printf(&p, "%s%s", md.data, files[i]);
            chown_to_owner(p.data);
        }
    }
    strbuf_release(&md);
    strbuf_release(&err);
    strbuf_release(&p);
    return rc;
}

int mailctl_user(int argc, char **argv)
{
    struct strbuf err = STRBUF_INIT, pw = STRBUF_INIT;
    const char *sub = argc > 1 ? argv[1] : NULL;
    const char *name = argc > 2 ? argv[2] : NULL;
    int rc = MAILCTL_ERROR;

    if (sub == NULL)
        mailctl_usage();
    if (strcmp(sub, "list") == 0) {
        char **names;
        size_t n;

        if (argc != 2)
            mailctl_usage();
        if (mailctl_load_config() < 0)
            return MAILCTL_ERROR;
        strbuf_reset(&err);
        names = vuser_list(&n, &err);
        if (names == NULL) {
            fprintf(stderr, "mailctl: %s\n", err.data);
            strbuf_release(&err);
            return MAILCTL_ERROR;
        }
        for (size_t i = 0; i < n; i++)
            printf("%s\n", names[i]);
        config_list_free(&names);
        strbuf_release(&err);
        return MAILCTL_OK;
    }
    if (argc != 3 || (strcmp(sub, "add") && strcmp(sub, "passwd") && strcmp(sub, "del")))
        mailctl_usage();
    if (!vuser_name_valid(name)) {
        fprintf(stderr, "mailctl: invalid user name \"%s\" (lowercase a-z 0-9 . _ -, 1..64)\n",
                name);
        return MAILCTL_ERROR;
    }
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    strbuf_reset(&err);
    if (strcmp(sub, "add") == 0) {
        if (read_password(&pw) < 0)
            goto out;
        if (vuser_add(name, pw.data, &err) < 0) {
            fprintf(stderr, "mailctl: user add %s: %s\n", name, err.data);
            goto out;
        }
        if (user_maildir(name) < 0)
            goto out;
    } else if (strcmp(sub, "passwd") == 0) {
        if (read_password(&pw) < 0)
            goto out;
        if (vuser_passwd(name, pw.data, &err) < 0) {
            fprintf(stderr, "mailctl: user passwd %s: %s\n", name, err.data);
            goto out;
        }
    } else {
        struct strbuf md = STRBUF_INIT;

        if (vuser_del(name, &err) < 0) {
            fprintf(stderr, "mailctl: user del %s: %s\n", name, err.data);
            goto out;
        }
        vuser_maildir(name, &md);
        printf("mailctl: Maildir %s kept\n", md.data);
        strbuf_release(&md);
    }
    rc = MAILCTL_OK;
out:
    /* Do not leave the password in memory longer than needed. */
    if (pw.data)
        explicit_bzero(pw.data, pw.cap);
    strbuf_release(&pw);
    strbuf_release(&err);
    return rc;
}

/* ---------------------------------------------------------------- queue */

static int queue_list_cmd(bool json)
{
    struct queue_list_entry *e;
    size_t n;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;

    strbuf_reset(&err);
    if (queue_list_scan(&e, &n, &err) < 0) {
        fprintf(stderr, "mailctl: %s\n", err.data);
        strbuf_release(&err);
        return MAILCTL_ERROR;
    }
    strbuf_reset(&out);
    if (json)
        queue_list_format_json(e, n, &out);
    else
        queue_list_format_text(e, n, &out);
    fwrite(out.data, 1, out.len, stdout);
    queue_list_free(&e, n);
    strbuf_release(&out);
    strbuf_release(&err);
    return MAILCTL_OK;
}

static void show_field(const char *name, const char *value)
{
    if (value == NULL)
        return;
    printf("%s: ", name);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
    putchar('\n');
}

static int queue_show(const char *id)
{
    enum queue_dir dir;
    struct qf_message msg;
    struct strbuf err = STRBUF_INIT;
    char when[64];
    struct tm tm;
    char buf[8192];
    size_t left;
    off_t off;
    int fd;

    if (!queue_list_find(id, &dir)) {
        fprintf(stderr, "mailctl: %s: no such message in the queue\n", id);
        return MAILCTL_ERROR;
    }
    fd = queue_open(dir, id, false);
    if (fd < 0) {
        fprintf(stderr, "mailctl: %s: %s\n", id, strerror(errno));
        return MAILCTL_ERROR;
    }
    memset(&msg, 0, sizeof(msg));
    strbuf_reset(&err);
    if (qf_read(fd, &msg, &err) < 0) {
        fprintf(stderr, "mailctl: %s (%s): unreadable queue file: %s\n", id, queue_dir_name(dir),
                err.data);
        close(fd);
        strbuf_release(&err);
        return MAILCTL_ERROR;
    }
    show_field("queue_id", id);
    show_field("queue", queue_dir_name(dir));
    if (localtime_r(&msg.arrival, &tm) &&
        strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S %z", &tm))
        show_field("arrival_time", when);
    show_field("sender", *msg.sender ? msg.sender : "<>");
    show_field("client_name", msg.client_name);
    show_field("client_address", msg.client_addr);
    show_field("helo", msg.helo);
    show_field("protocol", msg.protocol);
    show_field("sasl_user", msg.sasl_user);
    show_field("envid", msg.envid);
    printf("message_size: %zu\n", msg.content_size);
    for (size_t i = 0; i < msg.nrcpts; i++) {
        printf("recipient: ");
        for (const unsigned char *p = (const unsigned char *)msg.rcpts[i].address; *p; p++)
            putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
        printf(" (%s)\n", msg.rcpts[i].status == QF_RCPT_DONE ? "done" : "pending");
    }
    printf("\n");
    fflush(stdout);
    off = msg.content_offset;
    left = msg.content_size;
    while (left > 0) {
        ssize_t n = pread(fd, buf, left < sizeof(buf) ? left : sizeof(buf), off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        fwrite(buf, 1, (size_t)n, stdout);
        off += n;
        left -= (size_t)n;
    }
    qf_message_release(&msg);
    close(fd);
    strbuf_release(&err);
    return MAILCTL_OK;
}

static int queue_requeue(const char *only)
{
    struct queue_list_entry *e;
    size_t n, moved = 0;
    struct strbuf err = STRBUF_INIT;
    int rc = MAILCTL_OK;

    strbuf_reset(&err);
    if (queue_list_scan(&e, &n, &err) < 0) {
        fprintf(stderr, "mailctl: %s\n", err.data);
        strbuf_release(&err);
        return MAILCTL_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        if (e[i].dir != QUEUE_DEFERRED || (only && strcmp(only, e[i].id) != 0))
            continue;
        if (queue_move(e[i].id, QUEUE_DEFERRED, QUEUE_INCOMING) < 0) {
            if (errno != ENOENT) {
                fprintf(stderr, "mailctl: %s: %s\n", e[i].id, strerror(errno));
                rc = MAILCTL_ERROR;
            }
            continue;
        }
        msg_info("%s: requeued by mailctl", e[i].id);
        moved++;
    }
    if (only && moved == 0) {
        fprintf(stderr, "mailctl: %s: not in the deferred queue\n", only);
        rc = MAILCTL_ERROR;
    }
    if (moved)
        queue_notify("qmgr", "S\n");
    printf("mailctl: %zu message%s requeued\n", moved, moved == 1 ? "" : "s");
    queue_list_free(&e, n);
    strbuf_release(&err);
    return rc;
}

int mailctl_queue(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    const char *id = argc > 2 ? argv[2] : NULL;
    enum queue_dir dir;

    if (sub == NULL)
        mailctl_usage();
    if (strcmp(sub, "list") == 0) {
        bool json = false;

        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--json") == 0)
                json = true;
            else
                mailctl_usage();
        }
        if (mailctl_load_config() < 0)
            return MAILCTL_ERROR;
        return queue_list_cmd(json);
    }
    if (strcmp(sub, "requeue") == 0) {
        if (argc > 3)
            mailctl_usage();
        if (mailctl_load_config() < 0)
            return MAILCTL_ERROR;
        return queue_requeue(id);
    }
    if (argc != 3 || (strcmp(sub, "show") && strcmp(sub, "delete") && strcmp(sub, "hold") &&
                      strcmp(sub, "release")))
        mailctl_usage();
    if (!queue_id_valid(id)) {
        fprintf(stderr, "mailctl: \"%s\" is not a queue ID\n", id);
        return MAILCTL_ERROR;
    }
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    if (strcmp(sub, "show") == 0)
        return queue_show(id);
    if (!queue_list_find(id, &dir)) {
        fprintf(stderr, "mailctl: %s: no such message in the queue\n", id);
        return MAILCTL_ERROR;
    }
    if (strcmp(sub, "delete") == 0) {
        if (queue_remove(dir, id) < 0) {
            fprintf(stderr, "mailctl: %s: %s\n", id, strerror(errno));
            return MAILCTL_ERROR;
        }
        {
            /* qmgr's last deferral reasons for it (defer/ID) go too; harmless if none. */
            struct strbuf dpath = STRBUF_INIT;
            strbuf_printf(&dpath, "%s/defer/%s", queue_root(), id);
            (void)unlink(dpath.data);
            strbuf_release(&dpath);
        }
        msg_info("%s: removed by mailctl (queue %s)", id, queue_dir_name(dir));
        return MAILCTL_OK;
    }
    if (strcmp(sub, "hold") == 0) {
        if (dir == QUEUE_HOLD) {
            fprintf(stderr, "mailctl: %s: already on hold\n", id);
            return MAILCTL_OK;
        }
        /*
         * Only checked mail may be held: releasing puts it into incoming/, and
         * maildrop/ files have not passed pickup's checks yet. An active file is
         * in qmgr's hands; moving it away mid-delivery would race with qmgr.
         */
        if (dir != QUEUE_INCOMING && dir != QUEUE_DEFERRED) {
            fprintf(stderr,
                    "mailctl: %s: is in %s/; only incoming or deferred mail can be held%s\n", id,
                    queue_dir_name(dir),
                    dir == QUEUE_ACTIVE ? " (it is being delivered; try again)" : "");
            return MAILCTL_ERROR;
        }
        if (queue_move(id, dir, QUEUE_HOLD) < 0) {
            fprintf(stderr, "mailctl: %s: %s\n", id, strerror(errno));
            return MAILCTL_ERROR;
        }
        msg_info("%s: placed on hold by mailctl (from %s)", id, queue_dir_name(dir));
        return MAILCTL_OK;
    }
    /* release */
    if (dir != QUEUE_HOLD) {
        fprintf(stderr, "mailctl: %s: is not on hold (it is in %s/)\n", id, queue_dir_name(dir));
        return MAILCTL_ERROR;
    }
    if (queue_move(id, QUEUE_HOLD, QUEUE_INCOMING) < 0) {
        fprintf(stderr, "mailctl: %s: %s\n", id, strerror(errno));
        return MAILCTL_ERROR;
    }
    {
        char note[QUEUE_ID_MAX + 3];

        snprintf(note, sizeof(note), "I%s\n", id);
        queue_notify("qmgr", note);
    }
    msg_info("%s: released from hold by mailctl", id);
    return MAILCTL_OK;
}

/* ---------------------------------------------------------------- tables */

int mailctl_map(int argc, char **argv)
{
    struct strbuf spec = STRBUF_INIT, err = STRBUF_INIT;
    const char *file;
    long n;

    if (argc != 3 || strcmp(argv[1], "build") != 0)
        mailctl_usage();
    file = argv[2];
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    if (strncmp(file, "hash:", 5) == 0 || strncmp(file, "btree:", 6) == 0)
        strbuf_puts(&spec, file);
    else
        strbuf_printf(&spec, "hash:%s", file);
    strbuf_reset(&err);
    n = dict_build(spec.data, DICT_FORMAT_MAP, &err);
    if (n < 0) {
        mailctl_print_lines(err.data);
        strbuf_release(&spec);
        strbuf_release(&err);
        return MAILCTL_ERROR;
    }
    printf("mailctl: %s: %ld entr%s\n", spec.data, n, n == 1 ? "y" : "ies");
    strbuf_release(&spec);
    strbuf_release(&err);
    return MAILCTL_OK;
}

int mailctl_newaliases(int argc, char **argv)
{
    char **list;
    size_t n;
    int rc = MAILCTL_OK;

    (void)argv;
    if (argc > 0)
        mailctl_usage();
    if (mailctl_load_config() < 0)
        return MAILCTL_ERROR;
    list = config_list("alias_database", &n);
    for (size_t i = 0; i < n; i++) {
        struct strbuf err = STRBUF_INIT;
        long cnt;

        if (strncmp(list[i], "hash:", 5) != 0 && strncmp(list[i], "btree:", 6) != 0) {
            fprintf(stderr, "mailctl: %s: not a buildable table (hash: or btree:), skipped\n",
                    list[i]);
            continue;
        }
        strbuf_reset(&err);
        cnt = dict_build(list[i], DICT_FORMAT_ALIASES, &err);
        if (cnt < 0) {
            mailctl_print_lines(err.data);
            rc = MAILCTL_ERROR;
        } else {
            printf("mailctl: %s: %ld alias%s\n", list[i], cnt, cnt == 1 ? "" : "es");
            msg_info("%s: rebuilt, %ld aliases", list[i], cnt);
        }
        strbuf_release(&err);
    }
    config_list_free(&list);
    return rc;
}
