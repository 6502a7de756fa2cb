/*
 * smtp_reply - SMTP server replies and EHLO keywords (see smtp_reply.h).
 */
#include "smtp_reply.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
    strbuf_init(&r->text, 128);
    strbuf_init(&r->lines, 128);
}

void smtp_reply_reset(struct smtp_reply *r)
{
    r->code = 0;
    r->dsn[0] = 0;
    r->nlines = 0;
    r->done = false;
    strbuf_reset(&r->text);
    strbuf_reset(&r->lines);
}

void smtp_reply_release(struct smtp_reply *r)
{
    strbuf_release(&r->text);
    strbuf_release(&r->lines);
    memset(r, 0, sizeof(*r));
}

/*
 * An RFC 3463 enhanced status code at the start of text whose class
 * matches the reply's first digit: "5.1.1 ". Returns its length (without
 * the space) or 0.
 */
static size_t reply_dsn_len(const char *text, size_t len, int cls)
{
    size_t i = 0;
    if (len < 5 || text[0] != (char)('0' + cls) || text[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && i - start < 3 && text[i] >= '0' && text[i] <= '9')
            i++;
        if (i == start || (i < len && text[i] >= '0' && text[i] <= '9'))
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ')
        return 0;
    return i;
}

/* Append text to the joined reply text, controls replaced, bounded. */
static void reply_add_text(struct smtp_reply *r, const char *text, size_t len)
{
    if (r->text.len >= SMTP_REPLY_TEXT_MAX)
        return;
    for (size_t i = 0; i < len; i++) {
        if (r->text.len >= SMTP_REPLY_TEXT_MAX - 3) {
            strbuf_puts(&r->text, "...");
            return;
        }
        unsigned char c = (unsigned char)text[i];
        strbuf_putc(&r->text, (c < 0x20 || c == 0x7f) ? '?' : c);
    }
}

enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                                       const char **error_r)
{
    if (r->done)
        smtp_reply_reset(r);
    *error_r = NULL;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (memchr(line, 0, len) != NULL) {
        *error_r = "NUL byte in reply";
        return SMTP_REPLY_BAD;
    }
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        line[2] < '0' || line[2] > '9') {
        *error_r = "reply line does not start with a reply code";
        return SMTP_REPLY_BAD;
    }
    if (len > 3 && line[3] != ' ' && line[3] != '-') {
        *error_r = "no space or dash after the reply code";
        return SMTP_REPLY_BAD;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        *error_r = "reply code changes between lines";
        return SMTP_REPLY_BAD;
    }
    if (r->nlines >= SMTP_REPLY_LINES_MAX) {
        *error_r = "too many lines in reply";
        return SMTP_REPLY_BAD;
    }
    bool last = len == 3 || line[3] == ' ';
    const char *text = len > 4 ? line + 4 : "";
    size_t tlen = len > 4 ? len - 4 : 0;

    /* Keep the line's text (controls replaced) for EHLO parsing, bounded. */
    if (r->lines.len < SMTP_REPLY_TEXT_MAX * 4) {
        for (size_t i = 0; i < tlen; i++) {
            unsigned char c = (unsigned char)text[i];
            strbuf_putc(&r->lines, (c < 0x20 || c == 0x7f) ? '?' : c);
        }
    }
    strbuf_putc(&r->lines, 0); /* the terminator counts: lines are found by walking NULs */

    size_t dlen = reply_dsn_len(text, tlen, line[0] - '0');
    if (r->nlines == 0) {
        r->code = code;
        if (dlen > 0 && dlen < sizeof(r->dsn)) {
            memcpy(r->dsn, text, dlen);
            r->dsn[dlen] = 0;
        }
        reply_add_text(r, line, 3);
        if (tlen > 0) {
            reply_add_text(r, " ", 1);
            reply_add_text(r, text, tlen);
        }
    } else {
        /* Later lines repeat the code and usually the enhanced code: drop both. */
        if (dlen > 0 && r->dsn[0] && dlen == strlen(r->dsn) && memcmp(text, r->dsn, dlen) == 0) {
            text += dlen;
            tlen -= dlen;
            while (tlen > 0 && *text == ' ')
                text++, tlen--;
        }
        if (tlen > 0) {
            reply_add_text(r, " ", 1);
            reply_add_text(r, text, tlen);
        }
    }
    r->nlines++;
    if (last) {
        r->done = true;
        return SMTP_REPLY_DONE;
    }
    return SMTP_REPLY_MORE;
}

