/*
 * queue_file - queue file format version 1 (see queue_file.h and
 * docs/architecture.md "Queue file format").
 *
 *   "TEGAMIQ1\n" { type(1) length(4, big-endian) data } ... 'X' 0
 *   except 'M': type(1) length(8, big-endian) content
 *
 * The writer buffers up to QF_WRITE_BUF bytes per write(2) and remembers the
 * first I/O error (reported by qf_writer_finish). The reader looks at the
 * file through pread(2) and a small window, never reads the content, checks
 * every length against the file size and QF_MAX_RECORD, and rejects the
 * whole file on the first problem.
 */
#include "queue_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"

#define QF_MAGIC "TEGAMIQ1\n"
#define QF_MAGIC_LEN 9
#define QF_WRITE_BUF 65536
#define QF_READ_WINDOW 4096 /* the envelope records are small; the content is never read */
#define QF_COPY_BUF 65536

/* ---- writing ---- */

struct qf_writer {
    int fd;
    char *buf;
    size_t blen;
    off_t flushed;       /* file offset of buf[0] */
    int err;             /* first errno seen, 0 if none */
    const char *errtext; /* a non-I/O failure (record too large...) */
    int state;           /* 0 before content, 1 in content, 2 after */
    off_t mlen_offset;
    size_t content_size;
    int n_arrival, n_sender, n_content;
    size_t nrcpts;
};

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void w_write_all(struct qf_writer *w, const char *data, size_t len)
{
    while (len > 0 && w->err == 0) {
        ssize_t n = write(w->fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            w->err = errno;
            return;
        }
        if (n == 0) {
            w->err = ENOSPC;
            return;
        }
        data += n;
        len -= (size_t)n;
        w->flushed += n;
    }
}

static void w_flush(struct qf_writer *w)
{
    if (w->blen > 0 && w->err == 0)
        w_write_all(w, w->buf, w->blen);
    w->blen = 0;
}

static void w_put(struct qf_writer *w, const void *data, size_t len)
{
    if (w->err || w->errtext)
        return;
    if (w->blen + len > QF_WRITE_BUF)
        w_flush(w);
    if (len >= QF_WRITE_BUF) {
        w_write_all(w, data, len);
        return;
    }
    memcpy(w->buf + w->blen, data, len);
    w->blen += len;
}

static bool w_header(struct qf_writer *w, char type, size_t len)
{
    if (len > QF_MAX_RECORD) {
        if (w->errtext == NULL)
            w->errtext = "envelope record too large";
        return false;
    }
    unsigned char h[5];
    h[0] = (unsigned char)type;
    put_be32(h + 1, (uint32_t)len);
    w_put(w, h, sizeof(h));
    return true;
}

static void w_record(struct qf_writer *w, char type, const char *data, size_t len)
{
    if (w_header(w, type, len))
        w_put(w, data, len);
}

struct qf_writer *qf_writer_new(int fd)
{
    struct qf_writer *w = mycalloc(1, sizeof(*w));
    w->fd = fd;
    w->buf = mymalloc(QF_WRITE_BUF);
    w_put(w, QF_MAGIC, QF_MAGIC_LEN);
    /* The delay-warning mark: qmgr flips it in place once the warning is queued. */
    w_record(w, 'W', "P", 1);
    return w;
}

void qf_writer_sender(struct qf_writer *w, const char *sender)
{
    w->n_sender++;
    w_record(w, 'S', sender, strlen(sender));
}

void qf_writer_arrival(struct qf_writer *w, time_t t)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)(t < 0 ? 0 : t));
    w->n_arrival++;
    w_record(w, 'T', buf, (size_t)n);
}

void qf_writer_client(struct qf_writer *w, const char *name, const char *addr, const char *helo,
                      const char *protocol)
{
    if (!name && !addr && !helo && !protocol)
        return;
    const char *f[4] = {name, addr, helo, protocol};
    size_t total = 3;
    for (int i = 0; i < 4; i++)
        total += f[i] ? strlen(f[i]) : 0;
    if (!w_header(w, 'C', total))
        return;
    for (int i = 0; i < 4; i++) {
        if (f[i])
            w_put(w, f[i], strlen(f[i]));
        if (i < 3)
            w_put(w, "", 1);
    }
}

void qf_writer_sasl_user(struct qf_writer *w, const char *user)
{
    if (user)
        w_record(w, 'A', user, strlen(user));
}

