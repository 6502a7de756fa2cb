/*
 * mime8to7 - downgrade an 8-bit message to 7 bits (see mime8to7.h).
 *
 * One pass per MIME level over the message in memory. An entity is split
 * into its header section and body; the header section is copied as it
 * is, except that a re-encoded leaf loses its Content-Transfer-Encoding
 * lines and gets "quoted-printable". Multipart bodies are cut at their
 * delimiter lines (RFC 2046 §5.1.1); the LF before a delimiter belongs to
 * the delimiter, so parts, delimiters, preamble and epilogue are copied
 * byte for byte unless they need encoding. Nesting is followed by bounded
 * recursion (MIME_MAX_DEPTH levels; each level costs one small frame).
 */
#include "mime8to7.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Levels of multipart / message/rfc822 nesting we walk; deeper is copied. */
#define MIME_MAX_DEPTH 20
/* RFC 2046 §5.1.1 allows 70 characters; anything far longer is not a boundary. */
#define MIME_MAX_BOUNDARY 200
/* RFC 2045 §6.7 rule 5: encoded lines are at most 76 characters. */
#define QP_LINE_MAX 76

bool mime_has_8bit(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)data[i] >= 0x80)
            return true;
    return false;
}

/* What the header section of one entity says. */
struct mime_hdr {
    size_t hdr_len;   /* bytes of header lines (each with its LF) */
    size_t body_off;  /* where the body starts (after the blank line, if any) */
    bool has_version; /* MIME-Version seen */
    bool has_type;    /* Content-Type seen */
    bool has_cte;     /* Content-Transfer-Encoding seen */
    char type[64];    /* "text/plain", lowercase; "" = none or unparsable */
    char cte[32];     /* lowercase token, "" = none */
    char boundary[MIME_MAX_BOUNDARY + 1];
    size_t boundary_len; /* 0 = none */
};

struct mime_state {
    struct strbuf *out;
    bool changed; /* some part was re-encoded */
};

static bool mime_is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

/* End of the line that starts at pos: index of its LF, or len. */
static size_t mime_eol(const char *data, size_t len, size_t pos)
{
    const char *lf = memchr(data + pos, '\n', len - pos);
    return lf ? (size_t)(lf - data) : len;
}

/* Is this line "name:" with a plausible field name (RFC 5322 §2.2)? */
static bool mime_is_field(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (unsigned char)line[i] > ' ' && (unsigned char)line[i] < 127 &&
           line[i] != ':')
        i++;
    /* Tolerate "Name :" (obsolete syntax, RFC 5322 §4.5). */
    size_t name_end = i;
    while (i < len && mime_is_wsp(line[i]))
        i++;
    return name_end > 0 && i < len && line[i] == ':';
}

/* Skip white space, line breaks of unfolded values and (nested) comments. */
static size_t mime_skip_cfws(const char *v, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        char c = v[i];
        if (depth > 0) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
        } else if (c == '(') {
            depth = 1;
        } else if (!(mime_is_wsp(c) || c == '\n' || c == '\r')) {
            break;
        }
        i++;
    }
    return i;
}

