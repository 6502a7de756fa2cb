/*
 * config - main.cf parameters: defaults, main.cf, -o overrides, expansion.
 *
 * Values live in one small array indexed by name; expanded values are cached
 * per parameter and the cache is dropped whenever a source changes (load,
 * override, reset, directory change). Expansion recurses through parameter
 * references with an explicit depth bound and an "expanding" mark per
 * parameter, so loops are errors rather than stack overflows, and the
 * expanded length is bounded so "a=$b$b$b..." chains cannot blow up memory.
 *
 * master.cf parsing is in master_cf.c; both share the logical-line reader
 * below (config_lines_*), declared in config_lines.h.
 */
#include "config.h"
#include "config_lines.h"
#include "msg.h"
#include "mymalloc.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_DEFAULT_DIR "/etc/tegami"
#define CONFIG_MAX_FILE (4 * 1024 * 1024) /* main.cf, master.cf */
#define CONFIG_MAX_DEPTH 20               /* nested $name references */
#define CONFIG_MAX_VALUE (1024 * 1024)    /* one expanded value */
#define CONFIG_MAX_ASSIGN 10000           /* parameters in one main.cf */
#define CONFIG_MAX_NAME 100               /* parameter name length */

static const struct config_param *const config_tables[] = {
    params_global, params_master,  params_smtpd, params_qmgr, params_local,
    params_pop3d,  params_pickup,  params_anvil, params_tls,  params_smtp,
    params_imapd,  params_mailbox, NULL,
};

/* One parameter's sources and cached expansion. */
struct cf_value {
    char *name;
    char *file_value; /* from main.cf, NULL = not set there */
    int file_line;
    char *override; /* from config_override, NULL = none */
    char *expanded; /* cache, NULL = not computed */
    bool expanding; /* loop detection */
};

static struct cf_value *cf_values;
static size_t cf_nvalues;
static size_t cf_cap;
static char *cf_dir;     /* config_set_directory */
static char *cf_env_dir; /* copy of $MAIL_CONFIG when first used */
static char *cf_file;    /* name of the last loaded main.cf, for errors */
static char cf_hostname[256];

/* ---------------------------------------------------------------- errors */

void config_lines_error(struct config_lines *r, int line, const char *fmt, ...)
{
    va_list ap;

    r->nerrors++;
    if (r->errors == NULL)
        return;
    if (r->nerrors > CONFIG_LINES_MAX_ERRORS) {
        if (r->nerrors == CONFIG_LINES_MAX_ERRORS + 1)
            strbuf_printf(r->errors, "%s: too many errors, giving up reporting\n", r->name);
        return;
    }
    if (line > 0)
        strbuf_printf(r->errors, "%s:%d: ", r->name, line);
    else
        strbuf_printf(r->errors, "%s: ", r->name);
    va_start(ap, fmt);
    strbuf_vprintf(r->errors, fmt, ap);
    va_end(ap);
    strbuf_putc(r->errors, '\n');
}

static void cf_warning(struct strbuf *errors, const char *name, int line, const char *fmt, ...)
    MSG_PRINTF(4, 5);

static void cf_warning(struct strbuf *errors, const char *name, int line, const char *fmt, ...)
{
    va_list ap;

    if (errors == NULL)
        return;
    strbuf_printf(errors, "%s:%d: warning: ", name, line);
    va_start(ap, fmt);
    strbuf_vprintf(errors, fmt, ap);
    va_end(ap);
    strbuf_putc(errors, '\n');
}

/* ------------------------------------------------------- logical lines */

void config_lines_init(struct config_lines *r, const char *name, const char *text, size_t len,
                       struct strbuf *errors)
{
    r->name = name;
    r->p = text;
    r->end = text + len;
    r->lineno = 0;
    r->errors = errors;
    r->nerrors = 0;
}

/* Next physical line [*start, *stop) without LF and trailing CR; false at end. */
static bool cf_physical(struct config_lines *r, const char **start, const char **stop)
{
    const char *nl;

    if (r->p >= r->end)
        return false;
    *start = r->p;
    nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    if (nl) {
        *stop = nl;
        r->p = nl + 1;
    } else {
        *stop = r->end;
        r->p = r->end;
    }
    if (*stop > *start && (*stop)[-1] == '\r')
        (*stop)--;
    r->lineno++;
    return true;
}

