/*
 * mutf7 - IMAP modified UTF-7 (RFC 3501 §5.1.3, see mutf7.h).
 *
 * Modified UTF-7: printable US-ASCII (0x20..0x7E) stands for itself except
 * '&', written "&-"; everything else is UTF-16 in a run "&<base64>-" with
 * ',' for '/' and no '=' padding. Both directions insist on the one
 * canonical form, so a folder name maps to exactly one directory name.
 */
#include "mutf7.h"

#include <stdint.h>
#include <string.h>

#include "utf8.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

static void put_utf8(struct strbuf *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    strbuf_append(out, b, n);
}

static int fail(const char **why_r, const char *why)
{
    if (why_r)
        *why_r = why;
    return -1;
}

int mutf7_to_utf8(const char *in, size_t len, struct strbuf *out, const char **why_r)
{
    size_t i = 0;
    bool prev_run = false; /* the previous token was a base64 run */
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c > 0x7E)
            return fail(why_r, "character outside printable US-ASCII");
        if (c != '&') {
            strbuf_putc(out, c);
            i++;
            prev_run = false;
            continue;
        }
        i++;
        if (i < len && in[i] == '-') {
            strbuf_putc(out, '&');
            i++;
            prev_run = false;
            continue;
        }
        /* RFC 3501: a run is never followed directly by another one. */
        if (prev_run)
            return fail(why_r, "two adjacent base64 runs");
        uint32_t bits = 0, nbits = 0, high = 0;
        size_t units = 0;
        for (;;) {
            if (i >= len)
                return fail(why_r, "unterminated base64 run");
            unsigned char d = (unsigned char)in[i++];
            if (d == '-')
                break;
            int v = b64val(d);
            if (v < 0)
                return fail(why_r, "bad base64 character");
            bits = (bits << 6) | (uint32_t)v;
            nbits += 6;
            if (nbits >= 16) {
                nbits -= 16;
                uint32_t u = (bits >> nbits) & 0xFFFF;
                bits &= (1u << nbits) - 1;
                units++;
                if (high) {
                    if (u < 0xDC00 || u > 0xDFFF)
                        return fail(why_r, "unpaired high surrogate");
                    put_utf8(out, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
                    high = 0;
                } else if (u >= 0xD800 && u <= 0xDBFF) {
                    high = u;
                } else if (u >= 0xDC00 && u <= 0xDFFF) {
                    return fail(why_r, "unpaired low surrogate");
                } else if (u >= 0x20 && u <= 0x7E) {
                    return fail(why_r, "printable ASCII in a base64 run");
                } else if (u == 0) {
                    return fail(why_r, "NUL in a base64 run");
                } else {
                    put_utf8(out, u);
                }
            }
        }
        if (units == 0)
            return fail(why_r, "empty base64 run");
        if (high)
            return fail(why_r, "unpaired high surrogate");
        if (nbits >= 6 || bits != 0)
            return fail(why_r, "bad base64 padding");
        prev_run = true;
    }
    return 0;
}

/* Streaming base64 encoder of one run of UTF-16 units. */
struct b64_run {
    uint32_t bits, nbits;
};

static void run_unit(struct strbuf *out, struct b64_run *r, uint16_t u)
{
    r->bits = (r->bits << 16) | u;
    r->nbits += 16;
    while (r->nbits >= 6) {
        r->nbits -= 6;
        strbuf_putc(out, b64chars[(r->bits >> r->nbits) & 0x3F]);
    }
    r->bits &= (1u << r->nbits) - 1;
}

static void run_end(struct strbuf *out, struct b64_run *r)
{
    if (r->nbits > 0)
        strbuf_putc(out, b64chars[(r->bits << (6 - r->nbits)) & 0x3F]);
    strbuf_putc(out, '-');
    r->bits = r->nbits = 0;
}

int mutf7_from_utf8(const char *in, size_t len, struct strbuf *out, const char **why_r)
{
    if (!utf8_valid(in, len))
        return fail(why_r, "invalid UTF-8");
    if (memchr(in, 0, len) != NULL)
        return fail(why_r, "NUL character");
    struct b64_run run = {0, 0};
    bool in_run = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        uint32_t cp;
        size_t n;
        if (c < 0x80) {
            cp = c;
            n = 1;
        } else if (c < 0xE0) {
            cp = c & 0x1F;
            n = 2;
        } else if (c < 0xF0) {
            cp = c & 0x0F;
            n = 3;
        } else {
            cp = c & 0x07;
            n = 4;
        }
        for (size_t k = 1; k < n; k++)
            cp = (cp << 6) | ((unsigned char)in[i + k] & 0x3F);
        i += n;
        if (cp >= 0x20 && cp <= 0x7E) {
            if (in_run) {
                run_end(out, &run);
                in_run = false;
            }
            if (cp == '&')
                strbuf_append(out, "&-", 2);
            else
                strbuf_putc(out, (int)cp);
            continue;
        }
        if (!in_run) {
            strbuf_putc(out, '&');
            in_run = true;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            run_unit(out, &run, (uint16_t)(0xD800 + (cp >> 10)));
            run_unit(out, &run, (uint16_t)(0xDC00 + (cp & 0x3FF)));
        } else {
            run_unit(out, &run, (uint16_t)cp);
        }
    }
    if (in_run)
        run_end(out, &run);
    return 0;
}

bool mutf7_valid(const char *in, size_t len)
{
    struct strbuf tmp = STRBUF_INIT;
    int r = mutf7_to_utf8(in, len, &tmp, NULL);
    strbuf_release(&tmp);
    return r == 0;
}
