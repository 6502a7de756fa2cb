/*
 * smtp - the outbound SMTP client (delivery agent for remote domains).
 *
 * qmgr keeps connections to private/smtp open and sends "deliver" requests
 * on them, one at a time (docs/protocols.md, "qmgr → private/smtp"):
 * queue_id, sender, offset/size, nexthop, then index/rcpt/orig per
 * recipient. For each request smtp reads the envelope from active/QUEUEID
 * (DSN options, SMTPUTF8), finds the servers of the nexthop (dest.c), tries
 * them in order until one takes the mail (session.c), and answers per
 * recipient index/status/dsn/reason/relay, then dest_status and end=1.
 *
 * A finished session stays open for smtp_connection_cache_time; the next
 * request on the same qmgr connection for the same nexthop reuses it.
 *
 * Privileges: none needed; runs as mail_owner (the -u column).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "deliver_request.h"
#include "dict.h"
#include "mime8to7.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "server.h"
#include "smtp.h"
#include "stream.h"

struct smtp_params smtp_params;
const char *smtp_log_id = "smtp";

/* The session kept open for reuse (smtp_connection_cache_time). */
static struct {
    struct smtp_session *sess;
    char *nexthop;
    long long expires_ms;
} cache;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int time_ms(const char *name)
{
    long long t = config_time(name);
    return t > 86400 ? 86400000 : (int)(t * 1000);
}

static struct dict **open_maps(const char *param, size_t *count_r)
{
    size_t n = 0;
    char **names = config_list(param, &n);
    struct dict **maps = mycalloc(n ? n : 1, sizeof(*maps));
    struct strbuf err = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        maps[i] = dict_open(names[i], &err);
        if (maps[i] == NULL)
            msg_fatal("%s: %s", param, strbuf_str(&err));
    }
    strbuf_release(&err);
    config_list_free(&names);
    *count_r = n;
    return maps;
}

static void add_self_addr(const struct sockaddr *sa, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (sa->sa_family == AF_INET) {
        memcpy(&ss, sa, sizeof(struct sockaddr_in));
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(&ss, sa, sizeof(struct sockaddr_in6));
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    } else {
        return;
    }
    smtp_params.self_addrs = myreallocarray(smtp_params.self_addrs, smtp_params.nself_addrs + 1,
                                            sizeof(*smtp_params.self_addrs));
    smtp_params.self_addrs[smtp_params.nself_addrs++] = ss;
}

/*
 * Our own SMTP listeners, from master.cf's inet services run by smtpd
 * ("127.0.0.1:10025", "[::1]:25", or "25" = every local address): an MX
 * host with one of these addresses and ports is this instance (a loop).
 */
static void find_self_addrs(void)
{
    struct master_entry *ents = NULL;
    size_t nents = 0;
    struct strbuf err = STRBUF_INIT;
    if (master_cf_load(&ents, &nents, &err) < 0) {
        msg_warn("cannot read master.cf for loop detection: %s", strbuf_str(&err));
        strbuf_release(&err);
        return;
    }
    for (size_t i = 0; i < nents; i++) {
        const struct master_entry *e = &ents[i];
        if (strcmp(e->type, "inet") != 0 || e->argc == 0)
            continue;
        const char *cmd = strrchr(e->argv[0], '/');
        cmd = cmd ? cmd + 1 : e->argv[0];
        if (strcmp(cmd, "smtpd") != 0)
            continue;
        const char *colon = strrchr(e->service, ':');
        int port = atoi(colon ? colon + 1 : e->service);
        if (port <= 0 || port > 65535)
            continue;
        if (colon == NULL) {
            struct ifaddrs *ifa = NULL;
            if (getifaddrs(&ifa) == 0) {
                for (struct ifaddrs *p = ifa; p; p = p->ifa_next)
                    if (p->ifa_addr)
                        add_self_addr(p->ifa_addr, port);
                freeifaddrs(ifa);
            }
            continue;
        }
        char host[64];
        size_t hl = (size_t)(colon - e->service);
        const char *h = e->service;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
            h++, hl -= 2;
        if (hl >= sizeof(host))
            continue;
        memcpy(host, h, hl);
        host[hl] = 0;
        struct sockaddr_in sin;
        struct sockaddr_in6 sin6;
        memset(&sin, 0, sizeof(sin));
        memset(&sin6, 0, sizeof(sin6));
        if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
            sin.sin_family = AF_INET;
            add_self_addr((struct sockaddr *)&sin, port);
        } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
            sin6.sin6_family = AF_INET6;
            add_self_addr((struct sockaddr *)&sin6, port);
        }
    }
    master_cf_free(&ents, nents);
    strbuf_release(&err);
}

