/*
 * abuse - smtpd's checks before the greeting: per-client connection count
 * and rate limits through anvil, and the pre-greeting talker test (abuse.c).
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

#endif
