/*
 * pickup - moves local submissions from maildrop/ into incoming/.
 *
 * A long-running daemon (SERVER_LONG) on the fifo public/pickup. It scans
 * maildrop/ at start, every pickup_scan_interval, and whenever sendmail
 * writes to the fifo. Every maildrop file was written by a local user, so
 * it is UNTRUSTED: it is parsed by the strict queue file reader with its
 * bounds, the sender and every recipient are re-validated with
 * address_parse, the size is checked against message_size_limit, and only
 * the envelope fields a local user may set are copied (never a SASL user,
 * client address or the is-bounce flag). A good file becomes a new file in
 * incoming/ (fsync + rename), with a Received: header in front of the
 * content; only then is the maildrop file removed and qmgr woken. A bad
 * file moves to corrupt/ with a log line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "queue_file.h"
#include "server.h"
#include "strbuf.h"

#define PICKUP_BATCH 1000             /* names read per directory pass */
#define PICKUP_STALE_TEMP (24 * 3600) /* abandoned sendmail temp files are removed after this */

enum pickup_result {
    PICKUP_DONE,  /* moved to incoming (or to corrupt) */
    PICKUP_RETRY, /* a local problem (disk full): stop this scan, try again later */
};

/* ---- checks ---- */

/*
 * Validate what a local user wrote. Returns NULL when the envelope is
 * acceptable, else the reason.
 */
static const char *pickup_check(const struct qf_message *m, long long size_limit)
{
    unsigned flags = m->smtputf8 ? ADDRESS_UTF8 : 0;
    struct address a;
    const char *why;
    if (!address_parse(m->sender, strlen(m->sender), flags | ADDRESS_NULL_OK, &a, &why))
        return why;
    address_release(&a);
    if (m->nrcpts == 0)
        return "no recipients";
    for (size_t i = 0; i < m->nrcpts; i++) {
        const struct qf_recipient *r = &m->rcpts[i];
        if (r->status != QF_RCPT_PENDING)
            return "recipient not pending";
        if (!address_parse(r->address, strlen(r->address), flags, &a, &why))
            return why;
        address_release(&a);
        if (r->orig && strlen(r->orig) > 1000)
            return "original recipient too long";
    }
    if ((long long)m->content_size > size_limit)
        return "message too large";
    if (m->envid && strlen(m->envid) > 100) /* RFC 3461 §4.4 */
        return "ENVID too long";
    return NULL;
}

/* ---- moving one file ---- */

struct copy_ctx {
    struct qf_writer *w;
};

static int copy_sink(void *ctx, const char *buf, size_t len)
{
    struct copy_ctx *c = ctx;
    qf_writer_content(c->w, buf, len);
    return 0;
}

static void pickup_corrupt(const char *id, unsigned uid, const char *why)
{
    msg_warn("%s: uid=%u: rejected maildrop file: %s", id, uid, why);
    if (queue_move(id, QUEUE_MAILDROP, QUEUE_CORRUPT) < 0) {
        msg_warn("%s: move to corrupt: %s", id, strerror(errno));
        if (queue_remove(QUEUE_MAILDROP, id) < 0)
            msg_warn("%s: remove from maildrop: %s", id, strerror(errno));
    }
}

