/* libFuzzer target for libmail/sasl.c: any bytes as a PLAIN or LOGIN response. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sasl_creds c;
    char field[SASL_FIELD_MAX + 1];
    unsigned char out[SASL_RESPONSE_MAX];
    const char *why = NULL;
    const char *text = (const char *)data;

    if (sasl_plain_decode(text, size, &c, &why) == 0) {
        /* Success: non-empty, bounded, NUL-free fields. */
        if (c.authcid[0] == '\0' || c.passwd[0] == '\0' || strlen(c.authzid) > SASL_FIELD_MAX ||
            strlen(c.authcid) > SASL_FIELD_MAX || strlen(c.passwd) > SASL_FIELD_MAX)
            __builtin_trap();
    } else if (why == NULL) {
        __builtin_trap();
    }
    sasl_creds_release(&c);
    if (sasl_login_decode(text, size, field, &why) == 0 &&
        (field[0] == '\0' || strlen(field) > SASL_FIELD_MAX))
        __builtin_trap();
    /* Decoding then encoding gives the input back (strict, canonical base64). */
    long n = sasl_base64_decode(text, size, out, sizeof(out));
    if (n > 0) {
        char again[SASL_RESPONSE_MAX + 8];
        sasl_base64_encode(out, (size_t)n, again, sizeof(again));
        if (strlen(again) != size || memcmp(again, text, size) != 0)
            __builtin_trap();
    }
    return 0;
}
