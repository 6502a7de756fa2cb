/*
 * libFuzzer target for libmail/imap_fetch.c: any bytes as FETCH attributes,
 * and the same bytes as a MIME header (transfer encoding) and as encoded
 * content for BINARY's decoders.
 */
#include <stddef.h>
#include <stdint.h>

#include "imap_fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imap_parser p;
    struct imap_fetch_request *req = NULL;
    const char *error = NULL;

    imap_parser_init(&p, (const char *)data, size, IMAP_PARSE_DEPTH_DEFAULT);
    if (imap_fetch_parse(&p, &req, &error)) {
        struct strbuf name;
        strbuf_init(&name, 0);
        if (req == NULL || req->nitems == 0)
            __builtin_trap();
        for (size_t i = 0; i < req->nitems; i++)
            if (req->items[i].att == IFA_SECTION || req->items[i].att == IFA_BINARY_SIZE)
                imap_fetch_item_name(&req->items[i], &name);
        strbuf_release(&name);
        imap_fetch_free(&req);
    } else if (error == NULL || req != NULL) {
        __builtin_trap();
    }
    imap_parser_release(&p);

    struct strbuf out;
    strbuf_init(&out, 0);
    enum imap_cte cte = imap_fetch_cte((const char *)data, size);
    if (cte > IMAP_CTE_UNKNOWN)
        __builtin_trap();
    imap_fetch_decode(IMAP_CTE_BASE64, (const char *)data, size, &out);
    if (out.len > size)
        __builtin_trap();
    strbuf_reset(&out);
    imap_fetch_decode(IMAP_CTE_QP, (const char *)data, size, &out);
    if (out.len > size)
        __builtin_trap();
    strbuf_release(&out);
    return 0;
}
