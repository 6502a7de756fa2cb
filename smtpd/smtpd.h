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
};

/* The protocol state the checks read (session.c changes it). */
struct smtpd_state {
    bool helo_seen; /* HELO or EHLO accepted */
    bool esmtp;     /* it was EHLO */
    bool mail_seen; /* MAIL accepted, transaction open */
    size_t nrcpt;   /* recipients accepted in this transaction */
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
 * Send one reply line straight to the socket, bypassing the stream: after a
 * read timeout the stream's error is sticky and it refuses to write, but
 * RFC 5321 §4.2 still wants the 421 said (session.c).
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
    int *errors; /* incremented on error replies */
};
int smtpd_data(struct smtpd_data_ctx *ctx);

#endif
