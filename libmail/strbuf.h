/*
 * strbuf - growable, length-carrying byte buffer.
 *
 * data is always NUL-terminated (the NUL is not counted in len) so it can be
 * handed to functions that want C strings, but it may also hold NUL bytes.
 * The struct is embedded by value or allocated with strbuf_new; the caller
 * owns it and releases it with strbuf_release (embedded) or strbuf_free.
 */
#ifndef TEGAMI_STRBUF_H
#define TEGAMI_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "msg.h"

struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Prepare an embedded buffer (empty string). */
void strbuf_init(struct strbuf *sb, size_t hint);
/* Release an embedded buffer's memory; it may be re-initialised. */
void strbuf_release(struct strbuf *sb);
/* Heap-allocated buffer. */
struct strbuf *strbuf_new(size_t hint);
void strbuf_free(struct strbuf **sbp);

/* Make room for at least extra more bytes (plus the NUL). */
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_reset(struct strbuf *sb);
void strbuf_truncate(struct strbuf *sb, size_t len);
void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, int c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) MSG_PRINTF(2, 3);
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
/* The C string (never NULL, even for a never-used buffer). */
const char *strbuf_str(const struct strbuf *sb);
/* Hand the memory to the caller (who frees it with myfree); sb becomes empty. */
char *strbuf_detach(struct strbuf *sb, size_t *len_r);

#endif
