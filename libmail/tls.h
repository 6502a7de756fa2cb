/*
 * tls - TLS (OpenSSL) under libmail's buffered streams.
 *
 * Used by smtpd (STARTTLS, implicit TLS on 465), pop3d (STLS, POP3S) and,
 * later, imapd and the smtp client. A struct tls_ctx is made once per
 * process from the configuration (at post_init, after the privilege drop,
 * so a daemon restarted by `mailctl reload` reads the certificate files
 * again); a struct tls_conn is one connection on an open struct stream.
 * tls_conn_start() runs the handshake within a timeout and then switches
 * the stream to TLS (stream_set_ops): the protocol code keeps using the
 * same stream.
 *
 * Server contexts: a certificate chain + key pair, and an optional second
 * pair (e.g. ECDSA beside RSA: OpenSSL picks the one the client supports).
 * Protocol floor from tls_protocols (TLS 1.2 by default), cipher lists from
 * tls_cipherlist / tls_ciphersuites, a server-side session cache and session
 * tickets whose key is shared by every process of the instance through
 * $data_directory/tls_ticket.key (created and rotated there), so a client
 * resumes its session whichever smtpd process it reaches.
 *
 * Client contexts verify the peer against a CA file when one is given.
 *
 * Errors: constructors return NULL and put a readable reason (with
 * OpenSSL's error text) into err. Peer errors never abort: a failed
 * handshake returns -1 and the caller ends the session. SIGPIPE is ignored
 * in every process that makes a TLS context (OpenSSL writes with write(2)).
 */
#ifndef TEGAMI_TLS_H
#define TEGAMI_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct stream;

/* What a context is made from. Strings may be NULL or "" (= not set). */
struct tls_config {
    const char *cert_file;  /* PEM: certificate, then the chain */
    const char *key_file;   /* PEM private key (may be the same file) */
    const char *cert2_file; /* optional second pair (other key type) */
    const char *key2_file;
    const char *protocols;       /* ">=TLSv1.2", ">=TLSv1.3", "TLSv1.2 TLSv1.3" */
    const char *cipherlist;      /* TLS <= 1.2 cipher string (OpenSSL syntax) */
    const char *ciphersuites;    /* TLS 1.3 suites, "" = OpenSSL's default */
    long session_timeout;        /* seconds a session may be resumed */
    bool session_tickets;        /* RFC 5077 / TLS 1.3 tickets */
    const char *ticket_key_file; /* shared ticket key, NULL = per-process key */
    const char *ca_file;         /* client: trust anchors; NULL = no verification */
};

struct tls_ctx;
struct tls_conn;

/* A server context (needs cert_file). NULL with err on failure. */
struct tls_ctx *tls_server_ctx_new(const struct tls_config *cfg, struct strbuf *err);
/* A client context. NULL with err on failure. */
struct tls_ctx *tls_client_ctx_new(const struct tls_config *cfg, struct strbuf *err);
void tls_ctx_free(struct tls_ctx **ctxp);

/*
 * The server context for daemon "smtpd" or "pop3d" from main.cf
 * (<prefix>_tls_cert_file, _key_file, _eccert_file, _eckey_file and the
 * global tls_* parameters). Returns 1 with *ctx_r set, 0 when no
 * certificate is configured (TLS not offered), -1 with err when the
 * configuration or a file is bad.
 */
int tls_server_ctx_from_config(const char *prefix, struct tls_ctx **ctx_r, struct strbuf *err);

/*
 * Handshake on the stream's fd within timeout_ms, as server or client
 * (servername: SNI and, with a CA file, the name to verify; may be NULL).
 * The caller must have flushed the stream and discarded its buffered input.
 * On success the stream reads and writes through TLS and the connection
 * belongs to the caller (tls_conn_free, then stream_free).
 * NULL with a reason in err on failure (the stream is unusable then).
 */
struct tls_conn *tls_conn_start(struct tls_ctx *ctx, struct stream *stream, bool server,
                                const char *servername, int timeout_ms, struct strbuf *err);
