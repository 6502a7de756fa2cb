/* IMAP SEARCH programs: parse and evaluate (see imap_search.h). */
#include <string.h>
#include <strings.h>

#include "imap_search.h"
#include "mymalloc.h"

/* ---- case-insensitive UTF-8 matching -------------------------------- */

/* Decode one code point at s[*i]; invalid bytes decode as themselves. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        cp = c & 0x07;
    } else {
        (*i)++;
        return c;
    }
    if (len - *i <= n) {
        (*i)++;
        return c;
    }
    for (size_t k = 1; k <= n; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return c;
        }
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    *i += n + 1;
    return cp;
}

/* Simple case folding (to lower case) of the scripts people search in most. */
static uint32_t fold(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 32; /* Latin-1 */
    if (c >= 0x100 && c <= 0x137)
        return c | 1; /* Latin Extended-A, pairs even upper / odd lower */
    if (c >= 0x139 && c <= 0x148)
        return (c & 1) ? c + 1 : c;
    if (c >= 0x14A && c <= 0x177)
        return c | 1;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x179 && c <= 0x17E)
        return (c & 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
        return c + 32; /* Greek */
    if (c == 0x3C2)
        return 0x3C3; /* final sigma */
    if (c >= 0x400 && c <= 0x40F)
        return c + 80; /* Cyrillic */
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    return c;
}

static uint32_t *fold_string(const char *s, size_t len, size_t *n_r)
{
    uint32_t *out = mycalloc(len + 1, sizeof(*out));
    size_t i = 0, n = 0;
    while (i < len)
        out[n++] = fold(utf8_next((const unsigned char *)s, len, &i));
    *n_r = n;
    return out;
}

bool imap_search_text_contains(const char *hay, size_t hay_len, const char *needle,
                               size_t needle_len)
{
    if (needle_len == 0)
        return true;
    size_t nn;
    uint32_t *nd = fold_string(needle, needle_len, &nn);
    /* Walk the haystack once, keeping a ring of the last nn folded code
     * points' start offsets would be faster; a restart-on-mismatch scan over
     * decoded code points is simple and linear enough for mail sizes. */
    const unsigned char *h = (const unsigned char *)hay;
    bool found = false;
    size_t i = 0;
    while (i < hay_len && !found) {
        size_t j = i, k = 0;
        size_t next = i;
        uint32_t first = fold(utf8_next(h, hay_len, &next));
        if (first != nd[0]) {
            i = next;
            continue;
        }
        j = next;
        k = 1;
        while (k < nn && j < hay_len) {
            if (fold(utf8_next(h, hay_len, &j)) != nd[k])
                break;
            k++;
        }
        if (k == nn)
            found = true;
        i = next;
    }
    myfree(nd);
    return found;
}

/* ---- dates ---------------------------------------------------------- */

long long imap_days_from_civil(long long y, unsigned m, unsigned d)
{
    /* Civil date to day number: shift the year to start in March, count 400-year eras. */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long mp = (m + 9) % 12;
    long long doy = (153 * mp + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static const char months[12][4] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};

bool imap_search_parse_date(const char *s, size_t len, long long *day_r)
{
    /* date-day "-" date-month "-" date-year; date-day is 1*2DIGIT. */
    size_t i = 0;
    unsigned d = 0;
    while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
        d = d * 10 + (unsigned)(s[i++] - '0');
    if (i == 0 || i >= len || s[i] != '-' || d < 1 || d > 31)
        return false;
    i++;
    if (len - i < 4)
        return false;
    int m = -1;
    for (int k = 0; k < 12; k++)
        if (strncasecmp(s + i, months[k], 3) == 0)
            m = k + 1;
    if (m < 0 || s[i + 3] != '-')
        return false;
    i += 4;
    if (len - i != 4)
        return false;
    unsigned y = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        y = y * 10 + (unsigned)(s[i] - '0');
    }
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d > mdays[m - 1])
        return false;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    *day_r = imap_days_from_civil(y, (unsigned)m, d);
    return true;
}

/* ---- sequence ranges ------------------------------------------------- */

