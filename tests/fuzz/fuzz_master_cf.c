/* libFuzzer target: master.cf parsing (master_cf_parse). */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf errors = STRBUF_INIT;
    struct master_entry *entries = NULL;
    size_t count = 0;

    strbuf_reset(&errors);
    if (master_cf_parse("master.cf", (const char *)data, size, &entries, &count, &errors) == 0)
        master_cf_free(&entries, count);
    strbuf_release(&errors);
    return 0;
}
