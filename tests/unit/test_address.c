/* Unit tests for libmail/address.c: RFC 5321 mailboxes and paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

static bool parse(const char *s, unsigned flags, struct address *a, const char **why)
{
    return address_parse(s, strlen(s), flags, a, why);
}

static void expect_reject(const char *s, unsigned flags)
{
    struct address a;
    const char *why = NULL;
    if (parse(s, flags, &a, &why))
        fail_msg("accepted \"%s\"", s);
    assert_non_null(why);
    assert_null(a.local);
    assert_null(a.domain);
}

static void test_parse_rejects_malformed_mailboxes(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "@",
        "a@",
        "@b",
        "a",
        "a@b@c",
        ".a@b",
        "a.@b",
        "a..b@c",
        "a b@c",
        "a@b c",
        "a@-b",
        "a@b-",
        "a@b.",
        "a@.b",
        "a@b..c",
        "\"a@b",
        "\"a\"b@c",
        "a\"b\"@c",
        "a@[1.2.3]",
        "a@[1.2.3.256]",
        "a@[IPv6:zz::1]",
        "a@[tag:]",
        "a@[:x]",
        "a@[tag:a b]",
        "a@[x",
        "a(b)@c",
        "a,b@c",
        "a:b@c",
        "a<b@c",
        "a@b_c",
        "a@[tag:a\\b]",
        "\"\\\x01\"@b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reject(bad[i], 0);
}

static void test_parse_rejects_controls_nul_and_line_breaks(void **state)
{
    (void)state;
    expect_reject("a\r\n@b", ADDRESS_UTF8);
    expect_reject("a\n@b", ADDRESS_UTF8);
    expect_reject("a@b\r", ADDRESS_UTF8);
    expect_reject("\"a\tb\"@c", ADDRESS_UTF8);
    expect_reject("a\x7f@b", ADDRESS_UTF8);
    struct address a;
    const char *why;
    assert_false(address_parse("a\0b@c", 5, ADDRESS_UTF8, &a, &why));
    assert_false(address_parse("\"a\0\"@c", 6, ADDRESS_UTF8, &a, &why));
}

static void test_parse_rejects_8bit_without_smtputf8(void **state)
{
    (void)state;
    expect_reject("j\xc3\xb6rg@example.com", 0);
    expect_reject("a@b\xc3\xbc"
                  "cher.de",
                  0);
}

static void test_parse_rejects_invalid_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xc0\xaf@b",         /* overlong '/' */
        "\xe0\x80\xaf@b",     /* overlong */
        "\xed\xa0\x80@b",     /* surrogate */
        "\xf4\x90\x80\x80@b", /* above U+10FFFF */
        "\xff@b",             /* never valid */
        "\xc3@b",             /* truncated */
        "a@b\xe2\x82",        /* truncated at the end */
        "\x80@b",             /* lone continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reject(bad[i], ADDRESS_UTF8);
}

static void test_parse_enforces_length_limits(void **state)
{
    (void)state;
    char buf[400];
    struct address a;
    const char *why;
    /* 64-byte local part ok, 65 not */
    memset(buf, 'a', 64);
    memcpy(buf + 64, "@b.c", 5);
    assert_true(parse(buf, 0, &a, &why));
    address_release(&a);
    memset(buf, 'a', 65);
    memcpy(buf + 65, "@b.c", 5);
    expect_reject(buf, 0);
    /* 63-byte label ok, 64 not */
    snprintf(buf, sizeof(buf), "a@%.*s.com", 63,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_true(parse(buf, 0, &a, &why));
    address_release(&a);
    snprintf(buf, sizeof(buf), "a@%.*s.com", 64,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    expect_reject(buf, 0);
    /* whole address beyond 254 */
    size_t n = 0;
    n += (size_t)snprintf(buf, sizeof(buf), "a@");
    while (n < 260) {
        memcpy(buf + n, "abcdefghi.", 10);
        n += 10;
    }
    memcpy(buf + n, "com", 4);
    expect_reject(buf, 0);
}

static void test_parse_null_path_only_when_allowed(void **state)
{
    (void)state;
    struct address a;
    size_t used;
    const char *why;
    assert_false(address_parse_path("<>", 2, 0, &a, &used, &why));
    assert_true(address_parse_path("<> SIZE=10", 10, ADDRESS_NULL_OK, &a, &used, &why));
    assert_int_equal(used, 2);
    assert_null(a.local);
    assert_null(a.domain);
    struct strbuf sb = STRBUF_INIT;
    address_format(&a, &sb);
    assert_string_equal(strbuf_str(&sb), "");
    strbuf_release(&sb);
    assert_true(address_parse("", 0, ADDRESS_NULL_OK, &a, &why));
    assert_false(address_parse("", 0, 0, &a, &why));
}

static void test_parse_path_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "a@b",      "<a@b",    "<",        "<a@b >",     "< a@b>",     "<@x:>",
        "<@x,a@b>", "<@:a@b>", "<@x a@b>", "<\"a>b\"@c", "<@x,@:a@b>", "<postmaster>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct address a;
        size_t used;
        const char *why = NULL;
        if (address_parse_path(bad[i], strlen(bad[i]), ADDRESS_NULL_OK, &a, &used, &why))
            fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
    }
}

static void test_parse_path_source_route_discarded(void **state)
{
    (void)state;
    const char *p = "<@relay.example,@[10.0.0.1]:user@example.com> BODY=8BITMIME";
    struct address a;
    size_t used;
    const char *why;
    assert_true(address_parse_path(p, strlen(p), 0, &a, &used, &why));
    assert_int_equal(used, strlen("<@relay.example,@[10.0.0.1]:user@example.com>"));
    assert_string_equal(a.local, "user");
    assert_string_equal(a.domain, "example.com");
    address_release(&a);
}

