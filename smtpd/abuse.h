/*
 * abuse - smtpd's checks before the greeting: per-client connection count
 * and rate limits through anvil, and the pre-greeting talker test (abuse.c);
 * and the per-client AUTH failure limit, also through anvil (auth.c asks).
 * main.c calls smtpd_abuse_init once at post_init, smtpd_abuse_connect
 * before each session and smtpd_abuse_disconnect after it.
 */
#ifndef TEGAMI_SMTPD_ABUSE_H
#define TEGAMI_SMTPD_ABUSE_H

#include <stdbool.h>

struct server_client;
struct strbuf;

/* Read the parameters; fatal on a bad smtpd_client_event_limit_exceptions. */
void smtpd_abuse_init(void);
/*
 * Before the greeting. True: go on with the session. False: the client
 * was refused (reply sent, logged, client->fd closed and set to -1).
 */
bool smtpd_abuse_connect(struct server_client *client, const struct strbuf *banner);
/* After the session: tell anvil the connection is gone (no-op if it was not counted). */
void smtpd_abuse_disconnect(struct server_client *client);

/*
 * Per-client AUTH failure limit (smtpd_client_auth_failure_limit), counted
 * by anvil over all of a client's connections. Both calls are for the
 * current session's client (after smtpd_abuse_connect) and do nothing for
 * an exempt client, with the limit off, or when anvil fails (fail open:
 * only the per-session smtpd_auth_failure_limit applies).
 */
/* Before an AUTH exchange: the client's failures in the window; *over_r: the limit is reached. */
unsigned smtpd_abuse_auth_failures(const char *addr, bool *over_r);
/* An AUTH attempt failed: report it; the failures in the window with this one (0: not counted). */
unsigned smtpd_abuse_auth_failed(const char *addr, bool *over_r);

#endif
