/*
 * mailbox - the folders of one user's Maildir++ store (IMAP names <-> dirs).
 *
 * Layout (docs/architecture.md, "Mailbox store"): INBOX is the Maildir root
 * itself; every other folder is a directory ".<name>" directly below the
 * root, with tmp/ new/ cur/ like any Maildir. The IMAP hierarchy delimiter
 * is '.', on the wire and on disk, as in Dovecot's default Maildir++ layout
 * and Courier: the folder "Lists.tegami" is the directory ".Lists.tegami"
 * and a child of "Lists". On disk each name is in modified UTF-7
 * (RFC 3501 §5.1.3), so "Entwürfe" is ".Entw&APw-rfe".
 *
 * Every function takes names as UTF-8 (imapd converts the wire form with
 * mutf7_to_utf8 first, unless UTF8=ACCEPT is on) and the Maildir root.
 * "INBOX" is matched without regard to case, as RFC 3501 §5.1 requires, also
 * as the first component ("inbox.x" is "INBOX.x").
 *
 * Unsafe names are refused before any file system call: empty names or
 * components ("a..b", ".a", "a."), '/', '\\' (anything that could name a
 * path), control characters and DEL, invalid UTF-8, names longer than
 * MAILBOX_NAME_MAX bytes or deeper than MAILBOX_DEPTH_MAX levels, or whose
 * directory name would exceed NAME_MAX. '*' and '%' (LIST wildcards) are
 * refused too, as Dovecot does. ('&' is fine: it is "&-" on disk.)
 *
 * Errors: -1 with a one-line reason in err (appended, meant for a NO reply;
 * it never includes the file system path). Functions that distinguish "does not exist" return
 * MAILBOX_ENOENT
 * (-2) and "already exists" MAILBOX_EEXIST (-3) so imapd can answer
 * [NONEXISTENT] / [ALREADYEXISTS] (RFC 5530).
 *
 * Callers: imapd (folder commands, login), mailctl (user add), pop3d (INBOX).
 */
#ifndef TEGAMI_MAILBOX_H
#define TEGAMI_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define MAILBOX_NAME_MAX 512 /* bytes of UTF-8 */
#define MAILBOX_DEPTH_MAX 16 /* hierarchy levels */

#define MAILBOX_ENOENT (-2)
#define MAILBOX_EEXIST (-3)

/* LIST attributes (RFC 3501, RFC 3348 CHILDREN, RFC 6154 SPECIAL-USE, RFC 5258). */
#define MAILBOX_ATTR_NOSELECT 0x0001u
#define MAILBOX_ATTR_HASCHILDREN 0x0002u
#define MAILBOX_ATTR_HASNOCHILDREN 0x0004u
#define MAILBOX_ATTR_SUBSCRIBED 0x0008u
#define MAILBOX_ATTR_NONEXISTENT 0x0010u /* only for subscribed names without a folder */
#define MAILBOX_ATTR_SENT 0x0100u
#define MAILBOX_ATTR_DRAFTS 0x0200u
#define MAILBOX_ATTR_TRASH 0x0400u
#define MAILBOX_ATTR_JUNK 0x0800u
#define MAILBOX_ATTR_SPECIAL_USE                                                                   \
    (MAILBOX_ATTR_SENT | MAILBOX_ATTR_DRAFTS | MAILBOX_ATTR_TRASH | MAILBOX_ATTR_JUNK)

/* The IMAP hierarchy delimiter: '.'. */
char mailbox_delimiter(void);

/*
 * Check a UTF-8 folder name (rules above). 0, or -1 with the reason in err.
 * canon (may be NULL) gets the canonical name ("INBOX" upper-cased).
 */
int mailbox_name_check(const char *name_utf8, struct strbuf *canon, struct strbuf *err);

/* True when name is INBOX (any case). */
bool mailbox_is_inbox(const char *name_utf8);

/*
 * The directory of a folder: root for INBOX, else root + "/." + the name in
 * modified UTF-7. Does not check that it exists. 0, or -1 with err.
 */
int mailbox_name_to_dir(const char *maildir_root, const char *name_utf8, struct strbuf *path_r,
                        struct strbuf *err);

/* 1 if the folder exists (its directory has cur/), 0 if not, -1 with err if the name is bad. */
int mailbox_exists(const char *maildir_root, const char *name_utf8, struct strbuf *err);

/* The SPECIAL-USE attribute of a name (MAILBOX_ATTR_SENT...), 0 for none. */
unsigned mailbox_special_use(const char *name_utf8);

/*
 * Create a folder (tmp/ new/ cur/, mode 0700, a maildirfolder file as
 * Maildir++ wants). Missing parents are not created (they are \Noselect
 * until created). 0, MAILBOX_EEXIST, or -1.
 */
int mailbox_create(const char *maildir_root, const char *name_utf8, struct strbuf *err);

/*
 * Delete a folder and its messages; children stay (the name becomes
 * \Noselect while it has some). INBOX cannot be deleted. The directory is
 * first renamed out of the namespace, so a crash leaves no half folder.
 * 0, MAILBOX_ENOENT, or -1.
 */
int mailbox_delete(const char *maildir_root, const char *name_utf8, struct strbuf *err);

/*
 * Rename a folder and all its children (RFC 3501 §6.3.5). Renaming INBOX
 * moves its messages into a new folder named newname and leaves INBOX empty.
 * Renaming into its own child is refused. Subscriptions follow.
 * 0, MAILBOX_ENOENT (old), MAILBOX_EEXIST (new), or -1.
 */
int mailbox_rename(const char *maildir_root, const char *oldname, const char *newname,
                   struct strbuf *err);

/*
 * Call cb for every folder, INBOX first, then by name: attrs has
 * HASCHILDREN or HASNOCHILDREN, NOSELECT for a parent that exists only
 * through its children, SUBSCRIBED, and the SPECIAL-USE bit. Directories
 * whose names are not valid modified UTF-7 or not safe are skipped with a
 * log line. 0, or -1 with err.
 */
typedef void mailbox_list_cb(void *ctx, const char *name_utf8, unsigned attrs);
int mailbox_list(const char *maildir_root, mailbox_list_cb *cb, void *ctx, struct strbuf *err);

/*
 * Subscriptions: the file "subscriptions" in the root, one UTF-8 name a
 * line, replaced atomically (write tmp, fsync, rename). Subscribing a name
 * that does not exist is allowed (RFC 3501 §6.3.6). 0 or -1.
 */
int mailbox_subscribe(const char *maildir_root, const char *name_utf8, struct strbuf *err);
int mailbox_unsubscribe(const char *maildir_root, const char *name_utf8, struct strbuf *err);
/* cb gets each subscribed name with attrs as mailbox_list gives them, plus
 * SUBSCRIBED, or NONEXISTENT when the folder is gone. */
int mailbox_list_subscribed(const char *maildir_root, mailbox_list_cb *cb, void *ctx,
                            struct strbuf *err);

/*
 * A new user's store: INBOX (the root Maildir) and Sent, Drafts, Trash and
 * Junk, all subscribed. Idempotent: what exists is left alone, so imapd
 * calls it at every login and mailctl at `user add`. 0 or -1.
 */
int mailbox_create_defaults(const char *maildir_root, struct strbuf *err);

/*
 * Replace the small file path with data as one step: write PATH.tmp.PID,
 * fsync it, rename it over path (the directory is not fsync'ed). Used for
 * the subscriptions file and the index's side files. 0, or -1 with
 * "write PATH: reason" in err (the temporary file is removed).
 */
int mailbox_file_replace(const char *path, const char *data, size_t len, struct strbuf *err);

#endif
