/*
 * test_nexthop - qmgr's delivery destination as the smtp client parses it:
 * malformed input first, then every valid form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nexthop.h"

/* text must be rejected with exactly the error why; out is left cleared. */
static void assert_bad(const char *text, const char *why)
{
    struct nexthop nh;
    const char *err = NULL;
    memset(&nh, 0x5a, sizeof(nh));
    if (nexthop_parse(text, 25, &nh, &err) != -1)
        fail_msg("accepted \"%s\"", text != NULL ? text : "(null)");
    assert_non_null(err);
    if (strcmp(err, why) != 0)
        fail_msg("\"%s\": got \"%s\", want \"%s\"", text != NULL ? text : "(null)", err, why);
    assert_string_equal(nh.host, "");
    assert_int_equal(nh.port, 25);
    assert_false(nh.mx);
    assert_false(nh.literal);
}

static void assert_good(const char *text, const char *host, int port, bool mx, bool literal)
{
    struct nexthop nh;
    const char *err = "unset";
    if (nexthop_parse(text, 25, &nh, &err) != 0)
        fail_msg("rejected \"%s\": %s", text, err);
    assert_string_equal(nh.host, host);
    assert_int_equal(nh.port, port);
    assert_int_equal(nh.mx, mx);
    assert_int_equal(nh.literal, literal);
}

static void test_empty(void **state)
{
    (void)state;
    assert_bad(NULL, "empty nexthop");
    assert_bad("", "empty nexthop");
    assert_bad("[]", "empty host name");
    assert_bad("[]:25", "empty host name");
    assert_bad(":25", "empty host name");
    assert_bad(".", "empty host name");
    assert_bad(".:25", "empty host name");
    assert_bad("[.]", "empty host name");
    assert_bad("[IPv6:]", "empty IPv6 address literal");
}

static void test_unbalanced_brackets(void **state)
{
    (void)state;
    assert_bad("[", "missing ']'");
    assert_bad("[mx.example", "missing ']'");
    assert_bad("[mx.example:25", "missing ']'");
    assert_bad("mx.example]", "unbalanced brackets");
    assert_bad("mx.example]:25", "unbalanced brackets");
    assert_bad("]", "unbalanced brackets");
    assert_bad("mx[1].example", "unbalanced brackets");
    assert_bad("[[mx.example]]", "unbalanced brackets");
    assert_bad("[mx.example]]", "unbalanced brackets");
    assert_bad("[mx.example][x]", "unbalanced brackets");
    assert_bad("[mx.example]:25]", "unbalanced brackets");
    assert_bad("example.com:[25]", "unbalanced brackets");
}

static void test_bad_port(void **state)
{
    (void)state;
    assert_bad("example.com:", "empty port");
    assert_bad("[mx.example]:", "empty port");
    assert_bad("example.com:0", "port out of range (1-65535)");
    assert_bad("example.com:00000", "port out of range (1-65535)");
    assert_bad("[192.0.2.1]:0", "port out of range (1-65535)");
    assert_bad("example.com:65536", "port out of range (1-65535)");
    assert_bad("example.com:99999", "port out of range (1-65535)");
    assert_bad("example.com:000025", "port out of range (1-65535)");
    assert_bad("example.com:18446744073709551641", "port out of range (1-65535)");
    assert_bad("example.com:smtp", "port is not a number");
    assert_bad("example.com:-25", "port is not a number");
    assert_bad("example.com:+25", "port is not a number");
    assert_bad("example.com: 25", "port is not a number");
    assert_bad("[mx.example]:0x19", "trailing garbage after port");
    assert_bad("example.com:25 ", "trailing garbage after port");
    assert_bad("example.com:25:26", "trailing garbage after port");
    assert_bad("[2001:db8::1]:25:26", "trailing garbage after port");
}

static void test_overlong_names(void **state)
{
    (void)state;
    char name[400], text[420];

    /* 4 labels of 63 + 3 dots = 255 > 253 */
    memset(name, 'a', sizeof(name));
    name[63] = name[127] = name[191] = '.';
    name[255] = 0;
    assert_bad(name, "host name too long");
    snprintf(text, sizeof(text), "[%s]", name);
    assert_bad(text, "host name too long");
    snprintf(text, sizeof(text), "%s:25", name);
    assert_bad(text, "host name too long");

    /* 254 with its trailing dot: fine as a domain (the dot goes), too long in brackets */
    char want[260];
    name[253] = '.';
    name[254] = 0;
    memcpy(want, name, 253);
    want[253] = 0;
    assert_good(name, want, 25, true, false);
    snprintf(text, sizeof(text), "[%s]", name);
    assert_bad(text, "host name too long");

    /* one label of 64 */
    memset(name, 'b', 64);
    strcpy(name + 64, ".example");
    assert_bad(name, "host name label too long");
    snprintf(text, sizeof(text), "[%s]:587", name);
    assert_bad(text, "host name label too long");

    /* an IPv6 literal longer than any address text */
    assert_bad("[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000]", "bad IPv6 address literal");
}

