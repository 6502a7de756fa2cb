/*
 * attr - the internal request/response codec (see attr.h).
 *
 * Wire form: each attribute is two netstrings "<len>:<bytes>," (name, then
 * value); an empty name "0:," ends the record. The decoder is strict: no
 * leading zeros, no sign or spaces in lengths, names of [a-z0-9_.] only,
 * the ',' terminator checked, and the whole record bounded by max_record
 * before anything is allocated for it.
 */
#include "attr.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mymalloc.h"
#include "stream.h"

/* ---- list handling ---- */

void attr_list_reset(struct attr_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        myfree(l->items[i].name);
        myfree(l->items[i].value);
    }
    l->count = 0;
}

void attr_list_release(struct attr_list *l)
{
    attr_list_reset(l);
    myfree(l->items);
    l->items = NULL;
    l->cap = 0;
}

void attr_list_add(struct attr_list *l, const char *name, const void *value, size_t len)
{
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        l->items = myreallocarray(l->items, ncap, sizeof(*l->items));
        l->cap = ncap;
    }
    struct attr *a = &l->items[l->count++];
    a->name = mystrdup(name);
    a->value = mymemdup(value ? value : "", len);
    a->len = len;
}

void attr_list_add_str(struct attr_list *l, const char *name, const char *value)
{
    if (value == NULL)
        value = "";
    attr_list_add(l, name, value, strlen(value));
}

void attr_list_add_int(struct attr_list *l, const char *name, long long value)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%lld", value);
    attr_list_add(l, name, buf, (size_t)n);
}

void attr_list_addf(struct attr_list *l, const char *name, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    attr_list_add(l, name, strbuf_str(&sb), sb.len);
    strbuf_release(&sb);
}

const char *attr_list_get(const struct attr_list *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return l->items[i].value;
    return NULL;
}

bool attr_list_get_int(const struct attr_list *l, const char *name, long long *value_r)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].name, name) != 0)
            continue;
        const struct attr *a = &l->items[i];
        const char *p = a->value;
        size_t n = a->len;
        size_t k = 0;
        if (n > 0 && p[0] == '-')
            k = 1;
        if (k == n || n > 21)
            return false;
        for (size_t j = k; j < n; j++)
            if (p[j] < '0' || p[j] > '9')
                return false;
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno != 0 || end != p + n)
            return false;
        *value_r = v;
        return true;
    }
    return false;
}

/* ---- encoding ---- */

static void put_netstring(struct strbuf *out, const char *data, size_t len)
{
    strbuf_printf(out, "%zu:", len);
    strbuf_append(out, data, len);
    strbuf_putc(out, ',');
}

void attr_encode(const struct attr_list *l, struct strbuf *out)
{
    for (size_t i = 0; i < l->count; i++) {
        const struct attr *a = &l->items[i];
        put_netstring(out, a->name, strlen(a->name));
        put_netstring(out, a->value, a->len);
    }
    put_netstring(out, "", 0);
}

/* ---- decoding ---- */

