/*
 * libFuzzer target: qmgr's "deliver" request as local and smtp decode it
 * (libmail/deliver_request.c), from bytes through attr_decode. Checks the
 * invariants a decoded request promises its callers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "deliver_request.h"
#include "queue.h"

static void check(const struct attr_list *l, unsigned flags)
{
    struct deliver_request d;
    const char *why = NULL;
    if (deliver_request_decode(l, flags, &d, &why) != DELIVER_REQUEST_OK) {
        if (why == NULL || *why == 0 || d.rcpts != NULL || d.nrcpts != 0)
            abort();
        return;
    }
    if (why != NULL || !queue_id_valid(d.queue_id) || d.sender == NULL || d.offset < 0 ||
        d.size < 0 || d.nrcpts == 0 || ((flags & DELIVER_REQUEST_NEXTHOP) && d.nexthop == NULL))
        abort();
    for (size_t i = 0; i < d.nrcpts; i++) {
        const struct deliver_rcpt *r = &d.rcpts[i];
        if (r->index < 0 || r->rcpt == NULL || *r->rcpt == 0 || strpbrk(r->rcpt, "\r\n") ||
            (r->orig && strpbrk(r->orig, "\r\n")) ||
            ((flags & DELIVER_REQUEST_NO_BRACKETS) && strpbrk(r->rcpt, "<>")))
            abort();
    }
    deliver_request_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct attr_list l = ATTR_LIST_INIT;
    const char *why;
    if (attr_decode((const char *)data, size, 1 << 16, &l, &why) > 0) {
        check(&l, 0);                                                     /* local */
        check(&l, DELIVER_REQUEST_NEXTHOP | DELIVER_REQUEST_NO_BRACKETS); /* smtp */
    }
    attr_list_release(&l);
    return 0;
}
