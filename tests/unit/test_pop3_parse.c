/* Unit tests for libmail/pop3_parse.c: malformed input first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pop3_parse.h"

static struct pop3_command cmd;

static enum pop3_parse_result parse_len(const char *line, size_t len)
{
    const char *why = NULL;
    enum pop3_parse_result r = pop3_parse_command(line, len, &cmd, &why);
    if (r != POP3_PARSE_OK) {
        assert_non_null(why);
        assert_true(strlen(why) > 0);
    }
    return r;
}

static enum pop3_parse_result parse(const char *line)
{
    return parse_len(line, strlen(line));
}

/* ---- malformed input ---- */

static void test_empty_line_is_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse(""), POP3_PARSE_EMPTY);
    assert_int_equal(parse("\r\n"), POP3_PARSE_EMPTY);
    assert_int_equal(parse("\n"), POP3_PARSE_EMPTY);
}

static void test_too_long_line_is_rejected(void **state)
{
    (void)state;
    static char buf[POP3_LINE_MAX + 10];
    memcpy(buf, "PASS ", 5);
    memset(buf + 5, 'a', sizeof(buf) - 5);
    assert_int_equal(parse_len(buf, POP3_LINE_MAX + 1), POP3_PARSE_TOO_LONG);
    assert_int_equal(parse_len(buf, sizeof(buf)), POP3_PARSE_TOO_LONG);
    /* Exactly at the limit is fine, and the password survives whole. */
    buf[POP3_LINE_MAX - 2] = '\r';
    buf[POP3_LINE_MAX - 1] = '\n';
    assert_int_equal(parse_len(buf, POP3_LINE_MAX), POP3_PARSE_OK);
    assert_int_equal(cmd.arg_len, POP3_LINE_MAX - 7);
}

static void test_nul_byte_is_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse_len("STAT\0\r\n", 7), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse_len("USER a\0b\r\n", 10), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse_len("\0", 1), POP3_PARSE_BAD_CHAR);
}

static void test_stray_cr_and_controls_are_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse("ST\rAT\r\n"), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse("STAT\r"), POP3_PARSE_BAD_CHAR); /* CR without LF */
    assert_int_equal(parse("STAT\r\r\n"), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse("LIST\t1\r\n"), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse("PASS a\x7f\r\n"), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse("USER a\nb\r\n"), POP3_PARSE_BAD_CHAR);
    assert_int_equal(parse("ST\xc3\xa4T\r\n"), POP3_PARSE_BAD_CHAR);
}

