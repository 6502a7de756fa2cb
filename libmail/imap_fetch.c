/* The FETCH attribute list (see imap_fetch.h). */
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "imap_fetch.h"
#include "mymalloc.h"

static bool peek_char(const struct imap_parser *p, char c)
{
    return p->pos < p->len && p->buf[p->pos] == c;
}

static bool eat(struct imap_parser *p, char c)
{
    if (p->error != NULL || !peek_char(p, c))
        return false;
    p->pos++;
    return true;
}

/* An attribute name: letters, digits and '.', at most cap-1 of them. */
static bool read_name(struct imap_parser *p, const char *chars, char *buf, size_t cap)
{
    size_t n = 0;
    while (p->pos < p->len) {
        char c = p->buf[p->pos];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || strchr(chars, c) != NULL;
        if (!ok || c == '\0')
            break;
        if (n + 1 >= cap)
            return imap_parse_fail(p, "Fetch attribute name too long");
        buf[n++] = c;
        p->pos++;
    }
    buf[n] = '\0';
    if (n == 0)
        return imap_parse_fail(p, "Fetch attribute expected");
    return true;
}

static bool read_u64(struct imap_parser *p, uint64_t *v_r, bool nonzero)
{
    uint64_t v = 0;
    size_t start = p->pos;
    while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
        unsigned d = (unsigned)(p->buf[p->pos] - '0');
        if (v > (UINT32_MAX - d) / 10)
            return imap_parse_fail(p, "Number too large");
        v = v * 10 + d;
        p->pos++;
    }
    if (p->pos == start)
        return imap_parse_fail(p, "Number expected");
    if (nonzero && v == 0)
        return imap_parse_fail(p, "Zero where a non-zero number is needed");
    *v_r = v;
    return true;
}

static bool parse_field_list(struct imap_parser *p, struct imap_fetch_item *it)
{
    if (!imap_parse_sp(p) || !imap_parse_list_begin(p))
        return false;
    for (;;) {
        struct imap_str s;
        if (!imap_parse_astring(p, &s))
            return false;
        if (s.len == 0)
            return imap_parse_fail(p, "Empty header field name");
        for (size_t i = 0; i < s.len; i++) {
            unsigned char c = (unsigned char)s.data[i];
            if (c <= ' ' || c >= 0x7f || c == ':')
                return imap_parse_fail(p, "Bad header field name");
        }
        if (it->nfields >= IMAP_FETCH_MAX_FIELDS)
            return imap_parse_fail(p, "Too many header fields");
        it->fields = myreallocarray(it->fields, it->nfields + 1, sizeof(*it->fields));
        it->fields[it->nfields++] = mymemdup(s.data, s.len);
        if (imap_parse_peek(p, ')'))
            return imap_parse_list_end(p);
        if (!imap_parse_sp(p))
            return false;
    }
}

