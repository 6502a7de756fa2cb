/*
 * message - RFC 5322 / MIME parser for IMAP. See message.h.
 *
 * The parse is one pass per MIME level over the caller's buffer: each entity
 * is a header block and a body range; a multipart body is cut at its boundary
 * lines (the line end before a boundary belongs to the boundary, RFC 2046
 * §5.1.1), a message/rfc822 body is parsed again as a message. Nothing is
 * copied but the few Content-* values BODYSTRUCTURE needs; ENVELOPE fields are
 * read from the header when rendered (the index caches the result).
 *
 * Recursion is bounded by MESSAGE_MAX_DEPTH (checked before every descent),
 * so a hostile message cannot exhaust the stack.
 */
#include "message.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "mymalloc.h"

/* Single-value Content-* fields longer than this are cut (they are copied). */
#define FIELD_VALUE_MAX 4096
/* At most this many parameters per Content-Type / Content-Disposition. */
#define PARAMS_MAX 64

enum part_kind {
    PART_LEAF,      /* any single part */
    PART_MULTIPART, /* multipart/<x>: children are the body parts */
    PART_MESSAGE,   /* message/rfc822: one child, the embedded message */
};

struct param {
    char *name;
    char *value;
};

struct part {
    size_t hdr_off, hdr_len; /* header block, its blank line included */
    size_t body_off, body_len;
    size_t body_size; /* body octets with CRLF line ends */
    size_t body_lines;
    size_t trimmed; /* line end bytes before the next boundary, not in the body */
    enum part_kind kind;
    bool opaque;          /* too deep, or an encoded message/rfc822: application/octet-stream */
    char *type, *subtype; /* NULL: the default (text/plain or message/rfc822) */
    bool digest_child;    /* default type is message/rfc822 */
    struct param *params;
    size_t nparams;
    char *id, *desc, *enc, *md5, *disp, *loc;
    struct param *dparams;
    size_t ndparams;
    char **langs;
    size_t nlangs;
    size_t parent;      /* SIZE_MAX for the root */
    size_t first_child; /* SIZE_MAX when none */
    size_t next;        /* next sibling, SIZE_MAX when none */
    size_t nchildren;
};

struct message {
    const char *data;
    size_t len;
    struct part *parts;
    size_t nparts, cap;
};

#define NONE SIZE_MAX

/* ---- small helpers ---- */

static bool is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

static bool is_lwsp(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2045 token characters. */
static bool is_token_char(unsigned char c)
{
    if (c <= 32 || c >= 127)
        return false;
    return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

size_t message_crlf_len(const char *p, size_t len)
{
    size_t n = len;
    const char *s = p, *end = p + len;
    while (s < end) {
        const char *lf = memchr(s, '\n', (size_t)(end - s));
        if (lf == NULL)
            break;
        if (lf == p || lf[-1] != '\r')
            n++;
        s = lf + 1;
    }
    return n;
}

void message_append_crlf(const char *p, size_t len, struct strbuf *out)
{
    const char *s = p, *end = p + len;
    strbuf_grow(out, len + len / 32);
    while (s < end) {
        const char *lf = memchr(s, '\n', (size_t)(end - s));
        if (lf == NULL) {
            strbuf_append(out, s, (size_t)(end - s));
            return;
        }
        strbuf_append(out, s, (size_t)(lf - s));
        if (lf == p || lf[-1] != '\r')
            strbuf_putc(out, '\r');
        strbuf_putc(out, '\n');
        s = lf + 1;
    }
}

static size_t count_lf(const char *p, size_t len)
{
    size_t n = 0;
    const char *s = p, *end = p + len;
    while (s < end && (s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
        n++;
        s++;
    }
    return n;
}

/* End of the line starting at p (the position after its LF, or end). */
static const char *line_next(const char *p, const char *end)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    return lf == NULL ? end : lf + 1;
}

/* Length of the header block at p (through its blank line, or all of it). */
static size_t header_block_len_found(const char *p, size_t len, bool *found_r)
{
    const char *s = p, *end = p + len;
    *found_r = true;
    while (s < end) {
        if (*s == '\n')
            return (size_t)(s + 1 - p);
        if (*s == '\r' && s + 1 < end && s[1] == '\n')
            return (size_t)(s + 2 - p);
        s = line_next(s, end);
    }
    *found_r = false;
    return len;
}

static size_t header_block_len(const char *p, size_t len)
{
    bool found;
    return header_block_len_found(p, len, &found);
}

/* ---- header fields ---- */

struct hdr_iter {
    const char *p, *end;
};

struct hdr_field {
    const char *start, *stop; /* the whole field, folding and line end included */
    const char *name;
    size_t name_len;
    const char *value; /* raw value after the colon, folding included */
    size_t value_len;
};

/*
 * Next field of a header block. Lines without a colon are returned with
 * name_len 0 (tolerated, never matched). false at the end of the block.
 */
static bool hdr_next(struct hdr_iter *it, struct hdr_field *f)
{
    const char *s = it->p, *end = it->end;
    if (s >= end || *s == '\n' || (*s == '\r' && s + 1 < end && s[1] == '\n'))
        return false;
    const char *e = line_next(s, end);
    while (e < end && is_wsp(*e))
        e = line_next(e, end);
    f->start = s;
    f->stop = e;
    it->p = e;
    const char *colon = memchr(s, ':', (size_t)(e - s));
    const char *nl = memchr(s, '\n', (size_t)(e - s));
    if (colon == NULL || (nl != NULL && nl < colon) || is_wsp(*s)) {
        f->name = s;
        f->name_len = 0;
        f->value = s;
        f->value_len = 0;
        return true;
    }
    const char *ne = colon;
    while (ne > s && is_wsp(ne[-1]))
        ne--;
    f->name = s;
    f->name_len = (size_t)(ne - s);
    f->value = colon + 1;
    f->value_len = (size_t)(e - (colon + 1));
    return true;
}

static bool hdr_name_is(const struct hdr_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* Unfold a raw value: drop CR and LF, trim leading and trailing whitespace. */
static void unfold(const char *v, size_t len, struct strbuf *out)
{
    size_t i = 0, j = len;
    while (i < j && is_lwsp((unsigned char)v[i]))
        i++;
    while (j > i && is_lwsp((unsigned char)v[j - 1]))
        j--;
    for (; i < j; i++)
        if (v[i] != '\r' && v[i] != '\n')
            strbuf_putc(out, v[i]);
}

/* ---- RFC 822 lexer for structured fields ---- */

struct lex {
    const char *p, *end;
};

/* Skip whitespace and (nested) comments; a comment's text goes to comment if not NULL. */
static void lex_skip(struct lex *lx, struct strbuf *comment)
{
    for (;;) {
        while (lx->p < lx->end && is_lwsp((unsigned char)*lx->p))
            lx->p++;
        if (lx->p >= lx->end || *lx->p != '(')
            return;
        int depth = 0;
        const char *start = lx->p + 1;
        const char *stop = NULL;
        while (lx->p < lx->end) {
            char c = *lx->p++;
            if (c == '\\' && lx->p < lx->end) {
                lx->p++;
            } else if (c == '(') {
                depth++;
            } else if (c == ')') {
                if (--depth == 0) {
                    stop = lx->p - 1;
                    break;
                }
            }
        }
        if (stop == NULL)
            stop = lx->end;
        if (comment != NULL) {
            strbuf_reset(comment);
            for (const char *c = start; c < stop; c++) {
                if (*c == '\\' && c + 1 < stop)
                    c++;
                if (*c != '\r' && *c != '\n')
                    strbuf_putc(comment, *c);
            }
        }
    }
}

/* Quoted string at lx->p (which is '"'): unquoted text appended to out. */
static void lex_quoted(struct lex *lx, struct strbuf *out)
{
    lx->p++;
    while (lx->p < lx->end && *lx->p != '"') {
        if (*lx->p == '\\' && lx->p + 1 < lx->end)
            lx->p++;
        if (*lx->p != '\r' && *lx->p != '\n')
            strbuf_putc(out, *lx->p);
        lx->p++;
    }
    if (lx->p < lx->end)
        lx->p++;
}

/* MIME token (RFC 2045; 8-bit bytes tolerated, as Dovecot does) appended to out; false if none. */
static bool lex_token(struct lex *lx, struct strbuf *out)
{
    const char *s = lx->p;
    while (lx->p < lx->end &&
           (is_token_char((unsigned char)*lx->p) || (unsigned char)*lx->p >= 0x80))
        lx->p++;
    if (lx->p == s)
        return false;
    strbuf_append(out, s, (size_t)(lx->p - s));
    return true;
}

/* ---- the parts array ---- */

static size_t part_new(struct message *m)
{
    if (m->nparts == m->cap) {
        m->cap = m->cap == 0 ? 4 : m->cap * 2;
        m->parts = myreallocarray(m->parts, m->cap, sizeof(*m->parts));
    }
    struct part *p = &m->parts[m->nparts];
    memset(p, 0, sizeof(*p));
    p->parent = p->first_child = p->next = NONE;
    return m->nparts++;
}

static void params_free(struct param *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        myfree(ps[i].name);
        myfree(ps[i].value);
    }
    myfree(ps);
}

static void part_release(struct part *p)
{
    myfree(p->type);
    myfree(p->subtype);
    params_free(p->params, p->nparams);
    params_free(p->dparams, p->ndparams);
    myfree(p->id);
    myfree(p->desc);
    myfree(p->enc);
    myfree(p->md5);
    myfree(p->disp);
    myfree(p->loc);
    for (size_t i = 0; i < p->nlangs; i++)
        myfree(p->langs[i]);
    myfree(p->langs);
}

void message_free(struct message **mp)
{
    struct message *m = *mp;
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nparts; i++)
        part_release(&m->parts[i]);
    myfree(m->parts);
    myfree(m);
    *mp = NULL;
}

/* ---- Content-* parsing ---- */

/* A C string copy of len bytes at s with each NUL as U+FFFD (what Dovecot shows). */
static char *copy_nul_safe(const char *s, size_t len)
{
    if (memchr(s, '\0', len) == NULL)
        return mymemdup(s, len);
    struct strbuf b = STRBUF_INIT;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            strbuf_puts(&b, "\xEF\xBF\xBD");
        else
            strbuf_putc(&b, s[i]);
    }
    return strbuf_detach(&b, NULL);
}

