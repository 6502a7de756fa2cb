/* libFuzzer target for libmail/mutf7.c: decode any bytes; what decodes must
 * encode back to exactly the input (one canonical form), and any valid
 * UTF-8 must survive an encode/decode round trip. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mutf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
    const char *why = NULL;
    if (mutf7_to_utf8((const char *)data, size, &a, &why) == 0) {
        if (mutf7_from_utf8(a.data, a.len, &b, &why) != 0 || b.len != size ||
            (size > 0 && memcmp(b.data, data, size) != 0))
            __builtin_trap();
    } else if (why == NULL) {
        __builtin_trap();
    }
    strbuf_reset(&a);
    strbuf_reset(&b);
    if (mutf7_from_utf8((const char *)data, size, &a, &why) == 0) {
        if (mutf7_to_utf8(a.data, a.len, &b, &why) != 0 || b.len != size ||
            memcmp(b.data, data, size) != 0)
            __builtin_trap();
    }
    strbuf_release(&a);
    strbuf_release(&b);
    return 0;
}
