/* Unit tests for libmail/queue_file.c: the queue file writer and strict reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mymalloc.h"
#include "queue_file.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_scratch_dir(tmpdir, sizeof(tmpdir), "qfXXXXX");
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

static int open_tmp(const char *name)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    return fd;
}

/* Write a typical file; content of content_len bytes of a pattern. */
static void write_sample(int fd, size_t content_len, bool rcpts_after)
{
    struct qf_writer *w = qf_writer_new(fd);
    qf_writer_arrival(w, 1700000000);
    qf_writer_sender(w, "sender@example.com");
    qf_writer_client(w, "client.example", "192.0.2.1", "helo.example", "ESMTP");
    qf_writer_sasl_user(w, "alice");
    qf_writer_dsn(w, "ENV123", 2);
    qf_writer_flags(w, true, false);
    if (!rcpts_after) {
        qf_writer_recipient(w, "a@example.com", "rfc822;a@example.com", QF_NOTIFY_FAILURE);
        qf_writer_recipient(w, "b@example.com", NULL, 0);
    }
    qf_writer_content_begin(w);
    char chunk[1000];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (char)('a' + i % 26);
    size_t left = content_len;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        qf_writer_content(w, chunk, n);
        left -= n;
    }
    qf_writer_content_end(w);
    assert_int_equal(qf_writer_content_size(w), content_len);
    if (rcpts_after) {
        qf_writer_recipient(w, "a@example.com", "rfc822;a@example.com", QF_NOTIFY_FAILURE);
        qf_writer_recipient(w, "b@example.com", NULL, 0);
    }
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_writer_finish(&w, &err), 0);
    assert_null(w);
    strbuf_release(&err);
}

static char *slurp(int fd, size_t *len_r)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = mymalloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    *len_r = (size_t)st.st_size;
    return buf;
}

static void expect_bad(const char *data, size_t len)
{
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    if (qf_parse(data, len, &m, &err) == 0)
        fail_msg("accepted a damaged file of %zu bytes", len);
    assert_true(err.len > 0);
    assert_null(m.sender);
    assert_null(m.rcpts);
    strbuf_release(&err);
}

/* Build a file by hand: magic + records given as (type, data, len) triples. */
struct rec {
    char type;
    const char *data;
    size_t len;
};

static char *build(const struct rec *r, size_t n, size_t *len_r)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_append(&sb, "TEGAMIQ1\n", 9);
    for (size_t i = 0; i < n; i++) {
        strbuf_putc(&sb, r[i].type);
        unsigned char h[8];
        size_t hl = r[i].type == 'M' ? 8 : 4;
        uint64_t v = r[i].len;
        for (size_t k = 0; k < hl; k++)
            h[hl - 1 - k] = (unsigned char)(v >> (8 * k));
        strbuf_append(&sb, h, hl);
        strbuf_append(&sb, r[i].data, r[i].len);
    }
    return strbuf_detach(&sb, len_r);
}

#define R(t, s)                                                                                    \
    {                                                                                              \
        t, s, sizeof(s) - 1                                                                        \
    }

static void test_reader_rejects_garbage_and_empty(void **state)
{
    (void)state;
    expect_bad("", 0);
    expect_bad("TEGAMIQ1", 8);
    expect_bad("TEGAMIQ2\n", 9);
    expect_bad("TEGAMIQ1\n", 9);
    expect_bad("hello world, not a queue file", 29);
}

static void test_reader_rejects_missing_required_records(void **state)
{
    (void)state;
    const struct rec no_t[] = {R('S', "a@b"), R('M', "x\n"), R('X', "")};
    const struct rec no_s[] = {R('T', "1"), R('M', "x\n"), R('X', "")};
    const struct rec no_m[] = {R('T', "1"), R('S', "a@b"), R('X', "")};
    const struct rec no_x[] = {R('T', "1"), R('S', "a@b"), R('M', "x\n")};
    const struct rec *sets[] = {no_t, no_s, no_m, no_x};
    size_t counts[] = {3, 3, 3, 3};
    for (size_t i = 0; i < 4; i++) {
        size_t len;
        char *d = build(sets[i], counts[i], &len);
        expect_bad(d, len);
        free(d);
    }
}

