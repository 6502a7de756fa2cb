/*
 * anvil_client - the client side of the anvil service (docs/protocols.md, "anvil").
 *
 * smtpd (and later other network daemons) ask anvil, before greeting a
 * client, how many connections that client address has open and how many it
 * opened in the current anvil_rate_time_unit. Each process keeps one
 * persistent connection to $queue_directory/private/anvil and sends one
 * request at a time. smtpd also reports each failed AUTH and asks how many
 * failures a client address has in the current window (the per-client
 * AUTH failure limit, smtpd/abuse.c), under ANVIL_SERVICE_AUTH.
 *
 * FAIL OPEN: anvil is an optional guard, never a gate. When it cannot be
 * reached, does not answer within the timeout, or answers nonsense, the
 * call logs a warning and returns false; the caller lets the client in.
 * After such a failure the client skips anvil for retry_seconds (so a hung
 * anvil costs one timeout per process per retry period, not one per
 * connection). A reused connection that turns out dead (anvil restarted)
 * is retried once on a fresh connection before anything is logged.
 */
#ifndef TEGAMI_ANVIL_CLIENT_H
#define TEGAMI_ANVIL_CLIENT_H

#include <stdbool.h>

struct anvil_client;

/* A client for the socket at path; nothing is connected yet. */
struct anvil_client *anvil_client_create(const char *path, int timeout_ms, int retry_seconds);
/* Close the connection and free; sets *cp to NULL. */
void anvil_client_free(struct anvil_client **cp);

/*
 * Register a new connection from addr to service. True with the client's
 * current count and rate (both including this connection); false when anvil
 * failed (logged) or did not record it (its table is full): allow the
 * connection, and do not call anvil_client_disconnect for it.
 */
bool anvil_client_connect(struct anvil_client *c, const char *service, const char *addr,
                          unsigned *count_r, unsigned *rate_r);
/* The connection registered by a successful anvil_client_connect ended. */
void anvil_client_disconnect(struct anvil_client *c, const char *service, const char *addr);

/*
 * The anvil service name under which smtpd counts AUTH failures: one name
 * for every smtpd service, so that a client's failures on port 25, 465
 * and 587 add up (a guesser gains nothing by switching ports).
 */
#define ANVIL_SERVICE_AUTH "auth"

/*
 * Report an authentication failure from addr. True with the client's
 * failures in the current window (this one included); false when anvil
 * failed (logged) or did not record it: only the per-session limit applies.
 */
bool anvil_client_auth_fail(struct anvil_client *c, const char *service, const char *addr,
                            unsigned *failures_r);
/* The client's failures in the current window (lookup). False: anvil failed (logged). */
bool anvil_client_auth_failures(struct anvil_client *c, const char *service, const char *addr,
                                unsigned *failures_r);

#endif
