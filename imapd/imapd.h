/*
 * imapd - internal interfaces of the IMAP server (RFC 3501 IMAP4rev1,
 * RFC 9051 IMAP4rev2 and the extensions in docs/protocols.md).
 *
 * main.c     options, parameters, TLS context, the server skeleton
 * session.c  one connection: greeting, command assembly (lines + literals,
 *            bounds), states, dispatch, reply helpers, auth, STARTTLS, IDLE
 * folders.c  LIST LSUB CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE STATUS
 *            NAMESPACE
 * select.c   SELECT EXAMINE CLOSE UNSELECT EXPUNGE CHECK, the session's
 *            view of the selected folder and its untagged updates
 * append.c   APPEND
 * fetch.c store.c search.c copy.c (H6b): FETCH STORE SEARCH COPY MOVE
 *            UID EXPUNGE and their CONDSTORE/QRESYNC parts
 * stubs.c    weak stand-ins for H6b's handlers until those files exist
 *
 * One process serves one connection at a time (SERVER_SINGLE, like pop3d).
 * A command handler gets the tag and a parser positioned right after the
 * command name (and after "UID " for UID commands); it parses the rest
 * itself (ending with imap_parse_eol) and must answer with exactly one
 * tagged reply. If parsing fails it answers imapd_bad(s, tag, p->error).
 *
 * Memory: everything a handler gets from the parser dies after the command;
 * the session owns the view and the selected folder.
 */
#ifndef TEGAMI_IMAPD_H
#define TEGAMI_IMAPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
#include "msg.h"
#include "server.h"
#include "stream.h"
#include "strbuf.h"
#include "tls.h"

struct mbox;     /* libmail/mbox_index.h (H5): one folder's index, opened */
struct mbox_rec; /* one message of it */

/* Parameters, read once in post_init (libmail/params_imapd.c). */
struct imapd_params {
    long long timeout;            /* imapd_timeout: logged-in session without a command, s */
    long long preauth_timeout;    /* imapd_preauth_timeout: before login, s */
    long long idle_timeout;       /* imapd_idle_timeout: one IDLE without DONE, s */
    long long auth_delay;         /* imapd_auth_failure_delay, s */
    long long auth_limit;         /* imapd_auth_failure_limit */
    long long line_limit;         /* imapd_max_line_length, bytes of one line, CRLF included */
    long long literal_limit;      /* imapd_max_literal_size: literal outside APPEND */
    long long append_limit;       /* imapd_max_append_size: one APPEND message */
    long long command_limit;      /* imapd_max_command_size: one command, literals included */
    long long list_depth;         /* imapd_max_list_depth */
    long long error_limit;        /* imapd_error_limit: BAD commands before BYE */
    long long user_conn_limit;    /* imapd_user_connection_limit, per user */
    long long idle_notify_ms;     /* imapd_idle_check_interval, in ms */
    long long release_ms;         /* imapd_idle_release_delay, in ms; 0 = never */
    bool plaintext_auth;          /* imapd_plaintext_auth */
    bool plaintext_auth_loopback; /* imapd_plaintext_auth_loopback */
    int tls_timeout_ms;           /* tls_handshake_timeout */
};
extern struct imapd_params imapd_params;
void imapd_params_load(void);
/* The TLS server context, NULL when no certificate is configured. */
extern struct tls_ctx *imapd_tls_ctx;
/* imapd_tls_wrappermode: IMAPS on 993, the handshake comes before the greeting. */
extern bool imapd_tls_wrapper;

enum imap_state {
    IMAP_STATE_NOAUTH,   /* RFC 3501 §3.1 not authenticated */
    IMAP_STATE_AUTH,     /* §3.2 authenticated, nothing selected */
    IMAP_STATE_SELECTED, /* §3.3 */
    IMAP_STATE_LOGOUT,   /* §3.4: the loop ends */
};

/* ENABLEd extensions (RFC 5161) and what implies them. */
#define IMAPD_ENABLE_CONDSTORE 0x01u /* RFC 7162 §3.1; also by any CONDSTORE-using command */
#define IMAPD_ENABLE_QRESYNC 0x02u   /* RFC 7162 §3.2 (implies CONDSTORE) */
#define IMAPD_ENABLE_UTF8 0x04u      /* RFC 6855 UTF8=ACCEPT: UTF-8 names on the wire */
#define IMAPD_ENABLE_REV2 0x08u      /* RFC 9051 IMAP4rev2 */

/* FLAGS of a message this session was told (FETCH, STORE) at a modseq above view.modseq. */
struct imap_view_told {
    uint32_t uid;
    uint64_t modseq;
};

/*
 * The session's view of the selected folder (RFC 3501 §5.2, §7.4.1): the
 * message sequence numbers it knows. It changes only when the session is
 * told: new messages by EXISTS, removals by EXPUNGE/VANISHED, which may only
 * be sent when no FETCH/STORE/SEARCH (by sequence number) is running.
 * 4 bytes a message: it stays while an idle session gives back the rest.
 */
