/* smtp_parse - SMTP command and reply lines; see smtp_parse.h. */
#include "smtp_parse.h"

#include <string.h>
#include <strings.h>

#include "mymalloc.h"

static const char *const verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN", [SMTP_VERB_HELO] = "HELO",         [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_MAIL] = "MAIL",       [SMTP_VERB_RCPT] = "RCPT",         [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_BDAT] = "BDAT",       [SMTP_VERB_RSET] = "RSET",         [SMTP_VERB_NOOP] = "NOOP",
    [SMTP_VERB_VRFY] = "VRFY",       [SMTP_VERB_EXPN] = "EXPN",         [SMTP_VERB_HELP] = "HELP",
    [SMTP_VERB_QUIT] = "QUIT",       [SMTP_VERB_STARTTLS] = "STARTTLS", [SMTP_VERB_AUTH] = "AUTH",
    [SMTP_VERB_ETRN] = "ETRN",
};

static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static unsigned char to_upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

const char *smtp_verb_name(enum smtp_verb verb)
{
    if ((int)verb < 0 || verb >= SMTP_VERB_COUNT)
        return "UNKNOWN";
    return verb_names[verb];
}

enum smtp_verb smtp_verb_lookup(const char *name, size_t len)
{
    for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
        const char *n = verb_names[v];
        if (strlen(n) == len && strncasecmp(n, name, len) == 0)
            return (enum smtp_verb)v;
    }
    return SMTP_VERB_UNKNOWN;
}

void smtp_cmd_init(struct smtp_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    strbuf_init(&cmd->store, 256);
    cmd->arg = "";
}

static void smtp_cmd_clear(struct smtp_cmd *cmd)
{
    if (cmd->has_path)
        address_release(&cmd->path);
    memset(&cmd->path, 0, sizeof(cmd->path));
    cmd->has_path = false;
    cmd->verb = SMTP_VERB_UNKNOWN;
    cmd->verb_text[0] = '\0';
    cmd->arg = "";
    cmd->nparams = 0;
    strbuf_reset(&cmd->store);
}

void smtp_cmd_release(struct smtp_cmd *cmd)
{
    smtp_cmd_clear(cmd);
    strbuf_release(&cmd->store);
}

const struct smtp_param *smtp_cmd_param(const struct smtp_cmd *cmd, const char *key)
{
    for (size_t i = 0; i < cmd->nparams; i++)
        if (strcmp(cmd->params[i].key, key) == 0)
            return &cmd->params[i];
    return NULL;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool param_key_valid(const char *k, size_t len)
{
    if (len == 0 || !(is_alpha((unsigned char)k[0]) || is_digit((unsigned char)k[0])))
        return false;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-')
            return false;
    }
    return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under SMTPUTF8 (RFC 6531 §3.3). */
static bool param_value_valid(const char *v, size_t len, unsigned flags)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c >= 0x80) {
            if (!(flags & SMTP_PARSE_UTF8))
                return false;
            continue;
        }
        if (c < 33 || c > 126 || c == '=')
            return false;
    }
    return true;
}

/* Parse " KEY[=VALUE]..." in place (s is inside cmd->store, NUL-terminated). */
static enum smtp_parse_result parse_params(struct smtp_cmd *cmd, char *s, unsigned flags,
                                           const char **error_r)
{
    if (*s != '\0' && *s != ' ') {
        *error_r = "parameters must be separated by a space";
        return SMTP_PARSE_SYNTAX;
    }
    for (;;) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            return SMTP_PARSE_OK;
        char *tok = s;
        while (*s && *s != ' ')
            s++;
        char *end = s;
        bool more = *s == ' ';
        char *eq = memchr(tok, '=', (size_t)(end - tok));
        size_t klen = eq ? (size_t)(eq - tok) : (size_t)(end - tok);
        if (!param_key_valid(tok, klen)) {
            *error_r = "bad parameter keyword";
            return SMTP_PARSE_SYNTAX;
        }
        if (eq && !param_value_valid(eq + 1, (size_t)(end - eq - 1), flags)) {
            *error_r = "bad parameter value";
            return SMTP_PARSE_SYNTAX;
        }
        if (cmd->nparams >= SMTP_PARAM_MAX) {
            *error_r = "too many parameters";
            return SMTP_PARSE_SYNTAX;
        }
        for (size_t i = 0; i < klen; i++)
            tok[i] = (char)to_upper((unsigned char)tok[i]);
        if (eq)
            *eq = '\0';
        *end = '\0';
        if (smtp_cmd_param(cmd, tok) != NULL) {
            *error_r = "duplicate parameter";
            return SMTP_PARSE_SYNTAX;
        }
        cmd->params[cmd->nparams].key = tok;
        cmd->params[cmd->nparams].value = eq ? eq + 1 : NULL;
        cmd->nparams++;
        if (!more)
            return SMTP_PARSE_OK;
        s = end + 1;
    }
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static enum smtp_parse_result parse_path_cmd(struct smtp_cmd *cmd, const char *prefix,
                                             unsigned aflags, unsigned flags, const char **error_r)
{
    char *a = cmd->store.data + (cmd->arg - cmd->store.data);
    size_t plen = strlen(prefix);
    if (strncasecmp(a, prefix, plen) != 0) {
        *error_r = cmd->verb == SMTP_VERB_MAIL ? "expected MAIL FROM:<address>"
                                               : "expected RCPT TO:<address>";
        return SMTP_PARSE_SYNTAX;
    }
    a += plen;
    /* XXX: RFC 5321 allows no space here, but many clients send one. */
    while (*a == ' ')
        a++;
    if (*a != '<') {
        *error_r = "address must be in angle brackets";
        return SMTP_PARSE_SYNTAX;
    }
    size_t rest = strlen(a);
    size_t consumed = 0;
    const char *aerr = NULL;
    if (flags & SMTP_PARSE_UTF8)
        aflags |= ADDRESS_UTF8;
    if (!address_parse_path(a, rest, aflags, &cmd->path, &consumed, &aerr)) {
        *error_r = aerr ? aerr : "bad address";
        return SMTP_PARSE_ADDRESS;
    }
    cmd->has_path = true;
    if (consumed == 0 || consumed > rest) {
        *error_r = "bad address";
        return SMTP_PARSE_ADDRESS;
    }
    if (cmd->verb == SMTP_VERB_RCPT && cmd->path.domain == NULL &&
        (cmd->path.local == NULL || strcasecmp(cmd->path.local, "postmaster") != 0)) {
        /* RFC 5321 §4.5.1: only <postmaster> may come without a domain. */
        *error_r = "recipient address must have a domain";
        return SMTP_PARSE_ADDRESS;
    }
    if (cmd->verb == SMTP_VERB_MAIL && cmd->path.local != NULL && cmd->path.domain == NULL) {
        *error_r = "sender address must have a domain";
        return SMTP_PARSE_ADDRESS;
    }
    return parse_params(cmd, a + consumed, flags, error_r);
}

