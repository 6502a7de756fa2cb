/*
 * Unit tests for libmail/mime8to7.c: malformed MIME first, then the
 * quoted-printable rules (RFC 2045 §6.7), multipart and message/rfc822
 * walking, non-MIME messages, and round trips (the test decodes QP itself
 * and compares with the original bytes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime8to7.h"
#include "strbuf.h"

/* Convert; assert success; the caller releases *out. */
static void convert(const char *in, size_t len, struct strbuf *out)
{
    struct strbuf err = STRBUF_INIT;
    strbuf_init(out, 0);
    assert_int_equal(mime_8to7(in, len, out, &err), 0);
    assert_int_equal(err.len, 0);
    strbuf_release(&err);
}

static void convert_str(const char *in, struct strbuf *out)
{
    convert(in, strlen(in), out);
}

/* Decode quoted-printable (soft breaks "=\n", "=XX"); strict: bad escapes fail. */
static void qp_decode(const char *in, size_t len, struct strbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '=') {
            strbuf_putc(out, in[i]);
            continue;
        }
        assert_true(i + 1 < len);
        if (in[i + 1] == '\n') {
            i++;
            continue;
        }
        assert_true(i + 2 < len);
        char hex[3] = {in[i + 1], in[i + 2], 0};
        assert_non_null(strchr("0123456789ABCDEF", hex[0]));
        assert_non_null(strchr("0123456789ABCDEF", hex[1]));
        strbuf_putc(out, (int)strtol(hex, NULL, 16));
        i += 2;
    }
}

/* RFC 2045 §6.7: every line <= 76, no trailing white space, 7-bit, no NUL/CR. */
static void assert_valid_qp(const char *qp, size_t len)
{
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)qp[i];
        assert_true(c < 0x80);
        assert_true(c != 0 && c != '\r');
        if (c == '\n') {
            assert_true(i == 0 || (qp[i - 1] != ' ' && qp[i - 1] != '\t'));
            col = 0;
            continue;
        }
        col++;
        assert_true(col <= 76);
    }
    assert_true(len == 0 || (qp[len - 1] != ' ' && qp[len - 1] != '\t'));
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define HAS_BYTES(sb, lit) (memmem((sb).data, (sb).len, (lit), sizeof(lit) - 1) != NULL)

/* Body after the first empty line of text. */
static const char *body_of(const char *text)
{
    const char *p = strstr(text, "\n\n");
    assert_non_null(p);
    return p + 2;
}

/* The header section (up to the empty line) contains needle, case-sensitive. */
static bool header_has(const char *text, const char *needle)
{
    const char *end = strstr(text, "\n\n");
    const char *p = strstr(text, needle);
    return p != NULL && (end == NULL || p < end);
}

static void test_malformed_mime_never_fails_and_ends_7bit(void **state)
{
    (void)state;
    static const char *cases[] = {
        "",
        "\n",
        "\n\n\xff",
        "Subject: no body, no newline \xe9",
        "no header at all \xe9\n",
        ": empty field name\n\n\xe9\n",
        "Content-Type: multipart/mixed\n\n\xe9 no boundary parameter\n",
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"unterminated\n\n--unt\xe9\n",
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
        "preamble \xe9\n--b\nContent-Type: text/plain\n\nunterminated part \xe9",
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b",
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b--\nepilogue \xe9",
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n\xe9\n--b\n",
        "MIME-Version: 1.0\nContent-Type: ; ; =\n\n\xe9\n",
        "MIME-Version: 1.0\nContent-Type: text/plain; (unclosed comment\n\n\xe9\n",
        "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n",
        "MIME-Version: 1.0\nContent-Type: message/rfc822\n\nnot a message \xe9\n",
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\ncr lf \xe9\r\n",
        "Subject: x\n continued \xe9\n\n\xe9\x00\r\xff",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf out;
        const char *in = cases[i];
        size_t len = strlen(in);
        if (i == sizeof(cases) / sizeof(cases[0]) - 1)
            len += 3; /* the NUL, CR and 0xff after it */
        convert(in, len, &out);
        /* 8-bit bytes in header sections are left alone; bodies are 7-bit. */
        const char *sep = strstr(out.data, "\n\n");
        if (sep != NULL)
            assert_false(mime_has_8bit(sep, out.len - (size_t)(sep - out.data)));
        assert_true(out.len >= (mime_has_8bit(in, len) ? 1u : len));
        strbuf_release(&out);
    }
    /* NULL data with a length is an error, not a crash. */
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    assert_int_equal(mime_8to7(NULL, 5, &out, &err), -1);
    assert_true(err.len > 0);
    strbuf_release(&err);
    strbuf_release(&out);
}

