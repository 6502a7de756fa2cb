/*
 * dest - from qmgr's nexthop to the addresses the smtp client tries.
 *
 * "domain": MX lookup (RFC 5321 §5.1, ordering and null MX in libmail/mx.c),
 * the domain's own A/AAAA when it has no MX; "[host]" / "[addr]": no MX.
 * Every MX host contributes its IPv6 and IPv4 addresses, in MX order, up to
 * smtp_mx_address_limit. An MX host whose name is ours (myhostname) or one
 * of whose addresses is one of our own SMTP listeners ends the list there
 * (RFC 5321 §5.1: only hosts preferred over this one are tried); when that
 * leaves nothing, the mail loops back to us and bounces (5.4.6).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "mx.h"
#include "mymalloc.h"
#include "nexthop.h"
#include "smtp.h"

_Static_assert(sizeof(((struct smtp_nexthop *)0)->host) == sizeof(((struct nexthop *)0)->host),
               "nexthop host buffers differ");

/* The syntax is libmail/nexthop.c's; the reason is logged here. */
int smtp_nexthop_parse(const char *text, int default_port, struct smtp_nexthop *out)
{
    struct nexthop nh;
    const char *err;

    memset(out, 0, sizeof(*out));
    out->port = default_port;
    if (nexthop_parse(text, default_port, &nh, &err) < 0) {
        msg_warn("nexthop \"%.100s\": %s", text != NULL ? text : "", err);
        return -1;
    }
    memcpy(out->host, nh.host, sizeof(out->host));
    out->port = nh.port;
    out->bracketed = !nh.mx;
    return 0;
}

static void dest_fail(struct smtp_dest *d, int status, const char *dsn, const char *fmt, ...)
    MSG_PRINTF(4, 5);

static void dest_fail(struct smtp_dest *d, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    d->status = status;
    snprintf(d->dsn, sizeof(d->dsn), "%s", dsn);
    strbuf_reset(&d->reason);
    va_start(ap, fmt);
    strbuf_vprintf(&d->reason, fmt, ap);
    va_end(ap);
}

/* Is sa (with port) one of our own SMTP listeners? */
static bool addr_is_self(const struct sockaddr_storage *sa)
{
    for (size_t i = 0; i < smtp_params.nself_addrs; i++) {
        const struct sockaddr_storage *s = &smtp_params.self_addrs[i];
        if (s->ss_family != sa->ss_family)
            continue;
        if (sa->ss_family == AF_INET) {
            const struct sockaddr_in *a = (const void *)sa, *b = (const void *)s;
            if (a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr)
                return true;
        } else if (sa->ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const void *)sa, *b = (const void *)s;
            if (a->sin6_port == b->sin6_port &&
                memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0)
                return true;
        }
    }
    return false;
}

static bool text_to_sockaddr(const char *text, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        return true;
    }
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        return true;
    }
    return false;
}

/* Add one address; false (nothing added) when it is one of ours. */
static bool dest_add(struct smtp_dest *d, const char *host, const char *addr, int port, bool secure)
{
    struct sockaddr_storage ss;
    if (text_to_sockaddr(addr, port, &ss) && addr_is_self(&ss))
        return false;
    if (d->naddrs >= (size_t)smtp_params.mx_address_limit)
        return true;
    struct smtp_addr *a = &d->addrs[d->naddrs++];
    snprintf(a->host, sizeof(a->host), "%s", host);
    snprintf(a->addr, sizeof(a->addr), "%s", addr);
    a->port = port;
    a->secure = secure;
    return true;
}

/*
 * Look up one host's AAAA and A records and add them. Returns 1 when the
 * host is one of ours (the caller stops), 0 otherwise; a lookup failure is
 * remembered in *tempfail / *notfound / why.
 */
static int dest_add_host(struct smtp_dest *d, const char *host, int port, bool mx_secure,
                         bool *tempfail, struct strbuf *why)
{
    static const enum dns_type types[] = {DNS_T_AAAA, DNS_T_A};
    int found = 0;
    bool self = false;
    for (size_t t = 0; t < 2; t++) {
        struct dns_reply rep;
        if (dns_lookup(smtp_params.resolver, host, types[t], &rep) == 0) {
            for (size_t i = 0; i < rep.count; i++) {
                if (!dest_add(d, host, rep.rr[i].addr_text, port, mx_secure && rep.secure))
                    self = true;
                found++;
            }
        } else if (rep.status == DNS_TEMPFAIL || rep.status == DNS_BOGUS) {
            *tempfail = true;
            strbuf_reset(why);
            strbuf_printf(why,
                          "Host or domain name not found. Name service error for name=%s "
                          "type=%s: %s",
                          host, types[t] == DNS_T_A ? "A" : "AAAA", rep.why);
        } else if (found == 0 && t == 1) {
            strbuf_reset(why);
            strbuf_printf(why,
                          "Host or domain name not found. Name service error for name=%s "
                          "type=A: Host not found",
                          host);
        }
        dns_reply_free(&rep);
    }
    return self ? 1 : 0;
}

