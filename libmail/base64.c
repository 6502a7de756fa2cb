/*
 * base64 - RFC 4648 base64 with the standard and IMAP alphabets, strict or
 * tolerant decoding (see base64.h).
 */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"

static const char alphabet_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alphabet_imap[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Where output bytes go: a fixed buffer of max bytes, or a strbuf. */
struct sink {
    unsigned char *buf;
    size_t max;
    size_t n;
    struct strbuf *sb;
};

static bool sink_put(struct sink *s, unsigned char c)
{
    if (s->sb != NULL) {
        strbuf_putc(s->sb, c);
        s->n++;
        return true;
    }
    if (s->n >= s->max)
        return false;
    s->buf[s->n++] = c;
    return true;
}

/* The 6-bit value of c, or -1 when c is not in the alphabet. */
static int value(unsigned char c, unsigned flags)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ((flags & BASE64_IMAP) ? ',' : '/'))
        return 63;
    return -1;
}

size_t base64_encoded_len(size_t len, unsigned flags)
{
    size_t quanta = len / 3, rest = len % 3;
    if (quanta > (SIZE_MAX - 4) / 4)
        msg_panic("base64_encoded_len: length %zu overflows", len);
    size_t n = quanta * 4;
    if (rest > 0)
        n += (flags & BASE64_NOPAD) ? rest + 1 : 4;
    return n;
}

static void encode(const unsigned char *p, size_t len, unsigned flags, struct sink *out)
{
    const char *a = (flags & BASE64_IMAP) ? alphabet_imap : alphabet_std;
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        sink_put(out, (unsigned char)a[(v >> 18) & 63]);
        sink_put(out, (unsigned char)a[(v >> 12) & 63]);
        sink_put(out, (unsigned char)a[(v >> 6) & 63]);
        sink_put(out, (unsigned char)a[v & 63]);
    }
    size_t rest = len - i;
    if (rest == 0)
        return;
    uint32_t v = (uint32_t)p[i] << 16;
    if (rest == 2)
        v |= (uint32_t)p[i + 1] << 8;
    sink_put(out, (unsigned char)a[(v >> 18) & 63]);
    sink_put(out, (unsigned char)a[(v >> 12) & 63]);
    if (rest == 2)
        sink_put(out, (unsigned char)a[(v >> 6) & 63]);
    if (!(flags & BASE64_NOPAD)) {
        if (rest == 1)
            sink_put(out, '=');
        sink_put(out, '=');
    }
}

int base64_encode(const void *data, size_t len, unsigned flags, char *out, size_t out_max)
{
    size_t n = base64_encoded_len(len, flags);
    if (out_max < n + 1) {
        if (out_max > 0)
            out[0] = '\0';
        return -1;
    }
    struct sink s = {(unsigned char *)out, out_max, 0, NULL};
    encode(data, len, flags, &s);
    out[s.n] = '\0';
    return 0;
}

void base64_encode_append(const void *data, size_t len, unsigned flags, struct strbuf *out)
{
    strbuf_grow(out, base64_encoded_len(len, flags));
    struct sink s = {NULL, 0, 0, out};
    encode(data, len, flags, &s);
}

static enum base64_status decode(const char *in, size_t len, unsigned flags, struct sink *out)
{
    uint32_t acc = 0; /* the bits read but not yet output (fewer than 8) */
    unsigned nbits = 0;
    size_t nchars = 0; /* alphabet characters read */
    size_t i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=')
            break;
        int v = value(c, flags);
        if (v < 0) {
            if (flags & BASE64_TOLERANT)
                continue; /* line breaks and junk, as mail readers do */
            return BASE64_BAD_BYTE;
        }
        acc = (acc << 6) | (uint32_t)v;
        nbits += 6;
        nchars++;
        if (nbits >= 8) {
            nbits -= 8;
            if (!sink_put(out, (unsigned char)(acc >> nbits)))
                return BASE64_NO_SPACE;
            acc &= (1u << nbits) - 1;
        }
    }
    if (flags & BASE64_TOLERANT)
        return BASE64_OK; /* a partial byte at the end is dropped */
    size_t rest = nchars % 4;
    if (i < len) {
        /* '=' at in[i]: only to fill the last quantum after 2 or 3 characters. */
        if (flags & BASE64_NOPAD)
            return BASE64_BAD_BYTE;
        if (rest < 2 || len - i != 4 - rest)
            return BASE64_BAD_PAD;
        for (size_t k = i; k < len; k++)
            if (in[k] != '=')
                return BASE64_BAD_PAD;
    } else if (rest == 1) {
        return BASE64_TRUNCATED;
    } else if (rest != 0 && !(flags & BASE64_NOPAD)) {
        return BASE64_BAD_PAD; /* padding required */
    }
    /* Canonical form (RFC 4648 §3.5): the bits left over must be zero. */
    if (acc != 0)
        return BASE64_BAD_PAD;
    return BASE64_OK;
}

enum base64_status base64_decode(const char *in, size_t len, unsigned flags, unsigned char *out,
                                 size_t out_max, size_t *out_len_r)
{
    struct sink s = {out, out_max, 0, NULL};
    enum base64_status st = decode(in, len, flags, &s);
    *out_len_r = s.n;
    return st;
}

enum base64_status base64_decode_append(const char *in, size_t len, unsigned flags,
                                        struct strbuf *out)
{
    struct sink s = {NULL, 0, 0, out};
    return decode(in, len, flags, &s);
}
