/*
 * Unit tests for libmail/message.c: malformed and hostile input first, then
 * the corpus in tests/unit/corpus/message (NAME.eml with NAME.expected:
 * ENVELOPE / BODYSTRUCTURE / BODY / SIZE / SECTION lines written against
 * RFC 3501 §7.4.2; CR, LF and backslash escaped as \r \n \\). Every corpus
 * message is also checked with CRLF line ends: the renderings and sizes must
 * not change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

#ifndef MESSAGE_CORPUS_DIR
#define MESSAGE_CORPUS_DIR "tests/unit/corpus/message"
#endif

/* ---- helpers ---- */

static char *render_env(const char *msg, size_t len)
{
    struct message *m = message_parse(msg, len);
    struct strbuf o = STRBUF_INIT;
    message_envelope(m, &o);
    message_free(&m);
    assert_null(m);
    return strbuf_detach(&o, NULL);
}

static char *render_bs(const char *msg, size_t len, bool ext)
{
    struct message *m = message_parse(msg, len);
    struct strbuf o = STRBUF_INIT;
    message_bodystructure(m, ext, &o);
    message_free(&m);
    return strbuf_detach(&o, NULL);
}

static void assert_env(const char *msg, const char *expected)
{
    char *got = render_env(msg, strlen(msg));
    assert_string_equal(got, expected);
    free(got);
}

static void assert_bs(const char *msg, bool ext, const char *expected)
{
    char *got = render_bs(msg, strlen(msg), ext);
    assert_string_equal(got, expected);
    free(got);
}

static char *decode2047(const char *s)
{
    struct strbuf o = STRBUF_INIT;
    message_decode_2047(s, strlen(s), &o);
    strbuf_putc(&o, 0);
    return strbuf_detach(&o, NULL);
}

/* Parentheses balance outside quoted strings and literals; the maximum depth. */
static size_t paren_depth(const char *s, size_t len)
{
    size_t depth = 0, max = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (s[i] == '{') {
            size_t n = strtoul(s + i + 1, NULL, 10);
            const char *nl = memchr(s + i, '\n', len - i);
            assert_non_null(nl);
            i = (size_t)(nl - s) + n;
        } else if (s[i] == '(') {
            if (++depth > max)
                max = depth;
        } else if (s[i] == ')') {
            assert_true(depth > 0);
            depth--;
        }
    }
    assert_int_equal(depth, 0);
    return max;
}

/* ---- malformed and hostile input ---- */

