/*
 * data - receive DATA straight into a queue file (RFC 5321 §4.1.1.4).
 *
 * DESIGN invariant 4 (SMTP smuggling): only CRLF "." CRLF ends the
 * message. Input is read in LF-terminated chunks; a chunk is a whole
 * "line" only when it ends in CRLF, so a bare LF or a bare CR is content
 * and never starts a new line: "\n.\n", "\n.\r\n", "\r.\r\n" and
 * "\r\n.\r" stay inside the message. CRLF becomes LF in the queue file
 * (architecture.md: content is stored with LF line ends); bare CR and bare
 * LF are kept as they came.
 *
 * Memory is bounded: a chunk is at most DATA_CHUNK bytes, and the queue
 * file writer has a fixed-size buffer.
 *
 * DESIGN invariant 1: 250 is written only after queue_commit() returned 0
 * (file fsync'ed, renamed into incoming/, directory fsync'ed).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "msg.h"
#include "queue.h"
#include "queue_file.h"
#include "smtpd.h"
#include "stream.h"

#define DATA_CHUNK 8192

struct data_state {
    struct qf_writer *w;
    bool bol;                 /* at the start of a CRLF-terminated line */
    bool cr_pending;          /* previous chunk ended in CR (held back) */
    bool in_header;           /* still in the header section (hop counting) */
    int hops;                 /* Received: headers seen, ours included */
    unsigned long long size;  /* content bytes (LF line ends) */
    unsigned long long limit; /* 0 = none */
    bool too_big;
    struct smtpd_submission_hdrs sub; /* submission: Date/Message-ID seen (submission.c) */
    const char *queue_id, *myhostname;
};

static void emit(struct data_state *d, const char *p, size_t n)
{
    if (d->too_big || n == 0)
        return;
    d->size += n;
    if (d->limit > 0 && d->size > d->limit) {
        d->too_big = true;
        return;
    }
    qf_writer_content(d->w, p, n); /* the writer buffers (QF_WRITE_BUF) */
}

