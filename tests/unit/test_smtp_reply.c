/*
 * test_smtp_reply - SMTP reply and EHLO keyword parsing for the smtp client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_reply.h"

static enum smtp_reply_status parse(struct smtp_reply *r, const char *text, const char **err)
{
    size_t used;
    return smtp_reply_parse(r, text, strlen(text), &used, err);
}

static void test_malformed_lines_are_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\r\n",       "25\r\n",     "abc hello\r\n", "250hello\r\n", "650 no\r\n", "150 no\r\n",
        "260 no\r\n", "2x0 no\r\n", " 250 x\r\n",    "250_x\r\n",    "-250 x\r\n",
    };
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&r, bad[i], &err), SMTP_REPLY_BAD);
        assert_non_null(err);
    }
    smtp_reply_release(&r);
}

static void test_nul_byte_is_rejected(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_feed(&r, "250 a\0b\r\n", 9, &err), SMTP_REPLY_BAD);
    assert_string_equal(err, "NUL byte in reply");
    smtp_reply_release(&r);
}

static void test_mixed_codes_are_rejected(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r, "250-first\r\n251 second\r\n", &err), SMTP_REPLY_BAD);
    assert_string_equal(err, "reply code changes between lines");
    assert_int_equal(parse(&r, "250-first\r\n550 second\r\n", &err), SMTP_REPLY_BAD);
    smtp_reply_release(&r);
}

static void test_too_many_lines_are_rejected(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err = NULL;
    enum smtp_reply_status st = SMTP_REPLY_MORE;
    smtp_reply_init(&r);
    for (int i = 0; i <= SMTP_REPLY_LINES_MAX && st == SMTP_REPLY_MORE; i++)
        st = smtp_reply_feed(&r, "250-x\r\n", 7, &err);
    assert_int_equal(st, SMTP_REPLY_BAD);
    assert_string_equal(err, "too many lines in reply");
    smtp_reply_release(&r);
}

static void test_too_long_text_is_cut_not_rejected(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    char line[SMTP_REPLY_LINE_MAX];
    smtp_reply_init(&r);
    memset(line, 'x', sizeof(line));
    memcpy(line, "550-", 4);
    /* a line cut short by the reader (no LF) and many long lines */
    for (int i = 0; i < 5; i++)
        assert_int_equal(smtp_reply_feed(&r, line, sizeof(line), &err), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&r, "550 end\r\n", 9, &err), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 550);
    assert_true(r.text.len <= SMTP_REPLY_TEXT_MAX);
    assert_memory_equal(r.text.data + r.text.len - 3, "...", 3);
    smtp_reply_release(&r);
}

static void test_control_characters_are_masked(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r, "550 bad\x1b[31m\tthing\r\n", &err), SMTP_REPLY_DONE);
    assert_string_equal(r.text.data, "550 bad?[31m?thing");
    smtp_reply_release(&r);
}

static void test_single_line_with_enhanced_code(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    size_t used;
    const char *text = "550 5.1.1 <x@b.test>: unknown user\r\n250 next\r\n";
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_parse(&r, text, strlen(text), &used, &err), SMTP_REPLY_DONE);
    assert_int_equal(used, strlen("550 5.1.1 <x@b.test>: unknown user\r\n"));
    assert_int_equal(r.code, 550);
    assert_string_equal(r.dsn, "5.1.1");
    assert_string_equal(r.text.data, "550 5.1.1 <x@b.test>: unknown user");
    smtp_reply_release(&r);
}

static void test_enhanced_code_of_other_class_is_ignored(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r, "450 5.1.1 huh\r\n", &err), SMTP_REPLY_DONE);
    assert_string_equal(r.dsn, "");
    assert_int_equal(parse(&r, "250 2.1.0x ok\r\n", &err), SMTP_REPLY_DONE);
    assert_string_equal(r.dsn, "");
    assert_int_equal(parse(&r, "250 2.1234.0 ok\r\n", &err), SMTP_REPLY_DONE);
    assert_string_equal(r.dsn, "");
    assert_int_equal(parse(&r, "250 2.1.0\r\n", &err), SMTP_REPLY_DONE);
    assert_string_equal(r.dsn, "2.1.0");
    smtp_reply_release(&r);
}

static void test_code_only_and_bare_lf_lines(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r, "354\n", &err), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.text.data, "354");
    smtp_reply_release(&r);
}

