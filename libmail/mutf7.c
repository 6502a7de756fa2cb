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

#include "base64.h"
#include "utf8.h"

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
        /* The run ends at '-'; decode it with the IMAP alphabet, no padding. */
        size_t end = i;
        while (end < len && in[end] != '-')
            end++;
        struct strbuf raw = STRBUF_INIT;
        enum base64_status st =
            base64_decode_append(in + i, end - i, BASE64_IMAP | BASE64_NOPAD, &raw);
        /*
         * raw holds the bytes decoded before any fault: check their UTF-16
         * units first, then the fault, in the order of the text.
         */
        const char *why = NULL;
        uint32_t high = 0;
        size_t units = raw.len / 2;
        for (size_t k = 0; k < units && why == NULL; k++) {
            uint32_t u =
                (uint32_t)(unsigned char)raw.data[2 * k] << 8 | (unsigned char)raw.data[2 * k + 1];
            if (high) {
                if (u < 0xDC00 || u > 0xDFFF)
                    why = "unpaired high surrogate";
                else
                    put_utf8(out, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
                high = 0;
            } else if (u >= 0xD800 && u <= 0xDBFF) {
                high = u;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                why = "unpaired low surrogate";
            } else if (u >= 0x20 && u <= 0x7E) {
                why = "printable ASCII in a base64 run";
            } else if (u == 0) {
                why = "NUL in a base64 run";
            } else {
                put_utf8(out, u);
            }
        }
        bool odd = raw.len % 2 != 0;
        strbuf_release(&raw);
        if (why != NULL)
            return fail(why_r, why);
        if (st == BASE64_BAD_BYTE)
            return fail(why_r, "bad base64 character");
        if (end >= len)
            return fail(why_r, "unterminated base64 run");
        i = end + 1;
        if (units == 0)
            return fail(why_r, "empty base64 run");
        if (high)
            return fail(why_r, "unpaired high surrogate");
        /* a partial 16-bit unit, a lone character or non-zero padding bits */
        if (st != BASE64_OK || odd)
            return fail(why_r, "bad base64 padding");
        prev_run = true;
    }
    return 0;
}

/* Encode one run's UTF-16 units (big-endian bytes in units), then its '-'. */
static void run_end(struct strbuf *out, struct strbuf *units)
{
    base64_encode_append(units->data, units->len, BASE64_IMAP | BASE64_NOPAD, out);
    strbuf_putc(out, '-');
    strbuf_reset(units);
}

static void run_unit(struct strbuf *units, uint16_t u)
{
    strbuf_putc(units, u >> 8);
    strbuf_putc(units, u & 0xFF);
}

int mutf7_from_utf8(const char *in, size_t len, struct strbuf *out, const char **why_r)
{
    if (!utf8_valid(in, len))
        return fail(why_r, "invalid UTF-8");
    if (len > 0 && memchr(in, 0, len) != NULL)
        return fail(why_r, "NUL character");
    struct strbuf run = STRBUF_INIT; /* UTF-16 units of the current run */
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
            run_unit(&run, (uint16_t)(0xD800 + (cp >> 10)));
            run_unit(&run, (uint16_t)(0xDC00 + (cp & 0x3FF)));
        } else {
            run_unit(&run, (uint16_t)cp);
        }
    }
    if (in_run)
        run_end(out, &run);
    strbuf_release(&run);
    return 0;
}

bool mutf7_valid(const char *in, size_t len)
{
    struct strbuf tmp = STRBUF_INIT;
    int r = mutf7_to_utf8(in, len, &tmp, NULL);
    strbuf_release(&tmp);
    return r == 0;
}