bool imap_seq_ranges_contain(const struct imap_seq_range *r, size_t n, uint32_t v, uint32_t max)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = r[i].lo == IMAP_SEQ_STAR ? max : r[i].lo;
        uint32_t hi = r[i].hi == IMAP_SEQ_STAR ? max : r[i].hi;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (v >= lo && v <= hi)
            return true;
    }
    return false;
}

/* ---- parsing (on the imap_parse tokenizer) -------------------------- */

void imap_search_free(struct imap_search_program **progp)
{
    struct imap_search_program *prog = *progp;
    if (prog == NULL)
        return;
    for (size_t i = 0; i < prog->nnodes; i++) {
        myfree(prog->nodes[i].str);
        myfree(prog->nodes[i].value);
        myfree(prog->nodes[i].ranges);
        myfree(prog->nodes[i].children);
    }
    myfree(prog->nodes);
    myfree(prog);
    *progp = NULL;
}

struct sp_state {
    struct imap_parser *p;
    struct imap_search_program *prog;
    size_t keys;
};

static size_t node_add(struct sp_state *st, enum imap_search_key key)
{
    struct imap_search_program *prog = st->prog;
    prog->nodes = myreallocarray(prog->nodes, prog->nnodes + 1, sizeof(*prog->nodes));
    memset(&prog->nodes[prog->nnodes], 0, sizeof(prog->nodes[0]));
    prog->nodes[prog->nnodes].key = key;
    return prog->nnodes++;
}

static void node_child(struct sp_state *st, size_t parent, size_t child)
{
    struct imap_search_node *n = &st->prog->nodes[parent];
    n->children = myreallocarray(n->children, n->nchildren + 1, sizeof(*n->children));
    n->children[n->nchildren++] = child;
}

/* A search string argument: astring, no NUL (it is compared as text). */
static bool parse_text(struct sp_state *st, char **out_r)
{
    struct imap_str s;
    if (!imap_parse_sp(st->p) || !imap_parse_astring(st->p, &s))
        return false;
    if (!imap_str_is_text(&s))
        return imap_parse_fail(st->p, "NUL in search string");
    *out_r = mymemdup(s.data, s.len);
    return true;
}

static bool parse_day(struct sp_state *st, long long *day_r)
{
    time_t t;
    if (!imap_parse_sp(st->p) || !imap_parse_date(st->p, &t))
        return false;
    /* midnight UTC of the day: exact division */
    *day_r = (long long)t >= 0 ? (long long)t / 86400 : -((-(long long)t + 86399) / 86400);
    return true;
}

static bool set_ranges(struct imap_search_node *n, const struct imap_seqset *set)
{
    n->nranges = set->count;
    n->ranges = mycalloc(set->count ? set->count : 1, sizeof(*n->ranges));
    if (set->count)
        memcpy(n->ranges, set->ranges, set->count * sizeof(*n->ranges));
    return true;
}

static const struct {
    const char *name;
    uint32_t flag;
    bool negate;
} flag_keys[] = {
    {"ANSWERED", IMAP_SF_ANSWERED, false},  {"DELETED", IMAP_SF_DELETED, false},
    {"DRAFT", IMAP_SF_DRAFT, false},        {"FLAGGED", IMAP_SF_FLAGGED, false},
    {"SEEN", IMAP_SF_SEEN, false},          {"RECENT", IMAP_SF_RECENT, false},
    {"UNANSWERED", IMAP_SF_ANSWERED, true}, {"UNDELETED", IMAP_SF_DELETED, true},
    {"UNDRAFT", IMAP_SF_DRAFT, true},       {"UNFLAGGED", IMAP_SF_FLAGGED, true},
    {"UNSEEN", IMAP_SF_SEEN, true},
};

static const struct {
    const char *name;
    const char *field;
} header_keys[] = {
    {"BCC", "bcc"}, {"CC", "cc"}, {"FROM", "from"}, {"SUBJECT", "subject"}, {"TO", "to"},
};

static bool parse_key(struct sp_state *st, unsigned depth, size_t *idx_r);

