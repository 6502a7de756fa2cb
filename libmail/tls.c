/*
 * tls - TLS (OpenSSL) under libmail's buffered streams (see tls.h).
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "stream.h"

/* RFC 5077 key material as OpenSSL wants it: 16 name + 32 HMAC + 32 AES. */
#define TLS_TICKET_KEY_LEN 80
/* The shared ticket key is replaced when older than this (seconds). */
#define TLS_TICKET_KEY_MIN_AGE 3600

/* One cached client session: the key names the server and the policy. */
struct tls_sess_entry {
    char *key;
    SSL_SESSION *sess;
};

/* Client sessions kept per context when nothing else is configured. */
#define TLS_CLIENT_CACHE_DEFAULT 256

struct tls_ctx {
    SSL_CTX *ssl;
    bool server;
    bool verify;
    bool dane_ready; /* SSL_CTX_dane_enable done */
    /* Client session cache, oldest first (tls_client_start only). */
    struct tls_sess_entry *cache;
    size_t ncache, cache_max;
};

struct tls_conn {
    SSL *ssl;
    struct stream *stream;
    bool verified;
    struct tls_ctx *ctx;
    char *cache_key; /* tls_client_start: where new sessions go, or NULL */
    enum tls_peer_trust trust;
};

static int tls_conn_index(void);

/* Append OpenSSL's queued errors (or a fallback) to err, and clear them. */
static void tls_error_text(struct strbuf *err, const char *what)
{
    unsigned long e;
    bool any = false;
    strbuf_puts(err, what);
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        strbuf_puts(err, any ? "; " : ": ");
        strbuf_puts(err, buf);
        any = true;
    }
}

static bool tls_set(const char *s)
{
    return s != NULL && *s != '\0';
}

static int tls_version_of(const char *name)
{
    if (strcasecmp(name, "TLSv1.2") == 0)
        return TLS1_2_VERSION;
    if (strcasecmp(name, "TLSv1.3") == 0)
        return TLS1_3_VERSION;
    return 0;
}

int tls_parse_protocols(const char *text, int *min_r, int *max_r, struct strbuf *err)
{
    int lo = 0, hi = 0, listed_lo = 0, listed_hi = 0;
    char **words = config_split_list(text ? text : "", NULL);
    int rc = 0;
    for (char **w = words; *w && rc == 0; w++) {
        const char *p = *w;
        int v;
        if (strncmp(p, ">=", 2) == 0 || strncmp(p, "<=", 2) == 0) {
            v = tls_version_of(p + 2);
            if (v == 0) {
                strbuf_printf(err, "tls_protocols: \"%s\": only TLSv1.2 and TLSv1.3 are supported",
                              p);
                rc = -1;
            } else if (p[0] == '>') {
                lo = v;
            } else {
                hi = v;
            }
        } else if (p[0] == '!') {
            /* Exclusions below the TLS 1.2 floor are no-ops (Postfix syntax). */
            if (strcasecmp(p + 1, "SSLv2") == 0 || strcasecmp(p + 1, "SSLv3") == 0 ||
                strcasecmp(p + 1, "TLSv1") == 0 || strcasecmp(p + 1, "TLSv1.1") == 0)
                continue;
            if (strcasecmp(p + 1, "TLSv1.2") == 0) {
                lo = TLS1_3_VERSION;
                continue;
            }
            strbuf_printf(err, "tls_protocols: cannot exclude \"%s\"", p + 1);
            rc = -1;
        } else if ((v = tls_version_of(p)) != 0) {
            if (listed_lo == 0 || v < listed_lo)
                listed_lo = v;
            if (v > listed_hi)
                listed_hi = v;
        } else {
            strbuf_printf(err,
                          "tls_protocols: \"%s\": expected >=TLSv1.2, >=TLSv1.3 or a list of "
                          "TLSv1.2 TLSv1.3",
                          p);
            rc = -1;
        }
    }
    config_list_free(&words);
    if (rc < 0)
        return -1;
    if (listed_lo && listed_lo > lo)
        lo = listed_lo;
    if (listed_hi && (hi == 0 || listed_hi < hi))
        hi = listed_hi;
    if (lo == 0)
        lo = TLS1_2_VERSION;
    if (hi != 0 && hi < lo) {
        strbuf_puts(err, "tls_protocols: no protocol version left");
        return -1;
    }
    *min_r = lo;
    *max_r = hi;
    return 0;
}

