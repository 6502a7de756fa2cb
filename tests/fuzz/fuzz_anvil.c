/* libFuzzer target: the anvil protocol step (attr records in, table bookkeeping, replies out). */
#include <stdint.h>
#include <string.h>

#include "anvil_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct anvil_table *t = anvil_table_create(4, 2);
    struct anvil_opens opens = {NULL, 0, 0, 3};
    struct attr_list req = ATTR_LIST_INIT, reply = ATTR_LIST_INIT;
    const char *buf = (const char *)data;
    time_t now = 0;

    /* A stream of records, as one client connection would send them. */
    while (size > 0) {
        const char *why;
        ssize_t n = attr_decode(buf, size, ANVIL_RECORD_MAX, &req, &why);
        if (n <= 0)
            break;
        if (!anvil_table_request(t, &opens, &req, now++, &reply))
            break;
        if (attr_list_get(&reply, "status") == NULL || anvil_table_size(t) > 4)
            __builtin_trap();
        buf += n;
        size -= (size_t)n;
    }
    anvil_table_close(t, &opens, now);
    anvil_table_expire(t, now + 100);
    if (anvil_table_size(t) != 0)
        __builtin_trap();
    attr_list_release(&req);
    attr_list_release(&reply);
    anvil_table_free(&t);
    return 0;
}
