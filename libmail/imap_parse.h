/*
 * imap_parse - the IMAP command tokenizer (RFC 3501 §9, RFC 9051 §9,
 * RFC 7888 LITERAL+).
 *
 * Used by imapd. A command arrives in two steps:
 *
 *  1. Assembly (imapd's session): read one line (bounded). Ask
 *     imap_parse_literal_suffix() whether it ends with a literal
 *     announcement "{n}" / "{n+}". If so, the session decides BEFORE reading
 *     the literal: too big → tagged NO/BAD for a synchronising literal (the
 *     client never sends it), BYE for a non-synchronising one; otherwise
 *     "+ OK" for a synchronising literal, then read exactly n bytes, then the
 *     next line, and so on. The wire bytes (lines with their CRLF and literal
 *     data) are appended to one buffer, so the buffer is exactly what the
 *     client sent for the command.
 *
 *  2. Parsing (imapd's commands): imap_parser_init() over that buffer, then
 *     pull tokens on demand: tag, SP, command name, SP, arguments ..., EOL.
 *     Every function returns true on success; on failure it returns false,
 *     consumes nothing more, and leaves a static, human-readable reason in
 *     p->error (the first error sticks) for a tagged "BAD <reason>".
 *
 * Memory: strings handed out (tags, atoms, unescaped quoted strings, literal
 * contents, sequence sets) live in the parser's arena and stay valid until
 * imap_parser_release(). They are NUL-terminated; a literal may contain NUL
 * bytes, so use .len (imap_str_is_text() says whether it is a C string).
 *
 * Bounds: list nesting is bounded by max_depth (counted, not recursed); an
 * atom, number or quoted string cannot be longer than the buffer; sequence
 * sets are bounded by the buffer too. 8-bit bytes are refused in atoms;
 * quoted strings accept UTF-8 (RFC 6855 / RFC 9051) but never NUL, CR or LF.
 * Line ends may be CRLF or a bare LF (as Dovecot accepts).
 */
#ifndef TEGAMI_IMAP_PARSE_H
#define TEGAMI_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Default list nesting bound (imapd passes imapd_max_list_depth). */
#define IMAP_PARSE_DEPTH_DEFAULT 16
/* '*' in a sequence set. */
#define IMAP_SEQ_STAR UINT32_MAX

/* A string argument: data NUL-terminated, len without the NUL. data is NULL
 * only for an nstring that was NIL. */
struct imap_str {
    const char *data;
    size_t len;
    bool literal; /* it came as a literal (so it may hold any byte) */
};

/* One range of a sequence set, lo <= hi after normalisation; IMAP_SEQ_STAR = '*'. */
struct imap_seq_range {
    uint32_t lo, hi;
};

/* A sequence set "1:3,5,7:*" or "$" (RFC 5182 SEARCHRES). */
struct imap_seqset {
    struct imap_seq_range *ranges; /* in the parser's arena */
    size_t count;
    bool saved; /* "$": the caller substitutes the saved search result */
};

struct imap_arena_block;

struct imap_parser {
    const char *buf; /* the assembled command (not owned) */
    size_t len;
    size_t pos;         /* next byte to read */
    unsigned depth;     /* open '(' right now */
    unsigned max_depth; /* bound on depth */
    const char *error;  /* first error, static text, NULL while fine */
    struct imap_arena_block *arena;
};

/* Start parsing buf[0..len) (the whole command, final line end included). */
void imap_parser_init(struct imap_parser *p, const char *buf, size_t len, unsigned max_depth);
/* Free everything the parser handed out. */
void imap_parser_release(struct imap_parser *p);

/*
 * Look at one received line (ending in LF, or not if truncated): does it end
 * with a literal announcement outside a quoted string? Returns 1 with the
 * announced size and whether it was "{n+}" (non-synchronising, RFC 7888);
 * 0 when it does not; -1 when the announcement is malformed (no digits,
 * more than 20 digits, overflow) with a reason in *error_r.
 */
int imap_parse_literal_suffix(const char *line, size_t len, uint64_t *size_r, bool *nonsync_r,
                              const char **error_r);

