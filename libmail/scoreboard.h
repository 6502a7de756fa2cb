/*
 * scoreboard - which worker processes of a service are idle, in memory
 * that master and the workers share.
 *
 * master makes one board per service (a sealed memfd) and passes it to
 * every process of the service on fd SERVER_SCORE_FD. A worker claims a
 * slot with its pid and keeps its state there: idle or busy is a store to
 * shared memory, not a record on the status pipe that wakes master. Only a
 * worker that takes a connection and sees no other idle slot writes a 'B'
 * record, so master wakes when it may have to start another process, and
 * not twice per connection.
 *
 * master reads the board when it decides whether to start a process, and
 * clears a worker's slot when it reaps it. It treats the board as
 * untrusted input: a worker can only make master believe others are busy
 * (master then starts processes up to the service's limit) or idle (which
 * a compromised worker could achieve anyway by not serving).
 */
#ifndef TEGAMI_SCOREBOARD_H
#define TEGAMI_SCOREBOARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SCOREBOARD_SLOTS 1024 /* beyond this, workers report on the pipe */

enum {
    SCORE_FREE = 0, /* no worker, or one that has not set its state yet */
    SCORE_IDLE = 1,
    SCORE_BUSY = 2,
    SCORE_EXITING = 3, /* leaving: neither serves nor waits */
    SCORE_STATE_MASK = 0xff,
    SCORE_SERVED = 0x100, /* took at least one connection */
};

struct score_slot {
    _Atomic int32_t pid;    /* 0: free */
    _Atomic uint32_t state; /* SCORE_* */
};

struct scoreboard {
    uint32_t magic;
    uint32_t nslots;
    _Atomic uint32_t used; /* slots [0, used) have ever been claimed */
    uint32_t reserved;
    struct score_slot slot[];
};

/* master: a new board; returns its fd (close-on-exec) and maps it in *sb_r, or -1. */
int scoreboard_create(struct scoreboard **sb_r);
/* Unmap a board from scoreboard_create or scoreboard_attach. */
void scoreboard_unmap(struct scoreboard *sb);
/* A worker: map the board on fd, or NULL if fd is not one (not ours, wrong size). */
struct scoreboard *scoreboard_attach(int fd);

/* A worker: take a free slot for pid, state idle; its index or -1 (board full). */
int scoreboard_claim(struct scoreboard *sb, pid_t pid);
/* A worker: set its slot's state (SCORE_IDLE/BUSY/EXITING); SCORE_SERVED sticks. */
void scoreboard_set(struct scoreboard *sb, int slot, uint32_t state);
/* Is any slot other than self idle? */
bool scoreboard_other_idle(struct scoreboard *sb, int self);

/* master: the slot pid holds, or -1. */
int scoreboard_find(struct scoreboard *sb, pid_t pid);
/* master: the state of slot (SCORE_*, with SCORE_SERVED); SCORE_FREE unless pid holds it. */
uint32_t scoreboard_state(struct scoreboard *sb, int slot, pid_t pid);
/* master: free the slot of a reaped pid (no effect if pid does not hold it). */
void scoreboard_release(struct scoreboard *sb, int slot, pid_t pid);

#endif