static void test_deep_nesting_is_bounded_and_left_as_is(void **state)
{
    (void)state;
    /* 5000 nested message/rfc822 levels, 8-bit at the bottom. */
    struct strbuf in = STRBUF_INIT, out;
    for (int i = 0; i < 5000; i++)
        strbuf_puts(&in, "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n");
    strbuf_puts(&in, "Subject: bottom\n\nd\xc3\xa9j\xc3\xa0 vu\n");
    convert(in.data, in.len, &out);
    assert_int_equal(out.len, in.len); /* too deep: copied as it is */
    assert_memory_equal(out.data, in.data, in.len);
    strbuf_release(&out);
    strbuf_release(&in);

    /* 5000 nested multiparts, unterminated. */
    for (int i = 0; i < 5000; i++)
        strbuf_printf(&in, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
    strbuf_puts(&in, "\n\xe9\n");
    convert(in.data, in.len, &out);
    assert_true(out.len >= in.len);
    strbuf_release(&out);
    strbuf_release(&in);

    /* 15 levels are within the bound: encoded. */
    for (int i = 0; i < 15; i++)
        strbuf_puts(&in, "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n");
    strbuf_puts(&in, "Subject: bottom\n\nd\xc3\xa9j\xc3\xa0 vu\n");
    convert(in.data, in.len, &out);
    assert_false(mime_has_8bit(out.data, out.len));
    assert_non_null(strstr(out.data, "d=C3=A9j=C3=A0 vu\n"));
    strbuf_release(&out);
    strbuf_release(&in);
}

static void test_has_8bit(void **state)
{
    (void)state;
    assert_false(mime_has_8bit("", 0));
    assert_false(mime_has_8bit("plain ascii\n\t~", 14));
    assert_false(mime_has_8bit("nul\0ok", 6));
    assert_true(mime_has_8bit("caf\xc3\xa9", 5));
    assert_true(mime_has_8bit("\x80", 1));
}

static void test_seven_bit_message_is_unchanged(void **state)
{
    (void)state;
    const char *msg = "From: a@example.org\nSubject: hi\n\nplain text = fine \nline two\n";
    struct strbuf out;
    convert_str(msg, &out);
    assert_string_equal(out.data, msg);
    strbuf_release(&out);
    /* 8-bit only in a header (RFC 6532 style): headers are left alone. */
    const char *hdr8 = "Subject: caf\xc3\xa9\n\nascii body\n";
    convert_str(hdr8, &out);
    assert_string_equal(out.data, hdr8);
    strbuf_release(&out);
}

static void test_8bit_text_becomes_qp_with_soft_breaks(void **state)
{
    (void)state;
    struct strbuf body = STRBUF_INIT, msg = STRBUF_INIT, out, dec = STRBUF_INIT;
    /* A long line with 8-bit, '=' and spaces; trailing space and tab; an
     * exactly-76 ASCII line; a 77 one; an empty line; a last line without LF. */
    for (int i = 0; i < 40; i++)
        strbuf_puts(&body, "\xc3\xa9t\xc3\xa9 = a+b ");
    strbuf_puts(&body, "\ntrailing space \ntrailing tab\t\n");
    for (int i = 0; i < 76; i++)
        strbuf_putc(&body, 'x');
    strbuf_putc(&body, '\n');
    for (int i = 0; i < 77; i++)
        strbuf_putc(&body, 'y');
    strbuf_puts(&body, "\n\n.\nFrom me\n=3D literally\nlast \xff without newline ");
    strbuf_puts(&msg, "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                      "Content-Transfer-Encoding: 8bit\nSubject: test\n\n");
    strbuf_append(&msg, body.data, body.len);
    convert(msg.data, msg.len, &out);

    assert_false(mime_has_8bit(out.data, out.len));
    assert_true(header_has(out.data, "Content-Transfer-Encoding: quoted-printable\n"));
    assert_false(header_has(out.data, "8bit"));
    assert_true(header_has(out.data, "Subject: test\n"));
    assert_true(header_has(out.data, "Content-Type: text/plain; charset=utf-8\n"));
    const char *qp = body_of(out.data);
    size_t qplen = out.len - (size_t)(qp - out.data);
    assert_valid_qp(qp, qplen);
    assert_non_null(strstr(qp, "=C3=A9t=C3=A9 =3D a+b"));
    assert_non_null(strstr(qp, "trailing space=20\n"));
    assert_non_null(strstr(qp, "trailing tab=09\n"));
    assert_non_null(strstr(qp, "\n=3D3D literally\n"));
    /* 76 characters fit on one line; 77 need a soft break. */
    char line76[78];
    memset(line76, 'x', 76);
    line76[76] = '\n';
    line76[77] = 0;
    assert_non_null(strstr(qp, line76));
    assert_null(strstr(qp, "xxx=\n"));
    assert_non_null(strstr(qp, "yyy=\ny"));
    /* The last line stays without LF and its trailing space is encoded. */
    assert_true(qplen > 3 && memcmp(qp + qplen - 3, "=20", 3) == 0);
    qp_decode(qp, qplen, &dec);
    assert_int_equal(dec.len, body.len);
    assert_memory_equal(dec.data, body.data, body.len);
    strbuf_release(&out);
    strbuf_release(&dec);
    strbuf_release(&msg);
    strbuf_release(&body);
}

static void test_control_bytes_are_encoded(void **state)
{
    (void)state;
    const char in[] = "MIME-Version: 1.0\nContent-Type: text/plain\n\na\x00"
                      "b\rc\x1b\x7f\xe9\n";
    struct strbuf out, dec = STRBUF_INIT;
    convert(in, sizeof(in) - 1, &out);
    const char *qp = body_of(out.data);
    assert_string_equal(qp, "a=00b=0Dc=1B=7F=E9\n");
    qp_decode(qp, strlen(qp), &dec);
    assert_int_equal(dec.len, 9);
    assert_memory_equal(dec.data,
                        "a\x00"
                        "b\rc\x1b\x7f\xe9\n",
                        9);
    strbuf_release(&out);
    strbuf_release(&dec);
}

static void test_multipart_encodes_8bit_part_and_keeps_base64_part(void **state)
{
    (void)state;
    const char *part1 = "Gr\xc3\xbc\xc3\x9f"
                        "e aus K\xc3\xb6ln\n= zwei";
    const char *b64 = "SGVsbG8sIFdvcmxkIQ==\nAAEC\n";
    struct strbuf msg = STRBUF_INIT, out, dec = STRBUF_INIT;
    strbuf_printf(&msg,
                  "MIME-Version: 1.0\nContent-Type: multipart/mixed;\n boundary=\"=_b 1\"\n\n"
                  "This is MIME.\n--=_b 1\nContent-Type: text/plain; charset=utf-8\n"
                  "Content-Transfer-Encoding: 8BIT (said so)\n\n%s\n--=_b 1\n"
                  "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
                  "%s\n--=_b 1--   \nepilogue\n",
                  part1, b64);
    convert(msg.data, msg.len, &out);
    assert_false(mime_has_8bit(out.data, out.len));
    /* Exactly one CTE was rewritten; the base64 part and the structure stay. */
    const char *p1 = strstr(out.data, "--=_b 1\nContent-Type: text/plain; charset=utf-8\n"
                                      "Content-Transfer-Encoding: quoted-printable\n\n");
    assert_non_null(p1);
    assert_null(strstr(out.data, "8BIT"));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: base64\n\nSGVsbG8sIFdvcmxkIQ==\n"
                                     "AAEC\n\n--=_b 1--   \nepilogue\n"));
    assert_true(starts_with(out.data, "MIME-Version: 1.0\nContent-Type: multipart/mixed;\n "
                                      "boundary=\"=_b 1\"\n\nThis is MIME.\n--=_b 1\n"));
    /* Round trip of the encoded part (up to the LF before the delimiter). */
    const char *qp = strstr(p1, "\n\n") + 2;
    const char *end = strstr(qp, "\n--=_b 1\n");
    assert_non_null(end);
    assert_valid_qp(qp, (size_t)(end - qp));
    qp_decode(qp, (size_t)(end - qp), &dec);
    assert_string_equal(dec.data, part1);
    strbuf_release(&out);
    strbuf_release(&dec);
    strbuf_release(&msg);
}