static bool name_is_self(const char *host)
{
    for (size_t i = 0; i < smtp_params.nself_names; i++)
        if (strcasecmp(smtp_params.self_names[i], host) == 0)
            return true;
    return false;
}

void smtp_dest_resolve(const struct smtp_nexthop *nh, struct smtp_dest *d)
{
    struct strbuf why = STRBUF_INIT;
    bool tempfail = false;

    memset(d, 0, sizeof(*d));
    strbuf_init(&d->reason, 64);
    d->addrs = mycalloc((size_t)smtp_params.mx_address_limit, sizeof(*d->addrs));

    if (nh->bracketed) {
        struct sockaddr_storage ss;
        if (text_to_sockaddr(nh->host, nh->port, &ss)) {
            if (!dest_add(d, nh->host, nh->host, nh->port, false))
                dest_fail(d, 5, "5.4.6", "mail for [%s]:%d loops back to myself", nh->host,
                          nh->port);
            goto out;
        }
        if (name_is_self(nh->host)) {
            dest_fail(d, 5, "5.4.6", "mail for %s loops back to myself", nh->host);
            goto out;
        }
        if (dest_add_host(d, nh->host, nh->port, false, &tempfail, &why) == 1 && d->naddrs == 0)
            dest_fail(d, 5, "5.4.6", "mail for %s loops back to myself", nh->host);
        else if (d->naddrs == 0)
            dest_fail(d, tempfail ? 4 : 5, tempfail ? "4.4.3" : "5.4.4", "%s", why.data);
        goto out;
    }

    struct dns_reply mx;
    dns_lookup(smtp_params.resolver, nh->host, DNS_T_MX, &mx);
    if (mx.status == DNS_NXDOMAIN) {
        dest_fail(d, 5, "5.1.2",
                  "Host or domain name not found. Name service error for name=%s type=MX: "
                  "Host not found",
                  nh->host);
    } else if (mx.status == DNS_TEMPFAIL || mx.status == DNS_BOGUS || mx.status == DNS_INVALID) {
        dest_fail(d, 4, "4.4.3",
                  "Host or domain name not found. Name service error for name=%s type=MX: %s",
                  nh->host, mx.why);
    } else {
        size_t n = mx.status == DNS_FOUND ? mx.count : 0, nout = 0;
        struct mx_record *in = mycalloc(n ? n : 1, sizeof(*in));
        struct mx_record *out = mycalloc(n ? n : 1, sizeof(*out));
        for (size_t i = 0; i < n; i++) {
            in[i].pref = mx.rr[i].pref;
            in[i].host = mx.rr[i].host;
        }
        enum mx_result r = mx_select(nh->host, in, n, (const char *const *)smtp_params.self_names,
                                     smtp_params.nself_names, NULL, NULL, out, &nout);
        if (r == MX_SELECT_NULL_MX) {
            dest_fail(d, 5, "5.1.10", "Recipient address has null MX");
        } else if (r == MX_SELECT_LOOP) {
            dest_fail(d, 5, "5.4.6", "mail for %s loops back to myself", nh->host);
        } else if (r != MX_SELECT_OK) {
            dest_fail(d, 5, "5.4.4", "malformed MX records for %s", nh->host);
        } else {
            bool any_self = false;
            for (size_t i = 0; i < nout && d->naddrs < (size_t)smtp_params.mx_address_limit; i++) {
                if (dest_add_host(d, out[i].host, nh->port, mx.secure, &tempfail, &why) == 1) {
                    any_self = true;
                    break;
                }
            }
            if (d->naddrs == 0) {
                if (any_self)
                    dest_fail(d, 5, "5.4.6", "mail for %s loops back to myself", nh->host);
                else
                    dest_fail(d, tempfail ? 4 : 5, tempfail ? "4.4.3" : "5.4.4", "%s", why.data);
            }
        }
        myfree(in);
        myfree(out);
    }
    dns_reply_free(&mx);

out:
    strbuf_release(&why);
}

void smtp_dest_release(struct smtp_dest *d)
{
    myfree(d->addrs);
    d->addrs = NULL;
    d->naddrs = 0;
    strbuf_release(&d->reason);
}

int smtp_dest_tlsa(const struct smtp_addr *addr, struct dns_reply *rep)
{
    char name[DNS_NAME_MAX + 32];
    memset(rep, 0, sizeof(*rep));
    if (!addr->secure)
        return 0;
    snprintf(name, sizeof(name), "_%d._tcp.%s", addr->port, addr->host);
    if (dns_lookup(smtp_params.resolver, name, DNS_T_TLSA, rep) == 0)
        return rep->secure ? (int)rep->count : 0;
    if (rep->status == DNS_TEMPFAIL || rep->status == DNS_BOGUS) {
        /* RFC 7672 §2.2: a failed TLSA lookup in a signed zone must not downgrade. */
        dns_reply_free(rep);
        return -1;
    }
    return 0;
}
