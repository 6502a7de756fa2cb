/*
 * mbox_index - one Maildir folder and its index (UIDs, flags, modseqs, cache).
 *
 * The Maildir holds the truth about which messages exist and their system
 * flags (file names "...:2,<DFRST>"); the index holds what IMAP needs on top:
 * UIDVALIDITY, UIDNEXT, the UID of each file, keywords, modification
 * sequences (RFC 7162), tombstones of expunged UIDs (QRESYNC VANISHED), and
 * a cache of ENVELOPE/BODYSTRUCTURE strings so a message is parsed once.
 *
 * On disk, in the folder directory (docs/architecture.md "Mailbox index"):
 *   tegami-index.db        Berkeley DB btree (the index; a cache plus the UID
 *                          map, rebuilt from the Maildir when missing/damaged)
 *   tegami-index.lock      fcntl lock + a change counter (see below)
 *   tegami-uidvalidity     "<uidvalidity> <uid ceiling> <modseq ceiling>", so
 *                          a rebuild keeps UIDVALIDITY and never reuses a UID
 *                          or lowers HIGHESTMODSEQ
 * and each message file, once it has a UID, carries it in its name:
 *   cur/<base>,S=<size>,W=<vsize>,U=<uid>:2,<flags>
 * so a rebuilt index gives every surviving file the UID it had.
 *
 * Concurrency: local (writes new/ only), pop3d and any number of imapd
 * processes may use a folder at once. Every index transaction takes an
 * fcntl lock on tegami-index.lock (shared to read, exclusive to write; the
 * kernel drops it when a process dies, so kill -9 never wedges a folder) and
 * every write bumps the change counter in that file, which makes the other
 * processes reopen their Berkeley DB handle (no stale private cache pages).
 *
 * Memory: struct mbox holds the records in UID order (one array, file names
 * in a few large blocks). Pointers returned by
 * mbox_rec_at/mbox_rec_by_uid/mbox_keyword_name stay valid until the next
 * call that syncs or changes the folder (mbox_sync, mbox_store_flags,
 * mbox_expunge_uids, mbox_append, mbox_copy as destination, mbox_keyword
 * with create), mbox_release, mbox_resume or mbox_close. An idle session
 * calls mbox_release to give back the records and the Berkeley DB handle
 * (with its cache) and mbox_resume before it uses them again.
 *
 * Errors: -1 with a one-line reason appended to err (logged by the caller;
 * it may hold paths, so do not send it to a client verbatim).
 */
#ifndef TEGAMI_MBOX_INDEX_H
#define TEGAMI_MBOX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "strbuf.h"

/* System flags (struct mbox_rec.flags). RECENT is per session (never stored). */
#define MBOX_F_SEEN 0x01u
#define MBOX_F_ANSWERED 0x02u
#define MBOX_F_FLAGGED 0x04u
#define MBOX_F_DELETED 0x08u
#define MBOX_F_DRAFT 0x10u
#define MBOX_F_RECENT 0x20u
#define MBOX_F_STORABLE                                                                            \
    (MBOX_F_SEEN | MBOX_F_ANSWERED | MBOX_F_FLAGGED | MBOX_F_DELETED | MBOX_F_DRAFT)

#define MBOX_KEYWORDS_MAX 64

/* mbox_open flags. */
#define MBOX_READONLY 0x01u  /* EXAMINE / pop3d listing: never writes flags or claims \Recent */
#define MBOX_NO_RECENT 0x02u /* do not claim \Recent (IMAP4rev2 only, STATUS, pop3d) */
#define MBOX_NO_CREATE 0x04u /* fail (ENOENT) instead of creating tmp/new/cur */

struct mbox;

struct mbox_rec {
    uint32_t uid;
    uint32_t flags;       /* MBOX_F_* */
    uint64_t keywords;    /* bit i = keyword i (mbox_keyword_name) */
    uint64_t modseq;      /* RFC 7162, > 0 */
    uint64_t size;        /* bytes on disk (LF line ends), S= */
    uint64_t vsize;       /* RFC 822 size with CRLF line ends, W= (IMAP RFC822.SIZE) */
    time_t internaldate;  /* delivery/APPEND time (file mtime) */
    const char *filename; /* name in cur/, without the directory */
};

/*
 * Open the folder whose Maildir is folder_dir (creating tmp/new/cur unless
 * MBOX_NO_CREATE) and its index (created or rebuilt as needed), and sync
 * once. 0, or -1 with err (errno ENOENT for a missing folder with NO_CREATE).
 */
