/* Unit tests for libmail/imap_fetch.c: the FETCH attribute list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "imap_fetch.h"
#include "strbuf.h"

static struct imap_fetch_request *parse(const char *args, const char **error_r)
{
    struct imap_parser p;
    struct imap_fetch_request *req = NULL;
    imap_parser_init(&p, args, strlen(args), IMAP_PARSE_DEPTH_DEFAULT);
    if (!imap_fetch_parse(&p, &req, error_r))
        req = NULL;
    imap_parser_release(&p);
    return req;
}

static void expect_bad(const char *args)
{
    const char *error = NULL;
    struct imap_fetch_request *req = parse(args, &error);
    if (req != NULL)
        fail_msg("accepted: %s", args);
    assert_non_null(error);
}

static void test_malformed_attribute_lists_are_refused(void **state)
{
    (void)state;
    expect_bad("\r\n");
    expect_bad(" \r\n");
    expect_bad(" ()\r\n");
    expect_bad(" (FLAGS\r\n");
    expect_bad(" FLAGS)\r\n");
    expect_bad(" (FLAGS  UID)\r\n");
    expect_bad(" FROGS\r\n");
    expect_bad(" (ALL)\r\n"); /* macros only alone */
    expect_bad(" BODY[\r\n");
    expect_bad(" BODY[1.]\r\n");
    expect_bad(" BODY[0]\r\n");
    expect_bad(" BODY[1..2]\r\n");
    expect_bad(" BODY[HEADERS]\r\n");
    expect_bad(" BODY[MIME]\r\n");
    expect_bad(" BODY[HEADER.FIELDS]\r\n");
    expect_bad(" BODY[HEADER.FIELDS ()]\r\n");
    expect_bad(" BODY[HEADER.FIELDS (From\r\n");
    expect_bad(" BODY[HEADER.FIELDS (\"a:b\")]\r\n");
    expect_bad(" BODY[]<1>\r\n");
    expect_bad(" BODY[]<1.0>\r\n");
    expect_bad(" BODY[]<99999999999.1>\r\n");
    expect_bad(" BINARY[HEADER]\r\n");
    expect_bad(" BINARY\r\n");
    expect_bad(" BINARY.SIZE[1]<0.5>\r\n");
    expect_bad(" FLAGS (CHANGEDSINCE)\r\n");
    expect_bad(" FLAGS (CHANGEDSINCE x)\r\n");
    expect_bad(" FLAGS (VANISHED)\r\n"); /* needs CHANGEDSINCE */
    expect_bad(" FLAGS (FROB 1)\r\n");
    expect_bad(" FLAGS extra\r\n");
    expect_bad(" BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28."
               "29.30.31.32.33.34]\r\n");
}

static void test_too_many_items_are_refused(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    strbuf_puts(&sb, " (");
    for (int i = 0; i < IMAP_FETCH_MAX_ITEMS + 1; i++)
        strbuf_puts(&sb, i ? " UID" : "UID");
    strbuf_puts(&sb, ")\r\n");
    expect_bad(sb.data);
    strbuf_release(&sb);
}

static void test_macros_expand(void **state)
{
    (void)state;
    const char *error;
    struct imap_fetch_request *req = parse(" FULL\r\n", &error);
    assert_non_null(req);
    assert_int_equal(req->nitems, 5);
    assert_int_equal(req->atts, (1u << IFA_FLAGS) | (1u << IFA_INTERNALDATE) |
                                    (1u << IFA_RFC822_SIZE) | (1u << IFA_ENVELOPE) |
                                    (1u << IFA_BODY));
    assert_false(req->sets_seen);
    imap_fetch_free(&req);
    req = parse(" fast\r\n", &error);
    assert_non_null(req);
    assert_int_equal(req->nitems, 3);
    imap_fetch_free(&req);
}

