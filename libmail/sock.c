/*
 * sock - socket helpers: listening, connecting, addresses, networks.
 *
 * Listening sockets are left blocking (callers poll before accept where
 * several processes share one). Fifos are opened O_RDWR|O_NONBLOCK so the
 * reader never sees end-of-file when the last writer closes (a poll loop
 * would otherwise spin on POLLHUP).
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what a dual-stack listener
 * reports) are treated as the IPv4 address they carry, both in the address
 * text and when matching networks.
 */
#include "sock.h"
#include "config.h"
#include "mymalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SOCK_MAX_NETWORKS 10000

static void sock_err(struct strbuf *err, const char *fmt, ...) MSG_PRINTF(2, 3);

static void sock_err(struct strbuf *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    strbuf_reset(err);
    va_start(ap, fmt);
    strbuf_vprintf(err, fmt, ap);
    va_end(ap);
}

/* Split "host:port", "[v6]:port" or "port" into host (may be empty) and port. */
static int sock_split_spec(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *p;
    size_t hl;

    host[0] = 0;
    if (*spec == '[') {
        const char *close = strchr(spec, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        hl = (size_t)(close - spec - 1);
        if (hl == 0 || hl >= hostlen)
            return -1;
        memcpy(host, spec + 1, hl);
        host[hl] = 0;
        p = close + 2;
    } else if ((p = strrchr(spec, ':')) != NULL) {
        hl = (size_t)(p - spec);
        if (hl >= hostlen || memchr(spec, ':', hl))
            return -1;
        memcpy(host, spec, hl);
        host[hl] = 0;
        p++;
    } else {
        p = spec;
    }
    if (*p == 0 || strlen(p) >= portlen)
        return -1;
    snprintf(port, portlen, "%s", p);
    return 0;
}

static int sock_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -1;
    return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static int sock_listen_ai(const struct addrinfo *ai, int backlog, bool dual, struct strbuf *err,
                          const char *spec)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int on = 1, off = 0;

    if (fd < 0) {
        sock_err(err, "%s: socket: %s", spec, strerror(errno));
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &off : &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        sock_err(err, "%s: bind: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        sock_err(err, "%s: listen: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sock_inet_listen(const char *spec, int backlog, struct strbuf *err)
{
    char host[256], port[64];
    struct addrinfo hints, *res = NULL, *ai;
    int rc, fd = -1;

    if (sock_split_spec(spec, host, sizeof(host), port, sizeof(port)) < 0) {
        sock_err(err, "%s: expected host:port, [address]:port or port", spec);
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (host[0] == 0 || strcmp(host, "*") == 0) {
        /* All addresses: dual-stack IPv6 when the host has it, else IPv4. */
        hints.ai_family = AF_INET6;
        if (getaddrinfo(NULL, port, &hints, &res) == 0) {
            for (ai = res; ai && fd < 0; ai = ai->ai_next)
                fd = sock_listen_ai(ai, backlog, true, err, spec);
            freeaddrinfo(res);
            if (fd >= 0)
                return fd;
        }
        hints.ai_family = AF_INET;
        rc = getaddrinfo(NULL, port, &hints, &res);
    } else {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host, port, &hints, &res);
    }
    if (rc != 0) {
        sock_err(err, "%s: %s", spec, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = sock_listen_ai(ai, backlog, false, err, spec);
    freeaddrinfo(res);
    return fd;
}

static int sock_unix_addr(const char *path, struct sockaddr_un *sun, struct strbuf *err)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        sock_err(err, "%s: socket path too long (max %zu bytes)", path, sizeof(sun->sun_path) - 1);
        return -1;
    }
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return 0;
}

int sock_unix_listen(const char *path, int backlog, int mode, struct strbuf *err)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    if (sock_unix_addr(path, &sun, err) < 0)
        return -1;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            sock_err(err, "%s: exists and is not a socket", path);
            return -1;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            sock_err(err, "%s: remove stale socket: %s", path, strerror(errno));
            return -1;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sock_err(err, "%s: socket: %s", path, strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        sock_err(err, "%s: bind: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, (mode_t)mode) < 0) {
        sock_err(err, "%s: chmod: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        sock_err(err, "%s: listen: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sock_fifo_listen(const char *path, int mode, struct strbuf *err)
{
    struct stat st;
    int fd;

    if (mkfifo(path, (mode_t)mode) < 0 && errno != EEXIST) {
        sock_err(err, "%s: mkfifo: %s", path, strerror(errno));
        return -1;
    }
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        sock_err(err, "%s: open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
        sock_err(err, "%s: exists and is not a fifo", path);
        close(fd);
        return -1;
    }
    if (fchmod(fd, (mode_t)mode) < 0) {
        sock_err(err, "%s: chmod: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static long long sock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Non-blocking connect, waiting at most timeout_ms; fd returned blocking. */
static int sock_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms,
                           const char *what, struct strbuf *err)
{
    long long deadline = sock_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (sock_set_nonblock(fd, true) < 0) {
        sock_err(err, "%s: fcntl: %s", what, strerror(errno));
        return -1;
    }
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR) {
            sock_err(err, "%s: connect: %s", what, strerror(errno));
            return -1;
        }
        for (;;) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            long long left = deadline - sock_now_ms();
            int n;

            if (timeout_ms > 0 && left <= 0) {
                sock_err(err, "%s: connect: timed out", what);
                return -1;
            }
            n = poll(&pfd, 1, timeout_ms > 0 ? (int)left : -1);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                sock_err(err, "%s: poll: %s", what, strerror(errno));
                return -1;
            }
            if (n > 0)
                break;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr != 0) {
            sock_err(err, "%s: connect: %s", what, strerror(soerr));
            return -1;
        }
    }
    if (sock_set_nonblock(fd, false) < 0) {
        sock_err(err, "%s: fcntl: %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

int sock_unix_connect(const char *path, int timeout_ms, struct strbuf *err)
{
    struct sockaddr_un sun;
    int fd;

    if (sock_unix_addr(path, &sun, err) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sock_err(err, "%s: socket: %s", path, strerror(errno));
        return -1;
    }
    if (sock_connect_fd(fd, (struct sockaddr *)&sun, sizeof(sun), timeout_ms, path, err) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int sock_inet_connect(const char *host, int port, int timeout_ms, struct strbuf *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char h[INET6_ADDRSTRLEN + 2];
    size_t hl = strlen(host);
    int fd;
    char what[300];

    snprintf(what, sizeof(what), "%s:%d", host, port);
    if (port < 1 || port > 65535) {
        sock_err(err, "%s: port out of range", what);
        return -1;
    }
    /* Accept "[v6]" as well as bare addresses. */
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host++;
        hl -= 2;
    }
    if (hl >= sizeof(h)) {
        sock_err(err, "%s: not a numeric address", what);
        return -1;
    }
    memcpy(h, host, hl);
    h[hl] = 0;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, h, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, h, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        len = sizeof(*sin6);
    } else {
        sock_err(err, "%s: not a numeric address", what);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sock_err(err, "%s: socket: %s", what, strerror(errno));
        return -1;
    }
    if (sock_connect_fd(fd, (struct sockaddr *)&ss, len, timeout_ms, what, err) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void sock_addr_text(const struct sockaddr *sa, char *buf, size_t buflen, int *port_r)
{
    int port = 0;

    if (buflen == 0)
        return;
    buf[0] = 0;
    if (sa == NULL) {
        snprintf(buf, buflen, "unknown");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        if (inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)buflen) == NULL)
            snprintf(buf, buflen, "unknown");
        port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            if (inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf, (socklen_t)buflen) == NULL)
                snprintf(buf, buflen, "unknown");
        } else if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)buflen) == NULL) {
            snprintf(buf, buflen, "unknown");
        }
        port = ntohs(sin6->sin6_port);
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(buf, buflen, "unix");
    } else {
        snprintf(buf, buflen, "unknown");
    }
    if (port_r)
        *port_r = port;
}

/* ------------------------------------------------------------ networks */

struct sock_net {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address, host bits cleared */
    int prefix;             /* bits */
};

struct sock_networks {
    struct sock_net *nets;
    size_t count;
};

static void sock_mask(unsigned char *addr, int bytes, int prefix)
{
    for (int i = 0; i < bytes; i++) {
        int bits = prefix - i * 8;

        if (bits >= 8)
            continue;
        if (bits <= 0)
            addr[i] = 0;
        else
            addr[i] &= (unsigned char)(0xff << (8 - bits));
    }
}

static int sock_parse_net(const char *text, struct sock_net *net)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    const char *h = text;
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    int maxbits;

    if (hl >= 2 && h[0] == '[') {
        if (h[hl - 1] != ']')
            return -1;
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    memset(net, 0, sizeof(*net));
    if (strchr(host, ':') == NULL && inet_pton(AF_INET, host, net->addr) == 1) {
        net->family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, host, net->addr) == 1) {
        net->family = AF_INET6;
        maxbits = 128;
        /* An IPv4-mapped network is an IPv4 network. */
        if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)net->addr)) {
            memmove(net->addr, net->addr + 12, 4);
            memset(net->addr + 4, 0, 12);
            net->family = AF_INET;
            maxbits = 32;
            if (slash) {
                /* /N counts the 96 mapped bits. */
                int p = 0;
                const char *s = slash + 1;

                if (!*s)
                    return -1;
                for (; *s; s++) {
                    if (!isdigit((unsigned char)*s) || p > 128)
                        return -1;
                    p = p * 10 + (*s - '0');
                }
                if (p < 96 || p > 128)
                    return -1;
                net->prefix = p - 96;
                sock_mask(net->addr, 4, net->prefix);
                return 0;
            }
        }
    } else {
        return -1;
    }
    net->prefix = maxbits;
    if (slash) {
        int p = 0;
        const char *s = slash + 1;

        if (!*s)
            return -1;
        for (; *s; s++) {
            if (!isdigit((unsigned char)*s) || p > maxbits)
                return -1;
            p = p * 10 + (*s - '0');
        }
        if (p > maxbits)
            return -1;
        net->prefix = p;
    }
    sock_mask(net->addr, net->family == AF_INET ? 4 : 16, net->prefix);
    return 0;
}

