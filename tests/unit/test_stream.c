/* Unit tests for libmail/stream.c: bounded line reads over a socketpair, and
 * stream_release_buffers: an idle connection gives its buffers back without
 * losing a byte either way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strbuf.h"
#include "stream.h"

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
}

static void pair_close(struct pair *p)
{
    stream_free(&p->s);
    assert_null(p->s);
    if (p->peer >= 0)
        close(p->peer);
}

static void feed(struct pair *p, const char *text)
{
    assert_int_equal(write(p->peer, text, strlen(text)), (ssize_t)strlen(text));
}

static void test_line_longer_than_max_is_partial_and_rest_stays(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    feed(&p, "abcdefghij\r\nnext\r\n");
    assert_int_equal(stream_read_line(p.s, &line, 4), STREAM_PARTIAL);
    assert_string_equal(strbuf_str(&line), "abcd");
    assert_int_equal(stream_skip_line(p.s), STREAM_OK);
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_string_equal(strbuf_str(&line), "next\r\n");
    strbuf_release(&line);
    pair_close(&p);
}

static void test_eof_keeps_partial_line(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    feed(&p, "no newline");
    close(p.peer);
    p.peer = -1;
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_EOF);
    assert_string_equal(strbuf_str(&line), "no newline");
    assert_int_equal(stream_status(p.s), STREAM_EOF);
    strbuf_release(&line);
    pair_close(&p);
}

static void test_timeout_is_reported_and_sticky(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    stream_set_timeout(p.s, 50);
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_TIMEOUT);
    feed(&p, "late\n");
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_TIMEOUT);
    strbuf_release(&line);
    pair_close(&p);
}

/*
 * A socket stream opened as already non-blocking: lock-step reads (the
 * stream waits before its read once one found nothing), a pipelined burst
 * in one read, the timeout, and writes.
 */
static void test_sockopen_lock_step_and_pipelined(void **state)
{
    (void)state;
    int sv[2];
    char buf[64];
    struct strbuf line = STRBUF_INIT;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct stream *s = stream_sockopen(sv[0]);
    stream_set_timeout(s, 50);
    assert_int_equal(stream_read_line(s, &line, 100), STREAM_TIMEOUT);
    stream_free(&s);
    close(sv[1]);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    s = stream_sockopen(sv[0]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(stream_puts(s, "250 ok\r\n"), 0);
        assert_int_equal(stream_flush(s), 0);
        assert_int_equal(read(sv[1], buf, sizeof(buf)), 8);
        assert_int_equal(write(sv[1], "NOOP\r\n", 6), 6);
        assert_int_equal(stream_read_line(s, &line, 100), STREAM_OK);
        assert_string_equal(line.data, "NOOP\r\n");
    }
    assert_int_equal(write(sv[1], "A\r\nB\r\n", 6), 6);
    assert_int_equal(stream_read_line(s, &line, 100), STREAM_OK);
    assert_string_equal(line.data, "A\r\n");
    assert_int_equal(stream_read_line(s, &line, 100), STREAM_OK);
    assert_string_equal(line.data, "B\r\n");
    close(sv[1]);
    assert_int_equal(stream_read_line(s, &line, 100), STREAM_EOF);
    stream_free(&s);
    strbuf_release(&line);
}

static void test_write_still_works_after_read_timeout(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    char buf[64];
    pair_open(&p);
    stream_set_timeout(p.s, 50);
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_TIMEOUT);
    assert_int_equal(stream_puts(p.s, "421 timeout\r\n"), 0);
    assert_int_equal(stream_flush(p.s), 0);
    assert_int_equal(read(p.peer, buf, sizeof(buf)), 13);
    assert_int_equal(stream_status(p.s), STREAM_TIMEOUT);
    strbuf_release(&line);
    pair_close(&p);
}

static void test_bare_cr_does_not_end_a_line(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    feed(&p, "a\rb\nc\r\n");
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_memory_equal(line.data, "a\rb\n", 4);
    assert_int_equal(line.len, 4);
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_string_equal(strbuf_str(&line), "c\r\n");
    strbuf_release(&line);
    pair_close(&p);
}

static void test_pipelined_input_is_buffered_and_discardable(void **state)
{
    (void)state;
    struct pair p;
    struct strbuf line = STRBUF_INIT;
    pair_open(&p);
    feed(&p, "STARTTLS\r\nNOOP\r\n");
    assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
    assert_int_equal(stream_buffered(p.s), 6);
    stream_discard_input(p.s);
    assert_int_equal(stream_buffered(p.s), 0);
    strbuf_release(&line);
    pair_close(&p);
}

static void test_write_buffers_until_flush(void **state)
{
    (void)state;
    struct pair p;
    char buf[64];
    pair_open(&p);
    assert_int_equal(stream_printf(p.s, "250 %s\r\n", "ok"), 0);
    assert_int_equal(stream_unflushed(p.s), 8);
    assert_int_equal(stream_flush(p.s), 0);
    assert_int_equal(read(p.peer, buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "250 ok\r\n", 8);
    assert_int_equal(stream_bytes_out(p.s), 8);
    pair_close(&p);
}

static void test_large_write_crosses_buffer(void **state)
{
    (void)state;
    struct pair p;
    static char big[100000];
    static char got[100000];
    pair_open(&p);
    memset(big, 'x', sizeof(big));
    int fd = p.peer;
    /* Reader in a child so the writer can block on a full socket. */
    pid_t pid = fork();
    if (pid == 0) {
        stream_free(&p.s);
        size_t n = 0;
        while (n < sizeof(got)) {
            ssize_t r = read(fd, got + n, sizeof(got) - n);
            if (r <= 0)
                _exit(1);
            n += (size_t)r;
        }
        _exit(memcmp(got, big, sizeof(big)) == 0 ? 0 : 2);
    }
    assert_int_equal(stream_write(p.s, big, sizeof(big)), 0);
    assert_int_equal(stream_flush(p.s), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pair_close(&p);
}

static void test_read_exact_reports_eof(void **state)
{
    (void)state;
    struct pair p;
    char buf[10];
    pair_open(&p);
    feed(&p, "12345");
    close(p.peer);
    p.peer = -1;
    assert_int_equal(stream_read_exact(p.s, buf, 10), STREAM_EOF);
    pair_close(&p);
}

/* stream_release_buffers */
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
    stream_set_timeout(p.s, 2000);
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
    stream_set_timeout(p.s, 2000);
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
    stream_set_timeout(p.s, 2000);
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
        cmocka_unit_test(test_line_longer_than_max_is_partial_and_rest_stays),
        cmocka_unit_test(test_eof_keeps_partial_line),
        cmocka_unit_test(test_timeout_is_reported_and_sticky),
        cmocka_unit_test(test_sockopen_lock_step_and_pipelined),
        cmocka_unit_test(test_write_still_works_after_read_timeout),
        cmocka_unit_test(test_bare_cr_does_not_end_a_line),
        cmocka_unit_test(test_pipelined_input_is_buffered_and_discardable),
        cmocka_unit_test(test_write_buffers_until_flush),
        cmocka_unit_test(test_large_write_crosses_buffer),
        cmocka_unit_test(test_read_exact_reports_eof),
        cmocka_unit_test(test_release_on_a_fresh_stream_then_use_it),
        cmocka_unit_test(test_buffers_holding_data_are_kept),
        cmocka_unit_test(test_empty_buffers_are_released_and_come_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