static void test_bad_numbers_are_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse("RETR\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR x\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR -1\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR +1\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR 1x\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR 0x10\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR 1234567890\r\n"), POP3_PARSE_SYNTAX); /* > 9 digits */
    assert_int_equal(parse("RETR 99999999999999999999999\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("DELE 1 2\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("LIST 1 2\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("TOP 1\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("TOP 1 -5\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("TOP 1 2 3\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("UIDL a\r\n"), POP3_PARSE_SYNTAX);
}

static void test_bad_spacing_is_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse("STAT \r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR  1\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RETR 1 \r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("TOP 1  2\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("USER \r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("USER a b\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("PASS\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("PASS \r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse(" STAT\r\n"), POP3_PARSE_UNKNOWN);
}

static void test_unknown_verbs_are_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse("APOP alice 0123\r\n"), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("XYZZY\r\n"), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("ST\r\n"), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("STATS\r\n"), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("ST4T\r\n"), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("GET / HTTP/1.0\r\n"), POP3_PARSE_UNKNOWN);
    assert_int_equal(parse("EHLO x\r\n"), POP3_PARSE_UNKNOWN);
}

static void test_no_argument_verbs_refuse_arguments(void **state)
{
    (void)state;
    assert_int_equal(parse("STAT 1\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("QUIT now\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("NOOP x\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("RSET 1\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("CAPA x\r\n"), POP3_PARSE_SYNTAX);
    assert_int_equal(parse("STLS x\r\n"), POP3_PARSE_SYNTAX);
}

/* ---- well-formed input ---- */

static void test_keywords_are_case_insensitive(void **state)
{
    (void)state;
    assert_int_equal(parse("stat\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_STAT);
    assert_string_equal(cmd.name, "STAT");
    assert_int_equal(parse("QuIt\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_QUIT);
}

static void test_bare_lf_and_no_line_end_are_accepted(void **state)
{
    (void)state;
    assert_int_equal(parse("NOOP\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_NOOP);
    assert_int_equal(parse("NOOP"), POP3_PARSE_OK);
}

static void test_numeric_arguments_are_parsed(void **state)
{
    (void)state;
    assert_int_equal(parse("LIST\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.nargs, 0);
    assert_int_equal(parse("LIST 17\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.nargs, 1);
    assert_int_equal(cmd.num[0], 17);
    assert_int_equal(parse("UIDL 3\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_UIDL);
    assert_int_equal(cmd.num[0], 3);
    assert_int_equal(parse("RETR 999999999\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.num[0], 999999999UL);
    assert_int_equal(parse("TOP 2 0\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_TOP);
    assert_int_equal(cmd.num[0], 2);
    assert_int_equal(cmd.num[1], 0);
    /* 0 is syntactically a number; pop3d answers "no such message". */
    assert_int_equal(parse("DELE 0\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.num[0], 0);
}

static void test_user_and_pass_keep_their_text(void **state)
{
    (void)state;
    assert_int_equal(parse("USER alice@example.test\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_USER);
    assert_string_equal(cmd.arg, "alice@example.test");
    /* RFC 1939 §7: the password may contain spaces. */
    assert_int_equal(parse("PASS  secret with spaces \r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_PASS);
    assert_string_equal(cmd.arg, " secret with spaces ");
    assert_int_equal(cmd.arg_len, 20);
    assert_int_equal(parse("PASS p\xc3\xa4ss\r\n"), POP3_PARSE_OK);
    assert_string_equal(cmd.arg, "p\xc3\xa4ss");
}

static void test_auth_keeps_mechanism_and_response(void **state)
{
    (void)state;
    assert_int_equal(parse("AUTH\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.nargs, 0);
    assert_int_equal(parse("AUTH PLAIN AGFsaWNlAHB3\r\n"), POP3_PARSE_OK);
    assert_int_equal(cmd.verb, POP3_AUTH);
    assert_int_equal(cmd.nargs, 2);
    assert_string_equal(cmd.arg, "PLAIN AGFsaWNlAHB3");
    assert_int_equal(parse("AUTH PLAIN x y\r\n"), POP3_PARSE_SYNTAX);
}

static void test_result_names_exist(void **state)
{
    (void)state;
    assert_string_equal(pop3_parse_result_name(POP3_PARSE_OK), "ok");
    assert_string_equal(pop3_parse_result_name(POP3_PARSE_TOO_LONG), "too-long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_line_is_rejected),
        cmocka_unit_test(test_too_long_line_is_rejected),
        cmocka_unit_test(test_nul_byte_is_rejected),
        cmocka_unit_test(test_stray_cr_and_controls_are_rejected),
        cmocka_unit_test(test_bad_numbers_are_rejected),
        cmocka_unit_test(test_bad_spacing_is_rejected),
        cmocka_unit_test(test_unknown_verbs_are_rejected),
        cmocka_unit_test(test_no_argument_verbs_refuse_arguments),
        cmocka_unit_test(test_keywords_are_case_insensitive),
        cmocka_unit_test(test_bare_lf_and_no_line_end_are_accepted),
        cmocka_unit_test(test_numeric_arguments_are_parsed),
        cmocka_unit_test(test_user_and_pass_keep_their_text),
        cmocka_unit_test(test_auth_keeps_mechanism_and_response),
        cmocka_unit_test(test_result_names_exist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
