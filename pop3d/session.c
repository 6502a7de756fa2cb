/* pop3d session - one POP3 connection: greeting, read loop, bounds. */
#include "pop3d.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "mymalloc.h"
#include "sock.h"

/* A too-long line is skipped up to this many line_limit-sized chunks; a
 * client that sends more without a LF is dropped (invariant 3). */
#define SKIP_CHUNKS_MAX 64

void pop3_reply(struct pop3_session *sess, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    strbuf_append(&sb, "\r\n", 2);
    (void)stream_write(sess->stream, sb.data, sb.len); /* errors are sticky; the loop sees them */
    strbuf_release(&sb);
}

void pop3_session_error(struct pop3_session *sess, const char *reply)
{
    pop3_reply(sess, "%s", reply);
    if (++sess->errors >= (unsigned long long)pop3d_params.error_limit) {
        msg_warn("too many errors from %s (%u), disconnecting", sess->client, sess->errors);
        sess->state = POP3_STATE_DONE;
    }
}

/* The rest of an over-long line: 0 once its LF is consumed, -1 to drop the client. */
static int skip_long_line(struct pop3_session *sess, struct strbuf *line)
{
    for (int i = 0; i < SKIP_CHUNKS_MAX; i++) {
        enum stream_result r =
            stream_read_line(sess->stream, line, (size_t)pop3d_params.line_limit);
        if (r == STREAM_OK)
            return 0;
        if (r != STREAM_PARTIAL)
            return -1;
    }
    msg_warn("endless command line from %s, disconnecting", sess->client);
    return -1;
}

/*
 * Wait for the next command in slices of a second, so that SIGTERM from
 * master (server_should_exit) ends an idle session promptly; the stream's
 * own timeout would only fire after pop3d_timeout. 1 input ready, 0 idle
 * timeout, -1 the process should exit.
 */
static int wait_for_input(struct pop3_session *sess)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (server_should_exit())
            return -1;
        if (stream_buffered(sess->stream) > 0)
            return 1;
        struct pollfd pfd = {.fd = stream_fd(sess->stream), .events = POLLIN, .revents = 0};
        int n = poll(&pfd, 1, 1000);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1; /* let the stream report the error */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= pop3d_params.timeout)
            return 0;
    }
}

static const char *state_name(enum pop3_state s)
{
    switch (s) {
    case POP3_STATE_AUTH:
        return "AUTHORIZATION";
    case POP3_STATE_TRANSACTION:
        return "TRANSACTION";
    case POP3_STATE_DONE:
        return "UPDATE";
    }
    return "?";
}

