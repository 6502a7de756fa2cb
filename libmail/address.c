/*
 * address - RFC 5321 mailbox and path parsing (see address.h).
 *
 * Grammar (RFC 5321 §4.1.2, RFC 6531 §3.3 for UTF-8):
 *   Mailbox       = Local-part "@" ( Domain / address-literal )
 *   Local-part    = Dot-string / Quoted-string
 *   Dot-string    = Atom *("." Atom)
 *   Quoted-string = DQUOTE *( qtextSMTP / quoted-pairSMTP ) DQUOTE
 *   Domain        = sub-domain *("." sub-domain)
 *   sub-domain    = Let-dig [Ldh-str]        (U-label with SMTPUTF8)
 *   address-literal = "[" ( IPv4 / "IPv6:" IPv6 / tag ":" 1*dcontent ) "]"
 *
 * The whole input is checked for control characters and, when 8-bit bytes
 * are present, for strict UTF-8 first, so the grammar code below only deals
 * with printable text.
 */
#include "address.h"

#include <arpa/inet.h>
#include <strings.h>
#include <string.h>

#include "mymalloc.h"
#include "utf8.h"

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Check the whole text for bytes that are never allowed and for 8-bit text
 * without SMTPUTF8. *utf8_r tells whether non-ASCII was seen.
 */
static bool check_bytes(const char *s, size_t len, unsigned flags, bool *utf8_r,
                        const char **error_r)
{
    bool high = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) {
            *error_r = "NUL character in address";
            return false;
        }
        if (c == '\r' || c == '\n') {
            *error_r = "line break in address";
            return false;
        }
        if (c < 0x20 || c == 0x7f) {
            *error_r = "control character in address";
            return false;
        }
        if (c >= 0x80)
            high = true;
    }
    if (high) {
        if (!(flags & ADDRESS_UTF8)) {
            *error_r = "non-ASCII address requires SMTPUTF8";
            return false;
        }
        if (!utf8_valid(s, len)) {
            *error_r = "invalid UTF-8 in address";
            return false;
        }
    }
    *utf8_r = high;
    return true;
}

/*
 * Parse the local part at s[0..len). On success *end_r is the index just
 * after it and *local_r the unquoted copy.
 */
static bool parse_local(const char *s, size_t len, unsigned flags, size_t *end_r, char **local_r,
                        const char **error_r)
{
    size_t i = 0;
    if (len > 0 && s[0] == '"') {
        struct strbuf out = STRBUF_INIT;
        strbuf_init(&out, 32);
        i = 1;
        for (;;) {
            if (i >= len) {
                *error_r = "unterminated quoted string";
                strbuf_release(&out);
                return false;
            }
            unsigned char c = (unsigned char)s[i];
            if (c == '"')
                break;
            if (c == '\\') {
                /* quoted-pairSMTP = %d92 %d32-126 */
                if (i + 1 >= len || (unsigned char)s[i + 1] < 32 || (unsigned char)s[i + 1] > 126) {
                    *error_r = "bad quoted pair in local part";
                    strbuf_release(&out);
                    return false;
                }
                strbuf_putc(&out, s[i + 1]);
                i += 2;
                continue;
            }
            /* qtextSMTP = %d32-33 / %d35-91 / %d93-126 (and UTF-8 with SMTPUTF8) */
            if (c < 32 || c == 127 || (c >= 0x80 && !(flags & ADDRESS_UTF8))) {
                *error_r = "bad character in quoted local part";
                strbuf_release(&out);
                return false;
            }
            strbuf_putc(&out, (char)c);
            i++;
        }
        i++; /* closing quote */
        *end_r = i;
        *local_r = strbuf_detach(&out, NULL);
        return true;
    }
    /* Dot-string */
    bool need_atom = true;
    while (i < len && s[i] != '@') {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (need_atom) {
                *error_r = i == 0 ? "local part starts with a dot" : "empty atom in local part";
                return false;
            }
            need_atom = true;
        } else if (is_atext(c) || (c >= 0x80 && (flags & ADDRESS_UTF8))) {
            need_atom = false;
        } else if (c == ' ') {
            *error_r = "space in local part";
            return false;
        } else {
            *error_r = "bad character in local part";
            return false;
        }
        i++;
    }
    if (i == 0) {
        *error_r = "empty local part";
        return false;
    }
    if (need_atom) {
        *error_r = "local part ends with a dot";
        return false;
    }
    *end_r = i;
    *local_r = mystrndup(s, i);
    return true;
}

