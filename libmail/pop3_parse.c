/* pop3_parse - strict POP3 command-line parser (see pop3_parse.h). */
#include "pop3_parse.h"

#include <stdbool.h>
#include <string.h>

enum arg_kind {
    ARGS_NONE,    /* no arguments */
    ARGS_OPT_NUM, /* [n] */
    ARGS_NUM,     /* n */
    ARGS_TWO_NUM, /* n m */
    ARGS_WORD,    /* one token */
    ARGS_REST,    /* the rest of the line, spaces included, not empty */
    ARGS_AUTH,    /* mechanism [initial-response] */
};

static const struct verb_entry {
    const char *name;
    enum pop3_verb verb;
    enum arg_kind args;
} verbs[] = {
    {"USER", POP3_USER, ARGS_WORD},    {"PASS", POP3_PASS, ARGS_REST},
    {"QUIT", POP3_QUIT, ARGS_NONE},    {"STAT", POP3_STAT, ARGS_NONE},
    {"LIST", POP3_LIST, ARGS_OPT_NUM}, {"RETR", POP3_RETR, ARGS_NUM},
    {"DELE", POP3_DELE, ARGS_NUM},     {"NOOP", POP3_NOOP, ARGS_NONE},
    {"RSET", POP3_RSET, ARGS_NONE},    {"TOP", POP3_TOP, ARGS_TWO_NUM},
    {"UIDL", POP3_UIDL, ARGS_OPT_NUM}, {"CAPA", POP3_CAPA, ARGS_NONE},
    {"STLS", POP3_STLS, ARGS_NONE},    {"AUTH", POP3_AUTH, ARGS_AUTH},
};

static enum pop3_parse_result fail(enum pop3_parse_result r, const char *why, const char **error_r)
{
    *error_r = why;
    return r;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char to_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Plain decimal digits, 1..POP3_NUMBER_DIGITS of them (no sign, no space). */
static bool parse_number(const char *p, size_t len, unsigned long *out)
{
    if (len == 0 || len > POP3_NUMBER_DIGITS)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    *out = v;
    return true;
}

enum pop3_parse_result pop3_parse_command(const char *line, size_t len, struct pop3_command *cmd,
                                          const char **error_r)
{
    /* Not a full memset: arg is large and only its prefix matters. */
    cmd->verb = POP3_NOOP;
    cmd->name = NULL;
    cmd->nargs = 0;
    cmd->num[0] = cmd->num[1] = 0;
    cmd->arg[0] = '\0';
    cmd->arg_len = 0;

    if (len > POP3_LINE_MAX)
        return fail(POP3_PARSE_TOO_LONG, "line too long", error_r);
    /* The line end: CRLF, or a bare LF (lenient, like most servers). A CR
     * counts as part of the line end only right before the LF. */
    if (len > 0 && line[len - 1] == '\n') {
        len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
    }
    if (len == 0)
        return fail(POP3_PARSE_EMPTY, "empty command", error_r);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            return fail(POP3_PARSE_BAD_CHAR, "invalid character in command", error_r);
    }

