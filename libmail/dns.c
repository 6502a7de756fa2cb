/*
 * dns - lookups through libunbound, bounded by time and size. See dns.h.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "config.h"
#include "mymalloc.h"

#define DNS_WIRE_NAME_MAX 255 /* RFC 1035 §3.1 */
#define DNS_LABEL_MAX 63

struct dns_resolver {
    struct ub_ctx *ctx;
    long long timeout_ms;
    size_t max_records;
};

const char *dns_status_str(enum dns_status status)
{
    switch (status) {
    case DNS_FOUND:
        return "found";
    case DNS_NXDOMAIN:
        return "nxdomain";
    case DNS_NODATA:
        return "nodata";
    case DNS_TEMPFAIL:
        return "temporary failure";
    case DNS_BOGUS:
        return "bogus";
    case DNS_INVALID:
        return "invalid";
    }
    return "unknown";
}

static bool dns_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* A query name: 1-253 characters (plus an optional final dot), labels 1-63 of host characters. */
static bool dns_name_ok(const char *name)
{
    size_t len = strnlen(name, DNS_NAME_MAX + 2);
    size_t label = 0;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (!dns_host_char((unsigned char)name[i]) || ++label > DNS_LABEL_MAX) {
            return false;
        }
    }
    return label > 0;
}