struct imap_view {
    uint32_t *uids; /* sequence number = index + 1 */
    size_t count, cap;
    uint64_t modseq; /* everything up to this modseq was reported */
    /* Changes the session saw by itself since the last sync (usually none):
     * imapd_view_sync does not send them again. Emptied by every sync. */
    struct imap_view_told *told;
    size_t ntold, captold;
    uint32_t uidnext; /* UIDNEXT as last reported */
    uint32_t uidvalidity;
    size_t recent;        /* RECENT as last reported */
    size_t keywords;      /* keywords the last FLAGS response listed */
    bool expunge_pending; /* index has expunges this view still shows */
};

struct imap_session {
    struct stream *stream;
    const char *client; /* "[addr]:port" for logs */
    char addr[64];      /* numeric peer address */
    enum imap_state state;
    struct tls_conn *tls; /* after STARTTLS or on 993 */
    bool loopback;        /* client on 127.0.0.0/8 or ::1 */
    unsigned auth_failures;
    unsigned errors; /* BAD answers so far */

    char *user;       /* logged-in (virtual) user name */
    char *maildir;    /* the user's Maildir++ root */
    unsigned enabled; /* IMAPD_ENABLE_* */
    int user_slot_fd; /* connection-limit slot lock, -1 when none */

    /* Selected state. */
    struct mbox *mbox; /* the selected folder's index, NULL when none */
    char *folder;      /* its UTF-8 name */
    bool readonly;     /* EXAMINE, or no write access */
    struct imap_view view;
    /* RFC 5182 SEARCHRES "$": the UIDs saved by SEARCH RETURN (SAVE). */
    uint32_t *saved_uids;
    size_t saved_count;

    /* IMAPD_SYNC_* for the running command: imapd_tagged() sends the
     * untagged updates the command may carry before its tagged reply. */
    unsigned sync_flags;
    unsigned long commands; /* for the log */
    /* Idle memory given back (imapd_idle_release_delay); cleared by the next
     * command or folder sync in IDLE. */
    bool released;
};

/* ---- replies (queued on the stream; the loop flushes) ---- */

enum imap_status { IMAP_OK, IMAP_NO, IMAP_BAD };

/* "* <text>\r\n". */
void imapd_untagged(struct imap_session *s, const char *fmt, ...) MSG_PRINTF(2, 3);
/*
 * "<tag> OK|NO|BAD [<code>] <text>\r\n". code may be NULL; it is written in
 * brackets ("TRYCREATE", "APPENDUID 38505 3955"). In selected state it first
 * calls imapd_view_sync(s, s->sync_flags), so the untagged EXISTS, EXPUNGE /
 * VANISHED and FETCH FLAGS updates always precede the tagged reply.
 */
void imapd_tagged(struct imap_session *s, const char *tag, enum imap_status st, const char *code,
                  const char *fmt, ...) MSG_PRINTF(5, 6);
/* Shorthands. imapd_bad counts towards imapd_error_limit (then BYE, logout). */
void imapd_ok(struct imap_session *s, const char *tag, const char *text);
void imapd_no(struct imap_session *s, const char *tag, const char *text);
void imapd_bad(struct imap_session *s, const char *tag, const char *text);
/* Raw bytes into the reply (for building untagged responses piecewise). */
void imapd_write(struct imap_session *s, const void *data, size_t len);
void imapd_printf(struct imap_session *s, const char *fmt, ...) MSG_PRINTF(2, 3);
/*
 * An IMAP string: a quoted string when data is short 7-bit text without
 * CR/LF/NUL/'"'/'\\' needing no more than escaping, else a literal "{n}\r\n"
 * + bytes. imapd_write_nstring writes NIL for data == NULL.
 */
void imapd_write_string(struct imap_session *s, const char *data, size_t len);
void imapd_write_nstring(struct imap_session *s, const char *data, size_t len);
/* Append the same encodings to a buffer (for responses built in memory). */
void imapd_string_append(struct strbuf *out, const char *data, size_t len);
/* A UTF-8 folder name as 7-bit text for a response's human-readable part
 * (its mUTF-7 form). Static buffer: valid until the next call. */
const char *imapd_name_text(const char *name_utf8);
/* A folder name as the client wants it: mUTF-7, or UTF-8 with UTF8=ACCEPT. */
void imapd_write_folder_name(struct imap_session *s, const char *name_utf8);

/*
 * Read a folder-name argument (astring) and turn it into UTF-8 (from mUTF-7
 * unless UTF8=ACCEPT is enabled). On failure it has already answered
 * (BAD for syntax, NO for a name that is not valid mUTF-7) and returns false.
 * The result lives in out (caller's buffer).
 */
bool imapd_parse_folder(struct imap_session *s, const char *tag, struct imap_parser *p,
                        struct strbuf *out);

/* ---- the view of the selected folder (select.c) ---- */

/*
 * Resolve a sequence set against the view: uid = false means message
 * sequence numbers ('*' = the last; a number beyond the view is an error:
 * returns false with *error_r "Invalid messageset"), uid = true means UIDs
 * ('*' = the highest UID in the view; UIDs not in the view are skipped, RFC
 * 3501 §6.4.8). "$" uses the saved search result. The result is the sorted,
 * duplicate-free list of view indexes (0-based: seq - 1), allocated with
 * mymalloc (caller frees), possibly empty.
 */
