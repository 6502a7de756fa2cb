/*
 * smtp_parse - SMTP command lines and reply lines (RFC 5321 §4.1).
 *
 * Used by smtpd to parse what a client sends, and by the smtp client to
 * parse what a server answers. The parsers are strict and bounded: a
 * command line is at most SMTP_PARSE_LINE_MAX bytes, carries at most
 * SMTP_PARAM_MAX ESMTP parameters, and any control character (NUL, bare
 * CR, LF, ...) inside it is a syntax error. The caller strips the line's
 * CRLF before calling.
 *
 * MAIL FROM and RCPT TO paths go through address_parse_path() (address.h).
 * As in common practice (Postfix' default), spaces between "FROM:"/"TO:"
 * and the "<" are tolerated; a path without angle brackets is not.
 * "<postmaster>" (any case) is the only RCPT path accepted without a
 * domain (RFC 5321 §4.5.1).
 *
 * ESMTP parameters are "KEY" or "KEY=VALUE" (RFC 5321 §4.1.2); keys are
 * stored uppercased, a repeated key is a syntax error. xtext (RFC 3461 §4)
 * decoding/encoding is offered for ORCPT and ENVID values.
 *
 * Ownership: struct smtp_cmd owns everything it points to; reuse it for
 * the next command (smtp_parse_command releases the previous contents) and
 * release it with smtp_cmd_release(). Error texts are static strings.
 */
#ifndef TEGAMI_SMTP_PARSE_H
#define TEGAMI_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"
#include "strbuf.h"

#define SMTP_PARAM_MAX 16         /* ESMTP parameters on one MAIL/RCPT */
#define SMTP_PARSE_LINE_MAX 65536 /* hard upper bound on any command line */
#define SMTP_VERB_TEXT_MAX 16     /* verb text kept for logs (truncated) */

enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_BDAT,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_QUIT,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
    SMTP_VERB_ETRN,
    SMTP_VERB_COUNT
};

/* Parse flags. */
#define SMTP_PARSE_UTF8 1u /* SMTPUTF8 in effect: UTF-8 allowed in paths (RFC 6531) */

struct smtp_param {
    const char *key;   /* uppercased, e.g. "SIZE" */
    const char *value; /* as sent (not xtext-decoded); NULL when no "=" */
};

struct smtp_cmd {
    enum smtp_verb verb;
    char verb_text[SMTP_VERB_TEXT_MAX]; /* uppercased verb as sent, for logs */
    const char *arg;                    /* text after the verb and its space ("" if none) */
    bool has_path;                      /* MAIL/RCPT: path parsed */
    struct address path;                /* MAIL/RCPT; path.local == NULL for "<>" */
    struct smtp_param params[SMTP_PARAM_MAX];
    size_t nparams;
    struct strbuf store; /* private: backing storage for arg/params */
};

/* Result of smtp_parse_command. */
enum smtp_parse_result {
    SMTP_PARSE_OK = 0,
    SMTP_PARSE_UNKNOWN = 1, /* well-formed line, unknown verb (502) */
    SMTP_PARSE_SYNTAX = -1, /* bad syntax (501), reason in *error_r */
    SMTP_PARSE_ADDRESS = -2 /* MAIL/RCPT path rejected (501 5.1.7 / 5.1.3), reason in *error_r */
};

void smtp_cmd_init(struct smtp_cmd *cmd);
void smtp_cmd_release(struct smtp_cmd *cmd);

/*
 * Parse one command line (len bytes, no CRLF). Fills cmd (previous contents
 * released). For MAIL and RCPT the path and parameters are parsed; for
 * every other verb only the argument text is kept (cmd->arg).
 */
enum smtp_parse_result smtp_parse_command(const char *line, size_t len, unsigned flags,
                                          struct smtp_cmd *cmd, const char **error_r);

/* The verb for a name (case-insensitive), SMTP_VERB_UNKNOWN if none. */
enum smtp_verb smtp_verb_lookup(const char *name, size_t len);
/* "MAIL", "RCPT", ... for a verb ("UNKNOWN" for SMTP_VERB_UNKNOWN). */
const char *smtp_verb_name(enum smtp_verb verb);

/* The parameter named key (uppercase), or NULL. */
const struct smtp_param *smtp_cmd_param(const struct smtp_cmd *cmd, const char *key);

/*
 * Decode xtext (RFC 3461 §4) into out (reset first). false when malformed
 * ("+" not followed by two uppercase hex digits, or chars outside xchar).
 */
bool smtp_xtext_decode(const char *s, size_t len, struct strbuf *out);
/* Encode bytes as xtext, appending to out. */
void smtp_xtext_encode(const void *data, size_t len, struct strbuf *out);

/*
 * Parse one reply line (len bytes, no CRLF): "250-text" or "250 text" or
 * "250". *code_r is the 3-digit code, *last_r false for a continuation line
 * ("-"), *text_r points into line (may be empty). false when malformed.
 */
bool smtp_parse_reply(const char *line, size_t len, int *code_r, bool *last_r, const char **text_r,
                      size_t *text_len_r);

#endif
