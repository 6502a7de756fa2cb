/* scoreboard - shared idle/busy state of a service's workers (scoreboard.h). */
#include "scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCOREBOARD_MAGIC 0x7465736bU /* "tesk" */
#define SCOREBOARD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static size_t scoreboard_bytes(void)
{
    return sizeof(struct scoreboard) + SCOREBOARD_SLOTS * sizeof(struct score_slot);
}

int scoreboard_create(struct scoreboard **sb_r)
{
    size_t len = scoreboard_bytes();
    int fd = memfd_create("tegami-scoreboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)len) < 0)
        goto fail;
    struct scoreboard *sb = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sb == MAP_FAILED)
        goto fail;
    sb->magic = SCOREBOARD_MAGIC;
    sb->nslots = SCOREBOARD_SLOTS;
    /* Its size can no longer change, so no worker can make master fault on it. */
    if (fcntl(fd, F_ADD_SEALS, SCOREBOARD_SEALS) < 0) {
        int e = errno;
        munmap(sb, len);
        errno = e;
        goto fail;
    }
    *sb_r = sb;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

void scoreboard_unmap(struct scoreboard *sb)
{
    if (sb)
        munmap(sb, scoreboard_bytes());
}

struct scoreboard *scoreboard_attach(int fd)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & SCOREBOARD_SEALS) != SCOREBOARD_SEALS)
        return NULL; /* not a sealed memfd: some other file on this fd */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != scoreboard_bytes())
        return NULL;
    struct scoreboard *sb =
        mmap(NULL, scoreboard_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sb == MAP_FAILED)
        return NULL;
    if (sb->magic != SCOREBOARD_MAGIC || sb->nslots != SCOREBOARD_SLOTS) {
        scoreboard_unmap(sb);
        return NULL;
    }
    return sb;
}

/* How many slots to look at: never more than the board has, whatever it says. */
static uint32_t scoreboard_used(struct scoreboard *sb)
{
    uint32_t used = atomic_load(&sb->used);
    return used < SCOREBOARD_SLOTS ? used : SCOREBOARD_SLOTS;
}

int scoreboard_claim(struct scoreboard *sb, pid_t pid)
{
    for (uint32_t i = 0; i < SCOREBOARD_SLOTS; i++) {
        int32_t expect = 0;
        if (atomic_load(&sb->slot[i].pid) != 0 ||
            !atomic_compare_exchange_strong(&sb->slot[i].pid, &expect, (int32_t)pid))
            continue;
        atomic_store(&sb->slot[i].state, SCORE_IDLE);
        uint32_t used = atomic_load(&sb->used);
        while (used < i + 1 && !atomic_compare_exchange_weak(&sb->used, &used, i + 1))
            ;
        return (int)i;
    }
    return -1;
}

void scoreboard_set(struct scoreboard *sb, int slot, uint32_t state)
{
    uint32_t served = atomic_load(&sb->slot[slot].state) & SCORE_SERVED;
    atomic_store(&sb->slot[slot].state, state | served);
}

bool scoreboard_other_idle(struct scoreboard *sb, int self)
{
    uint32_t used = scoreboard_used(sb);
    for (uint32_t i = 0; i < used; i++)
        if ((int)i != self && atomic_load(&sb->slot[i].pid) != 0 &&
            (atomic_load(&sb->slot[i].state) & SCORE_STATE_MASK) == SCORE_IDLE)
            return true;
    return false;
}

int scoreboard_find(struct scoreboard *sb, pid_t pid)
{
    uint32_t used = scoreboard_used(sb);
    for (uint32_t i = 0; i < used; i++)
        if (atomic_load(&sb->slot[i].pid) == (int32_t)pid)
            return (int)i;
    return -1;
}

uint32_t scoreboard_state(struct scoreboard *sb, int slot, pid_t pid)
{
    if (slot < 0 || slot >= SCOREBOARD_SLOTS)
        return SCORE_FREE;
    uint32_t state = atomic_load(&sb->slot[slot].state);
    if (atomic_load(&sb->slot[slot].pid) != (int32_t)pid)
        return SCORE_FREE;
    return state & (SCORE_STATE_MASK | SCORE_SERVED);
}

void scoreboard_release(struct scoreboard *sb, int slot, pid_t pid)
{
    if (slot < 0 || slot >= SCOREBOARD_SLOTS || atomic_load(&sb->slot[slot].pid) != (int32_t)pid)
        return;
    /* The state first: a claimer that wins the pid sets its own state after. */
    atomic_store(&sb->slot[slot].state, SCORE_FREE);
    int32_t expect = (int32_t)pid;
    (void)atomic_compare_exchange_strong(&sb->slot[slot].pid, &expect, 0);
}