int mbox_open(const char *folder_dir, unsigned flags, struct mbox **mbox_r, struct strbuf *err);
/* Flush the cache writes, release everything; *mboxp becomes NULL. */
void mbox_close(struct mbox **mboxp);

/*
 * The session goes idle: write the pending cache entries, close the index's
 * DB handle and free the records, keeping what is needed to resume (folder,
 * lock and change fds, header, keywords, this handle's \Recent claims). Until
 * mbox_resume (or mbox_sync, or any change call, which resume by
 * themselves) the record accessors (mbox_count, mbox_rec_at,
 * mbox_rec_by_uid, mbox_recent_count, mbox_first_unseen_uid,
 * mbox_changed_since, mbox_msg_open, mbox_copy's source) must not be used:
 * they panic. mbox_changed, mbox_change_fd and the header accessors work.
 * Not inside mbox_txn_begin/commit. 0, or -1 when the cache write failed
 * (the handle is released all the same).
 */
int mbox_release(struct mbox *b, struct strbuf *err);
/*
 * Reload the records after mbox_release: reopen the index (rebuilt if it
 * was damaged meanwhile) without scanning the Maildir; another process's
 * changes since the release are in the records, UIDs as they were. A no-op
 * on a handle that is not released. 0, or -1 with err (still released).
 */
int mbox_resume(struct mbox *b, struct strbuf *err);
/* True between mbox_release and the next mbox_resume. */
bool mbox_released(const struct mbox *b);

/*
 * Bring the records up to date with the Maildir and other processes:
 * files in new/ move to cur/ and get UIDs in order of arrival, flag changes
 * made by renames (any Maildir client) get a new modseq, files that
 * vanished become tombstones. Cheap when nothing changed: one pread of the
 * change counter and two stats of new/ and cur/.
 * Returns 1 if anything changed since the last sync of this handle, 0 if
 * not, -1 with err. Resumes a released handle.
 */
int mbox_sync(struct mbox *b, struct strbuf *err);

/* Cheap test without syncing: could mbox_sync find anything new? */
bool mbox_changed(struct mbox *b);

/*
 * An fd that becomes readable (poll POLLIN) when the folder may have
 * changed: inotify on new/, cur/ and the lock file. After it fires, call
 * mbox_change_ack (drains it) and mbox_sync. -1 if inotify is unavailable:
 * then poll mbox_changed every few seconds. Owned by b.
 */
int mbox_change_fd(struct mbox *b);
void mbox_change_ack(struct mbox *b);

uint32_t mbox_uidvalidity(const struct mbox *b);
uint32_t mbox_uidnext(const struct mbox *b);
uint64_t mbox_highestmodseq(const struct mbox *b);
/* Messages (records) in the folder now. */
size_t mbox_count(const struct mbox *b);
/* Messages with \Recent for this handle (\Recent claimed by it, RFC 3501
 * §2.3.2); for a READONLY or NO_RECENT handle (EXAMINE, STATUS) those no
 * session has claimed yet, left unclaimed. */
size_t mbox_recent_count(const struct mbox *b);
/* Lowest UID without \Seen (0 if none): UNSEEN in SELECT wants its position. */
uint32_t mbox_first_unseen_uid(const struct mbox *b);

/* Record i, 0-based in UID order; NULL when out of range. */
const struct mbox_rec *mbox_rec_at(const struct mbox *b, size_t i);
/* Record by UID (binary search); index_r (may be NULL) gets its position. NULL if none. */
const struct mbox_rec *mbox_rec_by_uid(const struct mbox *b, uint32_t uid, size_t *index_r);

/* The full path of a record's file, to open and read. 0, or -1. */
int mbox_path(const struct mbox *b, const struct mbox_rec *r, struct strbuf *path_r);

/*
 * Open message uid for reading (O_RDONLY): if another process renamed the
 * file (a flag change) since our last sync, finds it by the U= in its
 * name. fd, or -1 with err (errno ENOENT when the message is gone).
 */
int mbox_msg_open(struct mbox *b, uint32_t uid, struct strbuf *err);

/*
 * Batch several changes (STORE 1:*, EXPUNGE of many, COPY of many) into one
 * index transaction: one lock, one fsync of cur/ (for the files added by
 * mbox_append/mbox_copy) and one DB->sync instead of one per message. Every
 * mbox_* change call between begin and commit joins it. New messages are
 * durable only once mbox_txn_commit returns 0: report an APPEND/COPY/MOVE
 * done (and expunge a MOVE's source) only after that; on -1 (the fsync of
 * cur/ or the index sync failed) treat the whole batch as failed. Never hold
 * a transaction open across network I/O: it blocks every other session.
 */
