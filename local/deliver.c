/*
 * deliver - what local does with the bytes of one message: read its header
 * block once per request (loop detection), write a copy into a Maildir, or
 * re-submit it to the queue for forwarded (remote) alias targets.
 *
 * Speed matters here (>= 1000 messages/s end to end): per recipient there is
 * one maildir_deliver (one file fsync + one directory fsync) and nothing
 * else that touches the disk; Maildirs known to exist are remembered so
 * maildir_create runs once per mailbox per process.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "maildir.h"
#include "esmtp_params.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "queue_file.h"

#define KNOWN_MAILDIRS_MAX 512
#define COPY_CHUNK 65536

void local_sanitize(struct strbuf *out, const char *in)
{
    strbuf_reset(out);
    for (const unsigned char *p = (const unsigned char *)in; *p; p++)
        strbuf_putc(out, (*p < 0x20 || *p == 0x7f) ? '?' : *p);
}

/* pread exactly len bytes (fewer only at EOF). Returns bytes read or -1. */
static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void headers_add_delivered_to(struct local_headers *h, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t' || *v == '\n'))
        v++, len--;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\n'))
        len--;
    if (len >= 2 && v[0] == '<' && v[len - 1] == '>')
        v++, len -= 2;
    char *copy = mymalloc(len + 1);
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (c == '\n' || c == '\t')
            continue; /* unfold */
        copy[j++] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
    }
    copy[j] = 0;
    h->delivered_to =
        myreallocarray(h->delivered_to, h->ndelivered_to + 1, sizeof(*h->delivered_to));
    h->delivered_to[h->ndelivered_to++] = copy;
}

static bool header_is(const char *line, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    return len > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0;
}

int local_headers_read(int fd, off_t offset, size_t size, struct local_headers *h)
{
    size_t want = size < local_params.header_scan_limit ? size : local_params.header_scan_limit;
    char *buf = mymalloc(want + 1);
    ssize_t got = pread_full(fd, buf, want, offset);

    memset(h, 0, sizeof(*h));
    if (got < 0) {
        int saved = errno;
        myfree(buf);
        errno = saved;
        return -1;
    }
    size_t n = (size_t)got;
    buf[n] = 0;

    /* The header block ends at the first empty line; else use complete lines only. */
    size_t hlen = 0;
    if (n > 0 && buf[0] != '\n') {
        char *blank = memmem(buf, n, "\n\n", 2);
        if (blank != NULL) {
            hlen = (size_t)(blank - buf) + 1;
        } else {
            char *last = memrchr(buf, '\n', n);
            hlen = last ? (size_t)(last - buf) + 1 : 0;
        }
    }

    /* Walk logical headers: a line plus its continuation lines. */
    size_t pos = 0;
    while (pos < hlen) {
        size_t start = pos;
        char *nl = memchr(buf + pos, '\n', hlen - pos);
        pos = (size_t)(nl - buf) + 1;
        while (pos < hlen && (buf[pos] == ' ' || buf[pos] == '\t')) {
            nl = memchr(buf + pos, '\n', hlen - pos);
            pos = (size_t)(nl - buf) + 1;
        }
        const char *line = buf + start;
        size_t len = pos - start;
        if (header_is(line, len, "Received")) {
            h->received++;
        } else if (header_is(line, len, "Delivered-To")) {
            headers_add_delivered_to(h, line + 13, len - 13);
        }
    }
    myfree(buf);
    return 0;
}

void local_headers_release(struct local_headers *h)
{
    for (size_t i = 0; i < h->ndelivered_to; i++)
        myfree(h->delivered_to[i]);
    myfree(h->delivered_to);
    memset(h, 0, sizeof(*h));
}

bool local_headers_delivered_to(const struct local_headers *h, const char *address)
{
    for (size_t i = 0; i < h->ndelivered_to; i++)
        if (strcasecmp(h->delivered_to[i], address) == 0)
            return true;
    return false;
}

/* Maildirs this process has created or delivered to. */
static char *known[KNOWN_MAILDIRS_MAX];
static size_t nknown;

static bool known_find(const char *path, size_t *idx_r)
{
    for (size_t i = 0; i < nknown; i++)
        if (strcmp(known[i], path) == 0) {
            if (idx_r)
                *idx_r = i;
            return true;
        }
    return false;
}

static void known_add(const char *path)
{
    if (nknown == KNOWN_MAILDIRS_MAX) {
        for (size_t i = 0; i < nknown; i++)
            myfree(known[i]);
        nknown = 0;
    }
    known[nknown++] = mystrdup(path);
}

