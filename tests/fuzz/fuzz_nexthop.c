/*
 * libFuzzer target: qmgr's nexthop as the smtp client parses it
 * (libmail/nexthop.c). Checks the result's invariants, and that a parsed
 * nexthop written back out parses to the same thing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexthop.h"

#define INPUT_MAX 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[INPUT_MAX + 1], again[NEXTHOP_HOST_MAX + 32];
    struct nexthop nh, nh2;
    const char *err = NULL;

    if (size > INPUT_MAX)
        size = INPUT_MAX;
    memcpy(text, data, size);
    text[size] = 0; /* stops at an embedded NUL, as a C string does */

    if (nexthop_parse(text, 25, &nh, &err) != 0) {
        if (err == NULL || *err == 0 || nh.host[0] != 0 || nh.port != 25)
            abort();
        return 0;
    }
    size_t len = strnlen(nh.host, sizeof(nh.host));
    if (len == 0 || len > NEXTHOP_HOST_MAX || nh.port < 1 || nh.port > 65535 ||
        (nh.mx && nh.literal))
        abort();

    if (nh.mx)
        snprintf(again, sizeof(again), "%s:%d", nh.host, nh.port);
    else if (nh.literal && strchr(nh.host, ':') != NULL)
        snprintf(again, sizeof(again), "[IPv6:%s]:%d", nh.host, nh.port);
    else
        snprintf(again, sizeof(again), "[%s]:%d", nh.host, nh.port);
    if (nexthop_parse(again, 587, &nh2, &err) != 0 || strcmp(nh.host, nh2.host) != 0 ||
        nh.port != nh2.port || nh.mx != nh2.mx || nh.literal != nh2.literal)
        abort();
    return 0;
}