int pop3_session_start_tls(struct pop3_session *sess)
{
    struct strbuf err = STRBUF_INIT;
    /* RFC 2595 §4: nothing the client pipelined before the handshake counts. */
    stream_discard_input(sess->stream);
    if (stream_flush(sess->stream) < 0) {
        strbuf_release(&err);
        return -1;
    }
    sess->tls =
        tls_conn_start(pop3d_tls_ctx, sess->stream, true, NULL, pop3d_params.tls_timeout_ms, &err);
    if (sess->tls == NULL) {
        msg_info("TLS handshake failed with %s: %s", sess->client, strbuf_str(&err));
        strbuf_release(&err);
        return -1;
    }
    strbuf_reset(&err);
    tls_conn_describe(sess->tls, &err);
    msg_info("TLS connection established from %s: %s%s", sess->client, strbuf_str(&err),
             tls_conn_resumed(sess->tls) ? " (resumed)" : "");
    strbuf_release(&err);
    return 0;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
void pop3d_service(struct server_client *client)
{
    struct pop3_session sess;
    char clientbuf[96];
    memset(&sess, 0, sizeof(sess));
    snprintf(clientbuf, sizeof(clientbuf), "[%s]:%d", client->addr, client->port);
    sess.client = clientbuf;
    sess.state = POP3_STATE_AUTH;
    sess.mb.lock_fd = -1;
    /* We batch replies ourselves (stream buffer, PIPELINING), so Nagle only
     * adds a delayed-ACK wait to the last segment of every RETR. */
    if (client->peer.ss_family == AF_INET || client->peer.ss_family == AF_INET6) {
        int on = 1;
        (void)setsockopt(client->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
    sess.stream = client->nonblock_socket ? stream_sockopen(client->fd) : stream_fdopen(client->fd);
    stream_set_timeout(sess.stream, (int)(pop3d_params.timeout * 1000));
    sess.loopback = sock_addr_is_loopback((const struct sockaddr *)&client->peer);
    msg_info("connect from %s", sess.client);

    /* POP3S: the handshake comes before the greeting. */
    if (pop3d_tls_wrapper && pop3_session_start_tls(&sess) < 0)
        sess.state = POP3_STATE_DONE;
    else
        pop3_reply(&sess, "+OK tegami POP3 ready");

    struct strbuf line = STRBUF_INIT;
    /* Static: struct pop3_command holds a POP3_LINE_MAX buffer. */
    static struct pop3_command cmd;
    const char *last = "CONNECT";
    while (sess.state != POP3_STATE_DONE) {
        /* RFC 2449 §6.6 PIPELINING: answer a batch of commands in one write. */
        if (stream_buffered(sess.stream) == 0 && stream_flush(sess.stream) < 0) {
            msg_info("lost connection after %s from %s", last, sess.client);
            break;
        }
        int w = wait_for_input(&sess);
        if (w < 0) {
            msg_info("shutdown after %s from %s", last, sess.client);
            break;
        }
        if (w == 0) {
            msg_info("timeout after %s from %s", last, sess.client);
            break;
        }
        enum stream_result r =
            stream_read_line(sess.stream, &line, (size_t)pop3d_params.line_limit);
        if (r == STREAM_PARTIAL) {
            msg_warn("command line too long from %s", sess.client);
            if (skip_long_line(&sess, &line) < 0)
                break;
            pop3_session_error(&sess, "-ERR Line too long");
            continue;
        }
        if (r == STREAM_TIMEOUT) {
            msg_info("timeout after %s from %s", last, sess.client);
            break;
        }
        if (r != STREAM_OK) {
            msg_info("lost connection after %s from %s", last, sess.client);
            break;
        }
        const char *why = NULL;
        enum pop3_parse_result pr = pop3_parse_command(line.data, line.len, &cmd, &why);
        explicit_bzero(line.data, line.len); /* may hold a password */
        if (pr != POP3_PARSE_OK) {
            if (pr == POP3_PARSE_BAD_CHAR || pr == POP3_PARSE_TOO_LONG)
                msg_warn("%s command from %s in %s state", pop3_parse_result_name(pr), sess.client,
                         state_name(sess.state));
            struct strbuf reply = STRBUF_INIT;
            strbuf_printf(&reply, "-ERR %s", why);
            pop3_session_error(&sess, reply.data);
            strbuf_release(&reply);
            continue;
        }
        last = cmd.name;
        pop3_command_run(&sess, &cmd);
        explicit_bzero(cmd.arg, cmd.arg_len);
    }
    /* A session that ends without QUIT removes nothing (RFC 1939 §6).
     * Unlock before the last reply goes out, so a client that reconnects
     * right after QUIT finds the mailbox free. */
    if (sess.have_mailbox)
        pop3_mailbox_close(&sess.mb);
    (void)stream_flush(sess.stream);
    if (sess.login)
        msg_info("logout: user=%s, client=%s, retrieved=%lu, retrieved_bytes=%llu, out=%llu",
                 sess.login, sess.client, sess.retrieved, sess.retrieved_bytes,
                 stream_bytes_out(sess.stream));
    msg_info("disconnect from %s in=%llu out=%llu", sess.client, stream_bytes_in(sess.stream),
             stream_bytes_out(sess.stream));
    strbuf_release(&line);
    myfree(sess.user);
    myfree(sess.login);
    tls_conn_free(&sess.tls);
    stream_free(&sess.stream);
}
