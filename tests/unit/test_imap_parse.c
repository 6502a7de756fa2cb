/* Unit tests for libmail/imap_parse.c: malformed input first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "imap_parse.h"

static struct imap_parser P;

static struct imap_parser *start(const char *text)
{
    imap_parser_init(&P, text, strlen(text), 4);
    return &P;
}

static int teardown(void **state)
{
    (void)state;
    imap_parser_release(&P);
    return 0;
}

/* Parse "tag CMD" and leave the parser before the arguments' SP. */
static struct imap_parser *command(const char *text)
{
    const char *tag, *name;
    struct imap_parser *p = start(text);
    assert_true(imap_parse_tag(p, &tag));
    assert_true(imap_parse_sp(p));
    assert_true(imap_parse_atom(p, &name));
    return p;
}

/* ---- malformed input ---- */

static void test_unbalanced_parentheses_are_refused(void **state)
{
    (void)state;
    struct imap_parser *p = command("a STATUS (MESSAGES\r\n");
    const char *a;
    assert_true(imap_parse_sp(p));
    assert_true(imap_parse_list_begin(p));
    assert_true(imap_parse_atom(p, &a));
    assert_false(imap_parse_eol(p));
    assert_string_equal(p->error, "Unbalanced parentheses");
    imap_parser_release(p);

    p = start(")\r\n");
    assert_false(imap_parse_list_end(p));
    assert_non_null(p->error);
}

static void test_nesting_beyond_bound_is_refused(void **state)
{
    (void)state;
    struct imap_parser *p = start("(((((x)))))\r\n");
    for (int i = 0; i < 4; i++)
        assert_true(imap_parse_list_begin(p));
    assert_false(imap_parse_list_begin(p));
    assert_string_equal(p->error, "Lists nested too deeply");
}

static void test_eight_bit_in_atom_is_refused(void **state)
{
    (void)state;
    const char *a;
    struct imap_parser *p = start("caf\xc3\xa9 x\r\n");
    assert_false(imap_parse_atom(p, &a));
    assert_string_equal(p->error, "8-bit characters are not allowed here");
    imap_parser_release(p);
    p = start("\xc3\xa9\r\n");
    assert_false(imap_parse_atom(p, &a));
    assert_string_equal(p->error, "8-bit characters are not allowed here");
}

static void test_bad_tags_are_refused(void **state)
{
    (void)state;
    const char *t;
    assert_false(imap_parse_tag(start("+tag NOOP\r\n"), &t));
    imap_parser_release(&P);
    assert_false(imap_parse_tag(start("a\"b NOOP\r\n"), &t));
    imap_parser_release(&P);
    assert_false(imap_parse_tag(start("a{1} NOOP\r\n"), &t));
    imap_parser_release(&P);
    assert_false(imap_parse_tag(start(" NOOP\r\n"), &t));
    imap_parser_release(&P);
    assert_false(imap_parse_tag(start("\r\n"), &t));
}

static void test_literal_announcement_must_end_line(void **state)
{
    (void)state;
    struct imap_str s;
    struct imap_parser *p = start("{5}xhello\r\n");
    assert_false(imap_parse_string(p, &s));
    assert_non_null(p->error);
}

static void test_literal_with_missing_data_is_refused(void **state)
{
    (void)state;
    struct imap_str s;
    static const char text[] = "{10}\r\nabc";
    imap_parser_init(&P, text, sizeof(text) - 1, 4);
    assert_false(imap_parse_string(&P, &s));
    assert_string_equal(P.error, "Literal data is missing");
}

static void test_literal_size_overflow_is_refused(void **state)
{
    (void)state;
    uint64_t n;
    bool ns;
    const char *why = NULL;
    const char *l = "a APPEND x {99999999999999999999999}\r\n";
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), -1);
    assert_non_null(why);
    l = "a APPEND x {18446744073709551616}\r\n"; /* 2^64 */
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), -1);
    l = "a APPEND x {}\r\n";
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), -1);
    l = "a APPEND x {+}\r\n";
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), -1);
}

static void test_huge_literal_announcement_is_reported_before_reading(void **state)
{
    (void)state;
    uint64_t n = 0;
    bool ns = true;
    const char *why = NULL;
    const char *l = "a APPEND INBOX {18446744073709551615}\r\n";
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), 1);
    assert_true(n == UINT64_MAX);
    assert_false(ns);
    l = "a APPEND INBOX {4000000000+}\r\n";
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), 1);
    assert_true(n == 4000000000ULL);
    assert_true(ns);
}

