/*
 * Unit tests for qmgr's routing (resolve.c: transport values, nexthops,
 * transport_maps with parent domains, relayhost, default_transport) and
 * the destination concurrency window (window.c). Real Berkeley DB tables
 * are built in a scratch config directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../tests/unit/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dict.h"
#include "resolve.h"
#include "strbuf.h"
#include "window.h"

static char tmpdir[4096];

static void load_config(const char *extra)
{
    struct strbuf err = STRBUF_INIT;
    char text[9000];
    config_reset();
    config_set_directory(tmpdir);
    snprintf(text, sizeof(text),
             "myhostname = mail.example.test\n"
             "mydomain = example.test\n"
             "mydestination = $mydomain, $myhostname, localhost\n"
             "alias_maps =\n"
             "virtual_user_maps = hash:%s/users\n"
             "%s",
             tmpdir, extra);
    assert_int_equal(config_load_text("main.cf", text, strlen(text), &err), 0);
    strbuf_release(&err);
}

static int setup(void **state)
{
    (void)state;
    if (test_scratch_dir(tmpdir, sizeof(tmpdir), "test_qmgr_route") < 0)
        return -1;
    struct strbuf err = STRBUF_INIT;
    char spec[4200];
    const char *ukeys[] = {"alice"};
    const char *uvalues[] = {"$6$salt$x"};
    snprintf(spec, sizeof(spec), "hash:%s/users", tmpdir);
    if (dict_build_pairs(spec, ukeys, uvalues, 1, &err) < 0)
        return -1;
    const char *keys[] = {"routed.test", ".parent.test", "blocked.test",    "tolocal.test",
                          "weird.test",  "soft.test",    "bad-nexthop.test"};
    const char *values[] = {"smtp:[127.0.0.1]:2525",
                            "smtp:[gw.parent.test]",
                            "error:5.7.1 we do not send there",
                            "local:",
                            "uucp:somewhere",
                            "error:4.3.2 try later",
                            "smtp:bad host"};
    snprintf(spec, sizeof(spec), "hash:%s/transport", tmpdir);
    if (dict_build_pairs(spec, keys, values, 7, &err) < 0) {
        fprintf(stderr, "dict_build_pairs: %s\n", strbuf_str(&err));
        return -1;
    }
    strbuf_release(&err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

static void parse(const char *value, const char *domain, struct qmgr_route *r)
{
    qmgr_route_parse(value, domain, r);
}

static void test_transport_value_garbage_defers_never_bounces(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    (void)state;
    const char *bad[] = {"",
                         "uucp:x",
                         "smtp:bad host",
                         "smtp:[unclosed",
                         "smtp:[]",
                         "smtp:host:0",
                         "smtp:host:99999",
                         "smtp:host:12x",
                         "smtp:[1.2.3.4]junk",
                         "\001\002:x",
                         "smtp:h\x01st"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse(bad[i], "example.test", &r);
        assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
        assert_string_equal(r.dsn, "4.3.5");
        /* The reason never carries control bytes into logs or bounces. */
        for (const char *p = strbuf_str(&r.reason); *p != '\0'; p++)
            assert_true((unsigned char)*p >= 0x20);
    }
    parse(NULL, "example.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
    qmgr_route_release(&r);
}