void qf_writer_dsn(struct qf_writer *w, const char *envid, int ret)
{
    if (envid == NULL && ret == 0)
        return;
    if (ret < 0 || ret > 2)
        ret = 0;
    size_t elen = envid ? strlen(envid) : 0;
    if (!w_header(w, 'E', elen + 2))
        return;
    char r[2] = {(char)('0' + ret), 0};
    w_put(w, r, 2);
    w_put(w, envid ? envid : "", elen);
}

void qf_writer_flags(struct qf_writer *w, bool smtputf8, bool is_bounce)
{
    char buf[4];
    int n = snprintf(buf, sizeof(buf), "%u", (smtputf8 ? 1u : 0u) | (is_bounce ? 2u : 0u));
    w_record(w, 'F', buf, (size_t)n);
}

void qf_writer_recipient(struct qf_writer *w, const char *address, const char *orig,
                         unsigned notify)
{
    if (++w->nrcpts > QF_MAX_RECIPIENTS) {
        if (w->errtext == NULL)
            w->errtext = "too many recipients";
        return;
    }
    size_t alen = strlen(address), olen = orig ? strlen(orig) : 0;
    if (!w_header(w, 'R', 2 + alen + 1 + olen))
        return;
    char sn[2] = {QF_RCPT_PENDING, (char)(notify & 0x0f)};
    w_put(w, sn, 2);
    w_put(w, address, alen + 1); /* with its NUL separator */
    w_put(w, orig ? orig : "", olen);
}

void qf_writer_content_begin(struct qf_writer *w)
{
    if (w->state != 0)
        msg_panic("qf_writer_content_begin: content already written");
    unsigned char h[9] = {'M'};
    if (w->blen + sizeof(h) > QF_WRITE_BUF)
        w_flush(w);
    w->mlen_offset = w->flushed + (off_t)w->blen + 1;
    w_put(w, h, sizeof(h));
    w->state = 1;
    w->n_content++;
}

void qf_writer_content(struct qf_writer *w, const void *data, size_t len)
{
    if (w->state != 1)
        msg_panic("qf_writer_content: not inside content");
    w->content_size += len;
    w_put(w, data, len);
}

void qf_writer_content_end(struct qf_writer *w)
{
    if (w->state != 1)
        msg_panic("qf_writer_content_end: not inside content");
    w->state = 2;
    if (w->err)
        return;
    unsigned char len8[8];
    put_be64(len8, (uint64_t)w->content_size);
    if (w->mlen_offset >= w->flushed && w->mlen_offset + 8 <= w->flushed + (off_t)w->blen) {
        /* The placeholder has not been written yet: patch the buffer. */
        memcpy(w->buf + (w->mlen_offset - w->flushed), len8, 8);
        return;
    }
    ssize_t n;
    do
        n = pwrite(w->fd, len8, 8, w->mlen_offset);
    while (n < 0 && errno == EINTR);
    if (n != 8 && w->err == 0)
        w->err = n < 0 ? errno : EIO;
}

size_t qf_writer_content_size(const struct qf_writer *w)
{
    return w->content_size;
}

static void qf_writer_free(struct qf_writer **wp)
{
    struct qf_writer *w = *wp;
    if (w == NULL)
        return;
    myfree(w->buf);
    myfree(w);
    *wp = NULL;
}

int qf_writer_finish(struct qf_writer **wp, struct strbuf *err)
{
    struct qf_writer *w = *wp;
    const char *problem = NULL;
    if (w->state == 1)
        problem = "content not ended";
    else if (w->n_arrival != 1 || w->n_sender != 1 || w->n_content != 1)
        problem = "arrival time, sender and content must each be written once";
    else if (w->errtext)
        problem = w->errtext;
    if (problem == NULL) {
        w_header(w, 'X', 0);
        w_flush(w);
    }
    int rc = 0;
    if (problem) {
        if (err)
            strbuf_printf(err, "queue file: %s", problem);
        rc = -1;
    } else if (w->err) {
        if (err)
            strbuf_printf(err, "queue file write: %s", strerror(w->err));
        rc = -1;
    }
    qf_writer_free(wp);
    return rc;
}

void qf_writer_abort(struct qf_writer **wp)
{
    qf_writer_free(wp);
}

/* ---- reading ---- */