static void test_literal_suffix_ignores_quoted_text_and_partial_lines(void **state)
{
    (void)state;
    uint64_t n;
    bool ns;
    const char *why;
    const char *l = "a LOGIN \"x {5}\r\n"; /* unterminated quote: the "{5}" is text */
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), 0);
    l = "a LOGIN x {5}"; /* no LF: not a complete line */
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), 0);
    l = "a LOGIN \"a\\\"b\" {3}\n"; /* escaped quote inside a closed string */
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), 1);
    assert_true(n == 3);
    l = "a NOOP x}\r\n";
    assert_int_equal(imap_parse_literal_suffix(l, strlen(l), &n, &ns, &why), 0);
}

static void test_quoted_string_errors(void **state)
{
    (void)state;
    struct imap_str s;
    assert_false(imap_parse_string(start("\"abc\r\n"), &s));
    assert_string_equal(P.error, "Unterminated quoted string");
    imap_parser_release(&P);
    assert_false(imap_parse_string(start("\"a\\nb\"\r\n"), &s));
    assert_string_equal(P.error, "Invalid escape in quoted string");
    imap_parser_release(&P);
    static const char nul[] = "\"a\0b\"\r\n";
    imap_parser_init(&P, nul, sizeof(nul) - 1, 4);
    assert_false(imap_parse_string(&P, &s));
    assert_string_equal(P.error, "NUL in quoted string");
}

static void test_bad_sequence_sets_are_refused(void **state)
{
    (void)state;
    struct imap_seqset set;
    static const char *const bad[] = {"0\r\n",    "1:0\r\n", "1,\r\n",  ",1\r\n",
                                      "1::2\r\n", "a\r\n",   "1:a\r\n", "4294967296\r\n",
                                      "1,2x\r\n", "$1\r\n",  ":\r\n",   "*:\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(imap_parse_seqset(start(bad[i]), &set));
        assert_non_null(P.error);
        imap_parser_release(&P);
    }
}

static void test_numbers_out_of_range_are_refused(void **state)
{
    (void)state;
    uint32_t n;
    uint64_t n64;
    assert_false(imap_parse_number(start("4294967296\r\n"), &n));
    imap_parser_release(&P);
    assert_false(imap_parse_nz_number(start("0\r\n"), &n));
    imap_parser_release(&P);
    assert_false(imap_parse_number(start("12a\r\n"), &n));
    imap_parser_release(&P);
    assert_false(imap_parse_number64(start("9223372036854775808\r\n"), &n64));
    imap_parser_release(&P);
    assert_true(imap_parse_number64(start("9223372036854775807\r\n"), &n64));
    assert_true(n64 == 9223372036854775807ULL);
}

static void test_bad_dates_are_refused(void **state)
{
    (void)state;
    time_t t;
    static const char *const bad[] = {
        "\"31-Feb-2020 00:00:00 +0000\"", "\"01-Foo-2020 00:00:00 +0000\"",
        "\"01-Jan-2020 24:00:00 +0000\"", "\"01-Jan-2020 00:00:00 0000\"",
        "\"1-Jan-2020 00:00:00 +0000\"",  "01-Jan-2020 00:00:00 +0000",
        "\"01-Jan-2020 00:00:00 +0000",   "\"29-Feb-2019 00:00:00 +0000\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(imap_parse_date_time(start(bad[i]), &t));
        imap_parser_release(&P);
    }
    assert_false(imap_parse_date(start("32-Jan-2020\r\n"), &t));
    imap_parser_release(&P);
    assert_false(imap_parse_date(start("\"1-Jan-2020\r\n"), &t));
}

static void test_garbage_after_command_is_refused(void **state)
{
    (void)state;
    struct imap_parser *p = command("a NOOP x\r\n");
    assert_false(imap_parse_eol(p));
    imap_parser_release(p);
    static const char two[] = "a NOOP\r\nb NOOP\r\n";
    imap_parser_init(&P, two, sizeof(two) - 1, 4);
    const char *t, *n;
    assert_true(imap_parse_tag(&P, &t) && imap_parse_sp(&P) && imap_parse_atom(&P, &n));
    assert_false(imap_parse_eol(&P));
    assert_string_equal(P.error, "Unexpected data after end of command");
}