int dns_parse_forwarder(const char *text, char *buf, size_t len, bool *loopback_r)
{
    char ip[DNS_ADDR_TEXT_MAX];
    const char *at = strchr(text, '@');
    size_t iplen = at ? (size_t)(at - text) : strlen(text);
    long port = 53;
    struct in_addr a4;
    struct in6_addr a6;

    if (iplen == 0 || iplen >= sizeof(ip))
        return -1;
    memcpy(ip, text, iplen);
    ip[iplen] = 0;
    if (at) {
        char *end;
        if (at[1] < '0' || at[1] > '9')
            return -1;
        errno = 0;
        port = strtol(at + 1, &end, 10);
        if (errno || *end || port < 1 || port > 65535)
            return -1;
    }
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        *loopback_r = (ntohl(a4.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
        *loopback_r = IN6_IS_ADDR_LOOPBACK(&a6);
    } else {
        return -1;
    }
    int n = snprintf(buf, len, "%s@%ld", ip, port);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

struct dns_resolver *dns_resolver_create(const char *resolver_address, long long timeout_ms,
                                         size_t max_records, const char *trust_anchor_file,
                                         const char **error_r)
{
    struct dns_resolver *res;
    char **list;
    size_t n = 0;
    bool loopback = false;

    if (timeout_ms <= 0 || max_records == 0) {
        *error_r = "bad timeout or record limit";
        return NULL;
    }
    res = mycalloc(1, sizeof(*res));
    res->timeout_ms = timeout_ms;
    res->max_records = max_records;
    if ((res->ctx = ub_ctx_create()) == NULL) {
        myfree(res);
        *error_r = "cannot create a libunbound context";
        return NULL;
    }
    /* Threads, not a forked resolver process: a daemon keeps one process per role. */
    if (ub_ctx_async(res->ctx, 1) != 0) {
        *error_r = "libunbound: cannot use threads";
        goto fail;
    }
    list = config_split_list(resolver_address ? resolver_address : "", &n);
    for (size_t i = 0; i < n; i++) {
        char fwd[DNS_ADDR_TEXT_MAX + 8];
        bool lo = false;
        if (dns_parse_forwarder(list[i], fwd, sizeof(fwd), &lo) < 0) {
            config_list_free(&list);
            *error_r = "resolver_address: expected ip@port";
            goto fail;
        }
        loopback |= lo;
        if (ub_ctx_set_fwd(res->ctx, fwd) != 0) {
            config_list_free(&list);
            *error_r = "resolver_address: libunbound rejected a forwarder";
            goto fail;
        }
    }
    config_list_free(&list);
    if (n == 0) {
        if (ub_ctx_resolvconf(res->ctx, NULL) != 0) {
            *error_r = "cannot read the system resolver configuration";
            goto fail;
        }
    } else if (loopback && ub_ctx_set_option(res->ctx, "do-not-query-localhost:", "no") != 0) {
        /* libunbound refuses to send queries to 127/8 and ::1 unless told otherwise. */
        *error_r = "libunbound: cannot allow a loopback forwarder";
        goto fail;
    }
    if (trust_anchor_file && *trust_anchor_file &&
        ub_ctx_add_ta_file(res->ctx, trust_anchor_file) != 0) {
        *error_r = "cannot read the DNSSEC trust anchor file";
        goto fail;
    }
    /*
     * libunbound answers RFC 6761 names (test., invalid., ...) itself with
     * NXDOMAIN. Configured forwarders decide about "test." instead: test
     * zones are served that way. Last: it finalizes the configuration.
     */
    if (n > 0 && ub_ctx_zone_remove(res->ctx, "test.") != 0) {
        *error_r = "libunbound: cannot remove the built-in test. zone";
        goto fail;
    }
    return res;

fail:
    ub_ctx_delete(res->ctx);
    myfree(res);
    return NULL;
}

void dns_resolver_free(struct dns_resolver **resp)
{
    struct dns_resolver *res = *resp;

    if (res == NULL)
        return;
    ub_ctx_delete(res->ctx);
    myfree(res);
    *resp = NULL;
}

void dns_reply_free(struct dns_reply *reply)
{
    for (size_t i = 0; i < reply->count; i++)
        myfree(reply->rr[i].tlsa_data);
    myfree(reply->rr);
    reply->rr = NULL;
    reply->count = 0;
}

/* Wire-format name (no compression: libunbound hands rdata decompressed) to lower-case text. */
static int dns_wire_name(const unsigned char *p, size_t len, char *out, size_t *used_r)
{
    size_t pos = 0, olen = 0;

    for (;;) {
        if (pos >= len || pos >= DNS_WIRE_NAME_MAX)
            return -1;
        size_t l = p[pos++];
        if (l == 0)
            break;
        if (l > DNS_LABEL_MAX || pos + l > len)
            return -1; /* also rejects compression pointers (0xC0) */
        if (olen + (olen ? 1 : 0) + l > DNS_NAME_MAX)
            return -1;
        if (olen)
            out[olen++] = '.';
        for (size_t i = 0; i < l; i++) {
            unsigned char c = p[pos + i];
            if (!dns_host_char(c))
                return -1;
            out[olen++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        pos += l;
    }
    out[olen] = 0;
    *used_r = pos;
    return 0;
}

/* Decode one record's rdata into rr; -1 if malformed. */
static int dns_decode(enum dns_type type, const unsigned char *d, size_t len, struct dns_rr *rr)
{
    size_t used;

    memset(rr, 0, sizeof(*rr));
    rr->type = type;
    switch (type) {
    case DNS_T_MX:
        if (len < 3)
            return -1;
        rr->pref = (uint16_t)((d[0] << 8) | d[1]);
        if (dns_wire_name(d + 2, len - 2, rr->host, &used) < 0 || used != len - 2)
            return -1;
        return 0;
    case DNS_T_A: {
        struct sockaddr_in *sin = (struct sockaddr_in *)&rr->addr;
        if (len != 4)
            return -1;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, d, 4);
        rr->addr_len = sizeof(*sin);
        inet_ntop(AF_INET, &sin->sin_addr, rr->addr_text, sizeof(rr->addr_text));
        return 0;
    }
    case DNS_T_AAAA: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rr->addr;
        if (len != 16)
            return -1;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, d, 16);
        rr->addr_len = sizeof(*sin6);
        inet_ntop(AF_INET6, &sin6->sin6_addr, rr->addr_text, sizeof(rr->addr_text));
        return 0;
    }
    case DNS_T_TLSA:
        if (len < 4 || len - 3 > DNS_TLSA_DATA_MAX)
            return -1;
        rr->tlsa_usage = d[0];
        rr->tlsa_selector = d[1];
        rr->tlsa_mtype = d[2];
        rr->tlsa_len = len - 3;
        rr->tlsa_data = (unsigned char *)mymemdup(d + 3, len - 3);
        return 0;
    }
    return -1;
}

struct dns_query {
    bool done;
    int err;
    struct ub_result *result;
};

static void dns_callback(void *arg, int err, struct ub_result *result)
{
    struct dns_query *q = arg;

    q->done = true;
    q->err = err;
    q->result = result;
}

static long long dns_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dns_fail(struct dns_reply *reply, enum dns_status status, const char *why)
{
    reply->status = status;
    snprintf(reply->why, sizeof(reply->why), "%s", why);
    return -1;
}

int dns_lookup(struct dns_resolver *res, const char *name, enum dns_type type,
               struct dns_reply *reply)
{
    struct dns_query q = {0};
    int async_id = 0, rc;
    long long deadline;
    struct ub_result *r;

    memset(reply, 0, sizeof(*reply));
    reply->rcode = -1;
    if (name == NULL || !dns_name_ok(name))
        return dns_fail(reply, DNS_INVALID, "malformed domain name");
    if (type != DNS_T_A && type != DNS_T_AAAA && type != DNS_T_MX && type != DNS_T_TLSA)
        return dns_fail(reply, DNS_INVALID, "unsupported record type");
    rc = ub_resolve_async(res->ctx, name, (int)type, 1 /* IN */, &q, dns_callback, &async_id);
    if (rc != 0)
        return dns_fail(reply, DNS_TEMPFAIL, ub_strerror(rc));
    deadline = dns_now_ms() + res->timeout_ms;
    while (!q.done) {
        long long left = deadline - dns_now_ms();
        if (left <= 0) {
            ub_cancel(res->ctx, async_id);
            return dns_fail(reply, DNS_TEMPFAIL, "DNS lookup timed out");
        }
        struct pollfd pfd = {.fd = ub_fd(res->ctx), .events = POLLIN};
        int n = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno != EINTR) {
            ub_cancel(res->ctx, async_id);
            return dns_fail(reply, DNS_TEMPFAIL, "poll on the resolver failed");
        }
        if (n > 0 && (rc = ub_process(res->ctx)) != 0) {
            if (!q.done)
                ub_cancel(res->ctx, async_id);
            if (q.result)
                ub_resolve_free(q.result);
            return dns_fail(reply, DNS_TEMPFAIL, ub_strerror(rc));
        }
    }
    if (q.err != 0 || q.result == NULL) {
        if (q.result)
            ub_resolve_free(q.result);
        return dns_fail(reply, DNS_TEMPFAIL, ub_strerror(q.err));
    }
    r = q.result;
    reply->rcode = r->rcode;
    reply->secure = r->secure != 0;
    if (r->bogus) {
        snprintf(reply->why, sizeof(reply->why), "DNSSEC validation failed: %s",
                 r->why_bogus ? r->why_bogus : "bogus");
        reply->status = DNS_BOGUS;
        ub_resolve_free(r);
        return -1;
    }
    if (r->nxdomain || r->rcode == 3) {
        ub_resolve_free(r);
        return dns_fail(reply, DNS_NXDOMAIN, "domain not found");
    }
    if (r->rcode != 0) {
        /* SERVFAIL, REFUSED, ...: the resolver could not answer now. */
        char why[64];
        snprintf(why, sizeof(why), "DNS server failure (rcode %d)", r->rcode);
        ub_resolve_free(r);
        return dns_fail(reply, DNS_TEMPFAIL, why);
    }
    if (!r->havedata) {
        ub_resolve_free(r);
        return dns_fail(reply, DNS_NODATA, "no records of that type");
    }
    size_t total = 0;
    while (r->data[total])
        total++;
    size_t keep = total < res->max_records ? total : res->max_records;
    reply->rr = mycalloc(keep ? keep : 1, sizeof(*reply->rr));
    for (size_t i = 0; i < total && reply->count < keep; i++) {
        if (r->len[i] < 0)
            continue;
        if (dns_decode(type, (const unsigned char *)r->data[i], (size_t)r->len[i],
                       &reply->rr[reply->count]) == 0)
            reply->count++;
    }
    ub_resolve_free(r);
    if (reply->count == 0) {
        dns_reply_free(reply);
        return dns_fail(reply, DNS_INVALID, "every record in the answer was malformed");
    }
    reply->status = DNS_FOUND;
    return 0;
}
