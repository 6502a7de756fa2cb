/*
 * test_deliver_request - qmgr's "deliver" request as local and smtp decode it
 * (libmail/deliver_request.c): malformed records first, then valid local and
 * smtp requests, and the wire form of docs/protocols.md through attr_decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "attr.h"
#include "deliver_request.h"

#define QID "1J0SJSO6OFCAE9CT"
#define SMTP_FLAGS (DELIVER_REQUEST_NEXTHOP | DELIVER_REQUEST_NO_BRACKETS)

/* A valid envelope, leaving out the attribute named skip (or none). */
static void add_envelope(struct attr_list *l, const char *skip)
{
    static const char *const env[][2] = {{"request", "deliver"},
                                         {"queue_id", QID},
                                         {"sender", "alice@example.test"},
                                         {"offset", "212"},
                                         {"size", "65"}};
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        if (skip == NULL || strcmp(env[i][0], skip) != 0)
            attr_list_add_str(l, env[i][0], env[i][1]);
}

static void add_rcpt(struct attr_list *l, const char *index, const char *rcpt, const char *orig)
{
    attr_list_add_str(l, "index", index);
    if (rcpt != NULL)
        attr_list_add_str(l, "rcpt", rcpt);
    if (orig != NULL)
        attr_list_add_str(l, "orig", orig);
}

/* l must be rejected with class and exactly the text why; nothing is left allocated. */
static void assert_bad_flags(struct attr_list *l, unsigned flags, enum deliver_request_result class,
                             const char *why)
{
    struct deliver_request d;
    const char *err = NULL;
    memset(&d, 0x5a, sizeof(d));
    enum deliver_request_result r = deliver_request_decode(l, flags, &d, &err);
    if (r == DELIVER_REQUEST_OK)
        fail_msg("accepted a record that should fail with \"%s\"", why);
    assert_non_null(err);
    if (strcmp(err, why) != 0)
        fail_msg("got \"%s\", want \"%s\"", err, why);
    assert_int_equal(r, class);
    assert_null(d.rcpts);
    assert_int_equal(d.nrcpts, 0);
    /* Every error after the queue ID's own names the queue ID, for log lines. */
    if (class == DELIVER_REQUEST_BAD_ENVELOPE || class == DELIVER_REQUEST_BAD_RCPTS)
        assert_string_equal(d.queue_id, QID);
    else
        assert_null(d.queue_id);
    deliver_request_release(&d);
    attr_list_release(l);
}

static void assert_bad(struct attr_list *l, enum deliver_request_result class, const char *why)
{
    assert_bad_flags(l, 0, class, why);
}

static void test_missing_or_unknown_request_is_rejected(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "missing request"); /* empty record */

    add_envelope(&l, "request");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "missing request");

    attr_list_add_str(&l, "request", "status");
    add_envelope(&l, "request");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "unknown request");

    attr_list_add_str(&l, "request", "");
    add_envelope(&l, "request");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "unknown request");

    attr_list_add_str(&l, "request", "Deliver");
    add_envelope(&l, "request");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "unknown request");

    /* "deliver\0x" is not "deliver", whatever strcmp would say. */
    attr_list_add(&l, "request", "deliver\0x", 9);
    add_envelope(&l, "request");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "NUL byte in request");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "request", "deliver");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_REQUEST, "request given twice");
}

static void test_bad_queue_id_is_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                         /* empty */
        "../etc",                   /* a path */
        "1J0SJSO6/../x",            /* a path inside */
        "1j0sjso6ofcae9ct",         /* lower case */
        "1J0SJSO6OFCAE9CW",         /* W is not a base-32 digit here */
        "1J0SJSO",                  /* too short */
        "1J0SJSO6OFCAE9CT01234567", /* too long: 24 digits */
        "1J0SJSO6 OFCAE9CT",        /* space */
        " 1J0SJSO6OFCAE9CT",        /* leading space */
    };
    struct attr_list l = ATTR_LIST_INIT;

    add_envelope(&l, "queue_id");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_QUEUE_ID, "missing queue_id");

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        add_envelope(&l, "queue_id");
        attr_list_add_str(&l, "queue_id", bad[i]);
        add_rcpt(&l, "0", "bob@example.test", "");
        assert_bad(&l, DELIVER_REQUEST_BAD_QUEUE_ID, "malformed queue_id");
    }

    /* A valid ID followed by a NUL and a path must not pass as the ID. */
    add_envelope(&l, "queue_id");
    attr_list_add(&l, "queue_id", QID "\0/../../etc/passwd", sizeof(QID "\0/../../etc/passwd") - 1);
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_QUEUE_ID, "NUL byte in queue_id");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "queue_id", QID);
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_QUEUE_ID, "queue_id given twice");
}

