/*
 * dns - MX, A, AAAA and TLSA lookups through libunbound.
 *
 * A dns_resolver wraps one libunbound context: the system's resolver
 * (/etc/resolv.conf) when resolver_address is empty, else the listed
 * forwarders ("ip@port, ip@port", main.cf resolver_address). Each lookup is
 * bounded: a timeout (the query is cancelled when it expires), a maximum
 * number of records kept, and names longer than DNS_NAME_MAX or with bytes
 * outside letters, digits, '-' and '_' are dropped as malformed.
 *
 * Callers: the smtp client (MX, A/AAAA, TLSA for DANE). A reply owns all its
 * memory; free it with dns_reply_free(). Peer (DNS) data never aborts.
 */
#ifndef TEGAMI_DNS_H
#define TEGAMI_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_NAME_MAX 253     /* longest host name in text form, without the trailing dot */
#define DNS_ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
#define DNS_TLSA_DATA_MAX 1024

enum dns_type {
    DNS_T_A = 1,
    DNS_T_MX = 15,
    DNS_T_AAAA = 28,
    DNS_T_TLSA = 52,
};

enum dns_status {
    DNS_FOUND,    /* at least one usable record */
    DNS_NXDOMAIN, /* the name does not exist (permanent) */
    DNS_NODATA,   /* the name exists but has no record of this type (permanent) */
    DNS_TEMPFAIL, /* SERVFAIL, timeout, network trouble: try again later */
    DNS_BOGUS,    /* DNSSEC validation failed: treat as a temporary failure, never use */
    DNS_INVALID,  /* our query was unusable (bad name) or every record was malformed */
};

struct dns_rr {
    enum dns_type type;
    /* MX: preference and exchange host (lower case, no trailing dot; "" is the root, a null MX) */
    uint16_t pref;
    char host[DNS_NAME_MAX + 1];
    /* A/AAAA: the address as text and as a sockaddr (port 0) */
    char addr_text[DNS_ADDR_TEXT_MAX];
    struct sockaddr_storage addr;
    socklen_t addr_len;
    /* TLSA (RFC 6698): usage, selector, matching type, association data */
    uint8_t tlsa_usage, tlsa_selector, tlsa_mtype;
    unsigned char *tlsa_data;
    size_t tlsa_len;
};

struct dns_reply {
    enum dns_status status;
    bool secure; /* the answer (or its denial) was DNSSEC-validated */
    int rcode;   /* DNS rcode of the answer, -1 when there was none (timeout) */
    struct dns_rr *rr;
    size_t count;
    char why[160]; /* for logs and bounces when status is not DNS_FOUND */
};

struct dns_resolver;

/*
 * Create a resolver. resolver_address: "" or NULL = the system's resolver,
 * else a list of ip@port (port optional, default 53). timeout_ms bounds each
 * lookup, max_records bounds the records kept from one answer.
 * trust_anchor_file: NULL or "" for none, else a file of DS/DNSKEY records
 * enabling DNSSEC validation. NULL with *error_r set on a bad argument.
 */
struct dns_resolver *dns_resolver_create(const char *resolver_address, long long timeout_ms,
                                         size_t max_records, const char *trust_anchor_file,
                                         const char **error_r);
void dns_resolver_free(struct dns_resolver **resp);

/*
 * Look name up for one type (A, AAAA, MX or TLSA). Always fills *reply_r
 * (status tells the outcome); returns 0 when status is DNS_FOUND, else -1.
 */
int dns_lookup(struct dns_resolver *res, const char *name, enum dns_type type,
               struct dns_reply *reply_r);
void dns_reply_free(struct dns_reply *reply);

/* Text for a status ("found", "nxdomain", ...). */
const char *dns_status_str(enum dns_status status);

/* Parse "ip@port" / "ip" into text form for libunbound; 0 or -1. Exposed for tests. */
int dns_parse_forwarder(const char *text, char *buf, size_t len, bool *loopback_r);

#endif
