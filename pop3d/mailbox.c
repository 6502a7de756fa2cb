/* pop3d mailbox - the Maildir behind a POP3 TRANSACTION (see pop3d.h). */
#include "pop3d.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "msg.h"
#include "mymalloc.h"

/* RETR reads the file in blocks of this size; the worst case of the
 * conversion (".\n" → "..\r\n") doubles it. */
#define SEND_BLOCK 65536
static char send_in[SEND_BLOCK];
static char send_out[2 * SEND_BLOCK + 8];

/* RFC 1939 §7: a unique-id is 1..70 characters in 0x21..0x7E. */
static bool uidl_conforms(const char *uid)
{
    size_t len = strlen(uid);
    if (len == 0 || len > 70)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)uid[i];
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    return true;
}

/* The Maildir uid when it conforms, else a stable digest of it (hex, 64 chars). */
static char *make_uidl(const char *uid)
{
    if (uidl_conforms(uid))
        return mystrdup(uid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(uid, strlen(uid), md, &mdlen, EVP_sha256(), NULL))
        msg_fatal("EVP_Digest(sha256) failed");
    static const char hex[] = "0123456789abcdef";
    char *out = mymalloc(2 * (size_t)mdlen + 1);
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * mdlen] = '\0';
    return out;
}

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
    if (maildir_list(path, true, &mb->msgs, &mb->count, err) < 0) {
        close(mb->lock_fd);
        mb->lock_fd = -1;
        *resp_r = "-ERR [SYS/TEMP] Cannot open mailbox";
        return -1;
    }
    mb->path = mystrdup(path);
    mb->deleted = mycalloc(mb->count ? mb->count : 1, sizeof(bool));
    mb->uidl = mycalloc(mb->count ? mb->count : 1, sizeof(char *));
    for (size_t i = 0; i < mb->count; i++)
        mb->uidl[i] = make_uidl(mb->msgs[i].uid);
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
    myfree(mb->deleted);
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

/*
 * The message may have been renamed since we listed it (an IMAP client
 * changing flags renames cur/<uid>:2,<flags>): find the file by its uid in
 * cur/ then new/. 0 with the relative path in out, -1 if it is gone.
 */
static int find_by_uid(const struct pop3_mailbox *mb, const char *uid, struct strbuf *out)
{
    static const char *const subdirs[] = {"cur", "new"};
    size_t ulen = strlen(uid);
    for (size_t d = 0; d < 2; d++) {
        struct strbuf dir = STRBUF_INIT;
        strbuf_printf(&dir, "%s/%s", mb->path, subdirs[d]);
        DIR *dp = opendir(dir.data);
        strbuf_release(&dir);
        if (dp == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (strncmp(de->d_name, uid, ulen) == 0 &&
                (de->d_name[ulen] == ':' || de->d_name[ulen] == ',' || de->d_name[ulen] == '\0')) {
                strbuf_reset(out);
                strbuf_printf(out, "%s/%s", subdirs[d], de->d_name);
                closedir(dp);
                return 0;
            }
        }
        closedir(dp);
    }
    return -1;
}

size_t pop3_mailbox_update(struct pop3_mailbox *mb, size_t *deleted_r)
{
    size_t failed = 0, deleted = 0;
    struct strbuf full = STRBUF_INIT, rel = STRBUF_INIT;
    for (size_t i = 0; i < mb->count; i++) {
        if (!mb->deleted[i])
            continue;
        strbuf_reset(&full);
        strbuf_printf(&full, "%s/%s", mb->path, mb->msgs[i].path);
        if (unlink(full.data) == 0) {
            deleted++;
            continue;
        }
        if (errno == ENOENT) {
            if (find_by_uid(mb, mb->msgs[i].uid, &rel) < 0) {
                deleted++; /* gone already (another client removed it) */
                continue;
            }
            strbuf_reset(&full);
            strbuf_printf(&full, "%s/%s", mb->path, rel.data);
            if (unlink(full.data) == 0 || errno == ENOENT) {
                deleted++;
                continue;
            }
        }
        msg_warn("cannot remove %s: %s", full.data, strerror(errno));
        failed++;
    }
    strbuf_release(&full);
    strbuf_release(&rel);
    *deleted_r = deleted;
    return failed;
}

static int open_message(const struct pop3_mailbox *mb, const struct maildir_msg *m)
{
    struct strbuf full = STRBUF_INIT;
    strbuf_printf(&full, "%s/%s", mb->path, m->path);
    int fd = open(full.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        struct strbuf rel = STRBUF_INIT;
        if (find_by_uid(mb, m->uid, &rel) == 0) {
            strbuf_reset(&full);
            strbuf_printf(&full, "%s/%s", mb->path, rel.data);
            fd = open(full.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        }
        strbuf_release(&rel);
    }
    if (fd < 0)
        msg_warn("cannot open %s: %s", full.data, strerror(errno));
    strbuf_release(&full);
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
    int fd = open_message(mb, m);
    if (fd < 0)
        return 1;
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
