/*
 * dirsync - group commit of directory fsyncs across processes (see dirsync.h).
 *
 * The invariant: dirsync_after_rename() returns 0 only after a fsync of the
 * directory that started after the caller's rename completed has itself
 * completed. Each slot counts completed renames (`renamed`, incremented
 * right after the rename, so every value up to what a syncer reads belongs
 * to a rename already done) and the highest such count known durable
 * (`synced`, advanced only after a successful fsync that started after
 * `renamed` was read). A caller with ticket `my` returns once synced >= my;
 * otherwise it becomes the syncer (`busy`, a CAS from 0 to pid + start
 * time) or waits on a futex for the current syncer to finish. A busy holder
 * older than DIRSYNC_STALE_MS is ignored (dead or stuck process: its slot is
 * taken over), and a waiter that has waited DIRSYNC_MAX_WAIT_MS fsyncs on
 * its own. Extra fsyncs are always safe; a missing one never happens.
 *
 * The map is trusted like the queue: any process running as mail_owner can
 * write it, and can equally write the queue itself (docs/decisions.md).
 */
#include "dirsync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "strbuf.h"

#define DIRSYNC_MAGIC 0x3179736469676574ULL /* "tegidsy1" little-endian */
#define DIRSYNC_STALE_MS 100u
#define DIRSYNC_WAIT_MS 20
#define DIRSYNC_MAX_WAIT_MS 200u
#define DIRSYNC_MAX_PROBES 64
#define DIRSYNC_RETRY_SECONDS 10

struct dirsync_header {
    _Atomic uint64_t magic;
    _Atomic uint64_t calls;  /* dirsync_after_rename calls that used the map */
    _Atomic uint64_t fsyncs; /* real fsyncs those calls ran */
    uint64_t spare[5];
};

struct dirsync_slot {
    _Atomic uint64_t tag; /* 0: free; else the key's hash (never 0) */
    _Atomic uint64_t dev;
    _Atomic uint64_t ino;
    _Atomic uint64_t renamed; /* renames into the directory completed */
    _Atomic uint64_t synced;  /* highest `renamed` value known durable */
    _Atomic uint64_t busy;    /* 0, or pid << 32 | start time in ms (low 32 bits) */
    _Atomic uint32_t wakeups; /* futex word: bumped after each fsync */
    _Atomic uint32_t waiters; /* processes in FUTEX_WAIT on wakeups */
    _Atomic uint32_t ready;   /* dev and ino are set */
    uint32_t spare;
};

_Static_assert(sizeof(struct dirsync_header) == 64, "header is one cache line");
_Static_assert(sizeof(struct dirsync_slot) == 64, "a slot is one cache line");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to share memory");

#define DIRSYNC_SLOTS (DIRSYNC_MAP_SIZE / sizeof(struct dirsync_slot) - 1)

int (*dirsync_fsync_hook)(int fd) = fsync;

static char *dirsync_path_override;
static struct dirsync_header *dirsync_map;
static time_t dirsync_retry_at; /* after a failed open: when to try again */
static int dirsync_enabled = -1;

void dirsync_set_path(const char *path)
{
    myfree(dirsync_path_override);
    dirsync_path_override = path ? mystrdup(path) : NULL;
}

void dirsync_reset(void)
{
    if (dirsync_map)
        munmap(dirsync_map, DIRSYNC_MAP_SIZE);
    dirsync_map = NULL;
    dirsync_retry_at = 0;
    dirsync_enabled = -1;
}

static struct dirsync_slot *slots(void)
{
    return (struct dirsync_slot *)(dirsync_map + 1);
}

/* Open (creating if allowed) the map file; fd, or -1. */
static int map_file_open(const char *path, bool create)
{
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0)
        goto odd;
    if (st.st_size == 0) {
        /*
         * Allocate the blocks now: a store into a sparse page of a shared
         * mapping on a full file system would be a SIGBUS, not an error.
         */
        int e = posix_fallocate(fd, 0, DIRSYNC_MAP_SIZE);
        if (e != 0) {
            errno = e;
            close(fd);
            return -1;
        }
    } else if (st.st_size != DIRSYNC_MAP_SIZE) {
        goto odd;
    }
    return fd;
odd:
    close(fd);
    errno = EINVAL;
    return -1;
}

