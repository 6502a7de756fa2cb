/* Unit tests for libmail/imap_search.c: SEARCH program parsing and evaluation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <strings.h>

#include "imap_search.h"
#include "strbuf.h"

/* Parse the arguments of a SEARCH (what follows the command name). */
static enum imap_search_parse_result
parse_len(const char *args, size_t len, struct imap_search_program **prog_r, const char **error_r)
{
    struct imap_parser p;
    imap_parser_init(&p, args, len, IMAP_PARSE_DEPTH_DEFAULT);
    enum imap_search_parse_result r = imap_search_parse(&p, true, prog_r, error_r);
    imap_parser_release(&p);
    return r;
}

static enum imap_search_parse_result parse(const char *args, struct imap_search_program **prog_r,
                                           const char **error_r)
{
    return parse_len(args, strlen(args), prog_r, error_r);
}

static void expect_bad_len(const char *args, size_t len)
{
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    enum imap_search_parse_result r = parse_len(args, len, &prog, &error);
    if (r != IMAP_SEARCH_BAD)
        fail_msg("accepted: %s", args);
    assert_null(prog);
    assert_non_null(error);
}

static void expect_bad(const char *args)
{
    expect_bad_len(args, strlen(args));
}

static void test_malformed_programs_are_refused(void **state)
{
    (void)state;
    expect_bad("\r\n");
    expect_bad(" \r\n");
    expect_bad(" FROG\r\n");
    expect_bad(" FROM\r\n");
    expect_bad(" OR FROM a\r\n");
    expect_bad(" NOT\r\n");
    expect_bad(" (SEEN\r\n");
    expect_bad(" SEEN)\r\n");
    expect_bad(" ()\r\n");
    expect_bad(" SEEN  DELETED\r\n");
    expect_bad(" BEFORE 32-Jan-2020\r\n");
    expect_bad(" BEFORE 29-Feb-2023\r\n");
    expect_bad(" SINCE 1-Foo-2020\r\n");
    expect_bad(" LARGER x\r\n");
    expect_bad(" UID\r\n");
    expect_bad(" UID a:b\r\n");
    expect_bad(" 1:x\r\n");
    expect_bad(" HEADER \"\" x\r\n");
    expect_bad(" HEADER \"a:b\" x\r\n");
    expect_bad(" KEYWORD\r\n");
    expect_bad(" RETURN (FOO) ALL\r\n");
    expect_bad(" RETURN (MIN\r\n");
    expect_bad(" MODSEQ\r\n");
    expect_bad(" MODSEQ \"/flags/\\\\seen\" bogus 5\r\n");
    expect_bad_len(" SUBJECT {3}\r\na\0b\r\n", 19); /* NUL inside a literal */
    expect_bad(" $\r\n");
    expect_bad(" ALL trailing-garbage\r\n");
}

static void test_nesting_beyond_the_bound_is_refused(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    strbuf_puts(&sb, " ");
    for (int i = 0; i < IMAP_SEARCH_MAX_DEPTH + 5; i++)
        strbuf_puts(&sb, "NOT ");
    strbuf_puts(&sb, "SEEN\r\n");
    expect_bad(sb.data);

    strbuf_reset(&sb);
    strbuf_puts(&sb, " ");
    for (int i = 0; i < 200; i++)
        strbuf_putc(&sb, '(');
    strbuf_puts(&sb, "SEEN");
    for (int i = 0; i < 200; i++)
        strbuf_putc(&sb, ')');
    strbuf_puts(&sb, "\r\n");
    expect_bad(sb.data);

    strbuf_reset(&sb);
    strbuf_puts(&sb, " ");
    for (int i = 0; i < IMAP_SEARCH_MAX_KEYS + 10; i++)
        strbuf_puts(&sb, "SEEN ");
    strbuf_puts(&sb, "ALL\r\n");
    expect_bad(sb.data);
    strbuf_release(&sb);
}

static void test_unknown_charset_gives_badcharset(void **state)
{
    (void)state;
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    assert_int_equal(parse(" CHARSET KOI8-R SUBJECT x\r\n", &prog, &error), IMAP_SEARCH_BADCHARSET);
    assert_null(prog);
    assert_int_equal(parse(" CHARSET utf-8 SUBJECT x\r\n", &prog, &error), IMAP_SEARCH_OK);
    assert_true(prog->charset_utf8);
    imap_search_free(&prog);
    assert_int_equal(parse(" CHARSET US-ASCII ALL\r\n", &prog, &error), IMAP_SEARCH_OK);
    imap_search_free(&prog);
}

