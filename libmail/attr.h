/*
 * attr - the internal request/response codec.
 *
 * A record is a list of name/value attributes. On the wire each attribute is
 * two netstrings, "<len>:<name>,<len>:<value>,", and the record ends with an
 * empty name, "0:,". Lengths are decimal without leading zeros (except "0"),
 * names are 1..64 bytes of [a-z0-9_.], values are any bytes up to the
 * reader's bound. There is no quoting and no text parsing beyond that.
 * Names may repeat (a request carries one "rcpt" per recipient); order is kept.
 *
 * Used by qmgr <-> local (and later smtp), master's status service, and
 * mailctl. docs/protocols.md lists every request and reply.
 */
#ifndef TEGAMI_ATTR_H
#define TEGAMI_ATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "msg.h"
#include "strbuf.h"

struct stream;

#define ATTR_NAME_MAX 64

struct attr {
    char *name;
    char *value; /* NUL-terminated copy; may also contain NULs (see len) */
    size_t len;
};

struct attr_list {
    struct attr *items;
    size_t count;
    size_t cap;
};

#define ATTR_LIST_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void attr_list_reset(struct attr_list *l);   /* remove all, keep memory */
void attr_list_release(struct attr_list *l); /* free everything */
void attr_list_add(struct attr_list *l, const char *name, const void *value, size_t len);
void attr_list_add_str(struct attr_list *l, const char *name, const char *value);
void attr_list_add_int(struct attr_list *l, const char *name, long long value);
void attr_list_addf(struct attr_list *l, const char *name, const char *fmt, ...) MSG_PRINTF(3, 4);
/* First value named name, or NULL. */
const char *attr_list_get(const struct attr_list *l, const char *name);
/* First value as an integer; false if missing or not a decimal integer. */
bool attr_list_get_int(const struct attr_list *l, const char *name, long long *value_r);

/* Append the wire form of l to out. */
void attr_encode(const struct attr_list *l, struct strbuf *out);
/*
 * Decode one record from buf. Returns bytes consumed (>0), 0 if buf holds
 * only part of a record (read more), or -1 if malformed or larger than
 * max_record bytes (error_r says why). l is reset first.
 */
ssize_t attr_decode(const char *buf, size_t len, size_t max_record, struct attr_list *l,
                    const char **error_r);
/* Encode, write and flush l on s. 0 or -1. */
int attr_write(struct stream *s, const struct attr_list *l);
/*
 * Read one record from s (at most max_record bytes). 0 on success, a
 * negative STREAM_ code on I/O trouble, or 1 if malformed (error_r).
 */
int attr_read(struct stream *s, size_t max_record, struct attr_list *l, const char **error_r);

#endif
