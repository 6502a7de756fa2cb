/* Unit tests for libmail/dsn.c: RFC 3464 delivery status notifications. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsn.h"
#include "mymalloc.h"
#include "strbuf.h"

static struct qf_recipient rcpts[2];
static struct qf_message msg;

static void setup_msg(void)
{
    memset(&msg, 0, sizeof(msg));
    memset(rcpts, 0, sizeof(rcpts));
    rcpts[0].address = "nosuch@example.test";
    rcpts[0].status = QF_RCPT_PENDING;
    rcpts[1].address = "other@example.test";
    rcpts[1].orig = "rfc822;Other@Example.test";
    rcpts[1].status = QF_RCPT_PENDING;
    msg.sender = "alice@example.test";
    msg.arrival = 1700000000;
    msg.rcpts = rcpts;
    msg.nrcpts = 2;
}

/* Parsed view of a composed DSN: top headers, boundary, parts (headers+body). */
struct parsed {
    char *text;
    char boundary[256];
    char *parts[8];
    size_t nparts;
    bool closed;
};

static char *part_body(char *part)
{
    char *b = strstr(part, "\n\n");
    return b != NULL ? b + 2 : NULL;
}

static void parse_dsn(const char *text, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    p->text = mystrdup(text);
    const char *b = strstr(p->text, "boundary=\"");
    assert_non_null(b);
    b += strlen("boundary=\"");
    const char *e = strchr(b, '"');
    assert_non_null(e);
    assert_true((size_t)(e - b) < sizeof(p->boundary));
    memcpy(p->boundary, b, (size_t)(e - b));

    char delim[300], close[300];
    snprintf(delim, sizeof(delim), "\n--%s\n", p->boundary);
    snprintf(close, sizeof(close), "\n--%s--\n", p->boundary);
    char *end = strstr(p->text, close);
    assert_non_null(end);
    p->closed = true;
    *end = '\0';
    char *cur = strstr(p->text, delim);
    assert_non_null(cur);
    while (cur != NULL && p->nparts < 8) {
        char *start = cur + strlen(delim);
        char *next = strstr(start, delim);
        if (next != NULL)
            *next = '\0';
        p->parts[p->nparts++] = start;
        cur = next;
    }
}

static void compose(const struct dsn_rcpt *r, size_t n, const char *original, bool full,
                    struct strbuf *out)
{
    struct dsn_request req;
    memset(&req, 0, sizeof(req));
    req.msg = &msg;
    req.queue_id = "4XB7K2Q9M0A3C";
    req.myhostname = "mail.example.test";
    req.rcpts = r;
    req.nrcpts = n;
    req.original = original;
    req.original_len = original != NULL ? strlen(original) : 0;
    req.original_full = full;
    req.now = 1700000100;
    dsn_compose(&req, out);
}

/* ---- who gets a DSN ---- */

static void test_dsn_not_wanted_for_null_sender(void **state)
{
    (void)state;
    setup_msg();
    msg.sender = "";
    assert_false(dsn_wanted(&msg));
    assert_false(dsn_wanted(NULL));
}

static void test_dsn_not_wanted_for_a_bounce(void **state)
{
    (void)state;
    setup_msg();
    msg.is_bounce = true;
    assert_false(dsn_wanted(&msg));
}

static void test_dsn_wanted_for_ordinary_sender(void **state)
{
    (void)state;
    setup_msg();
    assert_true(dsn_wanted(&msg));
}

static void test_notify_never_suppresses_every_action(void **state)
{
    (void)state;
    struct qf_recipient r = {0};
    r.notify = QF_NOTIFY_NEVER;
    assert_false(dsn_rcpt_notify(&r, DSN_ACTION_FAILED));
    assert_false(dsn_rcpt_notify(&r, DSN_ACTION_DELAYED));
    assert_false(dsn_rcpt_notify(&r, DSN_ACTION_DELIVERED));
}

