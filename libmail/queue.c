/*
 * queue - queue IDs, directories and atomic moves (see queue.h).
 *
 * Queue ID: 11 base-32 digits of the arrival time in microseconds (fixed
 * width, so IDs sort by arrival; good until the year 3111) followed by the
 * file's inode in base 32 (at most 12 digits; two files that exist at the
 * same time never share an inode on one file system). The final rename
 * uses RENAME_NOREPLACE so that even an inode reused within the same
 * microsecond can never overwrite another message.
 */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dirsync.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue_pool.h"

#define QUEUE_TIME_DIGITS 11
#define QUEUE_INODE_DIGITS_MAX (QUEUE_ID_MAX - 1 - QUEUE_TIME_DIGITS)

static const char queue_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";

static const char *const queue_dir_names[QUEUE_DIR_COUNT] = {
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
};

static char *queue_root_override;

const char *queue_dir_name(enum queue_dir dir)
{
    if ((unsigned)dir >= QUEUE_DIR_COUNT)
        msg_panic("queue_dir_name: bad directory %d", (int)dir);
    return queue_dir_names[dir];
}

bool queue_dir_parse(const char *name, enum queue_dir *dir_r)
{
    for (int i = 0; i < QUEUE_DIR_COUNT; i++) {
        if (strcmp(name, queue_dir_names[i]) == 0) {
            *dir_r = (enum queue_dir)i;
            return true;
        }
    }
    return false;
}

void queue_set_root(const char *path)
{
    myfree(queue_root_override);
    queue_root_override = path ? mystrdup(path) : NULL;
}

const char *queue_root(void)
{
    if (queue_root_override)
        return queue_root_override;
    return config_str("queue_directory");
}

void queue_path(struct strbuf *out, enum queue_dir dir, const char *id)
{
    strbuf_reset(out);
    strbuf_printf(out, "%s/%s/%s", queue_root(), queue_dir_name(dir), id);
}

static void queue_dir_path(struct strbuf *out, enum queue_dir dir)
{
    strbuf_reset(out);
    strbuf_printf(out, "%s/%s", queue_root(), queue_dir_name(dir));
}

/* ---- IDs ---- */

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'V')
        return c - 'A' + 10;
    return -1;
}

bool queue_id_valid(const char *id)
{
    if (id == NULL)
        return false;
    size_t n = 0;
    for (; id[n]; n++) {
        if (n >= QUEUE_ID_MAX - 1 || digit_value(id[n]) < 0)
            return false;
    }
    return n >= QUEUE_ID_MIN;
}

long long queue_id_time(const char *id)
{
    if (!queue_id_valid(id) || strlen(id) <= QUEUE_TIME_DIGITS)
        return -1;
    unsigned long long us = 0;
    for (int i = 0; i < QUEUE_TIME_DIGITS; i++)
        us = us * 32 + (unsigned)digit_value(id[i]);
    return (long long)(us / 1000000);
}

/* Build the ID from a time in microseconds and an inode number. */
static void queue_make_id(char *id, unsigned long long us, unsigned long long ino)
{
    for (int i = QUEUE_TIME_DIGITS - 1; i >= 0; i--) {
        id[i] = queue_digits[us & 31];
        us >>= 5;
    }
    /* Keep the inode within the ID buffer (60 bits); collisions are caught by RENAME_NOREPLACE. */
    ino &= (1ULL << (5 * QUEUE_INODE_DIGITS_MAX)) - 1;
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = queue_digits[ino & 31];
        ino >>= 5;
    } while (ino != 0);
    int pos = QUEUE_TIME_DIGITS;
    while (n > 0)
        id[pos++] = tmp[--n];
    id[pos] = 0;
}

static unsigned long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

/* ---- directories ---- */

