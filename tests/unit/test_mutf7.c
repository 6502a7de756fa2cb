/* Unit tests for libmail/mutf7: RFC 3501 §5.1.3 modified UTF-7 both ways. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mutf7.h"

static int decode(const char *in, struct strbuf *out)
{
    strbuf_reset(out);
    const char *why = NULL;
    int r = mutf7_to_utf8(in, strlen(in), out, &why);
    if (r < 0)
        assert_non_null(why);
    return r;
}

static int encode(const char *in, struct strbuf *out)
{
    strbuf_reset(out);
    const char *why = NULL;
    int r = mutf7_from_utf8(in, strlen(in), out, &why);
    if (r < 0)
        assert_non_null(why);
    return r;
}

static void test_decode_rejects_malformed_input(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    static const char *const bad[] = {
        "&",           /* unterminated */
        "abc&AGE",     /* unterminated run */
        "&AGE=-",      /* '=' is not modified base64 */
        "&AG/-",       /* '/' is ',' in modified base64 */
        "&AGF-",       /* non-zero padding bits */
        "&AGEA-",      /* a partial 16-bit unit left over */
        "&AEE-",       /* 'A' (printable ASCII) encoded */
        "&ACY-",       /* '&' encoded instead of "&-" */
        "&2D0-",       /* unpaired high surrogate */
        "&3gA-",       /* unpaired low surrogate */
        "&2D0A6Q-",    /* high surrogate followed by a non-low */
        "&AAA-",       /* NUL */
        "&AOQ-&APY-",  /* two adjacent runs (should be one) */
        "a\tb",        /* control character */
        "caf\xc3\xa9", /* raw 8-bit */
        "a\x7f",       /* DEL */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode(bad[i], &out) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_false(mutf7_valid(bad[i], strlen(bad[i])));
    }
    /* Embedded NUL in the input. */
    const char *why = NULL;
    assert_int_equal(mutf7_to_utf8("a\0b", 3, &out, &why), -1);
    strbuf_release(&out);
}

static void test_encode_rejects_invalid_utf8(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(encode("caf\xc3", &out), -1);      /* truncated */
    assert_int_equal(encode("\xc0\xaf", &out), -1);     /* overlong '/' */
    assert_int_equal(encode("\xed\xa0\x80", &out), -1); /* surrogate */
    assert_int_equal(encode("\xff", &out), -1);
    const char *why = NULL;
    assert_int_equal(mutf7_from_utf8("a\0b", 3, &out, &why), -1);
    strbuf_release(&out);
}

static void test_known_names_both_ways(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"INBOX", "INBOX"},
        {"", ""},
        {"Q&A", "Q&-A"},
        {"&", "&-"},
        {"Entw\xc3\xbcrfe", "Entw&APw-rfe"},
        {"\xe5\x8f\xb0\xe5\x8c\x97", "&U,BTFw-"}, /* RFC 3501 example */
        {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
         "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},        /* RFC 3501 example */
        {"\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail"}, /* astral plane: surrogates */
        {"a\xc3\xa4\xc3\xb6\xc3\xbc.b", "a&AOQA9gD8-.b"},
        {"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80", "&BB8EQAQ4BDwENQRA-"},
    };
    struct strbuf out = STRBUF_INIT;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        assert_int_equal(encode(pairs[i][0], &out), 0);
        assert_string_equal(out.data, pairs[i][1]);
        assert_int_equal(decode(pairs[i][1], &out), 0);
        assert_string_equal(out.data, pairs[i][0]);
        assert_true(mutf7_valid(pairs[i][1], strlen(pairs[i][1])));
    }
    strbuf_release(&out);
}

static void test_long_run_round_trips(void **state)
{
    (void)state;
    struct strbuf in = STRBUF_INIT, enc = STRBUF_INIT, dec = STRBUF_INIT;
    for (int i = 0; i < 500; i++)
        strbuf_puts(&in, i % 7 == 0 ? "\xf0\x9f\x98\x80" : "\xc3\xa9");
    assert_int_equal(encode(in.data, &enc), 0);
    assert_int_equal(enc.data[0], '&');
    assert_int_equal(enc.data[enc.len - 1], '-');
    assert_null(memchr(enc.data + 1, '&', enc.len - 1)); /* one run */
    assert_int_equal(decode(enc.data, &dec), 0);
    assert_int_equal(dec.len, in.len);
    assert_memory_equal(dec.data, in.data, in.len);
    strbuf_release(&in);
    strbuf_release(&enc);
    strbuf_release(&dec);
}

static void test_output_is_appended(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    strbuf_puts(&out, "x/");
    assert_int_equal(mutf7_from_utf8("\xc3\xa9", 2, &out, NULL), 0);
    assert_string_equal(out.data, "x/&AOk-");
    strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_rejects_malformed_input),
        cmocka_unit_test(test_encode_rejects_invalid_utf8),
        cmocka_unit_test(test_known_names_both_ways),
        cmocka_unit_test(test_long_run_round_trips),
        cmocka_unit_test(test_output_is_appended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
