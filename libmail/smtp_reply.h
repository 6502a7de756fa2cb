/*
 * smtp_reply - parse what an SMTP server answers (RFC 5321 §4.2) and the
 * extensions it lists in its EHLO reply.
 *
 * Used by the smtp client (smtp/). Pure functions, no I/O: the caller reads
 * lines (bounded, e.g. with stream_read_line) and feeds them one by one to
 * smtp_reply_feed() until it says SMTP_REPLY_DONE; smtp_ehlo_parse() then
 * decodes an EHLO reply into a struct smtp_ehlo.
 *
 * Rules: every line starts with the same three-digit code (first digit
 * 2..5, second 0..5), followed by '-' (more lines follow), ' ' or the end
 * of the line (last line). Anything else - a short line, letters in the
 * code, a code that changes between lines, NUL bytes - is malformed: the
 * caller ends the session as if the connection broke. Text is kept with
 * control characters replaced by '?' (it goes into logs and bounces).
 *
 * Bounds: at most SMTP_REPLY_LINES_MAX lines and SMTP_REPLY_TEXT_MAX bytes
 * of text per reply (more lines: malformed; more text: cut, marked
 * "..."). The caller bounds each line (SMTP_REPLY_LINE_MAX) and passes an
 * over-long line cut short; its text is kept as far as it goes.
 *
 * Memory: struct smtp_reply owns its buffers (smtp_reply_release).
 */
#ifndef TEGAMI_SMTP_REPLY_H
#define TEGAMI_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define SMTP_REPLY_LINE_MAX 2048 /* bytes a reader takes of one line (RFC: 512) */
#define SMTP_REPLY_LINES_MAX 100 /* lines in one reply */
#define SMTP_REPLY_TEXT_MAX 4096 /* bytes of text kept of one reply */

enum smtp_reply_status {
    SMTP_REPLY_MORE, /* a continuation line: feed the next one */
    SMTP_REPLY_DONE, /* the last line: code, dsn, text are complete */
    SMTP_REPLY_BAD,  /* malformed (error_r says why); the reply is unusable */
};

struct smtp_reply {
    int code;            /* 250, 421, 550 ... (0 until the first line) */
    char dsn[16];        /* enhanced status code (RFC 3463) of the first line, or "" */
    struct strbuf text;  /* "550 5.1.1 <x@y>: unknown user" (lines joined by a space) */
    struct strbuf lines; /* each line's text after the code and separator, NUL-terminated */
    size_t nlines;
    bool done;
};

void smtp_reply_init(struct smtp_reply *r);
/* Forget the previous reply (keeps memory). */
void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_release(struct smtp_reply *r);

/*
 * Add one line (with or without its CRLF/LF) to the reply. A reply that
 * was DONE is reset first. On SMTP_REPLY_BAD *error_r is a static reason.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                                       const char **error_r);

/*
 * Parse a whole buffer holding one reply (lines ending in LF). Returns DONE
 * with *used_r = bytes of buf consumed, MORE when buf ends before the last
 * line, or BAD. For tests and fuzzing.
 */
enum smtp_reply_status smtp_reply_parse(struct smtp_reply *r, const char *buf, size_t len,
                                        size_t *used_r, const char **error_r);

/* The i-th line's text (after "250-"/"250 "), i < nlines; "" otherwise. */
const char *smtp_reply_line(const struct smtp_reply *r, size_t i);

/* The extensions of an EHLO reply that the smtp client uses. */
#define SMTP_EHLO_AUTH_PLAIN 1u
#define SMTP_EHLO_AUTH_LOGIN 2u

struct smtp_ehlo {
    bool pipelining;               /* RFC 2920 */
    bool size;                     /* RFC 1870 */
    unsigned long long size_limit; /* 0 = no limit announced */
    bool eightbitmime;             /* RFC 6152 */
    bool smtputf8;                 /* RFC 6531 */
    bool dsn;                      /* RFC 3461 */
    bool starttls;                 /* RFC 3207 */
    bool enhancedstatuscodes;      /* RFC 2034 */
    bool chunking;                 /* RFC 3030 */
    unsigned auth;                 /* SMTP_EHLO_AUTH_* (RFC 4954, also the old "AUTH=" form) */
};

/*
 * Decode the keywords of a complete 2xx EHLO reply (lines after the first).
 * Unknown keywords and malformed lines are ignored; a malformed SIZE value
 * counts as "no limit announced". Never fails.
 */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *out);

#endif