static void test_bad_characters(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "exa mple.com",  "example.com ", " example.com", "exa\tmple.com", "ex\rample.com",
        "ex\nample.com", "exämple.com",  "ex@mple.com",  "ex/mple.com",   "ex\\mple.com",
        "[mx example]",  "[mx\x7f.ex]",  "ex,ample.com", "example.com;",  "\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_bad(bad[i], "bad character in host name");
    assert_bad("a..b", "empty label in host name");
    assert_bad(".example.com", "empty label in host name");
    assert_bad("[a..b]", "empty label in host name");
    assert_bad("example.com..", "empty label in host name");
}

static void test_bad_literals(void **state)
{
    (void)state;
    assert_bad("[IPv6:192.0.2.1]", "bad IPv6 address literal");
    assert_bad("[IPv6:mx.example]", "bad IPv6 address literal");
    assert_bad("[IPv6:2001:db8::1::2]", "bad IPv6 address literal");
    assert_bad("[IPv6:2001:db8::g]", "bad IPv6 address literal");
    assert_bad("[IPv6:fe80::1%eth0]", "bad IPv6 address literal");
    assert_bad("[mx:example]", "bad IPv6 address literal");
    assert_bad("[:25]", "bad IPv6 address literal");
    /* too short for the tag: a host named "IPv6" */
    assert_good("[IPv6]", "IPv6", 25, false, false);
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    assert_bad("[mx.example]x", "trailing garbage after ']'");
    assert_bad("[mx.example] ", "trailing garbage after ']'");
    assert_bad("[mx.example].", "trailing garbage after ']'");
    assert_bad("[192.0.2.1]25", "trailing garbage after ']'");
    assert_bad("example.com:25x", "trailing garbage after port");
}

static void test_domain(void **state)
{
    (void)state;
    assert_good("example.com", "example.com", 25, true, false);
    assert_good("Example.COM", "Example.COM", 25, true, false);
    assert_good("example.com.", "example.com", 25, true, false);
    assert_good("localhost", "localhost", 25, true, false);
    assert_good("b.test:10025", "b.test", 10025, true, false);
    assert_good("_srv-x.example:1", "_srv-x.example", 1, true, false);
    assert_good("example.com:65535", "example.com", 65535, true, false);
    assert_good("example.com.:587", "example.com", 587, true, false);
    assert_good("example.com:0025", "example.com", 25, true, false);
    /* an unbracketed address is a domain name to qmgr: MX lookup, no literal */
    assert_good("192.0.2.1", "192.0.2.1", 25, true, false);
}

static void test_bracketed_host(void **state)
{
    (void)state;
    assert_good("[mx.example]", "mx.example", 25, false, false);
    assert_good("[relay.example]:587", "relay.example", 587, false, false);
    /* the trailing dot stays inside brackets (as the name was given) */
    assert_good("[mx.example.]", "mx.example.", 25, false, false);
    /* looks like an address but is not one: a host name */
    assert_good("[192.0.2]", "192.0.2", 25, false, false);
    assert_good("[192.0.2.256]", "192.0.2.256", 25, false, false);
}

static void test_ipv4_literal(void **state)
{
    (void)state;
    assert_good("[192.0.2.1]", "192.0.2.1", 25, false, true);
    assert_good("[127.0.0.1]:10025", "127.0.0.1", 10025, false, true);
}

static void test_ipv6_literal(void **state)
{
    (void)state;
    assert_good("[IPv6:2001:db8::1]", "2001:db8::1", 25, false, true);
    assert_good("[ipv6:2001:DB8::1]:2525", "2001:DB8::1", 2525, false, true);
    assert_good("[IPV6:::1]", "::1", 25, false, true);
    assert_good("[2001:db8::1]", "2001:db8::1", 25, false, true);
    assert_good("[::1]:10025", "::1", 10025, false, true);
    assert_good("[IPv6:::ffff:192.0.2.1]", "::ffff:192.0.2.1", 25, false, true);
    assert_good("[IPv6:2001:0db8:0000:0000:0000:0000:0000:0001]",
                "2001:0db8:0000:0000:0000:0000:0000:0001", 25, false, true);
}

static void test_default_port_and_null_error(void **state)
{
    (void)state;
    struct nexthop nh;
    assert_int_equal(nexthop_parse("example.com", 2525, &nh, NULL), 0);
    assert_int_equal(nh.port, 2525);
    assert_int_equal(nexthop_parse("[192.0.2.1]", 465, &nh, NULL), 0);
    assert_int_equal(nh.port, 465);
    assert_int_equal(nexthop_parse("example.com:26", 2525, &nh, NULL), 0);
    assert_int_equal(nh.port, 26);
    /* error_r may be NULL; a failure leaves the default port */
    assert_int_equal(nexthop_parse("example.com:0", 2525, &nh, NULL), -1);
    assert_int_equal(nh.port, 2525);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_unbalanced_brackets),
        cmocka_unit_test(test_bad_port),
        cmocka_unit_test(test_overlong_names),
        cmocka_unit_test(test_bad_characters),
        cmocka_unit_test(test_bad_literals),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_domain),
        cmocka_unit_test(test_bracketed_host),
        cmocka_unit_test(test_ipv4_literal),
        cmocka_unit_test(test_ipv6_literal),
        cmocka_unit_test(test_default_port_and_null_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