struct rawparam {
    char *name; /* attribute without RFC 2231 section suffix, as written */
    unsigned section;
    bool extended;
    bool has_section;
    char *value;
};

static int rawparam_cmp(const void *a, const void *b)
{
    const struct rawparam *x = a, *y = b;
    int c = strcasecmp(x->name, y->name);
    if (c != 0)
        return c;
    return (x->section > y->section) - (x->section < y->section);
}

static int param_name_cmp(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/*
 * Parameters after the value: "; attr=value" (token or quoted string).
 * RFC 2231: continuations attr*0, attr*1... are joined in order into one
 * parameter; when any section is extended (attr*N*) the result is named
 * "attr*" and keeps the charset'language'%XX form, as Dovecot shows it.
 */
static void parse_params(struct lex *lx, struct param **ps_r, size_t *n_r)
{
    struct rawparam raw[PARAMS_MAX];
    size_t nraw = 0;
    struct strbuf name = STRBUF_INIT, value = STRBUF_INIT;
    strbuf_init(&name, 32);
    strbuf_init(&value, 64);

    for (;;) {
        lex_skip(lx, NULL);
        if (lx->p >= lx->end)
            break;
        if (*lx->p != ';') {
            /* garbage: skip to the next ';' */
            const char *semi = memchr(lx->p, ';', (size_t)(lx->end - lx->p));
            if (semi == NULL)
                break;
            lx->p = semi;
        }
        lx->p++;
        lex_skip(lx, NULL);
        strbuf_reset(&name);
        strbuf_reset(&value);
        if (!lex_token(lx, &name))
            continue;
        lex_skip(lx, NULL);
        if (lx->p >= lx->end || *lx->p != '=')
            continue;
        lx->p++;
        lex_skip(lx, NULL);
        if (lx->p < lx->end && *lx->p == '"')
            lex_quoted(lx, &value);
        else
            (void)lex_token(lx, &value); /* may be empty; garbage after it is skipped */
        if (nraw == PARAMS_MAX)
            continue;
        struct rawparam *r = &raw[nraw];
        memset(r, 0, sizeof(*r));
        char *n = name.data;
        size_t nl = name.len;
        char *star = memchr(n, '*', nl);
        if (star != NULL) {
            size_t base = (size_t)(star - n);
            const char *q = star + 1;
            if (*q == '\0') {
                r->extended = true;
            } else if (isdigit((unsigned char)*q)) {
                unsigned long sec = 0;
                while (isdigit((unsigned char)*q) && sec < 1000)
                    sec = sec * 10 + (unsigned long)(*q++ - '0');
                r->has_section = true;
                r->section = (unsigned)sec;
                if (*q == '*') {
                    r->extended = true;
                    q++;
                }
                if (*q != '\0')
                    star = NULL; /* not RFC 2231: keep the name as is */
            } else {
                star = NULL;
            }
            if (star != NULL)
                nl = base;
        }
        r->name = mystrndup(n, nl);
        r->value = copy_nul_safe(strbuf_str(&value), value.len);
        nraw++;
    }

    /* Merge continuations; keep the first-seen order of distinct names. */
    struct param *ps = nraw == 0 ? NULL : mycalloc(nraw, sizeof(*ps));
    size_t np = 0;
    bool used[PARAMS_MAX] = {false};
    /*
     * Plain parameters first, in order; then the RFC 2231 ones (extended or
     * continued, joined) sorted by name: the order Dovecot shows.
     */
    for (size_t i = 0; i < nraw; i++) {
        if (raw[i].has_section || raw[i].extended)
            continue;
        used[i] = true;
        struct strbuf nb = STRBUF_INIT;
        strbuf_puts(&nb, raw[i].name);
        if (raw[i].extended)
            strbuf_putc(&nb, '*');
        ps[np].name = strbuf_detach(&nb, NULL);
        ps[np].value = mystrdup(raw[i].value);
        np++;
    }
    size_t nplain = np;
    for (size_t i = 0; i < nraw; i++) {
        if (used[i])
            continue;
        if (!raw[i].has_section) {
            used[i] = true;
            struct strbuf nb = STRBUF_INIT;
            strbuf_puts(&nb, raw[i].name);
            if (raw[i].extended)
                strbuf_putc(&nb, '*');
            ps[np].name = strbuf_detach(&nb, NULL);
            ps[np].value = mystrdup(raw[i].value);
            np++;
            continue;
        }
        /* collect every section of this name */
        struct rawparam group[PARAMS_MAX];
        group[0] = raw[i];
        used[i] = true;
        size_t ng = 1;
        bool ext = raw[i].extended;
        for (size_t j = i + 1; j < nraw; j++) {
            if (!used[j] && raw[j].has_section && strcasecmp(raw[j].name, raw[i].name) == 0) {
                used[j] = true;
                group[ng++] = raw[j];
                ext = ext || raw[j].extended;
            }
        }
        qsort(group, ng, sizeof(group[0]), rawparam_cmp);
        struct strbuf nb = STRBUF_INIT, vb = STRBUF_INIT;
        strbuf_puts(&nb, raw[i].name);
        if (ext)
            strbuf_putc(&nb, '*');
        strbuf_puts(&vb, "");
        for (size_t k = 0; k < ng; k++) {
            if (ext && !group[k].extended) {
                /* a plain section inside an extended value: percent-encode it */
                if (k == 0)
                    strbuf_puts(&vb, "''");
                for (const unsigned char *c = (const unsigned char *)group[k].value; *c; c++) {
                    if (is_token_char(*c) && *c != '%' && *c != '\'' && *c != '*')
                        strbuf_putc(&vb, *c);
                    else
                        strbuf_printf(&vb, "%%%02X", *c);
                }
            } else {
                strbuf_puts(&vb, group[k].value);
            }
        }
        ps[np].name = strbuf_detach(&nb, NULL);
        ps[np].value = strbuf_detach(&vb, NULL);
        np++;
    }
    if (np > nplain + 1)
        qsort(ps + nplain, np - nplain, sizeof(*ps), param_name_cmp);
    for (size_t i = 0; i < nraw; i++) {
        myfree(raw[i].name);
        myfree(raw[i].value);
    }
    strbuf_release(&name);
    strbuf_release(&value);
    if (np == 0) {
        myfree(ps);
        ps = NULL;
    }
    *ps_r = ps;
    *n_r = np;
}

static const struct param *param_find(const struct param *ps, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(ps[i].name, name) == 0)
            return &ps[i];
    return NULL;
}

static void parse_content_type(struct part *p, const char *v, size_t len)
{
    struct lex lx = {v, v + len};
    struct strbuf t = STRBUF_INIT, s = STRBUF_INIT;
    lex_skip(&lx, NULL);
    if (lex_token(&lx, &t)) {
        lex_skip(&lx, NULL);
        if (lx.p < lx.end && *lx.p == '/') {
            lx.p++;
            lex_skip(&lx, NULL);
            if (lex_token(&lx, &s)) {
                myfree(p->type);
                myfree(p->subtype);
                p->type = strbuf_detach(&t, NULL);
                p->subtype = strbuf_detach(&s, NULL);
            }
        }
    }
    strbuf_release(&t);
    strbuf_release(&s);
    /* Parameters count even when the type itself is bad (charset still matters). */
    params_free(p->params, p->nparams);
    parse_params(&lx, &p->params, &p->nparams);
}

static void parse_disposition(struct part *p, const char *v, size_t len)
{
    struct lex lx = {v, v + len};
    struct strbuf t = STRBUF_INIT;
    lex_skip(&lx, NULL);
    if (!lex_token(&lx, &t)) {
        strbuf_release(&t);
        return;
    }
    myfree(p->disp);
    p->disp = strbuf_detach(&t, NULL);
    params_free(p->dparams, p->ndparams);
    parse_params(&lx, &p->dparams, &p->ndparams);
}

