/* Unit tests for libmail/msg.c: log line shape and hostile text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"

static char logpath[256];

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "/tmp/tegami-test-msg-%ld.log", (long)getpid());
    unlink(logpath);
    msg_init("testprog");
    msg_open_file(logpath);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    msg_open_file(NULL);
    unlink(logpath);
    return 0;
}

static char *read_log(void)
{
    static char buf[65536];
    int fd = open(logpath, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = 0;
    return buf;
}

static void test_peer_controls_cannot_forge_log_lines(void **state)
{
    (void)state;
    msg_warn("%s: client said %s", "4ABC",
             "hi\nNov 1 00:00:00 host tegami/smtpd[1]: fake\r\x1b[2J");
    char *log = read_log();
    /* exactly one line, controls replaced */
    assert_non_null(strchr(log, '\n'));
    assert_null(strchr(strchr(log, '\n') + 1, '\n'));
    assert_null(strchr(log, '\r'));
    assert_null(strchr(log, '\x1b'));
    assert_non_null(strstr(log, "hi?Nov 1"));
}

static void test_line_names_program_pid_and_level(void **state)
{
    (void)state;
    msg_info("%s: to=<%s>, status=sent", "4ABC", "a@b");
    msg_warn("disk full");
    char *log = read_log();
    char want[64];
    snprintf(want, sizeof(want), "tegami/testprog[%ld]: ", (long)getpid());
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, ": 4ABC: to=<a@b>, status=sent\n"));
    assert_non_null(strstr(log, ": warning: disk full\n"));
}

/* Held lines wait for msg_flush, a warning, or a full buffer, in order. */
static void test_held_lines_go_out_in_order(void **state)
{
    (void)state;
    msg_hold(true);
    msg_info("first");
    msg_info("second");
    assert_string_equal(read_log(), ""); /* nothing written yet */
    msg_flush();
    char *log = read_log();
    char *a = strstr(log, ": first\n"), *b = strstr(log, ": second\n");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);

    /* A warning is never held, and what was held goes out before it. */
    msg_info("third");
    msg_warn("fourth");
    log = read_log();
    char *c = strstr(log, ": third\n"), *d = strstr(log, ": warning: fourth\n");
    assert_non_null(c);
    assert_non_null(d);
    assert_true(b < c && c < d);

    /* A full buffer is written, never dropped. */
    msg_open_file(NULL);
    unlink(logpath);
    msg_open_file(logpath);
    for (int i = 0; i < 200; i++)
        msg_info("line %03d with some text to fill the buffer quickly", i);
    size_t written = strlen(read_log());
    assert_true(written > 0);
    msg_hold(false); /* flushes the rest */
    log = read_log();
    assert_true(strlen(log) > written);
    assert_non_null(strstr(log, ": line 000 "));
    assert_non_null(strstr(log, ": line 199 "));
    int lines = 0;
    for (char *p = log; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 200);
}

static void test_overlong_text_is_cut_to_one_line(void **state)
{
    (void)state;
    static char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    msg_info("%s", big);
    char *log = read_log();
    size_t len = strlen(log);
    assert_true(len < 2400);
    assert_int_equal(log[len - 1], '\n');
    assert_null(memchr(log, '\n', len - 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peer_controls_cannot_forge_log_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_names_program_pid_and_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_text_is_cut_to_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_lines_go_out_in_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
