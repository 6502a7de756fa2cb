/*
 * libFuzzer target for libmail/base64.c: any bytes through every decoder
 * variant (no crash, bounded output, strict success re-encodes to the same
 * text), and encode -> decode gives the bytes back in every variant.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base64.h"

static const unsigned variants[] = {0, BASE64_NOPAD, BASE64_IMAP, BASE64_IMAP | BASE64_NOPAD};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        unsigned f = variants[v];
        /* Round trip: encode then strict decode. */
        struct strbuf enc = STRBUF_INIT, back = STRBUF_INIT;
        base64_encode_append(data, size, f, &enc);
        if (enc.len != base64_encoded_len(size, f) ||
            base64_decode_append(enc.data, enc.len, f, &back) != BASE64_OK || back.len != size ||
            (size > 0 && memcmp(back.data, data, size) != 0))
            __builtin_trap();
        /* Tolerant decoding of the encoding gives the same bytes. */
        strbuf_reset(&back);
        if (base64_decode_append(enc.data, enc.len, f | BASE64_TOLERANT, &back) != BASE64_OK ||
            back.len != size || (size > 0 && memcmp(back.data, data, size) != 0))
            __builtin_trap();
        /* The input as text: strict success means canonical, so it re-encodes to itself. */
        strbuf_reset(&back);
        strbuf_reset(&enc);
        if (base64_decode_append(text, size, f, &back) == BASE64_OK) {
            base64_encode_append(back.data, back.len, f, &enc);
            if (enc.len != size || (size > 0 && memcmp(enc.data, text, size) != 0))
                __builtin_trap();
        }
        /* Fixed buffers: a short one fails cleanly, never overruns. */
        unsigned char small[16];
        size_t n = 0;
        enum base64_status st = base64_decode(text, size, f, small, sizeof(small), &n);
        if (n > sizeof(small) || (st == BASE64_OK && n != back.len))
            __builtin_trap();
        st = base64_decode(text, size, f | BASE64_TOLERANT, small, sizeof(small), &n);
        if (n > sizeof(small) || (st != BASE64_OK && st != BASE64_NO_SPACE))
            __builtin_trap();
        char out[24];
        if (base64_encode(data, size, f, out, sizeof(out)) == 0 &&
            strlen(out) != base64_encoded_len(size, f))
            __builtin_trap();
        strbuf_release(&enc);
        strbuf_release(&back);
    }
    return 0;
}