enum smtp_reply_status smtp_reply_parse(struct smtp_reply *r, const char *buf, size_t len,
                                        size_t *used_r, const char **error_r)
{
    size_t pos = 0;
    smtp_reply_reset(r);
    *used_r = 0;
    *error_r = NULL;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL)
            return SMTP_REPLY_MORE;
        size_t llen = (size_t)(nl - (buf + pos)) + 1;
        if (llen > SMTP_REPLY_LINE_MAX)
            llen = SMTP_REPLY_LINE_MAX; /* as a bounded reader would cut it */
        enum smtp_reply_status st = smtp_reply_feed(r, buf + pos, llen, error_r);
        pos = (size_t)(nl - buf) + 1;
        if (st != SMTP_REPLY_MORE) {
            *used_r = pos;
            return st;
        }
    }
    return SMTP_REPLY_MORE;
}

const char *smtp_reply_line(const struct smtp_reply *r, size_t i)
{
    if (i >= r->nlines || r->lines.data == NULL)
        return "";
    const char *p = r->lines.data, *end = r->lines.data + r->lines.len;
    while (i > 0 && p < end) {
        p += strlen(p) + 1;
        i--;
    }
    return p < end ? p : "";
}

/* The word at *p (up to a space or '='), advancing *p past separators. */
static size_t ehlo_word(const char **p, char *buf, size_t max)
{
    size_t n = 0;
    while (**p == ' ')
        (*p)++;
    while (**p && **p != ' ' && **p != '=') {
        if (n + 1 < max)
            buf[n++] = **p;
        (*p)++;
    }
    buf[n] = 0;
    if (**p == '=')
        (*p)++;
    return n;
}

static void ehlo_auth(const char *p, struct smtp_ehlo *out)
{
    char mech[64];
    while (ehlo_word(&p, mech, sizeof(mech)) > 0) {
        if (strcasecmp(mech, "PLAIN") == 0)
            out->auth |= SMTP_EHLO_AUTH_PLAIN;
        else if (strcasecmp(mech, "LOGIN") == 0)
            out->auth |= SMTP_EHLO_AUTH_LOGIN;
    }
}

void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *out)
{
    char kw[64];
    memset(out, 0, sizeof(*out));
    if (r->code < 200 || r->code > 299)
        return;
    for (size_t i = 1; i < r->nlines; i++) {
        const char *p = smtp_reply_line(r, i);
        if (ehlo_word(&p, kw, sizeof(kw)) == 0)
            continue;
        if (strcasecmp(kw, "PIPELINING") == 0) {
            out->pipelining = true;
        } else if (strcasecmp(kw, "SIZE") == 0) {
            out->size = true;
            while (*p == ' ')
                p++;
            if (*p >= '0' && *p <= '9') {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(p, &end, 10);
                if (errno == 0 && (*end == 0 || *end == ' '))
                    out->size_limit = v;
            }
        } else if (strcasecmp(kw, "8BITMIME") == 0) {
            out->eightbitmime = true;
        } else if (strcasecmp(kw, "SMTPUTF8") == 0) {
            out->smtputf8 = true;
        } else if (strcasecmp(kw, "DSN") == 0) {
            out->dsn = true;
        } else if (strcasecmp(kw, "STARTTLS") == 0) {
            out->starttls = true;
        } else if (strcasecmp(kw, "ENHANCEDSTATUSCODES") == 0) {
            out->enhancedstatuscodes = true;
        } else if (strcasecmp(kw, "CHUNKING") == 0) {
            out->chunking = true;
        } else if (strcasecmp(kw, "AUTH") == 0) {
            ehlo_auth(p, out);
        }
    }
}
