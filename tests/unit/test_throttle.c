/* Unit tests for throttle: when master stops restarting a failing service. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "throttle.h"

static void test_bad_limit_and_window_are_clamped_not_trusted(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    /* limit 0 behaves like 1: the second failure throttles */
    assert_false(throttle_failure(&t, 1000, 0, 0));
    assert_true(throttle_failure(&t, 1000, 0, 0));
    assert_true(throttle_active(&t, 1000));
    assert_false(throttle_active(&t, 1001)); /* window clamped to 1 s */

    throttle_init(&t);
    for (int i = 0; i < THROTTLE_MAX_LIMIT; i++)
        assert_false(throttle_failure(&t, 5000, 100000, 60));
    assert_true(throttle_failure(&t, 5000, 100000, 60));
}

static void test_limit_failures_do_not_throttle(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    for (int i = 0; i < 5; i++)
        assert_false(throttle_failure(&t, 100 + i, 5, 60));
    assert_false(throttle_active(&t, 105));
    assert_int_equal(throttle_remaining(&t, 105), 0);
}

static void test_more_than_limit_within_window_throttles_for_window(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    for (int i = 0; i < 5; i++)
        assert_false(throttle_failure(&t, 100 + i, 5, 60));
    assert_true(throttle_failure(&t, 110, 5, 60));
    assert_true(throttle_active(&t, 110));
    assert_true(throttle_active(&t, 169));
    assert_int_equal(throttle_remaining(&t, 140), 30);
    assert_false(throttle_active(&t, 170));
}

static void test_failures_spread_beyond_window_never_throttle(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    for (int i = 0; i < 100; i++)
        assert_false(throttle_failure(&t, 1000 + (time_t)i * 20, 5, 60));
}

static void test_failure_while_throttled_is_ignored(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    for (int i = 0; i < 6; i++)
        throttle_failure(&t, 100, 2, 60);
    assert_true(throttle_active(&t, 100));
    assert_false(throttle_failure(&t, 120, 2, 60));
    assert_int_equal(t.until, 160);
}

static void test_history_starts_over_after_throttle(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    for (int i = 0; i < 3; i++)
        throttle_failure(&t, 100, 2, 10);
    assert_true(throttle_active(&t, 105));
    /* after the pause, two quick failures are tolerated again */
    assert_false(throttle_failure(&t, 111, 2, 10));
    assert_false(throttle_failure(&t, 111, 2, 10));
    assert_true(throttle_failure(&t, 112, 2, 10));
}

static void test_clock_going_backwards_counts_as_recent(void **state)
{
    (void)state;
    struct throttle t;
    throttle_init(&t);
    assert_false(throttle_failure(&t, 1000, 1, 60));
    assert_true(throttle_failure(&t, 500, 1, 60));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_limit_and_window_are_clamped_not_trusted),
        cmocka_unit_test(test_limit_failures_do_not_throttle),
        cmocka_unit_test(test_more_than_limit_within_window_throttles_for_window),
        cmocka_unit_test(test_failures_spread_beyond_window_never_throttle),
        cmocka_unit_test(test_failure_while_throttled_is_ignored),
        cmocka_unit_test(test_history_starts_over_after_throttle),
        cmocka_unit_test(test_clock_going_backwards_counts_as_recent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
