/* libFuzzer target for libmail/mbox_index.c's record decoder: any bytes as
 * an index record value; an accepted record names a plain file. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mbox_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mbox_rec r;
    const char *fn = NULL;
    size_t fnlen = 0;
    if (mbox_rec_decode(data, size, &r, &fn, &fnlen) == 0) {
        if (fn == NULL || fnlen == 0 || fn < (const char *)data ||
            fn + fnlen > (const char *)data + size || memchr(fn, '/', fnlen) != NULL ||
            memchr(fn, 0, fnlen) != NULL || fn[0] == '.' || r.modseq == 0 ||
            (r.flags & ~MBOX_F_STORABLE) != 0)
            __builtin_trap();
    }
    return 0;
}