int mbox_txn_begin(struct mbox *b, struct strbuf *err);
int mbox_txn_commit(struct mbox *b, struct strbuf *err);

enum mbox_flags_op { MBOX_FLAGS_SET, MBOX_FLAGS_ADD, MBOX_FLAGS_REMOVE };

/*
 * Change the flags and keywords of one message (STORE). System flags go
 * into the file name (rename in cur/), keywords into the index. When
 * anything changed the record gets a new modseq (also in *modseq_r; the old
 * one when nothing changed). unchangedsince (RFC 7162 §3.1.3, 0 = none):
 * when the record's modseq is greater, nothing is done and 1 is returned.
 * 0 done, 1 refused by UNCHANGEDSINCE, -1 error (also: no such UID, the
 * folder is read-only). Fails with -1 on a READONLY handle.
 */
int mbox_store_flags(struct mbox *b, uint32_t uid, uint32_t flags, uint64_t keywords,
                     enum mbox_flags_op op, uint64_t unchangedsince, uint64_t *modseq_r,
                     struct strbuf *err);

/*
 * Expunge these UIDs (unknown ones are ignored): unlink the files, drop
 * the records and cache, leave tombstones with one new modseq. 0 or -1.
 */
int mbox_expunge_uids(struct mbox *b, const uint32_t *uids, size_t n, struct strbuf *err);

/*
 * Store a new message (data with LF line ends, as everywhere in tegami):
 * tmp/ then fsync, rename into cur/ with its UID in the name; cur/ is
 * fsync'ed before this returns, or, inside mbox_txn_begin/commit, by the
 * commit. The UID is assigned at once (UIDPLUS APPENDUID). internaldate 0 = now.
 * 0 with *uid_r, or -1.
 */
int mbox_append(struct mbox *b, const char *data, size_t len, uint32_t flags, uint64_t keywords,
                time_t internaldate, uint32_t *uid_r, struct strbuf *err);

/*
 * Copy message uid of src into dst (hard link when on the same file
 * system, else a copy), keeping flags (not \Recent), keywords (by name),
 * the internal date and the cache. Durable like mbox_append (cur/ fsync'ed
 * here, or at the commit of an open transaction). 0 with *new_uid_r, or -1.
 */
int mbox_copy(struct mbox *src, uint32_t uid, struct mbox *dst, uint32_t *new_uid_r,
              struct strbuf *err);

/*
 * Keywords (RFC 3501 flag-keyword atoms, compared case-insensitively):
 * index 0..63 of name, creating it when create is true and there is room.
 * -1 if unknown (or full). The folder's keywords are its PERMANENTFLAGS.
 */
int mbox_keyword(struct mbox *b, const char *name, bool create);
const char *mbox_keyword_name(const struct mbox *b, unsigned i);
size_t mbox_keyword_count(const struct mbox *b);

/*
 * QRESYNC: call cb for every UID expunged with a modseq > since, in UID
 * order. Tombstones are kept for ever (4 bytes + modseq each) until the
 * index is rebuilt; returns 1 when the tombstones since that modseq are
 * incomplete (index rebuilt after it), so the client must be told by
 * a full resync (VANISHED of the UID ranges it asks about), else 0.
 */
int mbox_expunged_since(struct mbox *b, uint64_t since, void (*cb)(void *ctx, uint32_t uid),
                        void *ctx);
/* The modseq below which tombstones are incomplete (0 = complete since creation). */
uint64_t mbox_tombstone_floor(const struct mbox *b);

/* CONDSTORE / untagged FETCH after a sync: cb for each record with modseq > since. */
void mbox_changed_since(const struct mbox *b, uint64_t since,
                        void (*cb)(void *ctx, const struct mbox_rec *r), void *ctx);

/*
 * Cache of derived strings per message: field is a short name ("envelope",
 * "bodystructure", "body", ...). get: 1 found (out gets the value,
 * replacing its contents), 0 not cached. put: stored in memory and written
 * to the index in one transaction at the next mbox_sync / mbox_cache_flush
 * / mbox_close (so FETCH 1:* costs one write, not one per message).
 */
int mbox_cache_get(struct mbox *b, uint32_t uid, const char *field, struct strbuf *out);
void mbox_cache_put(struct mbox *b, uint32_t uid, const char *field, const char *v, size_t len);
int mbox_cache_flush(struct mbox *b, struct strbuf *err);

/* For tests and fuzzing: decode one index record value; 0 or -1 (fails closed). */
int mbox_rec_decode(const void *data, size_t len, struct mbox_rec *r, const char **filename_r,
                    size_t *filename_len_r);

#endif
