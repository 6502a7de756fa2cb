#include "stream.h"
#include "mymalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STREAM_BUFSIZE 16384

struct stream {
    int fd;
    bool own_fd;
    int timeout_ms;
    const struct stream_ops *ops;
    void *ctx;
    enum stream_result status;  /* read side: EOF, timeout, error */
    enum stream_result wstatus; /* write side: timeout, error */
    /* STREAM_BUFSIZE each, allocated at first use and given back by
     * stream_release_buffers while empty (an idle IMAP session). */
    char *rbuf;
    size_t rpos, rlen;
    char *wbuf;
    size_t wlen;
    unsigned long long nin, nout;
    bool poll_first; /* the last read found nothing: wait before the next one */
};

static ssize_t plain_read(void *ctx, int fd, void *buf, size_t len, bool *want_write)
{
    (void)ctx;
    *want_write = false;
    return read(fd, buf, len);
}

static ssize_t plain_write(void *ctx, int fd, const void *buf, size_t len, bool *want_read)
{
    (void)ctx;
    *want_read = false;
    return send(fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t plain_write_file(void *ctx, int fd, const void *buf, size_t len, bool *want_read)
{
    (void)ctx;
    *want_read = false;
    return write(fd, buf, len);
}

static const struct stream_ops plain_ops = {plain_read, plain_write, NULL};
static const struct stream_ops plain_file_ops = {plain_read, plain_write_file, NULL};

struct stream *stream_sockopen(int fd)
{
    struct stream *s = mycalloc(1, sizeof(*s));
    s->fd = fd;
    s->own_fd = true;
    s->timeout_ms = 300 * 1000;
    s->ops = &plain_ops;
    return s;
}

struct stream *stream_fdopen(int fd)
{
    struct stream *s = stream_sockopen(fd);
    /* send(MSG_NOSIGNAL) only works on sockets; pipes and files use write(). */
    int type;
    socklen_t tl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        s->ops = &plain_file_ops;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return s;
}

void stream_free(struct stream **sp)
{
    struct stream *s = *sp;
    if (s == NULL)
        return;
    if (s->own_fd && s->fd >= 0)
        close(s->fd);
    myfree(s->rbuf);
    myfree(s->wbuf);
    myfree(s);
    *sp = NULL;
}

int stream_detach_fd(struct stream *s)
{
    s->own_fd = false;
    return s->fd;
}

void stream_set_timeout(struct stream *s, int timeout_ms)
{
    s->timeout_ms = timeout_ms;
}

void stream_set_ops(struct stream *s, const struct stream_ops *ops, void *ctx)
{
    s->ops = ops ? ops : &plain_ops;
    s->ctx = ctx;
}

int stream_fd(const struct stream *s)
{
    return s->fd;
}

enum stream_result stream_status(const struct stream *s)
{
    return s->status != STREAM_OK ? s->status : s->wstatus;
}

unsigned long long stream_bytes_in(const struct stream *s)
{
    return s->nin;
}

unsigned long long stream_bytes_out(const struct stream *s)
{
    return s->nout;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd readiness until deadline; STREAM_OK or STREAM_TIMEOUT/ERROR. */
static enum stream_result stream_wait(struct stream *s, short events, long long deadline)
{
    for (;;) {
        int wait = -1;
        if (s->timeout_ms > 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return STREAM_TIMEOUT;
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = s->fd, .events = events};
        int n = poll(&pfd, 1, wait);
        if (n > 0)
            return STREAM_OK;
        if (n == 0)
            return STREAM_TIMEOUT;
        if (errno != EINTR)
            return STREAM_ERROR;
    }
}

/* Fill the read buffer (it must be empty or compacted). */
static enum stream_result stream_fill(struct stream *s)
{
    if (s->status != STREAM_OK)
        return s->status;
    if (s->rbuf == NULL)
        s->rbuf = mymalloc(STREAM_BUFSIZE);
    if (s->rpos > 0 && s->rpos == s->rlen)
        s->rpos = s->rlen = 0;
    if (s->rpos > 0) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
        s->rlen -= s->rpos;
        s->rpos = 0;
    }
    if (s->rlen == STREAM_BUFSIZE)
        return STREAM_OK;
    long long deadline = now_ms() + s->timeout_ms;
    /*
     * A peer that waits for each reply (most SMTP clients) has sent nothing
     * yet when we come back for its next command: a read would only say
     * EAGAIN. Once that happened on a plain socket, the stream waits first
     * (poll returns at once when data is there: a pipelining peer pays one
     * poll per read, and reads seldom). Not under TLS, whose library may
     * hold decrypted bytes that poll cannot see.
     */
    if (s->poll_first && s->ops == &plain_ops) {
        enum stream_result r = stream_wait(s, POLLIN, deadline);
        if (r != STREAM_OK)
            return s->status = r;
    }
    for (;;) {
        bool want_write = false;
        ssize_t n =
            s->ops->read(s->ctx, s->fd, s->rbuf + s->rlen, STREAM_BUFSIZE - s->rlen, &want_write);
        if (n > 0) {
            s->rlen += (size_t)n;
            s->nin += (unsigned long long)n;
            return STREAM_OK;
        }
        if (n == 0)
            return s->status = STREAM_EOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return s->status = STREAM_ERROR;
        s->poll_first = true;
        enum stream_result r = stream_wait(s, want_write ? POLLOUT : POLLIN, deadline);
        if (r != STREAM_OK)
            return s->status = r;
    }
}

enum stream_result stream_read_line(struct stream *s, struct strbuf *line, size_t max)
{
    strbuf_reset(line);
    for (;;) {
        size_t avail = s->rlen - s->rpos;
        if (avail > 0) {
            size_t room = max - line->len;
            size_t take = avail < room ? avail : room;
            char *start = s->rbuf + s->rpos;
            char *lf = memchr(start, '\n', take);
            if (lf) {
                size_t n = (size_t)(lf - start) + 1;
                strbuf_append(line, start, n);
                s->rpos += n;
                return STREAM_OK;
            }
            strbuf_append(line, start, take);
            s->rpos += take;
            if (line->len >= max)
                return STREAM_PARTIAL;
        }
        enum stream_result r = stream_fill(s);
        if (r != STREAM_OK)
            return r;
    }
}

enum stream_result stream_skip_line(struct stream *s)
{
    for (;;) {
        char *start = s->rpos < s->rlen ? s->rbuf + s->rpos : NULL;
        char *lf = start ? memchr(start, '\n', s->rlen - s->rpos) : NULL;
        if (lf) {
            s->rpos += (size_t)(lf - start) + 1;
            return STREAM_OK;
        }
        s->rpos = s->rlen;
        enum stream_result r = stream_fill(s);
        if (r != STREAM_OK)
            return r;
    }
}

ssize_t stream_read(struct stream *s, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    if (s->rpos == s->rlen) {
        enum stream_result r = stream_fill(s);
        if (r != STREAM_OK)
            return r;
    }
    size_t avail = s->rlen - s->rpos;
    size_t n = avail < len ? avail : len;
    memcpy(buf, s->rbuf + s->rpos, n);
    s->rpos += n;
    return (ssize_t)n;
}

enum stream_result stream_read_exact(struct stream *s, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = stream_read(s, p, len);
        if (n <= 0)
            return n == 0 ? STREAM_EOF : (enum stream_result)n;
        p += n;
        len -= (size_t)n;
    }
    return STREAM_OK;
}

size_t stream_buffered(const struct stream *s)
{
    size_t n = s->rlen - s->rpos;
    if (s->ops->pending)
        n += s->ops->pending(s->ctx);
    return n;
}

void stream_discard_input(struct stream *s)
{
    s->rpos = s->rlen = 0;
}

int stream_flush(struct stream *s)
{
    /* A read timeout or EOF still lets us say goodbye (421 after idle time). */
    if (s->wstatus != STREAM_OK)
        return -1;
    size_t off = 0;
    long long deadline = now_ms() + s->timeout_ms;
    while (off < s->wlen) {
        bool want_read = false;
        ssize_t n = s->ops->write(s->ctx, s->fd, s->wbuf + off, s->wlen - off, &want_read);
        if (n > 0) {
            off += (size_t)n;
            s->nout += (unsigned long long)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            enum stream_result r = stream_wait(s, want_read ? POLLIN : POLLOUT, deadline);
            if (r == STREAM_OK)
                continue;
            s->wstatus = r;
        } else {
            s->wstatus = STREAM_ERROR;
        }
        s->wlen = 0;
        return -1;
    }
    s->wlen = 0;
    return 0;
}

int stream_write(struct stream *s, const void *data, size_t len)
{
    const char *p = data;
    if (len > 0 && s->wbuf == NULL)
        s->wbuf = mymalloc(STREAM_BUFSIZE);
    while (len > 0) {
        if (s->wlen == STREAM_BUFSIZE && stream_flush(s) < 0)
            return -1;
        size_t room = STREAM_BUFSIZE - s->wlen;
        size_t n = len < room ? len : room;
        memcpy(s->wbuf + s->wlen, p, n);
        s->wlen += n;
        p += n;
        len -= n;
    }
    return s->wstatus == STREAM_OK ? 0 : -1;
}

int stream_puts(struct stream *s, const char *str)
{
    return stream_write(s, str, strlen(str));
}

int stream_printf(struct stream *s, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg_panic("stream_printf: bad format");
    if ((size_t)n < sizeof(tmp))
        return stream_write(s, tmp, (size_t)n);
    struct strbuf sb = STRBUF_INIT;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    int r = stream_write(s, sb.data, sb.len);
    strbuf_release(&sb);
    return r;
}

size_t stream_unflushed(const struct stream *s)
{
    return s->wlen;
}

void stream_release_buffers(struct stream *s)
{
    if (s->rbuf != NULL && s->rpos == s->rlen) {
        myfree(s->rbuf);
        s->rbuf = NULL;
        s->rpos = s->rlen = 0;
    }
    if (s->wbuf != NULL && s->wlen == 0) {
        myfree(s->wbuf);
        s->wbuf = NULL;
    }
}
