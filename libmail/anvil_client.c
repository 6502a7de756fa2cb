/*
 * anvil_client - persistent, fail-open client of the anvil service (see anvil_client.h).
 */
#include "anvil_client.h"

#include <string.h>
#include <time.h>

#include "anvil_table.h"
#include "attr.h"
#include "msg.h"
#include "mymalloc.h"
#include "sock.h"
#include "stream.h"
#include "strbuf.h"

struct anvil_client {
    char *path;
    int timeout_ms;
    int retry_seconds;
    struct stream *stream; /* NULL = not connected */
    time_t skip_until;     /* CLOCK_MONOTONIC seconds; skip anvil before this */
    struct attr_list req;
    struct attr_list rep;
};

static time_t now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

struct anvil_client *anvil_client_create(const char *path, int timeout_ms, int retry_seconds)
{
    struct anvil_client *c = mycalloc(1, sizeof(*c));
    c->path = mystrdup(path);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    c->retry_seconds = retry_seconds >= 0 ? retry_seconds : 0;
    return c;
}

void anvil_client_free(struct anvil_client **cp)
{
    struct anvil_client *c = *cp;
    if (c == NULL)
        return;
    stream_free(&c->stream);
    attr_list_release(&c->req);
    attr_list_release(&c->rep);
    myfree(c->path);
    myfree(c);
    *cp = NULL;
}

static void fail(struct anvil_client *c, const char *what)
{
    stream_free(&c->stream);
    c->skip_until = now_mono() + c->retry_seconds;
    msg_warn("anvil: %s: %s; allowing connections without limits for %ds", c->path, what,
             c->retry_seconds);
}

/* Send c->req and read c->rep. 0, or -1 after fail() was called. */
static int anvil_call(struct anvil_client *c)
{
    struct strbuf err = STRBUF_INIT;
    const char *why = NULL;

    if (c->skip_until && now_mono() < c->skip_until)
        return -1;
    c->skip_until = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = c->stream == NULL;
        if (fresh) {
            int fd = sock_unix_connect(c->path, c->timeout_ms, &err);
            if (fd < 0) {
                fail(c, strbuf_str(&err));
                strbuf_release(&err);
                return -1;
            }
            c->stream = stream_fdopen(fd);
            stream_set_timeout(c->stream, c->timeout_ms);
        }
        int r = attr_write(c->stream, &c->req);
        if (r == 0)
            r = attr_read(c->stream, ANVIL_RECORD_MAX, &c->rep, &why);
        if (r == 0) {
            strbuf_release(&err);
            return 0;
        }
        /*
         * A reused connection that is dead (EOF/error, not a timeout): anvil
         * was restarted since. Try once more on a fresh connection.
         */
        if (!fresh && (r == STREAM_EOF || r == STREAM_ERROR)) {
            stream_free(&c->stream);
            continue;
        }
        fail(c, r == 1                ? why
                : r == STREAM_TIMEOUT ? "timeout"
                : r == STREAM_EOF     ? "lost connection"
                                      : "I/O error");
        strbuf_release(&err);
        return -1;
    }
    fail(c, "lost connection");
    strbuf_release(&err);
    return -1;
}

bool anvil_client_connect(struct anvil_client *c, const char *service, const char *addr,
                          unsigned *count_r, unsigned *rate_r)
{
    long long count, rate;

    *count_r = 0;
    *rate_r = 0;
    attr_list_reset(&c->req);
    attr_list_add_str(&c->req, "request", "connect");
    attr_list_add_str(&c->req, "service", service);
    attr_list_add_str(&c->req, "client", addr);
    if (anvil_call(c) < 0)
        return false;
    const char *status = attr_list_get(&c->rep, "status");
    if (status && strcmp(status, "full") == 0) {
        msg_warn("anvil: table full, %s[%s] not counted", service, addr);
        return false;
    }
    if (status == NULL || strcmp(status, "ok") != 0 ||
        !attr_list_get_int(&c->rep, "count", &count) ||
        !attr_list_get_int(&c->rep, "rate", &rate) || count < 0 || rate < 0) {
        fail(c, "malformed reply");
        return false;
    }
    *count_r = count > 0xffffffffLL ? 0xffffffffu : (unsigned)count;
    *rate_r = rate > 0xffffffffLL ? 0xffffffffu : (unsigned)rate;
    return true;
}

/* One auth_fail or lookup request; true with auth_failures from a well-formed reply. */
static bool auth_request(struct anvil_client *c, const char *request, const char *service,
                         const char *addr, unsigned *failures_r)
{
    long long failures;

    *failures_r = 0;
    attr_list_reset(&c->req);
    attr_list_add_str(&c->req, "request", request);
    attr_list_add_str(&c->req, "service", service);
    attr_list_add_str(&c->req, "client", addr);
    if (anvil_call(c) < 0)
        return false;
    const char *status = attr_list_get(&c->rep, "status");
    if (status && strcmp(status, "full") == 0) {
        msg_warn("anvil: table full, AUTH failure of %s not counted", addr);
        return false;
    }
    if (status == NULL || (strcmp(status, "ok") != 0 && strcmp(status, "unknown") != 0) ||
        !attr_list_get_int(&c->rep, "auth_failures", &failures) || failures < 0) {
        fail(c, "malformed reply");
        return false;
    }
    *failures_r = failures > 0xffffffffLL ? 0xffffffffu : (unsigned)failures;
    return true;
}

bool anvil_client_auth_fail(struct anvil_client *c, const char *service, const char *addr,
                            unsigned *failures_r)
{
    return auth_request(c, "auth_fail", service, addr, failures_r);
}

bool anvil_client_auth_failures(struct anvil_client *c, const char *service, const char *addr,
                                unsigned *failures_r)
{
    /* "unknown" (no entry) is a valid answer: no failures. */
    return auth_request(c, "lookup", service, addr, failures_r);
}

void anvil_client_disconnect(struct anvil_client *c, const char *service, const char *addr)
{
    attr_list_reset(&c->req);
    attr_list_add_str(&c->req, "request", "disconnect");
    attr_list_add_str(&c->req, "service", service);
    attr_list_add_str(&c->req, "client", addr);
    /*
     * After a failure anvil may have lost the entry (restart): "unknown"
     * is fine, and a failure here was logged by anvil_call already.
     */
    (void)anvil_call(c);
}