static bool attr_name_ok(const char *p, size_t len)
{
    if (len < 1 || len > ATTR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/*
 * Parse one netstring at buf[*pos]. 1 = done (*data_r, *len_r set, *pos
 * advanced), 0 = need more input, -1 = malformed or beyond max_record.
 */
static int get_netstring(const char *buf, size_t len, size_t *pos, size_t max_record,
                         const char **data_r, size_t *len_r, const char **error_r)
{
    size_t p = *pos;
    size_t v = 0;
    size_t ndigits = 0;
    for (;;) {
        if (p >= len)
            return 0;
        char c = buf[p];
        if (c == ':')
            break;
        if (c < '0' || c > '9') {
            *error_r = ndigits ? "bad character in netstring length" : "netstring length expected";
            return -1;
        }
        if (ndigits == 1 && v == 0) {
            *error_r = "leading zero in netstring length";
            return -1;
        }
        if (v > (SIZE_MAX - 9) / 10) {
            *error_r = "netstring length overflow";
            return -1;
        }
        v = v * 10 + (size_t)(c - '0');
        ndigits++;
        p++;
        if (v > max_record || p > max_record) {
            *error_r = "record too large";
            return -1;
        }
    }
    if (ndigits == 0) {
        *error_r = "empty netstring length";
        return -1;
    }
    p++; /* ':' */
    /* p + v + 1 must stay within the record bound (checked without overflow). */
    if (p > max_record || v > max_record - p || v + p + 1 > max_record) {
        *error_r = "record too large";
        return -1;
    }
    if (len - p < v + 1)
        return 0;
    if (buf[p + v] != ',') {
        *error_r = "netstring terminator missing";
        return -1;
    }
    *data_r = buf + p;
    *len_r = v;
    *pos = p + v + 1;
    return 1;
}

ssize_t attr_decode(const char *buf, size_t len, size_t max_record, struct attr_list *l,
                    const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    attr_list_reset(l);
    if (max_record > (size_t)SSIZE_MAX)
        max_record = (size_t)SSIZE_MAX;
    size_t pos = 0;
    for (;;) {
        const char *name, *value;
        size_t nlen, vlen;
        int r = get_netstring(buf, len, &pos, max_record, &name, &nlen, error_r);
        if (r <= 0)
            goto out;
        if (nlen == 0)
            return (ssize_t)pos;
        if (!attr_name_ok(name, nlen)) {
            *error_r = "bad attribute name";
            r = -1;
            goto out;
        }
        r = get_netstring(buf, len, &pos, max_record, &value, &vlen, error_r);
        if (r <= 0)
            goto out;
        char nbuf[ATTR_NAME_MAX + 1];
        memcpy(nbuf, name, nlen);
        nbuf[nlen] = 0;
        attr_list_add(l, nbuf, value, vlen);
        continue;
    out:
        attr_list_reset(l);
        return r;
    }
}

int attr_write(struct stream *s, const struct attr_list *l)
{
    struct strbuf sb = STRBUF_INIT;
    attr_encode(l, &sb);
    int r = stream_write(s, sb.data, sb.len);
    strbuf_release(&sb);
    if (r < 0)
        return -1;
    return stream_flush(s);
}

/*
 * Read one netstring's raw bytes from s and append them to raw. Returns 1
 * on success with *len_r the payload length, 0 if malformed (error_r), or a
 * negative STREAM_ code.
 */
static int read_netstring(struct stream *s, struct strbuf *raw, size_t max_record, size_t *len_r,
                          const char **error_r)
{
    size_t v = 0, ndigits = 0;
    for (;;) {
        char c;
        ssize_t n = stream_read(s, &c, 1);
        if (n <= 0)
            return n == 0 ? STREAM_EOF : (int)n;
        strbuf_putc(raw, c);
        if (raw->len > max_record) {
            *error_r = "record too large";
            return 0;
        }
        if (c == ':')
            break;
        if (c < '0' || c > '9' || (ndigits == 1 && v == 0)) {
            *error_r = "malformed netstring length";
            return 0;
        }
        if (v > (SIZE_MAX - 9) / 10) {
            *error_r = "netstring length overflow";
            return 0;
        }
        v = v * 10 + (size_t)(c - '0');
        ndigits++;
    }
    if (ndigits == 0) {
        *error_r = "empty netstring length";
        return 0;
    }
    if (v > max_record || v + 1 > max_record - raw->len) {
        *error_r = "record too large";
        return 0;
    }
    strbuf_grow(raw, v + 1);
    enum stream_result r = stream_read_exact(s, raw->data + raw->len, v + 1);
    if (r != STREAM_OK)
        return r;
    raw->len += v + 1;
    raw->data[raw->len] = 0;
    if (raw->data[raw->len - 1] != ',') {
        *error_r = "netstring terminator missing";
        return 0;
    }
    *len_r = v;
    return 1;
}

int attr_read(struct stream *s, size_t max_record, struct attr_list *l, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    attr_list_reset(l);
    struct strbuf raw = STRBUF_INIT;
    int result;
    for (;;) {
        size_t nlen, vlen;
        int r = read_netstring(s, &raw, max_record, &nlen, error_r);
        if (r != 1) {
            result = r == 0 ? 1 : r;
            goto done;
        }
        if (nlen == 0)
            break;
        r = read_netstring(s, &raw, max_record, &vlen, error_r);
        if (r != 1) {
            result = r == 0 ? 1 : r;
            goto done;
        }
    }
    /* The framing was read; the decoder applies every other rule. */
    ssize_t n = attr_decode(raw.data, raw.len, max_record, l, error_r);
    if (n < 0 || (size_t)n != raw.len) {
        if (n >= 0)
            *error_r = "malformed record";
        attr_list_reset(l);
        result = 1;
    } else {
        result = 0;
    }
done:
    strbuf_release(&raw);
    return result;
}