struct sock_networks *sock_networks_parse(const char *text, struct strbuf *err)
{
    size_t n;
    char **items = config_split_list(text ? text : "", &n);
    struct sock_networks *nets;

    if (n > SOCK_MAX_NETWORKS) {
        sock_err(err, "too many networks (more than %d)", SOCK_MAX_NETWORKS);
        config_list_free(&items);
        return NULL;
    }
    nets = mycalloc(1, sizeof(*nets));
    nets->nets = mycalloc(n ? n : 1, sizeof(*nets->nets));
    for (size_t i = 0; i < n; i++) {
        if (sock_parse_net(items[i], &nets->nets[i]) < 0) {
            sock_err(err, "invalid network \"%s\" (expected address[/bits] or [ipv6]/bits)",
                     items[i]);
            config_list_free(&items);
            sock_networks_free(&nets);
            return NULL;
        }
    }
    nets->count = n;
    config_list_free(&items);
    return nets;
}

static bool sock_prefix_equal(const unsigned char *a, const unsigned char *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;

    if (full && memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest) {
        unsigned char m = (unsigned char)(0xff << (8 - rest));

        if ((a[full] & m) != net[full])
            return false;
    }
    return true;
}

bool sock_networks_match(const struct sock_networks *n, const struct sockaddr *sa)
{
    unsigned char addr[16];
    int family;

    if (n == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(addr, &a6->s6_addr[12], 4);
            family = AF_INET;
        } else {
            memcpy(addr, a6->s6_addr, 16);
            family = AF_INET6;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n->count; i++)
        if (n->nets[i].family == family &&
            sock_prefix_equal(addr, n->nets[i].addr, n->nets[i].prefix))
            return true;
    return false;
}

void sock_networks_free(struct sock_networks **np)
{
    if (*np == NULL)
        return;
    myfree((*np)->nets);
    myfree(*np);
    *np = NULL;
}

bool sock_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}
