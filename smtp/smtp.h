/*
 * smtp - the outbound SMTP client: shared declarations of its modules.
 *
 * main.c     the daemon: qmgr requests on private/smtp, one at a time per
 *            connection; request parsing, the reply, the session cache
 * dest.c     nexthop → hosts and addresses to try (MX, A/AAAA, loops,
 *            TLSA for DANE)
 * session.c  one SMTP session with one server address: greeting,
 *            EHLO/HELO, STARTTLS, AUTH, MAIL/RCPT/DATA (pipelined when
 *            offered), RSET and QUIT
 *
 * Results travel per recipient (status 2/4/5, dsn, reason), as in
 * docs/protocols.md "qmgr → private/smtp".
 */
#ifndef TEGAMI_SMTP_H
#define TEGAMI_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "dns.h"
#include "queue_file.h"
#include "smtp_reply.h"
#include "strbuf.h"
#include "tls.h"

struct dict;
struct stream;

/* Per-process settings, read once in post_init. */
struct smtp_params {
    int port;
    const char *helo_name;
    int mx_address_limit;
    int connect_timeout_ms, helo_timeout_ms, mail_timeout_ms, rcpt_timeout_ms;
    int data_init_timeout_ms, data_xfer_timeout_ms, data_done_timeout_ms;
    int quit_timeout_ms, starttls_timeout_ms;
    enum tls_level tls_level;
    long long cache_time_ms;
    bool sasl_enable, sasl_tls_only;
    size_t request_size_limit;
    int ipc_timeout_ms;
    struct dns_resolver *resolver;
    struct tls_ctx *tls; /* NULL when no client context could be made (TLS then fails) */
    struct dict **tls_policy_maps, **sasl_password_maps;
    size_t ntls_policy_maps, nsasl_password_maps;
    char **self_names; /* myhostname and the like, for MX loop detection */
    size_t nself_names;
    struct sockaddr_storage *self_addrs; /* our inet listeners (port included) */
    size_t nself_addrs;
};
extern struct smtp_params smtp_params;
/* The queue ID of the request being served, for log lines. */
extern const char *smtp_log_id;

/* One recipient of a request. */
struct smtp_rcpt {
    long long index;
    const char *address;
    const char *orig; /* ORCPT as queued ("rfc822;x@y" or "x@y"), or NULL */
    unsigned notify;  /* QF_NOTIFY_* */
    int status;       /* 0 = not decided yet, 2, 4, 5 */
    char dsn[16];
    struct strbuf reason;
    bool accepted; /* RCPT got 2xx in the current transaction */
};

/* One delivery request from qmgr. */
struct smtp_request {
    const char *queue_id;
    const char *sender;
    const char *nexthop;
    off_t offset;
    size_t size;
    int fd;                /* active/QUEUEID, read-only */
    struct qf_message msg; /* its envelope (DSN options, SMTPUTF8) */
    bool has_8bit;         /* content has bytes >= 0x80 */
    size_t wire_size;      /* content size with CRLF line ends (estimate for SIZE=) */
    struct smtp_rcpt *rcpts;
    size_t nrcpts;
    struct strbuf relay; /* "mx.b.test[127.0.0.3]:25" or "none" */
    bool dest_ok;        /* some host got as far as MAIL FROM */
};

/* A parsed nexthop: "domain", "[host]", "[addr]", each with optional ":port". */
struct smtp_nexthop {
    char host[DNS_NAME_MAX + 1];
    int port;
    bool bracketed; /* no MX lookup */
};

/* One address to try. */
struct smtp_addr {
    char host[DNS_NAME_MAX + 1]; /* the MX host name (or the literal) */
    char addr[DNS_ADDR_TEXT_MAX];
    int port;
    bool secure; /* the MX (if any) and the address answers were DNSSEC-validated */
};

/* The outcome of resolving a nexthop. */
struct smtp_dest {
    struct smtp_addr *addrs;
    size_t naddrs;
    int status; /* 0 = addrs usable; else 4/5 with dsn and reason for every recipient */
    char dsn[16];
    struct strbuf reason;
};

/* ---- dest.c ---- */

/* Parse qmgr's nexthop; 0, or -1 when malformed. */
int smtp_nexthop_parse(const char *text, int default_port, struct smtp_nexthop *out);
/* Resolve nh into addresses to try (at most mx_address_limit), in order. */
void smtp_dest_resolve(const struct smtp_nexthop *nh, struct smtp_dest *dest);
void smtp_dest_release(struct smtp_dest *dest);
/*
 * DANE (RFC 7672 §2.2): the TLSA records at _PORT._tcp.HOST when addr is
 * secure. Returns the count (0: none usable or insecure: behave as may),
 * or -1 when the lookup failed temporarily (defer). *reply_r must be
 * released with dns_reply_free when the return is >= 0.
 */
int smtp_dest_tlsa(const struct smtp_addr *addr, struct dns_reply *reply_r);

/* ---- session.c ---- */

struct smtp_session;

/*
 * Outcome of smtp_session_open / smtp_session_deliver:
 *  SMTP_SESS_OK: the session works (open) / the transaction ran (deliver;
 *   per-recipient results set).
 *  SMTP_SESS_NEXT: this host failed before MAIL FROM (connect, greeting,
 *   EHLO, STARTTLS, AUTH): *fail has status/dsn/reason, try the next host.
 *  SMTP_SESS_RETRY_PLAIN: TLS failed at level may: try the same address again
 *   once without TLS.
 */
enum smtp_sess_result { SMTP_SESS_OK, SMTP_SESS_NEXT, SMTP_SESS_RETRY_PLAIN };

struct smtp_fail {
    int status;
    char dsn[16];
    struct strbuf reason;
};

/*
 * Connect to addr, read the greeting, EHLO (HELO fallback), STARTTLS per
 * level, AUTH when configured. nexthop is the request's nexthop text (for
 * the SASL password lookup). no_tls: skip STARTTLS (the retry after a
 * failed opportunistic handshake).
 */
enum smtp_sess_result smtp_session_open(const struct smtp_addr *addr, const char *nexthop,
                                        enum tls_level level, bool no_tls,
                                        struct smtp_session **sess_r, struct smtp_fail *fail);
/*
 * Run one transaction for the recipients of q whose status is 0 or 4. Sets
 * their status/dsn/reason. Returns false when the session is unusable
 * afterwards (I/O error, 421, timeout): it must be closed, not reused.
 */
bool smtp_session_deliver(struct smtp_session *sess, struct smtp_request *q);
/* RSET for reuse; false if the session did not answer 250. */
bool smtp_session_reset(struct smtp_session *sess);
/* QUIT (best effort) and free. */
void smtp_session_close(struct smtp_session **sessp, bool quit);
/* "mx.b.test[127.0.0.3]:25" */
const char *smtp_session_relay(const struct smtp_session *sess);

void smtp_fail_set(struct smtp_fail *f, int status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
