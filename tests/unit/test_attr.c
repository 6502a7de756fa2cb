/* Unit tests for libmail/attr.c: the netstring record codec. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "stream.h"

static ssize_t dec(const char *s, struct attr_list *l, const char **why)
{
    return attr_decode(s, strlen(s), 1024, l, why);
}

static void test_decode_rejects_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "x",                         /* not a length */
        ":a,",                       /* empty length */
        "01:a,1:b,0:,",              /* leading zero */
        "00:,",                      /* leading zero in the end marker */
        "+1:a,1:b,0:,",              /* sign */
        " 1:a,1:b,0:,",              /* space */
        "1:a;1:b,0:,",               /* bad terminator */
        "1:A,1:b,0:,",               /* upper case name */
        "1:-,1:b,0:,",               /* bad name character */
        "3:a b,1:b,0:,",             /* space in name */
        "1:a,1:b;0:,",               /* bad value terminator */
        "99999999999999999999999:a", /* overflow */
        "2000:",                     /* beyond max_record */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct attr_list l = ATTR_LIST_INIT;
        const char *why = NULL;
        ssize_t n = dec(bad[i], &l, &why);
        if (n != -1)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
        assert_int_equal(l.count, 0);
        attr_list_release(&l);
    }
}

static void test_decode_name_longer_than_64_is_rejected(void **state)
{
    (void)state;
    char buf[200];
    char name[66];
    memset(name, 'a', 65);
    name[65] = 0;
    snprintf(buf, sizeof(buf), "65:%s,1:x,0:,", name);
    struct attr_list l = ATTR_LIST_INIT;
    const char *why;
    assert_int_equal(attr_decode(buf, strlen(buf), 1024, &l, &why), -1);
    name[64] = 0;
    snprintf(buf, sizeof(buf), "64:%s,1:x,0:,", name);
    assert_int_equal(attr_decode(buf, strlen(buf), 1024, &l, &why), (ssize_t)strlen(buf));
    attr_list_release(&l);
}

static void test_decode_partial_input_returns_zero(void **state)
{
    (void)state;
    const char *full = "7:request,7:deliver,4:rcpt,3:a@b,0:,";
    size_t n = strlen(full);
    struct attr_list l = ATTR_LIST_INIT;
    for (size_t cut = 0; cut < n; cut++) {
        const char *why;
        assert_int_equal(attr_decode(full, cut, 1024, &l, &why), 0);
        assert_int_equal(l.count, 0);
    }
    const char *why;
    assert_int_equal(attr_decode(full, n, 1024, &l, &why), (ssize_t)n);
    assert_int_equal(l.count, 2);
    attr_list_release(&l);
}

static void test_decode_record_over_bound_is_rejected(void **state)
{
    (void)state;
    const char *rec = "1:a,10:0123456789,0:,";
    struct attr_list l = ATTR_LIST_INIT;
    const char *why;
    assert_int_equal(attr_decode(rec, strlen(rec), strlen(rec), &l, &why), (ssize_t)strlen(rec));
    assert_int_equal(attr_decode(rec, strlen(rec), strlen(rec) - 1, &l, &why), -1);
    /* Even with only the length seen, a too-large value is refused at once. */
    assert_int_equal(attr_decode("1:a,10:", 7, 12, &l, &why), -1);
    attr_list_release(&l);
}

static void test_encode_decode_round_trip_keeps_order_and_binary(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT, m = ATTR_LIST_INIT;
    attr_list_add_str(&l, "request", "deliver");
    attr_list_add_int(&l, "index", -42);
    attr_list_add(&l, "data", "a\0b,:", 5);
    attr_list_add_str(&l, "rcpt", "x@y");
    attr_list_add_str(&l, "rcpt", "");
    attr_list_addf(&l, "size", "%d", 12345);
    struct strbuf sb = STRBUF_INIT;
    attr_encode(&l, &sb);
    const char *why;
    assert_int_equal(attr_decode(sb.data, sb.len, 4096, &m, &why), (ssize_t)sb.len);
    assert_int_equal(m.count, 6);
    for (size_t i = 0; i < m.count; i++) {
        assert_string_equal(m.items[i].name, l.items[i].name);
        assert_int_equal(m.items[i].len, l.items[i].len);
        assert_memory_equal(m.items[i].value, l.items[i].value, l.items[i].len);
    }
    long long v;
    assert_true(attr_list_get_int(&m, "index", &v));
    assert_int_equal(v, -42);
    assert_true(attr_list_get_int(&m, "size", &v));
    assert_int_equal(v, 12345);
    assert_false(attr_list_get_int(&m, "request", &v));
    assert_false(attr_list_get_int(&m, "missing", &v));
    assert_string_equal(attr_list_get(&m, "rcpt"), "x@y");
    assert_null(attr_list_get(&m, "nope"));
    strbuf_release(&sb);
    attr_list_release(&l);
    attr_list_release(&m);
}