static void test_missing_argument_is_reported(void **state)
{
    (void)state;
    struct imap_parser *p = command("a SELECT\r\n");
    assert_false(imap_parse_sp(p));
    assert_string_equal(p->error, "Missing argument");
}

static void test_first_error_sticks(void **state)
{
    (void)state;
    const char *a;
    struct imap_parser *p = start("(\r\n");
    assert_false(imap_parse_atom(p, &a));
    const char *first = p->error;
    assert_false(imap_parse_list_end(p));
    assert_ptr_equal(p->error, first);
}

/* ---- well-formed input ---- */

static void test_command_with_strings(void **state)
{
    (void)state;
    static const char text[] = "A001 LOGIN \"al\\\"ice\" {6}\r\np\0ss\r\n\r\n";
    const char *tag, *name;
    struct imap_str u, pw;
    imap_parser_init(&P, text, sizeof(text) - 1, 4);
    assert_true(imap_parse_tag(&P, &tag));
    assert_string_equal(tag, "A001");
    assert_true(imap_parse_sp(&P));
    assert_true(imap_parse_atom(&P, &name));
    assert_true(imap_atom_is(name, "login"));
    assert_true(imap_parse_sp(&P));
    assert_true(imap_parse_astring(&P, &u));
    assert_string_equal(u.data, "al\"ice");
    assert_false(u.literal);
    assert_true(imap_parse_sp(&P));
    assert_true(imap_parse_astring(&P, &pw));
    assert_true(pw.literal);
    assert_int_equal(pw.len, 6);
    assert_memory_equal(pw.data, "p\0ss\r\n", 6);
    assert_false(imap_str_is_text(&pw));
    assert_true(imap_parse_eol(&P));
}

static void test_nonsync_literal_and_bare_lf(void **state)
{
    (void)state;
    static const char text[] = "a x {3+}\nabc\n";
    const char *t, *n;
    struct imap_str s;
    imap_parser_init(&P, text, sizeof(text) - 1, 4);
    assert_true(imap_parse_tag(&P, &t) && imap_parse_sp(&P) && imap_parse_atom(&P, &n) &&
                imap_parse_sp(&P) && imap_parse_string(&P, &s));
    assert_string_equal(s.data, "abc");
    assert_true(imap_parse_eol(&P));
}

static void test_nstring_nil_and_atom_like_nil(void **state)
{
    (void)state;
    struct imap_str s;
    assert_true(imap_parse_nstring(start("NIL)"), &s));
    assert_null(s.data);
    imap_parser_release(&P);
    assert_false(imap_parse_nstring(start("NILS"), &s));
}

static void test_sequence_sets(void **state)
{
    (void)state;
    struct imap_seqset set;
    assert_true(imap_parse_seqset(start("1:3,5,*:7,9\r\n"), &set));
    assert_int_equal(set.count, 4);
    assert_int_equal(set.ranges[0].lo, 1);
    assert_int_equal(set.ranges[0].hi, 3);
    assert_int_equal(set.ranges[1].lo, 5);
    assert_int_equal(set.ranges[2].lo, 7);
    assert_true(set.ranges[2].hi == IMAP_SEQ_STAR);
    assert_int_equal(set.ranges[3].hi, 9);
    imap_parser_release(&P);
    assert_true(imap_parse_seqset(start("5:2 "), &set));
    assert_int_equal(set.ranges[0].lo, 2);
    assert_int_equal(set.ranges[0].hi, 5);
    imap_parser_release(&P);
    assert_true(imap_parse_seqset(start("$ "), &set));
    assert_true(set.saved);
    imap_parser_release(&P);
    assert_true(imap_parse_seqset(start("*)"), &set));
    assert_true(set.ranges[0].lo == IMAP_SEQ_STAR);
}

static void test_date_time_to_utc(void **state)
{
    (void)state;
    time_t t;
    assert_true(imap_parse_date_time(start("\"17-Jul-1996 02:44:25 -0700\""), &t));
    assert_int_equal((long long)t, 837596665LL);
    imap_parser_release(&P);
    assert_true(imap_parse_date_time(start("\" 1-Jan-2000 00:00:00 +0100\""), &t));
    assert_int_equal((long long)t, 946681200LL - 0);
    imap_parser_release(&P);
    assert_true(imap_parse_date(start("1-Feb-1994 "), &t));
    assert_int_equal((long long)t, 760060800LL);
    imap_parser_release(&P);
    assert_true(imap_parse_date(start("\"29-Feb-2000\")"), &t));
}

