#include "strbuf.h"
#include "mymalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void strbuf_init(struct strbuf *sb, size_t hint)
{
    sb->cap = hint < 16 ? 16 : hint;
    sb->data = mymalloc(sb->cap + 1);
    sb->data[0] = 0;
    sb->len = 0;
}

void strbuf_release(struct strbuf *sb)
{
    myfree(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

struct strbuf *strbuf_new(size_t hint)
{
    struct strbuf *sb = mymalloc(sizeof(*sb));
    strbuf_init(sb, hint);
    return sb;
}

void strbuf_free(struct strbuf **sbp)
{
    if (*sbp) {
        strbuf_release(*sbp);
        myfree(*sbp);
        *sbp = NULL;
    }
}

void strbuf_grow(struct strbuf *sb, size_t extra)
{
    if (sb->data == NULL)
        strbuf_init(sb, extra);
    if (extra > SIZE_MAX / 2 - sb->len)
        msg_fatal("strbuf_grow: size overflow");
    if (sb->len + extra <= sb->cap)
        return;
    size_t cap = sb->cap * 2;
    if (cap < sb->len + extra)
        cap = sb->len + extra;
    sb->data = myrealloc(sb->data, cap + 1);
    sb->cap = cap;
}

void strbuf_reset(struct strbuf *sb)
{
    if (sb->data == NULL)
        strbuf_init(sb, 0);
    sb->len = 0;
    sb->data[0] = 0;
}

void strbuf_truncate(struct strbuf *sb, size_t len)
{
    if (sb->data && len < sb->len) {
        sb->len = len;
        sb->data[len] = 0;
    }
}

void strbuf_append(struct strbuf *sb, const void *data, size_t len)
{
    strbuf_grow(sb, len);
    if (len)
        memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = 0;
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_putc(struct strbuf *sb, int c)
{
    char ch = (char)c;
    strbuf_append(sb, &ch, 1);
}

void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list aq;
    strbuf_grow(sb, 64);
    va_copy(aq, ap);
    int n = vsnprintf(sb->data + sb->len, sb->cap - sb->len + 1, fmt, aq);
    va_end(aq);
    if (n < 0)
        msg_panic("strbuf_vprintf: bad format %s", fmt);
    if ((size_t)n > sb->cap - sb->len) {
        strbuf_grow(sb, (size_t)n);
        va_copy(aq, ap);
        vsnprintf(sb->data + sb->len, sb->cap - sb->len + 1, fmt, aq);
        va_end(aq);
    }
    sb->len += (size_t)n;
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

const char *strbuf_str(const struct strbuf *sb)
{
    return sb->data ? sb->data : "";
}

char *strbuf_detach(struct strbuf *sb, size_t *len_r)
{
    if (sb->data == NULL)
        strbuf_init(sb, 0);
    char *p = sb->data;
    if (len_r)
        *len_r = sb->len;
    sb->data = NULL;
    sb->len = sb->cap = 0;
    return p;
}
