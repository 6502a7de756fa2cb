/*
 * base64 - the one base64 codec of libmail (RFC 4648 §4), with the variants
 * its callers need:
 *   sasl     strict, standard alphabet, '=' padding required (RFC 4954);
 *   mutf7    strict, IMAP alphabet (',' for '/'), no padding (RFC 3501
 *            §5.1.3);
 *   message, imap_fetch
 *            tolerant decoding of mail bodies and encoded words: bytes
 *            outside the alphabet (line breaks, junk) are skipped and the
 *            first '=' ends the data (RFC 2045 §6.8).
 *
 * Strict decoding refuses any byte outside the alphabet (whitespace
 * included), '=' where none may stand, a lone character left over at the
 * end (a truncated quantum), and non-zero bits under the padding (so every
 * accepted text is the one canonical encoding of its bytes). Empty input is
 * valid and decodes to nothing. Decoders append each byte as soon as its
 * bits are read, so on failure the output holds the bytes decoded before
 * the fault. Nothing is allocated except by growing the caller's strbuf.
 */
#ifndef TEGAMI_BASE64_H
#define TEGAMI_BASE64_H

#include <stddef.h>

#include "strbuf.h"

/* Flags; 0 means standard alphabet, '=' padding, strict decoding. */
#define BASE64_IMAP 0x01     /* ',' in place of '/' (RFC 3501 §5.1.3) */
#define BASE64_NOPAD 0x02    /* encoder writes no '='; strict decoder refuses it */
#define BASE64_TOLERANT 0x04 /* decoder skips bytes outside the alphabet, stops at '=' */

enum base64_status {
    BASE64_OK = 0,
    BASE64_BAD_BYTE,  /* a byte outside the alphabet (strict) */
    BASE64_BAD_PAD,   /* '=' misplaced, missing or forbidden; non-zero pad bits */
    BASE64_TRUNCATED, /* input ends with a lone character of a quantum */
    BASE64_NO_SPACE,  /* the output buffer is too small */
};

/* Characters the encoding of len bytes takes (no NUL counted). */
size_t base64_encoded_len(size_t len, unsigned flags);

/*
 * Encode data[0..len) into out, NUL-terminated. Returns 0, or -1 (out set
 * to "" when out_max > 0) if out_max < base64_encoded_len(len) + 1.
 */
int base64_encode(const void *data, size_t len, unsigned flags, char *out, size_t out_max);
/* Append the encoding of data[0..len) to out. */
void base64_encode_append(const void *data, size_t len, unsigned flags, struct strbuf *out);

/*
 * Decode in[0..len) into out (at most out_max bytes); *out_len_r gets the
 * number of bytes written, also on failure. Tolerant decoding fails only
 * with BASE64_NO_SPACE.
 */
enum base64_status base64_decode(const char *in, size_t len, unsigned flags, unsigned char *out,
                                 size_t out_max, size_t *out_len_r);
/* Decode in[0..len), appending the bytes to out. */
enum base64_status base64_decode_append(const char *in, size_t len, unsigned flags,
                                        struct strbuf *out);

#endif
