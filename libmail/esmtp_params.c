/* esmtp_params - MAIL/RCPT parameter values and BDAT arguments; see esmtp_params.h. */
#include "esmtp_params.h"

#include <string.h>
#include <strings.h>

#include "strbuf.h"
#include "utf8.h"

bool esmtp_non_ascii(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* Decoded DSN text: printable ASCII (and space), or UTF-8 when allowed. */
static bool printable(const char *s, size_t len, bool utf8)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c >= 0x80 && !utf8)
            return false;
    }
    return !utf8 || utf8_valid(s, len);
}

/* RFC 1870: size-value = 1*20DIGIT; huge values saturate. */
static bool parse_size(const char *s, unsigned long long *size_r)
{
    unsigned long long n = 0;
    size_t i = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 20)
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (~0ULL - d) / 10)
            n = ~0ULL;
        else
            n = n * 10 + d;
    }
    *size_r = n;
    return true;
}

static enum esmtp_result fail(enum esmtp_result r, const char *key, const char *why,
                              const char **key_r, const char **error_r)
{
    *key_r = key;
    *error_r = why;
    return r;
}

enum esmtp_result esmtp_mail_parse(const struct smtp_param *params, size_t n, unsigned allow,
                                   struct esmtp_mail *out, const char **key_r, const char **error_r)
{
    const char *dk, *de;
    if (key_r == NULL)
        key_r = &dk;
    if (error_r == NULL)
        error_r = &de;
    memset(out, 0, sizeof(*out));
    *key_r = *error_r = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *k = params[i].key, *v = params[i].value;
        if (strcmp(k, "SIZE") == 0) {
            if (!parse_size(v, &out->size))
                return fail(ESMTP_SYNTAX, k, "bad SIZE value", key_r, error_r);
            out->has_size = true;
        } else if (strcmp(k, "BODY") == 0) {
            if (v == NULL)
                return fail(ESMTP_SYNTAX, k, "BODY needs a value", key_r, error_r);
            if (strcasecmp(v, "7BIT") == 0)
                out->body = ESMTP_BODY_7BIT;
            else if (strcasecmp(v, "8BITMIME") == 0)
                out->body = ESMTP_BODY_8BITMIME;
            else if (strcasecmp(v, "BINARYMIME") == 0)
                out->body = ESMTP_BODY_BINARYMIME;
            else
                return fail(ESMTP_SYNTAX, k, "unknown BODY type", key_r, error_r);
        } else if (strcmp(k, "SMTPUTF8") == 0) {
            /* RFC 6531 §3.4: no value. */
            if (v != NULL)
                return fail(ESMTP_SYNTAX, k, "SMTPUTF8 takes no value", key_r, error_r);
            out->smtputf8 = true;
        } else if (strcmp(k, "RET") == 0) {
            /* RFC 3461 §4.3 */
            if (v != NULL && strcasecmp(v, "FULL") == 0)
                out->ret = ESMTP_RET_FULL;
            else if (v != NULL && strcasecmp(v, "HDRS") == 0)
                out->ret = ESMTP_RET_HDRS;
            else
                return fail(ESMTP_SYNTAX, k, "RET must be FULL or HDRS", key_r, error_r);
        } else if (strcmp(k, "ENVID") == 0) {
            /* RFC 3461 §4.4: xtext, at most 100 characters, printable US-ASCII. */
            if (v == NULL)
                return fail(ESMTP_SYNTAX, k, "ENVID needs a value", key_r, error_r);
            size_t len = strlen(v);
            if (len > ESMTP_ENVID_MAX)
                return fail(ESMTP_SYNTAX, k, "ENVID too long", key_r, error_r);
            struct strbuf dec = STRBUF_INIT;
            bool ok = smtp_xtext_decode(v, len, &dec) && dec.len > 0 &&
                      printable(dec.data, dec.len, false);
            if (ok)
                memcpy(out->envid, dec.data, dec.len + 1);
            strbuf_release(&dec);
            if (!ok)
                return fail(ESMTP_SYNTAX, k, "malformed ENVID xtext", key_r, error_r);
        } else if (strcmp(k, "AUTH") == 0 && (allow & ESMTP_ALLOW_AUTH)) {
            /* RFC 4954 §5: accepted and ignored; we never trust a relayed identity. */
            if (v == NULL)
                return fail(ESMTP_SYNTAX, k, "AUTH needs a value", key_r, error_r);
            out->auth = true;
        } else {
            return fail(ESMTP_UNSUPPORTED, k, "unsupported parameter", key_r, error_r);
        }
    }
    return ESMTP_OK;
}

/* RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY (each once). */
static bool parse_notify(const char *v, unsigned *bits_r)
{
    unsigned bits = 0;
    if (v == NULL || *v == '\0')
        return false;
    for (;;) {
        const char *comma = strchr(v, ',');
        size_t len = comma ? (size_t)(comma - v) : strlen(v);
        unsigned b;
        if (len == 5 && strncasecmp(v, "NEVER", 5) == 0)
            b = ESMTP_NOTIFY_NEVER;
        else if (len == 7 && strncasecmp(v, "SUCCESS", 7) == 0)
            b = ESMTP_NOTIFY_SUCCESS;
        else if (len == 7 && strncasecmp(v, "FAILURE", 7) == 0)
            b = ESMTP_NOTIFY_FAILURE;
        else if (len == 5 && strncasecmp(v, "DELAY", 5) == 0)
            b = ESMTP_NOTIFY_DELAY;
        else
            return false;
        if (bits & b)
            return false;
        bits |= b;
        if (comma == NULL)
            break;
        v = comma + 1;
    }
    if ((bits & ESMTP_NOTIFY_NEVER) && bits != ESMTP_NOTIFY_NEVER)
        return false;
    *bits_r = bits;
    return true;
}

/* addr-type = atom (RFC 3461 §4.2); we accept letters, digits and "-". */
static bool addr_type_valid(const char *s, size_t len)
{
    if (len == 0 || len > ESMTP_ADDR_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

/* ORCPT=addr-type;xtext → out->orcpt = "addr-type;decoded". */
static bool parse_orcpt(const char *v, bool smtputf8, struct esmtp_rcpt *out, const char **why_r)
{
    if (v == NULL) {
        *why_r = "ORCPT needs a value";
        return false;
    }
    size_t len = strlen(v);
    if (len > ESMTP_ORCPT_MAX) {
        *why_r = "ORCPT too long";
        return false;
    }
    const char *semi = strchr(v, ';');
    if (semi == NULL || !addr_type_valid(v, (size_t)(semi - v))) {
        *why_r = "ORCPT must be addr-type;address";
        return false;
    }
    size_t tlen = (size_t)(semi - v);
    const char *a = semi + 1;
    size_t alen = len - tlen - 1;
    struct strbuf dec = STRBUF_INIT;
    bool ok;
    if (tlen == 5 && strncasecmp(v, "utf-8", 5) == 0) {
        /*
         * RFC 6533 §3: utf-8-addr-xtext / utf-8-addr-unitext. Kept as sent
         * (its \x{..} escapes are what a DSN's Original-Recipient carries),
         * raw UTF-8 only under SMTPUTF8.
         */
        ok = alen > 0 && printable(a, alen, smtputf8);
        if (ok)
            strbuf_append(&dec, a, alen);
    } else {
        /* rfc822 and any other type: xtext (RFC 3461 §4); UTF-8 only under SMTPUTF8. */
        ok = smtp_xtext_decode(a, alen, &dec) && dec.len > 0 &&
             printable(dec.data, dec.len, smtputf8);
    }
    if (!ok) {
        strbuf_release(&dec);
        *why_r = "malformed ORCPT address";
        return false;
    }
    /* tlen <= 32 and dec.len <= len <= 500: fits out->orcpt. */
    memcpy(out->orcpt, v, tlen);
    out->orcpt[tlen] = ';';
    memcpy(out->orcpt + tlen + 1, dec.data, dec.len + 1);
    strbuf_release(&dec);
    return true;
}

enum esmtp_result esmtp_rcpt_parse(const struct smtp_param *params, size_t n, bool smtputf8,
                                   struct esmtp_rcpt *out, const char **key_r, const char **error_r)
{
    const char *dk, *de;
    if (key_r == NULL)
        key_r = &dk;
    if (error_r == NULL)
        error_r = &de;
    memset(out, 0, sizeof(*out));
    *key_r = *error_r = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *k = params[i].key, *v = params[i].value;
        if (strcmp(k, "NOTIFY") == 0) {
            if (!parse_notify(v, &out->notify))
                return fail(ESMTP_SYNTAX, k,
                            "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY", key_r,
                            error_r);
        } else if (strcmp(k, "ORCPT") == 0) {
            const char *why = NULL;
            if (!parse_orcpt(v, smtputf8, out, &why))
                return fail(ESMTP_SYNTAX, k, why, key_r, error_r);
        } else {
            return fail(ESMTP_UNSUPPORTED, k, "unsupported parameter", key_r, error_r);
        }
    }
    return ESMTP_OK;
}

bool esmtp_bdat_parse(const char *arg, unsigned long long *size_r, bool *last_r,
                      const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    *error_r = NULL;
    size_t i = 0;
    unsigned long long n = 0;
    if (arg == NULL || arg[0] < '0' || arg[0] > '9') {
        *error_r = "chunk size must be a number";
        return false;
    }
    for (; arg[i] >= '0' && arg[i] <= '9'; i++) {
        unsigned d = (unsigned)(arg[i] - '0');
        if (i >= 20 || n > (~0ULL - d) / 10) {
            *error_r = "chunk size too large";
            return false;
        }
        n = n * 10 + d;
    }
    bool last = false;
    if (arg[i] == ' ') {
        if (strcasecmp(arg + i + 1, "LAST") != 0) {
            *error_r = "expected LAST after the chunk size";
            return false;
        }
        last = true;
    } else if (arg[i] != '\0') {
        *error_r = "chunk size must be a number";
        return false;
    }
    *size_r = n;
    *last_r = last;
    return true;
}
