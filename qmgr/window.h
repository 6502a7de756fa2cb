/*
 * window - the concurrency window of one delivery destination (pure
 * arithmetic, unit-tested in qmgr/test_qmgr_window.c).
 *
 * A destination starts with initial_destination_concurrency parallel
 * deliveries; each delivery that reached the destination (dest_status=ok)
 * opens the window by one up to the destination limit (slow start). A
 * report that the destination could not be reached at all closes it to
 * one; after cohort_limit such reports in a row, with nothing else still in
 * flight, the destination counts as dead: the caller defers its mail
 * without trying for a while, and starts it over at a window of one.
 */
#ifndef TEGAMI_QMGR_WINDOW_H
#define TEGAMI_QMGR_WINDOW_H

#include <stdbool.h>
#include <stddef.h>

struct qmgr_window {
    unsigned window;       /* deliveries allowed in flight now (>= 1) */
    unsigned limit;        /* upper bound of window */
    unsigned failures;     /* consecutive dead reports */
    unsigned cohort_limit; /* failures that make the destination dead */
};

/* Start at init (clamped to [1, limit]). */
void qmgr_window_init(struct qmgr_window *w, unsigned init, unsigned limit, unsigned cohort_limit);
/* True when one more delivery may start with active already in flight. */
bool qmgr_window_room(const struct qmgr_window *w, size_t active);
/* A delivery reached the destination: +1 up to the limit. True if the window grew. */
bool qmgr_window_ok(struct qmgr_window *w);
/*
 * The destination was not reachable; active = deliveries still in flight
 * after this one. Closes the window to 1. True when the destination is now
 * dead (cohort_limit reports in a row and nothing in flight).
 */
bool qmgr_window_dead(struct qmgr_window *w, size_t active);
/* After the dead time: probe again with one delivery. */
void qmgr_window_revive(struct qmgr_window *w);

#endif