static void test_nested_message_rfc822_is_recursed(void **state)
{
    (void)state;
    const char *msg =
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n"
        "--outer\nContent-Type: text/plain\n\nascii only\n"
        "--outer\nContent-Type: message/rfc822\n\n"
        "From: x@example.org\nSubject: forwarded\nMIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=inner\n\n"
        "--inner\nContent-Type: text/plain; charset=iso-8859-1\n\nna\xefve\n"
        "--inner\nContent-Type: text/html; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n<p>na=EFve</p>\n"
        "--inner--\n"
        "--outer\nContent-Type: message/rfc822\n\nSubject: no MIME inside\n\n\xe9t\xe9\n"
        "--outer--\n";
    struct strbuf out;
    convert_str(msg, &out);
    assert_false(mime_has_8bit(out.data, out.len));
    assert_non_null(strstr(out.data, "--outer\nContent-Type: text/plain\n\nascii only\n--outer\n"));
    assert_non_null(strstr(out.data, "--inner\nContent-Type: text/plain; charset=iso-8859-1\n"
                                     "Content-Transfer-Encoding: quoted-printable\n\nna=EFve\n"
                                     "--inner\n"));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: quoted-printable\n\n"
                                     "<p>na=EFve</p>\n--inner--\n"));
    /* The inner non-MIME message gets its own MIME labels. */
    assert_non_null(strstr(out.data, "Subject: no MIME inside\nMIME-Version: 1.0\n"
                                     "Content-Type: text/plain; charset=unknown-8bit\n"
                                     "Content-Transfer-Encoding: quoted-printable\n\n=E9t=E9\n"
                                     "--outer--\n"));
    strbuf_release(&out);
}

