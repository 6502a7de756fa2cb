/*
 * pop3_parse - parse one POP3 command line (RFC 1939, RFC 2449).
 *
 * Used by pop3d (and its fuzz target / unit test). The parser is pure: it
 * takes the bytes of one line as read from the peer (ending in CRLF or a
 * bare LF, or without line end), checks them strictly and fills a
 * caller-owned struct pop3_command. Nothing is allocated; arguments are
 * copied into fixed buffers inside the struct.
 *
 * Strict means: the keyword is 3-4 letters (case-insensitive), arguments are
 * separated by exactly one SP, no empty arguments, no NUL, no CR except
 * directly before the final LF, no other control characters (PASS may carry
 * spaces: RFC 1939 §7 lets the rest of the line be the password). Numbers are
 * plain decimal digits (no sign, at most POP3_NUMBER_DIGITS digits). The
 * number of arguments must match the keyword. A failed parse returns a
 * pop3_parse_result other than POP3_PARSE_OK with a short reason for the
 * "-ERR" reply in *error_r (static text).
 */
#ifndef TEGAMI_POP3_PARSE_H
#define TEGAMI_POP3_PARSE_H

#include <stddef.h>

/* Hard upper bound of a command line, line end included (RFC 2449 says 255; we allow more). */
#define POP3_LINE_MAX 1024
/* Longest argument text kept (PASS may use the whole line). */
#define POP3_ARG_MAX POP3_LINE_MAX
/* Message numbers and line counts: at most this many digits. */
#define POP3_NUMBER_DIGITS 9

enum pop3_verb {
    POP3_USER,
    POP3_PASS,
    POP3_QUIT,
    POP3_STAT,
    POP3_LIST,
    POP3_RETR,
    POP3_DELE,
    POP3_NOOP,
    POP3_RSET,
    POP3_TOP,
    POP3_UIDL,
    POP3_CAPA,
    POP3_STLS, /* RFC 2595: recognised so the TLS work only adds the action */
    POP3_AUTH, /* RFC 5034: recognised so the SASL work only adds the action */
};

enum pop3_parse_result {
    POP3_PARSE_OK = 0,
    POP3_PARSE_EMPTY,    /* nothing but the line end */
    POP3_PARSE_TOO_LONG, /* longer than POP3_LINE_MAX */
    POP3_PARSE_BAD_CHAR, /* NUL, stray CR, control character, 8-bit byte in keyword */
    POP3_PARSE_UNKNOWN,  /* well-formed but unknown keyword */
    POP3_PARSE_SYNTAX,   /* wrong argument count or malformed argument */
};

struct pop3_command {
    enum pop3_verb verb;
    const char *name; /* canonical upper-case keyword (static) */
    int nargs;        /* arguments present (0..2) */
    /* Numeric arguments (LIST, UIDL, RETR, DELE: num[0]; TOP: num[0], num[1]). */
    unsigned long num[2];
    /* Text argument: USER name, PASS password, AUTH mechanism and the rest. */
    char arg[POP3_ARG_MAX + 1];
    size_t arg_len;
};

/*
 * Parse line[0..len). Returns POP3_PARSE_OK and fills cmd, or another result
 * with *error_r set to a reason suitable after "-ERR ".
 */
enum pop3_parse_result pop3_parse_command(const char *line, size_t len, struct pop3_command *cmd,
                                          const char **error_r);

/* Name of a parse result for logs ("too-long", "syntax" ...). */
const char *pop3_parse_result_name(enum pop3_parse_result r);

#endif