static void parse_language(struct part *p, const char *v, size_t len)
{
    struct lex lx = {v, v + len};
    struct strbuf t = STRBUF_INIT;
    for (;;) {
        lex_skip(&lx, NULL);
        if (lx.p >= lx.end)
            break;
        if (*lx.p == ',') {
            lx.p++;
            continue;
        }
        strbuf_reset(&t);
        if (!lex_token(&lx, &t)) {
            lx.p++;
            continue;
        }
        if (p->nlangs < PARAMS_MAX) {
            p->langs = myreallocarray(p->langs, p->nlangs + 1, sizeof(*p->langs));
            p->langs[p->nlangs++] = mymemdup(t.data, t.len);
        }
    }
    strbuf_release(&t);
}

/* Content-Transfer-Encoding: one token, else the field is ignored ("7bit"). */
static void parse_encoding(struct part *p, const char *v, size_t len)
{
    struct lex lx = {v, v + len};
    struct strbuf t = STRBUF_INIT;
    lex_skip(&lx, NULL);
    if (lex_token(&lx, &t)) {
        lex_skip(&lx, NULL);
        if (lx.p == lx.end) {
            myfree(p->enc);
            p->enc = strbuf_detach(&t, NULL);
        }
    }
    strbuf_release(&t);
}

/* A single unstructured value (Content-ID, -Description, -MD5, -Location). */
static char *field_copy(const char *v, size_t len)
{
    struct strbuf b = STRBUF_INIT;
    unfold(v, len, &b);
    if (b.len > FIELD_VALUE_MAX)
        strbuf_truncate(&b, FIELD_VALUE_MAX);
    char *r = copy_nul_safe(strbuf_str(&b), b.len);
    strbuf_release(&b);
    return r;
}

static void set_field(char **slot, const char *v, size_t len)
{
    if (*slot == NULL) /* the first one counts */
        *slot = field_copy(v, len);
}

/*
 * The Content-* fields of the header of part pi. A message's own header
 * (top level or attached) counts as MIME only with a MIME-Version or a
 * Content-Type field (RFC 2045 §4; Dovecot's rule): a stray
 * Content-Transfer-Encoding in plain RFC 822 mail is ignored.
 */
static void parse_mime_header(const struct message *m, struct part *p, bool message_top)
{
    struct hdr_iter it = {m->data + p->hdr_off, m->data + p->hdr_off + p->hdr_len};
    struct hdr_field f;
    if (message_top) {
        bool mime = false;
        while (!mime && hdr_next(&it, &f))
            mime = hdr_name_is(&f, "mime-version") || hdr_name_is(&f, "content-type");
        if (!mime)
            return;
        it.p = m->data + p->hdr_off;
    }
    /* Repeated fields: the first counts, but the last Content-Disposition (Dovecot's choices). */
    bool seen_type = false, seen_enc = false, seen_lang = false;
    while (hdr_next(&it, &f)) {
        if (f.name_len < 8 || strncasecmp(f.name, "content-", 8) != 0)
            continue;
        if (hdr_name_is(&f, "content-type")) {
            if (!seen_type)
                parse_content_type(p, f.value, f.value_len);
            seen_type = true;
        } else if (hdr_name_is(&f, "content-transfer-encoding")) {
            if (!seen_enc)
                parse_encoding(p, f.value, f.value_len);
            seen_enc = true;
        } else if (hdr_name_is(&f, "content-disposition")) {
            parse_disposition(p, f.value, f.value_len);
        } else if (hdr_name_is(&f, "content-language")) {
            if (!seen_lang)
                parse_language(p, f.value, f.value_len);
            seen_lang = true;
        } else if (hdr_name_is(&f, "content-id")) {
            set_field(&p->id, f.value, f.value_len);
        } else if (hdr_name_is(&f, "content-description")) {
            set_field(&p->desc, f.value, f.value_len);
        } else if (hdr_name_is(&f, "content-md5")) {
            set_field(&p->md5, f.value, f.value_len);
        } else if (hdr_name_is(&f, "content-location")) {
            set_field(&p->loc, f.value, f.value_len);
        }
    }
}

static bool part_is(const struct part *p, const char *type, const char *subtype)
{
    const char *t = p->type, *s = p->subtype;
    if (t == NULL) {
        t = p->digest_child ? "message" : "text";
        s = p->digest_child ? "rfc822" : "plain";
    }
    return strcasecmp(t, type) == 0 && (subtype == NULL || strcasecmp(s, subtype) == 0);
}

static bool encoding_is_identity(const struct part *p)
{
    return p->enc == NULL || strcasecmp(p->enc, "7bit") == 0 || strcasecmp(p->enc, "8bit") == 0 ||
           strcasecmp(p->enc, "binary") == 0;
}

/* ---- structure ---- */

/*
 * Does the line at s (length up to end) start a boundary delimiter for b?
 * "--" boundary, then the end of the line, whitespace, or "--" (close).
 * *close_r tells which.
 */
static bool boundary_line(const char *s, const char *end, const char *b, size_t blen, bool *close_r)
{
    if ((size_t)(end - s) < blen + 2 || s[0] != '-' || s[1] != '-' || memcmp(s + 2, b, blen) != 0)
        return false;
    const char *q = s + 2 + blen;
    if (q + 1 < end && q[0] == '-' && q[1] == '-') {
        *close_r = true;
        return true;
    }
    *close_r = false;
    return q == end || *q == '\n' || *q == '\r' || is_wsp(*q);
}

struct parse_ctx {
    struct message *m;
};

static void parse_entity(struct parse_ctx *ctx, size_t pi, unsigned depth);

static size_t add_child(struct parse_ctx *ctx, size_t parent, size_t *last, size_t off, size_t len,
                        bool digest)
{
    struct message *m = ctx->m;
    size_t ci = part_new(m);
    struct part *c = &m->parts[ci];
    c->parent = parent;
    c->hdr_off = off;
    c->hdr_len = header_block_len(m->data + off, len);
    c->body_off = off + c->hdr_len;
    c->body_len = len - c->hdr_len;
    c->digest_child = digest;
    struct part *p = &m->parts[parent];
    if (*last == NONE)
        p->first_child = ci;
    else
        m->parts[*last].next = ci;
    *last = ci;
    p->nchildren++;
    return ci;
}

static void parse_multipart(struct parse_ctx *ctx, size_t pi, unsigned depth)
{
    struct message *m = ctx->m;
    struct part *p = &m->parts[pi];
    const struct param *bp = param_find(p->params, p->nparams, "boundary");
    if (bp == NULL || bp->value[0] == '\0')
        return; /* rendered as a multipart with one empty text/plain part */
    char *b = mystrdup(bp->value);
    size_t blen = strlen(b);
    bool digest = part_is(p, "multipart", "digest");
    const char *base = m->data;
    const char *s = base + p->body_off, *end = s + p->body_len;
    size_t last = NONE;
    const char *cur = NULL; /* start of the current part, NULL in the preamble */
    while (s < end) {
        bool close;
        if (boundary_line(s, end, b, blen, &close)) {
            if (cur != NULL) {
                /* the line end before the boundary belongs to the boundary */
                const char *stop = s;
                if (stop > cur && stop[-1] == '\n')
                    stop--;
                if (stop > cur && stop[-1] == '\r')
                    stop--;
                if (m->nparts >= MESSAGE_MAX_PARTS)
                    break;
                size_t ci =
                    add_child(ctx, pi, &last, (size_t)(cur - base), (size_t)(stop - cur), digest);
                m->parts[ci].trimmed = (size_t)(s - stop);
            }
            if (close) {
                cur = NULL;
                break;
            }
            cur = line_next(s, end);
            s = cur;
            continue;
        }
        s = line_next(s, end);
    }
    if (cur != NULL && m->nparts < MESSAGE_MAX_PARTS) /* missing close delimiter */
        add_child(ctx, pi, &last, (size_t)(cur - base), (size_t)(end - cur), digest);
    myfree(b);
    for (size_t ci = m->parts[pi].first_child; ci != NONE; ci = m->parts[ci].next)
        parse_entity(ctx, ci, depth + 1);
}

/* Parse the MIME header of part pi (ranges set) and descend. */
static void parse_entity(struct parse_ctx *ctx, size_t pi, unsigned depth)
{
    struct message *m = ctx->m;
    size_t parent = m->parts[pi].parent;
    parse_mime_header(m, &m->parts[pi], parent == NONE || m->parts[parent].kind == PART_MESSAGE);
    struct part *p = &m->parts[pi];
    p->body_size = message_crlf_len(m->data + p->body_off, p->body_len);
    p->body_lines = count_lf(m->data + p->body_off, p->body_len);
    if (part_is(p, "multipart", NULL)) {
        p->kind = PART_MULTIPART;
        if (depth + 1 < MESSAGE_MAX_DEPTH)
            parse_multipart(ctx, pi, depth);
    } else if (part_is(p, "message", "rfc822")) {
        if (depth + 1 >= MESSAGE_MAX_DEPTH || !encoding_is_identity(p) ||
            m->nparts >= MESSAGE_MAX_PARTS) {
            p->opaque = true;
            return;
        }
        p->kind = PART_MESSAGE;
        if (p->trimmed > 0 && p->body_len > 0) {
            /*
             * An attached message whose header's blank line is the line end
             * before the next boundary keeps that blank line (Dovecot's
             * parser reads it as the end of that header).
             */
            bool found, found2;
            const char *b = m->data + p->body_off;
            (void)header_block_len_found(b, p->body_len, &found);
            size_t hl2 = header_block_len_found(b, p->body_len + p->trimmed, &found2);
            if (!found && found2 && hl2 == p->body_len + p->trimmed) {
                p->body_len += p->trimmed;
                p->body_size = message_crlf_len(b, p->body_len);
                p->body_lines = count_lf(b, p->body_len);
            }
        }
        size_t last = NONE;
        size_t ci = add_child(ctx, pi, &last, p->body_off, p->body_len, false);
        parse_entity(ctx, ci, depth + 1);
    }
}

