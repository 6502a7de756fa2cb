/* libFuzzer target: the attr record decoder, with an encode/decode round trip. */
#include <stdint.h>
#include <string.h>

#include "attr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct attr_list l = ATTR_LIST_INIT, m = ATTR_LIST_INIT;
    const char *why;
    ssize_t n = attr_decode((const char *)data, size, 4096, &l, &why);
    if (n > 0) {
        struct strbuf sb = STRBUF_INIT;
        attr_encode(&l, &sb);
        if (attr_decode(sb.data, sb.len, 1 << 20, &m, &why) != (ssize_t)sb.len ||
            m.count != l.count)
            __builtin_trap();
        for (size_t i = 0; i < l.count; i++)
            if (m.items[i].len != l.items[i].len ||
                memcmp(m.items[i].value, l.items[i].value, l.items[i].len) != 0)
                __builtin_trap();
        strbuf_release(&sb);
    }
    attr_list_release(&l);
    attr_list_release(&m);
    return 0;
}
