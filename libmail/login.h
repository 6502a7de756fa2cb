/*
 * login - password logins of virtual users, shared by smtpd (SASL) and
 * pop3d (USER/PASS, SASL).
 *
 * A login may be "name" or "name@domain" with domain in mydestination,
 * any case. Every check costs one crypt(3), whether the user exists or
 * not, so response times do not tell which names have mailboxes.
 */
#ifndef TEGAMI_LOGIN_H
#define TEGAMI_LOGIN_H

#include "strbuf.h"
#include "vuser.h"

/* The user name a login means ("Alice@Example.Test" → "alice"), or NULL
 * when it cannot name a virtual user. The caller frees it with myfree. */
char *login_user_name(const char *login);

/*
 * Check password for user name (NULL or "" = an invalid login). Returns 1
 * and fills *u (release with vuser_release) when it is right; 0 when the
 * login is refused (*why_r: "invalid login name", "unknown user", "wrong
 * password"); -1 when the user table cannot be read (err).
 */
int login_verify(const char *name, const char *password, struct vuser *u, const char **why_r,
                 struct strbuf *err);

/* Spend the crypt(3) time of a check without a user (refused logins). */
void login_verify_dummy(const char *password);

#endif