struct qf_src {
    int fd;          /* -1 for memory */
    const char *mem; /* memory source */
    uint64_t size;
    char *win;
    uint64_t win_off;
    size_t win_len;
    int io_errno;
};

/* Copy n bytes at off; false when outside the file or on an I/O error. */
static bool src_get(struct qf_src *s, uint64_t off, void *buf, size_t n)
{
    if (off > s->size || n > s->size - off)
        return false;
    if (s->fd < 0) {
        memcpy(buf, s->mem + off, n);
        return true;
    }
    if (s->win && off >= s->win_off && off - s->win_off <= s->win_len &&
        n <= s->win_len - (off - s->win_off)) {
        memcpy(buf, s->win + (off - s->win_off), n);
        return true;
    }
    char *dst = buf;
    size_t want = n;
    if (n <= QF_READ_WINDOW) {
        if (s->win == NULL)
            s->win = mymalloc(QF_READ_WINDOW);
        dst = s->win;
        want = s->size - off < QF_READ_WINDOW ? (size_t)(s->size - off) : QF_READ_WINDOW;
        s->win_len = 0;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(s->fd, dst + got, want - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            s->io_errno = errno;
            return false;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got < n)
        return false; /* the file shrank under us */
    if (dst == s->win) {
        s->win_off = off;
        s->win_len = got;
        memcpy(buf, s->win, n);
    }
    return true;
}

static bool bytes_clean(const char *p, size_t len, bool nul_ok)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\r' || p[i] == '\n' || (p[i] == 0 && !nul_ok))
            return false;
    }
    return true;
}

/* Decimal without sign or leading zeros, at most max. */
static bool parse_decimal(const char *p, size_t len, unsigned long long max,
                          unsigned long long *v_r)
{
    if (len == 0 || len > 19 || (len > 1 && p[0] == '0'))
        return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > max)
        return false;
    *v_r = v;
    return true;
}

static char *dup_or_null(const char *p, size_t len)
{
    return len ? mystrndup(p, len) : NULL;
}

