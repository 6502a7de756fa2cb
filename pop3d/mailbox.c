/* pop3d mailbox - the Maildir behind a POP3 TRANSACTION (see pop3d.h). */
#include "pop3d.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"

/* RETR reads the file in blocks of this size; the worst case of the
 * conversion (".\n" → "..\r\n") doubles it. */
#define SEND_BLOCK 65536
static char send_in[SEND_BLOCK];
static char send_out[2 * SEND_BLOCK + 8];

int pop3_mailbox_open(struct pop3_mailbox *mb, const char *path, const char **resp_r,
                      struct strbuf *err)
{
    memset(mb, 0, sizeof(*mb));
    mb->lock_fd = -1;
    /* A user who never received mail gets an empty mailbox, not an error. */
    if (access(path, F_OK) < 0 && maildir_create(path, err) < 0) {
        *resp_r = "-ERR [SYS/TEMP] Cannot open mailbox";
        return -1;
    }
    errno = 0;
    mb->lock_fd = maildir_lock(path, "pop3", err);
    if (mb->lock_fd < 0) {
        /* maildir_lock leaves errno from flock(); its text says "locked" too. */
        int saved = errno;
        if (saved == EWOULDBLOCK || saved == EAGAIN || strstr(strbuf_str(err), "locked by") != NULL)
            *resp_r = "-ERR [IN-USE] Mailbox is locked by another session";
        else
            *resp_r = "-ERR [SYS/TEMP] Cannot lock mailbox";
        return -1;
    }
    /* The index moves new/ to cur/ and gives every message its UID. POP3
     * does not claim \Recent: an IMAP client still sees the mail as new. */
    if (mbox_open(path, MBOX_NO_RECENT, &mb->box, err) < 0) {
        close(mb->lock_fd);
        mb->lock_fd = -1;
        *resp_r = "-ERR [SYS/TEMP] Cannot open mailbox";
        return -1;
    }
    mb->path = mystrdup(path);
    mb->count = mbox_count(mb->box);
    size_t alloc = mb->count ? mb->count : 1;
    mb->msgs = mycalloc(alloc, sizeof(*mb->msgs));
    mb->uids = mycalloc(alloc, sizeof(*mb->uids));
    mb->deleted = mycalloc(alloc, sizeof(bool));
    mb->retrieved = mycalloc(alloc, sizeof(bool));
    mb->uidl = mycalloc(alloc, sizeof(char *));
    uint32_t uidvalidity = mbox_uidvalidity(mb->box);
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < mb->count; i++) {
        const struct mbox_rec *r = mbox_rec_at(mb->box, i);
        strbuf_reset(&sb);
        strbuf_printf(&sb, "%08X%08X", r->uid, uidvalidity);
        mb->uidl[i] = mystrdup(sb.data);
        mb->uids[i] = r->uid;
        strbuf_reset(&sb);
        strbuf_printf(&sb, "cur/%s", r->filename);
        mb->msgs[i].path = mystrdup(sb.data);
        mb->msgs[i].uid = mystrdup(mb->uidl[i]);
        mb->msgs[i].size = (size_t)r->size;
        mb->msgs[i].vsize = (size_t)r->vsize;
        mb->msgs[i].mtime = r->internaldate;
    }
    strbuf_release(&sb);
    return 0;
}

void pop3_mailbox_close(struct pop3_mailbox *mb)
{
    if (mb->uidl) {
        for (size_t i = 0; i < mb->count; i++)
            myfree(mb->uidl[i]);
        myfree(mb->uidl);
    }
    if (mb->msgs)
        maildir_list_free(&mb->msgs, mb->count);
    mbox_close(&mb->box);
    myfree(mb->uids);
    myfree(mb->deleted);
    myfree(mb->retrieved);
    myfree(mb->path);
    if (mb->lock_fd >= 0)
        close(mb->lock_fd);
    memset(mb, 0, sizeof(*mb));
    mb->lock_fd = -1;
}

const struct maildir_msg *pop3_mailbox_get(const struct pop3_mailbox *mb, unsigned long n)
{
    if (n == 0 || n > mb->count || mb->deleted[n - 1])
        return NULL;
    return &mb->msgs[n - 1];
}

void pop3_mailbox_stat(const struct pop3_mailbox *mb, size_t *count_r, unsigned long long *size_r)
{
    size_t count = 0;
    unsigned long long size = 0;
    for (size_t i = 0; i < mb->count; i++) {
        if (!mb->deleted[i]) {
            count++;
            size += mb->msgs[i].vsize;
        }
    }
    *count_r = count;
    *size_r = size;
}