struct message *message_parse(const char *data, size_t len)
{
    struct message *m = mycalloc(1, sizeof(*m));
    m->data = data;
    m->len = len;
    struct parse_ctx ctx = {m};
    size_t ri = part_new(m);
    struct part *r = &m->parts[ri];
    r->hdr_off = 0;
    r->hdr_len = header_block_len(data, len);
    r->body_off = r->hdr_len;
    r->body_len = len - r->hdr_len;
    parse_entity(&ctx, ri, 0);
    return m;
}

size_t message_part_count(const struct message *m)
{
    return m->nparts;
}

size_t message_size_crlf(const struct message *m)
{
    return message_crlf_len(m->data, m->len);
}

/* ---- IMAP strings ---- */

/* A literal; NUL, which no IMAP string may hold, becomes U+FFFD (as in Dovecot). */
static void imap_literal(struct strbuf *out, const char *s, size_t len)
{
    size_t nuls = 0;
    for (size_t i = 0; i < len; i++)
        nuls += s[i] == '\0';
    strbuf_printf(out, "{%zu}\r\n", len + 2 * nuls);
    if (nuls == 0) {
        strbuf_append(out, s, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            strbuf_puts(out, "\xEF\xBF\xBD");
        else
            strbuf_putc(out, s[i]);
    }
}

/*
 * string: quoted when every byte is a TEXT-CHAR below 0x80 and there are few
 * quoted-specials, else a literal (RFC 3501 §4.3: 8-bit needs a literal).
 * NUL (never allowed) becomes 0x80, as Dovecot does.
 */
static void imap_string(struct strbuf *out, const char *s, size_t len)
{
    size_t escapes = 0;
    bool literal = false;
    for (size_t i = 0; i < len && !literal; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            literal = ++escapes > 4;
        else if (c == '\r' || c == '\n' || c == 0 || c >= 0x80)
            literal = true;
    }
    if (literal) {
        imap_literal(out, s, len);
        return;
    }
    strbuf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            strbuf_putc(out, '\\');
        strbuf_putc(out, s[i]);
    }
    strbuf_putc(out, '"');
}

static void imap_nstring(struct strbuf *out, const char *s)
{
    if (s == NULL)
        strbuf_puts(out, "NIL");
    else
        imap_string(out, s, strlen(s));
}

/*
 * For text people read (subjects, display names): CR/LF dropped, whitespace
 * runs become one space, trimmed, NUL becomes U+FFFD. Like Dovecot, a value
 * that needed any of that, or has quoted-specials or 8-bit, goes in a literal.
 */
static void imap_string_human(struct strbuf *out, const char *s, size_t len)
{
    struct strbuf b = STRBUF_INIT;
    bool sp = true, modified = false;
    strbuf_grow(&b, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') {
            modified = true;
            continue;
        }
        if (c == ' ' || c == '\t') {
            if (!sp)
                strbuf_putc(&b, ' ');
            modified = modified || sp || c == '\t';
            sp = true;
            continue;
        }
        sp = false;
        if (c == 0)
            modified = true; /* imap_literal writes it as U+FFFD */
        if (c == '"' || c == '\\' || c >= 0x80)
            modified = true;
        strbuf_putc(&b, c);
    }
    if (b.len > 0 && b.data[b.len - 1] == ' ') {
        strbuf_truncate(&b, b.len - 1);
        modified = true;
    }
    if (b.len == 0)
        strbuf_puts(out, "\"\"");
    else if (modified)
        imap_literal(out, b.data, b.len);
    else
        imap_string(out, b.data, b.len);
    strbuf_release(&b);
}

/* ---- addresses (RFC 5322 §3.4, obsolete forms tolerated) ---- */

struct addr_out {
    struct strbuf *out;
    size_t count;
};

static void addr_emit(struct addr_out *ao, const char *name, size_t name_len, const char *route,
                      const char *mailbox, const char *host)
{
    if (ao->count++ == 0)
        strbuf_putc(ao->out, '(');
    strbuf_putc(ao->out, '(');
    if (name == NULL)
        strbuf_puts(ao->out, "NIL");
    else
        imap_string_human(ao->out, name, name_len);
    strbuf_putc(ao->out, ' ');
    imap_nstring(ao->out, route);
    strbuf_putc(ao->out, ' ');
    imap_nstring(ao->out, mailbox);
    strbuf_putc(ao->out, ' ');
    imap_nstring(ao->out, host);
    strbuf_putc(ao->out, ')');
}

/* Read a phrase/local-part word sequence: atoms (dots included) and quoted strings. */
static bool addr_word(struct lex *lx, struct strbuf *w)
{
    if (lx->p >= lx->end)
        return false;
    if (*lx->p == '"') {
        lex_quoted(lx, w);
        return true;
    }
    const char *s = lx->p;
    while (lx->p < lx->end) {
        unsigned char c = (unsigned char)*lx->p;
        /* atext (RFC 5322 §3.2.3) plus '.' and 8-bit; controls end a word */
        if (c <= 0x20 || c == 0x7f || strchr("()<>@,;:\\\"[]", c) != NULL)
            break;
        lx->p++;
    }
    if (lx->p == s)
        return false;
    strbuf_append(w, s, (size_t)(lx->p - s));
    return true;
}

/*
 * Domain after '@': a dot-atom (whitespace and comments allowed around the
 * dots, RFC 5322 obs-domain) or a domain literal. false when it is not one
 * (empty, a leading, trailing or double dot, an unclosed literal).
 */
static bool addr_domain(struct lex *lx, struct strbuf *d, struct strbuf *comment)
{
    lex_skip(lx, comment);
    if (lx->p < lx->end && *lx->p == '[') {
        const char *s = lx->p;
        const char *e = memchr(s, ']', (size_t)(lx->end - s));
        bool closed = e != NULL;
        e = closed ? e + 1 : lx->end;
        for (const char *c = s; c < e; c++)
            if (!is_lwsp((unsigned char)*c))
                strbuf_putc(d, *c);
        lx->p = e;
        lex_skip(lx, comment);
        return closed;
    }
    for (;;) {
        if (!addr_word(lx, d))
            return false;
        lex_skip(lx, comment);
        if (lx->p >= lx->end || *lx->p != '.')
            break;
        strbuf_putc(d, '.');
        lx->p++;
        lex_skip(lx, comment);
    }
    if (d->len == 0 || d->data[0] == '.' || d->data[d->len - 1] == '.' ||
        memmem(d->data, d->len, "..", 2) != NULL)
        return false;
    return true;
}

/*
 * Render an address-list header value as an IMAP address list, or NIL
 * when there is no address in it. Groups: (NIL NIL "name" NIL) ... (NIL NIL
 * NIL NIL). What a client sees for broken lists follows Dovecot's parser, so
 * nobody can tell the two apart: a missing local part or domain is shown as
 * MISSING_MAILBOX / MISSING_DOMAIN (never an empty host, which would mean a
 * group), a broken <address> gets the host SYNTAX_ERROR, an empty list
 * element gives a MISSING entry, words with no address become a display name,
 * and parsing stops at the first thing that is not a separator after an
 * address.
 */
