/* retry - when to try a deferred message again, and when to give up. */
#include "qmgr.h"

/*
 * Like Postfix: wait as long as the message is old, clamped to
 * [minimal_backoff_time, maximal_backoff_time]. Each retry roughly doubles
 * the age, so the waits grow exponentially up to the maximum.
 */
long long qmgr_backoff(long long age, long long min_backoff, long long max_backoff)
{
    long long delay = age < 0 ? 0 : age;

    if (max_backoff < min_backoff)
        max_backoff = min_backoff;
    if (delay > max_backoff)
        delay = max_backoff;
    if (delay < min_backoff)
        delay = min_backoff;
    return delay;
}

bool qmgr_expired(long long age, long long lifetime)
{
    /* maximal_queue_lifetime = 0: one attempt only, like Postfix. */
    return age > lifetime || lifetime == 0;
}
