/*
 * bdat - CHUNKING and BINARYMIME (RFC 3030): "BDAT <size> [LAST]" followed
 * by exactly size bytes of message content.
 *
 * - The content is binary-clean: no dot-unstuffing, no end marker; the
 *   size alone says where the chunk ends, so nothing in it is ever read as
 *   a command (this is also why a malformed size ends the session: the
 *   bytes that follow cannot be skipped).
 * - Stored like DATA content: CRLF becomes LF (also when the CR and the LF
 *   arrive in different chunks), bare CR and bare LF are kept as they came
 *   (architecture.md: content is stored with LF line ends). Header lines
 *   (counted for the hop limit, Date/Message-ID for submission) end at
 *   CRLF, as in data.c.
 * - The first accepted chunk creates the queue file (envelope, Received
 *   header); every chunk is appended to it; "250 2.0.0 Ok: N octets" per
 *   chunk, and after LAST the "queued as" reply only once queue_commit()
 *   has fsync'ed and renamed it (DESIGN invariant 1, as data.c).
 * - message_size_limit applies to the sum of the chunks. A chunk over it is
 *   read and discarded and gets 552; RFC 3030 §2: after a failed chunk the
 *   transaction has failed, so every further chunk is read, discarded and
 *   answered with the same error, until LAST or RSET ends it.
 * - A chunk refused by check.c (no MAIL, no valid recipient) is read and
 *   discarded before the error reply, so a pipelining client stays in step.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "esmtp_params.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "queue_file.h"
#include "smtpd.h"
#include "stream.h"

#define BDAT_BUF 65536
#define HDR_PREFIX 16 /* enough of a header line for "Received:", "Message-ID:" */

struct smtpd_bdat {
    struct queue_new qn;
    struct qf_writer *w; /* NULL when the queue file could not be created */
    bool failed;         /* a chunk was refused: discard the rest */
    char fail_reply[128];
    bool cr_pending; /* the last byte written so far was a CR (held back) */
    bool bol;        /* at the start of a CRLF-terminated line */
    bool in_header;
    char hdr[HDR_PREFIX]; /* start of the current header line */
    size_t hdr_len;
    int hops;
    unsigned long long size;  /* content bytes (LF line ends) */
    unsigned long long limit; /* 0 = none */
    unsigned chunks;
    struct smtpd_submission_hdrs sub;
    const char *myhostname;
};

static void bdat_fail(struct smtpd_bdat *b, const char *reply)
{
    b->failed = true;
    snprintf(b->fail_reply, sizeof(b->fail_reply), "%s", reply);
}

/* Count the content and write it, unless the limit was passed. */
static void emit(struct smtpd_bdat *b, const char *p, size_t n)
{
    if (b->failed || n == 0)
        return;
    b->size += n;
    if (b->limit > 0 && b->size > b->limit) {
        msg_info("%s: reject: size %llu exceeds message_size_limit %llu", b->qn.id, b->size,
                 b->limit);
        bdat_fail(b, "552 5.3.4 Error: message file too big");
        return;
    }
    qf_writer_content(b->w, p, n);
}

/* A header line ended (CRLF seen at the end of p[0..n)) or the header section did. */
static void header_line_end(struct smtpd_bdat *b)
{
    if (!b->in_header)
        return;
    smtpd_submission_header(&b->sub, b->hdr, b->hdr_len);
    if (b->hdr_len >= 9 && strncasecmp(b->hdr, "Received:", 9) == 0)
        b->hops++;
    b->hdr_len = 0;
}

/* The empty line that ends the header: add what submission must, before it. */
static void header_end(struct smtpd_bdat *b)
{
    struct strbuf h = STRBUF_INIT;
    b->in_header = false;
    smtpd_submission_missing(&b->sub, b->qn.id, b->myhostname, &h);
    /* Our own headers are not subject to the size limit's accounting (as data.c). */
    if (!b->failed && h.len > 0)
        qf_writer_content(b->w, h.data, h.len);
    strbuf_release(&h);
}

/*
 * Convert one piece of chunk data: CRLF → LF, track header lines. Works
 * byte-run by byte-run: runs without CR are written as they are.
 */
