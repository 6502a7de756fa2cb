/*
 * message - RFC 5322 / MIME (RFC 2045, 2046, 2047, 2231) message parser for
 * IMAP: ENVELOPE, BODY/BODYSTRUCTURE, section byte ranges, decoded text for
 * SEARCH and the Date header.
 *
 * Callers: imapd (FETCH, SEARCH) and the mailbox index (mbox_index caches the
 * ENVELOPE and BODYSTRUCTURE strings, so a message is parsed once).
 *
 * message_parse() keeps a pointer to the caller's buffer; the buffer must stay
 * alive and unchanged until message_free(). All offsets returned refer to that
 * buffer. The buffer may use LF (Maildir files) or CRLF line ends, or a mix;
 * every size this module reports is what IMAP counts: octets with every bare
 * LF counted as CRLF (RFC 3501 §2.3.4 and §7.4.2).
 *
 * Parsing never fails on malformed mail: like Dovecot it is tolerant and does
 * its best (missing final boundary, lines without a colon in a header, 8-bit
 * header bytes, bad base64...), and where RFCs leave room it answers what
 * Dovecot answers (docs/decisions.md). Limits: MIME nesting depth
 * MESSAGE_MAX_DEPTH (a deeper multipart is shown with one empty text/plain
 * part, a deeper message/rfc822 as an application/octet-stream leaf) and
 * MESSAGE_MAX_PARTS parts (the rest of a multipart is not split further).
 * Rendering functions append to a strbuf and never fail. Not thread-safe
 * (a per-process iconv cache); tegami daemons are single-threaded.
 */
#ifndef TEGAMI_MESSAGE_H
#define TEGAMI_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "strbuf.h"

#define MESSAGE_MAX_DEPTH 32
#define MESSAGE_MAX_PARTS 10000

struct message;

/* Parse len bytes of data (kept by reference). Never NULL. */
struct message *message_parse(const char *data, size_t len);
void message_free(struct message **mp);

/*
 * IMAP renderings, appended to out exactly as they go on the wire.
 * ENVELOPE: "(" date subject from sender reply-to to cc bcc in-reply-to
 * message-id ")"; sender and reply-to default to from (RFC 3501 §7.4.2).
 * Strings are quoted when safe, else sent as literals "{n}\r\n..." (8-bit,
 * CR, LF, NUL, many quotes); see docs/decisions.md.
 */
void message_envelope(const struct message *m, struct strbuf *out);
/* extended: BODYSTRUCTURE (md5, disposition, language, location); else BODY. */
void message_bodystructure(const struct message *m, bool extended, struct strbuf *out);

/* RFC822.SIZE: the whole message with CRLF line ends. */
size_t message_size_crlf(const struct message *m);

/*
 * RFC 3501 §6.4.5 sections. part is "" (the whole message) or "1", "1.2"...
 * what: ALL = BODY[part] (for part "" the whole message; for a part its body
 * without its MIME header), HEADER / TEXT = header (with its blank line) /
 * body of the message ("" ) or of the message/rfc822 part named, MIME = the
 * MIME header of a part (with its blank line). HEADER.FIELDS is HEADER plus
 * message_header_filter(). Part 1 of a single-part message is its body; as
 * in Dovecot, "n.1" of a body part inside a multipart is the part itself.
 * Gives the raw byte range in the caller's buffer (LF or CRLF as stored:
 * convert with message_append_crlf; NUL bytes are the caller's to replace,
 * Dovecot sends them as 0x80 in BODY[] literals); 0, or -1 when the part
 * does not exist or the section does not apply (MIME of "", HEADER or TEXT
 * of a part that is not message/rfc822).
 */
enum message_sec { MESSAGE_SEC_ALL, MESSAGE_SEC_HEADER, MESSAGE_SEC_TEXT, MESSAGE_SEC_MIME };
int message_section(const struct message *m, const char *part, enum message_sec what, size_t *off_r,
                    size_t *len_r);

/* Octets of len bytes at p once every bare LF is written as CRLF. */
size_t message_crlf_len(const char *p, size_t len);
/* Append len bytes at p to out with every bare LF written as CRLF. */
void message_append_crlf(const char *p, size_t len, struct strbuf *out);

/*
 * HEADER.FIELDS (exclude false) / HEADER.FIELDS.NOT (exclude true): copy the
 * fields of the header block hdr (a HEADER or MIME range) whose names match
 * one of names (case-insensitive), raw with folding kept, CRLF line ends,
 * followed by the blank line CRLF, as RFC 3501 §6.4.5 wants.
 */
void message_header_filter(const char *hdr, size_t len, const char *const *names, size_t count,
                           bool exclude, struct strbuf *out);

/*
 * The raw value of the first field called name in the top-level header
 * (unfolded: CRLF/LF removed, leading whitespace trimmed). 0 found, -1 none.
 */
int message_header_raw(const struct message *m, const char *name, struct strbuf *out);

/*
 * SEARCH HEADER/SUBJECT/FROM...: every field called name in the top-level
 * header, unfolded, RFC 2047 decoded and converted to UTF-8, joined with
 * ", " when there are several. 0 found / -1 none.
 */
int message_header_decoded(const struct message *m, const char *name, struct strbuf *out_utf8);

/*
 * SEARCH BODY/TEXT: in document order, the bodies of the text/ parts,
 * transfer decoding (base64, quoted-printable) undone and converted to UTF-8
 * from their charset (unknown charsets: bytes kept), and the header of each
 * attached message/rfc822 ("Name: value" lines, RFC 2047 decoded); pieces
 * separated by "\n", at most max bytes appended. Not the top-level header.
 */
void message_body_text(const struct message *m, size_t max, struct strbuf *out_utf8);

/* The Date: header (RFC 5322 §3.3 and obsolete forms) as time_t UTC; -1 if none or bad. */
time_t message_date(const struct message *m);
/* Parse a date-time string as in a Date: header. -1 if not a date. */
time_t message_parse_date(const char *s, size_t len);

/*
 * RFC 2047: decode the encoded words of one (unfolded) header value into
 * UTF-8. Adjacent encoded words separated only by whitespace are joined;
 * invalid ones are copied as they are; unknown charsets keep their bytes.
 */
void message_decode_2047(const char *value, size_t len, struct strbuf *out_utf8);

/* Number of MIME parts (entities) found, the message itself included. */
size_t message_part_count(const struct message *m);

#endif
