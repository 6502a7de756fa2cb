/* Unit tests for libmail/queue_list.c: JSON escaping and the listing formats. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "queue_file.h"
#include "queue_list.h"
#include "strbuf.h"

static void json(const char *in, const char *expect)
{
    struct strbuf out = STRBUF_INIT;

    strbuf_reset(&out);
    queue_list_json_string(&out, in);
    assert_string_equal(out.data, expect);
    strbuf_release(&out);
}

/* ---------------------------------------------------------- malformed input */

static void test_json_escapes_quotes_backslashes_and_controls(void **state)
{
    (void)state;
    json("a\"b\\c", "\"a\\\"b\\\\c\"");
    json("l1\nl2\r\t", "\"l1\\nl2\\r\\t\"");
    json("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
}

static void test_json_escapes_invalid_utf8_bytes(void **state)
{
    (void)state;
    json("\xff", "\"\\u00ff\"");
    json("a\xc3", "\"a\\u00c3\"");                     /* truncated sequence */
    json("\xc0\xaf", "\"\\u00c0\\u00af\"");            /* overlong '/' */
    json("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""); /* surrogate */
}

static void test_json_keeps_valid_utf8(void **state)
{
    (void)state;
    json("手紙 é", "\"手紙 é\"");
    json("", "\"\"");
}

/* ---------------------------------------------------------- formats */

static void test_empty_queue_formats(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void)state;
    strbuf_reset(&out);
    queue_list_format_json(NULL, 0, &out);
    assert_string_equal(out.data, "[]\n");
    strbuf_reset(&out);
    queue_list_format_text(NULL, 0, &out);
    assert_string_equal(out.data, "Mail queue is empty\n");
    strbuf_release(&out);
}

static void test_entries_format_as_json_and_text(void **state)
{
    struct queue_list_rcpt r[2] = {{"a@x.example", QF_RCPT_PENDING, NULL},
                                   {"q\"uote@x.example", QF_RCPT_PENDING, NULL}};
    struct queue_list_entry e[2];
    struct strbuf out = STRBUF_INIT;

    (void)state;
    memset(e, 0, sizeof(e));
    snprintf(e[0].id, sizeof(e[0].id), "%s", "1J0SK7BFRJ8AE99C");
    e[0].dir = QUEUE_DEFERRED;
    e[0].arrival = 1700000000;
    e[0].size = 2048;
    e[0].sender = "";
    e[0].rcpts = r;
    e[0].nrcpts = 2;
    snprintf(e[1].id, sizeof(e[1].id), "%s", "1J0SK7BFRJ8AE99D");
    e[1].dir = QUEUE_INCOMING;
    e[1].arrival = 1700000001;
    e[1].size = 10;
    e[1].error = "bad magic";
    strbuf_reset(&out);
    queue_list_format_json(e, 2, &out);
    assert_non_null(strstr(out.data, "\"queue_id\": \"1J0SK7BFRJ8AE99C\", \"queue\": \"deferred\", "
                                     "\"arrival_time\": 1700000000, \"message_size\": 2048, "
                                     "\"sender\": \"\", \"recipients\": [{\"address\": "
                                     "\"a@x.example\", \"status\": \"pending\"}, {\"address\": "
                                     "\"q\\\"uote@x.example\", \"status\": \"pending\"}]}"));
    assert_non_null(strstr(out.data, "\"error\": \"bad magic\", \"recipients\": []}"));
    assert_int_equal(out.data[0], '[');
    strbuf_reset(&out);
    queue_list_format_text(e, 2, &out);
    assert_non_null(strstr(out.data, "MAILER-DAEMON"));
    assert_non_null(strstr(out.data, "(deferred)"));
    assert_non_null(strstr(out.data, "unreadable: bad magic"));
    assert_non_null(strstr(out.data, "-- 3 Kbytes in 2 Requests."));
    strbuf_release(&out);
}

/* qmgr's last deferral reason appears above its recipients (once per run of equal reasons). */
static void test_deferral_reasons_are_shown(void **state)
{
    struct queue_list_rcpt r[3] = {{"a@x.example", QF_RCPT_PENDING, "4.4.1 connection refused"},
                                   {"b@x.example", QF_RCPT_PENDING, "4.4.1 connection refused"},
                                   {"c@y.example", QF_RCPT_PENDING, "4.2.0 \"busy\""}};
    struct queue_list_entry e;
    struct strbuf out = STRBUF_INIT;
    const char *p;

    (void)state;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "%s", "1J0SK7BFRJ8AE99C");
    e.dir = QUEUE_DEFERRED;
    e.arrival = 1700000000;
    e.sender = "s@x.example";
    e.rcpts = r;
    e.nrcpts = 3;
    queue_list_format_text(&e, 1, &out);
    assert_null(strstr(out.data, "(deferred)"));
    p = strstr(out.data, "(4.4.1 connection refused)\n");
    assert_non_null(p);
    assert_null(strstr(p + 1, "(4.4.1 connection refused)")); /* not repeated for b */
    assert_true(strstr(out.data, "a@x.example") > p);
    assert_non_null(strstr(out.data, "(4.2.0 \"busy\")"));
    strbuf_reset(&out);
    queue_list_format_json(&e, 1, &out);
    assert_non_null(strstr(out.data, "\"address\": \"c@y.example\", \"status\": \"pending\", "
                                     "\"reason\": \"4.2.0 \\\"busy\\\"\"}"));
    strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_json_escapes_invalid_utf8_bytes),
        cmocka_unit_test(test_json_keeps_valid_utf8),
        cmocka_unit_test(test_empty_queue_formats),
        cmocka_unit_test(test_entries_format_as_json_and_text),
        cmocka_unit_test(test_deferral_reasons_are_shown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