static void test_empty_record_is_three_bytes(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;
    struct strbuf sb = STRBUF_INIT;
    attr_encode(&l, &sb);
    assert_string_equal(sb.data, "0:,");
    const char *why;
    assert_int_equal(attr_decode("0:,extra", 8, 100, &l, &why), 3);
    strbuf_release(&sb);
}

static void test_get_int_rejects_junk(void **state)
{
    (void)state;
    struct attr_list l = ATTR_LIST_INIT;
    attr_list_add_str(&l, "a", "12x");
    attr_list_add_str(&l, "b", "");
    attr_list_add_str(&l, "c", "-");
    attr_list_add_str(&l, "d", "99999999999999999999999");
    attr_list_add(&l, "e", "1\0", 2);
    attr_list_add_str(&l, "f", " 1");
    long long v;
    assert_false(attr_list_get_int(&l, "a", &v));
    assert_false(attr_list_get_int(&l, "b", &v));
    assert_false(attr_list_get_int(&l, "c", &v));
    assert_false(attr_list_get_int(&l, "d", &v));
    assert_false(attr_list_get_int(&l, "e", &v));
    assert_false(attr_list_get_int(&l, "f", &v));
    attr_list_release(&l);
}

static void test_read_write_over_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct stream *a = stream_fdopen(sv[0]), *b = stream_fdopen(sv[1]);
    stream_set_timeout(b, 2000);
    struct attr_list l = ATTR_LIST_INIT, m = ATTR_LIST_INIT;
    attr_list_add_str(&l, "request", "status");
    attr_list_add_str(&l, "x", "y");
    assert_int_equal(attr_write(a, &l), 0);
    assert_int_equal(attr_write(a, &l), 0);
    const char *why = NULL;
    assert_int_equal(attr_read(b, 1024, &m, &why), 0);
    assert_int_equal(m.count, 2);
    assert_int_equal(attr_read(b, 1024, &m, &why), 0);
    assert_string_equal(attr_list_get(&m, "x"), "y");
    /* a malformed record */
    assert_int_equal(write(sv[0], "1:A,1:b,0:,", 11), 11);
    assert_int_equal(attr_read(b, 1024, &m, &why), 1);
    assert_non_null(why);
    stream_free(&a);
    /* EOF */
    assert_true(attr_read(b, 1024, &m, &why) < 0);
    stream_free(&b);
    attr_list_release(&l);
    attr_list_release(&m);
}

static void test_read_rejects_oversized_record(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct stream *b = stream_fdopen(sv[1]);
    stream_set_timeout(b, 2000);
    const char *big = "1:a,100:";
    assert_int_equal(write(sv[0], big, strlen(big)), (ssize_t)strlen(big));
    struct attr_list m = ATTR_LIST_INIT;
    const char *why = NULL;
    assert_int_equal(attr_read(b, 64, &m, &why), 1);
    close(sv[0]);
    stream_free(&b);
    attr_list_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_rejects_malformed),
        cmocka_unit_test(test_decode_name_longer_than_64_is_rejected),
        cmocka_unit_test(test_decode_partial_input_returns_zero),
        cmocka_unit_test(test_decode_record_over_bound_is_rejected),
        cmocka_unit_test(test_encode_decode_round_trip_keeps_order_and_binary),
        cmocka_unit_test(test_empty_record_is_three_bytes),
        cmocka_unit_test(test_get_int_rejects_junk),
        cmocka_unit_test(test_read_write_over_socket),
        cmocka_unit_test(test_read_rejects_oversized_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
