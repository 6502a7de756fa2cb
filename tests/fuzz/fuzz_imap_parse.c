/*
 * libFuzzer target for libmail/imap_parse.c: any bytes as one assembled
 * command. The literal-suffix check runs on the first line; then a generic
 * walk pulls whatever token the next byte suggests until an error or the end,
 * as the command handlers do. Then imap_list_match on the bytes as pattern
 * and name.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_parse.h"

static void walk(struct imap_parser *p)
{
    const char *t;
    struct imap_str s;
    struct imap_seqset set;
    uint32_t n;
    uint64_t n64;
    time_t when;
    if (!imap_parse_tag(p, &t) || !imap_parse_sp(p) || !imap_parse_atom(p, &t))
        return;
    for (int steps = 0; steps < 10000 && p->error == NULL; steps++) {
        if (imap_parse_at_eol(p)) {
            (void)imap_parse_eol(p);
            return;
        }
        if (p->pos >= p->len)
            return;
        size_t before = p->pos;
        switch (p->buf[p->pos]) {
        case ' ':
            (void)imap_parse_sp(p);
            break;
        case '(':
            (void)imap_parse_list_begin(p);
            break;
        case ')':
            (void)imap_parse_list_end(p);
            break;
        case '"':
            if (!imap_parse_date_time(p, &when) && (p->error = NULL, !imap_parse_date(p, &when))) {
                p->error = NULL;
                (void)imap_parse_string(p, &s);
            }
            break;
        case '{':
            (void)imap_parse_string(p, &s);
            if (p->error == NULL && s.data[s.len] != '\0')
                __builtin_trap();
            break;
        case '\\':
            (void)imap_parse_flag(p, true, &t);
            break;
        case '~':
            (void)imap_parse_literal8(p, &s);
            break;
        case '*':
        case '$':
            (void)imap_parse_seqset(p, &set);
            break;
        default:
            if (p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
                if (!imap_parse_seqset(p, &set)) {
                    p->error = NULL;
                    if (!imap_parse_number(p, &n)) {
                        p->error = NULL;
                        (void)imap_parse_number64(p, &n64);
                    }
                }
            } else if (!imap_parse_nstring(p, &s)) {
                p->error = NULL;
                (void)imap_parse_list_mailbox(p, &s);
            }
        }
        if (p->pos > p->len)
            __builtin_trap();
        if (p->error == NULL && p->pos == before)
            return; /* no progress without an error: nothing more to learn */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imap_parser p;
    uint64_t lit;
    bool nonsync;
    const char *why = NULL;
    const char *text = (const char *)data;
    const char *lf = memchr(text, '\n', size);
    size_t first = lf ? (size_t)(lf - text) + 1 : size;
    int r = imap_parse_literal_suffix(text, first, &lit, &nonsync, &why);
    if (r < 0 && why == NULL)
        __builtin_trap();
    imap_parser_init(&p, text, size, 8);
    walk(&p);
    if (p.error == NULL && p.depth > p.max_depth)
        __builtin_trap();
    imap_parser_release(&p);
    /* LIST wildcards: the first half of the input as pattern, the rest as name. */
    if (size <= 2048) {
        char buf[2050];
        size_t half = size / 2;
        memcpy(buf, data, half);
        buf[half] = '\0';
        memcpy(buf + half + 1, data + half, size - half);
        buf[size + 1] = '\0';
        (void)imap_list_match(buf, buf + half + 1, '.');
    }
    return 0;
}
