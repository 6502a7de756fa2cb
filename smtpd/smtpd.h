/*
 * smtpd - internal interfaces of the SMTP server.
 *
 * check.c decides the reply to each command from the protocol state alone
 * (no I/O, no side effects: unit-tested by smtpd/test_smtpd_check.c);
 * session.c reads commands, calls the check, writes the reply and acts on
 * it (changes state); data.c receives DATA into a queue file.
 */
#ifndef TEGAMI_SMTPD_H
#define TEGAMI_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "recipient.h"
#include "smtp_parse.h"
#include "strbuf.h"

struct stream;
struct server_client;

/* Limits, read once from the configuration at post_init. */
struct smtpd_limits {
    size_t line_limit;             /* smtpd_line_length_limit */
    size_t rcpt_limit;             /* smtpd_recipient_limit */
    unsigned long long size_limit; /* message_size_limit, 0 = none */
    int hard_error_limit;          /* smtpd_hard_error_limit */
    int soft_error_limit;          /* smtpd_soft_error_limit */
    int error_sleep;               /* smtpd_error_sleep_time, seconds */
    int timeout;                   /* smtpd_timeout, seconds */
    int hopcount_limit;            /* hopcount_limit */
};

/* What the checks need to know about the world. */
struct smtpd_policy {
    const struct smtpd_limits *limits;
    const char *myhostname;
    bool client_trusted; /* client address matches mynetworks */
    enum recipient_class (*classify)(const char *address, struct strbuf *err);
    /* TLS and AUTH (tls.c, auth.c, submission.c; smtpd_submission_policy). */
    bool tls_available; /* a certificate is configured: STARTTLS possible */
    bool auth_enabled;  /* smtpd_sasl_auth_enable */
    bool auth_tls_only; /* smtpd_tls_auth_only: AUTH only under TLS */
    bool submission;    /* smtpd_submission: AUTH before MAIL, sender ownership */
    /* Does login own sender? 1 yes, 0 no, -1 table error (err set). */
    int (*sender_owned)(const char *login, const char *sender, struct strbuf *err);
};

/* The protocol state the checks read (session.c changes it). */
struct smtpd_state {
    bool helo_seen;        /* HELO or EHLO accepted */
    bool esmtp;            /* it was EHLO */
    bool mail_seen;        /* MAIL accepted, transaction open */
    size_t nrcpt;          /* recipients accepted in this transaction */
    bool tls;              /* the session runs over TLS */
    const char *sasl_user; /* the authenticated login, NULL before AUTH */
    /* ESMTP transaction options (esmtp.c, bdat.c). */
    bool smtputf8;   /* MAIL had SMTPUTF8: UTF-8 recipients allowed */
    bool binarymime; /* MAIL had BODY=BINARYMIME: DATA refused */
    bool bdat;       /* a BDAT chunk was seen: DATA refused */
};

/* A check's verdict. */
struct smtpd_verdict {
    int code;                /* SMTP reply code */
    bool count_error;        /* counts toward the error limits */
    bool disconnect;         /* close the session after the reply */
    unsigned long long size; /* MAIL: SIZE= value (0 if none) */
};

/*
 * Decide the reply to one parsed command. pr/perr are smtp_parse_command's
 * result and error text. The full reply text (without the final CRLF;
 * lines of a multi-line reply separated by CRLF) goes into reply (reset
 * first). The "forbidden" flag marks a verb from smtpd_forbidden_commands.
 */
struct smtpd_verdict smtpd_check(const struct smtpd_state *st, const struct smtpd_policy *pol,
                                 enum smtp_parse_result pr, const char *perr,
                                 const struct smtp_cmd *cmd, bool forbidden, struct strbuf *reply);

/* Session (session.c). */
struct smtpd_session;
void smtpd_session_run(struct server_client *client, const struct smtpd_limits *limits,
                       const struct smtpd_policy *policy_template, const struct strbuf *banner,
                       char **forbidden);

/*
 * Send one reply line and flush, after the session ended on the read side
 * (timeout): RFC 5321 §4.2 still wants the 421 said. The stream keeps
 * writing after a read timeout, and through TLS when the session is in TLS.
 */
void smtpd_reply_direct(struct stream *stream, const char *line);

/*
 * DATA reception (data.c): called after the 354 check passed. Writes the
 * reply (250/451/552/554/421) itself. Returns 0 to continue the session,
 * -1 to end it (timeout, lost connection).
 */
struct smtpd_data_ctx {
    struct stream *stream;
    const struct smtpd_limits *limits;
    const char *myhostname;
    const char *client_name;
    const char *client_addr;
    const char *helo;     /* may be NULL */
    const char *protocol; /* "SMTP" or "ESMTP" */
    const char *sender;   /* "" = null sender */
    char **rcpts;
    size_t nrcpt;
    int *errors;                      /* incremented on error replies */
    const char *tls_info;             /* "TLSv1.3 with cipher ..." or NULL (Received header) */
    const char *sasl_user;            /* authenticated login or NULL (queue file A record) */
    bool submission;                  /* add Message-ID and Date when missing */
    const struct smtpd_envelope *env; /* DSN/SMTPUTF8 options (esmtp.c), may be NULL */
};
int smtpd_data(struct smtpd_data_ctx *ctx);
/* The Received: header (RFC 5321 §4.4) as the first content lines (data.c). */
struct qf_writer;
void smtpd_received_header(struct qf_writer *w, const struct smtpd_data_ctx *c,
                           const char *queue_id, time_t now);

