/*
 * anvil - per-client connection count and rate bookkeeping (like Postfix's anvil).
 *
 * A long-running daemon (SERVER_LONG, master.cf `anvil unix - - n 1 anvil`)
 * on $queue_directory/private/anvil. Every smtpd process keeps one
 * connection open and asks, before greeting a client, "connect" (count and
 * rate of that client address for that service, this connection included)
 * and, when the session ends, "disconnect". The protocol is in
 * docs/protocols.md ("anvil"); the bookkeeping is libmail/anvil_table.c.
 *
 * One process serves every client from one poll() loop: requests are tiny
 * and answered from memory, never blocking. Bounds: anvil_connection_limit
 * clients, ANVIL_RECORD_MAX bytes per request, anvil_max_clients table
 * entries, anvil_client_open_limit open connections per client, and a
 * client that stops reading its replies is dropped. When a client goes
 * away (an smtpd killed mid-session) the connections it registered are
 * closed for it. anvil keeps nothing on disk: after a restart the counts
 * start from zero, and smtpd allows every connection while anvil is
 * unreachable (fail open, libmail/anvil_client.c).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "anvil_table.h"
#include "attr.h"
#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "server.h"
#include "strbuf.h"

/* A client whose unread replies pile up beyond this is dropped. */
#define ANVIL_OUTPUT_MAX (64 * ANVIL_RECORD_MAX)

struct anvil_conn {
    int fd;
    struct strbuf in;
    struct strbuf out;
    struct anvil_opens opens;
};

static struct anvil_table *table;
static struct anvil_conn **conns;
static size_t nconns;
static size_t conn_limit;
static size_t open_limit;

static time_t now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void anvil_post_init(void)
{
    table = anvil_table_create((size_t)config_int("anvil_max_clients"),
                               (time_t)config_time("anvil_rate_time_unit"));
    conn_limit = (size_t)config_int("anvil_connection_limit");
    open_limit = (size_t)config_int("anvil_client_open_limit");
    conns = mycalloc(conn_limit, sizeof(*conns));
}

static void conn_close(size_t i)
{
    struct anvil_conn *c = conns[i];
    anvil_table_close(table, &c->opens, now_mono());
    close(c->fd);
    strbuf_release(&c->in);
    strbuf_release(&c->out);
    myfree(c);
    conns[i] = conns[--nconns];
    conns[nconns] = NULL;
}

static void conn_accept(int listen_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                msg_warn("accept: %s", strerror(errno));
            return;
        }
        if (nconns >= conn_limit) {
            msg_warn("anvil_connection_limit (%zu) reached: dropping a client", conn_limit);
            close(fd);
            continue;
        }
        struct anvil_conn *c = mycalloc(1, sizeof(*c));
        c->fd = fd;
        c->opens.max = open_limit;
        conns[nconns++] = c;
    }
}

/* Write what is pending. false: the connection is dead. */
static bool conn_flush(struct anvil_conn *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return false;
        }
        off += (size_t)n;
    }
    if (off > 0) {
        memmove(c->out.data, c->out.data + off, c->out.len - off);
        strbuf_truncate(&c->out, c->out.len - off);
    }
    return c->out.len <= ANVIL_OUTPUT_MAX;
}

/* Read and answer every complete request. false: drop the connection. */
static bool conn_input(struct anvil_conn *c)
{
    char buf[4096];
    struct attr_list req = ATTR_LIST_INIT, reply = ATTR_LIST_INIT;
    bool ok = true;

    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n == 0)
        return false;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    strbuf_append(&c->in, buf, (size_t)n);

    size_t off = 0;
    while (off < c->in.len) {
        const char *why = NULL;
        ssize_t used = attr_decode(c->in.data + off, c->in.len - off, ANVIL_RECORD_MAX, &req, &why);
        if (used == 0)
            break;
        if (used < 0) {
            msg_warn("malformed request: %s", why ? why : "?");
            ok = false;
            break;
        }
        off += (size_t)used;
        if (!anvil_table_request(table, &c->opens, &req, now_mono(), &reply)) {
            const char *reason = attr_list_get(&reply, "reason");
            msg_warn("bad request: %s", reason ? reason : "?");
            ok = false;
            break;
        }
        attr_encode(&reply, &c->out);
    }
    if (ok && off > 0) {
        memmove(c->in.data, c->in.data + off, c->in.len - off);
        strbuf_truncate(&c->in, c->in.len - off);
    }
    attr_list_release(&req);
    attr_list_release(&reply);
    return ok && conn_flush(c);
}

static void anvil_loop(int listen_fd)
{
    struct pollfd *p = mycalloc(conn_limit + 1, sizeof(*p));
    time_t last_expire = now_mono();

    while (!server_should_exit()) {
        p[0].fd = listen_fd;
        p[0].events = POLLIN;
        p[0].revents = 0;
        for (size_t i = 0; i < nconns; i++) {
            p[i + 1].fd = conns[i]->fd;
            p[i + 1].events = (short)(POLLIN | (conns[i]->out.len ? POLLOUT : 0));
            p[i + 1].revents = 0;
        }
        size_t polled = nconns;
        int r = poll(p, polled + 1, 1000);
        if (r < 0 && errno != EINTR)
            msg_fatal("poll: %s", strerror(errno));

        time_t now = now_mono();
        if (now != last_expire) {
            anvil_table_expire(table, now);
            last_expire = now;
        }
        if (r <= 0)
            continue;
        /* Walk backwards: conn_close moves the last connection into the freed slot. */
        for (size_t i = polled; i-- > 0;) {
            short ev = p[i + 1].revents;
            if (ev == 0)
                continue;
            struct anvil_conn *c = conns[i];
            bool alive = true;
            if (ev & (POLLIN | POLLHUP | POLLERR))
                alive = conn_input(c);
            else if (ev & POLLNVAL)
                alive = false;
            if (alive && (ev & POLLOUT))
                alive = conn_flush(c);
            if (!alive)
                conn_close(i);
        }
        if (p[0].revents & POLLIN)
            conn_accept(listen_fd);
    }
    while (nconns > 0)
        conn_close(nconns - 1);
    anvil_table_free(&table);
    myfree(conns);
    myfree(p);
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_LONG,
        .pre_init = NULL,
        .post_init = anvil_post_init,
        .loop = anvil_loop,
    };
    server_main(argc, argv, &spec);
}