static void test_return_options_are_parsed(void **state)
{
    (void)state;
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    assert_int_equal(parse(" RETURN (MIN COUNT) CHARSET UTF-8 ALL\r\n", &prog, &error),
                     IMAP_SEARCH_OK);
    assert_true(prog->esearch);
    assert_int_equal(prog->ret, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_COUNT);
    imap_search_free(&prog);
    assert_int_equal(parse(" RETURN () ALL\r\n", &prog, &error), IMAP_SEARCH_OK);
    assert_int_equal(prog->ret, IMAP_SEARCH_RET_ALL);
    imap_search_free(&prog);
    /* without ESEARCH allowed, RETURN is an error */
    struct imap_parser p;
    const char *args = " RETURN (MIN) ALL\r\n";
    imap_parser_init(&p, args, strlen(args), IMAP_PARSE_DEPTH_DEFAULT);
    assert_int_equal(imap_search_parse(&p, false, &prog, &error), IMAP_SEARCH_BAD);
    imap_parser_release(&p);
}

/* ---- evaluation against a fake message ---- */

struct fake {
    const char *from, *subject, *body, *keyword;
    long long sent_day;
};

static bool f_kw(void *ctx, const char *kw)
{
    struct fake *f = ctx;
    return f->keyword && strcasecmp(f->keyword, kw) == 0;
}

static bool f_header(void *ctx, const char *name, struct strbuf *out)
{
    struct fake *f = ctx;
    if (strcmp(name, "from") == 0 && f->from) {
        strbuf_puts(out, f->from);
        return true;
    }
    if (strcmp(name, "subject") == 0 && f->subject) {
        strbuf_puts(out, f->subject);
        return true;
    }
    if (name[0] == '\0') {
        strbuf_printf(out, "From: %s\nSubject: %s\n", f->from ? f->from : "",
                      f->subject ? f->subject : "");
        return true;
    }
    return false;
}

static bool f_body(void *ctx, struct strbuf *out)
{
    struct fake *f = ctx;
    strbuf_puts(out, f->body ? f->body : "");
    return true;
}

static bool f_sent(void *ctx, long long *day_r)
{
    struct fake *f = ctx;
    *day_r = f->sent_day;
    return f->sent_day != 0;
}

static bool match(const char *args, struct fake *f, uint32_t seq, uint32_t flags, uint64_t size)
{
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    if (parse(args, &prog, &error) != IMAP_SEARCH_OK)
        fail_msg("refused %s: %s", args, error);
    struct imap_search_msg m = {
        .seq = seq,
        .uid = seq * 10,
        .max_seq = 5,
        .max_uid = 50,
        .flags = flags,
        .size = size,
        .modseq = 7,
        .internaldate = 86400 * 20000 + 43200, /* 2024-10-04 noon UTC */
        .has_keyword = f_kw,
        .header = f_header,
        .body = f_body,
        .sent_day = f_sent,
        .ctx = f,
    };
    bool r = imap_search_match(prog, &m);
    imap_search_free(&prog);
    return r;
}