int dirsync_create(const char *queue_dir)
{
    struct strbuf path = STRBUF_INIT;
    strbuf_printf(&path, "%s/pid/dirsync", queue_dir);
    int fd = map_file_open(path.data, true);
    strbuf_release(&path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* The map, opened and mapped once per process; NULL if unusable now. */
static struct dirsync_header *map_get(void)
{
    if (dirsync_map)
        return dirsync_map;
    time_t now = time(NULL);
    if (dirsync_retry_at != 0 && now < dirsync_retry_at)
        return NULL;
    dirsync_retry_at = now + DIRSYNC_RETRY_SECONDS;

    struct strbuf path = STRBUF_INIT;
    if (dirsync_path_override)
        strbuf_printf(&path, "%s", dirsync_path_override);
    else
        strbuf_printf(&path, "%s/pid/dirsync", queue_root());
    int fd = map_file_open(path.data, true);
    strbuf_release(&path);
    if (fd < 0)
        return NULL;
    /* Only a map of our own (or, for root, any): another user's map is not ours to trust. */
    struct stat st;
    if (fstat(fd, &st) < 0 || (st.st_uid != geteuid() && geteuid() != 0)) {
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, DIRSYNC_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return NULL;
    struct dirsync_header *h = p;
    uint64_t zero = 0;
    /* A new file is all zeroes, which is an empty table: just stamp it. */
    if (!atomic_compare_exchange_strong(&h->magic, &zero, DIRSYNC_MAGIC) && zero != DIRSYNC_MAGIC) {
        munmap(p, DIRSYNC_MAP_SIZE);
        return NULL;
    }
    dirsync_map = h;
    return h;
}

static uint64_t key_hash(uint64_t dev, uint64_t ino)
{
    uint64_t h = dev * 0x9E3779B97F4A7C15ULL ^ ino;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h ? h : 1;
}

/* The slot of (dev, ino), claiming a free one; NULL if full or racing a claim. */
static struct dirsync_slot *slot_find(uint64_t dev, uint64_t ino)
{
    uint64_t h = key_hash(dev, ino);
    struct dirsync_slot *tab = slots();
    for (size_t i = 0; i < DIRSYNC_MAX_PROBES; i++) {
        struct dirsync_slot *s = &tab[(h + i) % DIRSYNC_SLOTS];
        uint64_t t = atomic_load(&s->tag);
        if (t == 0) {
            if (atomic_compare_exchange_strong(&s->tag, &t, h)) {
                atomic_store(&s->dev, dev);
                atomic_store(&s->ino, ino);
                atomic_store(&s->ready, 1);
                return s;
            }
            /* Lost the claim: t now holds the winner's tag. */
        }
        if (t != h)
            continue;
        if (!atomic_load(&s->ready))
            return NULL; /* being claimed right now: fall back rather than wait */
        if (atomic_load(&s->dev) == dev && atomic_load(&s->ino) == ino)
            return s;
    }
    return NULL;
}

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static bool busy_stale(uint64_t busy, uint32_t now)
{
    return (uint32_t)(now - (uint32_t)busy) > DIRSYNC_STALE_MS;
}

static void futex_wait(_Atomic uint32_t *word, uint32_t val, int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    /* Shared mapping: no FUTEX_PRIVATE_FLAG. EAGAIN/EINTR/ETIMEDOUT: the caller re-checks. */
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * fsync for every rename counted so far. `mine` is our busy value (0 when
 * syncing without holding busy). synced only ever grows, and only after
 * a successful fsync that started after `renamed` was read.
 */
static int slot_sync(struct dirsync_slot *s, int dirfd, uint64_t mine)
{
    uint64_t target = atomic_load(&s->renamed);
    int rc = dirsync_fsync_hook(dirfd);
    int saved = errno;
    atomic_fetch_add(&dirsync_map->fsyncs, 1);
    if (rc == 0) {
        uint64_t cur = atomic_load(&s->synced);
        while (cur < target && !atomic_compare_exchange_weak(&s->synced, &cur, target))
            ;
    }
    if (mine != 0)
        atomic_compare_exchange_strong(&s->busy, &mine, 0); /* fails if taken over: fine */
    atomic_fetch_add(&s->wakeups, 1);
    if (atomic_load(&s->waiters) != 0)
        futex_wake_all(&s->wakeups);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

static int plain_fsync(int dirfd)
{
    return dirsync_fsync_hook(dirfd) == 0 ? 0 : -1;
}

int dirsync_after_rename(int dirfd)
{
    struct stat st;
    if (fstat(dirfd, &st) < 0)
        return plain_fsync(dirfd);
    return dirsync_after_rename_st(dirfd, &st);
}

int dirsync_after_rename_st(int dirfd, const struct stat *st)
{
    if (dirsync_enabled < 0)
        dirsync_enabled = config_bool("dirsync_group_commit");
    if (!dirsync_enabled || map_get() == NULL || !S_ISDIR(st->st_mode))
        return plain_fsync(dirfd);
    struct dirsync_slot *s = slot_find((uint64_t)st->st_dev, (uint64_t)st->st_ino);
    if (s == NULL)
        return plain_fsync(dirfd);

    atomic_fetch_add(&dirsync_map->calls, 1);
    uint64_t my = atomic_fetch_add(&s->renamed, 1) + 1;
    uint64_t pid = (uint64_t)(uint32_t)msg_pid();
    bool waiting = false;
    uint32_t wait_start = 0;
    for (;;) {
        /* Read the futex word before the check, so a wake-up in between is not lost. */
        uint32_t w = atomic_load(&s->wakeups);
        if (atomic_load(&s->synced) >= my)
            return 0;
        uint32_t now = now_ms();
        uint64_t b = atomic_load(&s->busy);
        if (b == 0 || busy_stale(b, now)) {
            uint64_t mine = pid << 32 | now;
            if (atomic_compare_exchange_strong(&s->busy, &b, mine))
                return slot_sync(s, dirfd, mine);
            continue;
        }
        if (!waiting) {
            waiting = true;
            wait_start = now;
        } else if ((uint32_t)(now - wait_start) >= DIRSYNC_MAX_WAIT_MS) {
            return slot_sync(s, dirfd, 0);
        }
        atomic_fetch_add(&s->waiters, 1);
        futex_wait(&s->wakeups, w, DIRSYNC_WAIT_MS);
        atomic_fetch_sub(&s->waiters, 1);
    }
}

int dirsync_stats(struct dirsync_stats *stats_r)
{
    if (dirsync_map == NULL)
        return -1;
    stats_r->calls = atomic_load(&dirsync_map->calls);
    stats_r->fsyncs = atomic_load(&dirsync_map->fsyncs);
    return 0;
}