static void smtp_post_init(void)
{
    struct strbuf err = STRBUF_INIT;
    const char *error = NULL;

    smtp_params.port = (int)config_int("smtp_port");
    smtp_params.helo_name = config_str("smtp_helo_name");
    smtp_params.mx_address_limit = (int)config_int("smtp_mx_address_limit");
    smtp_params.connect_timeout_ms = time_ms("smtp_connect_timeout");
    smtp_params.helo_timeout_ms = time_ms("smtp_helo_timeout");
    smtp_params.mail_timeout_ms = time_ms("smtp_mail_timeout");
    smtp_params.rcpt_timeout_ms = time_ms("smtp_rcpt_timeout");
    smtp_params.data_init_timeout_ms = time_ms("smtp_data_init_timeout");
    smtp_params.data_xfer_timeout_ms = time_ms("smtp_data_xfer_timeout");
    smtp_params.data_done_timeout_ms = time_ms("smtp_data_done_timeout");
    smtp_params.quit_timeout_ms = time_ms("smtp_quit_timeout");
    smtp_params.starttls_timeout_ms = time_ms("smtp_starttls_timeout");
    smtp_params.cache_time_ms = config_time("smtp_connection_cache_time") * 1000;
    smtp_params.sasl_enable = config_bool("smtp_sasl_auth_enable");
    smtp_params.sasl_tls_only = config_bool("smtp_sasl_tls_only");
    smtp_params.request_size_limit = (size_t)config_size("smtp_request_size_limit");
    smtp_params.ipc_timeout_ms = time_ms("ipc_timeout");
    if (tls_level_parse(config_str("smtp_tls_security_level"), &smtp_params.tls_level) < 0)
        msg_fatal("smtp_tls_security_level: unknown level \"%s\" (none, may, encrypt, verify, "
                  "dane)",
                  config_str("smtp_tls_security_level"));

    smtp_params.resolver =
        dns_resolver_create(config_str("resolver_address"), config_time("resolver_timeout") * 1000,
                            (size_t)config_int("resolver_max_records"),
                            config_str("smtp_dns_trust_anchor_file"), &error);
    if (smtp_params.resolver == NULL)
        msg_fatal("cannot create the DNS resolver: %s", error ? error : "?");

    smtp_params.tls_policy_maps = open_maps("smtp_tls_policy_maps", &smtp_params.ntls_policy_maps);
    smtp_params.sasl_password_maps =
        open_maps("smtp_sasl_password_maps", &smtp_params.nsasl_password_maps);

    /* A client context only when TLS may be used at all. */
    if (smtp_params.tls_level != TLS_LEVEL_NONE || smtp_params.ntls_policy_maps > 0) {
        if (tls_client_ctx_from_config("smtp", &smtp_params.tls, &err) < 0) {
            msg_warn("cannot make the TLS client context: %s; opportunistic TLS is off and "
                     "mandatory TLS defers",
                     strbuf_str(&err));
            smtp_params.tls = NULL;
        }
    }

    const char *names[2] = {config_str("myhostname"), smtp_params.helo_name};
    smtp_params.self_names = mycalloc(2, sizeof(char *));
    for (size_t i = 0; i < 2; i++) {
        if (i == 1 && strcasecmp(names[1], names[0]) == 0)
            break;
        smtp_params.self_names[smtp_params.nself_names++] = mystrdup(names[i]);
    }
    find_self_addrs();
    strbuf_release(&err);
}

/* ---- the request ---- */

static void rcpt_set(struct smtp_rcpt *r, int status, const char *dsn, const char *reason)
{
    r->status = status;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    strbuf_reset(&r->reason);
    strbuf_puts(&r->reason, reason);
}

static void request_fail_all(struct smtp_request *q, int status, const char *dsn,
                             const char *reason)
{
    for (size_t i = 0; i < q->nrcpts; i++)
        if (q->rcpts[i].status != 2 && q->rcpts[i].status != 5)
            rcpt_set(&q->rcpts[i], status, dsn, reason);
}

/*
 * Check a request and split out its recipients (libmail/deliver_request.c).
 * false (with a warning) when it is malformed: the connection is then
 * dropped. Addresses go into SMTP commands, so none may hold CR or LF;
 * angle brackets are fine inside a quoted local part ("a<b"@example.test,
 * RFC 5321 qtextSMTP), and every address in a queue file passed smtpd's or
 * pickup's address parser.
 */
