/*
 * maildir - Maildir storage: delivery, listing, and a per-mailbox lock.
 *
 * Delivery writes tmp/<name>, fsyncs it, renames it into new/ and fsyncs
 * new/, so a message is either fully there or not at all. Names are unique
 * and carry their sizes like Dovecot's:
 *     <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<crlf-size>
 * S= is the size on disk (LF line ends), W= the size with CRLF line ends
 * (what POP3 and IMAP report), so listing a mailbox needs no file reads.
 * Used by local (delivery) and pop3d/imapd (listing).
 */
#ifndef TEGAMI_MAILDIR_H
#define TEGAMI_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

/* Create path/{cur,new,tmp} (and missing parents) with mode 0700. 0 or -1. */
int maildir_create(const char *path, struct strbuf *err);

/*
 * Deliver prefix (e.g. Return-Path and Delivered-To headers) followed by
 * len bytes of src_fd starting at offset. name_r gets "new/<name>".
 * 0 on success, -1 with err (nothing left behind in new/).
 */
int maildir_deliver(const char *path, const char *prefix, size_t prefix_len, int src_fd,
                    off_t offset, size_t len, struct strbuf *name_r, struct strbuf *err);

struct maildir_msg {
    char *path;   /* relative to the Maildir: "cur/<name>" or "new/<name>" */
    char *uid;    /* the base name up to ':' or ',' - stable across new/ → cur/ */
    size_t size;  /* S= (or stat size when absent) */
    size_t vsize; /* W= (or computed when absent) */
    time_t mtime;
};

/*
 * List new/ and cur/, oldest first (by name). Messages found in new/ are
 * moved to cur/ with ":2," appended when move_new is true.
 */
int maildir_list(const char *path, bool move_new, struct maildir_msg **msgs_r, size_t *count_r,
                 struct strbuf *err);
void maildir_list_free(struct maildir_msg **msgsp, size_t count);

/*
 * Take an exclusive, non-blocking lock named what ("pop3") on the Maildir.
 * Returns an fd to close to release it, -1 if another process holds it
 * (err says so) or on error.
 */
int maildir_lock(const char *path, const char *what, struct strbuf *err);

#endif