/*
 * ESMTP transaction options (esmtp.c): SMTPUTF8 (RFC 6531), DSN (RFC
 * 3461: RET, ENVID per message, NOTIFY and ORCPT per recipient), BODY.
 * session.c fills it from commands the check accepted; data.c and bdat.c
 * write it into the queue file. Owns its strings.
 */
struct smtpd_envelope {
    bool smtputf8;
    bool binarymime;
    int ret;          /* 0 none, 1 FULL, 2 HDRS (qf_message.dsn_ret) */
    char *envid;      /* decoded ENVID or NULL */
    char **orcpt;     /* per accepted recipient: "type;addr" or NULL */
    unsigned *notify; /* per accepted recipient: QF_NOTIFY_* bits */
    size_t cap;
};
/* smtp_parse_command flags for this line: UTF-8 paths on MAIL/RCPT after EHLO. */
unsigned smtpd_parse_flags(const struct smtpd_state *st, const char *line, size_t len);
/* MAIL accepted: start a transaction's options. */
void smtpd_envelope_mail(struct smtpd_envelope *e, const struct smtp_cmd *cmd);
/* RCPT accepted as recipient number index. */
void smtpd_envelope_rcpt(struct smtpd_envelope *e, size_t index, const struct smtp_cmd *cmd);
/* Forget the transaction (RSET, end of DATA/BDAT); keeps the arrays. */
void smtpd_envelope_reset(struct smtpd_envelope *e);
void smtpd_envelope_release(struct smtpd_envelope *e);
/* Write flags, DSN options and the recipients into a new queue file (e may be NULL). */
void smtpd_envelope_write(const struct smtpd_envelope *e, struct qf_writer *w, char **rcpts,
                          size_t nrcpt);
/* RFC 6531 §3.7.3: "UTF8SMTP..." in place of "ESMTP..." for SMTPUTF8 mail. */
const char *smtpd_envelope_protocol(const struct smtpd_envelope *e, const char *protocol);

/*
 * BDAT (bdat.c, RFC 3030), after smtpd_check gave its verdict (code,
 * reply text). Reads the chunk (always: a refused chunk is read and
 * discarded), appends it to the transaction's queue file (created by the
 * first chunk from ctx), and writes the reply: 250 per chunk, and after
 * LAST "250 ... queued as" only once the file is committed. *done_r: the
 * transaction is over (LAST, or refused by the check with LAST): the
 * caller resets it. Returns 0 to continue, -1 to end the session.
 */
struct smtpd_bdat;
int smtpd_bdat(struct smtpd_bdat **bp, struct smtpd_data_ctx *ctx, const struct smtp_cmd *cmd,
               int code, const char *reply, bool *done_r);
/* Abandon the transaction's queue file (RSET, EHLO, STARTTLS, end of session). */
void smtpd_bdat_free(struct smtpd_bdat **bp);

/* TLS (tls.c). */
struct tls_conn;
/* pre_init (still privileged: key files may be root-only): load the certificates. */
void smtpd_tls_pre_init(void);
/* A certificate is configured. */
bool smtpd_tls_available(void);
/* smtpd_tls_wrappermode: handshake at connect (RFC 8314). */
bool smtpd_tls_wrappermode(void);
/*
 * Run the server handshake on stream (input already discarded, output
 * flushed). 0 with *conn_r and *info_r ("TLSv1.3 with cipher ...", caller
 * frees) set, or -1 (logged; the session must end).
 */
int smtpd_tls_handshake(struct stream *stream, const char *client_name, const char *client_addr,
                        struct tls_conn **conn_r, char **info_r);

/* AUTH (auth.c). */
/*
 * Run one AUTH exchange (RFC 4954) after smtpd_check accepted the command
 * (verdict 334): challenges, responses, verification against the virtual
 * users, the 235/535 reply with a growing delay. *failures counts failed
 * attempts; at smtpd_auth_failure_limit it also says 421 and returns -1,
 * and so at the per-client smtpd_client_auth_failure_limit (abuse.c).
 * Returns 1 authenticated (*user_r set, caller frees), 0 not (reply sent),
 * -1 the session must end.
 */
int smtpd_auth_run(struct stream *stream, const struct smtpd_limits *limits,
                   const struct smtp_cmd *cmd, const char *client_name, const char *client_addr,
                   int *failures, char **user_r);

/* Submission (submission.c). */
/* Fill the TLS/AUTH/submission fields of the policy from the configuration (post_init). */
void smtpd_submission_policy(struct smtpd_policy *policy);
/* smtpd_sender_login_maps: 1 login owns sender, 0 not, -1 table error. */
int smtpd_sender_owned(const char *login, const char *sender, struct strbuf *err);
/* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" (RFC 3848). */
const char *smtpd_protocol_name(bool esmtp, bool tls, bool auth);
/* Header tracking for Message-ID/Date on submission (data.c calls these). */
struct smtpd_submission_hdrs {
    bool active; /* submission: add what is missing */
    bool date;
    bool message_id;
};
/* Note one header line (at the start of a line, in the header section). */
void smtpd_submission_header(struct smtpd_submission_hdrs *h, const char *line, size_t len);
/* Append the missing headers (LF line ends) for queue_id to out. */
void smtpd_submission_missing(const struct smtpd_submission_hdrs *h, const char *queue_id,
                              const char *myhostname, struct strbuf *out);

#endif
