/* Unit tests for anvil_table: per-client connection count, rate windows, AUTH failure counts,
 * expiry, bounds, protocol step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "anvil_table.h"

static void add_req(struct attr_list *l, const char *request, const char *service,
                    const char *client)
{
    attr_list_reset(l);
    if (request)
        attr_list_add_str(l, "request", request);
    if (service)
        attr_list_add_str(l, "service", service);
    if (client)
        attr_list_add_str(l, "client", client);
}

static void test_malformed_requests_are_refused(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    struct anvil_opens o = {NULL, 0, 0, 10};
    struct attr_list req = ATTR_LIST_INIT, rep = ATTR_LIST_INIT;
    char longname[ANVIL_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';

    add_req(&req, NULL, "smtp", "1.2.3.4");
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "error");
    add_req(&req, "connect", NULL, "1.2.3.4");
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    add_req(&req, "connect", "smtp", NULL);
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    add_req(&req, "connect", "smtp", "");
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    add_req(&req, "connect", "smtp", "1.2.3.4 x");
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    add_req(&req, "connect", longname, "1.2.3.4");
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    attr_list_reset(&req);
    attr_list_add_str(&req, "request", "connect");
    attr_list_add_str(&req, "service", "smtp");
    attr_list_add(&req, "client", "1.2\0.3", 6);
    assert_false(anvil_table_request(t, &o, &req, 0, &rep));
    assert_int_equal(anvil_table_size(t), 0);

    /* Unknown but well-formed: answered, connection kept. */
    add_req(&req, "frobnicate", "smtp", "1.2.3.4");
    assert_true(anvil_table_request(t, &o, &req, 0, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "error");

    attr_list_release(&req);
    attr_list_release(&rep);
    anvil_table_close(t, &o, 0);
    anvil_table_free(&t);
    assert_null(t);
}