static void render_addresses(const char *v, size_t len, struct addr_out *aop)
{
    /* a NUL ends the list, as in Dovecot */
    const char *nul = memchr(v, '\0', len);
    if (nul != NULL)
        len = (size_t)(nul - v);
    struct lex lx = {v, v + len};
    struct addr_out ao = *aop;
    struct strbuf phrase = STRBUF_INIT, comment = STRBUF_INIT, word = STRBUF_INIT;
    struct strbuf local = STRBUF_INIT, domain = STRBUF_INIT, route = STRBUF_INIT;
    bool in_group = false;

    for (;;) {
        strbuf_reset(&phrase);
        strbuf_reset(&comment);
        strbuf_reset(&local);
        lex_skip(&lx, &comment);
        if (lx.p >= lx.end)
            break;
        if (*lx.p == ',') { /* an empty element */
            addr_emit(&ao, NULL, 0, NULL, "MISSING_MAILBOX", "MISSING_DOMAIN");
            lx.p++;
            continue;
        }
        if (*lx.p == ';' && in_group) {
            lx.p++;
            addr_emit(&ao, NULL, 0, NULL, NULL, NULL);
            in_group = false;
            goto separator;
        }
        /* words: a display name, or a local part (dots join, spaces do not) */
        size_t nwords = 0;
        bool spaced = false;
        for (;;) {
            lex_skip(&lx, &comment);
            strbuf_reset(&word);
            if (lx.p < lx.end && *lx.p == '.' && nwords > 0) {
                strbuf_putc(&phrase, '.');
                strbuf_putc(&local, '.');
                lx.p++;
                continue;
            }
            if (!addr_word(&lx, &word))
                break;
            if (nwords++ > 0) {
                /* words may be empty (a "" quoted string) */
                if (local.len > 0 && local.data[local.len - 1] != '.' &&
                    (word.len == 0 || word.data[0] != '.'))
                    spaced = true;
                if (phrase.len == 0 || phrase.data[phrase.len - 1] != '.' || spaced)
                    strbuf_putc(&phrase, ' ');
            }
            strbuf_append(&phrase, word.data, word.len);
            strbuf_append(&local, word.data, word.len);
        }
        lex_skip(&lx, &comment);
        char c = lx.p < lx.end ? *lx.p : '\0';
        if (c == ':' && !in_group && nwords > 0) {
            lx.p++;
            addr_emit(&ao, NULL, 0, NULL, strbuf_str(&phrase), NULL);
            in_group = true;
            continue;
        }
        if (c == '<') {
            lx.p++;
            strbuf_reset(&local);
            strbuf_reset(&domain);
            strbuf_reset(&route);
            lex_skip(&lx, NULL);
            /* obs-route: "@a,@b:" */
            if (lx.p < lx.end && *lx.p == '@') {
                const char *rs = lx.p;
                const char *gt = memchr(rs, '>', (size_t)(lx.end - rs));
                const char *rend = gt == NULL ? lx.end : gt;
                const char *colon = memchr(rs, ':', (size_t)(rend - rs));
                if (colon != NULL) {
                    for (const char *q = rs; q < colon; q++)
                        if (!is_lwsp((unsigned char)*q))
                            strbuf_putc(&route, *q);
                    lx.p = colon + 1;
                }
            }
            for (;;) {
                lex_skip(&lx, NULL);
                if (lx.p < lx.end && *lx.p == '.') {
                    strbuf_putc(&local, '.');
                    lx.p++;
                    continue;
                }
                if (!addr_word(&lx, &local))
                    break;
            }
            lex_skip(&lx, NULL);
            bool ok = true, has_at = false;
            if (lx.p < lx.end && *lx.p == '@') {
                lx.p++;
                has_at = true;
                ok = addr_domain(&lx, &domain, NULL);
            }
            if (lx.p < lx.end && *lx.p == '>')
                lx.p++;
            else
                ok = false;
            const char *name = NULL;
            size_t name_len = 0;
            if (nwords > 0) {
                name = strbuf_str(&phrase);
                name_len = phrase.len;
            }
            const char *host = !ok      ? "SYNTAX_ERROR"
                               : has_at ? strbuf_str(&domain)
                                        : "MISSING_DOMAIN";
            addr_emit(&ao, name, name_len, route.len > 0 ? route.data : NULL,
                      local.len > 0 ? local.data : "MISSING_MAILBOX", host);
            lex_skip(&lx, &comment);
        } else if (c == '@' && !spaced) {
            /* addr-spec: the words were the local part */
            lx.p++;
            strbuf_reset(&domain);
            bool ok = addr_domain(&lx, &domain, &comment);
            lex_skip(&lx, &comment);
            addr_emit(&ao, comment.len > 0 ? comment.data : NULL, comment.len, NULL,
                      local.len > 0 ? local.data : "MISSING_MAILBOX",
                      ok ? strbuf_str(&domain) : "MISSING_DOMAIN");
        } else if (nwords > 0 && !spaced) {
            /* a bare local part */
            addr_emit(&ao, comment.len > 0 ? comment.data : NULL, comment.len, NULL,
                      local.len > 0 ? local.data : "MISSING_MAILBOX", "MISSING_DOMAIN");
        } else if (nwords > 0) {
            /* words and no address: a display name alone */
            addr_emit(&ao, strbuf_str(&phrase), phrase.len, NULL, "MISSING_MAILBOX",
                      "MISSING_DOMAIN");
        } else if (c == '@') {
            lx.p++;
            strbuf_reset(&domain);
            bool ok = addr_domain(&lx, &domain, &comment);
            addr_emit(&ao, NULL, 0, NULL, "MISSING_MAILBOX",
                      ok ? strbuf_str(&domain) : "MISSING_DOMAIN");
        } else {
            break; /* garbage where an address should start */
        }
    separator:
        lex_skip(&lx, NULL);
        if (lx.p >= lx.end)
            break;
        if (*lx.p == ';' && in_group) {
            lx.p++;
            addr_emit(&ao, NULL, 0, NULL, NULL, NULL);
            in_group = false;
            goto separator;
        }
        if (*lx.p != ',')
            break; /* not a separator: the rest is not parsed */
        lx.p++;
        lex_skip(&lx, NULL);
        if (lx.p >= lx.end)
            break; /* a trailing comma adds nothing */
        if (*lx.p == ',') {
            addr_emit(&ao, NULL, 0, NULL, "MISSING_MAILBOX", "MISSING_DOMAIN");
            lx.p++;
        }
    }
    if (in_group)
        addr_emit(&ao, NULL, 0, NULL, NULL, NULL);
    *aop = ao;
    strbuf_release(&phrase);
    strbuf_release(&comment);
    strbuf_release(&word);
    strbuf_release(&local);
    strbuf_release(&domain);
    strbuf_release(&route);
}

/* ---- ENVELOPE ---- */

enum env_field {
    ENV_DATE,
    ENV_SUBJECT,
    ENV_FROM,
    ENV_SENDER,
    ENV_REPLY_TO,
    ENV_TO,
    ENV_CC,
    ENV_BCC,
    ENV_IN_REPLY_TO,
    ENV_MESSAGE_ID,
    ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
    "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id",
};

/*
 * Every field called name in the header of p, as one IMAP address list
 * (Dovecot joins repeated address fields the same way); the number of
 * addresses, 0 with nothing appended when there is none.
 */
static size_t render_address_fields(const struct message *m, const struct part *p, const char *name,
                                    struct strbuf *out)
{
    struct hdr_iter it = {m->data + p->hdr_off, m->data + p->hdr_off + p->hdr_len};
    struct hdr_field f;
    struct addr_out ao = {out, 0};
    while (hdr_next(&it, &f))
        if (f.name_len > 0 && hdr_name_is(&f, name))
            render_addresses(f.value, f.value_len, &ao);
    if (ao.count > 0)
        strbuf_putc(out, ')');
    return ao.count;
}

static void envelope_of(const struct message *m, const struct part *p, struct strbuf *out)
{
    const char *val[ENV_COUNT] = {NULL};
    size_t vlen[ENV_COUNT] = {0};
    struct hdr_iter it = {m->data + p->hdr_off, m->data + p->hdr_off + p->hdr_len};
    struct hdr_field f;
    /* RFC 5322 allows one of each; when there are more the last counts, as in Dovecot. */
    while (hdr_next(&it, &f)) {
        if (f.name_len == 0)
            continue;
        for (int i = 0; i < ENV_COUNT; i++) {
            if (hdr_name_is(&f, env_names[i])) {
                val[i] = f.value;
                vlen[i] = f.value_len;
                break;
            }
        }
    }
    struct strbuf tmp = STRBUF_INIT;
    strbuf_putc(out, '(');
    for (int i = 0; i < ENV_COUNT; i++) {
        if (i > 0)
            strbuf_putc(out, ' ');
        const char *v = val[i];
        size_t vl = vlen[i];
        if (i >= ENV_FROM && i <= ENV_BCC) {
            /* an absent or empty Sender / Reply-To is From (RFC 3501 §7.4.2) */
            if (render_address_fields(m, p, env_names[i], out) == 0 &&
                ((i != ENV_SENDER && i != ENV_REPLY_TO) ||
                 render_address_fields(m, p, "from", out) == 0))
                strbuf_puts(out, "NIL");
            continue;
        }
        if (v == NULL) {
            strbuf_puts(out, "NIL");
            continue;
        }
        strbuf_reset(&tmp);
        switch (i) {
        case ENV_DATE:
        case ENV_IN_REPLY_TO:
        case ENV_MESSAGE_ID:
            unfold(v, vl, &tmp);
            imap_string(out, strbuf_str(&tmp), tmp.len);
            break;
        case ENV_SUBJECT: {
            /* the value without the whitespace after the colon and its last line end */
            while (vl > 0 && is_lwsp((unsigned char)*v)) {
                v++;
                vl--;
            }
            while (vl > 0 && (v[vl - 1] == '\n' || v[vl - 1] == '\r'))
                vl--;
            imap_string_human(out, v, vl);
            break;
        }
        default:
            break;
        }
    }
    strbuf_putc(out, ')');
    strbuf_release(&tmp);
}

