/* libFuzzer target: SMTP command and reply line parsers. */
#include <stddef.h>
#include <stdint.h>

#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_cmd cmd;
    const char *err;
    int code;
    bool last;
    const char *text;
    size_t tl;
    struct strbuf out = STRBUF_INIT;

    smtp_cmd_init(&cmd);
    smtp_parse_command((const char *)data, size, 0, &cmd, &err);
    smtp_parse_command((const char *)data, size, SMTP_PARSE_UTF8, &cmd, &err);
    smtp_cmd_release(&cmd);
    smtp_parse_reply((const char *)data, size, &code, &last, &text, &tl);
    smtp_xtext_decode((const char *)data, size, &out);
    smtp_xtext_encode(data, size, &out);
    strbuf_release(&out);
    return 0;
}