static void test_reader_rejects_duplicates_and_bad_fields(void **state)
{
    (void)state;
    static const struct rec cases[][6] = {
        {R('T', "1"), R('T', "2"), R('S', ""), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('S', ""), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('M', ""), R('M', ""), R('X', "")},
        {R('T', "01"), R('S', ""), R('M', ""), R('X', "")},
        {R('T', "-1"), R('S', ""), R('M', ""), R('X', "")},
        {R('T', ""), R('S', ""), R('M', ""), R('X', "")},
        {R('T', "1x"), R('S', ""), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', "a\nb"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', "a\0b"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('R', "Xa@b\0"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""),
         R('R', "P\x20"
                "a@b\0"),
         R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('R', "P\0a@b"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('R', "P\0\0x"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('R', "P\0a@b\0x\0"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('R', "P"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('C', "a\0b\0c"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('C', "a\0b\0c\0d\0e"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('E', "3\0x"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('E', "1"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('F', "4"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('Z', "?"), R('M', ""), R('X', "")},
        {R('T', "1"), R('S', ""), R('M', ""), R('X', "x")},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0;
        while (n < 6 && cases[i][n].type)
            n++;
        size_t len;
        char *d = build(cases[i], n, &len);
        struct qf_message m;
        struct strbuf err = STRBUF_INIT;
        if (qf_parse(d, len, &m, &err) == 0)
            fail_msg("case %zu accepted", i);
        strbuf_release(&err);
        free(d);
    }
}

static void test_reader_ignores_bytes_after_the_end_record(void **state)
{
    (void)state;
    /* What a reused queue file holds after a shorter message (queue_commit). */
    const struct rec r[] = {R('T', "1"), R('S', "a@b"),           R('M', "new\n"),
                            R('X', ""),  R('S', "older@message"), R('X', "")};
    size_t len;
    char *d = build(r, sizeof(r) / sizeof(r[0]), &len);
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_parse(d, len, &m, &err), 0);
    assert_string_equal(m.sender, "a@b");
    assert_int_equal(m.content_size, 4);
    qf_message_release(&m);
    /* A damaged record after the end is never looked at either. */
    d[len - 1] ^= 0x55;
    assert_int_equal(qf_parse(d, len - 3, &m, &err), 0);
    qf_message_release(&m);
    strbuf_release(&err);
    free(d);
}

static void test_reader_rejects_oversized_lengths(void **state)
{
    (void)state;
    /* A 4-byte length beyond QF_MAX_RECORD, and an 8-byte one beyond the file. */
    const char huge[] = "TEGAMIQ1\nS\x7f\xff\xff\xff";
    expect_bad(huge, sizeof(huge) - 1);
    const char mhuge[] = "TEGAMIQ1\nM\xff\xff\xff\xff\xff\xff\xff\xf0xyz";
    expect_bad(mhuge, sizeof(mhuge) - 1);
    char *big = mycalloc(1, QF_MAX_RECORD + 100);
    memcpy(big, "TEGAMIQ1\nS\x00\x01\x00\x01", 14); /* 65537 */
    expect_bad(big, QF_MAX_RECORD + 100);
    free(big);
}

static void test_reader_rejects_every_truncation(void **state)
{
    (void)state;
    int fd = open_tmp("trunc");
    write_sample(fd, 300, false);
    size_t len;
    char *d = slurp(fd, &len);
    for (size_t cut = 0; cut < len; cut++)
        expect_bad(d, cut);
    /* and through the fd reader too */
    for (size_t cut = 0; cut < len; cut += 7) {
        assert_int_equal(ftruncate(fd, (off_t)cut), 0);
        struct qf_message m;
        struct strbuf err = STRBUF_INIT;
        assert_int_equal(qf_read(fd, &m, &err), -1);
        strbuf_release(&err);
    }
    struct qf_message m;
    assert_int_equal(qf_parse(d, len, &m, NULL), 0);
    qf_message_release(&m);
    free(d);
    close(fd);
}

/*
 * A written file followed by other bytes (an older, longer message's tail
 * in a reused file) reads as the file alone; cut short before its end
 * record it is still rejected.
 */
static void test_reader_stops_at_the_end_record(void **state)
{
    (void)state;
    int fd = open_tmp("trail");
    write_sample(fd, 10, false);
    size_t len;
    char *d = slurp(fd, &len);
    char *e = mymalloc(len + 100);
    memcpy(e, d, len);
    memset(e + len, 'X', 100);
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_parse(e, len + 100, &m, &err), 0);
    assert_string_equal(m.sender, "sender@example.com");
    assert_int_equal(m.content_size, 10);
    qf_message_release(&m);
    strbuf_release(&err);
    expect_bad(e, len - 5);
    free(e);
    free(d);
    close(fd);
}

static void test_writer_round_trip(void **state)
{
    (void)state;
    int fd = open_tmp("rt");
    write_sample(fd, 2500, false);
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_read(fd, &m, &err), 0);
    assert_string_equal(m.sender, "sender@example.com");
    assert_int_equal(m.arrival, 1700000000);
    assert_string_equal(m.client_name, "client.example");
    assert_string_equal(m.client_addr, "192.0.2.1");
    assert_string_equal(m.helo, "helo.example");
    assert_string_equal(m.protocol, "ESMTP");
    assert_string_equal(m.sasl_user, "alice");
    assert_string_equal(m.envid, "ENV123");
    assert_int_equal(m.dsn_ret, 2);
    assert_true(m.smtputf8);
    assert_false(m.is_bounce);
    assert_int_equal(m.nrcpts, 2);
    assert_string_equal(m.rcpts[0].address, "a@example.com");
    assert_string_equal(m.rcpts[0].orig, "rfc822;a@example.com");
    assert_int_equal(m.rcpts[0].notify, QF_NOTIFY_FAILURE);
    assert_string_equal(m.rcpts[1].address, "b@example.com");
    assert_null(m.rcpts[1].orig);
    assert_int_equal(qf_pending(&m), 2);
    assert_int_equal(m.content_size, 2500);
    char buf[2500];
    assert_int_equal(pread(fd, buf, 2500, m.content_offset), 2500);
    for (size_t i = 0; i < 2500; i++)
        assert_int_equal(buf[i], 'a' + (i % 1000) % 26);
    /* mark the second recipient done, re-read */
    assert_int_equal(qf_mark_recipient(fd, &m.rcpts[1], QF_RCPT_DONE), 0);
    assert_int_equal(qf_mark_recipient(fd, &m.rcpts[1], 'Q'), -1);
    qf_message_release(&m);
    assert_int_equal(qf_read(fd, &m, &err), 0);
    assert_int_equal(m.rcpts[1].status, QF_RCPT_DONE);
    assert_int_equal(m.rcpts[0].status, QF_RCPT_PENDING);
    assert_int_equal(qf_pending(&m), 1);
    qf_message_release(&m);
    strbuf_release(&err);
    close(fd);
}

/* The delay-warning mark: written pending at creation, flipped in place once. */
static void test_delay_warning_mark_round_trip(void **state)
{
    (void)state;
    int fd = open_tmp("warn");
    write_sample(fd, 100, false);
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_read(fd, &m, &err), 0);
    assert_int_equal(m.warn_status, QF_RCPT_PENDING);
    assert_true(m.warn_offset > 9);
    assert_int_equal(qf_mark_warned(fd, &m), 0);
    assert_int_equal(m.warn_status, QF_RCPT_DONE);
    qf_message_release(&m);
    assert_int_equal(qf_read(fd, &m, &err), 0);
    assert_int_equal(m.warn_status, QF_RCPT_DONE);
    assert_int_equal(qf_pending(&m), 2); /* recipients untouched */
    qf_message_release(&m);
    strbuf_release(&err);
    close(fd);
}

/* Files written before the W record existed stay readable; they just cannot be marked. */
static void test_file_without_warning_record_is_read(void **state)
{
    (void)state;
    const struct rec old[] = {R('T', "1"), R('S', "a@b"), R('R', "P\0x@y\0"), R('M', "x\n"),
                              R('X', "")};
    size_t len;
    char *d = build(old, 5, &len);
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_parse(d, len, &m, &err), 0);
    assert_int_equal(m.warn_status, 0);
    assert_int_equal(qf_mark_warned(-1, &m), -1);
    qf_message_release(&m);
    strbuf_release(&err);
    free(d);
}

static void test_reader_rejects_bad_warning_records(void **state)
{
    (void)state;
    const struct rec dup[] = {R('W', "P"),   R('W', "D"),   R('T', "1"),
                              R('S', "a@b"), R('M', "x\n"), R('X', "")};
    const struct rec empty[] = {R('W', ""), R('T', "1"), R('S', "a@b"), R('M', "x\n"), R('X', "")};
    const struct rec bad[] = {R('W', "X"), R('T', "1"), R('S', "a@b"), R('M', "x\n"), R('X', "")};
    const struct rec longer[] = {R('W', "PP"), R('T', "1"), R('S', "a@b"), R('M', "x\n"),
                                 R('X', "")};
    const struct rec *sets[] = {dup, empty, bad, longer};
    size_t counts[] = {6, 5, 5, 5};
    for (size_t i = 0; i < 4; i++) {
        size_t len;
        char *d = build(sets[i], counts[i], &len);
        expect_bad(d, len);
        free(d);
    }
}

static void test_writer_minimal_null_sender(void **state)
{
    (void)state;
    int fd = open_tmp("min");
    struct qf_writer *w = qf_writer_new(fd);
    qf_writer_sender(w, "");
    qf_writer_arrival(w, 0);
    qf_writer_content_begin(w);
    qf_writer_content_end(w);
    qf_writer_recipient(w, "x@y", NULL, QF_NOTIFY_NEVER);
    assert_int_equal(qf_writer_finish(&w, NULL), 0);
    struct qf_message m;
    assert_int_equal(qf_read(fd, &m, NULL), 0);
    assert_string_equal(m.sender, "");
    assert_null(m.client_name);
    assert_null(m.sasl_user);
    assert_null(m.envid);
    assert_int_equal(m.content_size, 0);
    assert_int_equal(m.nrcpts, 1);
    assert_int_equal(m.rcpts[0].notify, QF_NOTIFY_NEVER);
    qf_message_release(&m);
    close(fd);
}

static int count_sink(void *ctx, const char *buf, size_t len)
{
    size_t *total = ctx;
    for (size_t i = 0; i < len; i++)
        if ((size_t)buf[i] != 'a' + ((*total + i) % 1000) % 26)
            return -1;
    *total += len;
    return 0;
}

static void test_large_content_is_seeked_over_and_copied(void **state)
{
    (void)state;
    int fd = open_tmp("large");
    size_t size = 5 * 1024 * 1024 + 17;
    write_sample(fd, size, true);
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_read(fd, &m, &err), 0);
    assert_int_equal(m.content_size, size);
    assert_int_equal(m.nrcpts, 2);
    size_t total = 0;
    assert_int_equal(qf_copy_content(fd, &m, count_sink, &total), 0);
    assert_int_equal(total, size);
    /* a status byte after the content can be marked too */
    assert_int_equal(qf_mark_recipient(fd, &m.rcpts[0], QF_RCPT_DONE), 0);
    qf_message_release(&m);
    assert_int_equal(qf_read(fd, &m, &err), 0);
    assert_int_equal(qf_pending(&m), 1);
    qf_message_release(&m);
    strbuf_release(&err);
    close(fd);
}

static void test_writer_reports_write_errors(void **state)
{
    (void)state;
    int fd = open("/dev/full", O_WRONLY);
    if (fd < 0)
        skip();
    struct qf_writer *w = qf_writer_new(fd);
    qf_writer_arrival(w, 1);
    qf_writer_sender(w, "a@b");
    qf_writer_content_begin(w);
    char big[100000];
    memset(big, 'x', sizeof(big));
    qf_writer_content(w, big, sizeof(big));
    qf_writer_content_end(w);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_writer_finish(&w, &err), -1);
    assert_non_null(strstr(err.data, "No space"));
    strbuf_release(&err);
    close(fd);
}

static void test_writer_refuses_incomplete_and_oversized(void **state)
{
    (void)state;
    int fd = open_tmp("inc");
    struct qf_writer *w = qf_writer_new(fd);
    qf_writer_arrival(w, 1);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(qf_writer_finish(&w, &err), -1);
    strbuf_reset(&err);
    w = qf_writer_new(fd);
    qf_writer_arrival(w, 1);
    qf_writer_content_begin(w);
    qf_writer_content_end(w);
    char *huge = mymalloc(QF_MAX_RECORD + 2);
    memset(huge, 'a', QF_MAX_RECORD + 1);
    huge[QF_MAX_RECORD + 1] = 0;
    qf_writer_sender(w, huge);
    assert_int_equal(qf_writer_finish(&w, &err), -1);
    free(huge);
    strbuf_release(&err);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_rejects_garbage_and_empty),
        cmocka_unit_test(test_reader_rejects_missing_required_records),
        cmocka_unit_test(test_reader_rejects_duplicates_and_bad_fields),
        cmocka_unit_test(test_reader_ignores_bytes_after_the_end_record),
        cmocka_unit_test(test_reader_rejects_oversized_lengths),
        cmocka_unit_test(test_reader_rejects_every_truncation),
        cmocka_unit_test(test_reader_stops_at_the_end_record),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_writer_minimal_null_sender),
        cmocka_unit_test(test_delay_warning_mark_round_trip),
        cmocka_unit_test(test_file_without_warning_record_is_read),
        cmocka_unit_test(test_reader_rejects_bad_warning_records),
        cmocka_unit_test(test_large_content_is_seeked_over_and_copied),
        cmocka_unit_test(test_writer_reports_write_errors),
        cmocka_unit_test(test_writer_refuses_incomplete_and_oversized),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