static void test_missing_sender_offset_or_size_is_rejected(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    add_envelope(&l, "sender");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "missing sender");

    add_envelope(&l, "offset");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "missing offset");

    add_envelope(&l, "size");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "missing size");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "sender", "mallory@example.test");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "sender given twice");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "offset", "0");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "offset given twice");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "size", "1");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "size given twice");
}

static void test_nexthop_is_required_by_smtp_only(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    add_envelope(&l, NULL);
    add_rcpt(&l, "0", "bob@remote.test", "");
    assert_bad_flags(&l, SMTP_FLAGS, DELIVER_REQUEST_BAD_ENVELOPE, "missing nexthop");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "nexthop", "remote.test");
    attr_list_add_str(&l, "nexthop", "[127.0.0.1]:25");
    add_rcpt(&l, "0", "bob@remote.test", "");
    assert_bad_flags(&l, SMTP_FLAGS, DELIVER_REQUEST_BAD_ENVELOPE, "nexthop given twice");

    add_envelope(&l, NULL);
    attr_list_add(&l, "nexthop", "remote.test\0x", 13);
    add_rcpt(&l, "0", "bob@remote.test", "");
    assert_bad_flags(&l, SMTP_FLAGS, DELIVER_REQUEST_BAD_ENVELOPE, "NUL byte in nexthop");

    /* local: no nexthop needed, and none is reported. */
    struct deliver_request d;
    const char *err = NULL;
    add_envelope(&l, NULL);
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_int_equal(deliver_request_decode(&l, 0, &d, &err), DELIVER_REQUEST_OK);
    assert_null(err);
    assert_null(d.nexthop);
    deliver_request_release(&d);
    attr_list_release(&l);
}

static void test_negative_or_non_numeric_offset_or_size_is_rejected(void **state)
{
    (void)state;
    static const char *const not_numbers[] = {
        "",
        "-",
        "12a",
        "a12",
        " 1",
        "1 ",
        "+1",
        "0x10",
        "1.5",
        "1e3",
        "99999999999999999999",  /* beyond long long */
        "-99999999999999999999", /* below long long */
    };
    struct attr_list l = ATTR_LIST_INIT;

    for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
        add_envelope(&l, "offset");
        attr_list_add_str(&l, "offset", not_numbers[i]);
        add_rcpt(&l, "0", "bob@example.test", "");
        assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "offset is not a decimal number");

        add_envelope(&l, "size");
        attr_list_add_str(&l, "size", not_numbers[i]);
        add_rcpt(&l, "0", "bob@example.test", "");
        assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "size is not a decimal number");
    }

    add_envelope(&l, "offset");
    attr_list_add_str(&l, "offset", "-1");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "negative offset");

    add_envelope(&l, "offset");
    attr_list_add_str(&l, "offset", "-9223372036854775808");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "negative offset");

    add_envelope(&l, "size");
    attr_list_add_str(&l, "size", "-65");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "negative size");

    add_envelope(&l, "offset");
    attr_list_add(&l, "offset", "2\0001", 3);
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "NUL byte in offset");

    /* Each alone fits, their sum would not. */
    attr_list_add_str(&l, "request", "deliver");
    attr_list_add_str(&l, "queue_id", QID);
    attr_list_add_str(&l, "sender", "");
    attr_list_add_str(&l, "offset", "9223372036854775807");
    attr_list_add_str(&l, "size", "1");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "offset + size overflows");
}

static void test_negative_or_non_numeric_index_is_rejected(void **state)
{
    (void)state;
    static const char *const not_numbers[] = {"",   "-",   "x",   "1x", " 1",
                                              "+1", "0x1", "1.0", "1 ", "99999999999999999999"};
    struct attr_list l = ATTR_LIST_INIT;

    for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
        add_envelope(&l, NULL);
        add_rcpt(&l, "0", "bob@example.test", "");
        add_rcpt(&l, not_numbers[i], "carol@example.test", "");
        assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "index is not a decimal number");
    }

    add_envelope(&l, NULL);
    add_rcpt(&l, "-1", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "negative index");

    add_envelope(&l, NULL);
    add_rcpt(&l, "3", "bob@example.test", "");
    add_rcpt(&l, "-9223372036854775808", "carol@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "negative index");
}