static void process(struct smtpd_bdat *b, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !b->failed) {
        if (b->cr_pending) {
            b->cr_pending = false;
            if (p[i] == '\n') {
                /* A line end. An empty line in the header ends it. */
                if (b->in_header) {
                    if (b->bol && b->hdr_len == 0)
                        header_end(b);
                    else
                        header_line_end(b);
                }
                emit(b, "\n", 1);
                b->bol = true;
                i++;
                continue;
            }
            emit(b, "\r", 1); /* bare CR: content */
            b->bol = false;
        }
        /* The run up to the next CR. */
        const char *cr = memchr(p + i, '\r', n - i);
        size_t run = cr ? (size_t)(cr - (p + i)) : n - i;
        if (run > 0) {
            if (b->in_header) {
                size_t room = HDR_PREFIX - b->hdr_len;
                if (b->bol || b->hdr_len > 0) {
                    size_t take = run < room ? run : room;
                    memcpy(b->hdr + b->hdr_len, p + i, take);
                    b->hdr_len += take;
                }
            }
            emit(b, p + i, run);
            b->bol = false;
            i += run;
        }
        if (cr != NULL) {
            b->cr_pending = true;
            i++;
        }
    }
}

/* Read and discard n bytes of chunk data. 0, or -1 (session over, reply sent). */
static int discard(struct smtpd_data_ctx *c, unsigned long long n, char *buf)
{
    while (n > 0) {
        size_t want = n < BDAT_BUF ? (size_t)n : BDAT_BUF;
        ssize_t got = stream_read(c->stream, buf, want);
        if (got <= 0)
            return (int)got;
        n -= (unsigned long long)got;
    }
    return 0;
}

static int read_failed(struct smtpd_data_ctx *c, int r, const char *id)
{
    if (r == STREAM_TIMEOUT) {
        msg_info("%s: timeout after BDAT from %s[%s]", id, c->client_name, c->client_addr);
        (*c->errors)++;
        smtpd_reply_direct(c->stream, "421 4.4.2 Error: timeout exceeded");
    } else {
        msg_info("%s: lost connection after BDAT from %s[%s]", id, c->client_name, c->client_addr);
    }
    return -1;
}

static void bdat_reply(struct smtpd_data_ctx *c, const char *text)
{
    stream_printf(c->stream, "%s\r\n", text);
    if (text[0] == '4' || text[0] == '5')
        (*c->errors)++;
}

/* The first accepted chunk: create the queue file and write the envelope. */
static struct smtpd_bdat *bdat_new(struct smtpd_data_ctx *c)
{
    struct smtpd_bdat *b = mycalloc(1, sizeof(*b));
    struct strbuf err = STRBUF_INIT;
    time_t now = time(NULL);

    b->qn.fd = -1;
    b->bol = true;
    b->in_header = true;
    b->hops = 1;
    b->limit = c->limits->size_limit;
    b->sub.active = c->submission;
    b->myhostname = c->myhostname;
    if (queue_create(QUEUE_INCOMING, &b->qn, &err) < 0) {
        msg_warn("NOQUEUE: queue file create failed: %s", strbuf_str(&err));
        snprintf(b->qn.id, sizeof(b->qn.id), "NOQUEUE");
        b->qn.fd = -1;
        bdat_fail(b, "451 4.3.0 Error: queue file write error");
        strbuf_release(&err);
        return b;
    }
    msg_info("%s: client=%s[%s]", b->qn.id, c->client_name, c->client_addr);
    b->w = qf_writer_new(b->qn.fd);
    qf_writer_arrival(b->w, now);
    qf_writer_sender(b->w, c->sender);
    qf_writer_client(b->w, c->client_name, c->client_addr, c->helo, c->protocol);
    if (c->sasl_user)
        qf_writer_sasl_user(b->w, c->sasl_user);
    smtpd_envelope_write(c->env, b->w, c->rcpts, c->nrcpt);
    qf_writer_content_begin(b->w);
    smtpd_received_header(b->w, c, b->qn.id, now);
    strbuf_release(&err);
    return b;
}

