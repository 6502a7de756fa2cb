/*
 * abuse - what smtpd checks before it greets a client (Postfix's anvil and
 * postscreen pre-greet test, built in).
 *
 * 1. Connection limits: smtpd registers each connection with the anvil
 *    service (libmail/anvil_client.c) and refuses the client with 421 when
 *    its address has more than smtpd_client_connection_count_limit
 *    connections open, or opened more than smtpd_client_connection_rate_limit
 *    in the last anvil_rate_time_unit. anvil being down never refuses anyone
 *    (fail open).
 * 2. Pre-greeting talkers: RFC 5321 §4.3.1 has the client wait for the 220
 *    greeting; spam engines often do not. With smtpd_pregreet_wait > 0 smtpd
 *    sends the first line of a multi-line greeting ("220-"), waits, and
 *    refuses a client that sent anything before the final "220 " line; with
 *    0 it only checks for input already waiting. A compliant client sees a
 *    normal multi-line greeting.
 *
 * 3. AUTH failures (for auth.c): each failed AUTH is reported to anvil under
 *    ANVIL_SERVICE_AUTH, so a client's failures add up over all its
 *    connections and smtpd services; at smtpd_client_auth_failure_limit in
 *    the anvil_rate_time_unit window the client gets 421 and is
 *    disconnected, and a client already at the limit gets 421 at its next
 *    AUTH. The per-session smtpd_auth_failure_limit applies as well, and
 *    alone when anvil is down (fail open).
 *
 * The pre-greeting test is off on implicit-TLS services (smtpd_tls_wrappermode),
 * where the client rightly speaks first.
 * Clients in smtpd_client_event_limit_exceptions (default $mynetworks) and
 * UNIX-socket clients skip all three, like postscreen's permit_mynetworks.
 * Tarpitting after errors is in session.c (smtpd_soft_error_limit,
 * smtpd_error_sleep_time).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "abuse.h"
#include "anvil_client.h"
#include "config.h"
#include "msg.h"
#include "server.h"
#include "sock.h"
#include "strbuf.h"

static struct sock_networks *exceptions;
static struct anvil_client *anvil;
static long long count_limit;
static long long rate_limit;
static long long auth_limit;
static long long pregreet_wait;
static bool pregreet_enabled = true; /* off for implicit TLS */
static bool registered;              /* this session's connection is counted by anvil */
static bool auth_limited;            /* this session's client is subject to auth_limit */

void smtpd_abuse_init(void)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;

    exceptions = sock_networks_parse(config_str("smtpd_client_event_limit_exceptions"), &err);
    if (exceptions == NULL)
        msg_fatal("bad smtpd_client_event_limit_exceptions: %s", strbuf_str(&err));
    count_limit = config_int("smtpd_client_connection_count_limit");
    rate_limit = config_int("smtpd_client_connection_rate_limit");
    auth_limit = config_int("smtpd_client_auth_failure_limit");
    pregreet_wait = config_time("smtpd_pregreet_wait");
    /*
     * Implicit TLS (RFC 8314, port 465): the client speaks first (its TLS
     * ClientHello) and a plain-text "220-" would break the handshake, so
     * there is no pre-greeting check on such a service.
     */
    if (config_find_param("smtpd_tls_wrappermode") && config_bool("smtpd_tls_wrappermode"))
        pregreet_enabled = false;
    if (count_limit > 0 || rate_limit > 0 || auth_limit > 0) {
        strbuf_printf(&path, "%s/private/anvil", config_str("queue_directory"));
        anvil =
            anvil_client_create(strbuf_str(&path), (int)config_time("anvil_client_timeout") * 1000,
                                (int)config_time("anvil_client_retry_time"));
    }
    strbuf_release(&path);
    strbuf_release(&err);
}

/*
 * Refuse the client: the reply, then drain what it already sent so that
 * close() does not turn into a TCP reset that could eat the reply.
 */
