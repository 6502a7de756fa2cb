/*
 * recipient - is an address ours, and who receives it?
 *
 * Shared by smtpd (RCPT TO: 550 5.1.1 for unknown local users, relay
 * control) and qmgr (choosing the transport). A domain is local when it is
 * listed in mydestination (compared case-insensitively); an address with no
 * domain is local. A local address exists when its local part, with any
 * "+extension" (recipient_delimiter) removed, is an alias (alias_maps) or a
 * virtual user (virtual_user_maps), or is "postmaster" (RFC 5321 §4.5.1).
 */
#ifndef TEGAMI_RECIPIENT_H
#define TEGAMI_RECIPIENT_H

#include <stdbool.h>

#include "strbuf.h"

enum recipient_class {
    RECIPIENT_LOCAL,        /* local domain, user or alias exists */
    RECIPIENT_UNKNOWN_USER, /* local domain, no such user */
    RECIPIENT_REMOTE,       /* another domain */
    RECIPIENT_ERROR,        /* a table could not be read: answer 4xx */
};

/* Classify an address ("user@domain" or "user"). err is set on RECIPIENT_ERROR. */
enum recipient_class recipient_classify(const char *address, struct strbuf *err);
/*
 * Does the local name user (already stripped and lowercased, see
 * recipient_local_user) exist as an alias or a virtual user? 1 yes, 0 no,
 * -1 a table could not be read (err says which). No special case for
 * postmaster: mailctl check asks whether it really resolves.
 */
int recipient_user_exists(const char *user, struct strbuf *err);
/* True if domain (no brackets) is in mydestination. */
bool recipient_domain_is_local(const char *domain);
/*
 * The local part of address with the extension removed, lowercased
 * ("Alice+tag@x" → "alice"), into out.
 */
void recipient_local_user(const char *address, struct strbuf *out);

#endif
