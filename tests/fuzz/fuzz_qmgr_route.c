/* libFuzzer target: qmgr's transport value parser (transport_maps values, relayhost). */
#include <stdint.h>
#include <string.h>

#include "../../qmgr/resolve.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Input: value NUL domain. */
    char *buf = mymalloc(size + 2);
    memcpy(buf, data, size);
    buf[size] = '\0';
    buf[size + 1] = '\0';
    const char *value = buf;
    const char *domain = buf + strlen(buf) + (strlen(buf) < size ? 1 : 0);
    struct qmgr_route r = QMGR_ROUTE_INIT;

    qmgr_route_parse(value, domain, &r);
    if (r.kind == QMGR_ROUTE_SMTP && !qmgr_nexthop_valid(strbuf_str(&r.nexthop)))
        __builtin_trap(); /* never hand smtp a nexthop it would have to reject */
    if (r.kind == QMGR_ROUTE_ERROR && r.dsn[0] != '5')
        __builtin_trap(); /* bounces carry a 5.X.X code */
    if (r.kind == QMGR_ROUTE_DEFER && r.dsn[0] != '4')
        __builtin_trap();
    if (r.kind != QMGR_ROUTE_SMTP && r.kind != QMGR_ROUTE_LOCAL)
        for (const char *p = strbuf_str(&r.reason); *p != '\0'; p++)
            if ((unsigned char)*p < 0x20)
                __builtin_trap(); /* no control bytes into logs and DSNs */
    qmgr_route_release(&r);
    myfree(buf);
    return 0;
}