size_t pop3_mailbox_update(struct pop3_mailbox *mb, size_t *deleted_r)
{
    size_t failed = 0, deleted = 0, n = 0;
    struct strbuf err = STRBUF_INIT;
    uint32_t *uids = mycalloc(mb->count ? mb->count : 1, sizeof(uint32_t));
    for (size_t i = 0; i < mb->count; i++)
        if (mb->deleted[i])
            uids[n++] = mb->uids[i];
    if (mbox_txn_begin(mb->box, &err) < 0) {
        msg_warn("%s", err.data);
        myfree(uids);
        strbuf_release(&err);
        *deleted_r = 0;
        return n;
    }
    for (size_t i = 0; i < mb->count; i++) {
        if (mb->retrieved[i] && !mb->deleted[i] &&
            mbox_store_flags(mb->box, mb->uids[i], MBOX_F_SEEN, 0, MBOX_FLAGS_ADD, 0, NULL, &err) <
                0) {
            /* gone already, or another client renamed it: not worth failing QUIT */
            strbuf_reset(&err);
        }
    }
    if (n > 0 && mbox_expunge_uids(mb->box, uids, n, &err) < 0) {
        msg_warn("%s: expunge: %s", mb->path, err.data);
        failed = n;
    } else {
        deleted = n;
    }
    strbuf_reset(&err);
    if (mbox_txn_commit(mb->box, &err) < 0) {
        msg_warn("%s: %s", mb->path, err.data);
        if (failed == 0) {
            failed = n;
            deleted = 0;
        }
    }
    myfree(uids);
    strbuf_release(&err);
    *deleted_r = deleted;
    return failed;
}

static int open_message(struct pop3_mailbox *mb, unsigned long n)
{
    struct strbuf err = STRBUF_INIT;
    /* Finds the file even if an IMAP client renamed it (flags) meanwhile. */
    int fd = mbox_msg_open(mb->box, mb->uids[n - 1], &err);
    if (fd < 0)
        msg_warn("%s", err.data);
    strbuf_release(&err);
    return fd;
}

/* Conversion state carried across blocks. */
struct xfer {
    bool bol;        /* at the start of a line */
    char prev;       /* last byte of the current line ('\n' at bol) */
    size_t line_len; /* bytes of the current line so far */
    bool in_body;    /* past the empty line after the header */
    long body_left;  /* TOP: body lines still to send; < 0 = all */
    bool done;       /* TOP: enough sent */
};

/*
 * Convert in[0..len) into out: LF → CRLF,
 * a "." at the start of a line doubled (RFC 1939 §3 byte-stuffing).
 * Returns the output length (at most 2 * len).
 */
static size_t xfer_convert(struct xfer *x, const char *in, size_t len, char *out)
{
    const char *p = in, *end = in + len;
    char *o = out;
    while (p < end && !x->done) {
        if (x->bol && *p == '.')
            *o++ = '.';
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *stop = lf ? lf : end;
        size_t n = (size_t)(stop - p);
        if (n > 0) {
            memcpy(o, p, n);
            o += n;
            x->prev = stop[-1];
            x->line_len += n;
            x->bol = false;
        }
        if (lf == NULL)
            break;
        bool empty = x->line_len == 0 || (x->line_len == 1 && x->prev == '\r');
        /* Every LF becomes CRLF, even after a CR: the file holds LF line
         * ends and a CR before one is message data (a bare CR the sender
         * sent), and W= = size + number of LFs must stay the exact count. */
        *o++ = '\r';
        *o++ = '\n';
        x->bol = true;
        x->line_len = 0;
        x->prev = '\n';
        p = lf + 1;
        if (!x->in_body) {
            if (empty) {
                x->in_body = true;
                if (x->body_left == 0)
                    x->done = true;
            }
        } else if (x->body_left > 0) {
            if (--x->body_left == 0)
                x->done = true;
        }
    }
    return (size_t)(o - out);
}

int pop3_mailbox_send(struct pop3_mailbox *mb, unsigned long n, long top_lines, struct stream *out,
                      const char *ok_line)
{
    const struct maildir_msg *m = pop3_mailbox_get(mb, n);
    if (m == NULL)
        return 1;
    int fd = open_message(mb, n);
    if (fd < 0)
        return 1;
    if (top_lines < 0)
        mb->retrieved[n - 1] = true;
    struct xfer x = {true, '\n', 0, false, top_lines, false};
    if (stream_puts(out, ok_line) < 0 || stream_write(out, "\r\n", 2) < 0) {
        close(fd);
        return -1;
    }
    int ret = 0;
    while (!x.done) {
        ssize_t got = read(fd, send_in, sizeof(send_in));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            msg_warn("read %s/%s: %s", mb->path, m->path, strerror(errno));
            ret = -1;
            break;
        }
        if (got == 0)
            break;
        size_t olen = xfer_convert(&x, send_in, (size_t)got, send_out);
        if (stream_write(out, send_out, olen) < 0) {
            ret = -1;
            break;
        }
    }
    close(fd);
    if (ret < 0)
        return -1;
    /* A last line without LF still ends with CRLF before the terminator. */
    if (!x.bol && stream_write(out, "\r\n", 2) < 0)
        return -1;
    if (stream_write(out, ".\r\n", 3) < 0)
        return -1;
    return 0;
}
