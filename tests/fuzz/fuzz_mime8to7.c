/* libFuzzer target for libmail/mime8to7.c: any bytes as a queued message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mime8to7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    const char *in = (const char *)data;
    if (mime_8to7(in, size, &out, &err) != 0)
        __builtin_trap();
    /* A 7-bit message passes through byte for byte. */
    if (!mime_has_8bit(in, size) && (out.len != size || (size && memcmp(out.data, in, size))))
        __builtin_trap();
    /* A 7-bit result is a fixed point. */
    if (!mime_has_8bit(out.data, out.len)) {
        struct strbuf again = STRBUF_INIT;
        if (mime_8to7(out.data, out.len, &again, &err) != 0 || again.len != out.len ||
            (out.len && memcmp(again.data, out.data, out.len)))
            __builtin_trap();
        strbuf_release(&again);
    }
    strbuf_release(&out);
    strbuf_release(&err);
    return 0;
}