static bool request_parse(const struct attr_list *l, struct smtp_request *q)
{
    struct deliver_request d;
    const char *why = NULL;

    memset(q, 0, sizeof(*q));
    q->fd = -1;
    strbuf_init(&q->relay, 64);
    switch (deliver_request_decode(l, DELIVER_REQUEST_NEXTHOP, &d, &why)) {
    case DELIVER_REQUEST_OK:
        break;
    case DELIVER_REQUEST_BAD_REQUEST: {
        const char *req = attr_list_get(l, "request");
        msg_warn("protocol error: unknown request \"%.30s\" (%s)", req ? req : "", why);
        return false;
    }
    case DELIVER_REQUEST_BAD_QUEUE_ID:
        msg_warn("protocol error: bad or missing queue_id (%s)", why);
        return false;
    case DELIVER_REQUEST_BAD_ENVELOPE:
    case DELIVER_REQUEST_BAD_RCPTS:
        msg_warn("%s: protocol error: malformed recipient list or sender (%s)", d.queue_id, why);
        return false;
    }
    q->queue_id = d.queue_id;
    q->sender = d.sender;
    q->nexthop = d.nexthop;
    q->offset = (off_t)d.offset;
    q->size = (size_t)d.size;
    q->rcpts = mycalloc(d.nrcpts, sizeof(*q->rcpts));
    q->nrcpts = d.nrcpts;
    for (size_t i = 0; i < d.nrcpts; i++) {
        q->rcpts[i].index = d.rcpts[i].index;
        q->rcpts[i].address = d.rcpts[i].rcpt;
        q->rcpts[i].orig = d.rcpts[i].orig;
        strbuf_init(&q->rcpts[i].reason, 64);
    }
    deliver_request_release(&d);
    return true;
}

static void request_release(struct smtp_request *q)
{
    for (size_t i = 0; i < q->nrcpts; i++)
        strbuf_release(&q->rcpts[i].reason);
    myfree(q->rcpts);
    q->rcpts = NULL;
    q->nrcpts = 0;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    qf_message_release(&q->msg);
    strbuf_release(&q->relay);
}

/* One pass over the content: 8-bit bytes? size on the wire (CRLF)? */
struct scan {
    bool has_8bit;
    size_t lines;
};

static int scan_sink(void *ctx, const char *buf, size_t len)
{
    struct scan *sc = ctx;
    if (!sc->has_8bit && mime_has_8bit(buf, len))
        sc->has_8bit = true;
    for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + len - p))) != NULL; p++)
        sc->lines++;
    return 0;
}

/* The TLS level for this nexthop: smtp_tls_policy_maps, else smtp_tls_security_level. */
static enum tls_level policy_level(const struct smtp_nexthop *nh)
{
    struct strbuf v = STRBUF_INIT;
    enum tls_level level = smtp_params.tls_level;
    for (size_t i = 0; i < smtp_params.ntls_policy_maps; i++) {
        enum dict_result r = dict_lookup(smtp_params.tls_policy_maps[i], nh->host, &v);
        if (r == DICT_FOUND) {
            char word[32];
            snprintf(word, sizeof(word), "%s", v.data);
            word[strcspn(word, " \t,")] = 0;
            if (tls_level_parse(word, &level) < 0) {
                msg_warn("%s: smtp_tls_policy_maps: unknown level \"%s\" for %s; using %s",
                         smtp_log_id, v.data, nh->host, tls_level_str(smtp_params.tls_level));
                level = smtp_params.tls_level;
            }
            break;
        }
        if (r == DICT_ERROR)
            msg_warn("%s: cannot read %s", smtp_log_id, dict_spec(smtp_params.tls_policy_maps[i]));
    }
    strbuf_release(&v);
    return level;
}

static bool undecided(const struct smtp_request *q)
{
    for (size_t i = 0; i < q->nrcpts; i++)
        if (q->rcpts[i].status == 0 || q->rcpts[i].status == 4)
            return true;
    return false;
}

static void cache_drop(bool quit)
{
    if (cache.sess)
        smtp_session_close(&cache.sess, quit);
    myfree(cache.nexthop);
    cache.nexthop = NULL;
}

/* The cached session, if it is for nexthop, still fresh and the server has not hung up. */
static struct smtp_session *cache_take(const char *nexthop)
{
    if (cache.sess == NULL)
        return NULL;
    if (strcmp(cache.nexthop, nexthop) != 0 || now_ms() >= cache.expires_ms) {
        cache_drop(true);
        return NULL;
    }
    struct smtp_session *sess = cache.sess;
    cache.sess = NULL;
    myfree(cache.nexthop);
    cache.nexthop = NULL;
    return sess;
}

