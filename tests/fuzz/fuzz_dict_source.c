/* libFuzzer target: the lookup-table text source parser (both formats). */
#include <stddef.h>
#include <stdint.h>

#include "dict.h"

static int emit(void *ctx, const char *key, const char *value, struct strbuf *reason_r)
{
    (void)ctx;
    (void)reason_r;
    return key[0] == 0 || value[0] == 0 ? -1 : 0; /* never emitted by a correct parser */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf err = STRBUF_INIT;
    if (size < 1)
        return 0;
    enum dict_format f = data[0] & 1 ? DICT_FORMAT_ALIASES : DICT_FORMAT_MAP;
    long n = dict_parse_source((const char *)data + 1, size - 1, f, emit, NULL, "fuzz", &err);
    if (n < 0 && err.len == 0)
        __builtin_trap(); /* a failure always says why */
    strbuf_release(&err);
    return 0;
}