/* RFC 5322 date, e.g. "Tue, 03 Dec 2024 10:00:00 +0100". */
static void rfc5322_date(time_t t, char *buf, size_t len)
{
    struct tm tm;
    localtime_r(&t, &tm);
    if (strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        buf[0] = '\0';
}

/* RFC 5321 §4.4 trace header, written as the first content lines. */
void smtpd_received_header(struct qf_writer *w, const struct smtpd_data_ctx *c,
                           const char *queue_id, time_t now)
{
    struct strbuf h = STRBUF_INIT;
    char date[64];
    rfc5322_date(now, date, sizeof(date));
    strbuf_printf(&h, "Received: from %s (%s [%s])\n", c->helo ? c->helo : c->client_name,
                  c->client_name, c->client_addr);
    if (c->tls_info)
        strbuf_printf(&h, "\t(using %s)\n", c->tls_info);
    strbuf_printf(&h, "\tby %s (tegami) with %s id %s", c->myhostname, c->protocol, queue_id);
    if (c->nrcpt == 1)
        strbuf_printf(&h, "\n\tfor <%s>", c->rcpts[0]);
    strbuf_printf(&h, "; %s\n", date);
    /* Our own header is not subject to the size limit's accounting. */
    qf_writer_content(w, h.data, h.len);
    strbuf_release(&h);
}

/* End of the header section: add what a submission server must (RFC 6409 §8). */
static void end_header(struct data_state *d)
{
    struct strbuf h = STRBUF_INIT;
    d->in_header = false;
    smtpd_submission_missing(&d->sub, d->queue_id, d->myhostname, &h);
    if (h.len > 0)
        qf_writer_content(d->w, h.data, h.len);
    strbuf_release(&h);
}

static void count_header(struct data_state *d, const char *p, size_t n)
{
    if (!d->in_header)
        return;
    if (n == 2 && p[0] == '\r' && p[1] == '\n') {
        end_header(d);
        return;
    }
    smtpd_submission_header(&d->sub, p, n);
    if (n >= 9 && strncasecmp(p, "Received:", 9) == 0)
        d->hops++;
}

/*
 * Process one chunk from stream_read_line. full: the chunk ends in LF.
 * Returns true when the chunk was the end-of-data line.
 */
static bool process_chunk(struct data_state *d, const char *p, size_t n, bool full)
{
    if (d->cr_pending) {
        d->cr_pending = false;
        if (n > 0 && p[0] == '\n') {
            /* CRLF split over two chunks: a real line end. */
            emit(d, "\n", 1);
            d->bol = true;
            p++;
            n--;
            if (n == 0)
                return false;
        } else {
            emit(d, "\r", 1);
        }
    }
    if (d->bol) {
        if (n == 3 && memcmp(p, ".\r\n", 3) == 0)
            return true;
        count_header(d, p, n);
        /* RFC 5321 §4.5.2: remove the first "." of a line (dot-stuffing). */
        if (n > 0 && p[0] == '.') {
            p++;
            n--;
        }
    }
    if (full) {
        if (n >= 2 && p[n - 2] == '\r') {
            emit(d, p, n - 2);
            emit(d, "\n", 1);
            d->bol = true;
        } else {
            emit(d, p, n); /* bare LF: content, not a line end */
            d->bol = false;
        }
    } else {
        if (n > 0 && p[n - 1] == '\r') {
            emit(d, p, n - 1);
            d->cr_pending = true;
        } else {
            emit(d, p, n);
        }
        d->bol = false;
    }
    return false;
}

static void data_reply(struct smtpd_data_ctx *c, int code, const char *text)
{
    stream_printf(c->stream, "%d %s\r\n", code, text);
    if (code >= 400)
        (*c->errors)++;
}

int smtpd_data(struct smtpd_data_ctx *c)
{
    struct queue_new qn;
    struct strbuf err = STRBUF_INIT;
    struct data_state d = {
        .bol = true, .in_header = true, .hops = 1, .limit = c->limits->size_limit};
    time_t now = time(NULL);

    if (queue_create(QUEUE_INCOMING, &qn, &err) < 0) {
        msg_warn("NOQUEUE: queue file create failed: %s", strbuf_str(&err));
        data_reply(c, 451, "4.3.0 Error: queue file write error");
        strbuf_release(&err);
        return 0;
    }
    msg_info("%s: client=%s[%s]", qn.id, c->client_name, c->client_addr);
    d.w = qf_writer_new(qn.fd);
    qf_writer_arrival(d.w, now);
    qf_writer_sender(d.w, c->sender);
    qf_writer_client(d.w, c->client_name, c->client_addr, c->helo, c->protocol);
    if (c->sasl_user)
        qf_writer_sasl_user(d.w, c->sasl_user);
    smtpd_envelope_write(c->env, d.w, c->rcpts, c->nrcpt); /* flags, DSN, recipients */
    qf_writer_content_begin(d.w);
    smtpd_received_header(d.w, c, qn.id, now);
    d.sub.active = c->submission;
    d.queue_id = qn.id;
    d.myhostname = c->myhostname;

    stream_printf(c->stream, "354 End data with <CR><LF>.<CR><LF>\r\n");
    stream_flush(c->stream);

    struct strbuf chunk = STRBUF_INIT;
    int ret = 0;
    for (;;) {
        enum stream_result r = stream_read_line(c->stream, &chunk, DATA_CHUNK);
        if (r == STREAM_OK || r == STREAM_PARTIAL) {
            if (process_chunk(&d, chunk.data, chunk.len, r == STREAM_OK))
                break;
            continue;
        }
        if (r == STREAM_TIMEOUT) {
            msg_info("%s: timeout after DATA (%llu bytes) from %s[%s]", qn.id, d.size,
                     c->client_name, c->client_addr);
            (*c->errors)++;
            smtpd_reply_direct(c->stream, "421 4.4.2 Error: timeout exceeded");
        } else {
            msg_info("%s: lost connection after DATA (%llu bytes) from %s[%s]", qn.id, d.size,
                     c->client_name, c->client_addr);
        }
        ret = -1;
        break;
    }
    strbuf_release(&chunk);
    if (ret == 0 && d.in_header && !d.too_big)
        end_header(&d); /* a message with no body: headers go at its end */

    if (ret < 0 || d.too_big || d.hops > c->limits->hopcount_limit) {
        qf_writer_abort(&d.w);
        queue_abort(&qn);
        if (ret == 0 && d.too_big) {
            msg_info("%s: reject: size %llu exceeds message_size_limit %llu from %s[%s]", qn.id,
                     d.size, d.limit, c->client_name, c->client_addr);
            data_reply(c, 552, "5.3.4 Error: message file too big");
        } else if (ret == 0) {
            msg_info("%s: reject: too many hops (%d) from %s[%s]", qn.id, d.hops, c->client_name,
                     c->client_addr);
            data_reply(c, 554, "5.4.6 Error: too many hops");
        }
        strbuf_release(&err);
        return ret;
    }
    qf_writer_content_end(d.w);
    size_t size = qf_writer_content_size(d.w);
    if (qf_writer_finish(&d.w, &err) < 0) {
        msg_warn("%s: queue file write error: %s", qn.id, strbuf_str(&err));
        queue_abort(&qn);
        data_reply(c, 451, "4.3.0 Error: queue file write error");
        strbuf_release(&err);
        return 0;
    }
    if (queue_commit(&qn, &err) < 0) {
        msg_warn("%s: queue file commit failed: %s", qn.id, strbuf_str(&err));
        data_reply(c, 451, "4.3.0 Error: queue file write error");
        strbuf_release(&err);
        return 0;
    }
    /* queue_commit may have renamed to a fresh ID on a collision. */
    const char *id = qn.id;
    msg_info("%s: from=<%s>, size=%zu, nrcpt=%zu", id, c->sender, size, c->nrcpt);
    stream_printf(c->stream, "250 2.0.0 Ok: queued as %s\r\n", id);
    {
        char note[QUEUE_ID_MAX + 3];
        snprintf(note, sizeof(note), "%c%s\n", QMGR_REQ_INCOMING, id);
        queue_notify("qmgr", note);
    }
    strbuf_release(&err);
    return 0;
}