static void test_notify_default_is_failure_not_success(void **state)
{
    (void)state;
    struct qf_recipient r = {0};
    assert_true(dsn_rcpt_notify(&r, DSN_ACTION_FAILED));
    assert_false(dsn_rcpt_notify(&r, DSN_ACTION_DELIVERED));
    r.notify = QF_NOTIFY_SUCCESS;
    assert_false(dsn_rcpt_notify(&r, DSN_ACTION_FAILED));
    assert_true(dsn_rcpt_notify(&r, DSN_ACTION_DELIVERED));
}

static void test_status_valid_rejects_malformed_codes(void **state)
{
    (void)state;
    assert_false(dsn_status_valid(NULL));
    assert_false(dsn_status_valid(""));
    assert_false(dsn_status_valid("5"));
    assert_false(dsn_status_valid("5.1"));
    assert_false(dsn_status_valid("3.1.1"));
    assert_false(dsn_status_valid("5.1.1 "));
    assert_false(dsn_status_valid("5.1234.1"));
    assert_false(dsn_status_valid("5..1"));
    assert_true(dsn_status_valid("5.1.1"));
    assert_true(dsn_status_valid("4.4.7"));
    assert_true(dsn_status_valid("2.0.0"));
}

/* ---- composing ---- */

static void test_compose_with_hostile_reason_injects_no_header(void **state)
{
    (void)state;
    setup_msg();
    struct dsn_rcpt r = {"nosuch@example.test", NULL, DSN_ACTION_FAILED, "5.1.1",
                         "unknown user\r\nX-Injected: yes\n\n--fake--"};
    struct strbuf out = STRBUF_INIT;
    compose(&r, 1, "Subject: hi\n", false, &out);
    assert_null(strstr(out.data, "\nX-Injected:"));
    assert_null(strstr(out.data, "\n--fake--"));
    assert_null(strchr(out.data, '\r'));
    strbuf_release(&out);
}

static void test_compose_bad_status_is_reported_as_generic_failure(void **state)
{
    (void)state;
    setup_msg();
    struct dsn_rcpt r = {"nosuch@example.test", NULL, DSN_ACTION_FAILED, "999 bogus", "x"};
    struct strbuf out = STRBUF_INIT;
    compose(&r, 1, "", false, &out);
    assert_non_null(strstr(out.data, "\nStatus: 5.0.0\n"));
    strbuf_release(&out);
}

static void test_compose_boundary_never_occurs_in_the_original(void **state)
{
    (void)state;
    setup_msg();
    struct dsn_rcpt r = {"nosuch@example.test", NULL, DSN_ACTION_FAILED, "5.1.1", "unknown"};
    struct strbuf first = STRBUF_INIT, out = STRBUF_INIT;
    struct parsed p;
    char original[512];

    compose(&r, 1, "Subject: hi\n", false, &first);
    parse_dsn(first.data, &p);
    /* An original that contains the boundary the composer would pick. */
    snprintf(original, sizeof(original), "Subject: evil\nX-A: x\n--%s\nX-B: y\n", p.boundary);
    compose(&r, 1, original, false, &out);
    struct parsed q;
    parse_dsn(out.data, &q);
    assert_string_not_equal(p.boundary, q.boundary);
    assert_int_equal(q.nparts, 3);
    myfree(p.text);
    myfree(q.text);
    strbuf_release(&first);
    strbuf_release(&out);
}

