/* libFuzzer target: main.cf parsing, expansion and validation (config_load_text + config_check). */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf errors = STRBUF_INIT;

    config_reset();
    config_set_directory("/fuzz");
    strbuf_reset(&errors);
    if (config_load_text("main.cf", (const char *)data, size, &errors) == 0)
        (void)config_check(&errors);
    strbuf_release(&errors);
    return 0;
}