static void cache_put(struct smtp_session **sessp, const char *nexthop)
{
    if (smtp_params.cache_time_ms <= 0 || !smtp_session_reset(*sessp)) {
        smtp_session_close(sessp, true);
        return;
    }
    cache.sess = *sessp;
    *sessp = NULL;
    cache.nexthop = mystrdup(nexthop);
    cache.expires_ms = now_ms() + smtp_params.cache_time_ms;
}

static void request_deliver(struct smtp_request *q)
{
    struct smtp_nexthop nh;
    struct smtp_dest dest;
    struct smtp_session *sess = NULL;
    struct smtp_fail last = {4, "4.4.1", STRBUF_INIT};
    bool tried = false;

    strbuf_puts(&last.reason, "no SMTP server could be tried");
    strbuf_puts(&q->relay, "none");
    if (smtp_nexthop_parse(q->nexthop, smtp_params.port, &nh) < 0) {
        msg_warn("%s: malformed nexthop \"%.100s\"", q->queue_id, q->nexthop);
        request_fail_all(q, 4, "4.3.5", "malformed nexthop from qmgr");
        goto done;
    }
    enum tls_level level = policy_level(&nh);

    /* A session kept open from the previous request to the same nexthop. */
    sess = cache_take(q->nexthop);
    if (sess != NULL) {
        msg_info("%s: reusing the connection to %s", q->queue_id, smtp_session_relay(sess));
        strbuf_reset(&q->relay);
        strbuf_puts(&q->relay, smtp_session_relay(sess));
        if (!smtp_session_deliver(sess, q)) {
            /* The server dropped the idle session: start over on a fresh connection. */
            smtp_session_close(&sess, false);
            for (size_t i = 0; i < q->nrcpts; i++)
                if (q->rcpts[i].status == 4)
                    q->rcpts[i].status = 0;
        } else if (undecided(q)) {
            smtp_session_close(&sess, true);
        }
        if (!undecided(q))
            goto done;
    }

    smtp_dest_resolve(&nh, &dest);
    if (dest.status != 0) {
        msg_info("%s: %s", q->queue_id, dest.reason.data);
        request_fail_all(q, dest.status, dest.dsn, dest.reason.data);
        q->dest_ok = dest.status == 5;
        smtp_dest_release(&dest);
        goto done;
    }
    for (size_t i = 0; i < dest.naddrs && undecided(q); i++) {
        bool no_tls = false;
        enum smtp_sess_result r;
        for (;;) {
            r = smtp_session_open(&dest.addrs[i], q->nexthop, level, no_tls, &sess, &last);
            if (r == SMTP_SESS_RETRY_PLAIN && !no_tls) {
                /* Opportunistic TLS failed: this host once more without it (as Postfix). */
                msg_info("%s: retrying %s:%d without TLS", q->queue_id, dest.addrs[i].host,
                         dest.addrs[i].port);
                no_tls = true;
                continue;
            }
            break;
        }
        tried = true;
        if (r != SMTP_SESS_OK) {
            strbuf_reset(&q->relay);
            strbuf_printf(&q->relay, "%s[%s]:%d", dest.addrs[i].host, dest.addrs[i].addr,
                          dest.addrs[i].port);
            continue;
        }
        strbuf_reset(&q->relay);
        strbuf_puts(&q->relay, smtp_session_relay(sess));
        bool usable = smtp_session_deliver(sess, q);
        if (!usable)
            smtp_session_close(&sess, false);
        else if (undecided(q) && i + 1 < dest.naddrs)
            smtp_session_close(&sess, true); /* try the deferred ones at the next host */
    }
    smtp_dest_release(&dest);
    if (undecided(q) && tried) {
        /* Every host failed before a transaction: the last error decides. */
        for (size_t i = 0; i < q->nrcpts; i++)
            if (q->rcpts[i].status == 0)
                rcpt_set(&q->rcpts[i], last.status, last.dsn, last.reason.data);
    }

done:
    for (size_t i = 0; i < q->nrcpts; i++)
        if (q->rcpts[i].status == 0)
            rcpt_set(&q->rcpts[i], last.status, last.dsn, last.reason.data);
    if (sess != NULL)
        cache_put(&sess, q->nexthop);
    strbuf_release(&last.reason);
}

