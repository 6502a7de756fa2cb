/*
 * mutf7 - IMAP modified UTF-7 (RFC 3501 §5.1.3) <-> UTF-8.
 *
 * Folder names travel in modified UTF-7 on the IMAP wire (IMAP4rev1, and
 * rev2 without UTF8=ACCEPT) and are stored in modified UTF-7 on disk, as
 * Courier and Dovecot store Maildir++ folder names. Both directions are
 * strict parsers: they fail closed on anything RFC 3501 does not allow
 * (unterminated "&", bad base64, non-zero padding bits, a base64 run that
 * encodes printable ASCII, an empty "&-" run that is not "&", unpaired
 * surrogates, "&...-&...-" that should have been one run, invalid UTF-8,
 * NUL). Output is appended to out (never reset); on failure out may hold a
 * partial result and why_r (if not NULL) gets a static reason.
 */
#ifndef TEGAMI_MUTF7_H
#define TEGAMI_MUTF7_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Modified UTF-7 in[0..len) -> UTF-8 appended to out. 0, or -1 with why_r. */
int mutf7_to_utf8(const char *in, size_t len, struct strbuf *out, const char **why_r);

/* UTF-8 in[0..len) -> modified UTF-7 appended to out. 0, or -1 with why_r. */
int mutf7_from_utf8(const char *in, size_t len, struct strbuf *out, const char **why_r);

/* True when in[0..len) is valid modified UTF-7 (the wire form of a name). */
bool mutf7_valid(const char *in, size_t len);

#endif