static int make_dir(const char *path, mode_t mode, struct strbuf *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        if (err)
            strbuf_printf(err, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (err)
            strbuf_printf(err, "%s: not a directory", path);
        return -1;
    }
    /* mkdir's mode is filtered by the umask; set the exact mode. */
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0) {
        if (err)
            strbuf_printf(err, "chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int queue_make_dirs(const char *root, bool sandbox, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    int rc = -1;
    if (mkdir(root, 0755) < 0 && errno != EEXIST) {
        if (err)
            strbuf_printf(err, "mkdir %s: %s", root, strerror(errno));
        goto out;
    }
    static const struct {
        const char *name;
        mode_t mode, sandbox_mode;
    } dirs[] = {
        /* maildrop: anyone may drop a file but nobody may list (sticky, like /tmp). */
        {"maildrop", 01733, 0700},    {"incoming", 0700, 0700}, {"active", 0700, 0700},
        {"deferred", 0700, 0700},     {"hold", 0700, 0700},     {"corrupt", 0700, 0700},
        {"private", 0700, 0700},      {"public", 0755, 0755},   {"pid", 0755, 0755},
        {QUEUE_POOL_DIR, 0700, 0700},
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        strbuf_reset(&path);
        strbuf_printf(&path, "%s/%s", root, dirs[i].name);
        if (make_dir(path.data, sandbox ? dirs[i].sandbox_mode : dirs[i].mode, err) < 0)
            goto out;
    }
    rc = 0;
out:
    strbuf_release(&path);
    return rc;
}

/* ---- creating files ---- */

/*
 * Temporary names need only be unlikely to clash (they are created with
 * O_EXCL or renamed to without replacing): a generator seeded from
 * getrandom() once per process (again in a fork()ed child, which would
 * otherwise repeat its parent's names) instead of a system call per file.
 */
static unsigned long long random_next(void)
{
    static unsigned long long state;
    static pid_t seeded;
    if (seeded != msg_pid()) {
        seeded = msg_pid();
        if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state))
            state = now_us() ^ ((unsigned long long)seeded << 32);
    }
    /* splitmix64 */
    unsigned long long z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void random_hex(char *buf, size_t nbytes)
{
    unsigned char rnd[16];
    if (nbytes > sizeof(rnd))
        nbytes = sizeof(rnd);
    for (size_t i = 0; i < nbytes; i += 8) {
        unsigned long long x = random_next();
        for (size_t k = 0; k < 8 && i + k < nbytes; k++)
            rnd[i + k] = (unsigned char)(x >> (8 * k));
    }
    for (size_t i = 0; i < nbytes; i++) {
        buf[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
        buf[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
    }
    buf[2 * nbytes] = 0;
}

int queue_create(enum queue_dir dir, struct queue_new *qn, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    memset(qn, 0, sizeof(*qn));
    qn->fd = -1;
    qn->dir = dir;
    ino_t ino = 0; /* known from the pool, or 0 */
    for (int attempt = 0; attempt < 10; attempt++) {
        char hex[33];
        random_hex(hex, 12);
        snprintf(qn->tmpname, sizeof(qn->tmpname), ".t%s", hex);
        queue_path(&path, dir, qn->tmpname);
        /* A reused file first: no inode allocation (queue_pool.h). */
        if (dir == QUEUE_INCOMING && attempt == 0 &&
            (qn->fd = queue_pool_take(dir, qn->tmpname, &qn->stale_size, &ino)) >= 0)
            break;
        qn->fd = open(path.data, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (qn->fd >= 0 || errno != EEXIST)
            break;
    }
    if (qn->fd < 0) {
        if (err)
            strbuf_printf(err, "create %s: %s", path.data, strerror(errno));
        qn->tmpname[0] = 0;
        strbuf_release(&path);
        return -1;
    }
    struct stat st;
    if (ino == 0 && fstat(qn->fd, &st) < 0) {
        if (err)
            strbuf_printf(err, "fstat %s: %s", path.data, strerror(errno));
        strbuf_release(&path);
        queue_abort(qn);
        return -1;
    }
    queue_make_id(qn->id, now_us(), (unsigned long long)(ino ? ino : st.st_ino));
    strbuf_release(&path);
    return 0;
}

/*
 * Directory descriptors for fsync_dir, opened once per process: a queue
 * directory is never replaced while the system runs. Keyed by the root
 * they were opened under (tests switch roots with queue_set_root).
 */
static struct {
    char *root;
    int fd;
    struct stat st;
} queue_dirfd[QUEUE_DIR_COUNT];

static int queue_dir_fd(enum queue_dir dir, const struct stat **st_r)
{
    const char *root = queue_root();
    if (queue_dirfd[dir].root && strcmp(queue_dirfd[dir].root, root) == 0) {
        *st_r = &queue_dirfd[dir].st;
        return queue_dirfd[dir].fd;
    }
    struct strbuf path = STRBUF_INIT;
    queue_dir_path(&path, dir);
    int fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        fd = -1;
        errno = saved;
    }
    strbuf_release(&path);
    if (fd < 0)
        return -1;
    if (queue_dirfd[dir].root) {
        close(queue_dirfd[dir].fd);
        myfree(queue_dirfd[dir].root);
    }
    queue_dirfd[dir].root = mystrdup(root);
    queue_dirfd[dir].fd = fd;
    queue_dirfd[dir].st = st;
    *st_r = &queue_dirfd[dir].st;
    return fd;
}

/*
 * fsync a directory: 0, or 1 when it was skipped (a maildrop we may not
 * read, 01733: best effort there; a file system that cannot fsync a
 * directory), or -1 with err.
 */
static int fsync_dir(enum queue_dir dir, struct strbuf *err)
{
    const struct stat *st;
    int fd = queue_dir_fd(dir, &st);
    if (fd < 0) {
        int rc = (errno == EACCES && dir == QUEUE_MAILDROP) ? 1 : -1;
        if (rc < 0 && err) {
            int saved = errno;
            struct strbuf path = STRBUF_INIT;
            queue_dir_path(&path, dir);
            strbuf_printf(err, "open %s: %s", path.data, strerror(saved));
            strbuf_release(&path);
        }
        return rc;
    }
    /* Right after the rename: one fsync of the directory may cover other processes' renames too. */
    if (dirsync_after_rename_st(fd, st) < 0) {
        if (errno == EINVAL)
            return 1;
        if (err) {
            int saved = errno;
            struct strbuf path = STRBUF_INIT;
            queue_dir_path(&path, dir);
            strbuf_printf(err, "fsync %s: %s", path.data, strerror(saved));
            strbuf_release(&path);
        }
        return -1;
    }
    return 0;
}

/* rename without replacing an existing file; 0, -1 with errno (EEXIST). */
static int rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
#endif
    /* No RENAME_NOREPLACE here: link() never replaces; then drop the old name. */
    if (link(from, to) < 0)
        return -1;
    if (unlink(from) < 0)
        msg_warn("unlink %s: %s", from, strerror(errno));
    return 0;
}

int queue_commit(struct queue_new *qn, struct strbuf *err)
{
    struct strbuf from = STRBUF_INIT, to = STRBUF_INIT;
    int rc = -1;
    if (qn->fd < 0 || qn->tmpname[0] == 0)
        msg_panic("queue_commit: no open file");
    /*
     * Files in maildrop belong to the submitting user; pickup (mail_owner)
     * must be able to read them.
     */
    if (qn->dir == QUEUE_MAILDROP && fchmod(qn->fd, 0644) < 0) {
        if (err)
            strbuf_printf(err, "fchmod: %s", strerror(errno));
        goto fail;
    }
    /*
     * A reused file (queue_pool.h) that the new message did not outgrow
     * keeps its size and its blocks: the writer overwrote it from offset 0
     * and the old tail stays behind the end record, where readers stop.
     * Its inode on disk then already says all a reader needs (size,
     * blocks), so writing the data and waiting for it is enough here: the
     * directory fsync below ends with a cache flush, issued after these
     * writes completed, that makes them durable with the new name. A full
     * fsync would also write incoming/ itself (ext4 syncs the parent of a
     * newly linked inode, and the rename from pool/ linked it) and flush
     * the cache once more, only for the name the file is about to lose.
     * A new or grown file gets the full fsync.
     */
    bool in_place = false;
    off_t end = 0;
    if (qn->dir == QUEUE_INCOMING) {
        end = lseek(qn->fd, 0, SEEK_CUR);
        if (end < 0) {
            if (err)
                strbuf_printf(err, "lseek: %s", strerror(errno));
            goto fail;
        }
        in_place = qn->stale_size > 0 && end <= qn->stale_size;
        /*
         * A file that gets the full fsync anyway is padded with zeros to a
         * whole QUEUE_PAD_BYTES: messages of about the same size differ by
         * a few bytes (a Message-ID's counter, a date), and without the pad
         * every second one would outgrow the file it reuses and pay the
         * full fsync. The zeros lie behind the end record. Written, not
         * ftruncate'd, so the file has no hole: its blocks are allocated
         * and an in-place writer never changes its inode.
         */
        off_t pad = (QUEUE_PAD_BYTES - end % QUEUE_PAD_BYTES) % QUEUE_PAD_BYTES;
        if (!in_place && pad > 0 && end + pad <= QUEUE_POOL_KEEP_BYTES) {
            static const char zeros[QUEUE_PAD_BYTES];
            errno = 0;
            if (pwrite(qn->fd, zeros, (size_t)pad, end) != (ssize_t)pad) {
                if (err)
                    strbuf_printf(err, "pad: %s", errno ? strerror(errno) : "short write");
                goto fail;
            }
        }
    }
    if (in_place ? sync_file_range(qn->fd, 0, end,
                                   SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                       SYNC_FILE_RANGE_WAIT_AFTER) < 0
                 : fsync(qn->fd) < 0) {
        if (err)
            strbuf_printf(err, "%s: %s", in_place ? "sync_file_range" : "fsync", strerror(errno));
        goto fail;
    }
    queue_path(&from, qn->dir, qn->tmpname);
    for (int attempt = 0;; attempt++) {
        queue_path(&to, qn->dir, qn->id);
        if (rename_noreplace(from.data, to.data) == 0)
            break;
        if (errno != EEXIST || attempt >= 5) {
            if (err)
                strbuf_printf(err, "rename %s to %s: %s", from.data, to.data, strerror(errno));
            goto fail;
        }
        /* Inode reused within one microsecond (or truncated): take a fresh time. */
        struct stat st;
        if (fstat(qn->fd, &st) < 0)
            st.st_ino = 0;
        usleep(1);
        queue_make_id(qn->id, now_us(), (unsigned long long)st.st_ino);
    }
    qn->tmpname[0] = 0;
    int synced = fsync_dir(qn->dir, err);
    /* No directory fsync, so no cache flush: the file's data needs its own. */
    if (synced == 1 && in_place && fsync(qn->fd) < 0) {
        if (err)
            strbuf_printf(err, "fsync: %s", strerror(errno));
        synced = -1;
    }
    if (synced < 0) {
        /* Not durable: take it back so the caller can report a temporary failure. */
        if (unlink(to.data) < 0)
            msg_warn("unlink %s: %s", to.data, strerror(errno));
        goto fail;
    }
    close(qn->fd);
    qn->fd = -1;
    rc = 0;
    goto out;
fail:
    queue_abort(qn);
out:
    strbuf_release(&from);
    strbuf_release(&to);
    return rc;
}

void queue_abort(struct queue_new *qn)
{
    if (qn->tmpname[0]) {
        struct strbuf path = STRBUF_INIT;
        queue_path(&path, qn->dir, qn->tmpname);
        if (unlink(path.data) < 0 && errno != ENOENT)
            msg_warn("unlink %s: %s", path.data, strerror(errno));
        strbuf_release(&path);
        qn->tmpname[0] = 0;
    }
    if (qn->fd >= 0) {
        close(qn->fd);
        qn->fd = -1;
    }
}

/* ---- moves ---- */

int queue_move(const char *id, enum queue_dir from, enum queue_dir to)
{
    if (!queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
    queue_path(&a, from, id);
    queue_path(&b, to, id);
    int rc = rename(a.data, b.data);
    int saved = errno;
    strbuf_release(&a);
    strbuf_release(&b);
    errno = saved;
    return rc;
}

int queue_remove(enum queue_dir dir, const char *id)
{
    if (!queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    struct strbuf a = STRBUF_INIT;
    queue_path(&a, dir, id);
    int rc = unlink(a.data);
    int saved = errno;
    strbuf_release(&a);
    errno = saved;
    return rc;
}

int queue_open(enum queue_dir dir, const char *id, bool writable)
{
    if (!queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    struct strbuf a = STRBUF_INIT;
    queue_path(&a, dir, id);
    int fd = open(a.data, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
    int saved = errno;
    strbuf_release(&a);
    errno = saved;
    return fd;
}

/* ---- wake-ups ---- */

#define QUEUE_NOTIFY_CACHE 4

static struct {
    char *path;
    int fd;
    dev_t dev;
    ino_t ino;
    long long checked_ms; /* when the name was last compared with fd */
} notify_cache[QUEUE_NOTIFY_CACHE];

static long long notify_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify_close(int i)
{
    if (notify_cache[i].fd >= 0)
        close(notify_cache[i].fd);
    notify_cache[i].fd = -1;
}

/*
 * One write with SIGPIPE blocked, so a fifo without a reader gives EPIPE
 * instead of killing the caller; a SIGPIPE raised by this write is consumed.
 */
static ssize_t notify_write(int fd, const char *text, size_t len)
{
    /* Daemons ignore SIGPIPE (server.c): then a plain write is enough. */
    static int pipe_ignored = -1;
    if (pipe_ignored < 0) {
        struct sigaction sa;
        pipe_ignored = sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
    }
    if (pipe_ignored) {
        ssize_t n;
        do
            n = write(fd, text, len);
        while (n < 0 && errno == EINTR);
        return n;
    }
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_set, &old_set);
    sigset_t pending;
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    ssize_t n;
    do
        n = write(fd, text, len);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    sigprocmask(SIG_SETMASK, &old_set, NULL);
    errno = saved;
    return n;
}

void queue_notify(const char *service, const char *text)
{
    struct strbuf path = STRBUF_INIT;
    strbuf_printf(&path, "%s/public/%s", queue_root(), service);
    int slot = -1, free_slot = -1;
    for (int i = 0; i < QUEUE_NOTIFY_CACHE; i++) {
        if (notify_cache[i].path && strcmp(notify_cache[i].path, path.data) == 0)
            slot = i;
        else if (notify_cache[i].path == NULL && free_slot < 0)
            free_slot = i;
    }
    if (slot < 0) {
        slot = free_slot >= 0 ? free_slot : 0;
        if (notify_cache[slot].path) {
            notify_close(slot);
            myfree(notify_cache[slot].path);
        }
        notify_cache[slot].path = mystrdup(path.data);
        notify_cache[slot].fd = -1;
    }
    /*
     * The fifo may have been re-created (master restart): follow the name,
     * at most once a second for an open fifo (a write to an old one without
     * a reader fails with EPIPE and reopens below anyway).
     */
    long long now = notify_now_ms();
    if (notify_cache[slot].fd < 0 || now - notify_cache[slot].checked_ms >= 1000) {
        struct stat st;
        if (stat(path.data, &st) < 0 || !S_ISFIFO(st.st_mode)) {
            notify_close(slot);
            goto out;
        }
        if (notify_cache[slot].fd >= 0 &&
            (st.st_dev != notify_cache[slot].dev || st.st_ino != notify_cache[slot].ino))
            notify_close(slot);
        notify_cache[slot].checked_ms = now;
    }
    size_t len = strlen(text);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (notify_cache[slot].fd < 0) {
            int fd = open(path.data, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) {
                /* ENXIO: nobody reads the fifo; the daemon scans its queue when it starts. */
                if (errno != ENXIO && errno != ENOENT)
                    msg_warn("open %s: %s", path.data, strerror(errno));
                goto out;
            }
            struct stat fst;
            if (fstat(fd, &fst) < 0 || !S_ISFIFO(fst.st_mode)) {
                close(fd);
                goto out;
            }
            notify_cache[slot].fd = fd;
            notify_cache[slot].dev = fst.st_dev;
            notify_cache[slot].ino = fst.st_ino;
        }
        ssize_t n = notify_write(notify_cache[slot].fd, text, len);
        if (n >= 0)
            break;
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            break; /* fifo full: the reader has plenty to do already */
        notify_close(slot);
        if (e != EPIPE) {
            msg_warn("write %s: %s", path.data, strerror(e));
            break;
        }
        /* EPIPE: the reader went away; reopen once (a new one may be there). */
    }
out:
    strbuf_release(&path);
}
