/*
 * anvil_table - per-client connection bookkeeping of the anvil service.
 *
 * The anvil daemon (anvil/main.c) keeps one entry per (service, client
 * address): how many connections are open right now ("count") and how many
 * were opened in the current rate window ("rate"). A window starts at the
 * first connect after the previous window ran out and lasts
 * anvil_rate_time_unit seconds, like Postfix's anvil. The same entry also
 * counts authentication failures ("auth_failures") in a window of its own
 * of the same length, starting at the first failure after the previous
 * window ran out (smtpd's per-client AUTH failure limit).
 *
 * Memory is bounded: at most max_clients entries. An entry with no open
 * connection and an expired window is removed by anvil_table_expire (the
 * daemon calls it every second); when the table is full, the least recently
 * used idle entry is dropped to make room, and when every entry has open
 * connections a connect is not recorded (ANVIL_TABLE_FULL; the caller lets
 * the client in: anvil fails open).
 *
 * Pure logic without I/O: the caller passes the time, so the module is
 * unit-tested with a fake clock (tests/unit/test_anvil_table.c).
 * anvil_table_request() is the whole protocol step (decoded request in,
 * reply out; docs/protocols.md "anvil"), also fuzzed (tests/fuzz/fuzz_anvil.c).
 */
#ifndef TEGAMI_ANVIL_TABLE_H
#define TEGAMI_ANVIL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "attr.h"

/* Longest service name and client address anvil accepts (protocol bound). */
#define ANVIL_NAME_MAX 100
/* Largest request or reply record, in bytes (protocol bound). */
#define ANVIL_RECORD_MAX 1024

enum anvil_table_result {
    ANVIL_TABLE_OK,      /* recorded; count and rate are set */
    ANVIL_TABLE_FULL,    /* not recorded: every entry has open connections */
    ANVIL_TABLE_UNKNOWN, /* disconnect/lookup of a client with no entry */
};

struct anvil_table;

/* A table for at most max_clients entries (>= 1) and a rate window of unit seconds (>= 1). */
struct anvil_table *anvil_table_create(size_t max_clients, time_t unit);
void anvil_table_free(struct anvil_table **tp);

/*
 * A connection from addr to service opened at now: count and rate include
 * it. On ANVIL_TABLE_FULL *count_r and *rate_r are 0.
 */
enum anvil_table_result anvil_table_connect(struct anvil_table *t, const char *service,
                                            const char *addr, time_t now, unsigned *count_r,
                                            unsigned *rate_r);
/* A connection closed. Never goes below zero; UNKNOWN if there was no entry. */
enum anvil_table_result anvil_table_disconnect(struct anvil_table *t, const char *service,
                                               const char *addr, time_t now);
/* Current count and rate without changing anything (UNKNOWN: both 0). */
enum anvil_table_result anvil_table_lookup(struct anvil_table *t, const char *service,
                                           const char *addr, time_t now, unsigned *count_r,
                                           unsigned *rate_r);
/*
 * An authentication failure from addr (for service) at now: *failures_r is
 * the number of failures in the current auth window, this one included.
 * The entry is created when missing (FULL: not recorded, *failures_r 0).
 */
enum anvil_table_result anvil_table_auth_fail(struct anvil_table *t, const char *service,
                                              const char *addr, time_t now, unsigned *failures_r);
/* Failures in the current auth window without changing anything (UNKNOWN: 0). */
enum anvil_table_result anvil_table_auth_failures(struct anvil_table *t, const char *service,
                                                  const char *addr, time_t now,
                                                  unsigned *failures_r);
/* Remove idle entries whose window ran out; returns how many were removed. */
size_t anvil_table_expire(struct anvil_table *t, time_t now);
/* Number of entries. */
size_t anvil_table_size(const struct anvil_table *t);

/*
 * The connections one anvil client (one smtpd process) has registered and
 * not yet closed, so that they can be closed for it when it dies. At most
 * max entries; the owner zero-initialises it and sets max.
 */
struct anvil_opens {
    char **keys; /* "service client" (neither contains a space) */
    size_t count;
    size_t cap;
    size_t max;
};

/*
 * One protocol step for one client: req is a decoded request record; the
 * reply record goes into reply (reset first). opens tracks the client's
 * open connections: a disconnect is applied only to a connection this
 * client opened, and a connect beyond opens->max is not recorded (status
 * full). Returns false when the request is malformed (the caller drops the
 * connection; reply then holds status=error and a reason for the log).
 */
bool anvil_table_request(struct anvil_table *t, struct anvil_opens *opens,
                         const struct attr_list *req, time_t now, struct attr_list *reply);
/* The client went away: disconnect everything it still has open, free opens' memory. */
void anvil_table_close(struct anvil_table *t, struct anvil_opens *opens, time_t now);

#endif