/*
 * The ticket key every process of this instance shares: read it from path,
 * or (missing, damaged or older than max_age) make a new one there
 * atomically. Returns 0 with the key, -1 when the file cannot be used.
 */
static int tls_ticket_key(const char *path, long max_age, unsigned char key[TLS_TICKET_KEY_LEN])
{
    struct stat st;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = -1;
            if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == TLS_TICKET_KEY_LEN &&
                time(NULL) - st.st_mtime < max_age)
                n = read(fd, key, TLS_TICKET_KEY_LEN);
            close(fd);
            if (n == TLS_TICKET_KEY_LEN)
                return 0;
        }
        if (attempt == 1)
            break;
        /* Make a fresh one: temp file, fsync, rename (readers never see half a key). */
        struct strbuf tmp = STRBUF_INIT;
        strbuf_printf(&tmp, "%s.tmpXXXXXX", path);
        fd = mkstemp(tmp.data);
        if (fd < 0) {
            strbuf_release(&tmp);
            return -1;
        }
        unsigned char fresh[TLS_TICKET_KEY_LEN];
        int ok = RAND_bytes(fresh, sizeof(fresh)) == 1 &&
                 write(fd, fresh, sizeof(fresh)) == (ssize_t)sizeof(fresh) && fsync(fd) == 0;
        close(fd);
        if (!ok || rename(tmp.data, path) < 0) {
            unlink(tmp.data);
            strbuf_release(&tmp);
            return -1;
        }
        OPENSSL_cleanse(fresh, sizeof(fresh));
        strbuf_release(&tmp);
        /* Read it back: if another process renamed its key at the same
         * moment, everyone ends up with the last one. */
    }
    return -1;
}

static SSL_CTX *tls_ctx_common(const SSL_METHOD *method, const struct tls_config *cfg,
                               struct strbuf *err)
{
    int lo, hi;
    if (tls_parse_protocols(cfg->protocols, &lo, &hi, err) < 0)
        return NULL;
    /* OpenSSL writes to sockets with write(2): a peer that went away must
     * give EPIPE, not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(method);
    if (c == NULL) {
        tls_error_text(err, "cannot create a TLS context");
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(c, lo) || (hi && !SSL_CTX_set_max_proto_version(c, hi))) {
        tls_error_text(err, "tls_protocols");
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Partial writes: stream_flush retries with the rest of the same buffer.
     * Release buffers: an idle TLS connection keeps no 34 KiB of buffers. */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    if (tls_set(cfg->cipherlist) && !SSL_CTX_set_cipher_list(c, cfg->cipherlist)) {
        tls_error_text(err, "tls_cipherlist");
        SSL_CTX_free(c);
        return NULL;
    }
    if (tls_set(cfg->ciphersuites) && !SSL_CTX_set_ciphersuites(c, cfg->ciphersuites)) {
        tls_error_text(err, "tls_ciphersuites");
        SSL_CTX_free(c);
        return NULL;
    }
    return c;
}

/* Load one certificate chain + key pair and check they belong together. */
static int tls_load_pair(SSL_CTX *c, const char *cert, const char *key, struct strbuf *err)
{
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
        strbuf_printf(err, "certificate file %s", cert);
        tls_error_text(err, "");
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(c, tls_set(key) ? key : cert, SSL_FILETYPE_PEM) != 1) {
        strbuf_printf(err, "key file %s", tls_set(key) ? key : cert);
        tls_error_text(err, "");
        return -1;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        strbuf_printf(err, "key file %s does not match certificate %s", tls_set(key) ? key : cert,
                      cert);
        tls_error_text(err, "");
        return -1;
    }
    return 0;
}

