/* libFuzzer target: the strict queue file reader. */
#include <stdint.h>

#include "queue_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qf_message m;
    struct strbuf err = STRBUF_INIT;
    if (qf_parse((const char *)data, size, &m, &err) == 0) {
        if ((uint64_t)m.content_offset + m.content_size > size)
            __builtin_trap();
        for (size_t i = 0; i < m.nrcpts; i++)
            if ((uint64_t)m.rcpts[i].status_offset >= size)
                __builtin_trap();
        (void)qf_pending(&m);
        qf_message_release(&m);
    }
    strbuf_release(&err);
    return 0;
}
