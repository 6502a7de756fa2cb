/*
 * deliver_request - the "deliver" request qmgr sends to its delivery agents.
 *
 * qmgr writes one record per delivery job to private/local and private/smtp
 * (docs/protocols.md, "qmgr: Deliveries"): request=deliver, queue_id,
 * sender, offset, size, for smtp a nexthop, then index/rcpt/orig per
 * recipient. local/main.c and smtp/main.c both decode it here, from a record
 * that attr_read()/attr_decode() has already split into attributes.
 *
 * Memory: every string in a decoded request points into the attr_list it was
 * decoded from, so that list must outlive the request and stay unchanged;
 * only the recipient array is allocated, and deliver_request_release() frees
 * it. On failure nothing is left allocated.
 *
 * Errors: a record that does not decode is the peer's fault (qmgr is trusted,
 * but the socket is not where bytes get checked for it): the caller logs the
 * result's class and the static detail text and drops the connection, since
 * it cannot answer per recipient.
 */
#ifndef TEGAMI_DELIVER_REQUEST_H
#define TEGAMI_DELIVER_REQUEST_H

#include <stddef.h>

#include "attr.h"

/* One recipient, in the order of the record. */
struct deliver_rcpt {
    long long index;  /* position in the queue file, >= 0; echoed in the reply */
    const char *rcpt; /* the address, never NULL or empty */
    const char *orig; /* ORCPT as queued, or NULL when absent ("" when sent empty) */
};

struct deliver_request {
    const char *queue_id; /* queue_id_valid(); NULL until it is checked */
    const char *sender;   /* "" for the null sender */
    const char *nexthop;  /* NULL when the record has none */
    long long offset;     /* content offset in active/QUEUEID, >= 0 */
    long long size;       /* content length, >= 0; offset + size does not overflow */
    struct deliver_rcpt *rcpts;
    size_t nrcpts; /* >= 1 */
};

/* Flags for deliver_request_decode(). */
#define DELIVER_REQUEST_NEXTHOP 0x1 /* nexthop is required (smtp) */
/*
 * sender and recipients must not contain '<' or '>' (smtp: they are put
 * between angle brackets in MAIL FROM and RCPT TO). local takes them: an
 * RFC 5321 quoted local part may hold them, and local answers for it.
 */
#define DELIVER_REQUEST_NO_BRACKETS 0x2

/* What was wrong with a record; the detail is in *error_r. */
enum deliver_request_result {
    DELIVER_REQUEST_OK = 0,
    DELIVER_REQUEST_BAD_REQUEST,  /* request missing or not "deliver" */
    DELIVER_REQUEST_BAD_QUEUE_ID, /* queue_id missing or not a queue ID */
    DELIVER_REQUEST_BAD_ENVELOPE, /* sender, offset, size or nexthop */
    DELIVER_REQUEST_BAD_RCPTS,    /* the recipient list */
};

/*
 * Decode a deliver request from l with flags DELIVER_REQUEST_*. On success
 * fills *req and returns DELIVER_REQUEST_OK; otherwise *req holds no
 * allocation (req->queue_id is set once the queue ID was found valid, for
 * log lines, and always for BAD_ENVELOPE and BAD_RCPTS) and *error_r is
 * a static text saying what is wrong.
 * Attributes it does not know are ignored; no value may contain a NUL byte,
 * and no address a CR or LF.
 */
enum deliver_request_result deliver_request_decode(const struct attr_list *l, unsigned flags,
                                                   struct deliver_request *req,
                                                   const char **error_r);

/* Free what deliver_request_decode() allocated; safe to call twice. */
void deliver_request_release(struct deliver_request *req);

#endif
