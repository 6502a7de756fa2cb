/*
 * queue_pool - reuse of delivered queue files. See queue_pool.h.
 *
 * take() keeps a small per-process list of names read from pool/ with one
 * small getdents64; several processes read the same names, so a rename that finds
 * nothing (ENOENT: a sibling was faster) moves on. The list is shuffled so
 * that siblings do not all race for the same one. A miss means the list is
 * stale (a busy smtpd reads it only every few dozen milliseconds, in which
 * time its siblings take most of a small pool), so the next try reads pool/
 * again rather than walking the rest of the stale list: a failed rename
 * between two directories takes the file system's rename lock like a real
 * one, while a fresh listing costs a getdents and no lock.
 */
#include "queue_pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"
#include "strbuf.h"

#define POOL_BATCH 64        /* names remembered per refill */
#define POOL_TRIES 16        /* renames tried per take */
#define POOL_REFILLS 3       /* listings of pool/ per take */
#define POOL_EMPTY_MS 200    /* an empty pool is not looked at again for this long */
#define POOL_LIST_BYTES 4096 /* getdents64 buffer: about 100 names */

static struct {
    char names[POOL_BATCH][QUEUE_ID_MAX];
    size_t n, next;
    long long empty_until_ms;
    unsigned long long rnd;
} cache;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pool_dir(struct strbuf *out)
{
    strbuf_reset(out);
    strbuf_printf(out, "%s/%s", queue_root(), QUEUE_POOL_DIR);
}

static unsigned long long next_rnd(void)
{
    if (cache.rnd == 0)
        cache.rnd = ((unsigned long long)getpid() << 32) ^ (unsigned long long)mono_ms() ^ 1;
    cache.rnd = cache.rnd * 6364136223846793005ULL + 1442695040888963407ULL;
    return cache.rnd >> 33;
}

/*
 * Read up to POOL_BATCH names from pool/ with one small getdents64: the
 * kernel produces only what fits in the buffer (a couple of directory
 * blocks), where readdir()'s 32 KiB buffer had it walk hundreds of entries
 * at every refill. false when there are none.
 */
static bool refill(void)
{
    struct strbuf path = STRBUF_INIT;
    union {
        struct dirent64 align;
        char bytes[POOL_LIST_BYTES];
    } buf;

    cache.n = cache.next = 0;
    pool_dir(&path);
    int fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    strbuf_release(&path);
    if (fd < 0)
        return false;
    /*
     * Start at a random place. In a hashed directory (ext4's htree, which
     * pool/ becomes past one block) an offset is a hash position, so
     * siblings read different slices of pool/ instead of all racing for its
     * first names (each lost race costs a refill). Past the end, or where
     * such an offset means nothing (a small, linear directory; another file
     * system), the read finds nothing or fails and starts over at 0.
     */
    bool wrapped = lseek(fd, (off_t)(next_rnd() & 0x7fffffff) << 32, SEEK_SET) < 0;
    if (wrapped)
        (void)lseek(fd, 0, SEEK_SET);
    for (int reads = 0; reads < 3 && cache.n < POOL_BATCH; reads++) {
        ssize_t got = getdents64(fd, buf.bytes, sizeof(buf.bytes));
        if (got <= 0) {
            if (wrapped || lseek(fd, 0, SEEK_SET) < 0)
                break;
            wrapped = true;
            continue;
        }
        for (ssize_t off = 0; off < got && cache.n < POOL_BATCH;) {
            const struct dirent64 *de = (const struct dirent64 *)(buf.bytes + off);
            off += de->d_reclen;
            if (!queue_id_valid(de->d_name))
                continue; /* ".", "..", anything else */
            memcpy(cache.names[cache.n++], de->d_name, strlen(de->d_name) + 1); /* valid: fits */
        }
    }
    close(fd);
    for (size_t i = cache.n; i > 1; i--) {
        size_t j = (size_t)(next_rnd() % i);
        char tmp[QUEUE_ID_MAX];
        memcpy(tmp, cache.names[i - 1], QUEUE_ID_MAX);
        memcpy(cache.names[i - 1], cache.names[j], QUEUE_ID_MAX);
        memcpy(cache.names[j], tmp, QUEUE_ID_MAX);
    }
    return cache.n > 0;
}

static int rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
#endif
    if (link(from, to) < 0)
        return -1;
    if (unlink(from) < 0)
        msg_warn("unlink %s: %m", from);
    return 0;
}

int queue_pool_take(enum queue_dir dir, const char *tmpname, off_t *size_r, ino_t *ino_r)
{
    struct strbuf from = STRBUF_INIT, to = STRBUF_INIT;
    int fd = -1;
    int refills = 0;

    if (cache.next >= cache.n && mono_ms() < cache.empty_until_ms)
        return -1;
    strbuf_printf(&to, "%s/%s/%s", queue_root(), queue_dir_name(dir), tmpname);
    for (int tries = 0; tries < POOL_TRIES && fd < 0; tries++) {
        if (cache.next >= cache.n) {
            if (refills >= POOL_REFILLS)
                break; /* contended, not empty: create a file this time */
            if (!refill()) {
                cache.empty_until_ms = mono_ms() + POOL_EMPTY_MS;
                break;
            }
            refills++;
        }
        const char *name = cache.names[cache.next++];
        strbuf_reset(&from);
        strbuf_printf(&from, "%s/%s/%s", queue_root(), QUEUE_POOL_DIR, name);
        if (rename_noreplace(from.data, to.data) < 0) {
            if (errno == ENOENT) {
                cache.next = cache.n; /* a sibling took it: the list is stale, read pool/ again */
                continue;
            }
            break; /* anything else: create a file the usual way */
        }
        fd = open(to.data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
            st.st_uid == geteuid() &&
            (st.st_size <= QUEUE_POOL_KEEP_BYTES || ftruncate(fd, 0) == 0)) {
            *size_r = st.st_size <= QUEUE_POOL_KEEP_BYTES ? st.st_size : 0;
            *ino_r = st.st_ino;
            break;
        }
        /* Not a file we would have put there: drop it, never write into it. */
        msg_warn("%s: unexpected file in the queue file pool: removed", from.data);
        if (fd >= 0)
            close(fd);
        fd = -1;
        if (unlink(to.data) < 0 && errno != ENOENT)
            msg_warn("unlink %s: %m", to.data);
    }
    strbuf_release(&from);
    strbuf_release(&to);
    return fd;
}