static void test_rcpt_or_orig_before_index_is_rejected(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "rcpt", "bob@example.test");
    add_rcpt(&l, "0", "carol@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "rcpt before the first index");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "orig", "rfc822;bob@example.test");
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "orig before the first index");
}

static void test_recipient_list_shape_is_checked(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    /* index without rcpt, in the middle and at the end */
    add_envelope(&l, NULL);
    add_rcpt(&l, "0", NULL, "");
    add_rcpt(&l, "1", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "recipient without rcpt");

    add_envelope(&l, NULL);
    add_rcpt(&l, "0", "bob@example.test", "");
    add_rcpt(&l, "1", NULL, NULL);
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "recipient without rcpt");

    add_envelope(&l, NULL);
    add_rcpt(&l, "0", "", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "empty rcpt");

    add_envelope(&l, NULL);
    add_rcpt(&l, "0", "bob@example.test", "");
    attr_list_add_str(&l, "rcpt", "mallory@example.test");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "rcpt given twice for a recipient");

    add_envelope(&l, NULL);
    add_rcpt(&l, "0", "bob@example.test", "");
    attr_list_add_str(&l, "orig", "rfc822;x@example.test");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "orig given twice for a recipient");
}

static void test_nul_inside_a_value_is_rejected(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    add_envelope(&l, "sender");
    attr_list_add(&l, "sender", "alice@example.test\0evil", 23);
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "NUL byte in sender");

    add_envelope(&l, NULL);
    attr_list_add(&l, "index", "0\0", 2);
    attr_list_add_str(&l, "rcpt", "bob@example.test");
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "NUL byte in index");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "index", "0");
    attr_list_add(&l, "rcpt", "bob@example.test\0root", 21);
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "NUL byte in rcpt");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "index", "0");
    attr_list_add_str(&l, "rcpt", "bob@example.test");
    attr_list_add(&l, "orig", "\0", 1);
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "NUL byte in orig");

    /* Even an attribute the decoder does not use. */
    add_envelope(&l, NULL);
    attr_list_add(&l, "future_option", "a\0b", 3);
    add_rcpt(&l, "0", "bob@example.test", "");
    assert_bad(&l, DELIVER_REQUEST_BAD_ENVELOPE, "NUL byte in an attribute value");
}

static void test_cr_lf_in_addresses_is_rejected(void **state)
{
    (void)state;
    static const char *const breaks[] = {"a\r\nRSET@example.test", "a\r@example.test",
                                         "a@example.test\n", "\r"};
    struct attr_list l = ATTR_LIST_INIT;

    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        for (unsigned flags = 0; flags <= SMTP_FLAGS; flags += SMTP_FLAGS) {
            add_envelope(&l, "sender");
            attr_list_add_str(&l, "sender", breaks[i]);
            attr_list_add_str(&l, "nexthop", "remote.test");
            add_rcpt(&l, "0", "bob@example.test", "");
            assert_bad_flags(&l, flags, DELIVER_REQUEST_BAD_ENVELOPE, "CR or LF in sender");

            add_envelope(&l, NULL);
            attr_list_add_str(&l, "nexthop", "remote.test");
            add_rcpt(&l, "0", "bob@example.test", "");
            add_rcpt(&l, "1", breaks[i], "");
            assert_bad_flags(&l, flags, DELIVER_REQUEST_BAD_RCPTS, "CR or LF in rcpt");

            add_envelope(&l, NULL);
            attr_list_add_str(&l, "nexthop", "remote.test");
            add_rcpt(&l, "0", "bob@example.test", breaks[i]);
            assert_bad_flags(&l, flags, DELIVER_REQUEST_BAD_RCPTS, "CR or LF in orig");
        }
    }
}