void smtpd_bdat_free(struct smtpd_bdat **bp)
{
    struct smtpd_bdat *b = *bp;
    if (b == NULL)
        return;
    if (b->w != NULL)
        qf_writer_abort(&b->w);
    if (b->qn.fd >= 0)
        queue_abort(&b->qn);
    myfree(b);
    *bp = NULL;
}

/* After LAST: finish, commit, then (only then) 250. */
static void bdat_commit(struct smtpd_bdat *b, struct smtpd_data_ctx *c)
{
    struct strbuf err = STRBUF_INIT;

    if (b->cr_pending) {
        b->cr_pending = false;
        emit(b, "\r", 1);
    }
    if (b->in_header)
        header_end(b); /* a message with no body: headers go at its end */
    if (b->failed) {
        bdat_reply(c, b->fail_reply);
        goto out;
    }
    if (b->hops > c->limits->hopcount_limit) {
        msg_info("%s: reject: too many hops (%d) from %s[%s]", b->qn.id, b->hops, c->client_name,
                 c->client_addr);
        bdat_reply(c, "554 5.4.6 Error: too many hops");
        goto out;
    }
    qf_writer_content_end(b->w);
    size_t size = qf_writer_content_size(b->w);
    if (qf_writer_finish(&b->w, &err) < 0) {
        msg_warn("%s: queue file write error: %s", b->qn.id, strbuf_str(&err));
        bdat_reply(c, "451 4.3.0 Error: queue file write error");
        goto out;
    }
    if (queue_commit(&b->qn, &err) < 0) {
        b->qn.fd = -1; /* queue_commit closed and removed it */
        msg_warn("%s: queue file commit failed: %s", b->qn.id, strbuf_str(&err));
        bdat_reply(c, "451 4.3.0 Error: queue file write error");
        goto out;
    }
    b->qn.fd = -1;
    msg_info("%s: from=<%s>, size=%zu, nrcpt=%zu, chunks=%u", b->qn.id, c->sender, size, c->nrcpt,
             b->chunks);
    stream_printf(c->stream, "250 2.0.0 Ok: queued as %s\r\n", b->qn.id);
    {
        char note[QUEUE_ID_MAX + 3];
        snprintf(note, sizeof(note), "%c%s\n", QMGR_REQ_INCOMING, b->qn.id);
        queue_notify("qmgr", note);
    }
out:
    strbuf_release(&err);
}

int smtpd_bdat(struct smtpd_bdat **bp, struct smtpd_data_ctx *c, const struct smtp_cmd *cmd,
               int code, const char *reply, bool *done_r)
{
    unsigned long long size = 0;
    bool last = false;
    char *buf;
    int r;

    *done_r = false;
    if (!esmtp_bdat_parse(cmd->arg, &size, &last, NULL))
        msg_panic("smtpd_bdat: unchecked argument");
    buf = mymalloc(BDAT_BUF);
    if (code != 250) {
        /* Refused by the check: keep in step with the client, then say why. */
        if ((r = discard(c, size, buf)) < 0) {
            myfree(buf);
            return read_failed(c, r, "NOQUEUE");
        }
        stream_printf(c->stream, "%s\r\n", reply); /* session.c counted the error */
        *done_r = last;
        myfree(buf);
        return 0;
    }
    if (*bp == NULL)
        *bp = bdat_new(c);
    struct smtpd_bdat *b = *bp;
    unsigned long long chunk = size;
    b->chunks++;
    while (size > 0) {
        size_t want = size < BDAT_BUF ? (size_t)size : BDAT_BUF;
        ssize_t got = stream_read(c->stream, buf, want);
        if (got <= 0) {
            char id[QUEUE_ID_MAX];
            snprintf(id, sizeof(id), "%s", b->qn.id);
            myfree(buf);
            smtpd_bdat_free(bp);
            return read_failed(c, (int)got, id);
        }
        process(b, buf, (size_t)got); /* no-op once failed: the rest is discarded */
        size -= (unsigned long long)got;
    }
    myfree(buf);
    if (last) {
        bdat_commit(b, c);
        smtpd_bdat_free(bp);
        *done_r = true;
        return 0;
    }
    if (b->failed) {
        bdat_reply(c, b->fail_reply);
    } else {
        stream_printf(c->stream, "250 2.0.0 Ok: %llu octets received\r\n", chunk);
    }
    return 0;
}