static void test_compose_is_multipart_report_with_three_parts(void **state)
{
    (void)state;
    setup_msg();
    struct dsn_rcpt r[2] = {
        {"nosuch@example.test", NULL, DSN_ACTION_FAILED, "5.1.1", "unknown user: \"nosuch\""},
        {"other@example.test", "rfc822;Other@Example.test", DSN_ACTION_FAILED, "4.4.7",
         "delivery time expired"},
    };
    struct strbuf out = STRBUF_INIT;
    struct parsed p;
    const char *orig = "From: alice@example.test\nTo: nosuch@example.test\nSubject: hello\n";

    compose(r, 2, orig, false, &out);
    /* Top-level headers. */
    assert_true(strncmp(out.data, "From: MAILER-DAEMON@mail.example.test", 37) == 0);
    assert_non_null(strstr(out.data, "\nTo: alice@example.test\n"));
    assert_non_null(strstr(out.data, "\nSubject: Undelivered Mail Returned to Sender\n"));
    assert_non_null(strstr(out.data, "\nAuto-Submitted: auto-replied\n"));
    assert_non_null(strstr(out.data, "\nMIME-Version: 1.0\n"));
    assert_non_null(
        strstr(out.data, "\nContent-Type: multipart/report; report-type=delivery-status;"));
    assert_null(strchr(out.data, '\r'));

    parse_dsn(out.data, &p);
    assert_true(p.closed);
    assert_int_equal(p.nparts, 3);
    /* Part 1: human readable, names recipients and reasons. */
    assert_non_null(strstr(p.parts[0], "Content-Type: text/plain"));
    assert_non_null(strstr(p.parts[0], "<nosuch@example.test>: unknown user: \"nosuch\""));
    /* Part 2: RFC 3464 fields. */
    assert_true(
        strncmp(p.parts[1],
                "Content-Description: Delivery report\nContent-Type: message/delivery-status\n",
                74) == 0);
    char *ds = part_body(p.parts[1]);
    assert_non_null(ds);
    assert_true(strncmp(ds, "Reporting-MTA: dns; mail.example.test\n", 38) == 0);
    assert_non_null(strstr(ds, "\nArrival-Date: "));
    assert_non_null(strstr(ds,
                           "\n\nFinal-Recipient: rfc822; nosuch@example.test\nAction: failed\n"
                           "Status: 5.1.1\nDiagnostic-Code: X-Tegami; unknown user: \"nosuch\"\n"));
    assert_non_null(strstr(ds,
                           "\n\nFinal-Recipient: rfc822; other@example.test\n"
                           "Original-Recipient: rfc822;Other@Example.test\nAction: failed\n"
                           "Status: 4.4.7\nDiagnostic-Code: X-Tegami; delivery time expired\n"));
    /* Part 3: the original headers. */
    assert_non_null(strstr(p.parts[2], "Content-Type: text/rfc822-headers\n"));
    assert_non_null(strstr(part_body(p.parts[2]), "Subject: hello\n"));
    myfree(p.text);
    strbuf_release(&out);
}

static void test_compose_full_return_is_message_rfc822(void **state)
{
    (void)state;
    setup_msg();
    struct dsn_rcpt r = {"nosuch@example.test", NULL, DSN_ACTION_FAILED, "5.1.1", "unknown"};
    struct strbuf out = STRBUF_INIT;
    struct parsed p;

    compose(&r, 1, "Subject: hi\n\nbody text\n", true, &out);
    parse_dsn(out.data, &p);
    assert_int_equal(p.nparts, 3);
    assert_non_null(strstr(p.parts[2], "Content-Type: message/rfc822\n"));
    assert_non_null(strstr(p.parts[2], "body text\n"));
    myfree(p.text);
    strbuf_release(&out);
}

static void test_compose_delayed_only_has_delay_subject(void **state)
{
    (void)state;
    setup_msg();
    msg.envid = "ENV123";
    struct dsn_rcpt r = {"nosuch@example.test", NULL, DSN_ACTION_DELAYED, "4.4.1", "no route"};
    struct strbuf out = STRBUF_INIT;
    compose(&r, 1, "Subject: hi\n", false, &out);
    assert_non_null(strstr(out.data, "\nSubject: Delayed Mail (still being retried)\n"));
    assert_non_null(strstr(out.data, "\nAction: delayed\n"));
    assert_non_null(strstr(out.data, "\nOriginal-Envelope-Id: ENV123\n"));
    strbuf_release(&out);
}