void message_envelope(const struct message *m, struct strbuf *out)
{
    envelope_of(m, &m->parts[0], out);
}

/* ---- BODYSTRUCTURE ---- */

static void render_params(struct strbuf *out, const struct param *ps, size_t n, bool add_charset)
{
    if (n == 0 && !add_charset) {
        strbuf_puts(out, "NIL");
        return;
    }
    strbuf_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strbuf_putc(out, ' ');
        imap_string(out, ps[i].name, strlen(ps[i].name));
        strbuf_putc(out, ' ');
        imap_string(out, ps[i].value, strlen(ps[i].value));
    }
    if (add_charset) /* the RFC 2045 default, last as Dovecot shows it */
        strbuf_puts(out, n > 0 ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
    strbuf_putc(out, ')');
}

/* disposition, language, location: the extension data both kinds share. */
static void render_ext_tail(struct strbuf *out, const struct part *p)
{
    strbuf_putc(out, ' ');
    if (p->disp == NULL) {
        strbuf_puts(out, "NIL");
    } else {
        strbuf_putc(out, '(');
        imap_string(out, p->disp, strlen(p->disp));
        strbuf_putc(out, ' ');
        render_params(out, p->dparams, p->ndparams, false);
        strbuf_putc(out, ')');
    }
    strbuf_putc(out, ' ');
    if (p->nlangs == 0) {
        strbuf_puts(out, "NIL");
    } else {
        strbuf_putc(out, '(');
        for (size_t i = 0; i < p->nlangs; i++) {
            if (i > 0)
                strbuf_putc(out, ' ');
            imap_string(out, p->langs[i], strlen(p->langs[i]));
        }
        strbuf_putc(out, ')');
    }
    strbuf_putc(out, ' ');
    imap_nstring(out, p->loc);
}

#define EMPTY_TEXT_PART "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

/*
 * Rendered iteratively with an explicit stack so nesting never costs C
 * stack (the parser already bounds the depth, this is belt and braces).
 */
struct bs_frame {
    size_t pi;
    size_t child; /* next child to render, NONE when done */
    bool started;
};

static void render_leaf_open(const struct part *p, struct strbuf *out)
{
    const char *type = p->type, *subtype = p->subtype;
    bool defaulted = type == NULL;
    if (defaulted) {
        type = p->digest_child ? "message" : "text";
        subtype = p->digest_child ? "rfc822" : "plain";
    }
    if (p->opaque) {
        type = "application";
        subtype = "octet-stream";
    }
    strbuf_putc(out, '(');
    imap_string(out, type, strlen(type));
    strbuf_putc(out, ' ');
    imap_string(out, subtype, strlen(subtype));
    strbuf_putc(out, ' ');
    bool text = !p->opaque && strcasecmp(type, "text") == 0;
    bool add_charset = text && param_find(p->params, p->nparams, "charset") == NULL;
    render_params(out, p->params, p->nparams, add_charset);
    strbuf_putc(out, ' ');
    imap_nstring(out, p->id);
    strbuf_putc(out, ' ');
    imap_nstring(out, p->desc);
    strbuf_putc(out, ' ');
    imap_nstring(out, p->enc == NULL ? "7bit" : p->enc);
    strbuf_printf(out, " %zu", p->body_size);
    if (text)
        strbuf_printf(out, " %zu", p->body_lines);
}

static void render_leaf_close(const struct part *p, bool ext, struct strbuf *out)
{
    if (p->kind == PART_MESSAGE)
        strbuf_printf(out, " %zu", p->body_lines);
    if (ext) {
        strbuf_putc(out, ' ');
        imap_nstring(out, p->md5);
        render_ext_tail(out, p);
    }
    strbuf_putc(out, ')');
}

static void render_multipart_close(const struct part *p, bool ext, struct strbuf *out)
{
    strbuf_putc(out, ' ');
    imap_string(out, p->subtype, strlen(p->subtype));
    if (ext) {
        strbuf_putc(out, ' ');
        render_params(out, p->params, p->nparams, false);
        render_ext_tail(out, p);
    }
    strbuf_putc(out, ')');
}

static void bodystructure_of(const struct message *m, size_t root, bool ext, struct strbuf *out)
{
    struct bs_frame stack[MESSAGE_MAX_DEPTH * 2 + 4];
    size_t sp = 0;
    stack[sp++] = (struct bs_frame){root, NONE, false};
    while (sp > 0) {
        struct bs_frame *fr = &stack[sp - 1];
        const struct part *p = &m->parts[fr->pi];
        if (!fr->started) {
            fr->started = true;
            if (p->kind == PART_MULTIPART) {
                strbuf_putc(out, '(');
                if (p->first_child == NONE) {
                    /* no parts: not allowed in IMAP, show one empty text part */
                    strbuf_puts(out, EMPTY_TEXT_PART);
                    if (ext)
                        strbuf_puts(out, " NIL NIL NIL NIL");
                    strbuf_putc(out, ')');
                }
                fr->child = p->first_child;
            } else {
                render_leaf_open(p, out);
                if (p->kind == PART_MESSAGE && p->first_child != NONE) {
                    strbuf_putc(out, ' ');
                    envelope_of(m, &m->parts[p->first_child], out);
                    strbuf_putc(out, ' ');
                    fr->child = p->first_child;
                } else {
                    fr->child = NONE;
                }
            }
        }
        if (fr->child != NONE && sp < sizeof(stack) / sizeof(stack[0])) {
            size_t ci = fr->child;
            fr->child = p->kind == PART_MULTIPART ? m->parts[ci].next : NONE;
            stack[sp++] = (struct bs_frame){ci, NONE, false};
            continue;
        }
        if (p->kind == PART_MULTIPART)
            render_multipart_close(p, ext, out);
        else
            render_leaf_close(p, ext, out);
        sp--;
    }
}

void message_bodystructure(const struct message *m, bool extended, struct strbuf *out)
{
    bodystructure_of(m, 0, extended, out);
}

/* ---- sections ---- */

/* Part n (1-based) of the message whose top entity is top. */
static size_t message_subpart(const struct message *m, size_t top, unsigned long n)
{
    const struct part *t = &m->parts[top];
    if (t->kind != PART_MULTIPART)
        return n == 1 ? top : NONE;
    size_t ci = t->first_child;
    for (unsigned long i = 1; ci != NONE && i < n; i++)
        ci = m->parts[ci].next;
    return ci;
}

int message_section(const struct message *m, const char *part, enum message_sec what, size_t *off_r,
                    size_t *len_r)
{
    size_t cur = NONE;
    const char *s = part;
    while (*s != '\0') {
        if (!isdigit((unsigned char)*s) || *s == '0')
            return -1;
        unsigned long n = 0;
        while (isdigit((unsigned char)*s)) {
            if (n > 1000000)
                return -1;
            n = n * 10 + (unsigned long)(*s++ - '0');
        }
        if (*s == '.') {
            if (*++s == '\0')
                return -1;
        } else if (*s != '\0') {
            return -1;
        }
        if (cur == NONE) {
            cur = message_subpart(m, 0, n);
        } else {
            const struct part *c = &m->parts[cur];
            if (c->kind == PART_MULTIPART) {
                size_t ci = c->first_child;
                for (unsigned long i = 1; ci != NONE && i < n; i++)
                    ci = m->parts[ci].next;
                cur = ci;
            } else if (c->kind == PART_MESSAGE && c->first_child != NONE) {
                cur = message_subpart(m, c->first_child, n);
            } else if (n != 1 || cur == 0 || m->parts[c->parent].kind == PART_MESSAGE) {
                /* Dovecot's answers: a body part's part 1 is itself, but a
                   single-part message (top level or attached) has no 1.1 */
                cur = NONE;
            }
        }
        if (cur == NONE)
            return -1;
    }
    const struct part *p;
    if (cur == NONE) {
        p = &m->parts[0];
        switch (what) {
        case MESSAGE_SEC_ALL:
            *off_r = 0;
            *len_r = m->len;
            return 0;
        case MESSAGE_SEC_HEADER:
            *off_r = p->hdr_off;
            *len_r = p->hdr_len;
            return 0;
        case MESSAGE_SEC_TEXT:
            *off_r = p->body_off;
            *len_r = p->body_len;
            return 0;
        case MESSAGE_SEC_MIME:
            return -1;
        }
        return -1;
    }
    p = &m->parts[cur];
    switch (what) {
    case MESSAGE_SEC_ALL:
        *off_r = p->body_off;
        *len_r = p->body_len;
        return 0;
    case MESSAGE_SEC_MIME:
        *off_r = p->hdr_off;
        *len_r = p->hdr_len;
        return 0;
    case MESSAGE_SEC_HEADER:
    case MESSAGE_SEC_TEXT:
        if (p->kind != PART_MESSAGE || p->first_child == NONE)
            return -1;
        p = &m->parts[p->first_child];
        *off_r = what == MESSAGE_SEC_HEADER ? p->hdr_off : p->body_off;
        *len_r = what == MESSAGE_SEC_HEADER ? p->hdr_len : p->body_len;
        return 0;
    }
    return -1;
}

