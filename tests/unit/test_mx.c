/*
 * test_mx - MX selection (RFC 5321 §5.1, RFC 7505): pure function, no DNS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mx.h"

/* Deterministic random source: a counter-driven LCG. */
static uint32_t test_rnd(void *ctx, uint32_t bound)
{
    uint32_t *state = ctx;
    *state = *state * 1103515245u + 12345u;
    return (*state >> 16) % bound;
}

/* Always picks 0: Fisher-Yates then rotates, a different order than the input. */
static uint32_t zero_rnd(void *ctx, uint32_t bound)
{
    (void)ctx;
    (void)bound;
    return 0;
}

static void test_invalid_arguments_are_rejected(void **state)
{
    (void)state;
    struct mx_record in[2] = {{10, "mx.a.test"}, {20, NULL}};
    struct mx_record out[2];
    size_t n = 99;

    assert_int_equal(mx_select(NULL, in, 1, NULL, 0, NULL, NULL, out, &n), MX_SELECT_INVALID);
    assert_int_equal(n, 0);
    assert_int_equal(mx_select("", in, 1, NULL, 0, NULL, NULL, out, &n), MX_SELECT_INVALID);
    assert_int_equal(mx_select(".", in, 1, NULL, 0, NULL, NULL, out, &n), MX_SELECT_INVALID);
    assert_int_equal(mx_select("a.test", in, 2, NULL, 0, NULL, NULL, out, &n), MX_SELECT_INVALID);
    assert_int_equal(mx_select("a.test", NULL, 1, NULL, 0, NULL, NULL, out, &n), MX_SELECT_INVALID);
    assert_int_equal(mx_select("a.test", in, 1, NULL, 0, NULL, NULL, NULL, &n), MX_SELECT_INVALID);
    assert_int_equal(mx_select("a.test", in, MX_SELECT_MAX + 1, NULL, 0, NULL, NULL, out, &n),
                     MX_SELECT_INVALID);
    assert_int_equal(n, 0);
}

static void test_no_mx_uses_the_domain_itself(void **state)
{
    (void)state;
    struct mx_record out[1];
    size_t n = 0;

    assert_int_equal(mx_select("nomx.test", NULL, 0, NULL, 0, NULL, NULL, out, &n), MX_SELECT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].host, "nomx.test");
    assert_int_equal(out[0].pref, 0);
}

static void test_no_mx_for_own_name_is_a_loop(void **state)
{
    (void)state;
    const char *self[] = {"mail.a.test"};
    struct mx_record out[1];
    size_t n = 0;

    assert_int_equal(mx_select("MAIL.a.test.", NULL, 0, self, 1, NULL, NULL, out, &n),
                     MX_SELECT_LOOP);
    assert_int_equal(n, 0);
}

static void test_null_mx_is_reported(void **state)
{
    (void)state;
    struct mx_record dot[1] = {{0, "."}};
    struct mx_record empty[1] = {{0, ""}};
    struct mx_record out[1];
    size_t n = 7;

    assert_int_equal(mx_select("nullmx.test", dot, 1, NULL, 0, NULL, NULL, out, &n),
                     MX_SELECT_NULL_MX);
    assert_int_equal(n, 0);
    assert_int_equal(mx_select("nullmx.test", empty, 1, NULL, 0, NULL, NULL, out, &n),
                     MX_SELECT_NULL_MX);
}

static void test_root_mixed_with_hosts_is_dropped(void **state)
{
    (void)state;
    struct mx_record in[2] = {{0, "."}, {10, "mx.b.test"}};
    struct mx_record out[2];
    size_t n = 0;

    assert_int_equal(mx_select("b.test", in, 2, NULL, 0, NULL, NULL, out, &n), MX_SELECT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].host, "mx.b.test");
}

static void test_sorted_by_preference(void **state)
{
    (void)state;
    struct mx_record in[3] = {{30, "c"}, {10, "a"}, {20, "b"}};
    struct mx_record out[3];
    size_t n = 0;
    uint32_t seed = 1;

    assert_int_equal(mx_select("x.test", in, 3, NULL, 0, test_rnd, &seed, out, &n), MX_SELECT_OK);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].host, "a");
    assert_string_equal(out[1].host, "b");
    assert_string_equal(out[2].host, "c");
    assert_int_equal(out[0].pref, 10);
    assert_int_equal(out[2].pref, 30);
}