static bool cf_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Blank or comment: first non-space byte is '#' or none. */
static bool cf_ignorable(const char *s, const char *e)
{
    while (s < e && cf_is_space((unsigned char)*s))
        s++;
    return s == e || *s == '#';
}

int config_lines_next(struct config_lines *r, struct strbuf *out, int *line_r)
{
    const char *s, *e;

    for (;;) {
        const char *save_p;
        int save_line;
        bool too_long = false;
        bool bad = false;

        if (!cf_physical(r, &s, &e))
            return 0;
        if (e > s && memchr(s, '\0', (size_t)(e - s))) {
            config_lines_error(r, r->lineno, "NUL byte in line");
            bad = true;
        }
        if (!bad && cf_ignorable(s, e))
            continue;
        if (!bad && cf_is_space((unsigned char)*s)) {
            config_lines_error(r, r->lineno, "continuation line without a preceding line");
            bad = true;
        }
        *line_r = r->lineno;
        strbuf_reset(out);
        if ((size_t)(e - s) > CONFIG_LINES_MAX)
            too_long = true;
        else
            strbuf_append(out, s, (size_t)(e - s));
        /* Collect continuation lines; blank and comment lines do not end it. */
        for (;;) {
            const char *cs, *ce;

            save_p = r->p;
            save_line = r->lineno;
            if (!cf_physical(r, &cs, &ce))
                break;
            if (ce > cs && memchr(cs, '\0', (size_t)(ce - cs))) {
                config_lines_error(r, r->lineno, "NUL byte in line");
                bad = true;
                continue;
            }
            if (cf_ignorable(cs, ce))
                continue;
            if (!cf_is_space((unsigned char)*cs)) {
                r->p = save_p;
                r->lineno = save_line;
                break;
            }
            while (cs < ce && cf_is_space((unsigned char)*cs))
                cs++;
            if (too_long || out->len + 1 + (size_t)(ce - cs) > CONFIG_LINES_MAX) {
                too_long = true;
                continue;
            }
            strbuf_putc(out, ' ');
            strbuf_append(out, cs, (size_t)(ce - cs));
        }
        if (too_long) {
            config_lines_error(r, *line_r, "line too long (more than %d bytes)", CONFIG_LINES_MAX);
            continue;
        }
        if (bad)
            continue;
        /* Trim trailing white space. */
        while (out->len > 0 && cf_is_space((unsigned char)out->data[out->len - 1]))
            strbuf_truncate(out, out->len - 1);
        return 1;
    }
}