void message_header_filter(const char *hdr, size_t len, const char *const *names, size_t count,
                           bool exclude, struct strbuf *out)
{
    struct hdr_iter it = {hdr, hdr + len};
    struct hdr_field f;
    while (hdr_next(&it, &f)) {
        bool match = false;
        for (size_t i = 0; i < count && !match && f.name_len > 0; i++)
            match = hdr_name_is(&f, names[i]);
        if (f.name_len == 0)
            match = false;
        if (match != exclude && !(exclude && f.name_len == 0)) {
            message_append_crlf(f.start, (size_t)(f.stop - f.start), out);
            /* a last field without a line end still ends with one */
            if (f.stop == f.start || f.stop[-1] != '\n')
                strbuf_puts(out, "\r\n");
        }
    }
    strbuf_puts(out, "\r\n");
}

int message_header_raw(const struct message *m, const char *name, struct strbuf *out)
{
    const struct part *p = &m->parts[0];
    struct hdr_iter it = {m->data + p->hdr_off, m->data + p->hdr_off + p->hdr_len};
    struct hdr_field f;
    while (hdr_next(&it, &f)) {
        if (f.name_len > 0 && hdr_name_is(&f, name)) {
            unfold(f.value, f.value_len, out);
            return 0;
        }
    }
    return -1;
}

/* ---- charsets ---- */

