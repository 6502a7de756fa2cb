/*
 * master_cf - parse master.cf, the service table.
 *
 *   service  type  private  unpriv  chroot  maxproc  command [args...]
 *
 * Continuation lines (leading white space) add "-o name=value" overrides or
 * more arguments. Each entry is checked completely here (type, flags,
 * process limit, service name syntax, command is a bare program name,
 * override names are declared parameters, no duplicate service), so master
 * and `mailctl check` report every problem with its line before anything
 * starts.
 */
#include "config.h"
#include "config_lines.h"
#include "mymalloc.h"

#include <ctype.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#define MASTER_CF_MAX_FILE (1024 * 1024)
#define MASTER_CF_MAX_ENTRIES 1000
#define MASTER_CF_MAX_ARGS 256
#define MASTER_CF_MAX_PROC 100000

static void mcf_free_entry(struct master_entry *e)
{
    myfree(e->service);
    myfree(e->type);
    for (size_t i = 0; i < e->argc; i++)
        myfree(e->argv[i]);
    myfree(e->argv);
    for (size_t i = 0; i < e->noverrides; i++)
        myfree(e->overrides[i]);
    myfree(e->overrides);
    memset(e, 0, sizeof(*e));
}

void master_cf_free(struct master_entry **entriesp, size_t count)
{
    struct master_entry *entries = *entriesp;

    if (entries == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        mcf_free_entry(&entries[i]);
    myfree(entries);
    *entriesp = NULL;
}

static int mcf_flag(const char *text, bool def, bool *out)
{
    if (strcmp(text, "-") == 0)
        *out = def;
    else if (strcmp(text, "y") == 0 || strcmp(text, "yes") == 0)
        *out = true;
    else if (strcmp(text, "n") == 0 || strcmp(text, "no") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* A unix/fifo service name becomes a file name under private/ or public/. */
static bool mcf_local_name_ok(const char *s)
{
    if (*s == 0 || *s == '.' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

/* inet: [host:]port, [v6]:port; port numeric 1..65535 or a service name. */
static const char *mcf_inet_problem(const char *s)
{
    const char *port = s;

    if (*s == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close == s + 1)
            return "malformed [address]";
        if (close[1] != ':')
            return "expected \":port\" after [address]";
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');

        if (colon) {
            if (colon == s)
                return "empty host before ':'";
            port = colon + 1;
        }
    }
    if (*port == 0)
        return "missing port";
    if (isdigit((unsigned char)*port)) {
        long v = 0;

        for (const char *p = port; *p; p++) {
            if (!isdigit((unsigned char)*p))
                return "port must be a number or a service name";
            v = v * 10 + (*p - '0');
            if (v > 65535)
                return "port out of range 1..65535";
        }
        if (v < 1)
            return "port out of range 1..65535";
        return NULL;
    }
    for (const char *p = port; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return "port must be a number or a service name";
    if (strlen(port) > 64 || getservbyname(port, "tcp") == NULL)
        return "unknown service name (not in /etc/services)";
    return NULL;
}

static void mcf_push(char ***arr, size_t *n, const char *s)
{
    *arr = myreallocarray(*arr, *n + 2, sizeof(**arr));
    (*arr)[(*n)++] = mystrdup(s);
    (*arr)[*n] = NULL;
}

/* Split a logical line into white-space separated tokens (NULL-terminated). */
static char **mcf_tokens(const char *line, size_t *n_r)
{
    return config_lines_split(line, n_r);
}

static int mcf_override(struct config_lines *r, int line, struct master_entry *e, const char *text)
{
    const char *eq = strchr(text, '=');
    char *name;

    if (eq == NULL || eq == text) {
        config_lines_error(r, line, "-o \"%s\": expected name=value", text);
        return -1;
    }
    name = mystrndup(text, (size_t)(eq - text));
    if (config_find_param(name) == NULL) {
        config_lines_error(r, line, "-o %s: unknown parameter", name);
        myfree(name);
        return -1;
    }
    if (strcmp(name, "config_directory") == 0) {
        config_lines_error(r, line, "-o %s: read-only parameter", name);
        myfree(name);
        return -1;
    }
    myfree(name);
    mcf_push(&e->overrides, &e->noverrides, text);
    return 0;
}

/* Parse one logical line into e. 0, or -1 (errors reported). */
static int mcf_entry(struct config_lines *r, int line, const char *text, struct master_entry *e)
{
    size_t ntok;
    char **tok = mcf_tokens(text, &ntok);
    int bad = 0;

    memset(e, 0, sizeof(*e));
    e->line = line;
    if (ntok < 7) {
        config_lines_error(r, line,
                           "expected at least 7 columns "
                           "(service type private unpriv chroot maxproc command)");
        bad = 1;
        goto done;
    }
    e->service = mystrdup(tok[0]);
    e->type = mystrdup(tok[1]);
    if (strcmp(tok[1], "inet") == 0) {
        const char *why = mcf_inet_problem(tok[0]);

        if (why) {
            config_lines_error(r, line, "inet service \"%s\": %s", tok[0], why);
            bad = 1;
        }
    } else if (strcmp(tok[1], "unix") == 0 || strcmp(tok[1], "fifo") == 0) {
        if (!mcf_local_name_ok(tok[0])) {
            config_lines_error(r, line,
                               "%s service \"%s\": name must be [A-Za-z0-9._-], not starting "
                               "with '.'",
                               tok[1], tok[0]);
            bad = 1;
        }
    } else {
        config_lines_error(r, line, "unknown service type \"%s\" (expected inet, unix or fifo)",
                           tok[1]);
        bad = 1;
    }
    if (mcf_flag(tok[2], true, &e->private_) < 0) {
        config_lines_error(r, line, "private column: expected y, n or -, not \"%s\"", tok[2]);
        bad = 1;
    }
    if (mcf_flag(tok[3], true, &e->unpriv) < 0) {
        config_lines_error(r, line, "unpriv column: expected y, n or -, not \"%s\"", tok[3]);
        bad = 1;
    }
    if (mcf_flag(tok[4], false, &e->chroot) < 0) {
        config_lines_error(r, line, "chroot column: expected y, n or -, not \"%s\"", tok[4]);
        bad = 1;
    }
    if (strcmp(tok[5], "-") == 0) {
        e->maxproc = (int)config_int("default_process_limit");
    } else {
        long v = 0;
        const char *p = tok[5];

        for (; isdigit((unsigned char)*p) && v <= MASTER_CF_MAX_PROC; p++)
            v = v * 10 + (*p - '0');
        if (*p || p == tok[5] || v > MASTER_CF_MAX_PROC) {
            config_lines_error(r, line, "maxproc column: expected 0..%d or -, not \"%s\"",
                               MASTER_CF_MAX_PROC, tok[5]);
            bad = 1;
        }
        e->maxproc = (int)v;
    }
    if (strchr(tok[6], '/') || tok[6][0] == '.' || tok[6][0] == '-') {
        config_lines_error(r, line, "command \"%s\": must be a program name in $daemon_directory",
                           tok[6]);
        bad = 1;
    }
    for (size_t i = 6; i < ntok; i++) {
        if (i > 6 && strcmp(tok[i], "-o") == 0) {
            if (i + 1 >= ntok) {
                config_lines_error(r, line, "-o without name=value");
                bad = 1;
                break;
            }
            if (mcf_override(r, line, e, tok[++i]) < 0)
                bad = 1;
        } else if (i > 6 && strncmp(tok[i], "-o", 2) == 0 && strchr(tok[i], '=')) {
            if (mcf_override(r, line, e, tok[i] + 2) < 0)
                bad = 1;
        } else {
            if (e->argc >= MASTER_CF_MAX_ARGS) {
                config_lines_error(r, line, "too many arguments (more than %d)",
                                   MASTER_CF_MAX_ARGS);
                bad = 1;
                break;
            }
            mcf_push(&e->argv, &e->argc, tok[i]);
        }
    }
done:
    config_list_free(&tok);
    if (bad) {
        mcf_free_entry(e);
        return -1;
    }
    if (e->argv == NULL) {
        e->argv = mycalloc(1, sizeof(*e->argv));
    }
    if (e->overrides == NULL)
        e->overrides = mycalloc(1, sizeof(*e->overrides));
    return 0;
}

int master_cf_parse(const char *name, const char *text, size_t len, struct master_entry **entries_r,
                    size_t *count_r, struct strbuf *errors)
{
    struct config_lines r;
    struct strbuf line = STRBUF_INIT;
    struct master_entry *entries = NULL;
    size_t n = 0;
    int lineno;

    *entries_r = NULL;
    *count_r = 0;
    config_lines_init(&r, name, text, len, errors);
    while (config_lines_next(&r, &line, &lineno) > 0) {
        struct master_entry e;

        if (n >= MASTER_CF_MAX_ENTRIES) {
            config_lines_error(&r, lineno, "too many services (more than %d)",
                               MASTER_CF_MAX_ENTRIES);
            break;
        }
        if (mcf_entry(&r, lineno, line.data, &e) < 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(entries[i].service, e.service) == 0 &&
                strcmp(entries[i].type, e.type) == 0) {
                config_lines_error(&r, lineno, "duplicate service \"%s\" (%s), first at line %d",
                                   e.service, e.type, entries[i].line);
                mcf_free_entry(&e);
                break;
            }
        }
        if (e.service == NULL)
            continue;
        entries = myreallocarray(entries, n + 1, sizeof(*entries));
        entries[n++] = e;
    }
    strbuf_release(&line);
    if (r.nerrors > 0) {
        master_cf_free(&entries, n);
        return -1;
    }
    *entries_r = entries;
    *count_r = n;
    return 0;
}

int master_cf_load(struct master_entry **entries_r, size_t *count_r, struct strbuf *errors)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;
    int rc;

    *entries_r = NULL;
    *count_r = 0;
    strbuf_printf(&path, "%s/master.cf", config_directory());
    if (config_read_file(path.data, MASTER_CF_MAX_FILE, &text, errors) < 0)
        rc = -1;
    else
        rc = master_cf_parse(path.data, text.data, text.len, entries_r, count_r, errors);
    strbuf_release(&path);
    strbuf_release(&text);
    return rc;
}
