/* libFuzzer target: SMTP server replies and EHLO keywords (the smtp client's parser). */
#include <stddef.h>
#include <stdint.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply r;
    struct smtp_ehlo e;
    const char *err;
    size_t used = 0, pos = 0;

    smtp_reply_init(&r);
    /* Every reply in the input, one after another, as a session reads them. */
    while (pos < size && smtp_reply_parse(&r, (const char *)data + pos, size - pos, &used, &err) ==
                             SMTP_REPLY_DONE) {
        smtp_ehlo_parse(&r, &e);
        (void)smtp_reply_line(&r, r.nlines / 2);
        pos += used;
    }
    smtp_reply_release(&r);
    return 0;
}