static bool charset_is_utf8_compatible(const char *cs)
{
    return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
           strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/*
 * iconv descriptors for the last few charsets, failures included, kept for
 * the life of the process: glibc loads and unloads a gconv module on every
 * iconv_open/iconv_close pair, which made SEARCH over many messages slow.
 * Not thread-safe; tegami daemons are single-threaded.
 */
#define ICONV_CACHE_SIZE 8
static struct {
    bool used;
    char name[64];
    iconv_t cd;
} iconv_cache[ICONV_CACHE_SIZE];
static unsigned iconv_cache_next;

static iconv_t iconv_cached(const char *charset)
{
    for (unsigned i = 0; i < ICONV_CACHE_SIZE; i++)
        if (iconv_cache[i].used && strcasecmp(iconv_cache[i].name, charset) == 0)
            return iconv_cache[i].cd;
    unsigned slot = iconv_cache_next++ % ICONV_CACHE_SIZE;
    if (iconv_cache[slot].used && iconv_cache[slot].cd != (iconv_t)-1)
        iconv_close(iconv_cache[slot].cd);
    iconv_cache[slot].used = true;
    size_t n = strlen(charset);
    if (n >= sizeof(iconv_cache[slot].name))
        n = sizeof(iconv_cache[slot].name) - 1;
    memcpy(iconv_cache[slot].name, charset, n);
    iconv_cache[slot].name[n] = '\0';
    iconv_cache[slot].cd = iconv_open("UTF-8", charset);
    return iconv_cache[slot].cd;
}

/*
 * Convert len bytes in charset cs to UTF-8 appended to out. Unknown charsets
 * keep their bytes; undecodable sequences become U+FFFD.
 */
static void charset_to_utf8(const char *cs, const char *s, size_t len, struct strbuf *out)
{
    if (cs == NULL || *cs == '\0' || charset_is_utf8_compatible(cs)) {
        strbuf_append(out, s, len);
        return;
    }
    char csbuf[64];
    size_t cl = strlen(cs);
    if (cl >= sizeof(csbuf)) {
        strbuf_append(out, s, len);
        return;
    }
    memcpy(csbuf, cs, cl + 1);
    char *star = strchr(csbuf, '*'); /* RFC 2231 language suffix */
    if (star != NULL)
        *star = '\0';
    if (csbuf[0] == '\0') { /* "" would mean the locale's charset to iconv */
        strbuf_append(out, s, len);
        return;
    }
    iconv_t cd = iconv_cached(csbuf);
    if (cd == (iconv_t)-1) {
        strbuf_append(out, s, len);
        return;
    }
    iconv(cd, NULL, NULL, NULL, NULL); /* reset the shift state left by the last user */
    char *in = (char *)s;
    size_t inleft = len;
    char buf[1024];
    while (inleft > 0) {
        char *o = buf;
        size_t oleft = sizeof(buf);
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        strbuf_append(out, buf, (size_t)(o - buf));
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            /* EILSEQ or EINVAL (truncated): replace one byte and go on */
            strbuf_puts(out, "\xEF\xBF\xBD");
            in++;
            inleft--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    char *o = buf;
    size_t oleft = sizeof(buf);
    iconv(cd, NULL, NULL, &o, &oleft);
    strbuf_append(out, buf, (size_t)(o - buf));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Quoted-printable body (RFC 2045 §6.7); bad escapes are kept literally. */
static void decode_qp(const char *s, size_t len, bool header, struct strbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '_' && header) {
            strbuf_putc(out, ' ');
        } else if (c == '=') {
            if (i + 2 < len + 0 && hexval((unsigned char)s[i + 1]) >= 0 &&
                hexval((unsigned char)s[i + 2]) >= 0) {
                strbuf_putc(out,
                            hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
                i += 2;
            } else {
                /* soft line break: "=" then optional whitespace then line end */
                size_t j = i + 1;
                while (j < len && is_wsp(s[j]))
                    j++;
                if (j < len && s[j] == '\r')
                    j++;
                if (j < len && s[j] == '\n') {
                    i = j;
                } else if (j >= len) {
                    i = j;
                } else {
                    strbuf_putc(out, '=');
                }
            }
        } else {
            strbuf_putc(out, c);
        }
    }
}

/* ---- RFC 2047 ---- */

/*
 * Parse an encoded word at s: "=?" charset "?" B|Q "?" text "?=", no
 * whitespace inside. On success sets the pieces and returns its length.
 */
static size_t encoded_word(const char *s, const char *end, const char **cs, size_t *cs_len,
                           char *enc, const char **text, size_t *text_len)
{
    if (end - s < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    const char *p = s + 2;
    const char *q = p;
    while (q < end && *q != '?' && !is_lwsp((unsigned char)*q))
        q++;
    if (q >= end || *q != '?' || q == p || q - p > 60)
        return 0;
    *cs = p;
    *cs_len = (size_t)(q - p);
    q++;
    if (q + 2 > end || (toupper((unsigned char)*q) != 'B' && toupper((unsigned char)*q) != 'Q') ||
        q[1] != '?')
        return 0;
    *enc = (char)toupper((unsigned char)*q);
    q += 2;
    const char *t = q;
    /* Bounded so a value full of "=?" costs linear time (RFC 2047 says 75). */
    while (q + 1 < end && !(q[0] == '?' && q[1] == '=')) {
        if (is_lwsp((unsigned char)*q) || q - s > 4096)
            return 0;
        q++;
    }
    if (q + 1 >= end)
        return 0;
    *text = t;
    *text_len = (size_t)(q - t);
    return (size_t)(q + 2 - s);
}

void message_decode_2047(const char *value, size_t len, struct strbuf *out_utf8)
{
    const char *s = value, *end = value + len;
    struct strbuf pending = STRBUF_INIT; /* decoded bytes of adjacent words */
    char pcs[64] = "";
    const char *ws = NULL; /* whitespace run after an encoded word, held back */
    size_t ws_len = 0;
    bool after_word = false;
    while (s < end) {
        const char *cs, *text;
        size_t cs_len, text_len;
        char enc;
        size_t wl = encoded_word(s, end, &cs, &cs_len, &enc, &text, &text_len);
        if (wl > 0) {
            char csn[64];
            memcpy(csn, cs, cs_len);
            csn[cs_len] = '\0';
            if (pending.len > 0 && strcasecmp(csn, pcs) != 0) {
                charset_to_utf8(pcs, pending.data, pending.len, out_utf8);
                strbuf_reset(&pending);
            }
            /* whitespace between two encoded words is dropped (RFC 2047 §6.2) */
            ws = NULL;
            ws_len = 0;
            memcpy(pcs, csn, cs_len + 1);
            if (enc == 'B')
                base64_decode_append(text, text_len, BASE64_TOLERANT, &pending);
            else
                decode_qp(text, text_len, true, &pending);
            s += wl;
            after_word = true;
            continue;
        }
        if (after_word && is_lwsp((unsigned char)*s)) {
            const char *w = s;
            while (s < end && is_lwsp((unsigned char)*s))
                s++;
            ws = w;
            ws_len = (size_t)(s - w);
            continue;
        }
        if (pending.len > 0) {
            charset_to_utf8(pcs, pending.data, pending.len, out_utf8);
            strbuf_reset(&pending);
        }
        if (ws != NULL) {
            strbuf_append(out_utf8, ws, ws_len);
            ws = NULL;
        }
        after_word = false;
        /* copy plain text up to the next possible encoded word */
        const char *n = s + 1;
        while (n < end && !(n[0] == '=' && n + 1 < end && n[1] == '?'))
            n++;
        strbuf_append(out_utf8, s, (size_t)(n - s));
        s = n;
    }
    if (pending.len > 0)
        charset_to_utf8(pcs, pending.data, pending.len, out_utf8);
    if (ws != NULL)
        strbuf_append(out_utf8, ws, ws_len);
    strbuf_release(&pending);
}

int message_header_decoded(const struct message *m, const char *name, struct strbuf *out_utf8)
{
    const struct part *p = &m->parts[0];
    struct hdr_iter it = {m->data + p->hdr_off, m->data + p->hdr_off + p->hdr_len};
    struct hdr_field f;
    struct strbuf tmp = STRBUF_INIT;
    int found = -1;
    while (hdr_next(&it, &f)) {
        if (f.name_len == 0 || !hdr_name_is(&f, name))
            continue;
        if (found == 0)
            strbuf_puts(out_utf8, ", ");
        strbuf_reset(&tmp);
        unfold(f.value, f.value_len, &tmp);
        message_decode_2047(strbuf_str(&tmp), tmp.len, out_utf8);
        found = 0;
    }
    strbuf_release(&tmp);
    return found;
}

/* ---- body text ---- */

/* The part after i in document order (depth first), NONE at the end. */
static size_t part_next_preorder(const struct message *m, size_t i)
{
    if (m->parts[i].first_child != NONE)
        return m->parts[i].first_child;
    while (i != NONE) {
        if (m->parts[i].next != NONE)
            return m->parts[i].next;
        i = m->parts[i].parent;
    }
    return NONE;
}

void message_body_text(const struct message *m, size_t max, struct strbuf *out_utf8)
{
    size_t start = out_utf8->len;
    struct strbuf dec = STRBUF_INIT, conv = STRBUF_INIT;
    for (size_t i = 0; i != NONE; i = part_next_preorder(m, i)) {
        const struct part *p = &m->parts[i];
        size_t used = out_utf8->len - start;
        if (used >= max)
            break;
        if (p->parent != NONE && m->parts[p->parent].kind == PART_MESSAGE) {
            /* an attached message's header is part of the outer body: decoded */
            strbuf_reset(&dec);
            strbuf_reset(&conv);
            struct hdr_iter it = {m->data + p->hdr_off, m->data + p->hdr_off + p->hdr_len};
            struct hdr_field f;
            while (hdr_next(&it, &f) && conv.len < max) {
                if (f.name_len == 0)
                    continue;
                strbuf_reset(&dec);
                unfold(f.value, f.value_len, &dec);
                strbuf_append(&conv, f.name, f.name_len);
                strbuf_puts(&conv, ": ");
                message_decode_2047(strbuf_str(&dec), dec.len, &conv);
                strbuf_putc(&conv, '\n');
            }
            if (used > 0 && conv.len > 0) {
                strbuf_putc(out_utf8, '\n');
                used++;
            }
            size_t room = max > used ? max - used : 0;
            strbuf_append(out_utf8, strbuf_str(&conv), conv.len < room ? conv.len : room);
            used = out_utf8->len - start;
            if (used >= max)
                break;
        }
        if (p->kind != PART_LEAF || p->opaque || !part_is(p, "text", NULL))
            continue;
        const char *b = m->data + p->body_off;
        /* decode no more than can give max bytes (>= 1 output byte per 3 input) */
        size_t blen = p->body_len;
        size_t cap = (max - used) > (SIZE_MAX - 16) / 4 ? SIZE_MAX : (max - used) * 4 + 16;
        if (blen > cap)
            blen = cap;
        strbuf_reset(&dec);
        strbuf_reset(&conv);
        if (p->enc != NULL && strcasecmp(p->enc, "base64") == 0)
            base64_decode_append(b, blen, BASE64_TOLERANT, &dec); /* RFC 2045 §6.8 */
        else if (p->enc != NULL && strcasecmp(p->enc, "quoted-printable") == 0)
            decode_qp(b, blen, false, &dec);
        else
            strbuf_append(&dec, b, blen);
        const struct param *cs = param_find(p->params, p->nparams, "charset");
        charset_to_utf8(cs == NULL ? NULL : cs->value, strbuf_str(&dec), dec.len, &conv);
        if (used > 0) {
            strbuf_putc(out_utf8, '\n');
            used++;
        }
        size_t room = max > used ? max - used : 0;
        strbuf_append(out_utf8, strbuf_str(&conv), conv.len < room ? conv.len : room);
    }
    strbuf_release(&dec);
    strbuf_release(&conv);
}

/* ---- dates ---- */

static int month_of(const char *w, size_t len)
{
    static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec"};
    if (len < 3)
        return -1;
    for (int i = 0; i < 12; i++)
        if (strncasecmp(w, months[i], 3) == 0)
            return i;
    return -1;
}

/* RFC 5322 §4.3 obsolete zones; military letters count as -0000 (unknown). */
static bool zone_of(const char *w, size_t len, long *off_r)
{
    static const struct {
        const char *name;
        int hours;
    } zones[] = {{"UT", 0},   {"UTC", 0},  {"GMT", 0},  {"Z", 0},    {"EST", -5}, {"EDT", -4},
                 {"CST", -6}, {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        if (strlen(zones[i].name) == len && strncasecmp(w, zones[i].name, len) == 0) {
            *off_r = zones[i].hours * 3600L;
            return true;
        }
    }
    if (len == 1 && isalpha((unsigned char)w[0]) && toupper((unsigned char)w[0]) != 'J') {
        *off_r = 0;
        return true;
    }
    return false;
}

time_t message_parse_date(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    long day = -1, year = -1, hour = -1, min = -1, sec = 0, zone = 0;
    int mon = -1;
    bool have_zone = false;
    int guard = 0;
    while (p < end && guard++ < 64) {
        unsigned char c = (unsigned char)*p;
        if (c == '(') {
            int depth = 0;
            while (p < end) {
                if (*p == '(')
                    depth++;
                else if (*p == ')' && --depth == 0) {
                    p++;
                    break;
                }
                p++;
            }
            continue;
        }
        if (is_lwsp(c) || c == ',') {
            p++;
            continue;
        }
        if ((c == '+' || c == '-') && p + 1 < end && isdigit((unsigned char)p[1])) {
            const char *q = p + 1;
            long v = 0;
            int n = 0;
            while (q < end && isdigit((unsigned char)*q) && n < 6) {
                v = v * 10 + (*q - '0');
                q++;
                n++;
            }
            if (n == 4 && !have_zone) {
                long off = (v / 100) * 3600 + (v % 100) * 60;
                zone = c == '-' ? -off : off;
                have_zone = true;
            }
            p = q;
            continue;
        }
        if (isdigit(c)) {
            const char *q = p;
            long v = 0;
            int n = 0;
            while (q < end && isdigit((unsigned char)*q) && n < 9) {
                v = v * 10 + (*q - '0');
                q++;
                n++;
            }
            if (q < end && *q == ':' && hour < 0) {
                /* time: hh:mm[:ss] */
                hour = v;
                q++;
                long mm = 0;
                int k = 0;
                while (q < end && isdigit((unsigned char)*q) && k < 2) {
                    mm = mm * 10 + (*q - '0');
                    q++;
                    k++;
                }
                if (k == 0)
                    return -1;
                min = mm;
                if (q < end && *q == ':') {
                    q++;
                    long ss = 0;
                    k = 0;
                    while (q < end && isdigit((unsigned char)*q) && k < 2) {
                        ss = ss * 10 + (*q - '0');
                        q++;
                        k++;
                    }
                    sec = ss;
                }
            } else if (day < 0 && n <= 2 && mon < 0 && year < 0) {
                day = v;
            } else if (year < 0 && (day >= 0 || n >= 3)) {
                year = v;
                if (n <= 2)
                    year += year < 50 ? 2000 : 1900; /* RFC 5322 §4.3 */
                else if (n == 3)
                    year += 1900;
            } else if (day < 0 && n <= 2) {
                day = v; /* asctime: "Jan  2 15:04:05 2006" */
            }
            p = q;
            continue;
        }
        if (isalpha(c)) {
            const char *q = p;
            while (q < end && isalpha((unsigned char)*q))
                q++;
            size_t wl = (size_t)(q - p);
            int mo = month_of(p, wl);
            long off;
            if (mo >= 0 && mon < 0 && wl <= 9)
                mon = mo;
            else if (!have_zone && hour >= 0 && zone_of(p, wl, &off)) {
                zone = off;
                have_zone = true;
            }
            /* day names and other words are skipped */
            p = q;
            continue;
        }
        p++;
    }
    if (day < 1 || day > 31 || mon < 0 || year < 1900 || year > 9999 || hour < 0 || hour > 23 ||
        min < 0 || min > 59 || sec < 0 || sec > 60)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = (int)(year - 1900);
    tm.tm_mon = mon;
    tm.tm_mday = (int)day;
    tm.tm_hour = (int)hour;
    tm.tm_min = (int)min;
    tm.tm_sec = (int)(sec == 60 ? 59 : sec);
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return t - zone;
}

time_t message_date(const struct message *m)
{
    struct strbuf v = STRBUF_INIT;
    time_t t = -1;
    if (message_header_raw(m, "date", &v) == 0)
        t = message_parse_date(strbuf_str(&v), v.len);
    strbuf_release(&v);
    return t;
}