enum smtp_parse_result smtp_parse_command(const char *line, size_t len, unsigned flags,
                                          struct smtp_cmd *cmd, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    *error_r = NULL;
    smtp_cmd_clear(cmd);
    if (len > SMTP_PARSE_LINE_MAX) {
        *error_r = "line too long";
        return SMTP_PARSE_SYNTAX;
    }
    /* RFC 5321 §2.3.8: no bare CR/LF; we also refuse NUL and other controls. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) {
            *error_r = "control character in command";
            return SMTP_PARSE_SYNTAX;
        }
        if (c >= 0x80 && !(flags & SMTP_PARSE_UTF8)) {
            *error_r = "8-bit character in command";
            return SMTP_PARSE_SYNTAX;
        }
    }
    size_t vlen = 0;
    while (vlen < len && line[vlen] != ' ')
        vlen++;
    if (vlen == 0) {
        *error_r = "empty command";
        return SMTP_PARSE_SYNTAX;
    }
    size_t keep = vlen < SMTP_VERB_TEXT_MAX - 1 ? vlen : SMTP_VERB_TEXT_MAX - 1;
    for (size_t i = 0; i < keep; i++)
        cmd->verb_text[i] = (char)to_upper((unsigned char)line[i]);
    cmd->verb_text[keep] = '\0';
    for (size_t i = 0; i < vlen; i++)
        if (!is_alpha((unsigned char)line[i]))
            return SMTP_PARSE_UNKNOWN;
    cmd->verb = smtp_verb_lookup(line, vlen);
    if (cmd->verb == SMTP_VERB_UNKNOWN)
        return SMTP_PARSE_UNKNOWN;

    /* The argument: after one space; trailing spaces dropped (lenient). */
    size_t astart = vlen < len ? vlen + 1 : len;
    size_t aend = len;
    while (aend > astart && line[aend - 1] == ' ')
        aend--;
    strbuf_reset(&cmd->store);
    strbuf_append(&cmd->store, line + astart, aend - astart);
    cmd->arg = cmd->store.data;

    switch (cmd->verb) {
    case SMTP_VERB_MAIL:
        return parse_path_cmd(cmd, "FROM:", ADDRESS_NULL_OK, flags, error_r);
    case SMTP_VERB_RCPT:
        return parse_path_cmd(cmd, "TO:", ADDRESS_NO_DOMAIN_OK, flags, error_r);
    default:
        return SMTP_PARSE_OK;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool smtp_xtext_decode(const char *s, size_t len, struct strbuf *out)
{
    strbuf_reset(out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (len - i < 3)
                return false;
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            strbuf_putc(out, hi * 16 + lo);
            i += 2;
        } else if (c >= 33 && c <= 126 && c != '=') {
            strbuf_putc(out, c);
        } else {
            return false;
        }
    }
    return true;
}

void smtp_xtext_encode(const void *data, size_t len, struct strbuf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (p[i] >= 33 && p[i] <= 126 && p[i] != '+' && p[i] != '=') {
            strbuf_putc(out, p[i]);
        } else {
            strbuf_putc(out, '+');
            strbuf_putc(out, hex[p[i] >> 4]);
            strbuf_putc(out, hex[p[i] & 15]);
        }
    }
}

bool smtp_parse_reply(const char *line, size_t len, int *code_r, bool *last_r, const char **text_r,
                      size_t *text_len_r)
{
    if (len < 3 || len > SMTP_PARSE_LINE_MAX)
        return false;
    unsigned char a = (unsigned char)line[0], b = (unsigned char)line[1],
                  c = (unsigned char)line[2];
    /* RFC 5321 §4.2: first digit 2-5, second 0-5. */
    if (a < '2' || a > '5' || b < '0' || b > '5' || !is_digit(c))
        return false;
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return false;
    for (size_t i = 3; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    *code_r = (a - '0') * 100 + (b - '0') * 10 + (c - '0');
    *last_r = len == 3 || line[3] == ' ';
    *text_r = len > 4 ? line + 4 : line + len;
    *text_len_r = len > 4 ? len - 4 : 0;
    return true;
}
