/* Unit tests for libmail/utf8.c: strict RFC 3629 validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

#define V(s) utf8_valid(s, sizeof(s) - 1)

static void test_malformed_sequences_are_rejected(void **state)
{
    (void)state;
    assert_false(V("\x80"));             /* lone continuation */
    assert_false(V("\xC0\xAF"));         /* overlong '/' */
    assert_false(V("\xE0\x80\xAF"));     /* overlong */
    assert_false(V("\xED\xA0\x80"));     /* surrogate U+D800 */
    assert_false(V("\xF4\x90\x80\x80")); /* above U+10FFFF */
    assert_false(V("\xF5\x80\x80\x80"));
    assert_false(V("\xC3"));        /* truncated */
    assert_false(V("abc\xE2\x82")); /* truncated at the end */
    assert_false(V("\xC3\x28"));    /* bad continuation */
    assert_false(V("\xFF"));
}

static void test_well_formed_text_is_accepted(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(V("plain ascii"));
    assert_true(V("j\xC3\xB6"
                  "e"));                /* jöe */
    assert_true(V("\xE2\x82\xAC"));     /* € */
    assert_true(V("\xF0\x9F\x93\xA7")); /* U+1F4E7 */
    assert_true(V("\xF4\x8F\xBF\xBF")); /* U+10FFFF */
    assert_true(V("\xED\x9F\xBF"));     /* U+D7FF */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_sequences_are_rejected),
        cmocka_unit_test(test_well_formed_text_is_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
