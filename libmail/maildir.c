/*
 * maildir - Maildir delivery, listing and locking. See maildir.h.
 *
 * Delivery cost per message is fixed and small (tegami must deliver over a
 * thousand messages a second): one open of tmp/, the writes, one fsync, one
 * rename into new/, one open+fsync of new/ (shared with concurrent deliveries
 * into the same new/, see dirsync.h). The host name is looked up once.
 * Sizes are counted while copying: S= is the bytes written, W= adds one byte
 * per LF (each LF becomes CRLF on the wire).
 */
#include "maildir.h"
#include "dirsync.h"
#include "msg.h"
#include "mymalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MAILDIR_BLOCK 65536

/* ---- creation ---- */

static int mkdir_one(const char *path, struct strbuf *err)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    strbuf_printf(err, "mkdir %s: %s", path, strerror(errno));
    return -1;
}

int maildir_create(const char *path, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    static const char *const subs[] = {"cur", "new", "tmp"};
    int rc = -1;

    if (path[0] == 0) {
        strbuf_puts(err, "empty Maildir path");
        return -1;
    }
    strbuf_init(&p, strlen(path) + 8);
    strbuf_puts(&p, path);
    /* Parents first (mkdir -p); a '/' at position 0 is the root. */
    for (size_t i = 1; i < p.len; i++) {
        if (p.data[i] != '/')
            continue;
        p.data[i] = 0;
        int r = mkdir_one(p.data, err);
        p.data[i] = '/';
        if (r < 0)
            goto out;
    }
    if (mkdir_one(p.data, err) < 0)
        goto out;
    for (size_t i = 0; i < 3; i++) {
        strbuf_truncate(&p, strlen(path));
        strbuf_printf(&p, "/%s", subs[i]);
        if (mkdir_one(p.data, err) < 0)
            goto out;
    }
    rc = 0;
out:
    strbuf_release(&p);
    return rc;
}

/* ---- delivery ---- */

/* The host name as it may appear in a Maildir name ('/', ':' and ',' escaped). */
static const char *maildir_host(void)
{
    static char *host;
    if (host == NULL) {
        char raw[HOST_NAME_MAX + 1];
        struct strbuf sb = STRBUF_INIT;
        if (gethostname(raw, sizeof(raw)) < 0)
            raw[0] = 0;
        raw[sizeof(raw) - 1] = 0;
        strbuf_init(&sb, 64);
        for (const char *s = raw; *s; s++) {
            if (*s == '/')
                strbuf_puts(&sb, "\\057");
            else if (*s == ':')
                strbuf_puts(&sb, "\\072");
            else if (*s == ',')
                strbuf_puts(&sb, "\\054");
            else
                strbuf_putc(&sb, *s);
        }
        if (sb.len == 0)
            strbuf_puts(&sb, "localhost");
        host = strbuf_detach(&sb, NULL);
    }
    return host;
}

static char *copy_buffer(void)
{
    static char *buf;
    if (buf == NULL)
        buf = mymalloc(MAILDIR_BLOCK);
    return buf;
}

/* Count LF bytes, eight at a time: a message's W= size needs every one. */
static size_t count_lf(const char *p, size_t n)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, lf = 0x0a0a0a0a0a0a0a0aULL;
    size_t c = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        x ^= lf; /* LF bytes become zero */
        /* High bit of each byte set unless the byte is zero (exact, no carries between bytes). */
        uint64_t t = ((x & lo7) + lo7) | x;
        c += (size_t)__builtin_popcountll(~t & ~lo7);
    }
    for (; i < n; i++)
        c += p[i] == '\n';
    return c;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Open a fresh tmp/ file; *base gets its base name. */
