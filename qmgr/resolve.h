/*
 * resolve - qmgr's routing: which transport, and which nexthop, delivers a
 * recipient.
 *
 * Order (docs/protocols.md "qmgr: Routing"):
 *   1. a domain in mydestination (or no domain)  -> local
 *   2. transport_maps: the domain, then its parents as ".parent.tld"
 *   3. relayhost, when set                       -> smtp:$relayhost
 *   4. default_transport (smtp), nexthop = the recipient domain, lower-cased
 *
 * A table value is "transport:nexthop"; transport is smtp, local or error
 * ("error:5.7.1 text" bounces with that text, a 4.X.X code defers). An
 * empty nexthop means the recipient domain. Anything else defers (4.3.5)
 * with a warning: a typo in a table must never bounce mail.
 *
 * qmgr_route_parse is pure (unit-tested); qmgr_resolve reads the
 * configuration and the tables (kept open, reopened when the parameter's
 * text changes). The caller owns the route and releases it.
 */
#ifndef TEGAMI_QMGR_RESOLVE_H
#define TEGAMI_QMGR_RESOLVE_H

#include <stdbool.h>

#include "strbuf.h"

enum qmgr_route_kind {
    QMGR_ROUTE_LOCAL, /* private/local */
    QMGR_ROUTE_SMTP,  /* private/smtp, nexthop set */
    QMGR_ROUTE_ERROR, /* bounce now with dsn + reason */
    QMGR_ROUTE_DEFER, /* defer now with dsn + reason (unknown transport, table error) */
};

struct qmgr_route {
    enum qmgr_route_kind kind;
    struct strbuf nexthop; /* smtp: "example.test", "[10.0.0.1]:587" (lower-cased) */
    char dsn[12];          /* ERROR/DEFER: "5.7.1" */
    struct strbuf reason;  /* ERROR/DEFER: text */
};

#define QMGR_ROUTE_INIT                                                                            \
    {                                                                                              \
        QMGR_ROUTE_LOCAL, STRBUF_INIT, "", STRBUF_INIT                                             \
    }

/*
 * Interpret a transport value ("smtp:[relay]:587", "local:", "error:5.7.1
 * go away") for a recipient in domain (no brackets removed; "" allowed).
 * Fills route (reset first). Never fails: bad values become DEFER 4.3.5.
 */
void qmgr_route_parse(const char *value, const char *domain, struct qmgr_route *route);

/* True if nexthop is "host", "host:port", "[host]" or "[host]:port" with sane bytes. */
bool qmgr_nexthop_valid(const char *nexthop);

/* Route one recipient address (configuration and transport_maps). */
void qmgr_resolve(const char *address, struct qmgr_route *route);

void qmgr_route_release(struct qmgr_route *route);

#endif
