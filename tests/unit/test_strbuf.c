/* Unit tests for libmail/strbuf.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mymalloc.h"
#include "strbuf.h"

static void test_never_used_buffer_reads_as_empty_string(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    assert_string_equal(strbuf_str(&sb), "");
    strbuf_release(&sb);
}

static void test_append_keeps_embedded_nul_and_terminates(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_append(&sb, "a\0b", 3);
    assert_int_equal(sb.len, 3);
    assert_int_equal(sb.data[3], 0);
    assert_memory_equal(sb.data, "a\0b", 3);
    strbuf_release(&sb);
}

static void test_printf_grows_past_initial_capacity(void **state)
{
    (void)state;
    struct strbuf *sb = strbuf_new(4);
    char big[3000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    strbuf_printf(sb, "%s-%d", big, 42);
    assert_int_equal(sb->len, sizeof(big) - 1 + 3);
    assert_string_equal(sb->data + sizeof(big) - 1, "-42");
    strbuf_free(&sb);
    assert_null(sb);
}

static void test_truncate_and_detach(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "hello world");
    strbuf_truncate(&sb, 5);
    assert_string_equal(strbuf_str(&sb), "hello");
    strbuf_truncate(&sb, 50);
    assert_int_equal(sb.len, 5);
    size_t len;
    char *p = strbuf_detach(&sb, &len);
    assert_int_equal(len, 5);
    assert_string_equal(p, "hello");
    assert_null(sb.data);
    myfree(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_used_buffer_reads_as_empty_string),
        cmocka_unit_test(test_append_keeps_embedded_nul_and_terminates),
        cmocka_unit_test(test_printf_grows_past_initial_capacity),
        cmocka_unit_test(test_truncate_and_detach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
