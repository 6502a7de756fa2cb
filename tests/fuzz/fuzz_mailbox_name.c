/* libFuzzer target for libmail/mailbox.c's name checks: any bytes as a
 * folder name; an accepted name must map to exactly one directory entry
 * directly below the root (never "..", never a path). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mailbox.h"
#include "mutf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[MAILBOX_NAME_MAX + 64];
    if (size >= sizeof(name))
        return 0;
    memcpy(name, data, size);
    name[size] = 0;
    struct strbuf dir = STRBUF_INIT, err = STRBUF_INIT;
    static const char root[] = "/r";
    if (mailbox_name_to_dir(root, name, &dir, &err) == 0) {
        if (strncmp(dir.data, root, 2) != 0)
            __builtin_trap();
        const char *rest = dir.data + 2;
        if (*rest != 0) {
            /* "/.<encoded>": one entry, no further '/', not "." or "..". */
            if (rest[0] != '/' || rest[1] != '.' || strchr(rest + 1, '/') != NULL ||
                strcmp(rest, "/.") == 0 || strcmp(rest, "/..") == 0 || strstr(rest, "..") != NULL)
                __builtin_trap();
            /* The entry decodes back to the canonical name. */
            struct strbuf back = STRBUF_INIT, canon = STRBUF_INIT;
            if (mutf7_to_utf8(rest + 2, strlen(rest + 2), &back, NULL) != 0 ||
                mailbox_name_check(name, &canon, &err) != 0 || strcmp(back.data, canon.data) != 0)
                __builtin_trap();
            strbuf_release(&back);
            strbuf_release(&canon);
        }
    } else if (err.len == 0) {
        __builtin_trap();
    }
    strbuf_release(&dir);
    strbuf_release(&err);
    return 0;
}