static void test_empty_message_gets_default_structure(void **state)
{
    (void)state;
    char *bs = render_bs("", 0, true);
    assert_string_equal(bs,
                        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL "
                        "NIL NIL NIL)");
    free(bs);
    char *env = render_env("", 0);
    assert_string_equal(env, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    free(env);
    struct message *m = message_parse("", 0);
    size_t off = 1, len = 1;
    assert_int_equal(message_section(m, "", MESSAGE_SEC_ALL, &off, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(message_size_crlf(m), 0);
    assert_int_equal(message_date(m), -1);
    message_free(&m);
}

static void test_deep_multipart_nesting_is_bounded(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    const int levels = 500;
    for (int i = 0; i < levels; i++)
        strbuf_printf(&b, "Content-Type: multipart/mixed; boundary=\"l%d\"\n\n--l%d\n", i, i);
    strbuf_puts(&b, "Content-Type: text/plain\n\ndeep\n");
    struct message *m = message_parse(b.data, b.len);
    assert_true(message_part_count(m) <= MESSAGE_MAX_DEPTH + 1);
    struct strbuf o = STRBUF_INIT;
    message_bodystructure(m, true, &o);
    size_t depth = paren_depth(o.data, o.len);
    assert_true(depth <= MESSAGE_MAX_DEPTH + 4);
    /* the innermost parsed multipart has no parts: one empty text part stands in */
    assert_non_null(strstr(o.data, "\"7bit\" 0 0 NIL NIL NIL NIL)"));
    message_free(&m);
    strbuf_release(&o);
    strbuf_release(&b);
}

static void test_deep_rfc822_nesting_becomes_opaque(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    for (int i = 0; i < 200; i++)
        strbuf_puts(&b, "Subject: level\nContent-Type: message/rfc822\n\n");
    strbuf_puts(&b, "Subject: bottom\n\nbody\n");
    struct message *m = message_parse(b.data, b.len);
    assert_true(message_part_count(m) <= MESSAGE_MAX_DEPTH + 1);
    struct strbuf o = STRBUF_INIT;
    message_bodystructure(m, false, &o);
    paren_depth(o.data, o.len);
    assert_non_null(strstr(o.data, "(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\""));
    strbuf_reset(&o);
    message_envelope(m, &o);
    assert_non_null(strstr(o.data, "\"level\""));
    message_free(&m);
    strbuf_release(&o);
    strbuf_release(&b);
}

static void test_part_count_is_bounded(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "Content-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < MESSAGE_MAX_PARTS + 500; i++)
        strbuf_puts(&b, "--x\n\np\n");
    strbuf_puts(&b, "--x--\n");
    struct message *m = message_parse(b.data, b.len);
    assert_int_equal(message_part_count(m), MESSAGE_MAX_PARTS);
    struct strbuf o = STRBUF_INIT;
    message_bodystructure(m, false, &o);
    paren_depth(o.data, o.len);
    size_t off, len;
    assert_int_equal(message_section(m, "9999", MESSAGE_SEC_ALL, &off, &len), 0);
    assert_int_equal(message_section(m, "10000", MESSAGE_SEC_ALL, &off, &len), -1);
    message_free(&m);
    strbuf_release(&o);
    strbuf_release(&b);
}

static void test_unterminated_quotes_comments_and_angles(void **state)
{
    (void)state;
    /* nothing here may crash or leave the output unbalanced */
    static const char *const hostile[] = {
        /* found by fuzz_message: empty quoted strings as words */
        "From: =?u?,\"\"\"\"\"\"\"\"\"4KT\"\"\"\"\"\"\"\"\"\"\"B?,\"\"\"\"\"\x19KT4`\n\n",
        "From: \"\" \"\" <a@b>, \"\" x, \"\":;\n\n",
        "From: \"unterminated <a@b>\n\n",
        "From: (comment (nested <a@b>\n\n",
        "From: <a@b\n\n",
        "From: <@route,@x\n\n",
        "From: ;;;,,,<>@@::\n\n",
        "From: g: a@b, c@d\n\n",
        "From: \\\n\n",
        "From: [\n\n",
        "Content-Type: multipart/mixed; boundary=\"\n\n--\n",
        "Content-Type: text/plain; charset*0*=utf-8''%; charset*9999=x; =; a\n\n",
        "Content-Type: /; ;;=\"\n\n",
        "Content-Disposition: ; filename*=\n\n",
        "Subject: =?utf-8?B?\n\n",
        "Subject: =?utf-8?Q?=?=\n\n",
        "Date: 99 Foo 99999 99:99:99 +9999\n\n",
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        struct message *m = message_parse(hostile[i], strlen(hostile[i]));
        struct strbuf o = STRBUF_INIT;
        message_envelope(m, &o);
        paren_depth(o.data, o.len);
        strbuf_reset(&o);
        message_bodystructure(m, true, &o);
        paren_depth(o.data, o.len);
        strbuf_reset(&o);
        message_header_decoded(m, "subject", &o);
        message_body_text(m, 100, &o);
        (void)message_date(m);
        message_free(&m);
        strbuf_release(&o);
    }
}

static void test_missing_mailbox_and_domain_are_marked(void **state)
{
    (void)state;
    assert_env("From: <>\nTo: walter\n\n",
               "(NIL NIL ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL "
               "\"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" "
               "\"MISSING_DOMAIN\")) ((NIL NIL \"walter\" \"MISSING_DOMAIN\")) NIL NIL NIL NIL)");
}

static void test_nul_and_8bit_in_header_go_in_a_literal(void **state)
{
    static const char msg[] = "Subject: a\0b\xc3\xa9\n\n";
    (void)state;
    char *env = render_env(msg, sizeof(msg) - 1);
    /* NUL, never allowed in IMAP strings, is shown as U+FFFD (as Dovecot does) */
    assert_string_equal(env, "(NIL {7}\r\na\xef\xbf\xbd"
                             "b\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)");
    free(env);
}

static void test_nul_ends_an_address_list(void **state)
{
    static const char msg[] = "From: a\0b@c.d, \0\0<x@y>\n\n";
    (void)state;
    char *env = render_env(msg, sizeof(msg) - 1);
    assert_string_equal(env,
                        "(NIL NIL ((NIL NIL \"a\" \"MISSING_DOMAIN\")) ((NIL NIL \"a\" "
                        "\"MISSING_DOMAIN\")) ((NIL NIL \"a\" \"MISSING_DOMAIN\")) NIL NIL NIL "
                        "NIL NIL)");
    free(env);
}

static void test_nul_in_parameters_becomes_replacement_char(void **state)
{
    static const char msg[] = "Content-Type: text/plain; name=\"a\0b\"\n\nx\n";
    (void)state;
    char *bs = render_bs(msg, sizeof(msg) - 1, false);
    assert_string_equal(bs, "(\"text\" \"plain\" (\"name\" {5}\r\na\xef\xbf\xbd"
                            "b \"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
    free(bs);
}

static void test_repeated_address_fields_are_joined(void **state)
{
    (void)state;
    assert_env(
        "From: a@b\nSender:\nFrom: c@d\n\n",
        "(NIL NIL ((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")) ((NIL NIL \"a\" \"b\")(NIL NIL "
        "\"c\" \"d\")) ((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")) NIL NIL NIL NIL NIL)");
}

static void test_broken_address_lists_like_dovecot(void **state)
{
    (void)state;
    static const struct {
        const char *from, *list;
    } cases[] = {
        {"undisclosed recipients",
         "((\"undisclosed recipients\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
        {"a@b c@d", "((NIL NIL \"a\" \"b\"))"},
        {"<a@b>, <c@d", "((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"SYNTAX_ERROR\"))"},
        {", a@b", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"a\" \"b\"))"},
        {"a@b,,c@d", "((NIL NIL \"a\" \"b\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL "
                     "NIL \"c\" \"d\"))"},
        {"a@b,", "((NIL NIL \"a\" \"b\"))"},
        {"a@b.", "((NIL NIL \"a\" \"MISSING_DOMAIN\"))"},
        {"<a@>", "((NIL NIL \"a\" \"SYNTAX_ERROR\"))"},
        {"G: a@b; e@f", "((NIL NIL \"G\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL))"},
        {"G: a@b, c", "((NIL NIL \"G\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL \"c\" "
                      "\"MISSING_DOMAIN\")(NIL NIL NIL NIL))"},
        {"foo bar@baz.com", "((\"foo bar\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
        {"a@b (Comment Name)", "((\"Comment Name\" NIL \"a\" \"b\"))"},
        {"a@[1.2.3.4]", "((NIL NIL \"a\" \"[1.2.3.4]\"))"},
        {"a@[1.2", "((NIL NIL \"a\" \"MISSING_DOMAIN\"))"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[256], want[1024];
        snprintf(msg, sizeof(msg), "From: %s\n\n", cases[i].from);
        snprintf(want, sizeof(want), "(NIL NIL %s %s %s NIL NIL NIL NIL NIL)", cases[i].list,
                 cases[i].list, cases[i].list);
        assert_env(msg, want);
    }
}

static void test_quoting_escapes_quotes_and_backslashes(void **state)
{
    (void)state;
    assert_env("Message-ID: <\"a\\\\b\"@x>\n\n",
               "(NIL NIL NIL NIL NIL NIL NIL NIL NIL \"<\\\"a\\\\\\\\b\\\"@x>\")");
    /* many quoted-specials: a literal is shorter */
    assert_env("In-Reply-To: \"\"\"\"\"\n\n",
               "(NIL NIL NIL NIL NIL NIL NIL NIL {5}\r\n\"\"\"\"\" NIL)");
}

static void test_subject_needing_changes_goes_in_a_literal(void **state)
{
    (void)state;
    /* as Dovecot: a subject that was unfolded, collapsed or has specials is a literal */
    assert_env("Subject: one\n  two\t\tthree  \n\n",
               "(NIL {13}\r\none two three NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_env("Subject: say \"hi\"\n\n",
               "(NIL {8}\r\nsay \"hi\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_env("Subject:  plain words\n\n",
               "(NIL \"plain words\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_env("Subject:\n\n", "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_env("Subject: \t \n\n", "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

static void test_duplicate_fields_last_one_counts(void **state)
{
    (void)state;
    assert_env("Subject: one\nSubject: two\n\n", "(NIL \"two\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

static void test_empty_sender_and_reply_to_default_to_from(void **state)
{
    (void)state;
    assert_env("From: a@b.c\nSender:\nReply-To: \n\n",
               "(NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" "
               "\"b.c\")) NIL NIL NIL NIL NIL)");
}

static void test_boundary_that_is_a_prefix_is_not_confused(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: multipart/mixed; boundary=a\n\n"
                              "--a\n"
                              "Content-Type: multipart/mixed; boundary=ab\n\n"
                              "--ab\n\nx\n--ab--\n"
                              "--a--\n";
    assert_bs(msg, false,
              "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\") "
              "\"mixed\")");
}

static void test_boundary_line_with_trailing_whitespace(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: multipart/mixed; boundary=z\n\n"
                              "--z  \n\none\n--z\t\n\ntwo\n--z--  \n";
    assert_bs(msg, false,
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0)(\"text\" "
              "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\")");
}

static void test_encoded_message_rfc822_is_opaque(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
                              "U3ViamVjdDogeA==\n";
    assert_bs(msg, false, "(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 18)");
}

static void test_bad_content_type_falls_back_to_text_plain(void **state)
{
    (void)state;
    assert_bs("Content-Type: text\nContent-Transfer-Encoding: ?x y\n\nhi\n", false,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 1)");
}

/* ---- RFC 2047 ---- */

static void test_2047_invalid_words_are_kept(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"=?utf-8?X?abc?=", "=?utf-8?X?abc?="},
        {"=?utf-8?Q?a b?=", "=?utf-8?Q?a b?="},
        {"=??Q?abc?=", "=??Q?abc?="},
        {"=?utf-8?Q?abc", "=?utf-8?Q?abc"},
        {"plain =? text ?=", "plain =? text ?="},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = decode2047(cases[i][0]);
        assert_string_equal(got, cases[i][1]);
        free(got);
    }
}

static void test_2047_b_q_and_adjacent_words(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"=?UTF-8?B?w6k=?=", "\xc3\xa9"},
        {"=?ISO-8859-1?Q?caf=E9?=", "caf\xc3\xa9"},
        {"=?iso-8859-1?q?a_b?=", "a b"},
        /* whitespace between encoded words goes, around plain text it stays */
        {"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},
        {"=?utf-8?q?a?=\n\t=?utf-8?q?b?= c", "ab c"},
        {"x =?utf-8?q?a?= y", "x a y"},
        /* a UTF-8 character split over two words */
        {"=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "\xe2\x82\xac"},
        /* RFC 2231 language in the charset; no charset at all */
        {"=?utf-8*en?q?hi?=", "hi"},
        {"=?*en?q?hi?=", "hi"},
        /* unknown charset: the bytes are kept */
        {"=?x-unknown-42?q?=41=42?=", "AB"},
        {"=?KOI8-R?B?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = decode2047(cases[i][0]);
        assert_string_equal(got, cases[i][1]);
        free(got);
    }
}

static void test_header_decoded_joins_fields(void **state)
{
    (void)state;
    static const char msg[] = "To: =?utf-8?q?J=C3=BCrgen?= <j@x.de>\nCc: c@x\nTo: b@y\n\n";
    struct message *m = message_parse(msg, strlen(msg));
    struct strbuf o = STRBUF_INIT;
    assert_int_equal(message_header_decoded(m, "TO", &o), 0);
    assert_string_equal(strbuf_str(&o), "J\xc3\xbcrgen <j@x.de>, b@y");
    strbuf_reset(&o);
    assert_int_equal(message_header_decoded(m, "bcc", &o), -1);
    assert_int_equal(message_header_raw(m, "to", &o), 0);
    assert_string_equal(strbuf_str(&o), "=?utf-8?q?J=C3=BCrgen?= <j@x.de>");
    message_free(&m);
    strbuf_release(&o);
}

/* ---- body text ---- */

static void test_body_text_decodes_and_converts(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: multipart/mixed; boundary=b\n\n"
                              "--b\nContent-Type: text/plain; charset=iso-8859-1\n"
                              "Content-Transfer-Encoding: quoted-printable\n\n"
                              "Gr=FC=DFe, soft=\nbreak\n"
                              "--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
                              "aGlkZGVu\n"
                              "--b\nContent-Type: text/plain; charset=utf-8\n"
                              "Content-Transfer-Encoding: base64\n\n"
                              "8J+Ygg==\n"
                              "--b--\n";
    struct message *m = message_parse(msg, strlen(msg));
    struct strbuf o = STRBUF_INIT;
    message_body_text(m, 1000, &o);
    assert_string_equal(strbuf_str(&o), "Gr\xc3\xbc\xc3\x9f"
                                        "e, softbreak\n\xf0\x9f\x98\x82");
    strbuf_reset(&o);
    message_body_text(m, 5, &o);
    assert_int_equal(o.len, 5);
    message_free(&m);
    strbuf_release(&o);
}

/* ---- dates ---- */

static void test_dates_modern_and_obsolete(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        time_t t;
    } cases[] = {
        {"Mon, 3 Feb 2025 10:14:59 +0100", 1738574099},
        {"3 Feb 2025 10:14:59 +0100", 1738574099},
        {"Mon, 03 Feb 2025 09:14:59 GMT", 1738574099},
        {"Mon, 3 Feb 2025 04:14:59 EST", 1738574099},
        {"Mon, 3 Feb 25 09:14:59 UT", 1738574099},
        {"Mon, 3 Feb 2025 09:14 +0000", 1738574040},
        {"Mon (Monday), 3 (third) Feb 2025 09:14:59 +0000 (UTC)", 1738574099},
        {"Mon Feb  3 09:14:59 2025", 1738574099},
        {"Sat, 1 Jan 1999 00:00:00 -0000", 915148800},
        {"1 Jan 99 00:00:00 Z", 915148800},
        {"garbage", -1},
        {"", -1},
        {"32 Jan 2025 10:00:00 +0000", -1},
        {"1 Foo 2025 10:00:00 +0000", -1},
        {"1 Jan 2025", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        time_t got = message_parse_date(cases[i].s, strlen(cases[i].s));
        if (got != cases[i].t)
            print_error("date %s: got %ld want %ld\n", cases[i].s, (long)got, (long)cases[i].t);
        assert_int_equal(got, cases[i].t);
    }
}

/* ---- sections and header filters ---- */

static void test_section_paths_that_do_not_exist(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: multipart/mixed; boundary=q\n\n--q\n\na\n--q--\n";
    struct message *m = message_parse(msg, strlen(msg));
    size_t off, len;
    static const char *const bad[] = {
        "0", "2", "1.2", "1.", ".1", "a", "1..1", "01", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(message_section(m, bad[i], MESSAGE_SEC_ALL, &off, &len), -1);
    assert_int_equal(message_section(m, "", MESSAGE_SEC_MIME, &off, &len), -1);
    assert_int_equal(message_section(m, "1", MESSAGE_SEC_HEADER, &off, &len), -1);
    assert_int_equal(message_section(m, "1", MESSAGE_SEC_ALL, &off, &len), 0);
    assert_memory_equal(msg + off, "a", len);
    /* a single part's part 1 is itself (Dovecot answers so) */
    assert_int_equal(message_section(m, "1.1", MESSAGE_SEC_ALL, &off, &len), 0);
    assert_memory_equal(msg + off, "a", len);
    message_free(&m);
}

static void test_header_filter_fields_and_not(void **state)
{
    (void)state;
    static const char hdr[] = "Subject: hi\nX-Long: a\n b\nFrom: x@y\nno colon line\n\n";
    static const char *const names[] = {"x-long", "FROM"};
    struct strbuf o = STRBUF_INIT;
    message_header_filter(hdr, strlen(hdr), names, 2, false, &o);
    assert_string_equal(strbuf_str(&o), "X-Long: a\r\n b\r\nFrom: x@y\r\n\r\n");
    strbuf_reset(&o);
    message_header_filter(hdr, strlen(hdr), names, 2, true, &o);
    assert_string_equal(strbuf_str(&o), "Subject: hi\r\n\r\n");
    strbuf_reset(&o);
    /* a last field without a line end */
    message_header_filter("Subject: x", 10, names + 0, 0, true, &o);
    assert_string_equal(strbuf_str(&o), "Subject: x\r\n\r\n");
    strbuf_release(&o);
}

static void test_crlf_helpers(void **state)
{
    (void)state;
    static const char s[] = "a\nb\r\nc\rd\n";
    struct strbuf o = STRBUF_INIT;
    assert_int_equal(message_crlf_len(s, strlen(s)), strlen(s) + 2);
    message_append_crlf(s, strlen(s), &o);
    assert_string_equal(strbuf_str(&o), "a\r\nb\r\nc\rd\r\n");
    assert_int_equal(message_crlf_len("\n", 1), 2);
    strbuf_release(&o);
}

/* ---- the corpus ---- */

static char *read_file(const char *name, const char *ext, size_t *len_r)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s", MESSAGE_CORPUS_DIR, name, ext);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    struct strbuf b = STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_append(&b, buf, n);
    fclose(f);
    strbuf_puts(&b, "");
    return strbuf_detach(&b, len_r);
}

static void unescape(const char *s, size_t len, struct strbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            i++;
            strbuf_putc(out, s[i] == 'r' ? '\r' : s[i] == 'n' ? '\n' : s[i]);
        } else {
            strbuf_putc(out, s[i]);
        }
    }
}

static void check_corpus_file(const char *name, const char *msg, size_t msg_len, const char *exp)
{
    struct message *m = message_parse(msg, msg_len);
    struct strbuf want = STRBUF_INIT, got = STRBUF_INIT;
    size_t checks = 0;
    const char *line = exp;
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        size_t ll = nl == NULL ? strlen(line) : (size_t)(nl - line);
        const char *sp = memchr(line, ' ', ll);
        assert_non_null(sp);
        size_t kl = (size_t)(sp - line);
        const char *val = sp + 1;
        size_t vl = ll - kl - 1;
        strbuf_reset(&want);
        strbuf_reset(&got);
        strbuf_puts(&want, "");
        strbuf_puts(&got, "");
        if (kl == 8 && memcmp(line, "ENVELOPE", 8) == 0) {
            unescape(val, vl, &want);
            message_envelope(m, &got);
        } else if (kl == 13 && memcmp(line, "BODYSTRUCTURE", 13) == 0) {
            unescape(val, vl, &want);
            message_bodystructure(m, true, &got);
        } else if (kl == 4 && memcmp(line, "BODY", 4) == 0) {
            unescape(val, vl, &want);
            message_bodystructure(m, false, &got);
        } else if (kl == 4 && memcmp(line, "SIZE", 4) == 0) {
            strbuf_append(&want, val, vl);
            strbuf_printf(&got, "%zu", message_size_crlf(m));
        } else if (kl == 7 && memcmp(line, "SECTION", 7) == 0) {
            /* SECTION <part or -> <what 0..3> <escaped CRLF content or NONE> */
            char part[64];
            int what;
            int used = 0;
            char fmt[] = "%63s %d %n";
            char tmp[256];
            size_t cl = vl < sizeof(tmp) - 1 ? vl : sizeof(tmp) - 1;
            memcpy(tmp, val, cl);
            tmp[cl] = '\0';
            assert_int_equal(sscanf(tmp, fmt, part, &what, &used), 2);
            const char *content = val + used;
            size_t content_len = vl - (size_t)used;
            size_t off, len;
            int r = message_section(m, strcmp(part, "-") == 0 ? "" : part, (enum message_sec)what,
                                    &off, &len);
            if (content_len == 4 && memcmp(content, "NONE", 4) == 0) {
                strbuf_puts(&want, "-1");
                strbuf_printf(&got, "%d", r);
            } else {
                unescape(content, content_len, &want);
                if (r == 0)
                    message_append_crlf(msg + off, len, &got);
                else
                    strbuf_puts(&got, "(missing section)");
            }
        } else {
            fail_msg("%s: unknown expectation %.*s", name, (int)kl, line);
        }
        if (want.len != got.len || memcmp(want.data, got.data, want.len) != 0) {
            print_error("%s: %.*s\n want: %s\n  got: %s\n", name, (int)kl, line, want.data,
                        got.data);
            fail();
        }
        checks++;
        line = nl == NULL ? line + ll : nl + 1;
    }
    assert_true(checks >= 4);
    message_free(&m);
    strbuf_release(&want);
    strbuf_release(&got);
}

static const char *const corpus[] = {
    "simple",     "alternative",       "mixed_attachment",
    "nested",     "rfc822_attachment", "encoded_subjects",
    "groups",     "missing_boundary",  "no_boundary_param",
    "bad_base64", "header_only",       "body_only",
    "no_colon",   "eightbit_header",   "empty",
    "digest",
};

static void test_corpus_matches_expected(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        size_t len, elen;
        char *msg = read_file(corpus[i], ".eml", &len);
        char *exp = read_file(corpus[i], ".expected", &elen);
        check_corpus_file(corpus[i], msg, len, exp);
        free(msg);
        free(exp);
    }
}

static void test_corpus_crlf_gives_same_renderings_and_sizes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        size_t len, elen;
        char *msg = read_file(corpus[i], ".eml", &len);
        char *exp = read_file(corpus[i], ".expected", &elen);
        struct strbuf crlf = STRBUF_INIT;
        strbuf_puts(&crlf, "");
        message_append_crlf(msg, len, &crlf);
        check_corpus_file(corpus[i], crlf.data, crlf.len, exp);
        struct message *a = message_parse(msg, len), *b = message_parse(crlf.data, crlf.len);
        assert_int_equal(message_size_crlf(a), crlf.len);
        assert_int_equal(message_size_crlf(b), crlf.len);
        assert_int_equal(message_part_count(a), message_part_count(b));
        struct strbuf ta = STRBUF_INIT, tb = STRBUF_INIT;
        message_body_text(a, 100000, &ta);
        message_body_text(b, 100000, &tb);
        /* the decoded text differs only in line ends */
        size_t na = 0, nb = 0;
        for (size_t k = 0; k < ta.len; k++)
            na += ta.data[k] != '\r';
        for (size_t k = 0; k < tb.len; k++)
            nb += tb.data[k] != '\r';
        assert_int_equal(na, nb);
        message_free(&a);
        message_free(&b);
        strbuf_release(&ta);
        strbuf_release(&tb);
        strbuf_release(&crlf);
        free(msg);
        free(exp);
    }
}

static void test_corpus_decoded_subject_and_date(void **state)
{
    (void)state;
    size_t len, elen;
    char *msg = read_file("encoded_subjects", ".eml", &len);
    struct message *m = message_parse(msg, len);
    struct strbuf o = STRBUF_INIT;
    assert_int_equal(message_header_decoded(m, "subject", &o), 0);
    assert_string_equal(strbuf_str(&o),
                        "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf"
                        "\xe4\xb8\x96\xe7\x95\x8c and caf\xc3\xa9 cr\xc3\xa8me");
    strbuf_reset(&o);
    assert_int_equal(message_header_decoded(m, "from", &o), 0);
    assert_string_equal(strbuf_str(&o), "J\xc3\xbcrgen M\xc3\xbcller <juergen@example.de>");
    assert_int_equal(message_date(m), 1739008800);
    message_free(&m);
    strbuf_release(&o);
    free(msg);
    /* an attached message's header is searchable text, its body too */
    msg = read_file("rfc822_attachment", ".eml", &elen);
    m = message_parse(msg, elen);
    message_body_text(m, 10000, &o);
    assert_non_null(strstr(strbuf_str(&o), "Forwarding the minutes.\n"));
    assert_non_null(strstr(strbuf_str(&o), "\nSender: secretary@example.org\n"));
    assert_non_null(strstr(strbuf_str(&o), "Item 2: hiring."));
    assert_null(strstr(strbuf_str(&o), "Subject: Fwd: Minutes"));
    message_free(&m);
    strbuf_release(&o);
    free(msg);
    msg = read_file("alternative", ".eml", &elen);
    m = message_parse(msg, elen);
    strbuf_reset(&o);
    message_body_text(m, 10000, &o);
    assert_non_null(strstr(strbuf_str(&o), "Caf\xc3\xa9 beans: 20% off.\nTea"));
    message_free(&m);
    strbuf_release(&o);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_message_gets_default_structure),
        cmocka_unit_test(test_deep_multipart_nesting_is_bounded),
        cmocka_unit_test(test_deep_rfc822_nesting_becomes_opaque),
        cmocka_unit_test(test_part_count_is_bounded),
        cmocka_unit_test(test_unterminated_quotes_comments_and_angles),
        cmocka_unit_test(test_missing_mailbox_and_domain_are_marked),
        cmocka_unit_test(test_nul_and_8bit_in_header_go_in_a_literal),
        cmocka_unit_test(test_nul_ends_an_address_list),
        cmocka_unit_test(test_nul_in_parameters_becomes_replacement_char),
        cmocka_unit_test(test_repeated_address_fields_are_joined),
        cmocka_unit_test(test_broken_address_lists_like_dovecot),
        cmocka_unit_test(test_quoting_escapes_quotes_and_backslashes),
        cmocka_unit_test(test_subject_needing_changes_goes_in_a_literal),
        cmocka_unit_test(test_duplicate_fields_last_one_counts),
        cmocka_unit_test(test_empty_sender_and_reply_to_default_to_from),
        cmocka_unit_test(test_boundary_that_is_a_prefix_is_not_confused),
        cmocka_unit_test(test_boundary_line_with_trailing_whitespace),
        cmocka_unit_test(test_encoded_message_rfc822_is_opaque),
        cmocka_unit_test(test_bad_content_type_falls_back_to_text_plain),
        cmocka_unit_test(test_2047_invalid_words_are_kept),
        cmocka_unit_test(test_2047_b_q_and_adjacent_words),
        cmocka_unit_test(test_header_decoded_joins_fields),
        cmocka_unit_test(test_body_text_decodes_and_converts),
        cmocka_unit_test(test_dates_modern_and_obsolete),
        cmocka_unit_test(test_section_paths_that_do_not_exist),
        cmocka_unit_test(test_header_filter_fields_and_not),
        cmocka_unit_test(test_crlf_helpers),
        cmocka_unit_test(test_corpus_matches_expected),
        cmocka_unit_test(test_corpus_crlf_gives_same_renderings_and_sizes),
        cmocka_unit_test(test_corpus_decoded_subject_and_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