static void test_count_goes_up_and_down_per_service_and_address(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    unsigned c, r;
    assert_int_equal(anvil_table_connect(t, "smtp", "10.0.0.1", 100, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 1);
    assert_int_equal(anvil_table_connect(t, "smtp", "10.0.0.1", 100, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 2);
    assert_int_equal(r, 2);
    /* Other address, other service: separate entries. */
    assert_int_equal(anvil_table_connect(t, "smtp", "10.0.0.2", 100, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 1);
    assert_int_equal(anvil_table_connect(t, "submission", "10.0.0.1", 100, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 1);
    assert_int_equal(anvil_table_size(t), 3);

    assert_int_equal(anvil_table_disconnect(t, "smtp", "10.0.0.1", 101), ANVIL_TABLE_OK);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.0.0.1", 101, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 1);
    assert_int_equal(r, 2); /* the rate remembers closed connections */
    assert_int_equal(anvil_table_disconnect(t, "smtp", "10.0.0.1", 101), ANVIL_TABLE_OK);
    /* Never below zero. */
    assert_int_equal(anvil_table_disconnect(t, "smtp", "10.0.0.1", 101), ANVIL_TABLE_OK);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.0.0.1", 101, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 0);
    assert_int_equal(anvil_table_disconnect(t, "smtp", "10.9.9.9", 101), ANVIL_TABLE_UNKNOWN);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.9.9.9", 101, &c, &r), ANVIL_TABLE_UNKNOWN);
    anvil_table_free(&t);
}

static void test_rate_window_restarts_after_time_unit(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    unsigned c, r;
    for (int i = 0; i < 5; i++) {
        anvil_table_connect(t, "smtp", "10.0.0.1", 1000 + i, &c, &r);
        anvil_table_disconnect(t, "smtp", "10.0.0.1", 1000 + i);
    }
    assert_int_equal(r, 5);
    assert_int_equal(c, 1);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.0.0.1", 1059, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(r, 5);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.0.0.1", 1060, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(r, 0);
    anvil_table_connect(t, "smtp", "10.0.0.1", 1060, &c, &r);
    assert_int_equal(r, 1);
    anvil_table_free(&t);
}

static void test_idle_entries_expire_open_ones_stay(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    unsigned c, r;
    anvil_table_connect(t, "smtp", "10.0.0.1", 0, &c, &r); /* stays open */
    anvil_table_connect(t, "smtp", "10.0.0.2", 0, &c, &r);
    anvil_table_disconnect(t, "smtp", "10.0.0.2", 10);
    anvil_table_connect(t, "smtp", "10.0.0.3", 30, &c, &r);
    anvil_table_disconnect(t, "smtp", "10.0.0.3", 30);
    assert_int_equal(anvil_table_expire(t, 69), 0);
    assert_int_equal(anvil_table_expire(t, 70), 1); /* .2: idle since 10 */
    assert_int_equal(anvil_table_size(t), 2);
    assert_int_equal(anvil_table_expire(t, 1000), 1); /* .3; .1 is still open */
    assert_int_equal(anvil_table_size(t), 1);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.0.0.1", 1000, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 1);
    anvil_table_free(&t);
}

static void test_full_table_drops_idle_entries_then_refuses(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(2, 60);
    unsigned c, r;
    anvil_table_connect(t, "smtp", "10.0.0.1", 0, &c, &r);
    anvil_table_connect(t, "smtp", "10.0.0.2", 1, &c, &r);
    anvil_table_disconnect(t, "smtp", "10.0.0.2", 2);
    /* Full: the idle .2 makes room although its window is live. */
    assert_int_equal(anvil_table_connect(t, "smtp", "10.0.0.3", 3, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(anvil_table_size(t), 2);
    assert_int_equal(anvil_table_lookup(t, "smtp", "10.0.0.2", 3, &c, &r), ANVIL_TABLE_UNKNOWN);
    /* Every entry has open connections: not recorded. */
    assert_int_equal(anvil_table_connect(t, "smtp", "10.0.0.4", 4, &c, &r), ANVIL_TABLE_FULL);
    assert_int_equal(c, 0);
    assert_int_equal(r, 0);
    /* Known addresses still count. */
    assert_int_equal(anvil_table_connect(t, "smtp", "10.0.0.1", 4, &c, &r), ANVIL_TABLE_OK);
    assert_int_equal(c, 2);
    assert_int_equal(anvil_table_size(t), 2);
    anvil_table_free(&t);
}

static void test_many_clients_stay_bounded(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(100, 60);
    unsigned c, r;
    char addr[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_int_equal(anvil_table_connect(t, "smtp", addr, i / 100, &c, &r), ANVIL_TABLE_OK);
        anvil_table_disconnect(t, "smtp", addr, i / 100);
        assert_true(anvil_table_size(t) <= 100);
    }
    anvil_table_free(&t);
}

static void test_protocol_connect_disconnect_and_client_close(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    struct anvil_opens a = {NULL, 0, 0, 2}, b = {NULL, 0, 0, 2};
    struct attr_list req = ATTR_LIST_INIT, rep = ATTR_LIST_INIT;
    long long v;

    add_req(&req, "connect", "smtp", "192.0.2.1");
    assert_true(anvil_table_request(t, &a, &req, 10, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "ok");
    assert_true(attr_list_get_int(&rep, "count", &v));
    assert_int_equal(v, 1);
    assert_true(anvil_table_request(t, &b, &req, 10, &rep));
    assert_true(attr_list_get_int(&rep, "count", &v));
    assert_int_equal(v, 2);
    assert_true(attr_list_get_int(&rep, "rate", &v));
    assert_int_equal(v, 2);

    /* b may not close a's connection twice: its own only. */
    add_req(&req, "disconnect", "smtp", "192.0.2.1");
    assert_true(anvil_table_request(t, &b, &req, 11, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "ok");
    assert_null(attr_list_get(&rep, "count"));
    assert_true(anvil_table_request(t, &b, &req, 11, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "unknown");

    add_req(&req, "lookup", "smtp", "192.0.2.1");
    assert_true(anvil_table_request(t, &b, &req, 11, &rep));
    assert_true(attr_list_get_int(&rep, "count", &v));
    assert_int_equal(v, 1);

    /* A client at its open limit: not recorded. */
    add_req(&req, "connect", "smtp", "192.0.2.2");
    assert_true(anvil_table_request(t, &a, &req, 12, &rep));
    assert_true(anvil_table_request(t, &a, &req, 12, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "full");

    /* a dies: its connections are closed for it. */
    anvil_table_close(t, &a, 13);
    assert_int_equal(
        anvil_table_lookup(t, "smtp", "192.0.2.1", 13, (unsigned[]){0}, (unsigned[]){0}),
        ANVIL_TABLE_OK);
    unsigned c, r;
    anvil_table_lookup(t, "smtp", "192.0.2.1", 13, &c, &r);
    assert_int_equal(c, 0);
    anvil_table_lookup(t, "smtp", "192.0.2.2", 13, &c, &r);
    assert_int_equal(c, 0);
    anvil_table_close(t, &b, 13);
    assert_int_equal(anvil_table_expire(t, 1000), 2);

    attr_list_release(&req);
    attr_list_release(&rep);
    anvil_table_free(&t);
}

static void test_auth_failures_count_per_address_in_a_window(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    unsigned f, c, r;
    /* No entry yet: unknown, 0. */
    assert_int_equal(anvil_table_auth_failures(t, "auth", "10.0.0.1", 100, &f),
                     ANVIL_TABLE_UNKNOWN);
    assert_int_equal(f, 0);
    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(anvil_table_auth_fail(t, "auth", "10.0.0.1", 100 + i, &f), ANVIL_TABLE_OK);
        assert_int_equal(f, i);
    }
    /* Other address, other service: counted apart; connections are not failures. */
    assert_int_equal(anvil_table_auth_fail(t, "auth", "10.0.0.2", 103, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 1);
    assert_int_equal(anvil_table_auth_fail(t, "other", "10.0.0.1", 103, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 1);
    anvil_table_connect(t, "auth", "10.0.0.1", 104, &c, &r);
    assert_int_equal(anvil_table_auth_failures(t, "auth", "10.0.0.1", 104, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 3);
    /* Failures do not count as connections. */
    assert_int_equal(c, 1);
    assert_int_equal(r, 1);
    anvil_table_disconnect(t, "auth", "10.0.0.1", 104);

    /* The window started at the first failure (101): still 3 at 160, none from 161. */
    assert_int_equal(anvil_table_auth_failures(t, "auth", "10.0.0.1", 160, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 3);
    assert_int_equal(anvil_table_auth_failures(t, "auth", "10.0.0.1", 161, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 0);
    /* A clock that went back reads as a new window too. */
    assert_int_equal(anvil_table_auth_failures(t, "auth", "10.0.0.1", 50, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 0);
    /* The next failure starts a new window. */
    assert_int_equal(anvil_table_auth_fail(t, "auth", "10.0.0.1", 161, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 1);
    assert_int_equal(anvil_table_auth_fail(t, "auth", "10.0.0.1", 220, &f), ANVIL_TABLE_OK);
    assert_int_equal(f, 2);
    anvil_table_free(&t);
}

static void test_auth_failure_entries_expire_and_are_bounded(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(2, 60);
    unsigned f, c, r;
    anvil_table_auth_fail(t, "auth", "10.0.0.1", 0, &f);
    anvil_table_auth_fail(t, "auth", "10.0.0.1", 30, &f);
    /* Kept one unit after the last failure, then removed. */
    assert_int_equal(anvil_table_expire(t, 89), 0);
    assert_int_equal(anvil_table_expire(t, 90), 1);
    assert_int_equal(anvil_table_size(t), 0);

    /* Full of open connections: a failure is not recorded. */
    anvil_table_connect(t, "smtp", "10.0.0.1", 100, &c, &r);
    anvil_table_connect(t, "smtp", "10.0.0.2", 100, &c, &r);
    assert_int_equal(anvil_table_auth_fail(t, "auth", "10.0.0.3", 100, &f), ANVIL_TABLE_FULL);
    assert_int_equal(f, 0);
    assert_int_equal(anvil_table_size(t), 2);
    anvil_table_free(&t);
}

static void test_protocol_auth_fail_and_lookup(void **state)
{
    (void)state;
    struct anvil_table *t = anvil_table_create(10, 60);
    struct anvil_opens a = {NULL, 0, 0, 2};
    struct attr_list req = ATTR_LIST_INIT, rep = ATTR_LIST_INIT;
    long long v;

    add_req(&req, "lookup", "auth", "192.0.2.1");
    assert_true(anvil_table_request(t, &a, &req, 10, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "unknown");
    assert_true(attr_list_get_int(&rep, "auth_failures", &v));
    assert_int_equal(v, 0);

    add_req(&req, "auth_fail", "auth", "192.0.2.1");
    for (long long i = 1; i <= 2; i++) {
        assert_true(anvil_table_request(t, &a, &req, 10, &rep));
        assert_string_equal(attr_list_get(&rep, "status"), "ok");
        assert_true(attr_list_get_int(&rep, "auth_failures", &v));
        assert_int_equal(v, i);
        assert_null(attr_list_get(&rep, "count"));
    }
    /* Not a connection: nothing in opens, nothing to disconnect. */
    assert_int_equal(a.count, 0);

    add_req(&req, "lookup", "auth", "192.0.2.1");
    assert_true(anvil_table_request(t, &a, &req, 11, &rep));
    assert_string_equal(attr_list_get(&rep, "status"), "ok");
    assert_true(attr_list_get_int(&rep, "auth_failures", &v));
    assert_int_equal(v, 2);
    assert_true(attr_list_get_int(&rep, "count", &v));
    assert_int_equal(v, 0);

    /* A malformed auth_fail is refused like any other request. */
    add_req(&req, "auth_fail", "auth", NULL);
    assert_false(anvil_table_request(t, &a, &req, 11, &rep));
    add_req(&req, "auth_fail", "auth", "192.0.2.1 x");
    assert_false(anvil_table_request(t, &a, &req, 11, &rep));
    add_req(&req, "auth_fail", NULL, "192.0.2.1");
    assert_false(anvil_table_request(t, &a, &req, 11, &rep));

    attr_list_release(&req);
    attr_list_release(&rep);
    anvil_table_close(t, &a, 12);
    anvil_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_requests_are_refused),
        cmocka_unit_test(test_count_goes_up_and_down_per_service_and_address),
        cmocka_unit_test(test_rate_window_restarts_after_time_unit),
        cmocka_unit_test(test_idle_entries_expire_open_ones_stay),
        cmocka_unit_test(test_full_table_drops_idle_entries_then_refuses),
        cmocka_unit_test(test_many_clients_stay_bounded),
        cmocka_unit_test(test_protocol_connect_disconnect_and_client_close),
        cmocka_unit_test(test_auth_failures_count_per_address_in_a_window),
        cmocka_unit_test(test_auth_failure_entries_expire_and_are_bounded),
        cmocka_unit_test(test_protocol_auth_fail_and_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