/*
 * Send close_notify (best effort, never blocks) and free. Call before
 * stream_free: the stream must not be used for I/O afterwards.
 */
void tls_conn_free(struct tls_conn **connp);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for logs and Received. */
void tls_conn_describe(const struct tls_conn *conn, struct strbuf *out);
/* Protocol version name ("TLSv1.3") and whether the session was resumed. */
const char *tls_conn_version(const struct tls_conn *conn);
bool tls_conn_resumed(const struct tls_conn *conn);
/* Client side: did the peer's certificate verify (ca_file given)? */
bool tls_conn_verified(const struct tls_conn *conn);

/*
 * Parse a tls_protocols value into OpenSSL version numbers (TLS1_2_VERSION
 * ...). 0 or -1 with err. max_r is 0 when there is no upper bound.
 */
int tls_parse_protocols(const char *text, int *min_r, int *max_r, struct strbuf *err);

/* ---- SMTP client security levels (smtp, RFC 3207 / RFC 7672) ----------- */

/*
 * Security levels of an outbound SMTP session, Postfix's names:
 * none (no TLS), may (opportunistic, unauthenticated), encrypt (TLS
 * mandatory, no authentication), verify (chain against the CA store and a
 * name match), dane (RFC 7672: the host's DNSSEC-validated TLSA records).
 */
enum tls_level {
    TLS_LEVEL_NONE,
    TLS_LEVEL_MAY,
    TLS_LEVEL_ENCRYPT,
    TLS_LEVEL_VERIFY,
    TLS_LEVEL_DANE
};

/* "none" "may" "encrypt" "verify" "dane" (case-insensitive): 0, or -1. */
int tls_level_parse(const char *text, enum tls_level *level_r);
/* The name of a level ("may"); never NULL. */
const char *tls_level_str(enum tls_level level);

/* One TLSA record (RFC 6698 §2.1); data is borrowed, not copied. */
struct tls_tlsa {
    uint8_t usage, selector, mtype;
    const unsigned char *data;
    size_t len;
};

/* What the smtp client requires of one connection. All pointers are borrowed. */
struct tls_client_policy {
    enum tls_level level;
    const char *servername;          /* SNI (the MX host name), may be NULL */
    const char *const *verify_names; /* verify/DANE-TA: names the certificate must match (any) */
    size_t nverify_names;
    const struct tls_tlsa *tlsa; /* dane: the host's DNSSEC-validated TLSA records */
    size_t ntlsa;
};

/*
 * Client handshake on the stream under a policy, within timeout_ms.
 * may/encrypt: no peer authentication. verify: the chain must verify
 * against the context's CA store and one of verify_names must match
 * (servername when there are none). dane (RFC 7672): DANE-TA(2) and
 * DANE-EE(3) records are used (EE ignores names and dates, TA checks the
 * names); PKIX-TA(0)/PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3)
 * and ignored; with no usable record the handshake is not attempted and
 * err says "no usable TLSA records". NULL with a reason in err on failure
 * (the stream is unusable then); on success as tls_conn_start.
 */
struct tls_conn *tls_client_start(struct tls_ctx *ctx, struct stream *stream,
                                  const struct tls_client_policy *pol, int timeout_ms,
                                  struct strbuf *err);

/* How the peer of a client connection was authenticated. */
enum tls_peer_trust { TLS_PEER_ANON, TLS_PEER_VERIFIED, TLS_PEER_DANE };
enum tls_peer_trust tls_conn_peer_trust(const struct tls_conn *conn);

/*
 * The client context for "smtp" from main.cf: <prefix>_tls_CAfile,
 * <prefix>_tls_CApath (both empty = OpenSSL's default trust store),
 * <prefix>_tls_protocols, _ciphers, _ciphersuites, optional client
 * certificate <prefix>_tls_cert_file/_key_file. Sessions are cached in
 * the context per server name (tls_client_start resumes them).
 * 0 with *ctx_r, or -1 with err.
 */
int tls_client_ctx_from_config(const char *prefix, struct tls_ctx **ctx_r, struct strbuf *err);

#endif