static void test_flags_and_list_mailbox(void **state)
{
    (void)state;
    const char *f;
    struct imap_str s;
    assert_true(imap_parse_flag(start("\\Seen "), false, &f));
    assert_string_equal(f, "\\Seen");
    imap_parser_release(&P);
    assert_false(imap_parse_flag(start("\\* "), false, &f));
    imap_parser_release(&P);
    assert_true(imap_parse_flag(start("\\* "), true, &f));
    assert_string_equal(f, "\\*");
    imap_parser_release(&P);
    assert_true(imap_parse_flag(start("$Label1)"), false, &f));
    assert_string_equal(f, "$Label1");
    imap_parser_release(&P);
    assert_true(imap_parse_list_mailbox(start("Lists.%\r\n"), &s));
    assert_string_equal(s.data, "Lists.%");
    imap_parser_release(&P);
    assert_true(imap_parse_atom_ext(start("BODY.PEEK[HEADER]<0.10> "), "[]<>.", &f));
    assert_string_equal(f, "BODY.PEEK[HEADER]<0.10>");
}

static void test_literal8(void **state)
{
    (void)state;
    struct imap_str s;
    static const char text[] = "~{3}\r\na\0b)";
    imap_parser_init(&P, text, sizeof(text) - 1, 4);
    assert_true(imap_parse_literal8(&P, &s));
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.data, "a\0b", 3);
    assert_true(imap_parse_peek(&P, ')'));
    imap_parser_release(&P);
    assert_false(imap_parse_literal8(start("{3}\r\nabc"), &s));
    imap_parser_release(&P);
    assert_false(imap_parse_literal8(start("~{9}\r\nabc"), &s));
    assert_string_equal(P.error, "Literal data is missing");
    assert_int_equal(P.pos, 0);
}

static void test_list_wildcards(void **state)
{
    (void)state;
    assert_true(imap_list_match("*", "a.b.c", '.'));
    assert_true(imap_list_match("%", "abc", '.'));
    assert_false(imap_list_match("%", "a.b", '.'));
    assert_true(imap_list_match("a.%", "a.b", '.'));
    assert_false(imap_list_match("a.%", "a.b.c", '.'));
    assert_true(imap_list_match("a.*", "a.b.c", '.'));
    assert_true(imap_list_match("*c", "a.b.c", '.'));
    assert_false(imap_list_match("*d", "a.b.c", '.'));
    assert_true(imap_list_match("", "", '.'));
    assert_false(imap_list_match("", "x", '.'));
    assert_true(imap_list_match("%.%", "x.y", '.'));
    assert_false(imap_list_match("Sent", "sent", '.'));
    /* A pattern that would be exponential for a backtracking matcher. */
    char pat[2049], name[1025];
    memset(pat, '%', 2048);
    pat[2048] = '\0';
    pat[2047] = 'x';
    memset(name, 'a', 1024);
    name[1024] = '\0';
    assert_false(imap_list_match(pat, name, '.'));
    memset(pat, '*', 2047);
    assert_false(imap_list_match(pat, name, '.'));
    name[1023] = 'x';
    assert_true(imap_list_match(pat, name, '.'));
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_unbalanced_parentheses_are_refused),
        T(test_nesting_beyond_bound_is_refused),
        T(test_eight_bit_in_atom_is_refused),
        T(test_bad_tags_are_refused),
        T(test_literal_announcement_must_end_line),
        T(test_literal_with_missing_data_is_refused),
        T(test_literal_size_overflow_is_refused),
        T(test_huge_literal_announcement_is_reported_before_reading),
        T(test_literal_suffix_ignores_quoted_text_and_partial_lines),
        T(test_quoted_string_errors),
        T(test_bad_sequence_sets_are_refused),
        T(test_numbers_out_of_range_are_refused),
        T(test_bad_dates_are_refused),
        T(test_garbage_after_command_is_refused),
        T(test_missing_argument_is_reported),
        T(test_first_error_sticks),
        T(test_command_with_strings),
        T(test_nonsync_literal_and_bare_lf),
        T(test_nstring_nil_and_atom_like_nil),
        T(test_sequence_sets),
        T(test_date_time_to_utc),
        T(test_flags_and_list_mailbox),
        T(test_literal8),
        T(test_list_wildcards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