struct tls_ctx *tls_server_ctx_new(const struct tls_config *cfg, struct strbuf *err)
{
    if (!tls_set(cfg->cert_file)) {
        strbuf_puts(err, "no certificate file configured");
        return NULL;
    }
    SSL_CTX *c = tls_ctx_common(TLS_server_method(), cfg, err);
    if (c == NULL)
        return NULL;
    if (tls_load_pair(c, cfg->cert_file, cfg->key_file, err) < 0 ||
        (tls_set(cfg->cert2_file) && tls_load_pair(c, cfg->cert2_file, cfg->key2_file, err) < 0)) {
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_dh_auto(c, 1);
    /* Resumption: an in-process session cache (TLS 1.2 session IDs) and
     * tickets; the ticket key is shared between processes through a file. */
    static const unsigned char sid_ctx[] = "tegami";
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_timeout(c, cfg->session_timeout > 0 ? cfg->session_timeout : 3600);
    if (!cfg->session_tickets) {
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(c, 0);
    } else {
        SSL_CTX_set_num_tickets(c, 1);
        if (tls_set(cfg->ticket_key_file)) {
            unsigned char key[TLS_TICKET_KEY_LEN];
            long age = 2 * (cfg->session_timeout > 0 ? cfg->session_timeout : 3600);
            if (age < TLS_TICKET_KEY_MIN_AGE)
                age = TLS_TICKET_KEY_MIN_AGE;
            if (tls_ticket_key(cfg->ticket_key_file, age, key) == 0)
                SSL_CTX_set_tlsext_ticket_keys(c, key, sizeof(key));
            else
                msg_warn("TLS session ticket key %s: %s; tickets resume only in this process",
                         cfg->ticket_key_file, strerror(errno));
            OPENSSL_cleanse(key, sizeof(key));
        }
    }
    struct tls_ctx *t = mycalloc(1, sizeof(*t));
    t->ssl = c;
    t->server = true;
    return t;
}

static int tls_new_session(SSL *ssl, SSL_SESSION *sess);

struct tls_ctx *tls_client_ctx_new(const struct tls_config *cfg, struct strbuf *err)
{
    SSL_CTX *c = tls_ctx_common(TLS_client_method(), cfg, err);
    if (c == NULL)
        return NULL;
    if (tls_set(cfg->cert_file) && tls_load_pair(c, cfg->cert_file, cfg->key_file, err) < 0) {
        SSL_CTX_free(c);
        return NULL;
    }
    struct tls_ctx *t = mycalloc(1, sizeof(*t));
    if (tls_set(cfg->ca_file)) {
        if (SSL_CTX_load_verify_locations(c, cfg->ca_file, NULL) != 1) {
            strbuf_printf(err, "CA file %s", cfg->ca_file);
            tls_error_text(err, "");
            SSL_CTX_free(c);
            myfree(t);
            return NULL;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
        t->verify = true;
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    }
    /* Sessions go to our own cache, keyed by server and policy
     * (tls_client_start), never to OpenSSL's internal store. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, tls_new_session);
    t->cache_max = TLS_CLIENT_CACHE_DEFAULT;
    t->ssl = c;
    return t;
}

void tls_ctx_free(struct tls_ctx **ctxp)
{
    struct tls_ctx *t = *ctxp;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncache; i++) {
        myfree(t->cache[i].key);
        SSL_SESSION_free(t->cache[i].sess);
    }
    myfree(t->cache);
    SSL_CTX_free(t->ssl);
    myfree(t);
    *ctxp = NULL;
}

/* "<prefix>_tls_<what>" */
static const char *tls_param(const char *prefix, const char *what)
{
    char name[64];
    snprintf(name, sizeof(name), "%s_tls_%s", prefix, what);
    return config_str(name);
}

int tls_server_ctx_from_config(const char *prefix, struct tls_ctx **ctx_r, struct strbuf *err)
{
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    *ctx_r = NULL;
    cfg.cert_file = tls_param(prefix, "cert_file");
    if (!tls_set(cfg.cert_file))
        return 0;
    cfg.key_file = tls_param(prefix, "key_file");
    cfg.cert2_file = tls_param(prefix, "eccert_file");
    cfg.key2_file = tls_param(prefix, "eckey_file");
    cfg.protocols = config_str("tls_protocols");
    cfg.cipherlist = config_str("tls_cipherlist");
    cfg.ciphersuites = config_str("tls_ciphersuites");
    cfg.session_timeout = (long)config_time("tls_session_cache_timeout");
    cfg.session_tickets = config_bool("tls_session_tickets");
    struct strbuf keyfile = STRBUF_INIT;
    const char *data = config_str("data_directory");
    struct stat st;
    if (tls_set(data) && stat(data, &st) == 0 && S_ISDIR(st.st_mode)) {
        strbuf_printf(&keyfile, "%s/tls_ticket.key", data);
        cfg.ticket_key_file = keyfile.data;
    }
    *ctx_r = tls_server_ctx_new(&cfg, err);
    strbuf_release(&keyfile);
    return *ctx_r ? 1 : -1;
}

/* ---- connections -------------------------------------------------------- */

/*
 * A failed SSL_read_ex/SSL_write_ex in the stream_ops convention: -1 with
 * errno EAGAIN ("poll and retry"; *want_other: poll for the other
 * direction), 0 for a clean TLS close on a read, else -1 with an errno.
 */
static ssize_t tls_ops_failed(struct tls_conn *c, bool reading, bool *want_other)
{
    switch (SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        *want_other = !reading;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want_other = reading;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (reading)
            return 0;
        errno = EPROTO;
        return -1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == EAGAIN || errno == EINTR)
            errno = EIO;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_ops_read(void *ctx, int fd, void *buf, size_t len, bool *want_write)
{
    struct tls_conn *c = ctx;
    size_t n = 0;
    (void)fd;
    *want_write = false;
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    return tls_ops_failed(c, true, want_write);
}

static ssize_t tls_ops_write(void *ctx, int fd, const void *buf, size_t len, bool *want_read)
{
    struct tls_conn *c = ctx;
    size_t n = 0;
    (void)fd;
    *want_read = false;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    return tls_ops_failed(c, false, want_read);
}

static size_t tls_ops_pending(void *ctx)
{
    struct tls_conn *c = ctx;
    int n = SSL_pending(c->ssl);
    return n > 0 ? (size_t)n : 0;
}

static const struct stream_ops tls_stream_ops = {tls_ops_read, tls_ops_write, tls_ops_pending};

static long long tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Run the handshake of ssl (connect or accept state set) on the
 * non-blocking fd within timeout_ms (<= 0: no limit). 0, or -1 with err.
 */
static int tls_handshake(SSL *ssl, int fd, int timeout_ms, struct strbuf *err)
{
    long long deadline = tls_now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_do_handshake(ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(ssl, r);
        short events;
        if (e == SSL_ERROR_WANT_READ) {
            events = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            events = POLLOUT;
        } else {
            if (ERR_peek_error() == 0)
                strbuf_printf(err, "TLS handshake failed: %s",
                              errno ? strerror(errno) : "connection closed by peer");
            else
                tls_error_text(err, "TLS handshake failed");
            return -1;
        }
        for (;;) {
            int wait = -1;
            if (timeout_ms > 0) {
                long long left = deadline - tls_now_ms();
                if (left <= 0) {
                    strbuf_puts(err, "TLS handshake timed out");
                    return -1;
                }
                wait = (int)left;
            }
            struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
            int n = poll(&pfd, 1, wait);
            if (n > 0)
                break;
            if (n < 0 && errno != EINTR) {
                strbuf_printf(err, "TLS handshake: poll: %s", strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

struct tls_conn *tls_conn_start(struct tls_ctx *ctx, struct stream *stream, bool server,
                                const char *servername, int timeout_ms, struct strbuf *err)
{
    int fd = stream_fd(stream);
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx->ssl);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        tls_error_text(err, "cannot create a TLS connection");
        SSL_free(ssl);
        return NULL;
    }
    /* No Nagle under TLS: a TLS 1.3 server writes its session ticket after
     * the handshake, then the reply to the client's first command in a
     * second write; with Nagle that reply waits for the ACK of the ticket,
     * which the client delays (40 ms on Linux) for every STARTTLS session.
     * Our writes are whole records of a flushed reply, so nothing is lost.
     * Not a TCP socket (tests, UNIX sockets): the call fails harmlessly. */
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (tls_set(servername)) {
            SSL_set_tlsext_host_name(ssl, servername);
            if (ctx->verify)
                SSL_set1_host(ssl, servername);
        }
    }
    if (tls_handshake(ssl, fd, timeout_ms, err) < 0) {
        SSL_free(ssl);
        return NULL;
    }
    struct tls_conn *c = mycalloc(1, sizeof(*c));
    c->ssl = ssl;
    c->stream = stream;
    c->verified = ctx->verify && SSL_get_verify_result(ssl) == X509_V_OK &&
                  SSL_get0_peer_certificate(ssl) != NULL;
    stream_set_ops(stream, &tls_stream_ops, c);
    return c;
}

void tls_conn_free(struct tls_conn **connp)
{
    struct tls_conn *c = *connp;
    if (c == NULL)
        return;
    /* close_notify, once, without waiting for the peer's (fd is non-blocking). */
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
    /* A session ticket read now has no connection to file it under. */
    SSL_set_ex_data(c->ssl, tls_conn_index(), NULL);
    SSL_free(c->ssl);
    myfree(c->cache_key);
    /* Nothing more goes through TLS; never leave the stream pointing here. */
    stream_set_ops(c->stream, NULL, NULL);
    myfree(c);
    *connp = NULL;
}

const char *tls_conn_version(const struct tls_conn *conn)
{
    return SSL_get_version(conn->ssl);
}

bool tls_conn_resumed(const struct tls_conn *conn)
{
    return SSL_session_reused(conn->ssl) == 1;
}

bool tls_conn_verified(const struct tls_conn *conn)
{
    return conn->verified;
}

void tls_conn_describe(const struct tls_conn *conn, struct strbuf *out)
{
    const SSL_CIPHER *ci = SSL_get_current_cipher(conn->ssl);
    int alg_bits = 0;
    int bits = ci ? SSL_CIPHER_get_bits(ci, &alg_bits) : 0;
    strbuf_printf(out, "%s with cipher %s (%d/%d bits)", SSL_get_version(conn->ssl),
                  ci ? SSL_CIPHER_get_name(ci) : "unknown", bits, alg_bits);
}

/* ---- SMTP client (policy levels, DANE) ------------------------------------ */

static const char *const tls_level_names[] = {"none", "may", "encrypt", "verify", "dane"};

int tls_level_parse(const char *text, enum tls_level *level_r)
{
    for (size_t i = 0; text != NULL && i < sizeof(tls_level_names) / sizeof(tls_level_names[0]);
         i++) {
        if (strcasecmp(text, tls_level_names[i]) == 0) {
            *level_r = (enum tls_level)i;
            return 0;
        }
    }
    return -1;
}

const char *tls_level_str(enum tls_level level)
{
    if ((size_t)level < sizeof(tls_level_names) / sizeof(tls_level_names[0]))
        return tls_level_names[level];
    return "unknown";
}

/* The SSL ex_data slot that points back to our struct tls_conn. */
static int tls_conn_index(void)
{
    static int idx = -1;
    if (idx < 0)
        idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    return idx;
}

/* Take a usable cached session for key out of the cache (NULL if none). */
static SSL_SESSION *tls_cache_take(struct tls_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->ncache; i++) {
        if (strcmp(ctx->cache[i].key, key) != 0)
            continue;
        SSL_SESSION *sess = ctx->cache[i].sess;
        myfree(ctx->cache[i].key);
        memmove(&ctx->cache[i], &ctx->cache[i + 1], (ctx->ncache - i - 1) * sizeof(ctx->cache[0]));
        ctx->ncache--;
        /* TLS 1.3 tickets are for one use (RFC 8446 §C.4): the entry is
         * gone now; the server's next ticket refills it. */
        time_t now = time(NULL);
        if (SSL_SESSION_is_resumable(sess) &&
            (time_t)SSL_SESSION_get_time(sess) + (time_t)SSL_SESSION_get_timeout(sess) > now)
            return sess;
        SSL_SESSION_free(sess);
        return NULL;
    }
    return NULL;
}

/* OpenSSL's new-session callback: file the session under its connection's key. */
static int tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_conn *c = SSL_get_ex_data(ssl, tls_conn_index());
    if (c == NULL || c->cache_key == NULL || c->ctx->cache_max == 0)
        return 0;
    struct tls_ctx *ctx = c->ctx;
    size_t i;
    for (i = 0; i < ctx->ncache; i++)
        if (strcmp(ctx->cache[i].key, c->cache_key) == 0)
            break;
    if (i < ctx->ncache) {
        /* Newest wins; move it to the young end. */
        SSL_SESSION_free(ctx->cache[i].sess);
        char *key = ctx->cache[i].key;
        memmove(&ctx->cache[i], &ctx->cache[i + 1], (ctx->ncache - i - 1) * sizeof(ctx->cache[0]));
        ctx->cache[ctx->ncache - 1].key = key;
        ctx->cache[ctx->ncache - 1].sess = sess;
        return 1;
    }
    if (ctx->ncache == ctx->cache_max) {
        /* Full: forget the oldest. */
        myfree(ctx->cache[0].key);
        SSL_SESSION_free(ctx->cache[0].sess);
        memmove(&ctx->cache[0], &ctx->cache[1], (ctx->ncache - 1) * sizeof(ctx->cache[0]));
        ctx->ncache--;
    } else {
        ctx->cache = myreallocarray(ctx->cache, ctx->ncache + 1, sizeof(ctx->cache[0]));
    }
    ctx->cache[ctx->ncache].key = mystrdup(c->cache_key);
    ctx->cache[ctx->ncache].sess = sess;
    ctx->ncache++;
    return 1; /* we keep the reference */
}

/*
 * The cache key of a policy: a session is resumed only for the same server
 * name under the same level, names and TLSA records, so a resumption never
 * skips a check the full handshake would make now.
 */
static char *tls_policy_key(const struct tls_client_policy *pol)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return NULL;
    }
    /* Length-prefixed fields: no two policies hash the same input. */
#define TLS_KEY_FIELD(p, n)                                                                        \
    do {                                                                                           \
        uint64_t len_ = (uint64_t)(n);                                                             \
        EVP_DigestUpdate(md, &len_, sizeof(len_));                                                 \
        if (len_)                                                                                  \
            EVP_DigestUpdate(md, (p), (size_t)len_);                                               \
    } while (0)
    const char *sn = pol->servername ? pol->servername : "";
    TLS_KEY_FIELD(sn, strlen(sn));
    for (size_t i = 0; i < pol->nverify_names; i++)
        TLS_KEY_FIELD(pol->verify_names[i], strlen(pol->verify_names[i]));
    TLS_KEY_FIELD("", 0);
    if (pol->level == TLS_LEVEL_DANE) {
        for (size_t i = 0; i < pol->ntlsa; i++) {
            unsigned char hdr[3] = {pol->tlsa[i].usage, pol->tlsa[i].selector, pol->tlsa[i].mtype};
            TLS_KEY_FIELD(hdr, sizeof(hdr));
            TLS_KEY_FIELD(pol->tlsa[i].data, pol->tlsa[i].len);
        }
    }
#undef TLS_KEY_FIELD
    int ok = EVP_DigestFinal_ex(md, digest, &dlen) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return NULL;
    struct strbuf key = STRBUF_INIT;
    strbuf_printf(&key, "%s:%s:", tls_level_str(pol->level), sn);
    for (unsigned int i = 0; i < dlen; i++)
        strbuf_printf(&key, "%02x", digest[i]);
    return strbuf_detach(&key, NULL);
}

/* Is name an IP address literal (no SNI for those, RFC 6066 §3)? */
static bool tls_is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/*
 * Set up DANE on ssl (RFC 7672 §3): usable records are DANE-TA(2) and
 * DANE-EE(3) that OpenSSL accepts (selector 0/1, matching type 0/1/2 with
 * the right digest length). 0, or -1 with err.
 */
static int tls_dane_setup(struct tls_ctx *ctx, SSL *ssl, const struct tls_client_policy *pol,
                          const char *base, struct strbuf *err)
{
    if (!ctx->dane_ready) {
        if (SSL_CTX_dane_enable(ctx->ssl) <= 0) {
            tls_error_text(err, "cannot enable DANE");
            return -1;
        }
        ctx->dane_ready = true;
    }
    if (SSL_dane_enable(ssl, base) <= 0) {
        tls_error_text(err, "cannot enable DANE");
        return -1;
    }
    /* RFC 7672 §3.1.1: a DANE-EE(3) match authenticates the key alone;
     * names (and dates) in the certificate do not matter. */
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    size_t usable = 0;
    for (size_t i = 0; i < pol->ntlsa; i++) {
        const struct tls_tlsa *t = &pol->tlsa[i];
        /* RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP. */
        if (t->usage != 2 && t->usage != 3)
            continue;
        if (t->data == NULL || t->len == 0)
            continue;
        ERR_clear_error();
        if (SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len) > 0)
            usable++;
        ERR_clear_error(); /* 0 = unsupported, < 0 = malformed: both unusable */
    }
    if (usable == 0) {
        strbuf_puts(err, "no usable TLSA records");
        return -1;
    }
    return 0;
}

/* Reference names for verify and DANE-TA: verify_names, else servername. */
static int tls_set_names(SSL *ssl, const struct tls_client_policy *pol, bool first_set)
{
    int n = 0;
    for (size_t i = 0; i < pol->nverify_names; i++) {
        const char *name = pol->verify_names[i];
        if (name == NULL || *name == '\0')
            continue;
        if (!first_set && n == 0 ? SSL_set1_host(ssl, name) == 1 : SSL_add1_host(ssl, name) == 1)
            n++;
    }
    if (n == 0 && !first_set && tls_set(pol->servername) &&
        SSL_set1_host(ssl, pol->servername) == 1)
        n++;
    return n;
}

struct tls_conn *tls_client_start(struct tls_ctx *ctx, struct stream *stream,
                                  const struct tls_client_policy *pol, int timeout_ms,
                                  struct strbuf *err)
{
    if (ctx == NULL || ctx->server) {
        strbuf_puts(err, "TLS: no client context");
        return NULL;
    }
    if (pol->level == TLS_LEVEL_NONE) {
        strbuf_puts(err, "TLS: security level is none");
        return NULL;
    }
    int fd = stream_fd(stream);
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx->ssl);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        tls_error_text(err, "cannot create a TLS connection");
        SSL_free(ssl);
        return NULL;
    }
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    SSL_set_connect_state(ssl);
    if (tls_set(pol->servername) && !tls_is_ip(pol->servername))
        SSL_set_tlsext_host_name(ssl, pol->servername);
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    switch (pol->level) {
    case TLS_LEVEL_VERIFY:
        if (tls_set_names(ssl, pol, false) == 0) {
            strbuf_puts(err, "TLS: no name to verify the server certificate against");
            SSL_free(ssl);
            return NULL;
        }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        break;
    case TLS_LEVEL_DANE: {
        const char *base = tls_set(pol->servername) ? pol->servername
                           : pol->nverify_names > 0 ? pol->verify_names[0]
                                                    : NULL;
        if (!tls_set(base)) {
            strbuf_puts(err, "TLS: DANE needs the server's host name");
            SSL_free(ssl);
            return NULL;
        }
        if (tls_dane_setup(ctx, ssl, pol, base, err) < 0) {
            SSL_free(ssl);
            return NULL;
        }
        /* SSL_dane_enable made base the first name; DANE-TA also accepts these. */
        (void)tls_set_names(ssl, pol, true);
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        break;
    }
    default:
        /* may / encrypt: encryption without authentication (RFC 7435). */
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        break;
    }
    struct tls_conn *c = mycalloc(1, sizeof(*c));
    c->ssl = ssl;
    c->stream = stream;
    c->ctx = ctx;
    if (ctx->cache_max > 0)
        c->cache_key = tls_policy_key(pol);
    SSL_set_ex_data(ssl, tls_conn_index(), c);
    if (c->cache_key != NULL) {
        SSL_SESSION *sess = tls_cache_take(ctx, c->cache_key);
        if (sess != NULL) {
            SSL_set_session(ssl, sess);
            SSL_SESSION_free(sess);
        }
    }
    if (tls_handshake(ssl, fd, timeout_ms, err) < 0) {
        long vr = SSL_get_verify_result(ssl);
        if ((pol->level == TLS_LEVEL_VERIFY || pol->level == TLS_LEVEL_DANE) && vr != X509_V_OK)
            strbuf_printf(err, " (certificate: %s)", X509_verify_cert_error_string(vr));
        goto fail;
    }
    bool verified =
        SSL_get_verify_result(ssl) == X509_V_OK && SSL_get0_peer_certificate(ssl) != NULL;
    switch (pol->level) {
    case TLS_LEVEL_VERIFY:
        c->trust = TLS_PEER_VERIFIED;
        break;
    case TLS_LEVEL_DANE:
        /* A resumed session was authenticated under this same policy (the
         * cache key) when it was made. */
        if (!SSL_session_reused(ssl) && SSL_get0_dane_authority(ssl, NULL, NULL) < 0)
            verified = false;
        c->trust = TLS_PEER_DANE;
        break;
    default:
        verified = true; /* nothing required */
        c->trust = TLS_PEER_ANON;
        break;
    }
    if (!verified) {
        /* VERIFY_PEER makes this impossible; never report trust we lack. */
        strbuf_puts(err, "TLS: server certificate not authenticated");
        goto fail;
    }
    c->verified = c->trust != TLS_PEER_ANON;
    stream_set_ops(stream, &tls_stream_ops, c);
    return c;

