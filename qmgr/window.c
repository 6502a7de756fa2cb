/* window - per-destination concurrency window (window.h). */
#include "window.h"

void qmgr_window_init(struct qmgr_window *w, unsigned init, unsigned limit, unsigned cohort_limit)
{
    w->limit = limit < 1 ? 1 : limit;
    w->window = init < 1 ? 1 : init > w->limit ? w->limit : init;
    w->failures = 0;
    w->cohort_limit = cohort_limit < 1 ? 1 : cohort_limit;
}

bool qmgr_window_room(const struct qmgr_window *w, size_t active)
{
    return active < (size_t)w->window;
}

bool qmgr_window_ok(struct qmgr_window *w)
{
    w->failures = 0;
    if (w->window < w->limit) {
        w->window++;
        return true;
    }
    return false;
}

bool qmgr_window_dead(struct qmgr_window *w, size_t active)
{
    w->window = 1;
    if (w->failures < w->cohort_limit)
        w->failures++;
    return w->failures >= w->cohort_limit && active == 0;
}

void qmgr_window_revive(struct qmgr_window *w)
{
    w->window = 1;
    w->failures = 0;
}
