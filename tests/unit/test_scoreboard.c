/* Unit tests for libmail/scoreboard.c: shared idle/busy state of workers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scoreboard.h"

static void test_claim_set_find_release(void **state)
{
    (void)state;
    struct scoreboard *sb = NULL;
    int fd = scoreboard_create(&sb);
    assert_true(fd >= 0);
    assert_non_null(sb);

    int a = scoreboard_claim(sb, 1001);
    int b = scoreboard_claim(sb, 1002);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(scoreboard_find(sb, 1002), b);
    assert_int_equal(scoreboard_find(sb, 1003), -1);
    /* A claimed slot starts idle, so each sees the other idle. */
    assert_int_equal(scoreboard_state(sb, a, 1001), SCORE_IDLE);
    assert_true(scoreboard_other_idle(sb, a));
    assert_true(scoreboard_other_idle(sb, b));

    scoreboard_set(sb, a, SCORE_BUSY | SCORE_SERVED);
    assert_false(scoreboard_other_idle(sb, b)); /* a is busy: b is the last idle one */
    assert_true(scoreboard_other_idle(sb, a));
    scoreboard_set(sb, b, SCORE_BUSY | SCORE_SERVED);
    assert_false(scoreboard_other_idle(sb, a));
    /* Served sticks when the worker goes idle or leaves. */
    scoreboard_set(sb, a, SCORE_IDLE);
    assert_int_equal(scoreboard_state(sb, a, 1001), SCORE_IDLE | SCORE_SERVED);
    assert_true(scoreboard_other_idle(sb, b));
    scoreboard_set(sb, a, SCORE_EXITING);
    assert_int_equal(scoreboard_state(sb, a, 1001), SCORE_EXITING | SCORE_SERVED);
    assert_false(scoreboard_other_idle(sb, b)); /* leaving is not idle */

    /* The state of a slot is only the named pid's. */
    assert_int_equal(scoreboard_state(sb, a, 1002), SCORE_FREE);
    assert_int_equal(scoreboard_state(sb, -1, 1001), SCORE_FREE);
    assert_int_equal(scoreboard_state(sb, SCOREBOARD_SLOTS, 1001), SCORE_FREE);

    /* Release frees the slot for the next worker, fresh (not served). */
    scoreboard_release(sb, a, 1002); /* wrong pid: no effect */
    assert_int_equal(scoreboard_find(sb, 1001), a);
    scoreboard_release(sb, a, 1001);
    assert_int_equal(scoreboard_find(sb, 1001), -1);
    assert_int_equal(scoreboard_claim(sb, 1004), a);
    assert_int_equal(scoreboard_state(sb, a, 1004), SCORE_IDLE);
    scoreboard_unmap(sb);
    close(fd);
}

static void test_full_board_refuses_a_claim(void **state)
{
    (void)state;
    struct scoreboard *sb = NULL;
    int fd = scoreboard_create(&sb);
    assert_true(fd >= 0);
    for (int i = 0; i < SCOREBOARD_SLOTS; i++)
        assert_int_equal(scoreboard_claim(sb, 2000 + i), i);
    assert_int_equal(scoreboard_claim(sb, 9999), -1);
    assert_int_equal(scoreboard_find(sb, 2000 + SCOREBOARD_SLOTS - 1), SCOREBOARD_SLOTS - 1);
    scoreboard_unmap(sb);
    close(fd);
}

/* Only a sealed board of the right size is attached; any other file is left alone. */
static void test_attach_accepts_only_a_board(void **state)
{
    (void)state;
    struct scoreboard *sb = NULL;
    int fd = scoreboard_create(&sb);
    assert_true(fd >= 0);
    /* Sealed: nobody can shrink it under master's feet. */
    assert_true(ftruncate(fd, 4096) < 0);
    assert_int_equal(errno, EPERM);
    struct scoreboard *w = scoreboard_attach(fd);
    assert_non_null(w);
    assert_int_equal(scoreboard_claim(w, 3000), 0);
    assert_int_equal(scoreboard_find(sb, 3000), 0); /* the same memory */
    scoreboard_unmap(w);

    char path[] = "/tmp/test_scoreboardXXXXXX";
    int plain = mkstemp(path);
    assert_true(plain >= 0);
    unlink(path);
    assert_int_equal(ftruncate(plain, 1 << 20), 0);
    assert_null(scoreboard_attach(plain)); /* a regular file: not a board */
    close(plain);
    int unsealed = memfd_create("x", MFD_CLOEXEC);
    assert_true(unsealed >= 0);
    assert_null(scoreboard_attach(unsealed));
    close(unsealed);
    assert_null(scoreboard_attach(-1));
    assert_null(scoreboard_attach(987)); /* not open */

    /* A board whose header was scribbled on is refused. */
    sb->magic = 0;
    assert_null(scoreboard_attach(fd));
    scoreboard_unmap(sb);
    close(fd);
}

/*
 * Workers in separate processes (as after fork+exec) claim distinct slots,
 * and of two that turn busy at the same moment at least one sees no other
 * idle slot (so master is woken at least once).
 */
static void test_processes_share_the_board(void **state)
{
    (void)state;
    struct scoreboard *sb = NULL;
    int fd = scoreboard_create(&sb);
    assert_true(fd >= 0);
    enum { ROUNDS = 300 };
    for (int round = 0; round < ROUNDS; round++) {
        int pipes[2];
        assert_int_equal(pipe(pipes), 0);
        pid_t kids[2];
        for (int k = 0; k < 2; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0) {
                struct scoreboard *w = scoreboard_attach(fd);
                if (w == NULL)
                    _exit(2);
                int slot = scoreboard_claim(w, getpid());
                if (slot < 0)
                    _exit(3);
                char go;
                if (read(pipes[0], &go, 1) != 1)
                    _exit(4);
                scoreboard_set(w, slot, SCORE_BUSY | SCORE_SERVED);
                _exit(scoreboard_other_idle(w, slot) ? 0 : 1);
            }
        }
        /* Wait until both have claimed, then let them go at once. */
        for (int spin = 0; spin < 5000; spin++) {
            if (scoreboard_find(sb, kids[0]) >= 0 && scoreboard_find(sb, kids[1]) >= 0)
                break;
            usleep(100);
        }
        int s0 = scoreboard_find(sb, kids[0]), s1 = scoreboard_find(sb, kids[1]);
        assert_true(s0 >= 0 && s1 >= 0 && s0 != s1);
        assert_int_equal(write(pipes[1], "gg", 2), 2);
        int woke = 0;
        for (int k = 0; k < 2; k++) {
            int status;
            assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
            assert_true(WIFEXITED(status));
            assert_true(WEXITSTATUS(status) <= 1);
            woke += WEXITSTATUS(status);
        }
        assert_true(woke >= 1);
        int slots[2] = {s0, s1};
        for (int k = 0; k < 2; k++) {
            assert_int_equal(scoreboard_state(sb, slots[k], kids[k]), SCORE_BUSY | SCORE_SERVED);
            scoreboard_release(sb, slots[k], kids[k]);
        }
        close(pipes[0]);
        close(pipes[1]);
    }
    scoreboard_unmap(sb);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_set_find_release),
        cmocka_unit_test(test_full_board_refuses_a_claim),
        cmocka_unit_test(test_attach_accepts_only_a_board),
        cmocka_unit_test(test_processes_share_the_board),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
