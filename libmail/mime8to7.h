/*
 * mime8to7 - downgrade an 8-bit message to 7 bits (RFC 6152 §3, RFC 2045).
 *
 * Used by the smtp client when the peer does not announce 8BITMIME and the
 * message holds 8-bit bytes. Input and output use LF line ends (queue
 * format). Only bodies change: each MIME leaf part whose content has 8-bit
 * bytes and whose Content-Transfer-Encoding is 7bit, 8bit or absent is
 * re-encoded as quoted-printable (RFC 2045 §6.7) and its CTE header
 * replaced; multipart bodies are walked part by part and message/rfc822
 * parts recursed, to a bounded depth (20 levels; deeper parts are left as
 * they are). base64 and quoted-printable parts are copied unchanged. A
 * message without any MIME field gets MIME-Version, a text/plain;
 * charset=unknown-8bit Content-Type and quoted-printable; one with MIME
 * fields but no MIME-Version gets MIME-Version when a part was re-encoded.
 * Parts labelled "binary" or with an unknown encoding are left alone: the
 * output still has 8-bit bytes then (check the result with mime_has_8bit)
 * and the caller must bounce or send 8-bit anyway.
 * Malformed MIME (missing or unterminated boundaries, bad headers) never
 * fails: an unterminated last part runs to the end, a multipart without a
 * boundary is encoded as one leaf.
 */
#ifndef TEGAMI_MIME8TO7_H
#define TEGAMI_MIME8TO7_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Does data hold any byte >= 0x80? */
bool mime_has_8bit(const char *data, size_t len);

/*
 * Append a 7-bit equivalent of the message data[0..len) to out.
 * 0, or -1 with a reason in err (out is then unspecified).
 */
int mime_8to7(const char *data, size_t len, struct strbuf *out, struct strbuf *err);

#endif