/* RFC 3464 §2.3.9: a delayed recipient may say until when it will be retried. */
static void test_compose_delayed_has_will_retry_until(void **state)
{
    (void)state;
    setup_msg();
    struct dsn_rcpt r = {"slow@example.test", NULL, DSN_ACTION_DELAYED, "4.7.1", "greylisted"};
    struct dsn_request req;
    struct strbuf out = STRBUF_INIT;
    memset(&req, 0, sizeof(req));
    req.msg = &msg;
    req.queue_id = "4XB7K2Q9M0A3C";
    req.myhostname = "mail.example.test";
    req.rcpts = &r;
    req.nrcpts = 1;
    req.now = 1700000100;
    req.will_retry_until = 1700000100 + 5 * 86400;
    dsn_compose(&req, &out);
    const char *p = strstr(out.data, "\nAction: delayed\nStatus: 4.7.1\nWill-Retry-Until: ");
    assert_non_null(p);
    assert_non_null(strstr(p, "Nov 2023"));
    strbuf_reset(&out);
    r.action = DSN_ACTION_FAILED; /* only for delayed recipients */
    r.status = "5.1.1";
    dsn_compose(&req, &out);
    assert_null(strstr(out.data, "Will-Retry-Until"));
    strbuf_release(&out);
}

/* ---- reading the original from a queue file ---- */

static int temp_file_with(const char *prefix, const char *content, off_t *offset_r)
{
    const char *dir = getenv("TEGAMI_TEST_TMP");
    char path[512];
    if (dir == NULL)
        dir = "/tmp";
    else
        (void)mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/test_dsn.XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, prefix, strlen(prefix)), (ssize_t)strlen(prefix));
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    *offset_r = (off_t)strlen(prefix);
    return fd;
}

static void test_read_original_stops_at_first_empty_line(void **state)
{
    (void)state;
    setup_msg();
    const char *content = "Subject: one\nX-Two: 2\n\nbody line\n\nmore\n";
    off_t off;
    int fd = temp_file_with("ENVELOPE-JUNK", content, &off);
    struct strbuf out = STRBUF_INIT;
    bool full = true;

    msg.content_offset = off;
    msg.content_size = strlen(content);
    assert_int_equal(dsn_read_original(fd, &msg, 100000, &out, &full), 0);
    assert_false(full);
    assert_string_equal(out.data, "Subject: one\nX-Two: 2\n");
    strbuf_release(&out);
    close(fd);
}

static void test_read_original_full_only_when_asked_and_small(void **state)
{
    (void)state;
    setup_msg();
    const char *content = "Subject: one\n\nbody\n";
    off_t off;
    int fd = temp_file_with("xx", content, &off);
    struct strbuf out = STRBUF_INIT;
    bool full = false;

    msg.content_offset = off;
    msg.content_size = strlen(content);
    msg.dsn_ret = 1;
    assert_int_equal(dsn_read_original(fd, &msg, 100000, &out, &full), 0);
    assert_true(full);
    assert_string_equal(out.data, content);
    /* Too large for bounce_size_limit: headers only. */
    assert_int_equal(dsn_read_original(fd, &msg, 5, &out, &full), 0);
    assert_false(full);
    assert_string_equal(out.data, "Subject: one\n");
    strbuf_release(&out);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsn_not_wanted_for_null_sender),
        cmocka_unit_test(test_dsn_not_wanted_for_a_bounce),
        cmocka_unit_test(test_dsn_wanted_for_ordinary_sender),
        cmocka_unit_test(test_notify_never_suppresses_every_action),
        cmocka_unit_test(test_notify_default_is_failure_not_success),
        cmocka_unit_test(test_status_valid_rejects_malformed_codes),
        cmocka_unit_test(test_compose_with_hostile_reason_injects_no_header),
        cmocka_unit_test(test_compose_bad_status_is_reported_as_generic_failure),
        cmocka_unit_test(test_compose_boundary_never_occurs_in_the_original),
        cmocka_unit_test(test_compose_is_multipart_report_with_three_parts),
        cmocka_unit_test(test_compose_full_return_is_message_rfc822),
        cmocka_unit_test(test_compose_delayed_only_has_delay_subject),
        cmocka_unit_test(test_compose_delayed_has_will_retry_until),
        cmocka_unit_test(test_read_original_stops_at_first_empty_line),
        cmocka_unit_test(test_read_original_full_only_when_asked_and_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
