/* libFuzzer target for libmail/message.c: parse, then render everything. */
#include <stddef.h>
#include <stdint.h>

#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct message *m = message_parse(s, size);
    struct strbuf out = STRBUF_INIT;
    size_t off, len;
    static const char *const parts[] = {"", "1", "2", "1.1", "1.2", "2.1", "1.1.1", "3.2.1"};
    static const char *const names[] = {"subject", "from"};

    message_envelope(m, &out);
    message_bodystructure(m, true, &out);
    message_bodystructure(m, false, &out);
    (void)message_size_crlf(m);
    (void)message_date(m);
    (void)message_header_decoded(m, "subject", &out);
    (void)message_header_decoded(m, "to", &out);
    message_body_text(m, 65536, &out);
    message_decode_2047(s, size, &out);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        for (int w = MESSAGE_SEC_ALL; w <= MESSAGE_SEC_MIME; w++) {
            if (message_section(m, parts[i], (enum message_sec)w, &off, &len) == 0) {
                if (off > size || len > size - off)
                    __builtin_trap();
                message_append_crlf(s + off, len, &out);
                if (w == MESSAGE_SEC_HEADER || w == MESSAGE_SEC_MIME)
                    message_header_filter(s + off, len, names, 2, w == MESSAGE_SEC_MIME, &out);
            }
        }
    }
    message_free(&m);
    strbuf_release(&out);
    return 0;
}
