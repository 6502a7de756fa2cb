/*
 * fetch.h - helpers of fetch.c shared by store.c, search.c and copy.c
 * (H6b's message-access commands). Everything here works on the selected
 * folder of a session (s->mbox).
 */
#ifndef TEGAMI_IMAPD_FETCH_H
#define TEGAMI_IMAPD_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imapd.h"
#include "mbox_index.h"
#include "message.h"
#include "strbuf.h"

/* One message file, read once (mmap) and parsed on demand. */
struct imapd_msgfile {
    uint32_t uid;
    const char *data; /* the file as stored (LF line ends) */
    size_t len;
    void *map; /* munmap this (NULL for an empty file) */
    size_t map_len;
    struct message *msg; /* NULL until imapd_msgfile_parsed */
};

/* Map the file of record r. 0, or -1 (logged; the file vanished or is unreadable). */
int imapd_msgfile_open(struct imap_session *s, const struct mbox_rec *r, struct imapd_msgfile *mf);
/* The parsed message (parsed at the first call). */
struct message *imapd_msgfile_parsed(struct imapd_msgfile *mf);
void imapd_msgfile_close(struct imapd_msgfile *mf);

/* "(\Seen \Flagged $Label1 \Recent)": the flag list of r, appended. */
void imapd_append_flags(struct imap_session *s, const struct mbox_rec *r, struct strbuf *out);
/* Sorted UIDs (or numbers) as a compact set "1:3,7,9:10", appended. */
void imapd_append_set(struct strbuf *out, const uint32_t *v, size_t n);
/*
 * A CONDSTORE-enabling command ran (RFC 7162 §3.1): turn CONDSTORE on, and
 * when it was off, tell the client the folder's HIGHESTMODSEQ.
 */
void imapd_condstore_enable(struct imap_session *s);

#endif