    /* Keyword: up to the first SP. */
    const char *sp = memchr(line, ' ', len);
    size_t klen = sp ? (size_t)(sp - line) : len;
    for (size_t i = 0; i < klen; i++) {
        if ((unsigned char)line[i] >= 0x80)
            return fail(POP3_PARSE_BAD_CHAR, "invalid character in command", error_r);
    }
    if (klen < 3 || klen > 4)
        return fail(POP3_PARSE_UNKNOWN, "unknown command", error_r);
    char kw[5];
    for (size_t i = 0; i < klen; i++) {
        if (!is_alpha((unsigned char)line[i]))
            return fail(POP3_PARSE_UNKNOWN, "unknown command", error_r);
        kw[i] = to_upper(line[i]);
    }
    kw[klen] = '\0';
    const struct verb_entry *ve = NULL;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verbs[i].name, kw) == 0) {
            ve = &verbs[i];
            break;
        }
    }
    if (ve == NULL)
        return fail(POP3_PARSE_UNKNOWN, "unknown command", error_r);
    cmd->verb = ve->verb;
    cmd->name = ve->name;

    /* Arguments: after exactly one SP; "STAT " (empty argument) is a syntax error. */
    const char *rest = sp ? sp + 1 : line + len;
    size_t rlen = sp ? len - klen - 1 : 0;
    if (sp && rlen == 0)
        return fail(POP3_PARSE_SYNTAX, "empty argument", error_r);

    if (ve->args == ARGS_REST) {
        if (rlen == 0)
            return fail(POP3_PARSE_SYNTAX, "missing argument", error_r);
        memcpy(cmd->arg, rest, rlen);
        cmd->arg[rlen] = '\0';
        cmd->arg_len = rlen;
        cmd->nargs = 1;
        return POP3_PARSE_OK;
    }

    /* Split into at most two SP-separated, non-empty tokens. */
    const char *tok[2] = {NULL, NULL};
    size_t tlen[2] = {0, 0};
    int ntok = 0;
    size_t pos = 0;
    while (pos < rlen) {
        if (ntok == 2)
            return fail(POP3_PARSE_SYNTAX, "too many arguments", error_r);
        const char *next = memchr(rest + pos, ' ', rlen - pos);
        size_t n = next ? (size_t)(next - (rest + pos)) : rlen - pos;
        if (n == 0)
            return fail(POP3_PARSE_SYNTAX, "empty argument", error_r);
        tok[ntok] = rest + pos;
        tlen[ntok] = n;
        ntok++;
        pos += n;
        if (next) {
            pos++; /* the SP */
            if (pos == rlen)
                return fail(POP3_PARSE_SYNTAX, "empty argument", error_r);
        }
    }
    cmd->nargs = ntok;

    switch (ve->args) {
    case ARGS_NONE:
        if (ntok != 0)
            return fail(POP3_PARSE_SYNTAX, "no arguments allowed", error_r);
        break;
    case ARGS_OPT_NUM:
        if (ntok > 1)
            return fail(POP3_PARSE_SYNTAX, "too many arguments", error_r);
        if (ntok == 1 && !parse_number(tok[0], tlen[0], &cmd->num[0]))
            return fail(POP3_PARSE_SYNTAX, "invalid message number", error_r);
        break;
    case ARGS_NUM:
        if (ntok != 1)
            return fail(POP3_PARSE_SYNTAX, "message number required", error_r);
        if (!parse_number(tok[0], tlen[0], &cmd->num[0]))
            return fail(POP3_PARSE_SYNTAX, "invalid message number", error_r);
        break;
    case ARGS_TWO_NUM:
        if (ntok != 2)
            return fail(POP3_PARSE_SYNTAX, "message number and line count required", error_r);
        if (!parse_number(tok[0], tlen[0], &cmd->num[0]))
            return fail(POP3_PARSE_SYNTAX, "invalid message number", error_r);
        if (!parse_number(tok[1], tlen[1], &cmd->num[1]))
            return fail(POP3_PARSE_SYNTAX, "invalid line count", error_r);
        break;
    case ARGS_WORD:
        if (ntok != 1)
            return fail(POP3_PARSE_SYNTAX, "exactly one argument required", error_r);
        memcpy(cmd->arg, tok[0], tlen[0]);
        cmd->arg[tlen[0]] = '\0';
        cmd->arg_len = tlen[0];
        break;
    case ARGS_AUTH:
        /* AUTH alone lists mechanisms (RFC 5034 §4 leaves it to CAPA, but
         * clients send it); otherwise mechanism [SP initial-response]. */
        if (ntok > 0) {
            memcpy(cmd->arg, rest, rlen);
            cmd->arg[rlen] = '\0';
            cmd->arg_len = rlen;
        }
        break;
    case ARGS_REST:
        break; /* handled above */
    }
    return POP3_PARSE_OK;
}

const char *pop3_parse_result_name(enum pop3_parse_result r)
{
    switch (r) {
    case POP3_PARSE_OK:
        return "ok";
    case POP3_PARSE_EMPTY:
        return "empty";
    case POP3_PARSE_TOO_LONG:
        return "too-long";
    case POP3_PARSE_BAD_CHAR:
        return "bad-char";
    case POP3_PARSE_UNKNOWN:
        return "unknown";
    case POP3_PARSE_SYNTAX:
        return "syntax";
    }
    return "?";
}
