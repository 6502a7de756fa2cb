/*
 * address - RFC 5321 mailbox and path parsing.
 *
 * Mailbox = Local-part "@" ( Domain / address-literal ); Local-part is a
 * Dot-string or a Quoted-string. Paths are "<" [ A-d-l ":" ] Mailbox ">"
 * (the source route is accepted and discarded, RFC 5321 §4.1.1.3), or "<>"
 * when the null path is allowed. UTF-8 in the local part and domain is
 * accepted only with ADDRESS_UTF8 (RFC 6531). NUL, CR, LF and other
 * controls are always rejected. Every rejection names its reason in
 * *error_r (a static string).
 *
 * The parsed local part is stored unquoted (the quotes and backslashes of a
 * Quoted-string removed); address_format() quotes it again when needed.
 */
#ifndef TEGAMI_ADDRESS_H
#define TEGAMI_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define ADDRESS_NULL_OK 1u      /* "<>" is allowed (MAIL FROM) */
#define ADDRESS_UTF8 2u         /* SMTPUTF8 in effect */
#define ADDRESS_NO_DOMAIN_OK 4u /* "<postmaster>" and bare local parts (sendmail) */

#define ADDRESS_LOCAL_MAX 64   /* RFC 5321 §4.5.3.1.1 */
#define ADDRESS_DOMAIN_MAX 255 /* RFC 5321 §4.5.3.1.2 */
#define ADDRESS_PATH_MAX 256   /* RFC 5321 §4.5.3.1.3 */

struct address {
    char *local;         /* unquoted local part; NULL for the null path */
    char *domain;        /* domain, or "[literal]"; NULL if none */
    bool domain_literal; /* domain is an address literal "[...]" */
    bool utf8;           /* contains non-ASCII */
};

/* Parse a bare mailbox "local@domain" (len bytes of s). true on success. */
bool address_parse(const char *s, size_t len, unsigned flags, struct address *out,
                   const char **error_r);
/*
 * Parse a path starting at s[0] == '<'. On success *consumed_r is the number
 * of bytes up to and including '>'. true on success.
 */
bool address_parse_path(const char *s, size_t len, unsigned flags, struct address *out,
                        size_t *consumed_r, const char **error_r);
void address_release(struct address *a);
/* "local@domain" with the local part quoted if needed; "" for the null path. */
void address_format(const struct address *a, struct strbuf *out);
/* Lowercase ASCII copy of a domain, for comparisons and table lookups. */
char *address_domain_lower(const char *domain);

#endif
