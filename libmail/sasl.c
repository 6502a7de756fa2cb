/*
 * sasl - PLAIN and LOGIN decoders (see sasl.h).
 */
#include "sasl.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "base64.h"

enum sasl_mech sasl_mech_find(const char *name)
{
    if (strcasecmp(name, "PLAIN") == 0)
        return SASL_MECH_PLAIN;
    if (strcasecmp(name, "LOGIN") == 0)
        return SASL_MECH_LOGIN;
    return SASL_MECH_NONE;
}

bool sasl_is_cancel(const char *resp, size_t len)
{
    return len == 1 && resp[0] == '*';
}

long sasl_base64_decode(const char *text, size_t len, unsigned char *out, size_t out_max)
{
    /* RFC 4954 §4: "=" is an empty initial response. */
    if (len == 1 && text[0] == '=')
        return 0;
    if (len == 0 || len > SASL_RESPONSE_MAX)
        return -1;
    size_t n;
    if (base64_decode(text, len, 0, out, out_max, &n) != BASE64_OK)
        return -1;
    return (long)n;
}

void sasl_base64_encode(const void *data, size_t len, char *out, size_t out_max)
{
    if (out_max == 0)
        return;
    /* Whole quanta that fit before the NUL; the rest is cut (challenges are short). */
    size_t quanta = (out_max - 1) / 4;
    if (len / 3 + (len % 3 != 0) > quanta)
        len = quanta * 3;
    base64_encode(data, len, 0, out, out_max);
}

/* Copy a field [p, p+n) into dst (SASL_FIELD_MAX+1): bounds and characters. */
static int sasl_field(const unsigned char *p, size_t n, char *dst, const char **error_r)
{
    if (n > SASL_FIELD_MAX) {
        *error_r = "field too long";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0' || p[i] == '\r' || p[i] == '\n') {
            *error_r = "NUL, CR or LF inside a field";
            return -1;
        }
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

int sasl_plain_decode(const char *resp, size_t len, struct sasl_creds *out, const char **error_r)
{
    unsigned char buf[3 * (SASL_FIELD_MAX + 1)];
    memset(out, 0, sizeof(*out));
    long n = sasl_base64_decode(resp, len, buf, sizeof(buf));
    if (n < 0) {
        *error_r = "malformed base64";
        return -1;
    }
    size_t total = (size_t)n;
    unsigned char *nul1 = memchr(buf, '\0', total);
    if (nul1 == NULL) {
        *error_r = "no NUL separator";
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    size_t rest_off = (size_t)(nul1 - buf) + 1;
    unsigned char *nul2 = memchr(buf + rest_off, '\0', total - rest_off);
    if (nul2 == NULL) {
        *error_r = "only one NUL separator";
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    size_t pass_off = (size_t)(nul2 - buf) + 1;
    int rc = -1;
    if (sasl_field(buf, (size_t)(nul1 - buf), out->authzid, error_r) < 0 ||
        sasl_field(buf + rest_off, (size_t)(nul2 - buf) - rest_off, out->authcid, error_r) < 0 ||
        sasl_field(buf + pass_off, total - pass_off, out->passwd, error_r) < 0) {
        /* a third NUL lands in the password field and is refused there */
    } else if (out->authcid[0] == '\0') {
        *error_r = "empty authentication identity";
    } else if (out->passwd[0] == '\0') {
        *error_r = "empty password";
    } else {
        rc = 0;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (rc < 0)
        sasl_creds_release(out);
    return rc;
}

int sasl_login_decode(const char *resp, size_t len, char *field, const char **error_r)
{
    unsigned char buf[SASL_FIELD_MAX + 1];
    long n = sasl_base64_decode(resp, len, buf, sizeof(buf));
    field[0] = '\0';
    if (n < 0) {
        *error_r = "malformed base64";
        return -1;
    }
    if (n == 0) {
        *error_r = "empty field";
        return -1;
    }
    int rc = sasl_field(buf, (size_t)n, field, error_r);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

void sasl_creds_release(struct sasl_creds *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}