static int qf_parse_src(struct qf_src *s, struct qf_message *m, struct strbuf *err)
{
    memset(m, 0, sizeof(*m));
    const char *why = NULL;
    uint64_t pos = 0;
    char *data = NULL;
    size_t rcap = 0;
    bool seen_c = false, seen_a = false, seen_e = false, seen_f = false, seen_t = false;
    bool seen_m = false, seen_w = false;
    char magic[QF_MAGIC_LEN];
    if (!src_get(s, 0, magic, QF_MAGIC_LEN)) {
        why = "file too short for the header";
        goto fail;
    }
    if (memcmp(magic, QF_MAGIC, QF_MAGIC_LEN) != 0) {
        why = "bad magic (not a version 1 queue file)";
        goto fail;
    }
    pos = QF_MAGIC_LEN;
    for (;;) {
        unsigned char type;
        if (pos == s->size) {
            why = "end record missing (truncated file)";
            goto fail;
        }
        if (!src_get(s, pos, &type, 1)) {
            why = "read error";
            goto fail;
        }
        if (type == 'M') {
            unsigned char l8[8];
            if (seen_m) {
                why = "duplicate content record";
                goto fail;
            }
            if (!src_get(s, pos + 1, l8, 8)) {
                why = "truncated content record header";
                goto fail;
            }
            uint64_t clen = get_be64(l8);
            if (clen > s->size - (pos + 9) || clen > SIZE_MAX) {
                why = "content record extends beyond the end of the file";
                goto fail;
            }
            seen_m = true;
            m->content_offset = (off_t)(pos + 9);
            m->content_size = (size_t)clen;
            pos += 9 + clen;
            continue;
        }
        unsigned char l4[4];
        if (!src_get(s, pos + 1, l4, 4)) {
            why = "truncated record header";
            goto fail;
        }
        uint32_t len = get_be32(l4);
        if (len > QF_MAX_RECORD) {
            why = "record too large";
            goto fail;
        }
        uint64_t dpos = pos + 5;
        if (len > s->size - dpos) {
            why = "record extends beyond the end of the file";
            goto fail;
        }
        myfree(data);
        data = mymalloc((size_t)len + 1);
        if (!src_get(s, dpos, data, len)) {
            why = "read error";
            goto fail;
        }
        data[len] = 0;
        unsigned long long v;
        switch (type) {
        case 'X':
            if (len != 0) {
                why = "end record is not empty";
                goto fail;
            }
            /*
             * Bytes after the end record are the tail of an earlier, longer
             * message in a reused file (queue_commit): never read.
             */
            if (!seen_t || m->sender == NULL || !seen_m) {
                why = !seen_t             ? "arrival time missing"
                      : m->sender == NULL ? "sender missing"
                                          : "content missing";
                goto fail;
            }
            myfree(data);
            myfree(s->win);
            s->win = NULL;
            return 0;
        case 'T':
            if (seen_t) {
                why = "duplicate arrival time";
                goto fail;
            }
            if (!parse_decimal(data, len, (unsigned long long)INT64_MAX / 2, &v)) {
                why = "bad arrival time";
                goto fail;
            }
            m->arrival = (time_t)v;
            seen_t = true;
            break;
        case 'S':
            if (m->sender) {
                why = "duplicate sender";
                goto fail;
            }
            if (!bytes_clean(data, len, false)) {
                why = "bad character in sender";
                goto fail;
            }
            m->sender = mystrndup(data, len);
            break;
        case 'C': {
            if (seen_c) {
                why = "duplicate client record";
                goto fail;
            }
            seen_c = true;
            const char *f[4];
            size_t fl[4];
            size_t k = 0, start = 0;
            for (size_t i = 0; i <= len; i++) {
                if (i == len || data[i] == 0) {
                    if (k == 4) {
                        why = "client record has too many fields";
                        goto fail;
                    }
                    f[k] = data + start;
                    fl[k++] = i - start;
                    start = i + 1;
                }
            }
            if (k != 4 || !bytes_clean(data, len, true)) {
                why = "malformed client record";
                goto fail;
            }
            m->client_name = dup_or_null(f[0], fl[0]);
            m->client_addr = dup_or_null(f[1], fl[1]);
            m->helo = dup_or_null(f[2], fl[2]);
            m->protocol = dup_or_null(f[3], fl[3]);
            break;
        }
        case 'A':
            if (seen_a) {
                why = "duplicate SASL user record";
                goto fail;
            }
            seen_a = true;
            if (!bytes_clean(data, len, false)) {
                why = "bad character in SASL user";
                goto fail;
            }
            m->sasl_user = dup_or_null(data, len);
            break;
        case 'E':
            if (seen_e) {
                why = "duplicate DSN record";
                goto fail;
            }
            seen_e = true;
            if (len < 2 || data[0] < '0' || data[0] > '2' || data[1] != 0 ||
                !bytes_clean(data + 2, len - 2, false)) {
                why = "malformed DSN record";
                goto fail;
            }
            m->dsn_ret = data[0] - '0';
            m->envid = dup_or_null(data + 2, len - 2);
            break;
        case 'F':
            if (seen_f) {
                why = "duplicate flags record";
                goto fail;
            }
            seen_f = true;
            if (!parse_decimal(data, len, 3, &v)) {
                why = "bad flags record";
                goto fail;
            }
            m->smtputf8 = (v & 1) != 0;
            m->is_bounce = (v & 2) != 0;
            break;
        case 'W':
            if (seen_w) {
                why = "duplicate delay warning record";
                goto fail;
            }
            seen_w = true;
            if (len != 1 || (data[0] != QF_RCPT_PENDING && data[0] != QF_RCPT_DONE)) {
                why = "malformed delay warning record";
                goto fail;
            }
            m->warn_status = data[0];
            m->warn_offset = (off_t)dpos;
            break;
        case 'R': {
            if (m->nrcpts >= QF_MAX_RECIPIENTS) {
                why = "too many recipients";
                goto fail;
            }
            if (len < 3 || (data[0] != QF_RCPT_PENDING && data[0] != QF_RCPT_DONE) ||
                (unsigned char)data[1] > 0x0f) {
                why = "malformed recipient record";
                goto fail;
            }
            const char *addr = data + 2;
            size_t rest = len - 2;
            const char *nul = memchr(addr, 0, rest);
            if (nul == NULL || nul == addr || !bytes_clean(addr, rest, true) ||
                memchr(nul + 1, 0, rest - (size_t)(nul - addr) - 1) != NULL) {
                why = "malformed recipient record";
                goto fail;
            }
            if (m->nrcpts == rcap) {
                rcap = rcap ? rcap * 2 : 8;
                m->rcpts = myreallocarray(m->rcpts, rcap, sizeof(*m->rcpts));
            }
            struct qf_recipient *r = &m->rcpts[m->nrcpts++];
            size_t alen = (size_t)(nul - addr);
            r->address = mystrndup(addr, alen);
            r->orig = dup_or_null(nul + 1, rest - alen - 1);
            r->notify = (unsigned char)data[1];
            r->status = data[0];
            r->status_offset = (off_t)dpos;
            break;
        }
        default:
            why = "unknown record type";
            goto fail;
        }
        pos = dpos + len;
    }
fail:
    if (err) {
        if (s->io_errno)
            strbuf_printf(err, "queue file offset %llu: %s: %s", (unsigned long long)pos, why,
                          strerror(s->io_errno));
        else
            strbuf_printf(err, "queue file offset %llu: %s", (unsigned long long)pos, why);
    }
    myfree(data);
    myfree(s->win);
    s->win = NULL;
    qf_message_release(m);
    return -1;
}

