/*
 * throttle - the decision when master stops restarting a failing service.
 *
 * master records here every abnormal exit (killed by a signal, non-zero
 * exit status) of a process that had not yet served a client and was less
 * than MASTER_STARTUP_SECONDS old: a daemon that cannot start. A process
 * killed while working is replaced at once and not counted. When more than `limit` of them fall
 * within the last `window` seconds, the service is throttled: master starts
 * no process for it until `window` seconds have passed (then the history
 * starts over). Pure logic on caller-owned memory, no I/O, so it is unit-tested
 * without processes (tests/unit/test_throttle.c).
 */
#ifndef TEGAMI_THROTTLE_H
#define TEGAMI_THROTTLE_H

#include <stdbool.h>
#include <time.h>

/* Upper bound for limit; service_throttle_limit's maximum. */
#define THROTTLE_MAX_LIMIT 64

struct throttle {
    time_t fail[THROTTLE_MAX_LIMIT + 1]; /* ring of recent failure times */
    int count;                           /* valid entries in fail[] */
    int next;                            /* ring position of the next write */
    time_t until;                        /* throttled while now < until */
};

/* All clear. */
void throttle_init(struct throttle *t);
/*
 * Record one abnormal exit at now. Returns true when this failure throttles
 * the service (more than limit failures within window seconds); t->until is
 * then now + window. limit is clamped to 1..THROTTLE_MAX_LIMIT.
 */
bool throttle_failure(struct throttle *t, time_t now, int limit, time_t window);
/* True while the service must not be started. */
bool throttle_active(const struct throttle *t, time_t now);
/* Seconds until the throttle ends (0 when not throttled). */
time_t throttle_remaining(const struct throttle *t, time_t now);

#endif