static void test_multiline_is_joined_and_incomplete_asks_for_more(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r, "550-5.7.1 first line\r\n550-5.7.1 second\r\n", &err),
                     SMTP_REPLY_MORE);
    assert_int_equal(parse(&r, "550-5.7.1 first line\r\n550 5.7.1 second\r\n", &err),
                     SMTP_REPLY_DONE);
    assert_string_equal(r.dsn, "5.7.1");
    assert_string_equal(r.text.data, "550 5.7.1 first line second");
    assert_int_equal(r.nlines, 2);
    assert_string_equal(smtp_reply_line(&r, 1), "5.7.1 second");
    assert_string_equal(smtp_reply_line(&r, 2), "");
    smtp_reply_release(&r);
}

static void test_feed_after_done_starts_a_new_reply(void **state)
{
    (void)state;
    struct smtp_reply r;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_feed(&r, "250 ok\r\n", 8, &err), SMTP_REPLY_DONE);
    assert_int_equal(smtp_reply_feed(&r, "354 go\r\n", 8, &err), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 354);
    assert_int_equal(r.nlines, 1);
    smtp_reply_release(&r);
}

static void test_ehlo_keywords(void **state)
{
    (void)state;
    struct smtp_reply r;
    struct smtp_ehlo e;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r,
                           "250-mx.b.test hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                           "250-8bitmime\r\n250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n"
                           "250-ENHANCEDSTATUSCODES\r\n250-AUTH LOGIN PLAIN CRAM-MD5\r\n"
                           "250 CHUNKING\r\n",
                           &err),
                     SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_true(e.pipelining && e.size && e.eightbitmime && e.smtputf8 && e.dsn && e.starttls &&
                e.enhancedstatuscodes && e.chunking);
    assert_int_equal(e.size_limit, 10240000);
    assert_int_equal(e.auth, SMTP_EHLO_AUTH_PLAIN | SMTP_EHLO_AUTH_LOGIN);
    smtp_reply_release(&r);
}

static void test_ehlo_greeting_line_is_not_a_keyword_and_odd_forms(void **state)
{
    (void)state;
    struct smtp_reply r;
    struct smtp_ehlo e;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r,
                           "250-PIPELINING\r\n250-SIZE 12x\r\n250-AUTH=LOGIN\r\n250-\r\n"
                           "250 X-UNKNOWN foo\r\n",
                           &err),
                     SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_false(e.pipelining);
    assert_true(e.size);
    assert_int_equal(e.size_limit, 0);
    assert_int_equal(e.auth, SMTP_EHLO_AUTH_LOGIN);

    assert_int_equal(parse(&r, "250-h\r\n250 SIZE\r\n", &err), SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_true(e.size);
    assert_int_equal(e.size_limit, 0);
    assert_int_equal(parse(&r, "250-h\r\n250 SIZE 99999999999999999999999\r\n", &err),
                     SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_int_equal(e.size_limit, 0);
    smtp_reply_release(&r);
}

static void test_ehlo_error_reply_has_no_extensions(void **state)
{
    (void)state;
    struct smtp_reply r;
    struct smtp_ehlo e;
    const char *err;
    smtp_reply_init(&r);
    assert_int_equal(parse(&r, "502-nope\r\n502 PIPELINING\r\n", &err), SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_false(e.pipelining);
    smtp_reply_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_lines_are_rejected),
        cmocka_unit_test(test_nul_byte_is_rejected),
        cmocka_unit_test(test_mixed_codes_are_rejected),
        cmocka_unit_test(test_too_many_lines_are_rejected),
        cmocka_unit_test(test_too_long_text_is_cut_not_rejected),
        cmocka_unit_test(test_control_characters_are_masked),
        cmocka_unit_test(test_single_line_with_enhanced_code),
        cmocka_unit_test(test_enhanced_code_of_other_class_is_ignored),
        cmocka_unit_test(test_code_only_and_bare_lf_lines),
        cmocka_unit_test(test_multiline_is_joined_and_incomplete_asks_for_more),
        cmocka_unit_test(test_feed_after_done_starts_a_new_reply),
        cmocka_unit_test(test_ehlo_keywords),
        cmocka_unit_test(test_ehlo_greeting_line_is_not_a_keyword_and_odd_forms),
        cmocka_unit_test(test_ehlo_error_reply_has_no_extensions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