static void test_non_mime_message_gets_mime_headers(void **state)
{
    (void)state;
    const char *body = "Gr\xfc\xdf"
                       "e\n\nzweite Zeile\n";
    struct strbuf msg = STRBUF_INIT, out, dec = STRBUF_INIT;
    strbuf_printf(&msg, "From: a@example.org\nTo: b@example.org\nSubject: hi\n\n%s", body);
    convert(msg.data, msg.len, &out);
    assert_true(starts_with(out.data,
                            "From: a@example.org\nTo: b@example.org\nSubject: hi\n"
                            "MIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\n"
                            "Content-Transfer-Encoding: quoted-printable\n\n"));
    const char *qp = body_of(out.data);
    qp_decode(qp, strlen(qp), &dec);
    assert_string_equal(dec.data, body);
    strbuf_release(&out);
    strbuf_release(&dec);
    strbuf_release(&msg);
}

static void test_content_type_without_mime_version_gets_version(void **state)
{
    (void)state;
    const char *msg = "Subject: x\nContent-Type: text/plain; charset=utf-8\n"
                      "Content-Transfer-Encoding: 8bit\n\n\xc3\xa9\n";
    struct strbuf out;
    convert_str(msg, &out);
    assert_string_equal(out.data, "Subject: x\nContent-Type: text/plain; charset=utf-8\n"
                                  "Content-Transfer-Encoding: quoted-printable\n"
                                  "MIME-Version: 1.0\n\n=C3=A9\n");
    strbuf_release(&out);
}