/* RFC 2045 §5.1 token characters. */
static bool mime_is_token(int c)
{
    return c > ' ' && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Copy a token at v[*i] lowercased into buf (truncated to fit); its length. */
static size_t mime_token(const char *v, size_t len, size_t *i, char *buf, size_t bufsize)
{
    size_t n = 0, start = *i;
    while (*i < len && mime_is_token((unsigned char)v[*i])) {
        if (n + 1 < bufsize) {
            char c = v[*i];
            buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
        (*i)++;
    }
    if (bufsize > 0)
        buf[n] = '\0';
    return *i - start;
}

/* Content-Type value (unfolded as it stands): type/subtype and boundary. */
static void mime_parse_type(const char *v, size_t len, struct mime_hdr *h)
{
    char type[32], sub[32];
    size_t i = mime_skip_cfws(v, len, 0);
    if (mime_token(v, len, &i, type, sizeof(type)) == 0)
        return;
    i = mime_skip_cfws(v, len, i);
    if (i >= len || v[i] != '/')
        return;
    i = mime_skip_cfws(v, len, i + 1);
    if (mime_token(v, len, &i, sub, sizeof(sub)) == 0)
        return;
    size_t tl = strlen(type), sl = strlen(sub);
    if (tl + 1 + sl >= sizeof(h->type))
        return;
    memcpy(h->type, type, tl);
    h->type[tl] = '/';
    memcpy(h->type + tl + 1, sub, sl + 1);
    /* Parameters: ; name = token | quoted-string */
    for (;;) {
        i = mime_skip_cfws(v, len, i);
        if (i >= len || v[i] != ';')
            return;
        i = mime_skip_cfws(v, len, i + 1);
        char name[32];
        if (mime_token(v, len, &i, name, sizeof(name)) == 0)
            return;
        i = mime_skip_cfws(v, len, i);
        if (i >= len || v[i] != '=')
            return;
        i = mime_skip_cfws(v, len, i + 1);
        char val[MIME_MAX_BOUNDARY + 2];
        size_t n = 0;
        bool too_long = false;
        if (i < len && v[i] == '"') {
            for (i++; i < len && v[i] != '"'; i++) {
                if (v[i] == '\\' && i + 1 < len)
                    i++;
                if (v[i] == '\n' || v[i] == '\r')
                    continue; /* folding inside the quotes */
                if (n < MIME_MAX_BOUNDARY)
                    val[n++] = v[i];
                else
                    too_long = true;
            }
            if (i < len)
                i++; /* closing quote; a missing one ends the value */
        } else {
            while (i < len && mime_is_token((unsigned char)v[i])) {
                if (n < MIME_MAX_BOUNDARY)
                    val[n++] = v[i];
                else
                    too_long = true;
                i++;
            }
        }
        if (strcmp(name, "boundary") == 0 && h->boundary_len == 0 && n > 0 && !too_long) {
            memcpy(h->boundary, val, n);
            h->boundary[n] = '\0';
            h->boundary_len = n;
        }
    }
}

/* Content-Transfer-Encoding value: one token, lowercased. */
static void mime_parse_cte(const char *v, size_t len, struct mime_hdr *h)
{
    size_t i = mime_skip_cfws(v, len, 0);
    mime_token(v, len, &i, h->cte, sizeof(h->cte));
}

/*
 * Does the field at line (whole field, with continuation lines) have this
 * name? Case-insensitive, "Name:" or "Name :".
 */
static bool mime_field_is(const char *line, size_t len, const char *name, size_t *value_r)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0)
        return false;
    size_t i = n;
    while (i < len && mime_is_wsp(line[i]))
        i++;
    if (i >= len || line[i] != ':')
        return false;
    *value_r = i + 1;
    return true;
}

/*
 * Split an entity into header section and body and read the MIME fields.
 * The header section runs to the first empty line (consumed) or to the
 * first line that is neither a field nor a continuation (not consumed).
 */
static void mime_parse_header(const char *data, size_t len, struct mime_hdr *h)
{
    memset(h, 0, sizeof(*h));
    size_t pos = 0;
    while (pos < len) {
        size_t eol = mime_eol(data, len, pos);
        size_t next = eol < len ? eol + 1 : len;
        size_t llen = eol - pos;
        if (llen == 0 || (llen == 1 && data[pos] == '\r')) {
            h->hdr_len = pos;
            h->body_off = next;
            return;
        }
        if (!mime_is_field(data + pos, llen)) {
            h->hdr_len = pos;
            h->body_off = pos;
            return;
        }
        /* The whole field: this line and its continuation lines. */
        size_t fend = next;
        while (fend < len && mime_is_wsp(data[fend])) {
            size_t e = mime_eol(data, len, fend);
            fend = e < len ? e + 1 : len;
        }
        const char *f = data + pos;
        size_t flen = fend - pos, v;
        if (mime_field_is(f, flen, "MIME-Version", &v)) {
            h->has_version = true;
        } else if (mime_field_is(f, flen, "Content-Type", &v)) {
            if (!h->has_type) /* the first one counts */
                mime_parse_type(f + v, flen - v, h);
            h->has_type = true;
        } else if (mime_field_is(f, flen, "Content-Transfer-Encoding", &v)) {
            if (!h->has_cte)
                mime_parse_cte(f + v, flen - v, h);
            h->has_cte = true;
        }
        pos = fend;
    }
    /* Header only, no body. */
    h->hdr_len = len;
    h->body_off = len;
}

static const char qp_hex[] = "0123456789ABCDEF";

/*
 * Quoted-printable (RFC 2045 §6.7) of data[0..len) with LF line ends: each
 * LF stays a hard line break, lines are soft-broken at 76 characters,
 * '=', control characters, 8-bit bytes and white space before a line end
 * are encoded. A last line without LF stays without one.
 */
