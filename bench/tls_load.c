/*
 * tls_load - the SMTP-over-STARTTLS load client of bench/smtp_tls_bench.py.
 *
 * C worker processes; each does, per connection: greeting, EHLO, STARTTLS,
 * TLS handshake, EHLO, then M times MAIL/RCPT/DATA, then QUIT. Lock-step
 * (no pipelining), like Postfix's smtp-source. Cold handshakes unless -r
 * (each worker then offers the session of its previous connection).
 * Compiled by the bench script: cc -O2 -o tls_load tls_load.c -lssl -lcrypto
 *
 *   tls_load -h HOST -p PORT -t RCPT -n CONNECTIONS -c WORKERS [-m PER_CONN] [-s SIZE] [-r]
 *
 * Prints one line: ok failed resumed wall_seconds client_cpu_seconds version cipher
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct conn {
    int fd;
    SSL *ssl;
    char buf[8192];
    size_t len;
};

static struct sockaddr_in addr;
static const char *rcpt;
static char *body;
static size_t body_len;

static int conn_read(struct conn *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t n;
    if (c->ssl) {
        int r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
        n = r > 0 ? r : -1;
    } else {
        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    }
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

/* One reply (possibly multi-line): its code, or -1. */
static int reply(struct conn *c)
{
    for (;;) {
        size_t start = 0;
        for (size_t i = 0; i + 1 < c->len; i++) {
            if (c->buf[i] == '\r' && c->buf[i + 1] == '\n') {
                if (i - start >= 3 && (i - start == 3 || c->buf[start + 3] != '-')) {
                    int code = atoi(c->buf + start);
                    memmove(c->buf, c->buf + i + 2, c->len - i - 2);
                    c->len -= i + 2;
                    return code;
                }
                start = i + 2;
            }
        }
        if (conn_read(c) < 0)
            return -1;
    }
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, (int)n);
            w = r > 0 ? r : -1;
        } else {
            w = write(c->fd, p, n);
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmd(struct conn *c, const char *line, int want)
{
    if (send_all(c, line, strlen(line)) < 0)
        return -1;
    return reply(c) == want ? 0 : -1;
}

static void worker(SSL_CTX *ctx, int go_fd, int out_fd, long n_conn, int per_conn, int resume)
{
    long ok = 0, failed = 0, resumed = 0;
    char version[32] = "-", cipher[64] = "-";
    char rcpt_cmd[512];
    snprintf(rcpt_cmd, sizeof(rcpt_cmd), "RCPT TO:<%s>\r\n", rcpt);
    SSL_SESSION *session = NULL;
    char go;
    if (read(go_fd, &go, 1) < 0)
        _exit(1);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    for (long i = 0; i < n_conn; i++) {
        struct conn c;
        c.len = 0;
        c.ssl = NULL;
        c.fd = socket(AF_INET, SOCK_STREAM, 0);
        int on = 1;
        int good = 0;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        if (connect(c.fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 && reply(&c) == 220 &&
            cmd(&c, "EHLO client.bench.test\r\n", 250) == 0 && cmd(&c, "STARTTLS\r\n", 220) == 0 &&
            c.len == 0) {
            c.ssl = SSL_new(ctx);
            SSL_set_fd(c.ssl, c.fd);
            if (resume && session)
                SSL_set_session(c.ssl, session);
            if (SSL_connect(c.ssl) == 1 && cmd(&c, "EHLO client.bench.test\r\n", 250) == 0) {
                if (SSL_session_reused(c.ssl))
                    resumed++;
                if (strcmp(cipher, "-") == 0) {
                    snprintf(version, sizeof(version), "%s", SSL_get_version(c.ssl));
                    snprintf(cipher, sizeof(cipher), "%s", SSL_get_cipher_name(c.ssl));
                }
                good = 1;
                for (int m = 0; m < per_conn && good; m++) {
                    if (cmd(&c, "MAIL FROM:<load@bench.test>\r\n", 250) == 0 &&
                        cmd(&c, rcpt_cmd, 250) == 0 && cmd(&c, "DATA\r\n", 354) == 0 &&
                        send_all(&c, body, body_len) == 0 && reply(&c) == 250)
                        ok++;
                    else
                        good = 0;
                }
                if (good) {
                    (void)cmd(&c, "QUIT\r\n", 221);
                    if (resume) {
                        SSL_SESSION_free(session);
                        session = SSL_get1_session(c.ssl);
                    }
                }
            }
        }
        if (!good) {
            failed++;
            if (failed <= 3) {
                unsigned long e = ERR_get_error();
                fprintf(stderr, "tls_load: connection %ld failed (%s)\n", i,
                        e ? ERR_error_string(e, NULL) : strerror(errno));
            }
        }
        if (c.ssl) {
            SSL_shutdown(c.ssl);
            SSL_free(c.ssl);
        }
        ERR_clear_error();
        close(c.fd);
    }
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    char line[256];
    int n = snprintf(line, sizeof(line), "%ld %ld %ld %.6f %s %s\n", ok, failed, resumed, cpu,
                     version, cipher);
    if (write(out_fd, line, (size_t)n) != n)
        _exit(1);
    _exit(0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 25, workers = 10, per_conn = 1, resume = 0;
    long conns = 100;
    size_t size = 1024;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:t:n:c:m:s:r")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 't':
            rcpt = optarg;
            break;
        case 'n':
            conns = atol(optarg);
            break;
        case 'c':
            workers = atoi(optarg);
            break;
        case 'm':
            per_conn = atoi(optarg);
            break;
        case 's':
            size = (size_t)atol(optarg);
            break;
        case 'r':
            resume = 1;
            break;
        default:
            return 2;
        }
    }
    if (rcpt == NULL || workers < 1 || per_conn < 1 || size < 64 || size > 10000000 ||
        strlen(rcpt) > 400)
        return 2;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    /* The message: a few headers, 78-byte lines, "." */
    body = malloc(size + 8);
    if (body == NULL)
        return 1;
    const char *head = "From: <load@bench.test>\r\nTo: <bench>\r\nSubject: tls bench\r\n\r\n";
    body_len = strlen(head);
    memcpy(body, head, body_len);
    while (body_len + 78 <= size) {
        memset(body + body_len, 'x', 76);
        memcpy(body + body_len + 76, "\r\n", 2);
        body_len += 78;
    }
    memcpy(body + body_len, ".\r\n", 3);
    body_len += 3;

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* verifying is the client's cost */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    int go[2], out[2];
    if (pipe(go) < 0 || pipe(out) < 0)
        return 1;
    for (int w = 0; w < workers; w++) {
        long share = conns / workers + (w < conns % workers ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            close(go[1]);
            close(out[0]);
            worker(ctx, go[0], out[1], share, per_conn, resume);
        }
    }
    close(go[0]);
    close(out[1]);
    usleep(200000);
    double t0 = now();
    close(go[1]); /* every worker's read returns 0: go */
    long ok = 0, failed = 0, resumed = 0;
    double cpu = 0;
    char version[32] = "-", cipher[64] = "-";
    FILE *f = fdopen(out[0], "r");
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        long a, b, c;
        double d;
        char v[32], ci[64];
        if (sscanf(line, "%ld %ld %ld %lf %31s %63s", &a, &b, &c, &d, v, ci) == 6) {
            ok += a;
            failed += b;
            resumed += c;
            cpu += d;
            if (strcmp(v, "-") != 0) {
                snprintf(version, sizeof(version), "%s", v);
                snprintf(cipher, sizeof(cipher), "%s", ci);
            }
        }
    }
    double wall = now() - t0;
    while (wait(NULL) > 0)
        ;
    printf("%ld %ld %ld %.6f %.6f %s %s\n", ok, failed, resumed, wall, cpu, version, cipher);
    return 0;
}
