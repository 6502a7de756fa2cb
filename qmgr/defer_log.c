/*
 * defer_log - the last deferral reason of each pending recipient, for
 * people: `$queue_directory/defer/<queue id>`, one line per recipient
 * deferred in the last attempt, "address TAB dsn SP reason" (tabs, line
 * ends and other control bytes replaced by spaces). `mailq` / `mailctl
 * queue list` print it under each recipient, like Postfix's "(reason)".
 *
 * Written whole (temporary name + rename) whenever qmgr moves a message to
 * deferred/, removed when the message leaves the queue. It is advisory:
 * not fsync'ed, and a missing or stale file only changes what the listing
 * shows, never what is delivered. qmgr removes files whose message is gone
 * when it starts (after `mailctl queue delete`).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"
#include "queue_list.h"

#define DEFER_DIR "defer"
#define DEFER_FILE_MAX (1024 * 1024) /* recipients beyond this are left out */

static void put_clean(struct strbuf *out, const char *s, size_t max)
{
    for (size_t i = 0; s != NULL && s[i] != '\0' && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        strbuf_putc(out, c < 0x20 || c == 0x7f ? ' ' : c);
    }
}

void qmgr_defer_log_init(void)
{
    struct strbuf path = STRBUF_INIT;
    DIR *d;
    struct dirent *e;

    strbuf_printf(&path, "%s/%s", queue_root(), DEFER_DIR);
    if (mkdir(path.data, 0700) < 0 && errno != EEXIST)
        msg_warn("mkdir %s: %m", path.data);
    if ((d = opendir(path.data)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            enum queue_dir where;
            if (e->d_name[0] == '.'
                    ? strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0
                    : !queue_id_valid(e->d_name) || !queue_list_find(e->d_name, &where))
                (void)unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
    }
    strbuf_release(&path);
}

void qmgr_defer_log_write(const struct qmgr_msg *m)
{
    struct strbuf text = STRBUF_INIT, tmp = STRBUF_INIT, path = STRBUF_INIT;
    int fd;

    for (size_t i = 0; i < m->qf.nrcpts && text.len < DEFER_FILE_MAX; i++) {
        const struct qmgr_rcpt_state *st = &m->st[i];
        if (m->qf.rcpts[i].status != QF_RCPT_PENDING || st->result == 0)
            continue;
        put_clean(&text, m->qf.rcpts[i].address, 1024);
        strbuf_putc(&text, '\t');
        put_clean(&text, st->dsn, sizeof(st->dsn));
        strbuf_putc(&text, ' ');
        put_clean(&text, st->reason, 1000);
        strbuf_putc(&text, '\n');
    }
    strbuf_printf(&tmp, "%s/%s/.%s", queue_root(), DEFER_DIR, m->id);
    strbuf_printf(&path, "%s/%s/%s", queue_root(), DEFER_DIR, m->id);
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg_warn("%s: write %s: %m", m->id, tmp.data);
    } else {
        ssize_t n = text.len > 0 ? write(fd, text.data, text.len) : 0;
        if (n != (ssize_t)text.len || close(fd) < 0) {
            msg_warn("%s: write %s: %m", m->id, tmp.data);
            (void)unlink(tmp.data);
        } else if (rename(tmp.data, path.data) < 0) {
            msg_warn("%s: rename %s: %m", m->id, tmp.data);
            (void)unlink(tmp.data);
        }
    }
    strbuf_release(&text);
    strbuf_release(&tmp);
    strbuf_release(&path);
}

void qmgr_defer_log_remove(const char *id)
{
    struct strbuf path = STRBUF_INIT;

    strbuf_printf(&path, "%s/%s/%s", queue_root(), DEFER_DIR, id);
    if (unlink(path.data) < 0 && errno != ENOENT)
        msg_warn("%s: remove %s: %m", id, path.data);
    strbuf_release(&path);
}
