/*
 * scan - the todo list of queue files to activate, and directory scans.
 *
 * The fast path never scans: "I<id>" on the fifo activates that file
 * directly. Scans happen at start, on "S"/"F", every queue_run_delay (for
 * deferred/ mail whose retry time - the file's mtime - has come, and
 * incoming/ as a safety net for lost wake-ups), and when the todo list had
 * to drop entries because it was full.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"

static size_t todo_limit(void)
{
    long long lim = qmgr.active_limit * 4;
    return lim < 10000 ? 10000 : (size_t)lim;
}

bool qmgr_todo_add(enum queue_dir dir, const char *id, bool force)
{
    struct qmgr_todo *t;
    size_t idlen = strlen(id);

    if (idlen >= QUEUE_ID_MAX)
        return false; /* never a queue ID (callers check queue_id_valid) */
    if (qmgr.ntodo >= todo_limit()) {
        /* Dropped entries stay on disk: incoming/ is rescanned when the list drains,
         * deferred/ at the next queue run. */
        if (dir == QUEUE_INCOMING)
            qmgr.rescan_incoming = true;
        return false;
    }
    t = mycalloc(1, sizeof(*t));
    t->dir = dir;
    t->force = force;
    memcpy(t->id, id, idlen + 1);
    if (qmgr.todo_tail != NULL)
        qmgr.todo_tail->next = t;
    else
        qmgr.todo_head = t;
    qmgr.todo_tail = t;
    qmgr.ntodo++;
    return true;
}

void qmgr_todo_run(size_t max)
{
    while (max > 0 && qmgr.nactive < (size_t)qmgr.active_limit) {
        struct qmgr_todo *t = qmgr.todo_head;
        if (t == NULL) {
            if (!qmgr.rescan_incoming)
                break;
            qmgr.rescan_incoming = false;
            qmgr_scan(QUEUE_INCOMING, false);
            if (qmgr.todo_head == NULL)
                break;
            continue;
        }
        qmgr.todo_head = t->next;
        if (qmgr.todo_head == NULL)
            qmgr.todo_tail = NULL;
        qmgr.ntodo--;
        qmgr_activate(t->dir, t->id, t->force);
        myfree(t);
        max--;
    }
}

static void dir_path(struct strbuf *out, enum queue_dir dir)
{
    strbuf_reset(out);
    strbuf_printf(out, "%s/%s", queue_root(), queue_dir_name(dir));
}

/* Remove a left-over temporary file (a writer died before queue_commit). */
static void stale_check(int dfd, const char *dname, const char *name, time_t now)
{
    struct stat st;

    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return;
    if (st.st_mtime + qmgr.stale_time < now) {
        if (unlinkat(dfd, name, 0) == 0)
            msg_info("removed stale temporary file %s/%s", dname, name);
        else if (errno != ENOENT)
            msg_warn("remove stale file %s/%s: %m", dname, name);
    }
}

void qmgr_scan(enum queue_dir dir, bool force)
{
    struct strbuf path = STRBUF_INIT;
    DIR *d;
    struct dirent *e;
    time_t now = time(NULL);
    size_t added = 0, seen = 0, dropped = 0;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    dir_path(&path, dir);
    if ((d = opendir(path.data)) == NULL) {
        msg_warn("scan %s: %m", path.data);
        strbuf_release(&path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            stale_check(dirfd(d), queue_dir_name(dir), e->d_name, now);
            continue;
        }
        if (!queue_id_valid(e->d_name))
            continue;
        seen++;
        /* deferred/: the mtime is the retry time, so one fstatat decides; never read the file. */
        if (dir == QUEUE_DEFERRED && force) {
            /*
             * Flush: make the file due now (its mtime is its retry time) instead
             * of forcing it past the check: files that do not fit the todo list
             * are then found by the next periodic scan, and one that is tried
             * and deferred again gets a future mtime, so nothing loops.
             */
            struct timespec ts[2] = {{now, 0}, {now, 0}};
            if (utimensat(dirfd(d), e->d_name, ts, 0) < 0 && errno != ENOENT)
                msg_warn("flush %s: set retry time: %m", e->d_name);
        } else if (dir == QUEUE_DEFERRED) {
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, 0) < 0 || st.st_mtime > now)
                continue;
        }
        if (qmgr_todo_add(dir, e->d_name, force))
            added++;
        else
            dropped++;
    }
    closedir(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (added > 0 || dropped > 0 || msg_verbose || secs >= 0.1 || seen >= 10000)
        msg_info("scan %s: %zu file%s to process (%zu seen, %zu left for later: todo list full, "
                 "%.3fs)",
                 queue_dir_name(dir), added, added == 1 ? "" : "s", seen, dropped, secs);
    strbuf_release(&path);
}

void qmgr_recover_active(void)
{
    struct strbuf path = STRBUF_INIT;
    DIR *d;
    struct dirent *e;
    size_t moved = 0;

    /* A previous qmgr died with these in hand: start over (at-least-once). */
    dir_path(&path, QUEUE_ACTIVE);
    if ((d = opendir(path.data)) == NULL) {
        msg_warn("scan %s: %m", path.data);
        strbuf_release(&path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !queue_id_valid(e->d_name))
            continue;
        if (queue_move(e->d_name, QUEUE_ACTIVE, QUEUE_INCOMING) == 0)
            moved++;
        else if (errno != ENOENT)
            msg_warn("%s: move active to incoming: %m", e->d_name);
    }
    closedir(d);
    if (moved > 0)
        msg_info("recovered %zu message%s from active/", moved, moved == 1 ? "" : "s");
    strbuf_release(&path);
}