static void test_transport_value_smtp_nexthops(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    (void)state;
    parse("smtp:", "Example.TEST", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "example.test");
    parse("smtp", "b.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "b.test");
    parse("smtp:[Relay.Test]:587", "b.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "[relay.test]:587");
    parse("smtp:[127.0.0.1]:2525", "b.test", &r);
    assert_string_equal(strbuf_str(&r.nexthop), "[127.0.0.1]:2525");
    parse("smtp:[ipv6:2001:db8::1]", "b.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    parse("smtp:mx.b.test:26", "b.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "mx.b.test:26");
    parse("smtp:", "[192.0.2.1]", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "[192.0.2.1]");
    qmgr_route_release(&r);
}

static void test_transport_value_error_and_local(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    (void)state;
    parse("error:5.7.1 no mail for you", "x.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_string_equal(r.dsn, "5.7.1");
    assert_string_equal(strbuf_str(&r.reason), "no mail for you");
    parse("error:just text", "x.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_string_equal(r.dsn, "5.0.0");
    assert_string_equal(strbuf_str(&r.reason), "just text");
    parse("error:", "x.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_true(r.reason.len > 0);
    parse("error:4.3.2 later", "x.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
    assert_string_equal(r.dsn, "4.3.2");
    parse("error:2.0.0 fine", "x.test", &r); /* a success code is not an error code */
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_string_equal(r.dsn, "5.0.0");
    parse("error:5.7.1 bad\x01text\x7f", "x.test", &r); /* found by fuzz_qmgr_route */
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_string_equal(strbuf_str(&r.reason), "bad?text?");
    parse("local:", "x.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    parse("local", "x.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    qmgr_route_release(&r);
}

static void resolve(const char *addr, struct qmgr_route *r)
{
    qmgr_resolve(addr, r);
}

static void test_resolve_local_domains_go_to_local(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    char extra[4500];
    (void)state;
    snprintf(extra, sizeof(extra), "transport_maps = hash:%s/transport\nrelayhost = [relay.test]\n",
             tmpdir);
    load_config(extra);
    resolve("alice@example.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    resolve("nosuch@EXAMPLE.test", &r); /* local says 5.1.1, not qmgr */
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    resolve("alice", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    qmgr_route_release(&r);
}

static void test_resolve_transport_maps_domain_then_parents(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    char extra[4500];
    (void)state;
    snprintf(extra, sizeof(extra), "transport_maps = hash:%s/transport\n", tmpdir);
    load_config(extra);
    resolve("bob@Routed.Test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "[127.0.0.1]:2525");
    /* "routed.test" does not match its subdomains; ".parent.test" does, not itself. */
    resolve("bob@sub.routed.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "sub.routed.test");
    resolve("bob@a.b.parent.test", &r);
    assert_string_equal(strbuf_str(&r.nexthop), "[gw.parent.test]");
    resolve("bob@parent.test", &r);
    assert_string_equal(strbuf_str(&r.nexthop), "parent.test");
    resolve("bob@blocked.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_string_equal(r.dsn, "5.7.1");
    assert_string_equal(strbuf_str(&r.reason), "we do not send there");
    resolve("bob@tolocal.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    resolve("bob@weird.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
    assert_string_equal(r.dsn, "4.3.5");
    resolve("bob@soft.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
    assert_string_equal(r.dsn, "4.3.2");
    resolve("bob@bad-nexthop.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
    resolve("bob@Other.Test.", &r); /* not in the table: the domain, lower-cased, no dot */
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "other.test");
    qmgr_route_release(&r);
}

static void test_resolve_relayhost_then_default_transport(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    char extra[4500];
    (void)state;
    snprintf(extra, sizeof(extra),
             "transport_maps = hash:%s/transport\nrelayhost = [Relay.test]:587\n", tmpdir);
    load_config(extra);
    resolve("bob@routed.test", &r); /* transport_maps wins over relayhost */
    assert_string_equal(strbuf_str(&r.nexthop), "[127.0.0.1]:2525");
    resolve("bob@far.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "[relay.test]:587");
    load_config("default_transport = error:5.3.0 no outbound mail here\n");
    resolve("bob@far.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_ERROR);
    assert_string_equal(r.dsn, "5.3.0");
    load_config("");
    resolve("bob@far.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_SMTP);
    assert_string_equal(strbuf_str(&r.nexthop), "far.test");
    qmgr_route_release(&r);
}

static void test_resolve_missing_table_defers(void **state)
{
    struct qmgr_route r = QMGR_ROUTE_INIT;
    (void)state;
    load_config("transport_maps = hash:/nonexistent/transport\n");
    resolve("bob@far.test", &r);
    assert_int_equal(r.kind, QMGR_ROUTE_DEFER);
    assert_string_equal(r.dsn, "4.3.0");
    resolve("alice@example.test", &r); /* local mail does not need the table */
    assert_int_equal(r.kind, QMGR_ROUTE_LOCAL);
    load_config("");
    qmgr_route_release(&r);
}

static void test_window_slow_start_and_limit(void **state)
{
    struct qmgr_window w;
    (void)state;
    qmgr_window_init(&w, 5, 20, 1);
    assert_int_equal(w.window, 5);
    assert_true(qmgr_window_room(&w, 4));
    assert_false(qmgr_window_room(&w, 5));
    for (int i = 0; i < 15; i++)
        assert_true(qmgr_window_ok(&w));
    assert_int_equal(w.window, 20);
    assert_false(qmgr_window_ok(&w)); /* capped */
    assert_int_equal(w.window, 20);
    qmgr_window_init(&w, 0, 0, 0); /* nonsense clamps to 1 */
    assert_int_equal(w.window, 1);
    assert_int_equal(w.limit, 1);
    qmgr_window_init(&w, 50, 20, 1);
    assert_int_equal(w.window, 20);
}

static void test_window_dead_needs_cohorts_and_nothing_in_flight(void **state)
{
    struct qmgr_window w;
    (void)state;
    qmgr_window_init(&w, 5, 20, 1);
    assert_false(qmgr_window_dead(&w, 3)); /* others still in flight: not dead yet */
    assert_int_equal(w.window, 1);
    assert_true(qmgr_window_dead(&w, 0));
    qmgr_window_revive(&w);
    assert_int_equal(w.window, 1);
    assert_int_equal(w.failures, 0);

    qmgr_window_init(&w, 5, 20, 3);
    assert_false(qmgr_window_dead(&w, 0));
    assert_false(qmgr_window_dead(&w, 0));
    assert_true(qmgr_window_ok(&w)); /* a success resets the count */
    assert_int_equal(w.window, 2);
    assert_false(qmgr_window_dead(&w, 0));
    assert_false(qmgr_window_dead(&w, 0));
    assert_true(qmgr_window_dead(&w, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_value_garbage_defers_never_bounces),
        cmocka_unit_test(test_transport_value_smtp_nexthops),
        cmocka_unit_test(test_transport_value_error_and_local),
        cmocka_unit_test(test_resolve_local_domains_go_to_local),
        cmocka_unit_test(test_resolve_transport_maps_domain_then_parents),
        cmocka_unit_test(test_resolve_relayhost_then_default_transport),
        cmocka_unit_test(test_resolve_missing_table_defers),
        cmocka_unit_test(test_window_slow_start_and_limit),
        cmocka_unit_test(test_window_dead_needs_cohorts_and_nothing_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