static void test_angle_brackets_in_addresses_are_rejected_for_smtp(void **state)
{
    (void)state;
    static const char *const brackets[] = {"x@y.test>", "<x@y.test", "\"a<b\"@y.test", "<>"};
    struct attr_list l = ATTR_LIST_INIT;

    for (size_t i = 0; i < sizeof(brackets) / sizeof(brackets[0]); i++) {
        add_envelope(&l, "sender");
        attr_list_add_str(&l, "sender", brackets[i]);
        attr_list_add_str(&l, "nexthop", "remote.test");
        add_rcpt(&l, "0", "bob@remote.test", "");
        assert_bad_flags(&l, SMTP_FLAGS, DELIVER_REQUEST_BAD_ENVELOPE, "'<' or '>' in sender");

        add_envelope(&l, NULL);
        attr_list_add_str(&l, "nexthop", "remote.test");
        add_rcpt(&l, "0", brackets[i], "");
        assert_bad_flags(&l, SMTP_FLAGS, DELIVER_REQUEST_BAD_RCPTS, "'<' or '>' in rcpt");
    }

    /*
     * local takes them (an RFC 5321 quoted local part may hold them and local
     * answers for it), and an ORCPT with them is never put in a command.
     */
    struct deliver_request d;
    const char *err = NULL;
    attr_list_add_str(&l, "request", "deliver");
    attr_list_add_str(&l, "queue_id", QID);
    attr_list_add_str(&l, "sender", "\"a>b\"@example.test");
    attr_list_add_str(&l, "offset", "0");
    attr_list_add_str(&l, "size", "0");
    add_rcpt(&l, "0", "\"a<b\"@example.test", "rfc822;<x@y.test>");
    assert_int_equal(deliver_request_decode(&l, 0, &d, &err), DELIVER_REQUEST_OK);
    assert_string_equal(d.sender, "\"a>b\"@example.test");
    assert_string_equal(d.rcpts[0].rcpt, "\"a<b\"@example.test");
    assert_string_equal(d.rcpts[0].orig, "rfc822;<x@y.test>");
    deliver_request_release(&d);
    attr_list_release(&l);
}

static void test_no_recipients_is_rejected(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;

    add_envelope(&l, NULL);
    assert_bad(&l, DELIVER_REQUEST_BAD_RCPTS, "no recipients");

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "nexthop", "remote.test");
    assert_bad_flags(&l, SMTP_FLAGS, DELIVER_REQUEST_BAD_RCPTS, "no recipients");
}

static void test_valid_local_request_with_several_recipients(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;
    struct deliver_request d;
    const char *err = "unset";

    attr_list_add_str(&l, "request", "deliver");
    attr_list_add_str(&l, "queue_id", QID);
    attr_list_add_str(&l, "sender", ""); /* the null sender */
    attr_list_add_str(&l, "offset", "0");
    attr_list_add_str(&l, "size", "9223372036854775807");
    add_rcpt(&l, "0", "bob@example.test", "");
    add_rcpt(&l, "7", "carol@example.test", "rfc822;carol@alias.test");
    attr_list_add_str(&l, "future_option", "ignored");
    add_rcpt(&l, "3", "dave@example.test", NULL);
    attr_list_add_int(&l, "index", 9223372036854775807LL);
    attr_list_add_str(&l, "orig", "rfc822;erin@example.test"); /* orig before rcpt is fine */
    attr_list_add_str(&l, "rcpt", "erin@example.test");

    assert_int_equal(deliver_request_decode(&l, 0, &d, &err), DELIVER_REQUEST_OK);
    assert_null(err);
    assert_string_equal(d.queue_id, QID);
    assert_string_equal(d.sender, "");
    assert_null(d.nexthop);
    assert_true(d.offset == 0);
    assert_true(d.size == 9223372036854775807LL);
    assert_int_equal(d.nrcpts, 4);
    assert_true(d.rcpts[0].index == 0);
    assert_string_equal(d.rcpts[0].rcpt, "bob@example.test");
    assert_string_equal(d.rcpts[0].orig, "");
    assert_true(d.rcpts[1].index == 7);
    assert_string_equal(d.rcpts[1].rcpt, "carol@example.test");
    assert_string_equal(d.rcpts[1].orig, "rfc822;carol@alias.test");
    assert_true(d.rcpts[2].index == 3);
    assert_string_equal(d.rcpts[2].rcpt, "dave@example.test");
    assert_null(d.rcpts[2].orig);
    assert_true(d.rcpts[3].index == 9223372036854775807LL);
    assert_string_equal(d.rcpts[3].rcpt, "erin@example.test");
    assert_string_equal(d.rcpts[3].orig, "rfc822;erin@example.test");
    deliver_request_release(&d);
    deliver_request_release(&d); /* twice is harmless */
    assert_null(d.rcpts);
    attr_list_release(&l);
}

