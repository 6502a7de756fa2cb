/* Unit tests for libmail/sasl.c: PLAIN and LOGIN decoders, strict base64. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sasl.h"

/* base64 of raw bytes (may contain NUL) into a static buffer. */
static const char *b64(const void *data, size_t len)
{
    static char out[4096];
    sasl_base64_encode(data, len, out, sizeof(out));
    return out;
}

static void test_base64_rejects_malformed_input(void **state)
{
    (void)state;
    unsigned char buf[64];
    static const char *const bad[] = {
        "",         /* empty (not "=") */
        "QQ",       /* not a multiple of 4 */
        "QQ=",      /* short padding */
        "Q===",     /* too much padding */
        "QQ==QQ==", /* padding in the middle */
        "QQ=A",     /* data after padding */
        "QR==",     /* non-canonical: dropped bits set */
        "QUI=x",    /* trailing garbage */
        "QU I",     /* space */
        "QUJD\r\n", /* line end */
        "QU\x80I",  /* 8-bit */
        "QUJ-",     /* base64url alphabet */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sasl_base64_decode(bad[i], strlen(bad[i]), buf, sizeof(buf)), -1);
    assert_int_equal(sasl_base64_decode("QUJD", 4, buf, 2), -1); /* output bound */
}

static void test_base64_round_trip_and_empty(void **state)
{
    (void)state;
    unsigned char buf[64];
    assert_int_equal(sasl_base64_decode("=", 1, buf, sizeof(buf)), 0);
    assert_int_equal(sasl_base64_decode("QQ==", 4, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'A');
    assert_int_equal(sasl_base64_decode("QUI=", 4, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "AB", 2);
    const char raw[] = "\0user\0pass word";
    const char *enc = b64(raw, sizeof(raw) - 1);
    assert_int_equal(sasl_base64_decode(enc, strlen(enc), buf, sizeof(buf)), sizeof(raw) - 1);
    assert_memory_equal(buf, raw, sizeof(raw) - 1);
    assert_string_equal(b64("Username:", 9), "VXNlcm5hbWU6");
}

static void test_plain_decodes_fields(void **state)
{
    (void)state;
    struct sasl_creds c;
    const char *why = NULL;
    const char raw[] = "\0alice\0secret";
    const char *enc = b64(raw, sizeof(raw) - 1);
    assert_int_equal(sasl_plain_decode(enc, strlen(enc), &c, &why), 0);
    assert_string_equal(c.authzid, "");
    assert_string_equal(c.authcid, "alice");
    assert_string_equal(c.passwd, "secret");
    const char raw2[] = "bob\0alice\0pw with spaces";
    enc = b64(raw2, sizeof(raw2) - 1);
    assert_int_equal(sasl_plain_decode(enc, strlen(enc), &c, &why), 0);
    assert_string_equal(c.authzid, "bob");
    assert_string_equal(c.authcid, "alice");
    assert_string_equal(c.passwd, "pw with spaces");
    sasl_creds_release(&c);
    assert_string_equal(c.passwd, "");
}

static void test_plain_rejects_bad_messages(void **state)
{
    (void)state;
    struct sasl_creds c;
    const char *why = NULL;
    static const struct {
        const char *raw;
        size_t len;
    } bad[] = {
        {"alice", 5},              /* no NUL */
        {"\0alice", 6},            /* one NUL */
        {"\0\0secret", 8},         /* empty authcid */
        {"\0alice\0", 7},          /* empty password */
        {"\0alice\0se\0cret", 14}, /* third NUL */
        {"\0ali\nce\0secret", 14}, /* LF in a field */
        {"\0alice\0sec\rret", 14}, /* CR in a field */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *enc = b64(bad[i].raw, bad[i].len);
        assert_int_equal(sasl_plain_decode(enc, strlen(enc), &c, &why), -1);
        assert_non_null(why);
        assert_string_equal(c.passwd, "");
    }
    assert_int_equal(sasl_plain_decode("not base64!", 11, &c, &why), -1);
    assert_int_equal(sasl_plain_decode("=", 1, &c, &why), -1);
    /* Field bound: 256 bytes of password is one too many. */
    char big[300];
    big[0] = '\0';
    memcpy(big + 1, "alice", 5);
    big[6] = '\0';
    memset(big + 7, 'p', 256);
    const char *enc = b64(big, 7 + 256);
    assert_int_equal(sasl_plain_decode(enc, strlen(enc), &c, &why), -1);
    enc = b64(big, 7 + 255);
    assert_int_equal(sasl_plain_decode(enc, strlen(enc), &c, &why), 0);
    assert_int_equal(strlen(c.passwd), 255);
    sasl_creds_release(&c);
}

static void test_login_fields(void **state)
{
    (void)state;
    char field[SASL_FIELD_MAX + 1];
    const char *why = NULL;
    assert_int_equal(sasl_login_decode("YWxpY2U=", 8, field, &why), 0);
    assert_string_equal(field, "alice");
    assert_int_equal(sasl_login_decode("=", 1, field, &why), -1);
    const char *enc = b64("a\0b", 3);
    assert_int_equal(sasl_login_decode(enc, strlen(enc), field, &why), -1);
    assert_int_equal(sasl_login_decode("YWxpY2U", 7, field, &why), -1);
}

static void test_mechanisms_and_cancel(void **state)
{
    (void)state;
    assert_int_equal(sasl_mech_find("plain"), SASL_MECH_PLAIN);
    assert_int_equal(sasl_mech_find("LOGIN"), SASL_MECH_LOGIN);
    assert_int_equal(sasl_mech_find("CRAM-MD5"), SASL_MECH_NONE);
    assert_true(sasl_is_cancel("*", 1));
    assert_false(sasl_is_cancel("**", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rejects_malformed_input),
        cmocka_unit_test(test_base64_round_trip_and_empty),
        cmocka_unit_test(test_plain_decodes_fields),
        cmocka_unit_test(test_plain_rejects_bad_messages),
        cmocka_unit_test(test_login_fields),
        cmocka_unit_test(test_mechanisms_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