static void test_equal_preferences_shuffled_but_all_present(void **state)
{
    (void)state;
    struct mx_record in[5] = {{10, "e1"}, {10, "e2"}, {10, "e3"}, {5, "first"}, {20, "last"}};
    struct mx_record out[5];
    size_t n = 0;
    bool order_changed = false;

    for (uint32_t seed = 1; seed < 50; seed++) {
        uint32_t s = seed;
        assert_int_equal(mx_select("x.test", in, 5, NULL, 0, test_rnd, &s, out, &n), MX_SELECT_OK);
        assert_int_equal(n, 5);
        assert_string_equal(out[0].host, "first");
        assert_string_equal(out[4].host, "last");
        bool seen[3] = {false, false, false};
        for (size_t i = 1; i < 4; i++) {
            assert_int_equal(out[i].pref, 10);
            assert_int_equal(out[i].host[0], 'e');
            seen[out[i].host[1] - '1'] = true;
        }
        assert_true(seen[0] && seen[1] && seen[2]);
        if (strcmp(out[1].host, "e1") != 0)
            order_changed = true;
    }
    assert_true(order_changed);
    /* The shuffle uses the injected source: a constant one gives a fixed, non-identity order. */
    assert_int_equal(mx_select("x.test", in, 3, NULL, 0, zero_rnd, NULL, out, &n), MX_SELECT_OK);
    assert_string_equal(out[0].host, "e2");
    assert_string_equal(out[1].host, "e3");
    assert_string_equal(out[2].host, "e1");
}

static void test_default_random_source_keeps_every_host(void **state)
{
    (void)state;
    struct mx_record in[2] = {{10, "p"}, {10, "q"}};
    struct mx_record out[2];
    size_t n = 0;

    assert_int_equal(mx_select("x.test", in, 2, NULL, 0, NULL, NULL, out, &n), MX_SELECT_OK);
    assert_int_equal(n, 2);
    assert_true(strcmp(out[0].host, out[1].host) != 0);
}

static void test_self_drops_it_and_less_preferred_hosts(void **state)
{
    (void)state;
    struct mx_record in[4] = {
        {10, "mx1.a.test"}, {20, "me.a.test."}, {20, "peer.a.test"}, {30, "mx3.a.test"}};
    const char *self[] = {"other", "ME.A.TEST"};
    struct mx_record out[4];
    size_t n = 0;
    uint32_t seed = 3;

    assert_int_equal(mx_select("a.test", in, 4, self, 2, test_rnd, &seed, out, &n), MX_SELECT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].host, "mx1.a.test");
}

static void test_self_as_best_mx_is_a_loop(void **state)
{
    (void)state;
    struct mx_record in[3] = {{20, "backup.a.test"}, {10, "me.a.test"}, {10, "twin.a.test"}};
    const char *self[] = {"me.a.test"};
    struct mx_record out[3];
    size_t n = 5;

    for (uint32_t seed = 1; seed < 10; seed++) {
        uint32_t s = seed;
        assert_int_equal(mx_select("a.test", in, 3, self, 1, test_rnd, &s, out, &n),
                         MX_SELECT_LOOP);
        assert_int_equal(n, 0);
    }
    assert_string_equal(mx_result_str(MX_SELECT_LOOP), "mail loop");
    assert_string_equal(mx_result_str(MX_SELECT_NULL_MX), "null MX");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_arguments_are_rejected),
        cmocka_unit_test(test_no_mx_uses_the_domain_itself),
        cmocka_unit_test(test_no_mx_for_own_name_is_a_loop),
        cmocka_unit_test(test_null_mx_is_reported),
        cmocka_unit_test(test_root_mixed_with_hosts_is_dropped),
        cmocka_unit_test(test_sorted_by_preference),
        cmocka_unit_test(test_equal_preferences_shuffled_but_all_present),
        cmocka_unit_test(test_default_random_source_keeps_every_host),
        cmocka_unit_test(test_self_drops_it_and_less_preferred_hosts),
        cmocka_unit_test(test_self_as_best_mx_is_a_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