/* tag: 1*<any ASTRING-CHAR except "+">. */
bool imap_parse_tag(struct imap_parser *p, const char **tag_r);
/* Exactly one SP. */
bool imap_parse_sp(struct imap_parser *p);
/* An atom (ATOM-CHAR+): command names, flags without '\', search keys. */
bool imap_parse_atom(struct imap_parser *p, const char **atom_r);
/* An atom that may also hold the characters in extra (e.g. "[]<>." for
 * fetch attributes like BODY.PEEK, or "%*" for LIST patterns). Stops at SP,
 * '(', ')', line end and at any character not allowed. */
bool imap_parse_atom_ext(struct imap_parser *p, const char *extra, const char **atom_r);
/* A flag: "\" atom (system flag, or "\*" when allow_star) or a keyword atom. */
bool imap_parse_flag(struct imap_parser *p, bool allow_star, const char **flag_r);
/* number (32-bit unsigned, RFC 3501) and nz-number. */
bool imap_parse_number(struct imap_parser *p, uint32_t *n_r);
bool imap_parse_nz_number(struct imap_parser *p, uint32_t *n_r);
/* A 63-bit number (mod-sequence values, RFC 7162). */
bool imap_parse_number64(struct imap_parser *p, uint64_t *n_r);
/* string = quoted / literal. */
bool imap_parse_string(struct imap_parser *p, struct imap_str *s_r);
/* literal8 = "~{" number ["+"] "}" CRLF *OCTET (RFC 3516, RFC 6855 APPEND UTF8). */
bool imap_parse_literal8(struct imap_parser *p, struct imap_str *s_r);
/* astring = 1*ASTRING-CHAR / string. */
bool imap_parse_astring(struct imap_parser *p, struct imap_str *s_r);
/* nstring = string / NIL (s_r->data == NULL for NIL). */
bool imap_parse_nstring(struct imap_parser *p, struct imap_str *s_r);
/* list-mailbox = 1*list-char / string (list-char adds '%' '*' ']'). */
bool imap_parse_list_mailbox(struct imap_parser *p, struct imap_str *s_r);
/* date-time = DQUOTE "dd-Mon-yyyy hh:mm:ss +zzzz" DQUOTE, as a UTC time_t. */
bool imap_parse_date_time(struct imap_parser *p, time_t *t_r);
/* date = "d-Mon-yyyy" with or without quotes (SEARCH): midnight UTC of that day. */
bool imap_parse_date(struct imap_parser *p, time_t *t_r);
/* sequence-set (or "$"); ranges normalised so lo <= hi, '*' = IMAP_SEQ_STAR. */
bool imap_parse_seqset(struct imap_parser *p, struct imap_seqset *set_r);

/* '(' and ')': list_begin counts nesting and fails beyond max_depth. */
bool imap_parse_list_begin(struct imap_parser *p);
bool imap_parse_list_end(struct imap_parser *p);
/* True (consuming nothing) if the next byte is c. */
bool imap_parse_peek(const struct imap_parser *p, char c);
/* True (consuming nothing) at the line end that closes the command. */
bool imap_parse_at_eol(const struct imap_parser *p);
/* The end of the command: CRLF or LF and nothing after it; no open '('. */
bool imap_parse_eol(struct imap_parser *p);
/* Record an error (first one sticks) and return false: for callers' checks. */
bool imap_parse_fail(struct imap_parser *p, const char *why);

/*
 * LIST wildcard match (RFC 3501 §6.3.8): '*' matches anything, '%' anything
 * but delim. One-row dynamic programming: O(len(pattern) * len(name)) time
 * whatever the pattern ("%%%%..." cannot cost exponential time); the caller
 * bounds the lengths. Case-sensitive (INBOX is the caller's business).
 */
bool imap_list_match(const char *pattern, const char *name, char delim);
/* True if s holds no NUL byte (usable as a C string). */
bool imap_str_is_text(const struct imap_str *s);
/* ASCII case-insensitive equality of an atom with a keyword. */
bool imap_atom_is(const char *atom, const char *keyword);

#endif