/* Keys separated by SP until ')' (inside parentheses) or the line end. */
static bool parse_key_list(struct sp_state *st, unsigned depth, size_t parent, bool paren)
{
    for (;;) {
        size_t child;
        if (!parse_key(st, depth, &child))
            return false;
        node_child(st, parent, child);
        if (paren && imap_parse_peek(st->p, ')'))
            return imap_parse_list_end(st->p);
        if (!paren && imap_parse_at_eol(st->p))
            return true;
        if (!imap_parse_sp(st->p))
            return false;
    }
}

static bool parse_key(struct sp_state *st, unsigned depth, size_t *idx_r)
{
    struct imap_parser *p = st->p;
    size_t idx;

    if (depth > IMAP_SEARCH_MAX_DEPTH)
        return imap_parse_fail(p, "Search program nested too deeply");
    if (++st->keys > IMAP_SEARCH_MAX_KEYS)
        return imap_parse_fail(p, "Too many search keys");
    if (imap_parse_peek(p, '(')) {
        if (!imap_parse_list_begin(p))
            return false;
        idx = node_add(st, ISK_AND);
        *idx_r = idx;
        return parse_key_list(st, depth + 1, idx, true);
    }
    if (imap_parse_peek(p, '*') || imap_parse_peek(p, '$') ||
        (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9')) {
        struct imap_seqset set;
        if (!imap_parse_seqset(p, &set))
            return false;
        if (set.saved)
            return imap_parse_fail(p, "No saved search result ($)");
        idx = node_add(st, ISK_SEQSET);
        set_ranges(&st->prog->nodes[idx], &set);
        *idx_r = idx;
        return true;
    }
    const char *atom;
    if (!imap_parse_atom(p, &atom))
        return false;
    for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
        if (!imap_atom_is(atom, flag_keys[i].name))
            continue;
        idx = node_add(st, ISK_FLAG);
        st->prog->nodes[idx].flag = flag_keys[i].flag;
        if (flag_keys[i].negate) {
            size_t neg = node_add(st, ISK_NOT);
            node_child(st, neg, idx);
            idx = neg;
        }
        *idx_r = idx;
        return true;
    }
    for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++) {
        if (!imap_atom_is(atom, header_keys[i].name))
            continue;
        idx = node_add(st, ISK_HEADER);
        *idx_r = idx;
        st->prog->nodes[idx].str = mystrdup(header_keys[i].field);
        st->prog->needs_header = true;
        return parse_text(st, &st->prog->nodes[idx].value);
    }
    if (imap_atom_is(atom, "ALL")) {
        *idx_r = node_add(st, ISK_ALL);
        return true;
    }
    if (imap_atom_is(atom, "NEW") || imap_atom_is(atom, "OLD")) {
        *idx_r = node_add(st, imap_atom_is(atom, "NEW") ? ISK_NEW : ISK_OLD);
        return true;
    }
    if (imap_atom_is(atom, "NOT")) {
        size_t child;
        idx = node_add(st, ISK_NOT);
        *idx_r = idx;
        if (!imap_parse_sp(p) || !parse_key(st, depth + 1, &child))
            return false;
        node_child(st, idx, child);
        return true;
    }
    if (imap_atom_is(atom, "OR")) {
        size_t a, b;
        idx = node_add(st, ISK_OR);
        *idx_r = idx;
        if (!imap_parse_sp(p) || !parse_key(st, depth + 1, &a))
            return false;
        node_child(st, idx, a);
        if (!imap_parse_sp(p) || !parse_key(st, depth + 1, &b))
            return false;
        node_child(st, idx, b);
        return true;
    }
    if (imap_atom_is(atom, "KEYWORD") || imap_atom_is(atom, "UNKEYWORD")) {
        const char *kw;
        bool un = imap_atom_is(atom, "UNKEYWORD");
        idx = node_add(st, ISK_KEYWORD);
        *idx_r = idx;
        if (!imap_parse_sp(p) || !imap_parse_atom(p, &kw))
            return false;
        st->prog->nodes[idx].str = mystrdup(kw);
        if (un) {
            size_t neg = node_add(st, ISK_NOT);
            node_child(st, neg, idx);
            *idx_r = neg;
        }
        return true;
    }
    static const struct {
        const char *name;
        enum imap_search_key key;
    } date_keys[] = {
        {"BEFORE", ISK_BEFORE},         {"ON", ISK_ON},         {"SINCE", ISK_SINCE},
        {"SENTBEFORE", ISK_SENTBEFORE}, {"SENTON", ISK_SENTON}, {"SENTSINCE", ISK_SENTSINCE},
    };
    for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
        if (!imap_atom_is(atom, date_keys[i].name))
            continue;
        idx = node_add(st, date_keys[i].key);
        *idx_r = idx;
        if (date_keys[i].key >= ISK_SENTBEFORE)
            st->prog->needs_header = true;
        return parse_day(st, &st->prog->nodes[idx].day);
    }
    if (imap_atom_is(atom, "LARGER") || imap_atom_is(atom, "SMALLER")) {
        idx = node_add(st, imap_atom_is(atom, "LARGER") ? ISK_LARGER : ISK_SMALLER);
        *idx_r = idx;
        return imap_parse_sp(p) && imap_parse_number64(p, &st->prog->nodes[idx].num);
    }
    if (imap_atom_is(atom, "HEADER")) {
        idx = node_add(st, ISK_HEADER);
        *idx_r = idx;
        st->prog->needs_header = true;
        if (!parse_text(st, &st->prog->nodes[idx].str))
            return false;
        for (char *c = st->prog->nodes[idx].str; *c; c++) {
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
            else if ((unsigned char)*c <= ' ' || *c == ':' || (unsigned char)*c >= 0x7f)
                return imap_parse_fail(p, "Bad header field name");
        }
        if (st->prog->nodes[idx].str[0] == '\0')
            return imap_parse_fail(p, "Empty header field name");
        return parse_text(st, &st->prog->nodes[idx].value);
    }
    if (imap_atom_is(atom, "BODY") || imap_atom_is(atom, "TEXT")) {
        idx = node_add(st, imap_atom_is(atom, "BODY") ? ISK_BODY : ISK_TEXT);
        *idx_r = idx;
        st->prog->needs_body = true;
        if (st->prog->nodes[idx].key == ISK_TEXT)
            st->prog->needs_header = true;
        return parse_text(st, &st->prog->nodes[idx].str);
    }
    if (imap_atom_is(atom, "UID")) {
        struct imap_seqset set;
        idx = node_add(st, ISK_UIDSET);
        *idx_r = idx;
        if (!imap_parse_sp(p) || !imap_parse_seqset(p, &set))
            return false;
        if (set.saved)
            return imap_parse_fail(p, "No saved search result ($)");
        return set_ranges(&st->prog->nodes[idx], &set);
    }
    if (imap_atom_is(atom, "MODSEQ")) {
        /* RFC 7162 §3.1.5: MODSEQ [entry-name SP entry-type-req] mod-sequence-valzer.
         * Per-flag modseqs are not kept; the entry is checked and ignored. */
        idx = node_add(st, ISK_MODSEQ);
        *idx_r = idx;
        st->prog->uses_modseq = true;
        if (!imap_parse_sp(p))
            return false;
        if (imap_parse_peek(p, '"')) {
            struct imap_str entry;
            const char *type;
            if (!imap_parse_string(p, &entry) || !imap_parse_sp(p) || !imap_parse_atom(p, &type))
                return false;
            if (!imap_atom_is(type, "priv") && !imap_atom_is(type, "shared") &&
                !imap_atom_is(type, "all"))
                return imap_parse_fail(p, "Bad MODSEQ entry type");
            if (!imap_parse_sp(p))
                return false;
        }
        return imap_parse_number64(p, &st->prog->nodes[idx].num);
    }
    return imap_parse_fail(p, "Unknown search key");
}

