/*
 * dsn - RFC 3464 delivery status notifications ("bounces").
 *
 * qmgr calls this when a recipient failed permanently (or its queue lifetime
 * ran out) to compose the message that goes back to the sender: a
 * multipart/report; report-type=delivery-status (RFC 6522) with a human
 * readable part, a message/delivery-status part with one block per recipient
 * (RFC 3464 §2.3), and the original headers as text/rfc822-headers (or the
 * whole original as message/rfc822 when the sender asked for RET=FULL and it
 * is small enough). Lines end in LF, like every queued message.
 *
 * Who gets a DSN is decided here too, so the rule is testable on its own:
 * never for the null sender, never for a message that is itself a bounce
 * (no bounce loops), and only for recipients whose NOTIFY asks for it.
 *
 * Nothing here touches the queue; the caller writes the returned text into a
 * new queue file. Text that came from peers (addresses, reasons, original
 * headers) is sanitized so it can't inject header lines or MIME boundaries.
 */
#ifndef TEGAMI_DSN_H
#define TEGAMI_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue_file.h"
#include "strbuf.h"

/* Largest original header block copied into a DSN (longer ones are cut at a line end). */
#define DSN_HEADERS_MAX 65536
/* Longest diagnostic text kept per recipient (RFC 5322 line limit is 998). */
#define DSN_REASON_MAX 800

enum dsn_action {
    DSN_ACTION_FAILED,    /* "failed": permanent failure or lifetime expired */
    DSN_ACTION_DELAYED,   /* "delayed": still being retried */
    DSN_ACTION_DELIVERED, /* "delivered": NOTIFY=SUCCESS */
};

/* One recipient reported in a DSN. All strings are borrowed. */
struct dsn_rcpt {
    const char *address; /* final recipient, "user@domain" */
    const char *orig;    /* ORCPT ("rfc822;addr" or a bare address) or NULL/"" */
    enum dsn_action action;
    const char *status; /* "5.1.1"; anything not X.Y.Z is reported as 5.0.0 / 4.0.0 */
    const char *reason; /* human-readable diagnostic, may be NULL */
};

/* Everything the composer needs. All pointers are borrowed. */
struct dsn_request {
    const struct qf_message *msg; /* the original envelope (sender, arrival, envid) */
    const char *queue_id;         /* the original message's queue ID */
    const char *myhostname;       /* Reporting-MTA and From: MAILER-DAEMON@... */
    const struct dsn_rcpt *rcpts;
    size_t nrcpts;
    const char *original; /* original headers, or the whole message */
    size_t original_len;
    bool original_full;      /* original is the whole message (message/rfc822) */
    time_t now;              /* Date: and boundary */
    time_t will_retry_until; /* delayed recipients: RFC 3464 §2.3.9 Will-Retry-Until, 0 = none */
};

/* False for the null sender and for bounces: those never get a DSN. */
bool dsn_wanted(const struct qf_message *msg);
/*
 * True if recipient r wants to hear about action (RFC 3461 NOTIFY): no
 * NOTIFY means FAILURE (and DELAY) only; NEVER means nothing.
 */
bool dsn_rcpt_notify(const struct qf_recipient *r, enum dsn_action action);
/* True if s is a status code "C.S.D" (C 2/4/5, S and D 1..3 digits). */
bool dsn_status_valid(const char *s);

/* Append the complete DSN message (headers and body, LF line ends) to out. */
void dsn_compose(const struct dsn_request *req, struct strbuf *out);

/*
 * Read the original message's part to return from the queue file on fd:
 * the whole content when dsn_ret is FULL and it is at most full_limit bytes
 * (*full_r = true), else the header block up to the first empty line, at
 * most DSN_HEADERS_MAX bytes. out is reset first. 0, or -1 on a read error.
 */
int dsn_read_original(int fd, const struct qf_message *msg, size_t full_limit, struct strbuf *out,
                      bool *full_r);

#endif
