/* libFuzzer target: RFC 5321 mailbox and path parsing, plus format round trip. */
#include <stdint.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0] & 7u;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    struct address a;
    const char *why;
    size_t used;
    if (address_parse(s, len, flags, &a, &why)) {
        struct strbuf sb = STRBUF_INIT;
        address_format(&a, &sb);
        struct address b;
        /* What we format must parse back to the same thing. */
        if (a.local && !address_parse(sb.data, sb.len, flags, &b, &why))
            __builtin_trap();
        if (a.local) {
            if (strcmp(a.local, b.local) != 0)
                __builtin_trap();
            address_release(&b);
        }
        strbuf_release(&sb);
        address_release(&a);
    }
    if (address_parse_path(s, len, flags, &a, &used, &why)) {
        if (used > len)
            __builtin_trap();
        address_release(&a);
    }
    return 0;
}