static bool parse_return(struct sp_state *st)
{
    struct imap_parser *p = st->p;
    st->prog->esearch = true;
    if (!imap_parse_sp(p) || !imap_parse_list_begin(p))
        return false;
    while (!imap_parse_peek(p, ')')) {
        const char *opt;
        if (st->prog->ret != 0 && !imap_parse_sp(p))
            return false;
        if (!imap_parse_atom(p, &opt))
            return false;
        if (imap_atom_is(opt, "MIN"))
            st->prog->ret |= IMAP_SEARCH_RET_MIN;
        else if (imap_atom_is(opt, "MAX"))
            st->prog->ret |= IMAP_SEARCH_RET_MAX;
        else if (imap_atom_is(opt, "ALL"))
            st->prog->ret |= IMAP_SEARCH_RET_ALL;
        else if (imap_atom_is(opt, "COUNT"))
            st->prog->ret |= IMAP_SEARCH_RET_COUNT;
        else if (imap_atom_is(opt, "SAVE"))
            return imap_parse_fail(p, "RETURN SAVE is not supported");
        else
            return imap_parse_fail(p, "Unknown RETURN option");
    }
    if (!imap_parse_list_end(p))
        return false;
    if (st->prog->ret == 0)
        st->prog->ret = IMAP_SEARCH_RET_ALL; /* RFC 4731 §3.1: RETURN () = ALL */
    return true;
}