/* Domain name: labels of Let-dig [Ldh-str], at most 63 bytes, no trailing dot. */
static bool parse_domain_name(const char *s, size_t len, unsigned flags, const char **error_r)
{
    if (len == 0) {
        *error_r = "empty domain";
        return false;
    }
    if (len > ADDRESS_DOMAIN_MAX) {
        *error_r = "domain too long";
        return false;
    }
    size_t label_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            size_t llen = i - label_start;
            if (llen == 0) {
                *error_r = i == len ? "domain ends with a dot" : "empty label in domain";
                return false;
            }
            if (llen > 63) {
                *error_r = "domain label too long";
                return false;
            }
            if (s[label_start] == '-' || s[i - 1] == '-') {
                *error_r = "domain label starts or ends with a hyphen";
                return false;
            }
            label_start = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (is_alpha(c) || is_digit(c) || c == '-')
            continue;
        if (c >= 0x80 && (flags & ADDRESS_UTF8))
            continue;
        *error_r = c == ' ' ? "space in domain" : "bad character in domain";
        return false;
    }
    return true;
}

/* Address literal including the brackets. */
static bool parse_literal(const char *s, size_t len, const char **error_r)
{
    if (len < 3 || s[0] != '[' || s[len - 1] != ']') {
        *error_r = "malformed address literal";
        return false;
    }
    const char *in = s + 1;
    size_t n = len - 2;
    char buf[ADDRESS_DOMAIN_MAX + 1];
    if (n > ADDRESS_DOMAIN_MAX) {
        *error_r = "address literal too long";
        return false;
    }
    if (is_digit((unsigned char)in[0])) {
        memcpy(buf, in, n);
        buf[n] = 0;
        struct in_addr a4;
        if (inet_pton(AF_INET, buf, &a4) != 1) {
            *error_r = "bad IPv4 address literal";
            return false;
        }
        return true;
    }
    if (n > 5 && strncasecmp(in, "IPv6:", 5) == 0) {
        memcpy(buf, in + 5, n - 5);
        buf[n - 5] = 0;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            *error_r = "bad IPv6 address literal";
            return false;
        }
        return true;
    }
    /* General-address-literal = Standardized-tag ":" 1*dcontent */
    size_t i = 0;
    while (i < n &&
           (is_alpha((unsigned char)in[i]) || is_digit((unsigned char)in[i]) || in[i] == '-'))
        i++;
    if (i == 0 || i >= n || in[i] != ':' || in[i - 1] == '-' || i + 1 >= n) {
        *error_r = "malformed address literal";
        return false;
    }
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        /* dcontent = %d33-90 / %d94-126 */
        if (!((c >= 33 && c <= 90) || (c >= 94 && c <= 126))) {
            *error_r = "bad character in address literal";
            return false;
        }
    }
    return true;
}

bool address_parse(const char *s, size_t len, unsigned flags, struct address *out,
                   const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        if (flags & ADDRESS_NULL_OK)
            return true;
        *error_r = "empty address";
        return false;
    }
    if (len > ADDRESS_PATH_MAX - 2) {
        *error_r = "address too long";
        return false;
    }
    bool utf8;
    if (!check_bytes(s, len, flags, &utf8, error_r))
        return false;
    size_t end;
    char *local;
    if (!parse_local(s, len, flags, &end, &local, error_r))
        return false;
    if (end > ADDRESS_LOCAL_MAX) {
        *error_r = "local part too long";
        myfree(local);
        return false;
    }
    if (end == len) {
        if (!(flags & ADDRESS_NO_DOMAIN_OK)) {
            *error_r = "domain missing";
            myfree(local);
            return false;
        }
        if (*local == 0) {
            *error_r = "empty local part";
            myfree(local);
            return false;
        }
        out->local = local;
        out->utf8 = utf8;
        return true;
    }
    if (s[end] != '@') {
        *error_r = "garbage after local part";
        myfree(local);
        return false;
    }
    const char *dom = s + end + 1;
    size_t dlen = len - end - 1;
    bool literal = dlen > 0 && dom[0] == '[';
    if (literal ? !parse_literal(dom, dlen, error_r)
                : !parse_domain_name(dom, dlen, flags, error_r)) {
        myfree(local);
        return false;
    }
    out->local = local;
    out->domain = mystrndup(dom, dlen);
    out->domain_literal = literal;
    out->utf8 = utf8;
    return true;
}