static void refuse(struct server_client *client, const char *reply)
{
    char buf[4096];
    char line[512];
    int n = snprintf(line, sizeof(line), "%s\r\n", reply);
    if (n > 0 && (size_t)n < sizeof(line))
        (void)send(client->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)shutdown(client->fd, SHUT_WR);
    for (int i = 0; i < 16; i++)
        if (recv(client->fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
            break;
    close(client->fd);
    client->fd = -1;
}

/* Connection count and rate via anvil. false: refused (logged, fd closed). */
static bool check_limits(struct server_client *client)
{
    unsigned count, rate;
    const char *service = server_service_name();
    char reply[200];

    if (anvil == NULL || (count_limit == 0 && rate_limit == 0))
        return true;
    if (!anvil_client_connect(anvil, service, client->addr, &count, &rate))
        return true; /* fail open; anvil_client logged why */
    registered = true;
    const char *what = NULL;
    unsigned value = 0;
    if (count_limit > 0 && count > (unsigned long long)count_limit) {
        what = "concurrency";
        value = count;
    } else if (rate_limit > 0 && rate > (unsigned long long)rate_limit) {
        what = "rate";
        value = rate;
    }
    if (what == NULL)
        return true;
    msg_warn("Connection %s limit exceeded: %u from unknown[%s] for service %s", what, value,
             client->addr, service);
    snprintf(reply, sizeof(reply), "421 4.7.0 Error: too many connections from %s", client->addr);
    refuse(client, reply);
    smtpd_abuse_disconnect(client);
    return false;
}

/* Printable copy of what a pre-greeting talker sent, for the log. */
static void sanitize(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r') {
            out[o++] = '\\';
            out[o++] = 'r';
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < ' ' || c >= 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* RFC 5321 §4.3.1: the client speaks after the greeting. false: refused (logged, fd closed). */
static bool check_pregreet(struct server_client *client, const struct strbuf *banner)
{
    struct timespec t0, t1;
    char peek[64];
    char shown[sizeof(peek) * 2 + 1];

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (pregreet_wait > 0) {
        char line[600];
        int n = snprintf(line, sizeof(line), "220-%s\r\n", strbuf_str(banner));
        if (n > 0 && (size_t)n < sizeof(line))
            (void)send(client->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    struct pollfd p = {.fd = client->fd, .events = POLLIN, .revents = 0};
    int r;
    do
        r = poll(&p, 1, (int)(pregreet_wait * 1000));
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return true; /* quiet: a well-behaved client */
    ssize_t got = recv(client->fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double after = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (got <= 0) {
        /* Hung up (or reset) before the greeting: nothing to answer. */
        msg_info("lost connection before greeting after %.2fs from unknown[%s]", after,
                 client->addr);
        close(client->fd);
        client->fd = -1;
        return false;
    }
    sanitize(peek, (size_t)got, shown, sizeof(shown));
    msg_info("pregreet violation: %zd bytes after %.2fs from unknown[%s]:%d: %s", got, after,
             client->addr, client->port, shown);
    refuse(client, "554 5.5.1 Error: SMTP protocol violation (talked before greeting)");
    return false;
}

bool smtpd_abuse_connect(struct server_client *client, const struct strbuf *banner)
{
    registered = false;
    auth_limited = false;
    if (client->peer.ss_family == AF_UNIX ||
        sock_networks_match(exceptions, (const struct sockaddr *)&client->peer))
        return true;
    auth_limited = anvil != NULL && auth_limit > 0;
    if (!check_limits(client))
        return false;
    if (pregreet_enabled && !check_pregreet(client, banner)) {
        smtpd_abuse_disconnect(client);
        return false;
    }
    return true;
}

void smtpd_abuse_disconnect(struct server_client *client)
{
    if (!registered)
        return;
    registered = false;
    anvil_client_disconnect(anvil, server_service_name(), client->addr);
}

unsigned smtpd_abuse_auth_failures(const char *addr, bool *over_r)
{
    unsigned failures = 0;

    *over_r = false;
    if (!auth_limited || !anvil_client_auth_failures(anvil, ANVIL_SERVICE_AUTH, addr, &failures))
        return 0; /* exempt, off, or fail open (anvil_client logged why) */
    *over_r = failures >= (unsigned long long)auth_limit;
    return failures;
}

unsigned smtpd_abuse_auth_failed(const char *addr, bool *over_r)
{
    unsigned failures = 0;

    *over_r = false;
    if (!auth_limited || !anvil_client_auth_fail(anvil, ANVIL_SERVICE_AUTH, addr, &failures))
        return 0;
    *over_r = failures >= (unsigned long long)auth_limit;
    return failures;
}
