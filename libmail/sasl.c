/*
 * sasl - PLAIN and LOGIN decoders (see sasl.h).
 */
#include "sasl.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

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
    if (len == 0 || len % 4 != 0 || len > SASL_RESPONSE_MAX)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)text[i + (size_t)k];
            if (c == '=') {
                /* Padding only in the last group, only at its end. */
                if (i + 4 != len || k < 2)
                    return -1;
                v[k] = 0;
                pad++;
            } else {
                if (pad > 0)
                    return -1;
                v[k] = b64_value(c);
                if (v[k] < 0)
                    return -1;
            }
        }
        /* Canonical: the bits dropped by padding must be zero. */
        if (pad == 2 && (v[1] & 0x0f) != 0)
            return -1;
        if (pad == 1 && (v[2] & 0x03) != 0)
            return -1;
        unsigned char b[3] = {(unsigned char)((v[0] << 2) | (v[1] >> 4)),
                              (unsigned char)(((v[1] & 0x0f) << 4) | (v[2] >> 2)),
                              (unsigned char)(((v[2] & 0x03) << 6) | v[3])};
        size_t take = 3 - (size_t)pad;
        if (n + take > out_max)
            return -1;
        memcpy(out + n, b, take);
        n += take;
    }
    return (long)n;
}

void sasl_base64_encode(const void *data, size_t len, char *out, size_t out_max)
{
    const unsigned char *p = data;
    size_t o = 0;
    if (out_max == 0)
        return;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        char q[4] = {b64_alphabet[(v >> 18) & 63], b64_alphabet[(v >> 12) & 63],
                     i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=',
                     i + 2 < len ? b64_alphabet[v & 63] : '='};
        if (o + 4 >= out_max)
            break;
        memcpy(out + o, q, 4);
        o += 4;
    }
    out[o] = '\0';
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