enum imap_search_parse_result imap_search_parse(struct imap_parser *p, bool allow_return,
                                                struct imap_search_program **prog_r,
                                                const char **error_r)
{
    struct sp_state st;
    const char *atom;
    size_t save;

    st.p = p;
    st.keys = 0;
    st.prog = mycalloc(1, sizeof(*st.prog));
    *prog_r = NULL;
    *error_r = NULL;
    node_add(&st, ISK_AND);

    if (!imap_parse_sp(p))
        goto bad;
    /* [RETURN (...)] then [CHARSET x]: atoms we look at and put back. */
    save = p->pos;
    if (imap_parse_atom(p, &atom) && imap_atom_is(atom, "RETURN") && imap_parse_peek(p, ' ')) {
        if (!allow_return) {
            imap_parse_fail(p, "RETURN needs ESEARCH");
            goto bad;
        }
        if (!parse_return(&st) || !imap_parse_sp(p))
            goto bad;
    } else {
        p->pos = save;
        p->error = NULL;
    }
    save = p->pos;
    if (imap_parse_atom(p, &atom) && imap_atom_is(atom, "CHARSET") && imap_parse_peek(p, ' ')) {
        struct imap_str cs;
        if (!imap_parse_sp(p) || !imap_parse_astring(p, &cs))
            goto bad;
        if (!imap_str_is_text(&cs) ||
            (strcasecmp(cs.data, "UTF-8") != 0 && strcasecmp(cs.data, "US-ASCII") != 0)) {
            *error_r = "Unsupported charset";
            imap_search_free(&st.prog);
            return IMAP_SEARCH_BADCHARSET;
        }
        st.prog->charset_utf8 = true;
        if (!imap_parse_sp(p))
            goto bad;
    } else {
        p->pos = save;
        p->error = NULL;
    }
    if (!parse_key_list(&st, 1, 0, false))
        goto bad;
    if (!imap_parse_eol(p))
        goto bad;
    *prog_r = st.prog;
    return IMAP_SEARCH_OK;
bad:
    *error_r = p->error ? p->error : "Bad search program";
    imap_search_free(&st.prog);
    return IMAP_SEARCH_BAD;
}

/* ---- evaluation ------------------------------------------------------ */

struct eval_state {
    const struct imap_search_program *prog;
    const struct imap_search_msg *m;
    struct strbuf buf;
    long long internal_day;
};

static bool eval(struct eval_state *st, size_t idx, unsigned depth);

static bool eval_header(struct eval_state *st, const struct imap_search_node *n, const char *field,
                        const char *needle)
{
    const struct imap_search_msg *m = st->m;
    if (m->header == NULL)
        return false;
    strbuf_reset(&st->buf);
    if (!m->header(m->ctx, field, &st->buf))
        return false;
    (void)n;
    return imap_search_text_contains(st->buf.data ? st->buf.data : "", st->buf.len, needle,
                                     strlen(needle));
}