int qf_read(int fd, struct qf_message *msg, struct strbuf *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        memset(msg, 0, sizeof(*msg));
        if (err)
            strbuf_printf(err, "fstat: %s", strerror(errno));
        return -1;
    }
    return qf_read_st(fd, &st, msg, err);
}

int qf_read_st(int fd, const struct stat *st, struct qf_message *msg, struct strbuf *err)
{
    if (!S_ISREG(st->st_mode)) {
        memset(msg, 0, sizeof(*msg));
        if (err)
            strbuf_puts(err, "queue file is not a regular file");
        return -1;
    }
    struct qf_src s = {.fd = fd, .size = (uint64_t)st->st_size};
    return qf_parse_src(&s, msg, err);
}

int qf_parse(const char *data, size_t len, struct qf_message *msg, struct strbuf *err)
{
    struct qf_src s = {.fd = -1, .mem = data, .size = len};
    return qf_parse_src(&s, msg, err);
}

void qf_message_release(struct qf_message *m)
{
    myfree(m->sender);
    myfree(m->client_name);
    myfree(m->client_addr);
    myfree(m->helo);
    myfree(m->protocol);
    myfree(m->sasl_user);
    myfree(m->envid);
    for (size_t i = 0; i < m->nrcpts; i++) {
        myfree(m->rcpts[i].address);
        myfree(m->rcpts[i].orig);
    }
    myfree(m->rcpts);
    memset(m, 0, sizeof(*m));
}

int qf_mark_warned(int fd, struct qf_message *msg)
{
    if (msg->warn_status == 0) {
        errno = ENOTSUP;
        return -1;
    }
    char status = QF_RCPT_DONE;
    ssize_t n;
    do
        n = pwrite(fd, &status, 1, msg->warn_offset);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        if (n == 0)
            errno = EIO;
        return -1;
    }
    msg->warn_status = QF_RCPT_DONE;
    return 0;
}

int qf_mark_recipient(int fd, const struct qf_recipient *r, char status)
{
    if (status != QF_RCPT_PENDING && status != QF_RCPT_DONE) {
        errno = EINVAL;
        return -1;
    }
    ssize_t n;
    do
        n = pwrite(fd, &status, 1, r->status_offset);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        if (n == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

size_t qf_pending(const struct qf_message *msg)
{
    size_t n = 0;
    for (size_t i = 0; i < msg->nrcpts; i++)
        if (msg->rcpts[i].status == QF_RCPT_PENDING)
            n++;
    return n;
}

int qf_copy_content(int fd, const struct qf_message *msg,
                    int (*sink)(void *ctx, const char *buf, size_t len), void *ctx)
{
    char *buf = mymalloc(QF_COPY_BUF);
    off_t off = msg->content_offset;
    size_t left = msg->content_size;
    int rc = 0;
    while (left > 0) {
        size_t want = left < QF_COPY_BUF ? left : QF_COPY_BUF;
        ssize_t n = pread(fd, buf, want, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        if (n == 0) {
            errno = EIO; /* the file is shorter than its content record says */
            rc = -1;
            break;
        }
        if (sink(ctx, buf, (size_t)n) != 0) {
            rc = -1;
            break;
        }
        off += n;
        left -= (size_t)n;
    }
    myfree(buf);
    return rc;
}