int queue_pool_put(enum queue_dir dir, const char *id, int fd, off_t size)
{
    struct strbuf from = STRBUF_INIT, to = STRBUF_INIT;
    int rc;

    if (!queue_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    queue_path(&from, dir, id);
    strbuf_printf(&to, "%s/%s/%s", queue_root(), QUEUE_POOL_DIR, id);
    /*
     * A small file keeps its bytes: truncating it would free its block (a
     * synchronous discard on a "discard" mount) only for the next message
     * to allocate one again; its next writer overwrites it and cuts off the
     * rest (queue_commit). A large one is emptied first, to bound the pool's
     * disk use: once the file is in pool/ a new message may be written into
     * it at any moment, so it must never be touched through fd again. A
     * crash in between leaves an empty file in dir/, which qmgr recognises
     * (a queue file is never empty) and removes.
     */
    rc = 0;
    if (size < 0) {
        struct stat st;
        rc = fstat(fd, &st);
        if (rc == 0)
            size = st.st_size;
    }
    if (rc == 0 && size > QUEUE_POOL_KEEP_BYTES)
        rc = ftruncate(fd, 0);
    if (rc == 0)
        rc = rename_noreplace(from.data, to.data);
    int saved = errno;
    strbuf_release(&from);
    strbuf_release(&to);
    errno = saved;
    return rc;
}

size_t queue_pool_trim(size_t keep, time_t max_idle)
{
    struct strbuf path = STRBUF_INIT, file = STRBUF_INIT;
    size_t left = 0;
    time_t now = time(NULL);
    DIR *d;
    struct dirent *de;

    pool_dir(&path);
    if (mkdir(path.data, 0700) < 0 && errno != EEXIST)
        msg_warn("mkdir %s: %m", path.data);
    if ((d = opendir(path.data)) == NULL) {
        strbuf_release(&path);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        bool drop = left >= keep || !queue_id_valid(de->d_name);
        if (!drop && max_idle > 0 && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            drop = now - st.st_ctime > max_idle;
        if (!drop) {
            left++;
            continue;
        }
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
            strbuf_reset(&file);
            strbuf_printf(&file, "%s/%s", path.data, de->d_name);
            msg_warn("unlink %s: %m", file.data);
        }
    }
    closedir(d);
    strbuf_release(&path);
    strbuf_release(&file);
    return left;
}

struct pool_entry {
    ino_t ino;
    char name[QUEUE_ID_MAX];
};

static int entry_cmp(const void *a, const void *b)
{
    ino_t x = ((const struct pool_entry *)a)->ino, y = ((const struct pool_entry *)b)->ino;
    return x < y ? -1 : x > y;
}

size_t queue_pool_recover(void)
{
    struct strbuf path = STRBUF_INIT, file = STRBUF_INIT;
    struct pool_entry *pool = NULL;
    size_t n = 0, cap = 0, removed = 0;
    DIR *d;
    struct dirent *de;

    pool_dir(&path);
    if ((d = opendir(path.data)) == NULL)
        goto out;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            pool = myrealloc(pool, cap * sizeof(*pool));
        }
        pool[n].ino = de->d_ino;
        memcpy(pool[n].name, de->d_name, strlen(de->d_name) + 1); /* valid: fits */
        n++;
    }
    closedir(d);
    if (n == 0)
        goto out;
    qsort(pool, n, sizeof(*pool), entry_cmp);
    for (int dir = 0; dir < QUEUE_DIR_COUNT; dir++) {
        strbuf_reset(&path);
        strbuf_printf(&path, "%s/%s", queue_root(), queue_dir_name((enum queue_dir)dir));
        if ((d = opendir(path.data)) == NULL)
            continue;
        while ((de = readdir(d)) != NULL) {
            struct pool_entry key = {.ino = de->d_ino};
            struct pool_entry *e =
                de->d_name[0] == '.' ? NULL : bsearch(&key, pool, n, sizeof(*pool), entry_cmp);
            if (e == NULL)
                continue;
            while (e > pool && e[-1].ino == key.ino)
                e--; /* the first pool/ name of that inode */
            for (; e < pool + n && e->ino == key.ino; e++) {
                if (e->name[0] == 0)
                    continue; /* removed already */
                strbuf_reset(&file);
                strbuf_printf(&file, "%s/%s/%s", queue_root(), QUEUE_POOL_DIR, e->name);
                msg_warn("%s: also linked as %s/%s (a crash lost its removal from pool/): "
                         "removed from pool/",
                         file.data, queue_dir_name((enum queue_dir)dir), de->d_name);
                if (unlink(file.data) == 0)
                    removed++;
                else if (errno != ENOENT)
                    msg_warn("unlink %s: %m", file.data);
                e->name[0] = 0;
            }
        }
        closedir(d);
    }
out:
    myfree(pool);
    strbuf_release(&path);
    strbuf_release(&file);
    return removed;
}
