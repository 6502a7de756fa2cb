#include "throttle.h"

#include <string.h>

void throttle_init(struct throttle *t)
{
    memset(t, 0, sizeof(*t));
}

bool throttle_failure(struct throttle *t, time_t now, int limit, time_t window)
{
    if (limit < 1)
        limit = 1;
    if (limit > THROTTLE_MAX_LIMIT)
        limit = THROTTLE_MAX_LIMIT;
    if (window < 1)
        window = 1;

    /* A failure seen while already throttled (a process still exiting) changes nothing. */
    if (throttle_active(t, now))
        return false;

    const int cap = THROTTLE_MAX_LIMIT + 1;
    t->fail[t->next] = now;
    t->next = (t->next + 1) % cap;
    if (t->count < cap)
        t->count++;

    /* Count failures inside (now - window, now]; the ring holds the newest ones. */
    int recent = 0;
    for (int i = 0; i < t->count; i++) {
        int idx = (t->next - 1 - i + cap) % cap;
        time_t when = t->fail[idx];
        if (when > now || now - when < window)
            recent++;
        else
            break; /* older entries are older still */
    }
    if (recent > limit) {
        t->until = now + window;
        t->count = 0;
        t->next = 0;
        return true;
    }
    return false;
}

bool throttle_active(const struct throttle *t, time_t now)
{
    return t->until != 0 && now < t->until;
}

time_t throttle_remaining(const struct throttle *t, time_t now)
{
    return throttle_active(t, now) ? t->until - now : 0;
}