static enum pickup_result pickup_file(int dirfd, const char *id)
{
    int fd = openat(dirfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return PICKUP_DONE; /* gone meanwhile */
        if (errno == ELOOP) {
            pickup_corrupt(id, 0, "symbolic link");
            return PICKUP_DONE;
        }
        msg_warn("%s: open maildrop file: %s", id, strerror(errno));
        return PICKUP_RETRY;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        msg_warn("%s: fstat: %s", id, strerror(errno));
        close(fd);
        return PICKUP_RETRY;
    }
    unsigned uid = (unsigned)st.st_uid;
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(fd);
        pickup_corrupt(id, uid,
                       S_ISREG(st.st_mode) ? "file has several links" : "not a regular file");
        return PICKUP_DONE;
    }
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    if (qf_read(fd, &m, &err) < 0) {
        close(fd);
        pickup_corrupt(id, uid, err.data);
        strbuf_release(&err);
        return PICKUP_DONE;
    }
    const char *why = pickup_check(&m, config_size("message_size_limit"));
    if (why) {
        close(fd);
        pickup_corrupt(id, uid, why);
        qf_message_release(&m);
        strbuf_release(&err);
        return PICKUP_DONE;
    }

    enum pickup_result result = PICKUP_RETRY;
    struct queue_new qn;
    if (queue_create(QUEUE_INCOMING, &qn, &err) < 0) {
        msg_warn("%s: %s", id, err.data);
        goto out;
    }
    struct qf_writer *w = qf_writer_new(qn.fd);
    time_t now = time(NULL);
    qf_writer_arrival(w, now);
    qf_writer_sender(w, m.sender);
    qf_writer_client(w, "localhost", NULL, NULL, "local");
    qf_writer_dsn(w, m.envid, m.dsn_ret);
    qf_writer_flags(w, m.smtputf8, false);
    for (size_t i = 0; i < m.nrcpts; i++)
        qf_writer_recipient(w, m.rcpts[i].address, m.rcpts[i].orig, m.rcpts[i].notify);
    qf_writer_content_begin(w);
    struct strbuf hdr = STRBUF_INIT;
    char date[64];
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    strbuf_printf(&hdr, "Received: by %s (tegami pickup); %s\n", config_str("myhostname"), date);
    qf_writer_content(w, hdr.data, hdr.len);
    strbuf_release(&hdr);
    struct copy_ctx cc = {w};
    if (qf_copy_content(fd, &m, copy_sink, &cc) < 0) {
        msg_warn("%s: read maildrop file: %s", id, strerror(errno));
        qf_writer_abort(&w);
        queue_abort(&qn);
        goto out;
    }
    qf_writer_content_end(w);
    if (qf_writer_finish(&w, &err) < 0 || queue_commit(&qn, &err) < 0) {
        msg_warn("%s: cannot write incoming file: %s", id, err.data);
        queue_abort(&qn);
        goto out;
    }
    msg_info("%s: uid=%u from=<%s>", qn.id, uid, m.sender);
    /* The copy is safe on disk; a crash before this unlink delivers twice, never zero times. */
    if (queue_remove(QUEUE_MAILDROP, id) < 0)
        msg_warn("%s: remove from maildrop: %s", id, strerror(errno));
    char note[QUEUE_ID_MAX + 3];
    snprintf(note, sizeof(note), "I%s\n", qn.id);
    queue_notify("qmgr", note);
    result = PICKUP_DONE;
out:
    close(fd);
    qf_message_release(&m);
    strbuf_release(&err);
    return result;
}

/* ---- scanning ---- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove sendmail temp files abandoned long ago (killed sendmail). */
static void pickup_stale_temp(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    if (time(NULL) - st.st_mtime < PICKUP_STALE_TEMP)
        return;
    if (unlinkat(dirfd, name, 0) == 0)
        msg_info("removed stale maildrop temporary file %s", name);
}

static void pickup_scan(void)
{
    struct strbuf path = STRBUF_INIT;
    strbuf_printf(&path, "%s/maildrop", queue_root());
    for (int pass = 0; pass < 100 && !server_should_exit(); pass++) {
        DIR *d = opendir(path.data);
        if (d == NULL) {
            msg_warn("open %s: %s", path.data, strerror(errno));
            break;
        }
        char **names = mycalloc(PICKUP_BATCH, sizeof(char *));
        size_t n = 0;
        struct dirent *e;
        while (n < PICKUP_BATCH && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                if (strncmp(e->d_name, ".t", 2) == 0)
                    pickup_stale_temp(dirfd(d), e->d_name);
                continue;
            }
            if (!queue_id_valid(e->d_name)) {
                /* Not ours to parse; only a local user could have put it there. */
                msg_warn("maildrop: removing file with a bad name \"%.40s\"", e->d_name);
                if (unlinkat(dirfd(d), e->d_name, 0) < 0)
                    msg_warn("maildrop: unlink: %s", strerror(errno));
                continue;
            }
            names[n++] = mystrdup(e->d_name);
        }
        qsort(names, n, sizeof(char *), cmp_names); /* oldest first */
        bool retry = false;
        for (size_t i = 0; i < n; i++) {
            if (!retry && !server_should_exit() && pickup_file(dirfd(d), names[i]) == PICKUP_RETRY)
                retry = true;
            myfree(names[i]);
        }
        myfree(names);
        closedir(d);
        if (retry || n < PICKUP_BATCH)
            break;
    }
    strbuf_release(&path);
}

static void pickup_loop(int listen_fd)
{
    long long interval = config_time("pickup_scan_interval");
    time_t next_scan = 0;
    bool wakeup = true;
    while (!server_should_exit()) {
        time_t now = time(NULL);
        if (wakeup || now >= next_scan) {
            pickup_scan();
            next_scan = time(NULL) + (time_t)interval;
            wakeup = false;
        }
        struct pollfd p = {.fd = listen_fd, .events = POLLIN};
        int r = poll(&p, 1, 1000);
        if (r < 0) {
            if (errno != EINTR)
                msg_fatal("poll: %s", strerror(errno));
            continue;
        }
        if (r == 0)
            continue;
        if (p.revents & POLLIN) {
            char buf[512];
            ssize_t n = read(listen_fd, buf, sizeof(buf));
            if (n > 0)
                wakeup = true; /* the content does not matter: "W\n" or anything */
            else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                poll(NULL, 0, 1000); /* no writer and EOF: don't spin */
        } else if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            poll(NULL, 0, 1000);
        }
    }
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_LONG,
        .loop = pickup_loop,
    };
    server_main(argc, argv, &spec);
}