static void test_parse_path_quoted_gt_inside(void **state)
{
    (void)state;
    const char *p = "<\"a>b\\\"c\"@example.com>";
    struct address a;
    size_t used;
    const char *why;
    assert_true(address_parse_path(p, strlen(p), 0, &a, &used, &why));
    assert_int_equal(used, strlen(p));
    assert_string_equal(a.local, "a>b\"c");
    struct strbuf sb = STRBUF_INIT;
    address_format(&a, &sb);
    assert_string_equal(strbuf_str(&sb), "\"a>b\\\"c\"@example.com");
    strbuf_release(&sb);
    address_release(&a);
}

static void test_parse_postmaster_without_domain_when_allowed(void **state)
{
    (void)state;
    struct address a;
    size_t used;
    const char *why;
    assert_true(address_parse_path("<postmaster>", 12, ADDRESS_NO_DOMAIN_OK, &a, &used, &why));
    assert_string_equal(a.local, "postmaster");
    assert_null(a.domain);
    address_release(&a);
    assert_true(parse("alice", ADDRESS_NO_DOMAIN_OK, &a, &why));
    assert_null(a.domain);
    address_release(&a);
}

static void test_parse_valid_mailboxes(void **state)
{
    (void)state;
    static const struct {
        const char *in, *local, *domain;
        bool literal;
    } ok[] = {
        {"user@example.com", "user", "example.com", false},
        {"First.Last+tag@Sub.Example.COM", "First.Last+tag", "Sub.Example.COM", false},
        {"!#$%&'*+-/=?^_`{|}~@x1-y.z", "!#$%&'*+-/=?^_`{|}~", "x1-y.z", false},
        {"\"john doe\"@example.com", "john doe", "example.com", false},
        {"\"a\\\\b\"@example.com", "a\\b", "example.com", false},
        {"\"\"@example.com", "", "example.com", false},
        {"u@[192.0.2.1]", "u", "[192.0.2.1]", true},
        {"u@[IPv6:2001:db8::1]", "u", "[IPv6:2001:db8::1]", true},
        {"u@[ipv6:::1]", "u", "[ipv6:::1]", true},
        {"u@[x-tag:some~thing]", "u", "[x-tag:some~thing]", true},
        {"u@localhost", "u", "localhost", false},
        {"u@123.example", "u", "123.example", false},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct address a;
        const char *why = NULL;
        if (!parse(ok[i].in, 0, &a, &why))
            fail_msg("rejected %s: %s", ok[i].in, why);
        assert_string_equal(a.local, ok[i].local);
        assert_string_equal(a.domain, ok[i].domain);
        assert_int_equal(a.domain_literal, ok[i].literal);
        assert_false(a.utf8);
        address_release(&a);
    }
}

static void test_parse_utf8_with_smtputf8(void **state)
{
    (void)state;
    struct address a;
    const char *why;
    assert_true(parse("j\xc3\xb6rg@b\xc3\xbc"
                      "cher.de",
                      ADDRESS_UTF8, &a, &why));
    assert_true(a.utf8);
    assert_string_equal(a.local, "j\xc3\xb6rg");
    address_release(&a);
    assert_true(parse("\"\xe2\x82\xac x\"@example.com", ADDRESS_UTF8, &a, &why));
    address_release(&a);
}

static void test_format_requotes_when_needed(void **state)
{
    (void)state;
    static const struct {
        const char *local, *out;
    } cases[] = {
        {"plain", "plain@d"}, {"a.b", "a.b@d"},         {"a b", "\"a b\"@d"},
        {".a", "\".a\"@d"},   {"a..b", "\"a..b\"@d"},   {"a.", "\"a.\"@d"},
        {"", "\"\"@d"},       {"a\"b", "\"a\\\"b\"@d"}, {"a\\b", "\"a\\\\b\"@d"},
        {"a@b", "\"a@b\"@d"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct address a = {(char *)cases[i].local, (char *)"d", false, false};
        struct strbuf sb = STRBUF_INIT;
        address_format(&a, &sb);
        assert_string_equal(strbuf_str(&sb), cases[i].out);
        /* and it parses back to the same local part */
        struct address b;
        const char *why;
        assert_true(address_parse(sb.data, sb.len, 0, &b, &why));
        assert_string_equal(b.local, cases[i].local);
        address_release(&b);
        strbuf_release(&sb);
    }
}

static void test_domain_lower(void **state)
{
    (void)state;
    char *d = address_domain_lower("ExAmPle.COM");
    assert_string_equal(d, "example.com");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rejects_malformed_mailboxes),
        cmocka_unit_test(test_parse_rejects_controls_nul_and_line_breaks),
        cmocka_unit_test(test_parse_rejects_8bit_without_smtputf8),
        cmocka_unit_test(test_parse_rejects_invalid_utf8),
        cmocka_unit_test(test_parse_enforces_length_limits),
        cmocka_unit_test(test_parse_null_path_only_when_allowed),
        cmocka_unit_test(test_parse_path_malformed),
        cmocka_unit_test(test_parse_path_source_route_discarded),
        cmocka_unit_test(test_parse_path_quoted_gt_inside),
        cmocka_unit_test(test_parse_postmaster_without_domain_when_allowed),
        cmocka_unit_test(test_parse_valid_mailboxes),
        cmocka_unit_test(test_parse_utf8_with_smtputf8),
        cmocka_unit_test(test_format_requotes_when_needed),
        cmocka_unit_test(test_domain_lower),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
