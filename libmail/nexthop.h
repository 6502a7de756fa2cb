/*
 * nexthop - parse a delivery destination as qmgr hands it to the smtp
 * client (docs/protocols.md, "qmgr → private/smtp"; docs/config.md, "smtp
 * client").
 *
 * Forms, each optionally followed by ":port" (1..65535, decimal digits
 * only, at most 5 of them; without it the caller's default port):
 *
 *   domain              MX lookup for the domain (a trailing dot is dropped)
 *   [host]              no MX lookup: the host's own A/AAAA
 *   [192.0.2.1]         no MX lookup, IPv4 address literal
 *   [IPv6:2001:db8::1]  no MX lookup, IPv6 address literal (RFC 5321 §4.1.3;
 *   [2001:db8::1]       the "IPv6:" tag is optional and case-insensitive)
 *
 * Host names: letters, digits, '-', '_' and '.', labels of 1..63 bytes,
 * at most NEXTHOP_HOST_MAX bytes in all. Anything else - empty input,
 * unbalanced brackets, a bad port, bad bytes, text after "]" or after the
 * port - is malformed and gets a static error text.
 *
 * Pure function, no I/O, no allocation.
 */
#ifndef TEGAMI_NEXTHOP_H
#define TEGAMI_NEXTHOP_H

#include <stdbool.h>

#define NEXTHOP_HOST_MAX 253 /* longest host name in text form, without the trailing dot */
#define NEXTHOP_LABEL_MAX 63 /* longest label of a host name */

struct nexthop {
    /* The host name (trailing dot dropped unless bracketed) or the address
     * literal without brackets and without "IPv6:". */
    char host[NEXTHOP_HOST_MAX + 1];
    int port;     /* from ":port", else the default */
    bool mx;      /* MX lookup applies (not bracketed) */
    bool literal; /* host is an IPv4 or IPv6 address (only when bracketed) */
};

/*
 * Parse text into *out. Returns 0, or -1 with *error_r set to a static
 * reason ("port out of range (1-65535)") when text is malformed; *out is
 * then zeroed apart from the default port. error_r may be NULL.
 */
int nexthop_parse(const char *text, int default_port, struct nexthop *out, const char **error_r);

#endif
