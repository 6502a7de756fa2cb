/*
 * vuser - virtual mail users: name, crypt(3) password hash, Maildir.
 *
 * The source of truth is the text file $config_directory/users, one user per
 * line "name:hash" (like a passwd file; '#' comments). `mailctl user` edits
 * it and rebuilds the table virtual_user_maps (default
 * hash:$config_directory/users) that the daemons read. A user's Maildir is
 * $virtual_mailbox_base/<name>/Maildir/. Names are lowercase
 * [a-z0-9._-], 1..64 bytes, not starting with '.'.
 *
 * Hashes are made with crypt(3): yescrypt ("$y$") where libcrypt offers it,
 * else SHA-512 ("$6$"). Verification compares in constant time.
 */
#ifndef TEGAMI_VUSER_H
#define TEGAMI_VUSER_H

#include <stdbool.h>

#include "strbuf.h"

struct vuser {
    char *name;
    char *hash;
    char *maildir; /* absolute path, ends in "/Maildir" */
};

/* True if name is a valid user name (see above). */
bool vuser_name_valid(const char *name);
/* Look up a user in virtual_user_maps: 1 found, 0 unknown, -1 table error. */
int vuser_lookup(const char *name, struct vuser *out, struct strbuf *err);
void vuser_release(struct vuser *u);
/* Check a password against the user's hash (constant-time). */
bool vuser_verify(const struct vuser *u, const char *password);
/* Hash a password with a fresh salt. 0 or -1. */
int vuser_hash(const char *password, struct strbuf *hash_r, struct strbuf *err);
/* The Maildir path of a user name. */
void vuser_maildir(const char *name, struct strbuf *out);

/* Administration (mailctl): edit the users file and rebuild the table. 0 or -1. */
int vuser_add(const char *name, const char *password, struct strbuf *err);
int vuser_del(const char *name, struct strbuf *err);
int vuser_passwd(const char *name, const char *password, struct strbuf *err);
/* Rebuild virtual_user_maps from the users file as it is (after a hand edit). 0 or -1. */
int vuser_rebuild(struct strbuf *err);
/* Names of all users (NULL-terminated, free with config_list_free). */
char **vuser_list(size_t *count_r, struct strbuf *err);

#endif
