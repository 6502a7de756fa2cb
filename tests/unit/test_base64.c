/* Unit tests for libmail/base64.c: strict and tolerant decoding, both alphabets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base64.h"

/* Strict decoding of a C string into buf; returns the status, length in *n. */
static enum base64_status dec(const char *in, unsigned flags, unsigned char *buf, size_t max,
                              size_t *n)
{
    return base64_decode(in, strlen(in), flags, buf, max, n);
}

static void test_strict_rejects_bytes_outside_the_alphabet(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n;
    static const char *const bad[] = {
        "QU JD",    /* space */
        "QUJD\r\n", /* line break */
        "QU\tJD",   /* tab */
        "QUJ-",     /* URL-safe alphabet */
        "QUJ_",     /* URL-safe alphabet */
        "QUJ,",     /* ',' is IMAP only */
        "QUJ\x80",  /* 8-bit */
        "QUJ\x7f",  /* DEL */
        "QUJ!",     /* junk */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dec(bad[i], 0, buf, sizeof(buf), &n) != BASE64_BAD_BYTE)
            fail_msg("accepted or misjudged \"%s\"", bad[i]);
    }
    /* NUL inside the text */
    assert_int_equal(base64_decode("QU\0D", 4, 0, buf, sizeof(buf), &n), BASE64_BAD_BYTE);
    /* '/' is not in the IMAP alphabet */
    assert_int_equal(dec("AG/-", BASE64_IMAP | BASE64_NOPAD, buf, sizeof(buf), &n),
                     BASE64_BAD_BYTE);
    /* '=' is forbidden when padding is off */
    assert_int_equal(dec("QQ==", BASE64_NOPAD, buf, sizeof(buf), &n), BASE64_BAD_BYTE);
}

static void test_strict_rejects_bad_padding(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n;
    static const char *const bad[] = {
        "QQ",       /* padding missing */
        "QUI",      /* padding missing */
        "QQ=",      /* short padding */
        "Q===",     /* too much padding */
        "====",     /* padding only */
        "QUJD====", /* a whole quantum of padding */
        "QQ===",    /* one '=' too many */
        "QQ==QQ==", /* padding in the middle */
        "QQ=A",     /* data after padding */
        "QR==",     /* non-zero bits under "==" */
        "QUJ=",     /* non-zero bits under "=" */
        "=",        /* '=' alone (SASL's empty response is sasl's rule) */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dec(bad[i], 0, buf, sizeof(buf), &n) != BASE64_BAD_PAD)
            fail_msg("accepted or misjudged \"%s\"", bad[i]);
    }
    /* Unpadded: non-zero bits left over are not canonical either. */
    assert_int_equal(dec("QR", BASE64_NOPAD, buf, sizeof(buf), &n), BASE64_BAD_PAD);
    assert_int_equal(dec("QUJ", BASE64_NOPAD, buf, sizeof(buf), &n), BASE64_BAD_PAD);
}

static void test_strict_rejects_truncated_quanta(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n;
    assert_int_equal(dec("Q", 0, buf, sizeof(buf), &n), BASE64_TRUNCATED);
    assert_int_equal(dec("QUJDQ", 0, buf, sizeof(buf), &n), BASE64_TRUNCATED);
    assert_int_equal(dec("Q", BASE64_NOPAD, buf, sizeof(buf), &n), BASE64_TRUNCATED);
    assert_int_equal(dec("QUJDQ", BASE64_IMAP | BASE64_NOPAD, buf, sizeof(buf), &n),
                     BASE64_TRUNCATED);
    /* The bytes before the fault are kept. */
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "ABC", 3);
}