bool address_parse_path(const char *s, size_t len, unsigned flags, struct address *out,
                        size_t *consumed_r, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    memset(out, 0, sizeof(*out));
    if (len == 0 || s[0] != '<') {
        *error_r = "path must start with '<'";
        return false;
    }
    size_t i = 1;
    if (i < len && s[i] == '>') {
        if (!(flags & ADDRESS_NULL_OK)) {
            *error_r = "null path not allowed";
            return false;
        }
        *consumed_r = 2;
        return true;
    }
    /* A-d-l = At-domain *( "," At-domain ) ":" -- accepted and discarded. */
    if (i < len && s[i] == '@') {
        size_t start = i;
        for (;;) {
            if (i >= len || s[i] != '@') {
                *error_r = "malformed source route";
                return false;
            }
            size_t d = ++i;
            while (i < len && s[i] != ',' && s[i] != ':' && s[i] != '>')
                i++;
            bool utf8;
            if (i >= len || s[i] == '>' || !check_bytes(s + d, i - d, flags, &utf8, error_r)) {
                if (i >= len || s[i] == '>')
                    *error_r = "malformed source route";
                return false;
            }
            bool ok = (i > d && s[d] == '[') ? parse_literal(s + d, i - d, error_r)
                                             : parse_domain_name(s + d, i - d, flags, error_r);
            if (!ok)
                return false;
            if (i - start > ADDRESS_PATH_MAX) {
                *error_r = "source route too long";
                return false;
            }
            if (s[i++] == ':')
                break;
        }
    }
    /* Find the closing '>' outside a quoted string. */
    size_t mb = i;
    bool quoted = false;
    while (i < len) {
        char c = s[i];
        if (quoted) {
            if (c == '\\' && i + 1 < len) {
                i += 2;
                continue;
            }
            if (c == '"')
                quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == '>') {
            break;
        }
        i++;
        if (i - mb > ADDRESS_PATH_MAX) {
            *error_r = "address too long";
            return false;
        }
    }
    if (i >= len) {
        *error_r = "path not terminated by '>'";
        return false;
    }
    if (i == mb) {
        *error_r = "empty path";
        return false;
    }
    /* "<>" handled above; an empty mailbox here is not the null path. */
    if (!address_parse(s + mb, i - mb, flags & ~ADDRESS_NULL_OK, out, error_r))
        return false;
    *consumed_r = i + 1;
    return true;
}

void address_release(struct address *a)
{
    myfree(a->local);
    myfree(a->domain);
    a->local = NULL;
    a->domain = NULL;
}

/* True if local can be written as a Dot-string. */
static bool local_is_dot_string(const char *local)
{
    if (*local == 0 || *local == '.')
        return false;
    bool need_atom = true;
    for (const unsigned char *p = (const unsigned char *)local; *p; p++) {
        if (*p == '.') {
            if (need_atom)
                return false;
            need_atom = true;
        } else if (is_atext(*p) || *p >= 0x80) {
            need_atom = false;
        } else {
            return false;
        }
    }
    return !need_atom;
}

void address_format(const struct address *a, struct strbuf *out)
{
    if (a->local == NULL)
        return;
    if (local_is_dot_string(a->local)) {
        strbuf_puts(out, a->local);
    } else {
        strbuf_putc(out, '"');
        for (const char *p = a->local; *p; p++) {
            if (*p == '"' || *p == '\\')
                strbuf_putc(out, '\\');
            strbuf_putc(out, *p);
        }
        strbuf_putc(out, '"');
    }
    if (a->domain) {
        strbuf_putc(out, '@');
        strbuf_puts(out, a->domain);
    }
}

char *address_domain_lower(const char *domain)
{
    char *d = mystrdup(domain);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}