static void test_keys_match_as_rfc3501_says(void **state)
{
    (void)state;
    struct fake f = {"Alice <alice@example.test>", "Quarterly Report", "Hello World\n", "$Work",
                     imap_days_from_civil(2024, 3, 1)};
    assert_true(match(" ALL\r\n", &f, 1, 0, 100));
    assert_true(match(" FROM ALICE\r\n", &f, 1, 0, 100));
    assert_false(match(" FROM bob\r\n", &f, 1, 0, 100));
    assert_true(match(" SUBJECT \"report\"\r\n", &f, 1, 0, 100));
    assert_true(match(" BODY world\r\n", &f, 1, 0, 100));
    assert_true(match(" TEXT quarterly\r\n", &f, 1, 0, 100));
    assert_true(match(" TEXT hello\r\n", &f, 1, 0, 100));
    assert_false(match(" BODY quarterly\r\n", &f, 1, 0, 100));
    assert_true(match(" OR FROM bob SUBJECT report\r\n", &f, 1, 0, 100));
    assert_false(match(" NOT FROM alice\r\n", &f, 1, 0, 100));
    assert_true(match(" (FROM alice SUBJECT report) UNSEEN\r\n", &f, 1, 0, 100));
    assert_false(match(" SEEN\r\n", &f, 1, 0, 100));
    assert_true(match(" SEEN FLAGGED\r\n", &f, 1, IMAP_SF_SEEN | IMAP_SF_FLAGGED, 100));
    assert_true(match(" UNDELETED UNANSWERED UNDRAFT\r\n", &f, 1, IMAP_SF_SEEN, 100));
    assert_true(match(" NEW\r\n", &f, 1, IMAP_SF_RECENT, 100));
    assert_false(match(" OLD\r\n", &f, 1, IMAP_SF_RECENT, 100));
    assert_true(match(" LARGER 99 SMALLER 101\r\n", &f, 1, 0, 100));
    assert_false(match(" LARGER 100\r\n", &f, 1, 0, 100));
    assert_true(match(" KEYWORD $work\r\n", &f, 1, 0, 100));
    assert_true(match(" UNKEYWORD $Other\r\n", &f, 1, 0, 100));
    assert_true(match(" 2:4\r\n", &f, 3, 0, 100));
    assert_false(match(" 2:4\r\n", &f, 5, 0, 100));
    assert_true(match(" 4:*\r\n", &f, 5, 0, 100));
    assert_true(match(" UID 30,45:*\r\n", &f, 3, 0, 100));
    assert_true(match(" UID 30,45:*\r\n", &f, 5, 0, 100));
    assert_false(match(" UID 30,45:*\r\n", &f, 4, 0, 100));
    assert_true(match(" HEADER Subject quarterly\r\n", &f, 1, 0, 100));
    assert_true(match(" HEADER Subject \"\"\r\n", &f, 1, 0, 100));
    assert_false(match(" HEADER X-Nothing \"\"\r\n", &f, 1, 0, 100));
    assert_true(match(" SENTON 1-Mar-2024\r\n", &f, 1, 0, 100));
    assert_true(match(" SENTBEFORE 2-Mar-2024 SENTSINCE 01-Mar-2024\r\n", &f, 1, 0, 100));
    assert_false(match(" SENTBEFORE 1-Mar-2024\r\n", &f, 1, 0, 100));
    assert_true(match(" MODSEQ 7\r\n", &f, 1, 0, 100));
    assert_false(match(" MODSEQ \"/flags/\\\\draft\" all 8\r\n", &f, 1, 0, 100));
}

static void test_text_match_is_case_insensitive_beyond_ascii(void **state)
{
    (void)state;
#define C(h, n) imap_search_text_contains(h, strlen(h), n, strlen(n))
    assert_true(C("Hello World", "WORLD"));
    assert_true(C("Hello World", ""));
    assert_false(C("Hello", "Hello World"));
    assert_true(C("Gr\xc3\xbc\xc3\x9f"
                  "e aus K\xc3\xb6ln",
                  "K\xc3\x96LN"));                                          /* Köln / KÖLN */
    assert_true(C("\xc3\x84RGER", "\xc3\xa4rger"));                         /* ÄRGER / ärger */
    assert_true(C("\xce\x9a\xce\x91\xce\x9b\xce\x97", "\xce\xba\xce\xb1")); /* ΚΑΛΗ / κα */
    assert_true(C("\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2",
                  "\xd0\xbf\xd1\x80\xd0\xb8")); /* ПРИВЕТ / при */
    assert_true(C("\xc5\x81\xc3\xb3"
                  "d\xc5\xba",
                  "\xc5\x82\xc3\x93")); /* Łódź / łÓ */
    assert_false(C("abc", "\xc3\xa4"));
    assert_true(C("xx\xff\xfeyy", "\xff\xfe")); /* invalid bytes compare as themselves */
    assert_true(C("aaab", "aab"));
#undef C
}

static void test_dates(void **state)
{
    (void)state;
    long long d;
    assert_true(imap_search_parse_date("1-Jan-1970", 10, &d));
    assert_int_equal(d, 0);
    assert_true(imap_search_parse_date("29-Feb-2024", 11, &d));
    assert_int_equal(d, imap_days_from_civil(2024, 2, 29));
    assert_false(imap_search_parse_date("29-Feb-2023", 11, &d));
    assert_false(imap_search_parse_date("0-Jan-2000", 10, &d));
    assert_false(imap_search_parse_date("1-Jan-20000", 11, &d));
    assert_false(imap_search_parse_date("", 0, &d));
    assert_int_equal(imap_days_from_civil(2000, 3, 1), 11017);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_programs_are_refused),
        cmocka_unit_test(test_nesting_beyond_the_bound_is_refused),
        cmocka_unit_test(test_unknown_charset_gives_badcharset),
        cmocka_unit_test(test_return_options_are_parsed),
        cmocka_unit_test(test_keys_match_as_rfc3501_says),
        cmocka_unit_test(test_text_match_is_case_insensitive_beyond_ascii),
        cmocka_unit_test(test_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