static void test_sections_parse_and_name_themselves(void **state)
{
    (void)state;
    const char *error;
    struct strbuf name;
    strbuf_init(&name, 0);
    struct imap_fetch_request *req =
        parse(" (UID BODY.PEEK[1.2.HEADER.FIELDS (From \"To\" {2}\r\nCc)]<5.10> BODY[] "
              "RFC822.HEADER BINARY[2]<0.3> BINARY.SIZE[1] BODY[3.MIME] body)\r\n",
              &error);
    if (req == NULL)
        fail_msg("refused: %s", error);
    assert_int_equal(req->nitems, 8);
    const struct imap_fetch_item *it = &req->items[1];
    assert_int_equal(it->att, IFA_SECTION);
    assert_true(it->peek);
    assert_int_equal(it->spec, IFS_HEADER_FIELDS);
    assert_int_equal(it->nparts, 2);
    assert_int_equal(it->part[0], 1);
    assert_int_equal(it->part[1], 2);
    assert_int_equal(it->nfields, 3);
    assert_string_equal(it->fields[2], "Cc");
    assert_true(it->partial);
    assert_int_equal(it->offset, 5);
    assert_int_equal(it->count, 10);
    imap_fetch_item_name(it, &name);
    assert_string_equal(name.data, "BODY[1.2.HEADER.FIELDS (From To Cc)]<5>");

    strbuf_reset(&name);
    imap_fetch_item_name(&req->items[2], &name);
    assert_string_equal(name.data, "BODY[]");
    assert_true(req->sets_seen); /* BODY[] without PEEK */

    strbuf_reset(&name);
    assert_true(req->items[3].peek);
    imap_fetch_item_name(&req->items[3], &name);
    assert_string_equal(name.data, "RFC822.HEADER");

    strbuf_reset(&name);
    imap_fetch_item_name(&req->items[4], &name);
    assert_string_equal(name.data, "BINARY[2]<0>");

    strbuf_reset(&name);
    assert_int_equal(req->items[5].att, IFA_BINARY_SIZE);
    imap_fetch_item_name(&req->items[5], &name);
    assert_string_equal(name.data, "BINARY.SIZE[1]");

    strbuf_reset(&name);
    assert_int_equal(req->items[6].spec, IFS_MIME);
    imap_fetch_item_name(&req->items[6], &name);
    assert_string_equal(name.data, "BODY[3.MIME]");
    /* "body" without a section is the BODY structure item */
    assert_true(req->atts & (1u << IFA_BODY));
    imap_fetch_free(&req);
    strbuf_release(&name);
}

static void test_modifiers(void **state)
{
    (void)state;
    const char *error;
    struct imap_fetch_request *req = parse(" (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n", &error);
    if (req == NULL)
        fail_msg("refused: %s", error);
    assert_true(req->changedsince);
    assert_true(req->vanished);
    assert_int_equal(req->modseq, 12345);
    assert_true(req->atts & (1u << IFA_MODSEQ)); /* CHANGEDSINCE implies MODSEQ */
    imap_fetch_free(&req);
}

static void test_transfer_encodings_are_found_and_undone(void **state)
{
    (void)state;
#define CTE(h) imap_fetch_cte(h, strlen(h))
    assert_int_equal(CTE(""), IMAP_CTE_IDENTITY);
    assert_int_equal(CTE("Content-Type: text/plain\n\n"), IMAP_CTE_IDENTITY);
    assert_int_equal(CTE("content-transfer-encoding: BASE64\r\n\r\n"), IMAP_CTE_BASE64);
    assert_int_equal(CTE("Content-Transfer-Encoding:\n  quoted-printable (comment)\n"),
                     IMAP_CTE_QP);
    assert_int_equal(CTE("Content-Transfer-Encoding: 8bit\n"), IMAP_CTE_IDENTITY);
    assert_int_equal(CTE("Content-Transfer-Encoding: x-uuencode\n"), IMAP_CTE_UNKNOWN);
    assert_int_equal(CTE("Content-Transfer-Encoding: "
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
                     IMAP_CTE_UNKNOWN);
    assert_int_equal(CTE("Content-Transfer-Encoding:"), IMAP_CTE_IDENTITY); /* cut short */
#undef CTE
    struct strbuf out;
    strbuf_init(&out, 0);
#define DEC(cte, in, expect, elen)                                                                 \
    do {                                                                                           \
        strbuf_reset(&out);                                                                        \
        imap_fetch_decode(cte, in, sizeof(in) - 1, &out);                                          \
        assert_int_equal(out.len, elen);                                                           \
        assert_memory_equal(out.data ? out.data : "", expect, elen);                               \
    } while (0)
    DEC(IMAP_CTE_BASE64, "AAEC\r\nAwQF\r\n", "\0\1\2\3\4\5", 6);
    DEC(IMAP_CTE_BASE64, "aGk=", "hi", 2);
    DEC(IMAP_CTE_BASE64, "a*G!k", "hi", 2); /* junk skipped */
    DEC(IMAP_CTE_BASE64, "", "", 0);
    DEC(IMAP_CTE_BASE64, "a", "", 0); /* fewer than 8 bits */
    DEC(IMAP_CTE_QP, "a=3Db=\r\nc\r\n", "a=bc\r\n", 6);
    DEC(IMAP_CTE_QP, "x=  \r\ny", "xy", 2);      /* soft break after white space */
    DEC(IMAP_CTE_QP, "bad=ZZ=4", "bad=ZZ=4", 8); /* malformed kept */
    DEC(IMAP_CTE_QP, "end=", "end", 3);
    DEC(IMAP_CTE_QP, "=c3=A4", "\xc3\xa4", 2);
    DEC(IMAP_CTE_IDENTITY, "as is=41", "as is=41", 8);
#undef DEC
    strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_attribute_lists_are_refused),
        cmocka_unit_test(test_too_many_items_are_refused),
        cmocka_unit_test(test_macros_expand),
        cmocka_unit_test(test_sections_parse_and_name_themselves),
        cmocka_unit_test(test_modifiers),
        cmocka_unit_test(test_transfer_encodings_are_found_and_undone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
