/*
 * local - internal interfaces of the local delivery agent.
 *
 * main.c     the qmgr protocol: one connection, many "deliver" requests
 * alias.c    alias tables and recursive expansion of one recipient into
 *            final targets (Maildir users, remote addresses, failures)
 * deliver.c  per-request header scan (loop detection), Maildir delivery,
 *            re-submission of forwarded mail into incoming/
 */
#ifndef TEGAMI_LOCAL_H
#define TEGAMI_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

/* Per-process settings, read once in post_init. */
struct local_params {
    int alias_depth_limit;
    int alias_expansion_limit;
    size_t header_scan_limit;
    size_t request_size_limit;
    int hopcount_limit;
    int ipc_timeout_ms;
};
extern struct local_params local_params;

/* ---- alias.c ---- */

enum local_target_kind {
    LOCAL_TARGET_USER,   /* deliver to a virtual user's Maildir */
    LOCAL_TARGET_REMOTE, /* forward: re-submit with this address as recipient */
    LOCAL_TARGET_FAIL,   /* cannot deliver (status/dsn/reason say why) */
};

struct local_target {
    enum local_target_kind kind;
    char *address; /* final recipient ("bob@example.test"), for Delivered-To and logs */
    char *maildir; /* USER: the Maildir path */
    int status;    /* FAIL: 4 or 5 */
    char dsn[16];  /* FAIL: "5.1.1" */
    char *reason;  /* FAIL: text */
};

struct local_expansion {
    struct local_target *items;
    size_t count, cap;
    bool aliased; /* the recipient was an alias */
    size_t cut;   /* targets dropped by loop detection */
};

/*
 * Expand recipient address rcpt (a local-domain address) into final targets:
 * aliases recursively (bounded depth, loops cut, duplicates removed), then
 * virtual users. Failures are targets of kind FAIL, never an error return.
 * queue_id prefixes log lines.
 */
void local_expand(const char *queue_id, const char *rcpt, struct local_expansion *exp);
void local_expansion_release(struct local_expansion *exp);

/* ---- deliver.c ---- */

/* What the header block of the message says, read once per request. */
struct local_headers {
    size_t received;     /* count of Received: headers */
    char **delivered_to; /* lowercased Delivered-To: values */
    size_t ndelivered_to;
};

/* Read and parse the header block of [offset, offset+size) of fd. 0 or -1 (errno). */
int local_headers_read(int fd, off_t offset, size_t size, struct local_headers *h);
void local_headers_release(struct local_headers *h);
/* True if the header already has "Delivered-To: address" (case-insensitive). */
bool local_headers_delivered_to(const struct local_headers *h, const char *address);

/*
 * Deliver one copy into maildir with Return-Path and Delivered-To
 * prepended. 0 with name_r, or -1 with dsn_r ("4.2.0"...) and err.
 */
int local_deliver_maildir(const char *maildir, const char *sender, const char *recipient, int fd,
                          off_t offset, size_t size, struct strbuf *name_r, const char **dsn_r,
                          struct strbuf *err);

/*
 * Write a new queue file into incoming/ with the same sender and content
 * (prefixed with "Delivered-To: delivered_to"), recipients addrs[0..n),
 * each with orig as its ORCPT, and wake qmgr. 0 with id_r, or -1 with err.
 */
int local_forward(const char *sender, const char *delivered_to, const char *const *addrs, size_t n,
                  const char *orig, int fd, off_t offset, size_t size, struct strbuf *id_r,
                  struct strbuf *err);

/* Replace CR, LF and other controls with '?' (header and log safety). */
void local_sanitize(struct strbuf *out, const char *in);

#endif
