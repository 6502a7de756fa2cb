/* imap_parse - the IMAP command tokenizer (see imap_parse.h). */
#include "imap_parse.h"

#include <string.h>
#include <strings.h>

#include "msg.h"
#include "mymalloc.h"

/* Each handed-out string is one block; a command holds few of them. */
struct imap_arena_block {
    struct imap_arena_block *next;
    size_t len;
    char data[];
};

static void *arena_alloc(struct imap_parser *p, size_t len)
{
    struct imap_arena_block *b = mymalloc(sizeof(*b) + len + 1);
    b->next = p->arena;
    b->len = len;
    b->data[len] = '\0';
    p->arena = b;
    return b->data;
}

static char *arena_dup(struct imap_parser *p, const char *s, size_t len)
{
    char *d = arena_alloc(p, len);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void imap_parser_init(struct imap_parser *p, const char *buf, size_t len, unsigned max_depth)
{
    memset(p, 0, sizeof(*p));
    p->buf = buf;
    p->len = len;
    p->max_depth = max_depth ? max_depth : IMAP_PARSE_DEPTH_DEFAULT;
}

void imap_parser_release(struct imap_parser *p)
{
    while (p->arena) {
        struct imap_arena_block *b = p->arena;
        p->arena = b->next;
        myfree(b);
    }
}

bool imap_parse_fail(struct imap_parser *p, const char *why)
{
    if (p->error == NULL)
        p->error = why;
    return false;
}

/* RFC 3501 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
 * quoted-specials / resp-specials. */
static bool is_atom_char(unsigned char c)
{
    if (c <= 0x1f || c >= 0x7f)
        return false;
    return strchr("(){ %*\"\\]", c) == NULL;
}

static bool is_astring_char(unsigned char c)
{
    return is_atom_char(c) || c == ']';
}

static bool at_end(const struct imap_parser *p)
{
    return p->pos >= p->len;
}

static int cur(const struct imap_parser *p)
{
    return at_end(p) ? -1 : (unsigned char)p->buf[p->pos];
}

bool imap_parse_peek(const struct imap_parser *p, char c)
{
    return cur(p) == (unsigned char)c;
}

bool imap_parse_at_eol(const struct imap_parser *p)
{
    int c = cur(p);
    if (c == '\n')
        return true;
    return c == '\r' && p->pos + 1 < p->len && p->buf[p->pos + 1] == '\n';
}

bool imap_parse_eol(struct imap_parser *p)
{
    if (p->error)
        return false;
    if (p->depth > 0)
        return imap_parse_fail(p, "Unbalanced parentheses");
    if (cur(p) == '\r')
        p->pos++;
    if (cur(p) != '\n')
        return imap_parse_fail(p, "Unexpected characters at end of command");
    p->pos++;
    if (!at_end(p))
        return imap_parse_fail(p, "Unexpected data after end of command");
    return true;
}

bool imap_parse_sp(struct imap_parser *p)
{
    if (p->error)
        return false;
    if (cur(p) != ' ')
        return imap_parse_fail(p, at_end(p) || imap_parse_at_eol(p) ? "Missing argument"
                                                                    : "Expected a space");
    p->pos++;
    return true;
}

/* A run of chars accepted by ok(c) (and in extra), at least one. */
static bool parse_chars(struct imap_parser *p, bool (*ok)(unsigned char), const char *extra,
                        const char **out_r, const char *what)
{
    if (p->error)
        return false;
    size_t start = p->pos;
    while (!at_end(p)) {
        unsigned char c = (unsigned char)p->buf[p->pos];
        if (!(ok(c) || (extra && c != '\0' && strchr(extra, c) != NULL)))
            break;
        p->pos++;
    }
    if (p->pos == start) {
        int c = cur(p);
        if (c >= 0x80)
            return imap_parse_fail(p, "8-bit characters are not allowed here");
        if (c < 0 || imap_parse_at_eol(p))
            return imap_parse_fail(p, "Missing argument");
        return imap_parse_fail(p, what);
    }
    int c = cur(p);
    if (c >= 0x80) {
        p->pos = start;
        return imap_parse_fail(p, "8-bit characters are not allowed here");
    }
    *out_r = arena_dup(p, p->buf + start, p->pos - start);
    return true;
}

static bool is_tag_char(unsigned char c)
{
    return is_astring_char(c) && c != '+';
}

bool imap_parse_tag(struct imap_parser *p, const char **tag_r)
{
    if (!parse_chars(p, is_tag_char, NULL, tag_r, "Invalid tag"))
        return false;
    int c = cur(p);
    if (c != ' ' && c != '\r' && c != '\n' && c != -1) {
        p->error = NULL;
        return imap_parse_fail(p, "Invalid character in tag");
    }
    return true;
}

bool imap_parse_atom(struct imap_parser *p, const char **atom_r)
{
    return parse_chars(p, is_atom_char, NULL, atom_r, "Expected an atom");
}

bool imap_parse_atom_ext(struct imap_parser *p, const char *extra, const char **atom_r)
{
    return parse_chars(p, is_atom_char, extra, atom_r, "Expected an atom");
}

bool imap_parse_flag(struct imap_parser *p, bool allow_star, const char **flag_r)
{
    if (p->error)
        return false;
    if (cur(p) == '\\') {
        size_t start = p->pos++;
        if (allow_star && cur(p) == '*') {
            p->pos++;
            *flag_r = arena_dup(p, "\\*", 2);
            return true;
        }
        const char *a;
        if (!parse_chars(p, is_atom_char, NULL, &a, "Invalid flag")) {
            p->pos = start;
            return false;
        }
        char *f = arena_alloc(p, strlen(a) + 1);
        f[0] = '\\';
        memcpy(f + 1, a, strlen(a) + 1);
        *flag_r = f;
        return true;
    }
    return parse_chars(p, is_atom_char, NULL, flag_r, "Invalid flag");
}

static bool parse_digits(struct imap_parser *p, uint64_t max, uint64_t *n_r)
{
    if (p->error)
        return false;
    uint64_t n = 0;
    size_t start = p->pos;
    while (!at_end(p) && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
        unsigned d = (unsigned)(p->buf[p->pos] - '0');
        if (n > (max - d) / 10) {
            p->pos = start;
            return imap_parse_fail(p, "Number too big");
        }
        n = n * 10 + d;
        p->pos++;
    }
    if (p->pos == start)
        return imap_parse_fail(p, at_end(p) || imap_parse_at_eol(p) ? "Missing argument"
                                                                    : "Expected a number");
    if (is_atom_char((unsigned char)cur(p)) || cur(p) >= 0x80) {
        p->pos = start;
        return imap_parse_fail(p, "Expected a number");
    }
    *n_r = n;
    return true;
}

bool imap_parse_number(struct imap_parser *p, uint32_t *n_r)
{
    uint64_t n;
    if (!parse_digits(p, UINT32_MAX, &n))
        return false;
    *n_r = (uint32_t)n;
    return true;
}

bool imap_parse_nz_number(struct imap_parser *p, uint32_t *n_r)
{
    size_t start = p->pos;
    if (!imap_parse_number(p, n_r))
        return false;
    if (*n_r == 0) {
        p->pos = start;
        return imap_parse_fail(p, "Number must not be zero");
    }
    return true;
}

bool imap_parse_number64(struct imap_parser *p, uint64_t *n_r)
{
    return parse_digits(p, (uint64_t)INT64_MAX, n_r);
}

static bool parse_quoted(struct imap_parser *p, struct imap_str *s_r)
{
    size_t start = p->pos;
    p->pos++; /* the opening quote */
    /* Find the closing quote first, so the copy is sized to the string, not to
     * the rest of the command (many short strings must not cost O(n^2)). */
    size_t end = p->pos;
    while (end < p->len && p->buf[end] != '"' && p->buf[end] != '\r' && p->buf[end] != '\n') {
        if (p->buf[end] == '\\' && end + 1 < p->len)
            end++;
        end++;
    }
    char *out = arena_alloc(p, end - p->pos);
    size_t n = 0;
    for (;;) {
        int c = cur(p);
        if (c < 0 || c == '\r' || c == '\n') {
            p->pos = start;
            return imap_parse_fail(p, "Unterminated quoted string");
        }
        if (c == '\0') {
            p->pos = start;
            return imap_parse_fail(p, "NUL in quoted string");
        }
        p->pos++;
        if (c == '"')
            break;
        if (c == '\\') {
            c = cur(p);
            if (c != '"' && c != '\\') {
                p->pos = start;
                return imap_parse_fail(p, "Invalid escape in quoted string");
            }
            p->pos++;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    s_r->data = out;
    s_r->len = n;
    s_r->literal = false;
    return true;
}

/* "{" number ["+"] "}" CRLF then exactly that many bytes. */
static bool parse_literal(struct imap_parser *p, struct imap_str *s_r)
{
    size_t start = p->pos;
    p->pos++; /* '{' */
    uint64_t n = 0;
    size_t digits = 0;
    while (cur(p) >= '0' && cur(p) <= '9') {
        if (++digits > 20 || n > (UINT64_MAX - 9) / 10) {
            p->pos = start;
            return imap_parse_fail(p, "Literal size too big");
        }
        n = n * 10 + (uint64_t)(cur(p) - '0');
        p->pos++;
    }
    if (digits == 0) {
        p->pos = start;
        return imap_parse_fail(p, "Invalid literal size");
    }
    if (cur(p) == '+')
        p->pos++;
    if (cur(p) != '}') {
        p->pos = start;
        return imap_parse_fail(p, "Invalid literal announcement");
    }
    p->pos++;
    if (cur(p) == '\r')
        p->pos++;
    if (cur(p) != '\n') {
        p->pos = start;
        return imap_parse_fail(p, "Literal announcement must end the line");
    }
    p->pos++;
    if (n > p->len - p->pos) {
        p->pos = start;
        return imap_parse_fail(p, "Literal data is missing");
    }
    s_r->data = arena_dup(p, p->buf + p->pos, (size_t)n);
    s_r->len = (size_t)n;
    s_r->literal = true;
    p->pos += (size_t)n;
    return true;
}

bool imap_parse_literal8(struct imap_parser *p, struct imap_str *s_r)
{
    if (p->error)
        return false;
    if (cur(p) != '~' || p->pos + 1 >= p->len || p->buf[p->pos + 1] != '{')
        return imap_parse_fail(p, "Expected a literal8");
    size_t start = p->pos++;
    if (!parse_literal(p, s_r)) {
        p->pos = start;
        return false;
    }
    return true;
}

bool imap_parse_string(struct imap_parser *p, struct imap_str *s_r)
{
    if (p->error)
        return false;
    int c = cur(p);
    if (c == '"')
        return parse_quoted(p, s_r);
    if (c == '{')
        return parse_literal(p, s_r);
    if (c < 0 || imap_parse_at_eol(p))
        return imap_parse_fail(p, "Missing argument");
    return imap_parse_fail(p, "Expected a string");
}

bool imap_parse_astring(struct imap_parser *p, struct imap_str *s_r)
{
    if (p->error)
        return false;
    int c = cur(p);
    if (c == '"' || c == '{')
        return imap_parse_string(p, s_r);
    const char *a;
    if (!parse_chars(p, is_astring_char, NULL, &a, "Expected a string"))
        return false;
    s_r->data = a;
    s_r->len = strlen(a);
    s_r->literal = false;
    return true;
}

bool imap_parse_nstring(struct imap_parser *p, struct imap_str *s_r)
{
    if (p->error)
        return false;
    if (p->len - p->pos >= 3 && strncasecmp(p->buf + p->pos, "NIL", 3) == 0 &&
        !is_atom_char((unsigned char)(p->pos + 3 < p->len ? p->buf[p->pos + 3] : ' '))) {
        p->pos += 3;
        s_r->data = NULL;
        s_r->len = 0;
        s_r->literal = false;
        return true;
    }
    return imap_parse_string(p, s_r);
}

static bool is_list_char(unsigned char c)
{
    return is_astring_char(c) || c == '%' || c == '*';
}

bool imap_parse_list_mailbox(struct imap_parser *p, struct imap_str *s_r)
{
    if (p->error)
        return false;
    int c = cur(p);
    if (c == '"' || c == '{')
        return imap_parse_string(p, s_r);
    const char *a;
    if (!parse_chars(p, is_list_char, NULL, &a, "Expected a mailbox pattern"))
        return false;
    s_r->data = a;
    s_r->len = strlen(a);
    s_r->literal = false;
    return true;
}

static const char *const months[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static bool days_in_month_ok(unsigned y, unsigned m, unsigned d)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d < 1 || d > mdays[m - 1])
        return false;
    if (m == 2 && d == 29)
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return true;
}

/* d-Mon-yyyy at s (day 1 or 2 digits, or SP+digit when sp_day). Returns chars used or 0. */
static size_t scan_date(const char *s, size_t len, bool sp_day, unsigned *y_r, unsigned *m_r,
                        unsigned *d_r)
{
    size_t i = 0;
    unsigned d = 0;
    if (sp_day && len > 0 && s[0] == ' ')
        i = 1;
    size_t dstart = i;
    while (i < len && i - dstart < 2 && s[i] >= '0' && s[i] <= '9')
        d = d * 10 + (unsigned)(s[i++] - '0');
    if (i == dstart || i >= len || s[i] != '-')
        return 0;
    if (dstart == 1 && i - dstart != 1)
        return 0;
    i++;
    if (len - i < 4)
        return 0;
    unsigned m = 0;
    for (unsigned k = 0; k < 12; k++)
        if (strncasecmp(s + i, months[k], 3) == 0)
            m = k + 1;
    if (m == 0 || s[i + 3] != '-')
        return 0;
    i += 4;
    if (len - i < 4)
        return 0;
    unsigned y = 0;
    for (int k = 0; k < 4; k++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        y = y * 10 + (unsigned)(s[i++] - '0');
    }
    if (y < 1900 || !days_in_month_ok(y, m, d))
        return 0;
    *y_r = y;
    *m_r = m;
    *d_r = d;
    return i;
}

bool imap_parse_date_time(struct imap_parser *p, time_t *t_r)
{
    if (p->error)
        return false;
    /* "dd-Mon-yyyy hh:mm:ss +zzzz" = 26 characters inside the quotes. */
    const char *s = p->buf + p->pos;
    size_t left = p->len - p->pos;
    if (left < 28 || s[0] != '"')
        return imap_parse_fail(p, "Invalid date-time");
    unsigned y, m, d;
    size_t n = scan_date(s + 1, left - 1, true, &y, &m, &d);
    if (n != 11)
        return imap_parse_fail(p, "Invalid date-time");
    const char *t = s + 1 + n;
    if (left < 1 + n + 16)
        return imap_parse_fail(p, "Invalid date-time");
    /* " hh:mm:ss +zzzz\"" */
    if (t[0] != ' ' || t[3] != ':' || t[6] != ':' || t[9] != ' ' ||
        (t[10] != '+' && t[10] != '-') || t[15] != '"')
        return imap_parse_fail(p, "Invalid date-time");
    static const int digit_pos[] = {1, 2, 4, 5, 7, 8, 11, 12, 13, 14};
    for (size_t k = 0; k < sizeof(digit_pos) / sizeof(digit_pos[0]); k++)
        if (t[digit_pos[k]] < '0' || t[digit_pos[k]] > '9')
            return imap_parse_fail(p, "Invalid date-time");
    int hh = (t[1] - '0') * 10 + (t[2] - '0');
    int mi = (t[4] - '0') * 10 + (t[5] - '0');
    int ss = (t[7] - '0') * 10 + (t[8] - '0');
    int zh = (t[11] - '0') * 10 + (t[12] - '0');
    int zm = (t[13] - '0') * 10 + (t[14] - '0');
    if (hh > 23 || mi > 59 || ss > 60 || zh > 23 || zm > 59)
        return imap_parse_fail(p, "Invalid date-time");
    long long secs = days_from_civil(y, m, d) * 86400LL + hh * 3600 + mi * 60 + ss;
    long long off = (zh * 60 + zm) * 60;
    secs += t[10] == '+' ? -off : off;
    *t_r = (time_t)secs;
    p->pos += 1 + n + 16;
    return true;
}

bool imap_parse_date(struct imap_parser *p, time_t *t_r)
{
    if (p->error)
        return false;
    const char *s = p->buf + p->pos;
    size_t left = p->len - p->pos;
    bool quoted = left > 0 && s[0] == '"';
    unsigned y, m, d;
    size_t n = scan_date(s + quoted, left - quoted, false, &y, &m, &d);
    if (n == 0)
        return imap_parse_fail(p, "Invalid date");
    size_t used = n + quoted;
    if (quoted) {
        if (used >= left || s[used] != '"')
            return imap_parse_fail(p, "Invalid date");
        used++;
    } else if (used < left && is_atom_char((unsigned char)s[used])) {
        return imap_parse_fail(p, "Invalid date");
    }
    *t_r = (time_t)(days_from_civil(y, m, d) * 86400LL);
    p->pos += used;
    return true;
}

static bool parse_seq_number(struct imap_parser *p, uint32_t *n_r)
{
    if (cur(p) == '*') {
        p->pos++;
        *n_r = IMAP_SEQ_STAR;
        return true;
    }
    uint64_t n = 0;
    size_t start = p->pos;
    while (cur(p) >= '0' && cur(p) <= '9') {
        n = n * 10 + (uint64_t)(cur(p) - '0');
        if (n > UINT32_MAX) {
            p->pos = start;
            return imap_parse_fail(p, "Invalid sequence number");
        }
        p->pos++;
    }
    if (p->pos == start || n == 0) {
        p->pos = start;
        return imap_parse_fail(p, "Invalid sequence set");
    }
    *n_r = (uint32_t)n;
    return true;
}

bool imap_parse_seqset(struct imap_parser *p, struct imap_seqset *set_r)
{
    if (p->error)
        return false;
    memset(set_r, 0, sizeof(*set_r));
    size_t start = p->pos;
    if (cur(p) == '$') {
        p->pos++;
        int c = cur(p);
        if (c != ' ' && c != ')' && c != '\r' && c != '\n' && c != -1) {
            p->pos = start;
            return imap_parse_fail(p, "Invalid sequence set");
        }
        set_r->saved = true;
        return true;
    }
    /* Count the commas first: one arena block holds every range. */
    size_t count = 1;
    for (size_t i = p->pos; i < p->len; i++) {
        char c = p->buf[i];
        if (c == ',')
            count++;
        else if (!((c >= '0' && c <= '9') || c == ':' || c == '*'))
            break;
    }
    struct imap_seq_range *r = arena_alloc(p, count * sizeof(*r));
    size_t n = 0;
    for (;;) {
        uint32_t lo, hi;
        if (!parse_seq_number(p, &lo)) {
            p->pos = start;
            return false;
        }
        hi = lo;
        if (cur(p) == ':') {
            p->pos++;
            if (!parse_seq_number(p, &hi)) {
                p->pos = start;
                return false;
            }
        }
        if (n >= count)
            msg_panic("imap_parse_seqset: range count");
        r[n].lo = lo < hi ? lo : hi;
        r[n].hi = lo < hi ? hi : lo;
        n++;
        if (cur(p) != ',')
            break;
        p->pos++;
    }
    int c = cur(p);
    if (c != ' ' && c != ')' && c != '\r' && c != '\n' && c != -1) {
        p->pos = start;
        return imap_parse_fail(p, "Invalid sequence set");
    }
    set_r->ranges = r;
    set_r->count = n;
    return true;
}

bool imap_parse_list_begin(struct imap_parser *p)
{
    if (p->error)
        return false;
    if (cur(p) != '(')
        return imap_parse_fail(p, "Expected '('");
    if (p->depth >= p->max_depth)
        return imap_parse_fail(p, "Lists nested too deeply");
    p->depth++;
    p->pos++;
    return true;
}

bool imap_parse_list_end(struct imap_parser *p)
{
    if (p->error)
        return false;
    if (cur(p) != ')')
        return imap_parse_fail(p, "Expected ')'");
    if (p->depth == 0)
        return imap_parse_fail(p, "Unbalanced parentheses");
    p->depth--;
    p->pos++;
    return true;
}

int imap_parse_literal_suffix(const char *line, size_t len, uint64_t *size_r, bool *nonsync_r,
                              const char **error_r)
{
    /* Strip the line end. */
    if (len > 0 && line[len - 1] == '\n')
        len--;
    else
        return 0; /* an incomplete line never announces a literal */
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0 || line[len - 1] != '}')
        return 0;
    /* A "}" inside an open quoted string is text: scan quotes from the start. */
    bool inq = false;
    for (size_t i = 0; i < len; i++) {
        if (inq && line[i] == '\\' && i + 1 < len) {
            i++;
            continue;
        }
        if (line[i] == '"')
            inq = !inq;
    }
    if (inq)
        return 0;
    size_t end = len - 1; /* the '}' */
    size_t i = end;
    bool nonsync = false;
    if (i > 0 && line[i - 1] == '+') {
        nonsync = true;
        i--;
    }
    size_t dend = i;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || line[i - 1] != '{')
        return 0; /* "}" at the end of an atom is not ours to judge here */
    if (i == dend) {
        *error_r = "Invalid literal size";
        return -1;
    }
    if (dend - i > 20) {
        *error_r = "Literal size too big";
        return -1;
    }
    uint64_t n = 0;
    for (size_t k = i; k < dend; k++) {
        unsigned d = (unsigned)(line[k] - '0');
        if (n > (UINT64_MAX - d) / 10) {
            *error_r = "Literal size too big";
            return -1;
        }
        n = n * 10 + d;
    }
    *size_r = n;
    *nonsync_r = nonsync;
    return 1;
}

bool imap_list_match(const char *pat, const char *name, char delim)
{
    size_t n = strlen(name), m = strlen(pat);
    bool *row = mycalloc(n + 1, sizeof(bool)), *next = mycalloc(n + 1, sizeof(bool));
    row[0] = true;
    for (size_t i = 0; i < m; i++) {
        char c = pat[i];
        if (c == '*') {
            bool any = false;
            for (size_t j = 0; j <= n; j++)
                next[j] = any = any || row[j];
        } else if (c == '%') {
            bool any = false;
            for (size_t j = 0; j <= n; j++) {
                if (j > 0 && name[j - 1] == delim)
                    any = false;
                next[j] = any = any || row[j];
            }
        } else {
            next[0] = false;
            for (size_t j = 1; j <= n; j++)
                next[j] = row[j - 1] && name[j - 1] == c;
        }
        bool *t = row;
        row = next;
        next = t;
    }
    bool ok = row[n];
    myfree(row);
    myfree(next);
    return ok;
}

bool imap_str_is_text(const struct imap_str *s)
{
    return s->data != NULL && memchr(s->data, '\0', s->len) == NULL;
}

bool imap_atom_is(const char *atom, const char *keyword)
{
    return strcasecmp(atom, keyword) == 0;
}