bool imapd_view_resolve(struct imap_session *s, const struct imap_seqset *set, bool uid,
                        size_t **idx_r, size_t *count_r, const char **error_r);
/* The 1-based sequence number of uid in the view, or 0 if it is not there. */
uint32_t imapd_view_seq(const struct imap_session *s, uint32_t uid);
/*
 * Mark message index i as reported at modseq (after a FETCH that showed its
 * FLAGS, or STORE), so imapd_view_sync does not repeat it.
 */
void imapd_view_reported(struct imap_session *s, size_t i, uint64_t modseq);

/* What imapd_view_sync may tell the client. */
#define IMAPD_SYNC_EXPUNGES 0x01u /* EXPUNGE/VANISHED allowed (not during FETCH/STORE/SEARCH) */
#define IMAPD_SYNC_QUIET 0x02u    /* do not send FETCH FLAGS updates */

/*
 * Bring the view up to date with the index (mbox_sync) and send the untagged
 * updates: EXPUNGE (or VANISHED with QRESYNC) when flags allow, EXISTS /
 * RECENT for new messages, FETCH (FLAGS [MODSEQ]) for flag changes not yet
 * reported (imapd_view_reported). imapd_tagged() calls it before every
 * tagged reply in selected state with the command's sync_flags: expunges
 * are allowed except during FETCH, STORE and SEARCH by sequence number
 * (RFC 3501 §7.4.1); MOVE, EXPUNGE and UID EXPUNGE rely on it to send their
 * EXPUNGE/VANISHED responses after mbox_expunge_uids. IDLE calls it when the
 * folder changes. H6b's handlers need not call it.
 *
 * Between syncs the view may hold UIDs the index no longer has (expunged by
 * another session, not yet reported): mbox_rec_by_uid returns NULL for
 * them; FETCH skips them (RFC 3501 §7.4.1 allows NO or nothing).
 */
void imapd_view_sync(struct imap_session *s, unsigned flags);

/* ---- command handlers ---- */

typedef void imapd_cmd_fn(struct imap_session *s, const char *tag, struct imap_parser *p);

/* H6b (fetch.c, store.c, search.c, copy.c). uid: the UID form. */
void imapd_cmd_fetch(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid);
void imapd_cmd_store(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid);
void imapd_cmd_search(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid);
/* COPY / MOVE (RFC 6851), with COPYUID (RFC 4315). */
void imapd_cmd_copy(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid,
                    bool move);
/* UID EXPUNGE (RFC 4315 §2.1). */
void imapd_cmd_uid_expunge(struct imap_session *s, const char *tag, struct imap_parser *p);

/* folders.c */
void imapd_cmd_list(struct imap_session *s, const char *tag, struct imap_parser *p, bool lsub);
void imapd_cmd_create(struct imap_session *s, const char *tag, struct imap_parser *p);
void imapd_cmd_delete(struct imap_session *s, const char *tag, struct imap_parser *p);
void imapd_cmd_rename(struct imap_session *s, const char *tag, struct imap_parser *p);
void imapd_cmd_subscribe(struct imap_session *s, const char *tag, struct imap_parser *p,
                         bool subscribe);
void imapd_cmd_status(struct imap_session *s, const char *tag, struct imap_parser *p);
void imapd_cmd_namespace(struct imap_session *s, const char *tag, struct imap_parser *p);

/* select.c */
void imapd_cmd_select(struct imap_session *s, const char *tag, struct imap_parser *p, bool examine);
/* CLOSE (expunge = true) and UNSELECT. */
void imapd_cmd_close(struct imap_session *s, const char *tag, struct imap_parser *p, bool expunge);
void imapd_cmd_expunge(struct imap_session *s, const char *tag, struct imap_parser *p);
void imapd_cmd_check(struct imap_session *s, const char *tag, struct imap_parser *p);
/* Leave selected state (no expunge), freeing the view. */
void imapd_unselect(struct imap_session *s);
/* The fd that becomes readable when the selected folder changes, or -1 (IDLE),
 * and the call that drains it before the next imapd_view_sync. */
int imapd_view_change_fd(struct imap_session *s);
void imapd_view_change_ack(struct imap_session *s);
/*
 * The flag list of a record as FETCH FLAGS shows it: "(\Seen $Label1)",
 * \Recent included unless IMAP4rev2 is enabled. Appended to out.
 */
void imapd_flags_append(struct imap_session *s, const struct mbox_rec *r, struct strbuf *out);
/* Sorted UIDs as a compact uid-set "1:3,7,9:12" (COPYUID, VANISHED). Appended. */
void imapd_uidset_append(struct strbuf *out, const uint32_t *uids, size_t n);

/* append.c */
void imapd_cmd_append(struct imap_session *s, const char *tag, struct imap_parser *p);

/* session.c */
void imapd_service(struct server_client *client);

#endif