static int open_tmp(const char *path, struct strbuf *base, struct strbuf *tmp, struct strbuf *err)
{
    static unsigned long counter;
    bool created = false;

    for (int attempt = 0; attempt < 5; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        strbuf_reset(base);
        strbuf_printf(base, "%lld.M%06ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                      (long)msg_pid(), ++counter, maildir_host());
        strbuf_reset(tmp);
        strbuf_printf(tmp, "%s/tmp/%s", path, base->data);
        int fd = open(tmp->data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno == ENOENT && !created) {
            /* First delivery to this mailbox. */
            created = true;
            if (maildir_create(path, err) < 0)
                return -1;
            continue;
        }
        if (errno != EEXIST) {
            strbuf_printf(err, "create %s: %s", tmp->data, strerror(errno));
            return -1;
        }
    }
    strbuf_printf(err, "create %s: cannot find a unique name", tmp->data);
    errno = EEXIST;
    return -1;
}

/*
 * new/ directories kept open for their fsyncs, a few per process (local
 * delivers to the same mailboxes over and over). Each use first stats the
 * path, after the rename: a cached descriptor is used only while it is
 * still the directory the name leads to (a Maildir removed and created
 * again gets a fresh one), which costs one system call instead of three.
 */
#define NEWDIR_CACHE 8

static struct {
    char *path; /* ".../new" */
    int fd;
    struct stat st;
} newdir_cache[NEWDIR_CACHE];
static unsigned newdir_next;

/* An fd for the directory path (one of the cache's: do not close), or -1. */
static int newdir_fd(const char *path, const struct stat **st_r)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    unsigned i;
    for (i = 0; i < NEWDIR_CACHE; i++)
        if (newdir_cache[i].path != NULL && strcmp(newdir_cache[i].path, path) == 0)
            break;
    if (i < NEWDIR_CACHE && newdir_cache[i].st.st_dev == st.st_dev &&
        newdir_cache[i].st.st_ino == st.st_ino) {
        *st_r = &newdir_cache[i].st;
        return newdir_cache[i].fd;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat fst;
    if (fd < 0)
        return -1;
    if (fstat(fd, &fst) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (i == NEWDIR_CACHE) /* else: that path's stale entry is replaced */
        i = newdir_next++ % NEWDIR_CACHE;
    if (newdir_cache[i].path) {
        close(newdir_cache[i].fd);
        myfree(newdir_cache[i].path);
    }
    newdir_cache[i].path = mystrdup(path);
    newdir_cache[i].fd = fd;
    newdir_cache[i].st = fst;
    *st_r = &newdir_cache[i].st;
    return fd;
}

int maildir_deliver(const char *path, const char *prefix, size_t prefix_len, int src_fd,
                    off_t offset, size_t len, struct strbuf *name_r, struct strbuf *err)
{
    struct strbuf base = STRBUF_INIT, tmp = STRBUF_INIT, dst = STRBUF_INIT;
    char *buf = copy_buffer();
    size_t size = 0, lfs = 0, left = len;
    off_t off = offset;
    int fd = -1, saved;
    bool have_tmp = false, in_new = false;

    if (offset < 0 || prefix_len > SIZE_MAX - len) {
        strbuf_puts(err, "maildir_deliver: bad offset or length");
        errno = EINVAL;
        return -1;
    }
    strbuf_init(&base, 128);
    strbuf_init(&tmp, 256);
    strbuf_init(&dst, 256);
    if ((fd = open_tmp(path, &base, &tmp, err)) < 0)
        goto fail;
    have_tmp = true;

    /* The prefix shares the first write with the start of the message when it fits. */
    size_t fill = 0;
    if (prefix_len > MAILDIR_BLOCK / 2) {
        if (write_all(fd, prefix, prefix_len) < 0) {
            strbuf_printf(err, "write %s: %s", tmp.data, strerror(errno));
            goto fail;
        }
    } else if (prefix_len > 0) {
        memcpy(buf, prefix, prefix_len);
        fill = prefix_len;
    }
    lfs += count_lf(prefix, prefix_len);
    size += prefix_len;
    while (left > 0 || fill > 0) {
        size_t want = MAILDIR_BLOCK - fill;
        if (want > left)
            want = left;
        while (want > 0) {
            ssize_t r = pread(src_fd, buf + fill, want, off);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                strbuf_printf(err, "read message: %s", strerror(errno));
                goto fail;
            }
            if (r == 0) {
                strbuf_printf(err, "read message: file ends %zu bytes early", left);
                errno = EIO;
                goto fail;
            }
            lfs += count_lf(buf + fill, (size_t)r);
            fill += (size_t)r;
            off += r;
            left -= (size_t)r;
            size += (size_t)r;
            want -= (size_t)r;
        }
        if (write_all(fd, buf, fill) < 0) {
            strbuf_printf(err, "write %s: %s", tmp.data, strerror(errno));
            goto fail;
        }
        fill = 0;
    }
    if (fsync(fd) < 0) {
        strbuf_printf(err, "fsync %s: %s", tmp.data, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        strbuf_printf(err, "close %s: %s", tmp.data, strerror(errno));
        goto fail;
    }
    fd = -1;

    strbuf_printf(&dst, "%s/new/%s,S=%zu,W=%zu", path, base.data, size, size + lfs);
    if (rename(tmp.data, dst.data) < 0) {
        strbuf_printf(err, "rename %s to %s: %s", tmp.data, dst.data, strerror(errno));
        goto fail;
    }
    in_new = true;
    strbuf_reset(&tmp);
    strbuf_printf(&tmp, "%s/new", path);
    const struct stat *dst_st;
    int dfd = newdir_fd(tmp.data, &dst_st);
    if (dfd < 0 || dirsync_after_rename_st(dfd, dst_st) < 0) {
        strbuf_printf(err, "fsync %s: %s", tmp.data, strerror(errno));
        goto fail;
    }

    strbuf_reset(name_r);
    strbuf_printf(name_r, "new/%s,S=%zu,W=%zu", base.data, size, size + lfs);
    strbuf_release(&base);
    strbuf_release(&tmp);
    strbuf_release(&dst);
    return 0;

fail:
    saved = errno;
    if (fd >= 0)
        close(fd);
    /* Nothing may stay behind: not the partial tmp/ file, not an unsynced new/ entry. */
    if (in_new) {
        if (unlink(dst.data) < 0)
            msg_warn("unlink %s: %m", dst.data);
    } else if (have_tmp) {
        if (unlink(tmp.data) < 0 && errno != ENOENT)
            msg_warn("unlink %s: %m", tmp.data);
    }
    strbuf_release(&base);
    strbuf_release(&tmp);
    strbuf_release(&dst);
    errno = saved;
    return -1;
}

/* ---- listing ---- */

/* Parse a decimal number of at most 19 digits at s; returns the end, or NULL. */
static const char *parse_size(const char *s, const char *end, size_t *out)
{
    size_t v = 0;
    const char *p = s;
    while (p < end && *p >= '0' && *p <= '9') {
        if (v > (SIZE_MAX - 9) / 10)
            return NULL;
        v = v * 10 + (size_t)(*p - '0');
        p++;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

/* Find S= and W= in the ",field,field" part of a name (before any ':'). */
static void parse_name_sizes(const char *name, bool *have_s, size_t *s, bool *have_w, size_t *w)
{
    const char *colon = strchr(name, ':');
    const char *end = colon ? colon : name + strlen(name);
    const char *p = memchr(name, ',', (size_t)(end - name));

    *have_s = *have_w = false;
    while (p && p < end) {
        p++; /* past ',' */
        const char *next = memchr(p, ',', (size_t)(end - p));
        const char *fend = next ? next : end;
        if (fend - p > 2 && p[1] == '=' && (p[0] == 'S' || p[0] == 'W')) {
            size_t v;
            const char *q = parse_size(p + 2, fend, &v);
            if (q == fend) {
                if (p[0] == 'S') {
                    *have_s = true;
                    *s = v;
                } else {
                    *have_w = true;
                    *w = v;
                }
            }
        }
        p = next;
    }
}

/* Size with CRLF line ends, by reading the file. */
static int count_vsize(int dirfd, const char *name, size_t *vsize, struct strbuf *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    char *buf = copy_buffer();
    size_t total = 0;
    if (fd < 0) {
        strbuf_printf(err, "open %s: %s", name, strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf, MAILDIR_BLOCK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            strbuf_printf(err, "read %s: %s", name, strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        total += (size_t)r + count_lf(buf, (size_t)r);
    }
    close(fd);
    *vsize = total;
    return 0;
}

struct list_state {
    struct maildir_msg *msgs;
    size_t count, cap;
};

static void list_add(struct list_state *ls, const char *dir, const char *name, int dirfd)
{
    struct stat st;
    bool have_s, have_w;
    size_t s = 0, w = 0;

    if (fstatat(dirfd, name, &st, 0) < 0) {
        if (errno != ENOENT) /* ENOENT: expunged or moved meanwhile */
            msg_warn("maildir: stat %s/%s: %m", dir, name);
        return;
    }
    if (!S_ISREG(st.st_mode))
        return;
    parse_name_sizes(name, &have_s, &s, &have_w, &w);
    if (!have_s)
        s = (size_t)st.st_size;
    if (!have_w) {
        struct strbuf e = STRBUF_INIT;
        strbuf_init(&e, 0);
        if (count_vsize(dirfd, name, &w, &e) < 0) {
            if (errno != ENOENT)
                msg_warn("maildir: %s", e.data);
            strbuf_release(&e);
            return;
        }
        strbuf_release(&e);
    }
    if (ls->count == ls->cap) {
        ls->cap = ls->cap ? ls->cap * 2 : 64;
        ls->msgs = myreallocarray(ls->msgs, ls->cap, sizeof(*ls->msgs));
    }
    struct maildir_msg *m = &ls->msgs[ls->count++];
    size_t ulen = strcspn(name, ":,");
    size_t plen = strlen(dir) + 1 + strlen(name) + 1;
    m->path = mymalloc(plen);
    memcpy(m->path, dir, strlen(dir));
    m->path[strlen(dir)] = '/';
    memcpy(m->path + strlen(dir) + 1, name, strlen(name) + 1);
    m->uid = mystrndup(name, ulen);
    m->size = s;
    m->vsize = w;
    m->mtime = st.st_mtime;
}

/* Leading "<secs>.M<usecs>" of a name, for ordering names whose usecs are not padded. */
static void name_time(const char *uid, unsigned long long *secs, unsigned long long *usecs)
{
    char *end;
    *secs = *usecs = 0;
    errno = 0;
    *secs = strtoull(uid, &end, 10);
    if (end == uid || errno)
        *secs = 0;
    if (end[0] == '.' && end[1] == 'M' && end[2] >= '0' && end[2] <= '9')
        *usecs = strtoull(end + 2, NULL, 10);
}

static int msg_cmp(const void *a, const void *b)
{
    const struct maildir_msg *x = a, *y = b;
    unsigned long long xs, xu, ys, yu;
    name_time(x->uid, &xs, &xu);
    name_time(y->uid, &ys, &yu);
    if (xs != ys)
        return xs < ys ? -1 : 1;
    if (xu != yu)
        return xu < yu ? -1 : 1;
    int c = strcmp(x->uid, y->uid);
    if (c)
        return c;
    return strcmp(x->path, y->path); /* "cur/..." before "new/..." */
}

/* Read one subdirectory; returns -1 on a real error, 0 (also when it is missing). */
static int list_dir(const char *path, const char *sub, bool move_new, struct list_state *ls,
                    struct strbuf *err)
{
    struct strbuf d = STRBUF_INIT, from = STRBUF_INIT, to = STRBUF_INIT;
    DIR *dir;
    struct dirent *de;

    strbuf_init(&d, 256);
    strbuf_printf(&d, "%s/%s", path, sub);
    if ((dir = opendir(d.data)) == NULL) {
        int e = errno;
        strbuf_release(&d);
        if (e == ENOENT)
            return 0; /* no mail delivered yet */
        strbuf_printf(err, "open %s/%s: %s", path, sub, strerror(e));
        return -1;
    }
    int dfd = dirfd(dir);
    while ((errno = 0, de = readdir(dir)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        if (move_new) {
            /* new/ -> cur/ with empty info ":2,", unless the name already has info. */
            strbuf_reset(&from);
            strbuf_printf(&from, "%s/new/%s", path, name);
            strbuf_reset(&to);
            strbuf_printf(&to, "%s/cur/%s%s", path, name, strchr(name, ':') ? "" : ":2,");
            if (rename(from.data, to.data) == 0)
                continue; /* picked up when cur/ is read */
            if (errno == ENOENT)
                continue; /* someone else moved or expunged it */
            msg_warn("maildir: rename %s to %s: %m", from.data, to.data);
        }
        list_add(ls, sub, name, dfd);
    }
    int e = errno;
    closedir(dir);
    strbuf_release(&from);
    strbuf_release(&to);
    if (e) {
        strbuf_printf(err, "read %s: %s", d.data, strerror(e));
        strbuf_release(&d);
        return -1;
    }
    strbuf_release(&d);
    return 0;
}

int maildir_list(const char *path, bool move_new, struct maildir_msg **msgs_r, size_t *count_r,
                 struct strbuf *err)
{
    struct list_state ls = {NULL, 0, 0};

    *msgs_r = NULL;
    *count_r = 0;
    /* new/ first: what is moved from it shows up when cur/ is read. */
    if (list_dir(path, "new", move_new, &ls, err) < 0 ||
        list_dir(path, "cur", false, &ls, err) < 0) {
        maildir_list_free(&ls.msgs, ls.count);
        return -1;
    }
    if (ls.count > 1) {
        qsort(ls.msgs, ls.count, sizeof(*ls.msgs), msg_cmp);
        /* A message moved new/ -> cur/ by someone else while we read is seen twice. */
        size_t out = 1;
        for (size_t i = 1; i < ls.count; i++) {
            if (strcmp(ls.msgs[i].uid, ls.msgs[out - 1].uid) == 0) {
                myfree(ls.msgs[i].path);
                myfree(ls.msgs[i].uid);
                continue;
            }
            ls.msgs[out++] = ls.msgs[i];
        }
        ls.count = out;
    }
    *msgs_r = ls.msgs;
    *count_r = ls.count;
    return 0;
}

void maildir_list_free(struct maildir_msg **msgsp, size_t count)
{
    struct maildir_msg *msgs = *msgsp;
    if (msgs == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        myfree(msgs[i].path);
        myfree(msgs[i].uid);
    }
    myfree(msgs);
    *msgsp = NULL;
}

/* ---- locking ---- */

int maildir_lock(const char *path, const char *what, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    size_t wlen = strlen(what);
    int fd;

    if (wlen == 0 || wlen > 32 || strspn(what, "abcdefghijklmnopqrstuvwxyz0123456789_-") != wlen) {
        strbuf_printf(err, "bad lock name \"%s\"", what);
        return -1;
    }
    strbuf_init(&p, 256);
    strbuf_printf(&p, "%s/tegami-%s.lock", path, what);
    fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        /* A user who never got mail: make the Maildir so the lock has a home. */
        if (maildir_create(path, err) < 0) {
            strbuf_release(&p);
            return -1;
        }
        fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        strbuf_printf(err, "open %s: %s", p.data, strerror(errno));
        strbuf_release(&p);
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            strbuf_printf(err, "mailbox %s is locked by another process (%s)", path, p.data);
        else
            strbuf_printf(err, "lock %s: %s", p.data, strerror(errno));
        close(fd);
        strbuf_release(&p);
        return -1;
    }
    strbuf_release(&p);
    return fd;
}