/* "[" section "]" ["<" n "." nz ">"] after BODY, BODY.PEEK, BINARY... */
static bool parse_section(struct imap_parser *p, struct imap_fetch_item *it, bool binary,
                          bool allow_partial)
{
    char spec[32];

    if (!eat(p, '['))
        return imap_parse_fail(p, "'[' expected");
    it->spec = IFS_ALL;
    /* part numbers: nz-number *("." nz-number), each maybe followed by ".spec" */
    while (p->pos < p->len && p->buf[p->pos] >= '1' && p->buf[p->pos] <= '9') {
        uint64_t n = 0;
        if (!read_u64(p, &n, true))
            return false;
        if (it->nparts >= IMAP_FETCH_MAX_PART_DEPTH)
            return imap_parse_fail(p, "Section part nested too deeply");
        it->part[it->nparts++] = (uint32_t)n;
        if (!eat(p, '.'))
            break;
        if (p->pos < p->len && !(p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9'))
            break; /* ".HEADER" etc. follows */
    }
    if (p->error != NULL)
        return false;
    if (!peek_char(p, ']')) {
        if (binary)
            return imap_parse_fail(p, "BINARY takes part numbers only");
        if (!read_name(p, ".", spec, sizeof(spec)))
            return false;
        if (strcasecmp(spec, "HEADER") == 0) {
            it->spec = IFS_HEADER;
        } else if (strcasecmp(spec, "HEADER.FIELDS") == 0) {
            it->spec = IFS_HEADER_FIELDS;
        } else if (strcasecmp(spec, "HEADER.FIELDS.NOT") == 0) {
            it->spec = IFS_HEADER_FIELDS_NOT;
        } else if (strcasecmp(spec, "TEXT") == 0) {
            it->spec = IFS_TEXT;
        } else if (strcasecmp(spec, "MIME") == 0) {
            if (it->nparts == 0)
                return imap_parse_fail(p, "MIME needs a part number");
            it->spec = IFS_MIME;
        } else {
            return imap_parse_fail(p, "Unknown section");
        }
        if ((it->spec == IFS_HEADER_FIELDS || it->spec == IFS_HEADER_FIELDS_NOT) &&
            !parse_field_list(p, it))
            return false;
    } else if (p->buf[p->pos - 1] == '.') {
        return imap_parse_fail(p, "Bad section");
    }
    if (!eat(p, ']'))
        return imap_parse_fail(p, "']' expected");
    if (peek_char(p, '<')) {
        if (!allow_partial)
            return imap_parse_fail(p, "Partial not allowed here");
        p->pos++;
        it->partial = true;
        if (!read_u64(p, &it->offset, false) || !eat(p, '.') || !read_u64(p, &it->count, true) ||
            !eat(p, '>'))
            return imap_parse_fail(p, "Bad partial <offset.count>");
    }
    return true;
}

static struct imap_fetch_item *item_add(struct imap_parser *p, struct imap_fetch_request *req,
                                        enum imap_fetch_att att)
{
    if (req->nitems >= IMAP_FETCH_MAX_ITEMS) {
        imap_parse_fail(p, "Too many fetch attributes");
        return NULL;
    }
    req->items = myreallocarray(req->items, req->nitems + 1, sizeof(*req->items));
    struct imap_fetch_item *it = &req->items[req->nitems++];
    memset(it, 0, sizeof(*it));
    it->att = att;
    req->atts |= 1u << att;
    return it;
}

static bool parse_att(struct imap_parser *p, struct imap_fetch_request *req, bool in_list)
{
    char name[32];
    struct imap_fetch_item *it;
    static const struct {
        const char *name;
        enum imap_fetch_att att;
    } simple[] = {
        {"FLAGS", IFA_FLAGS},
        {"INTERNALDATE", IFA_INTERNALDATE},
        {"RFC822.SIZE", IFA_RFC822_SIZE},
        {"UID", IFA_UID},
        {"ENVELOPE", IFA_ENVELOPE},
        {"BODYSTRUCTURE", IFA_BODYSTRUCTURE},
        {"MODSEQ", IFA_MODSEQ},
    };

    if (!read_name(p, ".0123456789", name, sizeof(name)))
        return false;
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
        if (strcasecmp(name, simple[i].name) == 0)
            return item_add(p, req, simple[i].att) != NULL;
    if (!in_list) {
        static const char *const macro_names[] = {"ALL", "FAST", "FULL"};
        for (int m = 0; m < 3; m++) {
            if (strcasecmp(name, macro_names[m]) != 0)
                continue;
            bool ok = item_add(p, req, IFA_FLAGS) && item_add(p, req, IFA_INTERNALDATE) &&
                      item_add(p, req, IFA_RFC822_SIZE);
            if (ok && m != 1)
                ok = item_add(p, req, IFA_ENVELOPE) != NULL;
            if (ok && m == 2)
                ok = item_add(p, req, IFA_BODY) != NULL;
            return ok;
        }
    }
    if (strcasecmp(name, "RFC822") == 0 || strcasecmp(name, "RFC822.HEADER") == 0 ||
        strcasecmp(name, "RFC822.TEXT") == 0) {
        if ((it = item_add(p, req, IFA_SECTION)) == NULL)
            return false;
        if (strcasecmp(name, "RFC822") == 0) {
            it->form = IFF_RFC822;
        } else if (strcasecmp(name, "RFC822.HEADER") == 0) {
            it->form = IFF_RFC822_HEADER;
            it->spec = IFS_HEADER;
            it->peek = true; /* RFC 3501 §6.4.5: equivalent to BODY.PEEK[HEADER] */
        } else {
            it->form = IFF_RFC822_TEXT;
            it->spec = IFS_TEXT;
        }
        if (!it->peek)
            req->sets_seen = true;
        return true;
    }
    bool body = strcasecmp(name, "BODY") == 0, body_peek = strcasecmp(name, "BODY.PEEK") == 0;
    bool bin = strcasecmp(name, "BINARY") == 0, bin_peek = strcasecmp(name, "BINARY.PEEK") == 0;
    bool bin_size = strcasecmp(name, "BINARY.SIZE") == 0;
    if (body && !peek_char(p, '['))
        return item_add(p, req, IFA_BODY) != NULL;
    if (body || body_peek || bin || bin_peek || bin_size) {
        if ((it = item_add(p, req, bin_size ? IFA_BINARY_SIZE : IFA_SECTION)) == NULL)
            return false;
        it->form = (body || body_peek) ? IFF_BODY : IFF_BINARY;
        it->peek = body_peek || bin_peek || bin_size;
        if (!it->peek)
            req->sets_seen = true;
        return parse_section(p, it, !(body || body_peek), !bin_size);
    }
    return imap_parse_fail(p, "Unknown fetch attribute");
}

static bool parse_modifiers(struct imap_parser *p, struct imap_fetch_request *req)
{
    if (!imap_parse_list_begin(p))
        return false;
    for (;;) {
        const char *atom;
        if (!imap_parse_atom(p, &atom))
            return false;
        if (imap_atom_is(atom, "CHANGEDSINCE")) {
            if (req->changedsince)
                return imap_parse_fail(p, "CHANGEDSINCE given twice");
            if (!imap_parse_sp(p) || !imap_parse_number64(p, &req->modseq))
                return false;
            req->changedsince = true;
        } else if (imap_atom_is(atom, "VANISHED")) {
            req->vanished = true;
        } else {
            return imap_parse_fail(p, "Unknown fetch modifier");
        }
        if (imap_parse_peek(p, ')'))
            return imap_parse_list_end(p);
        if (!imap_parse_sp(p))
            return false;
    }
}

bool imap_fetch_parse(struct imap_parser *p, struct imap_fetch_request **req_r,
                      const char **error_r)
{
    struct imap_fetch_request *req = mycalloc(1, sizeof(*req));

    *req_r = NULL;
    *error_r = NULL;
    if (!imap_parse_sp(p))
        goto bad;
    if (imap_parse_peek(p, '(')) {
        if (!imap_parse_list_begin(p))
            goto bad;
        for (;;) {
            if (!parse_att(p, req, true))
                goto bad;
            if (imap_parse_peek(p, ')'))
                break;
            if (!imap_parse_sp(p))
                goto bad;
        }
        if (!imap_parse_list_end(p))
            goto bad;
    } else if (!parse_att(p, req, false)) {
        goto bad;
    }
    if (!imap_parse_at_eol(p)) {
        if (!imap_parse_sp(p) || !parse_modifiers(p, req))
            goto bad;
    }
    if (!imap_parse_eol(p))
        goto bad;
    if (req->vanished && !req->changedsince) {
        /* RFC 7162 §3.2.6: VANISHED only together with CHANGEDSINCE */
        imap_parse_fail(p, "VANISHED needs CHANGEDSINCE");
        goto bad;
    }
    if (req->changedsince)
        req->atts |= 1u << IFA_MODSEQ;
    *req_r = req;
    return true;
bad:
    *error_r = p->error ? p->error : "Bad fetch attributes";
    imap_fetch_free(&req);
    return false;
}

void imap_fetch_free(struct imap_fetch_request **reqp)
{
    struct imap_fetch_request *req = *reqp;
    if (req == NULL)
        return;
    for (size_t i = 0; i < req->nitems; i++) {
        for (size_t f = 0; f < req->items[i].nfields; f++)
            myfree(req->items[i].fields[f]);
        myfree(req->items[i].fields);
    }
    myfree(req->items);
    myfree(req);
    *reqp = NULL;
}

void imap_fetch_item_name(const struct imap_fetch_item *it, struct strbuf *out)
{
    static const char *const specs[] = {"",     "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                        "TEXT", "MIME"};
    switch (it->form) {
    case IFF_RFC822:
        strbuf_puts(out, "RFC822");
        return;
    case IFF_RFC822_HEADER:
        strbuf_puts(out, "RFC822.HEADER");
        return;
    case IFF_RFC822_TEXT:
        strbuf_puts(out, "RFC822.TEXT");
        return;
    case IFF_BODY:
        strbuf_puts(out, "BODY[");
        break;
    case IFF_BINARY:
        strbuf_puts(out, it->att == IFA_BINARY_SIZE ? "BINARY.SIZE[" : "BINARY[");
        break;
    }
    for (size_t i = 0; i < it->nparts; i++)
        strbuf_printf(out, "%s%u", i ? "." : "", it->part[i]);
    if (it->spec != IFS_ALL) {
        if (it->nparts)
            strbuf_putc(out, '.');
        strbuf_puts(out, specs[it->spec]);
    }
    if (it->spec == IFS_HEADER_FIELDS || it->spec == IFS_HEADER_FIELDS_NOT) {
        strbuf_puts(out, " (");
        for (size_t i = 0; i < it->nfields; i++) {
            if (i)
                strbuf_putc(out, ' ');
            /* field names are atoms we checked (no SP, no controls); quote
             * any that hold atom-specials so the reply stays parseable */
            bool plain = strpbrk(it->fields[i], "(){%*\"\\]") == NULL;
            if (plain)
                strbuf_puts(out, it->fields[i]);
            else {
                strbuf_putc(out, '"');
                for (const char *c = it->fields[i]; *c; c++) {
                    if (*c == '"' || *c == '\\')
                        strbuf_putc(out, '\\');
                    strbuf_putc(out, *c);
                }
                strbuf_putc(out, '"');
            }
        }
        strbuf_putc(out, ')');
    }
    strbuf_putc(out, ']');
    if (it->partial)
        strbuf_printf(out, "<%llu>", (unsigned long long)it->offset);
}

/* ---- content transfer decoding for BINARY (RFC 3516) ---- */

enum imap_cte imap_fetch_cte(const char *hdr, size_t len)
{
    static const char name[] = "content-transfer-encoding:";
    size_t nl = sizeof(name) - 1;
    size_t i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && hdr[eol] != '\n')
            eol++;
        if (eol - i >= nl && strncasecmp(hdr + i, name, nl) == 0) {
            /* the value, unfolded (continuation lines start with SP/TAB) */
            char val[32];
            size_t vl = 0;
            bool too_long = false;
            for (size_t k = i + nl; k < len; k++) {
                char c = hdr[k];
                if (c == '\n') {
                    if (k + 1 < len && (hdr[k + 1] == ' ' || hdr[k + 1] == '\t'))
                        continue;
                    break;
                }
                if (c == '\r' || ((c == ' ' || c == '\t') && vl == 0))
                    continue;
                if (c == ' ' || c == '\t' || c == ';' || c == '(')
                    break;
                if (vl + 1 >= sizeof(val)) {
                    too_long = true;
                    break;
                }
                val[vl++] = c;
            }
            val[vl] = '\0';
            if (too_long)
                return IMAP_CTE_UNKNOWN;
            if (strcasecmp(val, "base64") == 0)
                return IMAP_CTE_BASE64;
            if (strcasecmp(val, "quoted-printable") == 0)
                return IMAP_CTE_QP;
            if (vl == 0 || strcasecmp(val, "7bit") == 0 || strcasecmp(val, "8bit") == 0 ||
                strcasecmp(val, "binary") == 0)
                return IMAP_CTE_IDENTITY;
            return IMAP_CTE_UNKNOWN;
        }
        i = eol + 1;
    }
    return IMAP_CTE_IDENTITY;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Quoted-printable (RFC 2045 §6.7) of CRLF text: soft breaks removed. */
static void decode_qp(const char *in, size_t len, struct strbuf *out)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c != '=') {
            strbuf_putc(out, c);
            i++;
            continue;
        }
        /* "=" then optional trailing white space then CRLF: soft line break */
        size_t j = i + 1;
        while (j < len && (in[j] == ' ' || in[j] == '\t'))
            j++;
        if (j < len && in[j] == '\r' && j + 1 < len && in[j + 1] == '\n') {
            i = j + 2;
            continue;
        }
        if (j < len && in[j] == '\n') {
            i = j + 1;
            continue;
        }
        if (j >= len) {
            i = j;
            continue;
        }
        if (i + 2 < len && hexval((unsigned char)in[i + 1]) >= 0 &&
            hexval((unsigned char)in[i + 2]) >= 0) {
            strbuf_putc(out,
                        hexval((unsigned char)in[i + 1]) * 16 + hexval((unsigned char)in[i + 2]));
            i += 3;
            continue;
        }
        strbuf_putc(out, '=');
        i++;
    }
}

void imap_fetch_decode(enum imap_cte cte, const char *in, size_t len, struct strbuf *out)
{
    if (cte == IMAP_CTE_BASE64)
        base64_decode_append(in, len, BASE64_TOLERANT, out); /* as readers do */
    else if (cte == IMAP_CTE_QP)
        decode_qp(in, len, out);
    else
        strbuf_append(out, in, len);
}
