/* libFuzzer target for libmail/imap_search.c: any bytes as SEARCH arguments, then evaluated. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_search.h"

static bool f_kw(void *ctx, const char *kw)
{
    (void)ctx;
    return kw[0] == '$';
}

static bool f_text(void *ctx, const char *name, struct strbuf *out)
{
    (void)ctx;
    strbuf_puts(out, name[0] ? "Caf\xc3\xa9 \xce\xa3" : "Subject: x\n");
    return name[0] != 'x';
}

static bool f_body(void *ctx, struct strbuf *out)
{
    (void)ctx;
    strbuf_puts(out, "body \xff text");
    return true;
}

static bool f_sent(void *ctx, long long *day_r)
{
    (void)ctx;
    *day_r = 19000;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imap_parser p;
    struct imap_search_program *prog = NULL;
    const char *error = NULL;

    imap_parser_init(&p, (const char *)data, size, IMAP_PARSE_DEPTH_DEFAULT);
    enum imap_search_parse_result r = imap_search_parse(&p, true, &prog, &error);
    if (r == IMAP_SEARCH_OK) {
        if (prog == NULL || prog->nnodes == 0)
            __builtin_trap();
        struct imap_search_msg m = {
            .seq = 2,
            .uid = 7,
            .max_seq = 3,
            .max_uid = 9,
            .flags = 0x05,
            .size = 1000,
            .modseq = 4,
            .internaldate = 1700000000,
            .has_keyword = f_kw,
            .header = f_text,
            .body = f_body,
            .sent_day = f_sent,
            .ctx = NULL,
        };
        (void)imap_search_match(prog, &m);
        imap_search_free(&prog);
    } else if (error == NULL || prog != NULL) {
        __builtin_trap();
    }
    imap_parser_release(&p);
    return 0;
}
