/*
 * pop3d - internal interfaces of the POP3 server (RFC 1939, RFC 2449).
 *
 * main.c      option parsing, parameters, the server skeleton
 * session.c   one connection: greeting, read loop, bounds, dispatch
 * commands.c  each command split into check (validate, decide the reply)
 *             and act (change state)
 * mailbox.c   the Maildir behind a TRANSACTION: lock, message table,
 *             deletion marks, the UPDATE step and the RETR/TOP transfer
 */
#ifndef TEGAMI_POP3D_H
#define TEGAMI_POP3D_H

#include <stdbool.h>
#include <stddef.h>

#include "maildir.h"
#include "mbox_index.h"
#include "pop3_parse.h"
#include "server.h"
#include "stream.h"
#include "strbuf.h"
#include "tls.h"

/* Parameters, read once in post_init (see libmail/params_pop3d.c). */
struct pop3d_params {
    long long timeout;            /* pop3d_timeout, seconds */
    long long auth_delay;         /* pop3d_auth_failure_delay, seconds */
    long long auth_limit;         /* pop3d_auth_failure_limit */
    long long line_limit;         /* pop3d_line_length_limit, CRLF included */
    long long error_limit;        /* pop3d_error_limit */
    bool plaintext_auth;          /* pop3d_plaintext_auth */
    bool plaintext_auth_loopback; /* pop3d_plaintext_auth_loopback */
    int tls_timeout_ms;           /* tls_handshake_timeout */
};
extern struct pop3d_params pop3d_params;
void pop3d_params_load(void);
/* The TLS server context (main.c, pre_init), NULL when no certificate is configured. */
extern struct tls_ctx *pop3d_tls_ctx;
/* pop3d_tls_wrappermode: POP3S, the handshake comes before the greeting. */
extern bool pop3d_tls_wrapper;

/*
 * The mailbox of a logged-in session: INBOX through the same index as
 * IMAP (libmail/mbox_index), so POP3 and IMAP agree on what exists. The
 * UIDL of a message is Dovecot's default format %08Xu%08Xv: its IMAP UID
 * then the folder's UIDVALIDITY, 8 upper-case hex digits each - stable
 * across sessions and index rebuilds, and what a user moving from Dovecot
 * already has.
 */
struct pop3_mailbox {
    char *path;  /* the Maildir */
    int lock_fd; /* from maildir_lock: one POP3 session per maildrop (RFC 1939 §8) */
    struct mbox *box;
    struct maildir_msg *msgs; /* path "cur/<name>", sizes; uid = the UIDL */
    uint32_t *uids;           /* IMAP UID of each message */
    size_t count;
    bool *deleted;   /* marks, applied only in the UPDATE state */
    bool *retrieved; /* RETR'd: \Seen is set in the UPDATE state, as Dovecot does */
    char **uidl;     /* RFC 1939 §7 conforming unique-id per message */
};

/* Lock and list: 0, or -1 with *resp_r a complete "-ERR ..." reply text. */
int pop3_mailbox_open(struct pop3_mailbox *mb, const char *path, const char **resp_r,
                      struct strbuf *err);
void pop3_mailbox_close(struct pop3_mailbox *mb);
/* Message by 1-based number; NULL if out of range or marked deleted. */
const struct maildir_msg *pop3_mailbox_get(const struct pop3_mailbox *mb, unsigned long n);
/* Count and CRLF size of messages not marked deleted. */
void pop3_mailbox_stat(const struct pop3_mailbox *mb, size_t *count_r, unsigned long long *size_r);
/* UPDATE state: expunge the marked messages through the index (one
 * transaction) and set \Seen on those retrieved. Returns how many could not
 * be removed. */
size_t pop3_mailbox_update(struct pop3_mailbox *mb, size_t *deleted_r);

/*
 * Send message n as a multi-line response body: LF → CRLF, dot-stuffing,
 * final ".\r\n". top_lines < 0 sends all of it, else the header, the empty
 * line and top_lines body lines (TOP). Returns 0, 1 if the file could not be
 * opened (nothing sent; the caller answers -ERR), or -1 if the transfer broke
 * after output began (the session must end).
 */
int pop3_mailbox_send(struct pop3_mailbox *mb, unsigned long n, long top_lines, struct stream *out,
                      const char *ok_line);

enum pop3_state { POP3_STATE_AUTH, POP3_STATE_TRANSACTION, POP3_STATE_DONE };

struct pop3_session {
    struct stream *stream;
    const char *client; /* "[addr]:port" for logs */
    enum pop3_state state;
    char *user;  /* USER given (validated, lowercase), or NULL */
    char *login; /* the logged-in user */
    unsigned auth_failures;
    unsigned errors;
    struct pop3_mailbox mb;
    bool have_mailbox;
    unsigned long retrieved; /* RETR count, for the log */
    unsigned long long retrieved_bytes;
    struct tls_conn *tls; /* after STLS or on POP3S */
    bool loopback;        /* client on 127.0.0.0/8 or ::1 */
};

/* Run the TLS handshake on the session's stream: 0, or -1 (logged; end the session). */
int pop3_session_start_tls(struct pop3_session *sess);

/* Run one command; may set state to POP3_STATE_DONE to end the session. */
void pop3_command_run(struct pop3_session *sess, const struct pop3_command *cmd);
/* Count one erroneous command; ends the session at pop3d_error_limit. */
void pop3_session_error(struct pop3_session *sess, const char *reply);
/* Queue a reply line (CRLF appended). */
void pop3_reply(struct pop3_session *sess, const char *fmt, ...) MSG_PRINTF(2, 3);

/* The SERVER_SINGLE service function. */
void pop3d_service(struct server_client *client);

#endif
