/*
 * esmtp_params - the meaning of MAIL FROM / RCPT TO parameters and of the
 * BDAT argument (RFC 1870 SIZE, RFC 6152/3030 BODY, RFC 6531 SMTPUTF8,
 * RFC 3461 DSN: RET, ENVID, NOTIFY, ORCPT, RFC 4954 AUTH, RFC 3030 BDAT).
 *
 * smtp_parse.c splits a command into KEY[=VALUE] pairs (syntax, duplicates,
 * count); this module checks each value and decodes it into a fixed-size
 * struct, so smtpd's check.c can decide the reply and session.c can keep
 * the decoded envelope without parsing twice. Pure functions, no I/O; the
 * structs own no memory.
 *
 * Results: ESMTP_OK, ESMTP_SYNTAX (reply 501: a known keyword with a bad
 * value) or ESMTP_UNSUPPORTED (reply 555: a keyword we do not implement).
 * On error *key_r names the offending keyword and *error_r says why
 * (static text).
 *
 * Bounds: ENVID at most ESMTP_ENVID_MAX characters as sent (RFC 3461 §4.4),
 * ORCPT at most ESMTP_ORCPT_MAX (§4.2); decoded values must be printable
 * (no controls: they end up in DSN header fields), ASCII unless the
 * transaction is SMTPUTF8 (then valid UTF-8, RFC 6533).
 */
#ifndef TEGAMI_ESMTP_PARAMS_H
#define TEGAMI_ESMTP_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp_parse.h"

#define ESMTP_ENVID_MAX 100 /* RFC 3461 §4.4 */
#define ESMTP_ORCPT_MAX 500 /* RFC 3461 §4.2 */
#define ESMTP_ADDR_TYPE_MAX 32

/* NOTIFY bits: the same values as queue_file.h's QF_NOTIFY_*. */
#define ESMTP_NOTIFY_NEVER 1u
#define ESMTP_NOTIFY_SUCCESS 2u
#define ESMTP_NOTIFY_FAILURE 4u
#define ESMTP_NOTIFY_DELAY 8u

enum esmtp_result {
    ESMTP_OK = 0,
    ESMTP_SYNTAX = 501,
    ESMTP_UNSUPPORTED = 555,
};

enum esmtp_body {
    ESMTP_BODY_NONE = 0,
    ESMTP_BODY_7BIT,
    ESMTP_BODY_8BITMIME,
    ESMTP_BODY_BINARYMIME, /* RFC 3030 §3: only with BDAT */
};

/* RET values: the same as qf_message.dsn_ret. */
#define ESMTP_RET_NONE 0
#define ESMTP_RET_FULL 1
#define ESMTP_RET_HDRS 2

/* Which extensions the server offers in this session (unknown ones are 555). */
#define ESMTP_ALLOW_AUTH 1u /* AUTH= on MAIL (RFC 4954 §5) */

struct esmtp_mail {
    bool has_size;
    unsigned long long size; /* SIZE=; saturates at ULLONG_MAX */
    enum esmtp_body body;
    bool smtputf8;
    int ret;                         /* ESMTP_RET_* */
    char envid[ESMTP_ENVID_MAX + 1]; /* xtext-decoded ENVID, "" if none */
    bool auth;                       /* AUTH= given (ignored: never trusted) */
};

struct esmtp_rcpt {
    unsigned notify; /* ESMTP_NOTIFY_* bits, 0 when not given */
    /* "addr-type;address": xtext decoded (RFC 3461 §4.2), "" if none */
    char orcpt[ESMTP_ADDR_TYPE_MAX + 1 + ESMTP_ORCPT_MAX + 1];
};

/* Check and decode MAIL FROM parameters. allow: ESMTP_ALLOW_* bits. */
enum esmtp_result esmtp_mail_parse(const struct smtp_param *params, size_t n, unsigned allow,
                                   struct esmtp_mail *out, const char **key_r,
                                   const char **error_r);

/* Check and decode RCPT TO parameters; smtputf8: the transaction is SMTPUTF8. */
enum esmtp_result esmtp_rcpt_parse(const struct smtp_param *params, size_t n, bool smtputf8,
                                   struct esmtp_rcpt *out, const char **key_r,
                                   const char **error_r);

/*
 * Parse BDAT's argument "chunk-size [LAST]" (RFC 3030 §2: 1*DIGIT, at most
 * 20 digits, no sign, one space, LAST case-insensitive). false when
 * malformed (the caller cannot know how many bytes follow).
 */
bool esmtp_bdat_parse(const char *arg, unsigned long long *size_r, bool *last_r,
                      const char **error_r);

/* True if s (NUL-terminated) has a byte >= 0x80. */
bool esmtp_non_ascii(const char *s);

#endif