fail:
    SSL_set_ex_data(ssl, tls_conn_index(), NULL);
    SSL_free(ssl);
    myfree(c->cache_key);
    myfree(c);
    return NULL;
}

enum tls_peer_trust tls_conn_peer_trust(const struct tls_conn *conn)
{
    return conn->trust;
}

int tls_client_ctx_from_config(const char *prefix, struct tls_ctx **ctx_r, struct strbuf *err)
{
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    *ctx_r = NULL;
    cfg.protocols = tls_param(prefix, "protocols");
    cfg.cipherlist = tls_param(prefix, "ciphers");
    cfg.ciphersuites = tls_param(prefix, "ciphersuites");
    cfg.cert_file = tls_param(prefix, "cert_file");
    cfg.key_file = tls_param(prefix, "key_file");
    cfg.ca_file = tls_param(prefix, "CAfile");
    const char *ca_path = tls_param(prefix, "CApath");
    struct tls_ctx *t = tls_client_ctx_new(&cfg, err);
    if (t == NULL)
        return -1;
    ERR_clear_error();
    if (tls_set(ca_path)) {
        /* OpenSSL reads a CApath lazily and would accept a missing one. */
        struct stat st;
        if (stat(ca_path, &st) < 0 || !S_ISDIR(st.st_mode)) {
            strbuf_printf(err, "%s_tls_CApath %s: not a directory", prefix, ca_path);
            tls_ctx_free(&t);
            return -1;
        }
        if (SSL_CTX_load_verify_locations(t->ssl, NULL, ca_path) != 1) {
            strbuf_printf(err, "%s_tls_CApath %s", prefix, ca_path);
            tls_error_text(err, "");
            tls_ctx_free(&t);
            return -1;
        }
    } else if (!tls_set(cfg.ca_file)) {
        /* Neither given: the system's trust store (OpenSSL's default paths). */
        if (SSL_CTX_set_default_verify_paths(t->ssl) != 1) {
            tls_error_text(err, "cannot load the default CA store");
            tls_ctx_free(&t);
            return -1;
        }
    }
    char name[64];
    snprintf(name, sizeof(name), "%s_tls_session_cache_size", prefix);
    t->cache_max = (size_t)config_int(name);
    *ctx_r = t;
    return 0;
}
