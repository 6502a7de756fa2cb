/* Unit tests for stream_release_buffers (libmail/stream.c): an idle
 * connection gives its buffers back without losing a byte either way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"
#include "strbuf.h"

struct pair {
    struct stream *s;
    int peer;
};

static void pair_open(struct pair *p)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->s = stream_fdopen(sv[0]);
    p->peer = sv[1];
    stream_set_timeout(p->s, 2000);
}

static void pair_close(struct pair *p)
{
    stream_free(&p->s);
    close(p->peer);
}

static void feed(struct pair *p, const char *text)
{
    assert_int_equal(write(p->peer, text, strlen(text)), (ssize_t)strlen(text));
}

static void expect_peer(struct pair *p, const char *text)
{
    char buf[256];
    size_t want = strlen(text), got = 0;
    while (got < want) {
        ssize_t n = read(p->peer, buf + got, sizeof(buf) - 1 - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    buf[got] = 0;
    assert_string_equal(buf, text);
}

static void test_release_on_a_fresh_stream_then_use_it(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    stream_release_buffers(p.s); /* nothing allocated yet: a no-op */
    feed(&p, "one\r\n");
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_string_equal(line.data, "one\r\n");
    assert_int_equal(stream_puts(p.s, "reply\r\n"), 0);
    assert_int_equal(stream_flush(p.s), 0);
    expect_peer(&p, "reply\r\n");
    strbuf_release(&line);
    pair_close(&p);
}

static void test_buffers_holding_data_are_kept(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    /* Two lines arrive in one read: the second stays buffered. */
    feed(&p, "first\r\nsecond\r\n");
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_string_equal(line.data, "first\r\n");
    assert_int_equal(stream_puts(p.s, "unflushed\r\n"), 0);
    stream_release_buffers(p.s);
    assert_int_equal(stream_unflushed(p.s), 11);
    assert_true(stream_buffered(p.s) > 0);
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_string_equal(line.data, "second\r\n");
    assert_int_equal(stream_flush(p.s), 0);
    expect_peer(&p, "unflushed\r\n");
    strbuf_release(&line);
    pair_close(&p);
}

static void test_empty_buffers_are_released_and_come_back(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    for (int round = 0; round < 3; round++) {
        feed(&p, "cmd\r\n");
        assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
        assert_string_equal(line.data, "cmd\r\n");
        assert_int_equal(stream_printf(p.s, "ok %d\r\n", round), 0);
        assert_int_equal(stream_flush(p.s), 0);
        expect_peer(&p, round == 0 ? "ok 0\r\n" : round == 1 ? "ok 1\r\n" : "ok 2\r\n");
        stream_release_buffers(p.s);
        assert_int_equal(stream_buffered(p.s), 0);
        assert_int_equal(stream_unflushed(p.s), 0);
    }
    /* skip_line and read_exact start from a released buffer too. */
    feed(&p, "junk line\r\nABCD");
    assert_int_equal(stream_skip_line(p.s), STREAM_OK);
    char buf[4];
    assert_int_equal(stream_read_exact(p.s, buf, 4), STREAM_OK);
    assert_memory_equal(buf, "ABCD", 4);
    stream_release_buffers(p.s);
    assert_int_equal(stream_bytes_in(p.s), 3 * 5 + 15);
    strbuf_release(&line);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_on_a_fresh_stream_then_use_it),
        cmocka_unit_test(test_buffers_holding_data_are_kept),
        cmocka_unit_test(test_empty_buffers_are_released_and_come_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