static void test_valid_smtp_request_with_several_recipients(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;
    struct deliver_request d;
    const char *err = "unset";

    add_envelope(&l, NULL);
    attr_list_add_str(&l, "nexthop", "[mx.remote.test]:587");
    for (int i = 0; i < 50; i++) {
        char idx[16], rcpt[64];
        snprintf(idx, sizeof(idx), "%d", i * 2);
        snprintf(rcpt, sizeof(rcpt), "user%d@remote.test", i);
        add_rcpt(&l, idx, rcpt, i % 2 ? "rfc822;orig@remote.test" : "");
    }
    assert_int_equal(deliver_request_decode(&l, SMTP_FLAGS, &d, &err), DELIVER_REQUEST_OK);
    assert_null(err);
    assert_string_equal(d.queue_id, QID);
    assert_string_equal(d.sender, "alice@example.test");
    assert_string_equal(d.nexthop, "[mx.remote.test]:587");
    assert_true(d.offset == 212);
    assert_true(d.size == 65);
    assert_int_equal(d.nrcpts, 50);
    for (int i = 0; i < 50; i++) {
        char rcpt[64];
        snprintf(rcpt, sizeof(rcpt), "user%d@remote.test", i);
        assert_true(d.rcpts[i].index == i * 2);
        assert_string_equal(d.rcpts[i].rcpt, rcpt);
        assert_string_equal(d.rcpts[i].orig, i % 2 ? "rfc822;orig@remote.test" : "");
    }
    deliver_request_release(&d);
    attr_list_release(&l);
}

/* The example of docs/protocols.md, from its wire form. */
static void test_protocol_example_decodes_from_the_wire(void **state)
{
    (void)state;
    static const char wire[] =
        "7:request,7:deliver,8:queue_id,16:" QID ",6:sender,18:alice@example.test,"
        "6:offset,3:212,4:size,2:65,5:index,1:0,4:rcpt,16:bob@example.test,4:orig,0:,"
        "5:index,1:1,4:rcpt,19:nosuch@example.test,4:orig,0:,0:,";
    struct attr_list l = ATTR_LIST_INIT;
    struct deliver_request d;
    const char *err = NULL;

    assert_int_equal(attr_decode(wire, sizeof(wire) - 1, 1 << 20, &l, &err),
                     (ssize_t)(sizeof(wire) - 1));
    assert_int_equal(deliver_request_decode(&l, 0, &d, &err), DELIVER_REQUEST_OK);
    assert_int_equal(d.nrcpts, 2);
    assert_string_equal(d.rcpts[1].rcpt, "nosuch@example.test");
    assert_true(d.offset == 212 && d.size == 65);
    deliver_request_release(&d);

    /* The same record for smtp lacks its nexthop. */
    assert_int_equal(deliver_request_decode(&l, SMTP_FLAGS, &d, &err),
                     DELIVER_REQUEST_BAD_ENVELOPE);
    assert_string_equal(err, "missing nexthop");
    attr_list_release(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_or_unknown_request_is_rejected),
        cmocka_unit_test(test_bad_queue_id_is_rejected),
        cmocka_unit_test(test_missing_sender_offset_or_size_is_rejected),
        cmocka_unit_test(test_nexthop_is_required_by_smtp_only),
        cmocka_unit_test(test_negative_or_non_numeric_offset_or_size_is_rejected),
        cmocka_unit_test(test_negative_or_non_numeric_index_is_rejected),
        cmocka_unit_test(test_rcpt_or_orig_before_index_is_rejected),
        cmocka_unit_test(test_recipient_list_shape_is_checked),
        cmocka_unit_test(test_nul_inside_a_value_is_rejected),
        cmocka_unit_test(test_cr_lf_in_addresses_is_rejected),
        cmocka_unit_test(test_angle_brackets_in_addresses_are_rejected_for_smtp),
        cmocka_unit_test(test_no_recipients_is_rejected),
        cmocka_unit_test(test_valid_local_request_with_several_recipients),
        cmocka_unit_test(test_valid_smtp_request_with_several_recipients),
        cmocka_unit_test(test_protocol_example_decodes_from_the_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