static void mime_qp_encode(const char *data, size_t len, struct strbuf *out)
{
    size_t pos = 0;
    strbuf_grow(out, len + len / 8 + 16);
    while (pos < len) {
        size_t eol = mime_eol(data, len, pos);
        size_t col = 0;
        for (size_t i = pos; i < eol; i++) {
            unsigned char c = (unsigned char)data[i];
            bool last = i + 1 == eol;
            char tok[3];
            size_t tlen;
            if ((c >= 33 && c <= 126 && c != '=') || (mime_is_wsp(c) && !last)) {
                tok[0] = (char)c;
                tlen = 1;
            } else {
                tok[0] = '=';
                tok[1] = qp_hex[c >> 4];
                tok[2] = qp_hex[c & 15];
                tlen = 3;
            }
            /* Room for the soft break '=' unless this token ends the line. */
            size_t limit = last ? QP_LINE_MAX : QP_LINE_MAX - 1;
            if (col + tlen > limit) {
                strbuf_append(out, "=\n", 2);
                col = 0;
            }
            strbuf_append(out, tok, tlen);
            col += tlen;
        }
        if (eol < len)
            strbuf_putc(out, '\n');
        pos = eol < len ? eol + 1 : len;
    }
}

static void mime_entity(struct mime_state *st, const char *data, size_t len, int depth, bool top,
                        bool digest_part);

/* Preamble/epilogue: not shown by readers; encoded only if they hold 8-bit. */
static void mime_opaque(struct mime_state *st, const char *data, size_t len)
{
    if (mime_has_8bit(data, len)) {
        mime_qp_encode(data, len, st->out);
        st->changed = true;
    } else {
        strbuf_append(st->out, data, len);
    }
}

/* 0: not a delimiter, 1: "--boundary", 2: "--boundary--" (padding allowed). */
static int mime_delimiter(const char *line, size_t len, const struct mime_hdr *h)
{
    size_t b = h->boundary_len;
    if (len < 2 + b || line[0] != '-' || line[1] != '-' || memcmp(line + 2, h->boundary, b) != 0)
        return 0;
    size_t i = 2 + b;
    int kind = 1;
    if (i + 1 < len && line[i] == '-' && line[i + 1] == '-') {
        kind = 2;
        i += 2;
    }
    while (i < len && (mime_is_wsp(line[i]) || line[i] == '\r'))
        i++;
    return i == len ? kind : 0;
}

/* A multipart body: preamble, parts (each an entity), epilogue. */
static void mime_multipart(struct mime_state *st, const char *b, size_t blen,
                           const struct mime_hdr *h, int depth)
{
    bool digest = strcmp(h->type, "multipart/digest") == 0;
    size_t pos = 0, seg = 0;
    bool in_part = false;
    while (pos < blen) {
        size_t eol = mime_eol(b, blen, pos);
        size_t next = eol < blen ? eol + 1 : blen;
        int kind = mime_delimiter(b + pos, eol - pos, h);
        if (kind != 0) {
            /* RFC 2046 §5.1.1: the line break before a delimiter is part of it. */
            size_t end = pos;
            bool lf = end > seg && b[end - 1] == '\n';
            if (lf)
                end--;
            if (in_part)
                mime_entity(st, b + seg, end - seg, depth + 1, false, digest);
            else
                mime_opaque(st, b + seg, end - seg);
            if (lf)
                strbuf_putc(st->out, '\n');
            strbuf_append(st->out, b + pos, next - pos);
            seg = next;
            if (kind == 2) {
                mime_opaque(st, b + next, blen - next);
                return;
            }
            in_part = true;
        }
        pos = next;
    }
    /* No close delimiter: the last part runs to the end (or there were no parts). */
    if (in_part)
        mime_entity(st, b + seg, blen - seg, depth + 1, false, digest);
    else
        mime_opaque(st, b + seg, blen - seg);
}

/* Copy the header section without Content-Transfer-Encoding fields. */
static void mime_copy_header_without_cte(struct mime_state *st, const char *data, size_t hdr_len)
{
    size_t pos = 0;
    while (pos < hdr_len) {
        size_t fend = mime_eol(data, hdr_len, pos);
        fend = fend < hdr_len ? fend + 1 : hdr_len;
        while (fend < hdr_len && mime_is_wsp(data[fend])) {
            size_t e = mime_eol(data, hdr_len, fend);
            fend = e < hdr_len ? e + 1 : hdr_len;
        }
        size_t v;
        if (!mime_field_is(data + pos, fend - pos, "Content-Transfer-Encoding", &v))
            strbuf_append(st->out, data + pos, fend - pos);
        pos = fend;
    }
    /* A header section that ended without LF (nothing after it): close the line. */
    if (hdr_len > 0 && data[hdr_len - 1] != '\n')
        strbuf_putc(st->out, '\n');
}