int config_read_file(const char *path, size_t max, struct strbuf *text, struct strbuf *errors)
{
    int fd;
    struct stat st;
    int err;

    strbuf_reset(text);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err = errno;
        if (errors)
            strbuf_printf(errors, "%s: cannot open: %s\n", path, strerror(err));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (errors)
            strbuf_printf(errors, "%s: not a regular file\n", path);
        close(fd);
        return -1;
    }
    if ((unsigned long long)st.st_size > max) {
        if (errors)
            strbuf_printf(errors, "%s: file too large (more than %zu bytes)\n", path, max);
        close(fd);
        return -1;
    }
    for (;;) {
        char buf[8192];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            if (errors)
                strbuf_printf(errors, "%s: read error: %s\n", path, strerror(err));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        if (text->len + (size_t)n > max) {
            if (errors)
                strbuf_printf(errors, "%s: file too large (more than %zu bytes)\n", path, max);
            close(fd);
            return -1;
        }
        strbuf_append(text, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------ directory */

static void cf_invalidate(void)
{
    for (size_t i = 0; i < cf_nvalues; i++) {
        myfree(cf_values[i].expanded);
        cf_values[i].expanded = NULL;
        cf_values[i].expanding = false;
    }
}

void config_set_directory(const char *dir)
{
    myfree(cf_dir);
    cf_dir = dir ? mystrdup(dir) : NULL;
    cf_invalidate();
}

const char *config_directory(void)
{
    const char *env;

    if (cf_dir)
        return cf_dir;
    if (cf_env_dir == NULL) {
        env = getenv("MAIL_CONFIG");
        cf_env_dir = mystrdup(env && *env ? env : CONFIG_DEFAULT_DIR);
    }
    return cf_env_dir;
}

/* ---------------------------------------------------------- param index */

const struct config_param *config_find_param(const char *name)
{
    for (size_t t = 0; config_tables[t]; t++)
        for (const struct config_param *p = config_tables[t]; p->name; p++)
            if (strcmp(p->name, name) == 0)
                return p;
    return NULL;
}

static bool cf_name_char(int c)
{
    return isalnum(c) || c == '_';
}

static ssize_t cf_value_index(const char *name, bool create)
{
    for (size_t i = 0; i < cf_nvalues; i++)
        if (strcmp(cf_values[i].name, name) == 0)
            return (ssize_t)i;
    if (!create)
        return -1;
    if (cf_nvalues == cf_cap) {
        cf_cap = cf_cap ? cf_cap * 2 : 64;
        cf_values = myreallocarray(cf_values, cf_cap, sizeof(*cf_values));
    }
    memset(&cf_values[cf_nvalues], 0, sizeof(cf_values[0]));
    cf_values[cf_nvalues].name = mystrdup(name);
    return (ssize_t)cf_nvalues++;
}

static const char *cf_hostname_default(void)
{
    if (cf_hostname[0] == 0) {
        if (gethostname(cf_hostname, sizeof(cf_hostname) - 1) < 0 || cf_hostname[0] == 0)
            snprintf(cf_hostname, sizeof(cf_hostname), "localhost");
        cf_hostname[sizeof(cf_hostname) - 1] = 0;
    }
    return cf_hostname;
}

/* ------------------------------------------------------------ expansion */

struct cf_expand {
    struct strbuf *err; /* reason of the first failure */
    bool strict;        /* undefined $name is an error (config_check) */
};

static const char *cf_expand_index(size_t idx, int depth, struct cf_expand *x);

static int cf_fail(struct cf_expand *x, const char *fmt, ...) MSG_PRINTF(2, 3);

static int cf_fail(struct cf_expand *x, const char *fmt, ...)
{
    va_list ap;

    if (x->err && x->err->len == 0) {
        va_start(ap, fmt);
        strbuf_vprintf(x->err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The value of a referenced name, or NULL on error; "" for undefined (non-strict). */
static const char *cf_lookup_ref(const char *name, int depth, struct cf_expand *x)
{
    ssize_t idx = cf_value_index(name, false);

    if (idx < 0) {
        if (config_find_param(name) == NULL) {
            if (x->strict) {
                cf_fail(x, "undefined parameter $%s", name);
                return NULL;
            }
            return "";
        }
        idx = cf_value_index(name, true);
    }
    return cf_expand_index((size_t)idx, depth + 1, x);
}

/* Find the matching close bracket from s (just after the opener). */
static const char *cf_match_close(const char *s, char open, char close)
{
    int level = 1;

    for (; *s; s++) {
        if (*s == open)
            level++;
        else if (*s == close && --level == 0)
            return s;
    }
    return NULL;
}

static int cf_expand_text(const char *text, struct strbuf *out, int depth, struct cf_expand *x)
{
    const char *p = text;

    if (depth > CONFIG_MAX_DEPTH)
        return cf_fail(x, "parameter expansion nested too deeply (more than %d levels)",
                       CONFIG_MAX_DEPTH);
    while (*p) {
        const char *dollar = strchr(p, '$');
        char name[CONFIG_MAX_NAME + 1];
        size_t n = 0;
        const char *val;

        if (dollar == NULL) {
            strbuf_puts(out, p);
            break;
        }
        strbuf_append(out, p, (size_t)(dollar - p));
        p = dollar + 1;
        if (*p == '$') {
            strbuf_putc(out, '$');
            p++;
        } else if (*p == '{' || *p == '(') {
            char open = *p, close = *p == '{' ? '}' : ')';
            const char *end = cf_match_close(p + 1, open, close);

            if (end == NULL)
                return cf_fail(x, "missing '%c' in parameter reference", close);
            p++;
            while (p < end && cf_name_char((unsigned char)*p)) {
                if (n >= CONFIG_MAX_NAME)
                    return cf_fail(x, "parameter name too long in reference");
                name[n++] = *p++;
            }
            name[n] = 0;
            if (n == 0)
                return cf_fail(x, "empty parameter name in reference");
            if (p == end) {
                if ((val = cf_lookup_ref(name, depth, x)) == NULL)
                    return -1;
                strbuf_puts(out, val);
            } else if (*p == '?' || *p == ':') {
                /* ${name?text}: text if name is non-empty; ${name:text}: if empty. */
                char op = *p;
                char *sub = mystrndup(p + 1, (size_t)(end - p - 1));
                int rc = 0;

                if ((val = cf_lookup_ref(name, depth, x)) == NULL)
                    rc = -1;
                else if ((op == '?') == (*val != 0))
                    rc = cf_expand_text(sub, out, depth + 1, x);
                myfree(sub);
                if (rc < 0)
                    return -1;
            } else {
                return cf_fail(x, "invalid character '%c' in parameter reference", *p);
            }
            p = end + 1;
        } else if (cf_name_char((unsigned char)*p)) {
            while (cf_name_char((unsigned char)*p)) {
                if (n >= CONFIG_MAX_NAME)
                    return cf_fail(x, "parameter name too long in reference");
                name[n++] = *p++;
            }
            name[n] = 0;
            if ((val = cf_lookup_ref(name, depth, x)) == NULL)
                return -1;
            strbuf_puts(out, val);
        } else {
            return cf_fail(x, "'$' not followed by a parameter name (write $$ for a literal $)");
        }
        if (out->len > CONFIG_MAX_VALUE)
            return cf_fail(x, "expanded value too long (more than %d bytes)", CONFIG_MAX_VALUE);
    }
    if (out->len > CONFIG_MAX_VALUE)
        return cf_fail(x, "expanded value too long (more than %d bytes)", CONFIG_MAX_VALUE);
    return 0;
}

/* The raw (unexpanded) value and whether it is a computed default. */
static const char *cf_raw(size_t idx, bool *computed_r)
{
    const struct cf_value *v = &cf_values[idx];
    const struct config_param *p;

    *computed_r = false;
    if (v->override)
        return v->override;
    if (v->file_value)
        return v->file_value;
    if (strcmp(v->name, "config_directory") == 0 || strcmp(v->name, "myhostname") == 0 ||
        strcmp(v->name, "mydomain") == 0) {
        *computed_r = true;
        return NULL;
    }
    p = config_find_param(v->name);
    return p && p->def ? p->def : "";
}

static const char *cf_expand_index(size_t idx, int depth, struct cf_expand *x)
{
    struct strbuf out = STRBUF_INIT;
    const char *raw;
    bool computed;
    int rc;

    if (cf_values[idx].expanded)
        return cf_values[idx].expanded;
    if (cf_values[idx].expanding) {
        cf_fail(x, "parameter $%s refers to itself (loop)", cf_values[idx].name);
        return NULL;
    }
    if (depth > CONFIG_MAX_DEPTH) {
        cf_fail(x, "parameter expansion nested too deeply (more than %d levels)", CONFIG_MAX_DEPTH);
        return NULL;
    }
    raw = cf_raw(idx, &computed);
    cf_values[idx].expanding = true;
    strbuf_reset(&out);
    if (computed) {
        const char *name = cf_values[idx].name;

        rc = 0;
        if (strcmp(name, "config_directory") == 0) {
            strbuf_puts(&out, config_directory());
        } else if (strcmp(name, "myhostname") == 0) {
            strbuf_puts(&out, cf_hostname_default());
        } else {
            /* mydomain: myhostname minus its first label. */
            const char *host = cf_lookup_ref("myhostname", depth, x);
            const char *dot;

            if (host == NULL)
                rc = -1;
            else if ((dot = strchr(host, '.')) != NULL && dot[1])
                strbuf_puts(&out, dot + 1);
            else
                strbuf_puts(&out, "localdomain");
        }
    } else {
        rc = cf_expand_text(raw, &out, depth, x);
    }
    /* cf_values may have moved while expanding references: index again. */
    cf_values[idx].expanding = false;
    if (rc < 0) {
        strbuf_release(&out);
        return NULL;
    }
    cf_values[idx].expanded = strbuf_detach(&out, NULL);
    return cf_values[idx].expanded;
}

/* ---------------------------------------------------------- type parsing */

static int cf_parse_number(const char *text, long long *v_r, const char **suffix_r)
{
    const char *p = text;
    bool neg = false;
    unsigned long long v = 0;

    while (cf_is_space((unsigned char)*p))
        p++;
    if (*p == '-') {
        neg = true;
        p++;
    } else if (*p == '+') {
        p++;
    }
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');

        if (v > ((unsigned long long)LLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *v_r = neg ? -(long long)v : (long long)v;
    *suffix_r = p;
    return 0;
}

static bool cf_rest_blank(const char *p)
{
    while (cf_is_space((unsigned char)*p))
        p++;
    return *p == 0;
}

static int cf_mul(long long v, long long m, long long *r)
{
    if (v > 0 && v > LLONG_MAX / m)
        return -1;
    if (v < 0 && v < LLONG_MIN / m)
        return -1;
    *r = v * m;
    return 0;
}

/* Parse text as type; 0 or -1 with a reason. Bounds are checked separately. */
static int cf_parse_typed(enum config_type type, const char *text, long long *v_r,
                          const char **why_r)
{
    const char *suf;
    long long v, m = 1;

    switch (type) {
    case CONFIG_STR:
    case CONFIG_LIST:
        *v_r = 0;
        return 0;
    case CONFIG_BOOL: {
        char word[8];
        size_t n = 0;
        const char *p = text;

        while (cf_is_space((unsigned char)*p))
            p++;
        while (*p && !cf_is_space((unsigned char)*p) && n < sizeof(word) - 1)
            word[n++] = (char)tolower((unsigned char)*p++);
        word[n] = 0;
        if (!cf_rest_blank(p)) {
            *why_r = "expected yes or no";
            return -1;
        }
        if (!strcmp(word, "yes") || !strcmp(word, "true") || !strcmp(word, "1") ||
            !strcmp(word, "on")) {
            *v_r = 1;
            return 0;
        }
        if (!strcmp(word, "no") || !strcmp(word, "false") || !strcmp(word, "0") ||
            !strcmp(word, "off")) {
            *v_r = 0;
            return 0;
        }
        *why_r = "expected yes or no";
        return -1;
    }
    case CONFIG_INT:
        if (cf_parse_number(text, &v, &suf) < 0 || !cf_rest_blank(suf)) {
            *why_r = "expected a decimal integer";
            return -1;
        }
        *v_r = v;
        return 0;
    case CONFIG_TIME:
        if (cf_parse_number(text, &v, &suf) < 0) {
            *why_r = "expected a time (number with optional suffix s, m, h, d or w)";
            return -1;
        }
        switch (tolower((unsigned char)*suf)) {
        case 's':
            m = 1;
            suf++;
            break;
        case 'm':
            m = 60;
            suf++;
            break;
        case 'h':
            m = 3600;
            suf++;
            break;
        case 'd':
            m = 86400;
            suf++;
            break;
        case 'w':
            m = 7 * 86400;
            suf++;
            break;
        default:
            break;
        }
        if (!cf_rest_blank(suf)) {
            *why_r = "expected a time (number with optional suffix s, m, h, d or w)";
            return -1;
        }
        if (cf_mul(v, m, v_r) < 0) {
            *why_r = "time value out of range";
            return -1;
        }
        return 0;
    case CONFIG_SIZE:
        if (cf_parse_number(text, &v, &suf) < 0) {
            *why_r = "expected a size (number with optional suffix k, m or g)";
            return -1;
        }
        switch (tolower((unsigned char)*suf)) {
        case 'k':
            m = 1024;
            suf++;
            break;
        case 'm':
            m = 1024 * 1024;
            suf++;
            break;
        case 'g':
            m = 1024 * 1024 * 1024;
            suf++;
            break;
        case 'b':
            suf++;
            break;
        default:
            break;
        }
        if (m > 1 && (*suf == 'b' || *suf == 'B'))
            suf++;
        if (!cf_rest_blank(suf)) {
            *why_r = "expected a size (number with optional suffix k, m or g)";
            return -1;
        }
        if (cf_mul(v, m, v_r) < 0) {
            *why_r = "size value out of range";
            return -1;
        }
        return 0;
    }
    *why_r = "unknown parameter type";
    return -1;
}

static bool cf_has_bounds(const struct config_param *p)
{
    return !(p->min == 0 && p->max == 0);
}

/* Validate an expanded value against p's type and bounds; reason in why. */
static int cf_validate(const struct config_param *p, const char *value, struct strbuf *why)
{
    long long v;
    const char *reason = NULL;

    if (cf_parse_typed(p->type, value, &v, &reason) < 0) {
        strbuf_printf(why, "%s: \"%s\"", reason, value);
        return -1;
    }
    if ((p->type == CONFIG_INT || p->type == CONFIG_TIME || p->type == CONFIG_SIZE) &&
        cf_has_bounds(p) && (v < p->min || v > p->max)) {
        strbuf_printf(why, "value %lld (\"%s\") out of range %lld..%lld", v, value, p->min, p->max);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------- main.cf */

struct cf_assign {
    char *name;
    char *value;
    int line;
};

static void cf_assign_free(struct cf_assign *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        myfree(a[i].name);
        myfree(a[i].value);
    }
    myfree(a);
}

int config_load_text(const char *name, const char *text, size_t len, struct strbuf *errors)
{
    struct config_lines r;
    struct strbuf line = STRBUF_INIT;
    struct cf_assign *a = NULL;
    size_t na = 0, cap = 0;
    int lineno;

    config_lines_init(&r, name, text, len, errors);
    while (config_lines_next(&r, &line, &lineno) > 0) {
        const char *p = line.data;
        const char *nstart, *val;
        size_t nlen;

        nstart = p;
        while (cf_name_char((unsigned char)*p))
            p++;
        nlen = (size_t)(p - nstart);
        while (cf_is_space((unsigned char)*p))
            p++;
        if (nlen == 0) {
            config_lines_error(&r, lineno, "expected \"name = value\"");
            continue;
        }
        if (*p != '=') {
            if (cf_is_space((unsigned char)nstart[nlen]) || nstart[nlen] == 0)
                config_lines_error(&r, lineno, "missing '=' after parameter name \"%.*s\"",
                                   (int)(nlen > 64 ? 64 : nlen), nstart);
            else
                config_lines_error(&r, lineno, "invalid character '%c' in parameter name",
                                   isprint((unsigned char)nstart[nlen]) ? nstart[nlen] : '?');
            continue;
        }
        if (nlen > CONFIG_MAX_NAME) {
            config_lines_error(&r, lineno, "parameter name too long");
            continue;
        }
        p++;
        while (cf_is_space((unsigned char)*p))
            p++;
        val = p;
        if (na >= CONFIG_MAX_ASSIGN) {
            config_lines_error(&r, lineno, "too many parameters (more than %d)", CONFIG_MAX_ASSIGN);
            break;
        }
        {
            char *pname = mystrndup(nstart, nlen);
            size_t i;

            for (i = 0; i < na; i++)
                if (strcmp(a[i].name, pname) == 0)
                    break;
            if (i < na) {
                cf_warning(errors, name, lineno, "%s: overrides earlier entry at line %d", pname,
                           a[i].line);
                myfree(a[i].value);
                a[i].value = mystrdup(val);
                a[i].line = lineno;
                myfree(pname);
                continue;
            }
            if (config_find_param(pname) == NULL)
                cf_warning(errors, name, lineno, "unknown parameter \"%s\"", pname);
            if (na == cap) {
                cap = cap ? cap * 2 : 32;
                a = myreallocarray(a, cap, sizeof(*a));
            }
            a[na].name = pname;
            a[na].value = mystrdup(val);
            a[na].line = lineno;
            na++;
        }
    }
    strbuf_release(&line);
    if (r.nerrors > 0) {
        cf_assign_free(a, na);
        return -1;
    }
    /* Success: replace every main.cf value at once. */
    for (size_t i = 0; i < cf_nvalues; i++) {
        myfree(cf_values[i].file_value);
        cf_values[i].file_value = NULL;
        cf_values[i].file_line = 0;
    }
    for (size_t i = 0; i < na; i++) {
        size_t idx = (size_t)cf_value_index(a[i].name, true);

        cf_values[idx].file_value = a[i].value;
        cf_values[idx].file_line = a[i].line;
        a[i].value = NULL;
    }
    cf_assign_free(a, na);
    myfree(cf_file);
    cf_file = mystrdup(name);
    cf_invalidate();
    return 0;
}

int config_load(struct strbuf *errors)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;
    int rc;

    strbuf_printf(&path, "%s/main.cf", config_directory());
    if (config_read_file(path.data, CONFIG_MAX_FILE, &text, errors) < 0)
        rc = -1;
    else
        rc = config_load_text(path.data, text.data, text.len, errors);
    strbuf_release(&path);
    strbuf_release(&text);
    return rc;
}

void config_load_or_die(void)
{
    struct strbuf errors = STRBUF_INIT;

    strbuf_reset(&errors);
    if (config_load(&errors) < 0) {
        while (errors.len && errors.data[errors.len - 1] == '\n')
            strbuf_truncate(&errors, errors.len - 1);
        msg_fatal("%s", errors.data);
    }
    /* Warnings (unknown names, duplicates): log each line. */
    for (char *s = errors.data, *nl; s && *s; s = nl + 1) {
        nl = strchr(s, '\n');
        if (nl == NULL) {
            msg_warn("%s", s);
            break;
        }
        *nl = 0;
        msg_warn("%s", s);
    }
    strbuf_release(&errors);
}

void config_reset(void)
{
    for (size_t i = 0; i < cf_nvalues; i++) {
        myfree(cf_values[i].name);
        myfree(cf_values[i].file_value);
        myfree(cf_values[i].override);
        myfree(cf_values[i].expanded);
    }
    myfree(cf_values);
    cf_values = NULL;
    cf_nvalues = cf_cap = 0;
    myfree(cf_file);
    cf_file = NULL;
}

int config_override(const char *name, const char *value, struct strbuf *errors)
{
    const struct config_param *p = config_find_param(name);
    struct strbuf why = STRBUF_INIT;
    struct cf_expand x = {&why, false};
    size_t idx;
    char *old;
    const char *v;

    if (p == NULL || strcmp(name, "config_directory") == 0) {
        if (errors)
            strbuf_printf(errors, "-o %s: %s\n", name,
                          p ? "read-only parameter" : "unknown parameter");
        return -1;
    }
    if (strlen(value) > CONFIG_LINES_MAX) {
        if (errors)
            strbuf_printf(errors, "-o %s: value too long\n", name);
        return -1;
    }
    idx = (size_t)cf_value_index(name, true);
    old = cf_values[idx].override;
    cf_values[idx].override = mystrdup(value);
    cf_invalidate();
    strbuf_reset(&why);
    v = cf_expand_index(idx, 0, &x);
    if (v == NULL || cf_validate(p, v, &why) < 0) {
        if (errors)
            strbuf_printf(errors, "-o %s=%s: %s\n", name, value, why.data);
        myfree(cf_values[idx].override);
        cf_values[idx].override = old;
        cf_invalidate();
        strbuf_release(&why);
        return -1;
    }
    myfree(old);
    strbuf_release(&why);
    return 0;
}

/* Where a value came from, for config_check messages. */
static void cf_origin(struct strbuf *out, size_t idx)
{
    const struct cf_value *v = &cf_values[idx];

    if (v->override)
        strbuf_printf(out, "-o %s: ", v->name);
    else if (v->file_value)
        strbuf_printf(out, "%s:%d: %s: ", cf_file ? cf_file : "main.cf", v->file_line, v->name);
    else
        strbuf_printf(out, "default value of %s: ", v->name);
}

const struct config_param *config_param_next(size_t *iter)
{
    size_t n = *iter;
    for (size_t t = 0; config_tables[t]; t++) {
        for (const struct config_param *p = config_tables[t]; p->name; p++) {
            if (n-- == 0) {
                (*iter)++;
                return p;
            }
        }
    }
    return NULL;
}

int config_check(struct strbuf *errors)
{
    int nerr = 0;
    struct strbuf why = STRBUF_INIT;

    cf_invalidate();
    /* Every declared parameter, once. */
    for (size_t t = 0; config_tables[t]; t++) {
        for (const struct config_param *p = config_tables[t]; p->name; p++) {
            const struct config_param *first = config_find_param(p->name);
            struct cf_expand x = {&why, true};
            size_t idx;
            const char *v;

            if (first != p) {
                if (errors)
                    strbuf_printf(errors, "parameter %s is declared in more than one table\n",
                                  p->name);
                nerr++;
                continue;
            }
            idx = (size_t)cf_value_index(p->name, true);
            strbuf_reset(&why);
            v = cf_expand_index(idx, 0, &x);
            if (v == NULL || cf_validate(p, v, &why) < 0) {
                if (errors) {
                    cf_origin(errors, idx);
                    strbuf_printf(errors, "%s\n", why.data);
                }
                nerr++;
            }
        }
    }
    /* User-defined names from main.cf: references must resolve. */
    for (size_t i = 0; i < cf_nvalues; i++) {
        struct cf_expand x = {&why, true};

        if (config_find_param(cf_values[i].name))
            continue;
        strbuf_reset(&why);
        if (cf_expand_index(i, 0, &x) == NULL) {
            if (errors) {
                cf_origin(errors, i);
                strbuf_printf(errors, "%s\n", why.data);
            }
            nerr++;
        }
    }
    cf_invalidate();
    strbuf_release(&why);
    return nerr ? -1 : 0;
}

/* ------------------------------------------------------------ getters */

static const char *cf_get(const char *name, const struct config_param **p_r)
{
    const struct config_param *p = config_find_param(name);
    struct strbuf why = STRBUF_INIT;
    struct cf_expand x = {&why, false};
    const char *v;
    size_t idx;

    if (p == NULL)
        msg_panic("config: request for undeclared parameter \"%s\"", name);
    idx = (size_t)cf_value_index(name, true);
    if (cf_values[idx].expanded) {
        *p_r = p;
        return cf_values[idx].expanded;
    }
    strbuf_reset(&why);
    v = cf_expand_index(idx, 0, &x);
    if (v == NULL)
        msg_fatal("parameter %s: %s", name, why.data);
    strbuf_release(&why);
    *p_r = p;
    return v;
}

static long long cf_get_typed(const char *name, enum config_type type)
{
    const struct config_param *p;
    const char *v = cf_get(name, &p);
    struct config_param tmp = *p;
    struct strbuf why = STRBUF_INIT;
    long long n;
    const char *reason;

    /* Parse as the getter's type; bounds from the table. */
    tmp.type = type;
    strbuf_reset(&why);
    if (cf_validate(&tmp, v, &why) < 0)
        msg_fatal("parameter %s: %s", name, why.data);
    strbuf_release(&why);
    if (cf_parse_typed(type, v, &n, &reason) < 0)
        msg_panic("config: %s: inconsistent parse", name);
    return n;
}

const char *config_str(const char *name)
{
    const struct config_param *p;

    return cf_get(name, &p);
}

long long config_int(const char *name)
{
    return cf_get_typed(name, CONFIG_INT);
}

bool config_bool(const char *name)
{
    return cf_get_typed(name, CONFIG_BOOL) != 0;
}

long long config_time(const char *name)
{
    return cf_get_typed(name, CONFIG_TIME);
}

long long config_size(const char *name)
{
    return cf_get_typed(name, CONFIG_SIZE);
}

static char **cf_split(const char *text, size_t *count_r, bool comma)
{
    char **list = NULL;
    size_t n = 0, cap = 0;
    const char *p = text;

    for (;;) {
        const char *start;

        while ((comma && *p == ',') || cf_is_space((unsigned char)*p) || *p == '\n')
            p++;
        if (*p == 0)
            break;
        start = p;
        while (*p && !(comma && *p == ',') && !cf_is_space((unsigned char)*p) && *p != '\n')
            p++;
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 8;
            list = myreallocarray(list, cap, sizeof(*list));
        }
        list[n++] = mystrndup(start, (size_t)(p - start));
    }
    if (list == NULL)
        list = mycalloc(1, sizeof(*list));
    list[n] = NULL;
    if (count_r)
        *count_r = n;
    return list;
}

char **config_split_list(const char *text, size_t *count_r)
{
    return cf_split(text, count_r, true);
}

char **config_lines_split(const char *text, size_t *count_r)
{
    return cf_split(text, count_r, false);
}

char **config_list(const char *name, size_t *count_r)
{
    return config_split_list(config_str(name), count_r);
}

void config_list_free(char ***listp)
{
    char **list = *listp;

    if (list == NULL)
        return;
    for (size_t i = 0; list[i]; i++)
        myfree(list[i]);
    myfree(list);
    *listp = NULL;
}
