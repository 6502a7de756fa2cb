/*
 * sock - socket helpers: listening, connecting, addresses, networks.
 *
 * All returned fds are close-on-exec. Errors come back as -1 with a reason
 * in err; nothing here exits.
 */
#ifndef TEGAMI_SOCK_H
#define TEGAMI_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "strbuf.h"

/* Listen on "host:port", "[v6]:port" or "port" (all addresses). */
int sock_inet_listen(const char *spec, int backlog, struct strbuf *err);
/* Listen on a UNIX stream socket at path (replacing a stale one), chmod mode. */
int sock_unix_listen(const char *path, int backlog, int mode, struct strbuf *err);
/* Create (if needed) and open a fifo for reading, non-blocking. */
int sock_fifo_listen(const char *path, int mode, struct strbuf *err);
/* Connect to a UNIX stream socket, waiting at most timeout_ms. */
int sock_unix_connect(const char *path, int timeout_ms, struct strbuf *err);
/* Connect to host:port (numeric host), waiting at most timeout_ms. */
int sock_inet_connect(const char *host, int port, int timeout_ms, struct strbuf *err);

/* Numeric text of a socket address ("127.0.0.1", "::1", "unix"), and its port. */
void sock_addr_text(const struct sockaddr *sa, char *buf, size_t buflen, int *port_r);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 (plain-text logins are allowed from there). */
bool sock_addr_is_loopback(const struct sockaddr *sa);

/*
 * Networks like mynetworks: "127.0.0.0/8, [::1]/128, 192.168.1.5". An
 * empty list matches nothing. Invalid entries make sock_networks_parse fail
 * with the offending text in err.
 */
struct sock_networks;
struct sock_networks *sock_networks_parse(const char *text, struct strbuf *err);
bool sock_networks_match(const struct sock_networks *n, const struct sockaddr *sa);
void sock_networks_free(struct sock_networks **np);

#endif
