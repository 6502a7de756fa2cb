/*
 * mx - MX host selection (RFC 5321 §5.1, RFC 7505). See mx.h.
 */
#include "mx.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *mx_result_str(enum mx_result result)
{
    switch (result) {
    case MX_SELECT_OK:
        return "ok";
    case MX_SELECT_NULL_MX:
        return "null MX";
    case MX_SELECT_LOOP:
        return "mail loop";
    case MX_SELECT_INVALID:
        return "invalid";
    }
    return "unknown";
}

/* Length of a name without its trailing dot. */
static size_t mx_name_len(const char *name)
{
    size_t len = strlen(name);

    return len > 0 && name[len - 1] == '.' ? len - 1 : len;
}

static bool mx_is_root(const char *host)
{
    return mx_name_len(host) == 0;
}

static bool mx_same_name(const char *a, const char *b)
{
    size_t la = mx_name_len(a), lb = mx_name_len(b);

    return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

static bool mx_is_self(const char *host, const char *const *self, size_t nself)
{
    for (size_t i = 0; i < nself; i++)
        if (self[i] && mx_same_name(host, self[i]))
            return true;
    return false;
}

static uint32_t mx_default_random(void *ctx, uint32_t bound)
{
    (void)ctx;
    return arc4random_uniform(bound);
}

enum mx_result mx_select(const char *domain, const struct mx_record *records, size_t count,
                         const char *const *self, size_t nself, mx_random_fn rnd, void *rnd_ctx,
                         struct mx_record *out, size_t *count_r)
{
    size_t n = 0;

    *count_r = 0;
    if (domain == NULL || mx_is_root(domain) || count > MX_SELECT_MAX || out == NULL ||
        (count > 0 && records == NULL) || (nself > 0 && self == NULL))
        return MX_SELECT_INVALID;
    for (size_t i = 0; i < count; i++)
        if (records[i].host == NULL)
            return MX_SELECT_INVALID;
    if (rnd == NULL)
        rnd = mx_default_random;

    /* RFC 5321 §5.1: no MX records -> the domain itself, preference 0. */
    if (count == 0) {
        if (mx_is_self(domain, self, nself))
            return MX_SELECT_LOOP;
        out[0].pref = 0;
        out[0].host = domain;
        *count_r = 1;
        return MX_SELECT_OK;
    }
    /* RFC 7505 §3: a single MX "." with preference 0 means "no mail". */
    if (count == 1 && mx_is_root(records[0].host) && records[0].pref == 0)
        return MX_SELECT_NULL_MX;

    /* Drop root entries mixed with real hosts (RFC 7505 §3 forbids them; they name no host). */
    for (size_t i = 0; i < count; i++)
        if (!mx_is_root(records[i].host))
            out[n++] = records[i];
    if (n == 0)
        return MX_SELECT_NULL_MX;

    /* Insertion sort by preference (stable; n is bounded). */
    for (size_t i = 1; i < n; i++) {
        struct mx_record r = out[i];
        size_t j = i;
        while (j > 0 && out[j - 1].pref > r.pref) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = r;
    }
    /* Shuffle each run of equal preferences (Fisher-Yates). */
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && out[end].pref == out[start].pref)
            end++;
        for (size_t i = end - start; i > 1; i--) {
            size_t j = rnd(rnd_ctx, (uint32_t)i) % i;
            struct mx_record t = out[start + i - 1];
            out[start + i - 1] = out[start + j];
            out[start + j] = t;
        }
        start = end;
    }
    /* RFC 5321 §5.1: if this host is an MX, use only hosts preferred over it. */
    for (size_t i = 0; i < n; i++) {
        if (mx_is_self(out[i].host, self, nself)) {
            uint16_t mine = out[i].pref;
            size_t k = 0;
            while (k < n && out[k].pref < mine)
                k++;
            n = k;
            break;
        }
    }
    if (n == 0)
        return MX_SELECT_LOOP;
    *count_r = n;
    return MX_SELECT_OK;
}
