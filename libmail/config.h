/*
 * config - main.cf parameters: compiled-in defaults, $name expansion, bounds.
 *
 * Every parameter any program uses is declared in a table with its type,
 * default and bounds. The tables live in libmail (params_<area>.c, one per
 * daemon or area) so that `mailctl check` and docs/config.md can know them
 * all; a program reads them with the typed getters below. Asking for a name
 * that is in no table is our bug (msg_panic).
 *
 * Sources, later wins: compiled-in default < main.cf < -o name=value from
 * master.cf (config_override). Values are expanded on read: "$name" and
 * "${name}" are replaced by that parameter's (expanded) value; "$$" is "$".
 * Expansion depth is bounded (loops are an error, reported by config_check).
 *
 * The config directory: config_set_directory(), else $MAIL_CONFIG, else
 * /etc/tegami. All returned strings are owned by the config module and stay
 * valid until the next config_load/config_override.
 */
#ifndef TEGAMI_CONFIG_H
#define TEGAMI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

enum config_type {
    CONFIG_STR,  /* any text */
    CONFIG_INT,  /* decimal integer within [min, max] */
    CONFIG_BOOL, /* yes/no (also true/false, 1/0) */
    CONFIG_TIME, /* seconds; suffix s, m, h, d or w allowed; within [min, max] seconds */
    CONFIG_SIZE, /* bytes; suffix k, m or g (x1024) allowed; within [min, max] */
    CONFIG_LIST, /* separated by commas and/or whitespace */
};

struct config_param {
    const char *name;
    enum config_type type;
    const char *def; /* default text, may contain $name */
    long long min, max;
    const char *doc; /* one line for docs/config.md and `mailctl check -v` */
};

/* Parameter tables, each terminated by an entry with name == NULL. */
extern const struct config_param params_global[];  /* params_global.c */
extern const struct config_param params_master[];  /* params_master.c */
extern const struct config_param params_smtpd[];   /* params_smtpd.c */
extern const struct config_param params_qmgr[];    /* params_qmgr.c */
extern const struct config_param params_local[];   /* params_local.c */
extern const struct config_param params_pop3d[];   /* params_pop3d.c */
extern const struct config_param params_pickup[];  /* params_pickup.c */
extern const struct config_param params_tls[];     /* params_tls.c */
extern const struct config_param params_anvil[];   /* params_anvil.c */
extern const struct config_param params_smtp[];    /* params_smtp.c */
extern const struct config_param params_imapd[];   /* params_imapd.c */
extern const struct config_param params_mailbox[]; /* params_mailbox.c */

/* Set the config directory explicitly (-c DIR). */
void config_set_directory(const char *dir);
/* The config directory in effect. */
const char *config_directory(void);

/*
 * Read $config_directory/main.cf. Returns 0, or -1 with "main.cf:LINE: reason"
 * in errors (several lines possible). Unknown names are warnings (appended
 * to errors but do not fail). A missing main.cf is an error.
 */
int config_load(struct strbuf *errors);
/* config_load, and msg_fatal with the error text on failure. */
void config_load_or_die(void);
/* Parse main.cf-format text from memory (tests, fuzzing). name is used in errors. */
int config_load_text(const char *name, const char *text, size_t len, struct strbuf *errors);
/* Forget all loaded values and overrides (back to defaults). */
void config_reset(void);
/* -o name=value from master.cf or a command line; 0 or -1 (unknown/invalid). */
int config_override(const char *name, const char *value, struct strbuf *errors);
/* Validate every parameter's expanded value against its type and bounds. */
int config_check(struct strbuf *errors);

/* Typed getters of expanded values (fatal if the value is invalid). */
const char *config_str(const char *name);
long long config_int(const char *name);
bool config_bool(const char *name);
long long config_time(const char *name);
long long config_size(const char *name);
/* Split a list value; returns a NULL-terminated array the caller frees with config_list_free. */
char **config_list(const char *name, size_t *count_r);
void config_list_free(char ***listp);
/* Split any text the way list values are split (commas and/or whitespace). */
char **config_split_list(const char *text, size_t *count_r);

/* Every declared parameter in table order; *iter starts at 0. NULL at the end. */
const struct config_param *config_param_next(size_t *iter);

/* Look a parameter up in all tables (NULL if unknown). */
const struct config_param *config_find_param(const char *name);

/*
 * master.cf: one service per line, whitespace-separated columns
 *   service  type  private  unpriv  chroot  maxproc  command [args...]
 * type: inet (service is [host:]port), unix (socket under private/ or
 * public/), fifo (public/ or private/ fifo). "-" takes the default
 * (private y, unpriv y, chroot n, maxproc $default_process_limit).
 * Lines starting with whitespace continue the previous one; "-o name=value"
 * there is a parameter override for that service. '#' starts a comment.
 */
struct master_entry {
    char *service;
    char *type;
    bool private_;
    bool unpriv;
    bool chroot;
    int maxproc; /* 0 = no limit */
    char **argv; /* command and args, NULL-terminated */
    size_t argc;
    char **overrides; /* "name=value", NULL-terminated */
    size_t noverrides;
    int line; /* line number in master.cf, for errors */
};

/* Parse master.cf text. 0, or -1 with "master.cf:LINE: reason" lines in errors. */
int master_cf_parse(const char *name, const char *text, size_t len, struct master_entry **entries_r,
                    size_t *count_r, struct strbuf *errors);
/* Read and parse $config_directory/master.cf. */
int master_cf_load(struct master_entry **entries_r, size_t *count_r, struct strbuf *errors);
void master_cf_free(struct master_entry **entriesp, size_t count);

#endif