static bool eval(struct eval_state *st, size_t idx, unsigned depth)
{
    const struct imap_search_node *n = &st->prog->nodes[idx];
    const struct imap_search_msg *m = st->m;
    long long day;

    if (depth > IMAP_SEARCH_MAX_DEPTH + 2)
        return false; /* the parser never builds this; defence in depth */
    switch (n->key) {
    case ISK_AND:
        for (size_t i = 0; i < n->nchildren; i++)
            if (!eval(st, n->children[i], depth + 1))
                return false;
        return true;
    case ISK_OR:
        return eval(st, n->children[0], depth + 1) || eval(st, n->children[1], depth + 1);
    case ISK_NOT:
        return !eval(st, n->children[0], depth + 1);
    case ISK_ALL:
        return true;
    case ISK_SEQSET:
        return imap_seq_ranges_contain(n->ranges, n->nranges, m->seq, m->max_seq);
    case ISK_UIDSET:
        return imap_seq_ranges_contain(n->ranges, n->nranges, m->uid, m->max_uid);
    case ISK_FLAG:
        return (m->flags & n->flag) != 0;
    case ISK_KEYWORD:
        return m->has_keyword != NULL && m->has_keyword(m->ctx, n->str);
    case ISK_NEW:
        return (m->flags & IMAP_SF_RECENT) && !(m->flags & IMAP_SF_SEEN);
    case ISK_OLD:
        return !(m->flags & IMAP_SF_RECENT);
    case ISK_BEFORE:
        return st->internal_day < n->day;
    case ISK_ON:
        return st->internal_day == n->day;
    case ISK_SINCE:
        return st->internal_day >= n->day;
    case ISK_SENTBEFORE:
    case ISK_SENTON:
    case ISK_SENTSINCE:
        if (m->sent_day == NULL || !m->sent_day(m->ctx, &day))
            return false;
        if (n->key == ISK_SENTBEFORE)
            return day < n->day;
        if (n->key == ISK_SENTON)
            return day == n->day;
        return day >= n->day;
    case ISK_LARGER:
        return m->size > n->num;
    case ISK_SMALLER:
        return m->size < n->num;
    case ISK_HEADER:
        return eval_header(st, n, n->str, n->value);
    case ISK_BODY:
        if (m->body == NULL)
            return false;
        strbuf_reset(&st->buf);
        if (!m->body(m->ctx, &st->buf))
            return false;
        return imap_search_text_contains(st->buf.data ? st->buf.data : "", st->buf.len, n->str,
                                         strlen(n->str));
    case ISK_TEXT:
        if (eval_header(st, n, "", n->str))
            return true;
        if (m->body == NULL)
            return false;
        strbuf_reset(&st->buf);
        if (!m->body(m->ctx, &st->buf))
            return false;
        return imap_search_text_contains(st->buf.data ? st->buf.data : "", st->buf.len, n->str,
                                         strlen(n->str));
    case ISK_MODSEQ:
        return m->modseq >= n->num;
    }
    return false;
}

bool imap_search_match(const struct imap_search_program *prog, const struct imap_search_msg *m)
{
    struct eval_state st;
    memset(&st, 0, sizeof(st));
    st.prog = prog;
    st.m = m;
    strbuf_init(&st.buf, 0);
    /* RFC 3501 §6.4.4: dates disregard time and timezone; we take the
     * internal date's calendar day in UTC+0 of the stored instant shifted
     * to local time, as a server administrator would read it. */
    struct tm tm;
    time_t t = m->internaldate;
    if (localtime_r(&t, &tm) != NULL)
        st.internal_day = imap_days_from_civil(tm.tm_year + 1900LL, (unsigned)tm.tm_mon + 1,
                                               (unsigned)tm.tm_mday);
    bool r = prog->nnodes > 0 && eval(&st, 0, 0);
    strbuf_release(&st.buf);
    return r;
}
