/*
 * sasl - server-side decoders of the SASL mechanisms PLAIN (RFC 4616) and
 * LOGIN (draft-murchison-sasl-login), shared by smtpd AUTH (RFC 4954) and
 * pop3d AUTH (RFC 5034).
 *
 * Pure functions: the caller reads each client response line and hands the
 * bytes (CRLF removed) here; nothing is allocated except into the caller's
 * struct sasl_creds, which it clears with sasl_creds_release (the password
 * is wiped). Base64 is decoded strictly (RFC 4648 alphabet, padding
 * required and canonical, no whitespace); "=" alone is the empty response
 * (RFC 4954 §4). A response of "*" means the client cancels; callers check
 * that first with sasl_is_cancel.
 *
 * Bounds: each field (authzid, authcid, password) is at most
 * SASL_FIELD_MAX bytes (RFC 4616 §2 allows 255 octets per field), an
 * encoded response at most SASL_RESPONSE_MAX bytes. NUL is allowed only as
 * PLAIN's separator; no field may contain CR or LF. Errors return -1 with a
 * static reason in *error_r (for logs, never echoed with the data).
 */
#ifndef TEGAMI_SASL_H
#define TEGAMI_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_FIELD_MAX 255
#define SASL_RESPONSE_MAX 2048 /* base64 text of one response */

struct sasl_creds {
    char authzid[SASL_FIELD_MAX + 1]; /* "" when absent */
    char authcid[SASL_FIELD_MAX + 1]; /* the login name */
    char passwd[SASL_FIELD_MAX + 1];
};

enum sasl_mech { SASL_MECH_NONE = 0, SASL_MECH_PLAIN, SASL_MECH_LOGIN };

/* The mechanism by name (case-insensitive), SASL_MECH_NONE if unsupported. */
enum sasl_mech sasl_mech_find(const char *name);

/* True if a client response is "*" (RFC 4954 §4: cancel the exchange). */
bool sasl_is_cancel(const char *resp, size_t len);

/*
 * Strict base64 decoding of text[0..len) into out (at most out_max bytes).
 * "=" alone decodes to nothing. Returns the decoded length or -1.
 */
long sasl_base64_decode(const char *text, size_t len, unsigned char *out, size_t out_max);
/* Base64 encoding (for LOGIN's "334 VXNlcm5hbWU6" challenges). out gets a NUL. */
void sasl_base64_encode(const void *data, size_t len, char *out, size_t out_max);

/*
 * PLAIN: message = [authzid] NUL authcid NUL passwd, base64-encoded in resp.
 * authcid and passwd must be non-empty. An authzid other than "" or equal
 * to authcid is returned; the caller decides (tegami refuses proxy logins).
 */
int sasl_plain_decode(const char *resp, size_t len, struct sasl_creds *out, const char **error_r);

/*
 * LOGIN: one base64 field per step (user name, then password); decodes
 * one of them into field (SASL_FIELD_MAX + 1 bytes). No NUL allowed.
 */
int sasl_login_decode(const char *resp, size_t len, char *field, const char **error_r);

/* Wipe the credentials (password included). */
void sasl_creds_release(struct sasl_creds *c);

#endif