static void known_forget(const char *path)
{
    size_t i;
    if (known_find(path, &i)) {
        myfree(known[i]);
        known[i] = known[--nknown];
    }
}

static const char *errno_dsn(int err)
{
    switch (err) {
    case ENOSPC:
        return "4.3.1"; /* mail system full */
#ifdef EDQUOT
    case EDQUOT:
        return "4.2.2"; /* mailbox full */
#endif
    default:
        return "4.2.0";
    }
}

int local_deliver_maildir(const char *maildir, const char *sender, const char *recipient, int fd,
                          off_t offset, size_t size, struct strbuf *name_r, const char **dsn_r,
                          struct strbuf *err)
{
    struct strbuf prefix = STRBUF_INIT, s = STRBUF_INIT, r = STRBUF_INIT;
    int ret = -1;

    local_sanitize(&s, sender);
    local_sanitize(&r, recipient);
    strbuf_printf(&prefix, "Return-Path: <%s>\nDelivered-To: %s\n", s.data, r.data);

    for (int attempt = 0; attempt < 2; attempt++) {
        if (!known_find(maildir, NULL)) {
            strbuf_reset(err);
            errno = 0;
            if (maildir_create(maildir, err) < 0) {
                *dsn_r = errno_dsn(errno);
                goto out;
            }
            known_add(maildir);
            attempt = 1; /* freshly created: no second try */
        }
        strbuf_reset(err);
        errno = 0;
        if (maildir_deliver(maildir, prefix.data, prefix.len, fd, offset, size, name_r, err) == 0) {
            ret = 0;
            goto out;
        }
        *dsn_r = errno_dsn(errno);
        /* The Maildir may have been removed behind our back: recreate once. */
        known_forget(maildir);
    }
out:
    strbuf_release(&prefix);
    strbuf_release(&s);
    strbuf_release(&r);
    return ret;
}

int local_forward(const char *sender, const char *delivered_to, const char *const *addrs, size_t n,
                  const char *orig, int fd, off_t offset, size_t size, struct strbuf *id_r,
                  struct strbuf *err)
{
    struct queue_new qn;
    struct strbuf dt = STRBUF_INIT, hdr = STRBUF_INIT;
    char *buf = NULL;

    if (queue_create(QUEUE_INCOMING, &qn, err) < 0)
        return -1;
    struct qf_writer *w = qf_writer_new(qn.fd);
    qf_writer_arrival(w, time(NULL));
    qf_writer_sender(w, sender);
    qf_writer_client(w, NULL, NULL, NULL, "local");
    /* RFC 6531: a UTF-8 envelope must stay SMTPUTF8 on its way out. */
    bool utf8 = esmtp_non_ascii(sender) || esmtp_non_ascii(delivered_to);
    for (size_t i = 0; i < n; i++)
        utf8 = utf8 || esmtp_non_ascii(addrs[i]);
    qf_writer_flags(w, utf8, false);
    for (size_t i = 0; i < n; i++)
        qf_writer_recipient(w, addrs[i], orig, 0);
    qf_writer_content_begin(w);
    /* Delivered-To on forwarded copies lets the next hop (or we) detect loops. */
    local_sanitize(&dt, delivered_to);
    strbuf_printf(&hdr, "Delivered-To: %s\n", dt.data);
    qf_writer_content(w, hdr.data, hdr.len);
    buf = mymalloc(COPY_CHUNK);
    for (size_t done = 0; done < size;) {
        size_t want = size - done < COPY_CHUNK ? size - done : COPY_CHUNK;
        ssize_t got = pread_full(fd, buf, want, offset + (off_t)done);
        if (got <= 0) {
            strbuf_printf(err, "read queue file: %s", got < 0 ? strerror(errno) : "short file");
            qf_writer_abort(&w);
            queue_abort(&qn);
            goto fail;
        }
        qf_writer_content(w, buf, (size_t)got);
        done += (size_t)got;
    }
    qf_writer_content_end(w);
    if (qf_writer_finish(&w, err) < 0) {
        queue_abort(&qn);
        goto fail;
    }
    if (queue_commit(&qn, err) < 0)
        goto fail;
    strbuf_reset(id_r);
    strbuf_puts(id_r, qn.id);
    strbuf_reset(&hdr);
    strbuf_printf(&hdr, "%c%s\n", QMGR_REQ_INCOMING, qn.id);
    queue_notify("qmgr", hdr.data);
    myfree(buf);
    strbuf_release(&dt);
    strbuf_release(&hdr);
    return 0;

fail:
    myfree(buf);
    strbuf_release(&dt);
    strbuf_release(&hdr);
    return -1;
}
