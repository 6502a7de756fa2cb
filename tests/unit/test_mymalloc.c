/* Unit tests for libmail/mymalloc.c: never NULL, overflow is fatal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"

/* Run fn in a child; return its exit status (or 128+signal). */
static int in_child(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        msg_open_file("/dev/null");
        fn();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void array_overflow(void)
{
    void *p = myreallocarray(NULL, SIZE_MAX / 2, 4);
    (void)p;
}

static void memdup_overflow(void)
{
    char c = 0;
    (void)mymemdup(&c, SIZE_MAX);
}

static void test_array_size_overflow_is_fatal_not_a_short_buffer(void **state)
{
    (void)state;
    assert_int_equal(in_child(array_overflow), 1);
    assert_int_equal(in_child(memdup_overflow), 1);
}

static void test_zero_length_allocations_are_usable(void **state)
{
    (void)state;
    void *p = mymalloc(0);
    assert_non_null(p);
    myfree(p);
    p = mycalloc(0, 0);
    assert_non_null(p);
    myfree(p);
    myfree(NULL);
}

static void test_strndup_stops_at_nul_and_memdup_keeps_it(void **state)
{
    (void)state;
    char *a = mystrndup("ab\0cd", 5);
    assert_string_equal(a, "ab");
    char *b = mymemdup("ab\0cd", 5);
    assert_memory_equal(b, "ab\0cd\0", 6);
    char *c = mystrndup("abcdef", 3);
    assert_string_equal(c, "abc");
    myfree(a);
    myfree(b);
    myfree(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_size_overflow_is_fatal_not_a_short_buffer),
        cmocka_unit_test(test_zero_length_allocations_are_usable),
        cmocka_unit_test(test_strndup_stops_at_nul_and_memdup_keeps_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