/*
 * One entity: a message (top), a part, or the body of message/rfc822.
 * digest_part: default type message/rfc822 (RFC 2046 §5.1.5).
 */
static void mime_entity(struct mime_state *st, const char *data, size_t len, int depth, bool top,
                        bool digest_part)
{
    struct mime_hdr h;
    if (depth > MIME_MAX_DEPTH) {
        strbuf_append(st->out, data, len);
        return;
    }
    mime_parse_header(data, len, &h);
    const char *body = data + h.body_off;
    size_t blen = len - h.body_off;
    if (!mime_has_8bit(body, blen)) {
        strbuf_append(st->out, data, len);
        return;
    }
    bool mime = h.has_version || h.has_type || h.has_cte;
    if (top && !mime) {
        /* RFC 6152 §3 / RFC 2045 §4: not MIME at all; label it and encode. */
        strbuf_append(st->out, data, h.hdr_len);
        if (h.hdr_len > 0 && data[h.hdr_len - 1] != '\n')
            strbuf_putc(st->out, '\n');
        strbuf_puts(st->out, "MIME-Version: 1.0\n"
                             "Content-Type: text/plain; charset=unknown-8bit\n"
                             "Content-Transfer-Encoding: quoted-printable\n\n");
        mime_qp_encode(body, blen, st->out);
        st->changed = true;
        return;
    }
    const char *type = h.type[0] ? h.type : digest_part ? "message/rfc822" : "text/plain";
    bool identity = h.cte[0] == '\0' || strcmp(h.cte, "7bit") == 0 || strcmp(h.cte, "8bit") == 0;
    if (strncmp(type, "multipart/", 10) == 0 && h.boundary_len > 0 && identity) {
        strbuf_append(st->out, data, h.body_off);
        mime_multipart(st, body, blen, &h, depth);
    } else if (strcmp(type, "message/rfc822") == 0 && identity) {
        strbuf_append(st->out, data, h.body_off);
        mime_entity(st, body, blen, depth + 1, true, false);
    } else if (identity) {
        /* An 8-bit leaf: quoted-printable (RFC 2045 §6.7, RFC 6152 §3).
         * XXX: a multipart without a boundary lands here too; nobody can
         * parse it as multipart, so it is better sent 7-bit than refused. */
        mime_copy_header_without_cte(st, data, h.hdr_len);
        strbuf_puts(st->out, "Content-Transfer-Encoding: quoted-printable\n\n");
        mime_qp_encode(body, blen, st->out);
        st->changed = true;
    } else {
        /* base64/quoted-printable (already 7-bit, or broken: not ours to fix),
         * binary (cannot be labelled otherwise) and unknown encodings: as
         * they are. */
        strbuf_append(st->out, data, len);
    }
}

int mime_8to7(const char *data, size_t len, struct strbuf *out, struct strbuf *err)
{
    if (data == NULL && len > 0) {
        strbuf_puts(err, "mime_8to7: no data");
        return -1;
    }
    struct mime_state st = {.out = out, .changed = false};
    size_t start = out->len;
    if (len == 0)
        return 0;
    struct mime_hdr h;
    mime_parse_header(data, len, &h);
    mime_entity(&st, data, len, 0, true, false);
    if (st.changed && !h.has_version && (h.has_type || h.has_cte)) {
        /* MIME fields without MIME-Version (RFC 2045 §4): our new
         * Content-Transfer-Encoding only counts with it. Insert it after
         * the original header section, which the output starts with. */
        struct strbuf tail = STRBUF_INIT;
        /* The rewritten top header may have lost its CTE field: find the
         * end of the header section in the output. */
        struct mime_hdr oh;
        mime_parse_header(out->data + start, out->len - start, &oh);
        size_t hdr_end = start + oh.hdr_len;
        strbuf_append(&tail, out->data + hdr_end, out->len - hdr_end);
        strbuf_truncate(out, hdr_end);
        strbuf_puts(out, "MIME-Version: 1.0\n");
        strbuf_append(out, tail.data, tail.len);
        strbuf_release(&tail);
    }
    return 0;
}