static void test_binary_and_encoded_parts_are_left_alone(void **state)
{
    (void)state;
    const char *msg = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
                      "--b\nContent-Type: application/octet-stream\n"
                      "Content-Transfer-Encoding: binary\n\n\x00\xff\xfe\n"
                      "--b\nContent-Type: text/plain\nContent-Transfer-Encoding: x-custom\n\n\xe9\n"
                      "--b\nContent-Type: text/plain\n\n\xe9\n--b--\n";
    /* strlen stops at the NUL in the binary part: measure by hand. */
    size_t len = 0;
    while (!(msg[len] == '-' && strncmp(msg + len, "--b--\n", 6) == 0))
        len++;
    len += 6;
    struct strbuf out;
    convert(msg, len, &out);
    /* The binary part keeps its 8-bit bytes: the caller must decide. */
    assert_true(mime_has_8bit(out.data, out.len));
    assert_true(HAS_BYTES(out, "binary\n\n\x00\xff\xfe\n--b\n"));
    assert_true(HAS_BYTES(out, "x-custom\n\n\xe9\n--b\n"));
    assert_true(HAS_BYTES(out, "Content-Type: text/plain\nContent-Transfer-Encoding: "
                               "quoted-printable\n\n=E9\n--b--\n"));
    strbuf_release(&out);
}

static void test_unterminated_multipart_still_encodes_last_part(void **state)
{
    (void)state;
    const char *msg = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"abc\"\n\n"
                      "--abc\nContent-Type: text/plain\n\nfirst \xe9\n"
                      "--abcdef not a delimiter \xe9\n--abc \t\n\nsecond \xe9";
    struct strbuf out;
    convert_str(msg, &out);
    assert_false(mime_has_8bit(out.data, out.len));
    assert_non_null(strstr(out.data, "--abc\nContent-Type: text/plain\n"
                                     "Content-Transfer-Encoding: quoted-printable\n\n"
                                     "first =E9\n--abcdef not a delimiter =E9\n--abc \t\n"));
    /* The last part had no header: it gets just the CTE field. */
    assert_non_null(strstr(out.data, "--abc \t\nContent-Transfer-Encoding: quoted-printable\n\n"
                                     "second =E9"));
    strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_mime_never_fails_and_ends_7bit),
        cmocka_unit_test(test_deep_nesting_is_bounded_and_left_as_is),
        cmocka_unit_test(test_has_8bit),
        cmocka_unit_test(test_seven_bit_message_is_unchanged),
        cmocka_unit_test(test_8bit_text_becomes_qp_with_soft_breaks),
        cmocka_unit_test(test_control_bytes_are_encoded),
        cmocka_unit_test(test_multipart_encodes_8bit_part_and_keeps_base64_part),
        cmocka_unit_test(test_nested_message_rfc822_is_recursed),
        cmocka_unit_test(test_non_mime_message_gets_mime_headers),
        cmocka_unit_test(test_content_type_without_mime_version_gets_version),
        cmocka_unit_test(test_binary_and_encoded_parts_are_left_alone),
        cmocka_unit_test(test_unterminated_multipart_still_encodes_last_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