static void request_serve(struct smtp_request *q)
{
    struct strbuf err = STRBUF_INIT;
    struct scan sc = {false, 0};

    smtp_log_id = q->queue_id;
    q->fd = queue_open(QUEUE_ACTIVE, q->queue_id, false);
    if (q->fd < 0) {
        strbuf_printf(&err, "cannot open queue file: %s", strerror(errno));
        msg_warn("%s: %s", q->queue_id, err.data);
        request_fail_all(q, 4, "4.3.0", err.data);
        goto out;
    }
    if (qf_read(q->fd, &q->msg, &err) < 0) {
        msg_warn("%s: cannot read queue file: %s", q->queue_id, strbuf_str(&err));
        request_fail_all(q, 4, "4.3.0", "cannot read queue file");
        goto out;
    }
    if (q->msg.content_offset != q->offset || q->msg.content_size != q->size)
        msg_warn("%s: qmgr's offset/size differ from the queue file's; using the file's",
                 q->queue_id);
    for (size_t i = 0; i < q->nrcpts; i++) {
        struct smtp_rcpt *r = &q->rcpts[i];
        if ((size_t)r->index < q->msg.nrcpts) {
            const struct qf_recipient *qr = &q->msg.rcpts[r->index];
            r->notify = qr->notify;
            if ((r->orig == NULL || *r->orig == 0) && qr->orig && *qr->orig)
                r->orig = qr->orig;
        }
    }
    if (qf_copy_content(q->fd, &q->msg, scan_sink, &sc) < 0) {
        msg_warn("%s: cannot read queue file: %s", q->queue_id, strerror(errno));
        request_fail_all(q, 4, "4.3.0", "cannot read queue file");
        goto out;
    }
    q->has_8bit = sc.has_8bit;
    q->wire_size = q->msg.content_size + sc.lines;
    request_deliver(q);
out:
    smtp_log_id = "smtp";
    strbuf_release(&err);
}

static void request_reply(const struct smtp_request *q, struct attr_list *reply)
{
    attr_list_reset(reply);
    for (size_t i = 0; i < q->nrcpts; i++) {
        const struct smtp_rcpt *r = &q->rcpts[i];
        attr_list_add_int(reply, "index", r->index);
        attr_list_add_int(reply, "status", r->status);
        attr_list_add_str(reply, "dsn", r->dsn);
        attr_list_add_str(reply, "reason", strbuf_str(&r->reason));
        attr_list_add_str(reply, "relay", strbuf_str(&q->relay));
    }
    attr_list_add_str(reply, "dest_status", q->dest_ok ? "ok" : "dead");
    attr_list_add_str(reply, "end", "1");
}

/*
 * Wait for qmgr's next request while a session is cached: when the cache
 * time runs out first, the cached session is closed (QUIT). true when
 * there is something to read (or nothing cached).
 */
static void wait_request(struct stream *s)
{
    while (cache.sess != NULL && stream_buffered(s) == 0 && !server_should_exit()) {
        long long left = cache.expires_ms - now_ms();
        if (left <= 0) {
            cache_drop(true);
            break;
        }
        struct pollfd pfd = {.fd = stream_fd(s), .events = POLLIN, .revents = 0};
        int n = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR)
            break;
    }
}

/* One qmgr connection: requests until EOF, a timeout or a protocol error. */
static void smtp_service(struct server_client *client)
{
    struct stream *s = stream_fdopen(client->fd);
    struct attr_list req = ATTR_LIST_INIT, reply = ATTR_LIST_INIT;

    stream_set_timeout(s, smtp_params.ipc_timeout_ms);
    while (!server_should_exit()) {
        const char *error = NULL;
        wait_request(s);
        int r = attr_read(s, smtp_params.request_size_limit, &req, &error);
        if (r < 0) {
            if (r == STREAM_TIMEOUT)
                msg_info("qmgr connection idle for ipc_timeout: closing");
            else if (r != STREAM_EOF)
                msg_warn("qmgr connection: read error");
            break;
        }
        if (r > 0) {
            msg_warn("protocol error: malformed request record: %s", error ? error : "?");
            break;
        }
        struct smtp_request q;
        if (!request_parse(&req, &q)) {
            request_release(&q);
            break;
        }
        request_serve(&q);
        request_reply(&q, &reply);
        request_release(&q);
        if (attr_write(s, &reply) < 0) {
            msg_warn("qmgr connection: cannot send reply");
            break;
        }
    }
    cache_drop(true);
    attr_list_release(&req);
    attr_list_release(&reply);
    stream_free(&s);
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_SINGLE,
        .pre_init = NULL,
        .post_init = smtp_post_init,
        .service = smtp_service,
        .loop = NULL,
    };
    msg_init("smtp");
    server_main(argc, argv, &spec);
}