static void test_empty_input_is_empty_output(void **state)
{
    (void)state;
    unsigned char buf[4];
    size_t n = 99;
    assert_int_equal(base64_decode("", 0, 0, buf, sizeof(buf), &n), BASE64_OK);
    assert_int_equal(n, 0);
    assert_int_equal(base64_decode("", 0, BASE64_TOLERANT, buf, sizeof(buf), &n), BASE64_OK);
    assert_int_equal(n, 0);
    assert_int_equal(base64_encoded_len(0, 0), 0);
    char out[4] = "xyz";
    assert_int_equal(base64_encode("", 0, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_output_bounds_are_errors(void **state)
{
    (void)state;
    unsigned char buf[8];
    size_t n;
    assert_int_equal(base64_decode("QUJD", 4, 0, buf, 2, &n), BASE64_NO_SPACE);
    assert_int_equal(n, 2);
    assert_int_equal(base64_decode("QUJD", 4, BASE64_TOLERANT, buf, 2, &n), BASE64_NO_SPACE);
    assert_int_equal(base64_decode("QUJD", 4, 0, buf, 3, &n), BASE64_OK);
    char out[8] = "xxxxxxx";
    /* "foobar" takes 8 characters and the NUL: 8 bytes are not enough */
    assert_int_equal(base64_encode("foobar", 6, 0, out, 8), -1);
    assert_string_equal(out, "");
    assert_int_equal(base64_encode("foobar", 6, 0, out, 0), -1);
}

/* RFC 4648 §10 test vectors, both ways, with and without padding. */
static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const v[][3] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t len = strlen(v[i][0]);
        char out[16];
        unsigned char raw[16];
        size_t n;
        assert_int_equal(base64_encode(v[i][0], len, 0, out, sizeof(out)), 0);
        assert_string_equal(out, v[i][1]);
        assert_int_equal(base64_encoded_len(len, 0), strlen(v[i][1]));
        assert_int_equal(base64_encode(v[i][0], len, BASE64_NOPAD, out, sizeof(out)), 0);
        assert_string_equal(out, v[i][2]);
        assert_int_equal(base64_encoded_len(len, BASE64_NOPAD), strlen(v[i][2]));
        assert_int_equal(dec(v[i][1], 0, raw, sizeof(raw), &n), BASE64_OK);
        assert_int_equal(n, len);
        assert_memory_equal(raw, v[i][0], len);
        assert_int_equal(dec(v[i][2], BASE64_NOPAD, raw, sizeof(raw), &n), BASE64_OK);
        assert_int_equal(n, len);
        assert_memory_equal(raw, v[i][0], len);
        assert_int_equal(dec(v[i][1], BASE64_TOLERANT, raw, sizeof(raw), &n), BASE64_OK);
        assert_int_equal(n, len);
        assert_memory_equal(raw, v[i][0], len);
    }
}

/* Index 63 is '/' in the standard alphabet and ',' in IMAP's; 62 is '+' in both. */
static void test_both_alphabets(void **state)
{
    (void)state;
    static const unsigned char raw[] = {0xff, 0xff, 0xff, 0xfb, 0xef, 0xbe, 0x00};
    struct strbuf sb = STRBUF_INIT;
    base64_encode_append(raw, 6, 0, &sb);
    assert_string_equal(sb.data, "////++++");
    strbuf_reset(&sb);
    base64_encode_append(raw, 6, BASE64_IMAP | BASE64_NOPAD, &sb);
    assert_string_equal(sb.data, ",,,,++++");
    /* RFC 3501 §5.1.3's example: "&U,BTFw-" is U+53F0 U+5317 in UTF-16BE. */
    strbuf_reset(&sb);
    assert_int_equal(base64_decode_append("U,BTFw", 6, BASE64_IMAP | BASE64_NOPAD, &sb), BASE64_OK);
    assert_int_equal(sb.len, 4);
    assert_memory_equal(sb.data, "\x53\xf0\x53\x17", 4);
    strbuf_reset(&sb);
    base64_encode_append("\x53\xf0\x53\x17", 4, BASE64_IMAP | BASE64_NOPAD, &sb);
    assert_string_equal(sb.data, "U,BTFw");
    /* ... and in the standard alphabet ',' is a bad byte, '/' a good one. */
    unsigned char buf[8];
    size_t n;
    assert_int_equal(dec("U,BTFw==", 0, buf, sizeof(buf), &n), BASE64_BAD_BYTE);
    assert_int_equal(dec("U/BTFw==", 0, buf, sizeof(buf), &n), BASE64_OK);
    assert_memory_equal(buf, "\x53\xf0\x53\x17", 4);
    /* append adds to what is there */
    strbuf_reset(&sb);
    strbuf_puts(&sb, "x=");
    base64_encode_append("a", 1, 0, &sb);
    assert_string_equal(sb.data, "x=YQ==");
    strbuf_release(&sb);
}

/* Mail bodies (RFC 2045 §6.8): line breaks and junk are skipped, '=' ends the data. */
static void test_tolerant_skips_junk_and_stops_at_padding(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    static const char body[] = "Zm9v\r\nYmFy\r\n  Zm9v\tYg==\r\nIGlnbm9yZWQ=\r\n";
    assert_int_equal(base64_decode_append(body, sizeof(body) - 1, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_int_equal(sb.len, 10);
    assert_memory_equal(sb.data, "foobarfoob", 10);
    strbuf_reset(&sb);
    /* junk bytes of every kind, 8-bit and NUL included */
    static const char junk[] = "Z!m\x80"
                               "9\0v*Y.m\xff"
                               "F-y";
    assert_int_equal(base64_decode_append(junk, sizeof(junk) - 1, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_string_equal(sb.data, "foobar");
    strbuf_reset(&sb);
    /* a partial byte at the end is dropped, a lone character gives nothing */
    assert_int_equal(base64_decode_append("Zm9vY", 5, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_string_equal(sb.data, "foo");
    strbuf_reset(&sb);
    assert_int_equal(base64_decode_append("Q", 1, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_int_equal(sb.len, 0);
    /* non-canonical bits, padding at the start, only junk: no error */
    assert_int_equal(base64_decode_append("QR==", 4, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_string_equal(sb.data, "A");
    strbuf_reset(&sb);
    assert_int_equal(base64_decode_append("=Zm9v", 5, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_int_equal(sb.len, 0);
    assert_int_equal(base64_decode_append("\r\n\r\n", 4, BASE64_TOLERANT, &sb), BASE64_OK);
    assert_int_equal(sb.len, 0);
    strbuf_release(&sb);
}

/* Every byte value, every length mod 3, both alphabets, padded or not. */
static void test_round_trip_all_bytes(void **state)
{
    (void)state;
    unsigned char raw[256 + 2];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 7 + 3);
    static const unsigned flags[] = {0, BASE64_NOPAD, BASE64_IMAP, BASE64_IMAP | BASE64_NOPAD};
    for (size_t f = 0; f < 4; f++) {
        for (size_t len = 0; len <= sizeof(raw); len += 1 + len / 16) {
            struct strbuf enc = STRBUF_INIT, back = STRBUF_INIT;
            base64_encode_append(raw, len, flags[f], &enc);
            assert_int_equal(enc.len, base64_encoded_len(len, flags[f]));
            assert_int_equal(base64_decode_append(enc.data, enc.len, flags[f], &back), BASE64_OK);
            assert_int_equal(back.len, len);
            if (len > 0)
                assert_memory_equal(back.data, raw, len);
            strbuf_release(&enc);
            strbuf_release(&back);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_rejects_bytes_outside_the_alphabet),
        cmocka_unit_test(test_strict_rejects_bad_padding),
        cmocka_unit_test(test_strict_rejects_truncated_quanta),
        cmocka_unit_test(test_empty_input_is_empty_output),
        cmocka_unit_test(test_output_bounds_are_errors),
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_both_alphabets),
        cmocka_unit_test(test_tolerant_skips_junk_and_stops_at_padding),
        cmocka_unit_test(test_round_trip_all_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
