/*
 * dict - "type:name" lookup tables: backend registry, reopen on change,
 * the text source parser and table building. See dict.h.
 */
#include "dict.h"
#include "msg.h"
#include "mymalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- backends ---- */

/* "static:VALUE": every key maps to VALUE; nothing to build or reopen. */
static void *static_open(const char *name, struct strbuf *err)
{
    (void)err;
    return mystrdup(name);
}

static enum dict_result static_lookup(void *handle, const char *key, struct strbuf *value)
{
    (void)key;
    strbuf_reset(value);
    strbuf_puts(value, handle);
    return DICT_FOUND;
}

static void static_close(void *handle)
{
    myfree(handle);
}

static const struct dict_backend dict_backend_static = {
    .type = "static",
    .open = static_open,
    .lookup = static_lookup,
    .close = static_close,
};

static const struct dict_backend *const dict_backends[] = {
    &dict_backend_hash,
    &dict_backend_btree,
    &dict_backend_static,
    NULL,
};

const struct dict_backend *dict_backend_find(const char *type)
{
    for (size_t i = 0; dict_backends[i]; i++)
        if (strcmp(dict_backends[i]->type, type) == 0)
            return dict_backends[i];
    return NULL;
}

/* Split "type:name"; *name_r points into spec. */
static const struct dict_backend *dict_parse_spec(const char *spec, const char **name_r,
                                                  struct strbuf *err)
{
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec) {
        strbuf_printf(err, "table \"%s\": expected type:name", spec);
        return NULL;
    }
    char *type = mystrndup(spec, (size_t)(colon - spec));
    const struct dict_backend *be = dict_backend_find(type);
    if (be == NULL)
        strbuf_printf(err, "table \"%s\": unknown table type \"%s\"", spec, type);
    myfree(type);
    if (be && colon[1] == 0 && strcmp(be->type, "static") != 0) {
        strbuf_printf(err, "table \"%s\": empty name", spec);
        return NULL;
    }
    *name_r = colon + 1;
    return be;
}

/* ---- open tables ---- */

/* How long an open table trusts its file before it stats it again. */
#define DICT_CHECK_INTERVAL_NS 1000000000LL

struct dict {
    char *spec;
    const char *name; /* points into spec */
    const struct dict_backend *be;
    void *handle;
    char *file; /* file to watch, NULL if none */
    bool have_stat;
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    off_t size;
    long long last_check_ns;
    struct dict *prev, *next; /* all open tables, closed at exit */
};

/*
 * Open tables are closed at exit: Berkeley DB keeps its cache in regions
 * that hold offsets rather than pointers, so a handle still open at exit
 * looks like a leak to LeakSanitizer (and the ASan test run fails).
 */
static struct dict *dict_all;

static void dict_close_all(void)
{
    while (dict_all) {
        struct dict *d = dict_all;
        dict_close(&d);
    }
}

static void dict_link(struct dict *d)
{
    static bool registered;
    if (!registered) {
        atexit(dict_close_all);
        registered = true;
    }
    d->next = dict_all;
    if (dict_all)
        dict_all->prev = d;
    dict_all = d;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void dict_remember(struct dict *d, const struct stat *st)
{
    d->have_stat = true;
    d->dev = st->st_dev;
    d->ino = st->st_ino;
    d->mtim = st->st_mtim;
    d->size = st->st_size;
}

static bool dict_changed(const struct dict *d, const struct stat *st)
{
    return !d->have_stat || d->dev != st->st_dev || d->ino != st->st_ino ||
           d->mtim.tv_sec != st->st_mtim.tv_sec || d->mtim.tv_nsec != st->st_mtim.tv_nsec ||
           d->size != st->st_size;
}

struct dict *dict_open(const char *spec, struct strbuf *err)
{
    const char *name;
    const struct dict_backend *be = dict_parse_spec(spec, &name, err);
    if (be == NULL)
        return NULL;

    struct dict *d = mycalloc(1, sizeof(*d));
    d->spec = mystrdup(spec);
    d->name = d->spec + (name - spec);
    d->be = be;
    if (be->file_name) {
        struct strbuf f = STRBUF_INIT;
        struct stat st;
        be->file_name(d->name, &f);
        d->file = strbuf_detach(&f, NULL);
        /* stat before open: a rebuild in between only causes one extra reopen. */
        if (stat(d->file, &st) == 0)
            dict_remember(d, &st);
    }
    struct strbuf e = STRBUF_INIT;
    strbuf_init(&e, 0);
    d->handle = be->open(d->name, &e);
    if (d->handle == NULL) {
        strbuf_printf(err, "table %s: %s", spec, e.data);
        strbuf_release(&e);
        myfree(d->file);
        myfree(d->spec);
        myfree(d);
        return NULL;
    }
    strbuf_release(&e);
    d->last_check_ns = now_ns();
    dict_link(d);
    return d;
}

/* Reopen the table if its file was replaced; keep the old handle on failure. */
static void dict_maybe_reopen(struct dict *d)
{
    struct stat st;
    long long now;

    if (d->file == NULL)
        return;
    now = now_ns();
    if (now - d->last_check_ns < DICT_CHECK_INTERVAL_NS)
        return;
    d->last_check_ns = now;
    if (stat(d->file, &st) < 0) {
        if (errno != ENOENT || d->have_stat)
            msg_warn("table %s: stat %s: %m (using the open table)", d->spec, d->file);
        return;
    }
    if (!dict_changed(d, &st))
        return;
    struct strbuf e = STRBUF_INIT;
    strbuf_init(&e, 0);
    void *h = d->be->open(d->name, &e);
    if (h == NULL) {
        msg_warn("table %s: reopen: %s (using the old table)", d->spec, e.data);
        strbuf_release(&e);
        return;
    }
    strbuf_release(&e);
    d->be->close(d->handle);
    d->handle = h;
    dict_remember(d, &st);
    if (msg_verbose)
        msg_debug("table %s: reopened after change", d->spec);
}

enum dict_result dict_lookup(struct dict *d, const char *key, struct strbuf *value)
{
    char buf[DICT_MAX_KEY + 1];
    size_t len = strlen(key);

    if (len == 0 || len > DICT_MAX_KEY)
        return DICT_NOTFOUND;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        buf[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    buf[len] = 0;
    dict_maybe_reopen(d);
    return d->be->lookup(d->handle, buf, value);
}

void dict_close(struct dict **dp)
{
    struct dict *d = *dp;
    if (d == NULL)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else if (dict_all == d)
        dict_all = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->be->close(d->handle);
    myfree(d->file);
    myfree(d->spec);
    myfree(d);
    *dp = NULL;
}

const char *dict_spec(const struct dict *d)
{
    return d->spec;
}

/* ---- text source parser ---- */

struct parse_state {
    const char *name;
    struct strbuf *err;
    int nerrors;
    bool failed;
    long count;
    enum dict_format format;
    int (*emit)(void *, const char *, const char *, struct strbuf *);
    void *ctx;
    struct strbuf key, value, item, reason;
};

static void parse_error(struct parse_state *ps, long line, const char *reason)
{
    ps->failed = true;
    if (ps->nerrors == DICT_MAX_ERRORS) {
        strbuf_printf(ps->err, "%s%s: too many errors, giving up reporting",
                      ps->err->len ? "\n" : "", ps->name);
    } else if (ps->nerrors < DICT_MAX_ERRORS) {
        strbuf_printf(ps->err, "%s%s:%ld: %s", ps->err->len ? "\n" : "", ps->name, line, reason);
    }
    ps->nerrors++;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static void lowercase(struct strbuf *sb)
{
    for (size_t i = 0; i < sb->len; i++)
        if (sb->data[i] >= 'A' && sb->data[i] <= 'Z')
            sb->data[i] = (char)(sb->data[i] + ('a' - 'A'));
}

/* Append an alias element, quoted if it would otherwise not split back. */
static void alias_put_item(struct strbuf *out, const char *s, size_t len)
{
    bool quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\\' || is_ws(s[i]))
            quote = true;
    if (out->len)
        strbuf_puts(out, ", ");
    if (!quote) {
        strbuf_append(out, s, len);
        return;
    }
    strbuf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            strbuf_putc(out, '\\');
        strbuf_putc(out, s[i]);
    }
    strbuf_putc(out, '"');
}

/*
 * Parse a quoted string starting at s[*pos] == '"' into out (escapes
 * removed). false if it is not terminated.
 */
static bool parse_quoted(const char *s, size_t len, size_t *pos, struct strbuf *out)
{
    size_t i = *pos + 1;
    strbuf_reset(out);
    while (i < len) {
        if (s[i] == '\\' && i + 1 < len) {
            strbuf_putc(out, s[i + 1]);
            i += 2;
        } else if (s[i] == '"') {
            *pos = i + 1;
            return true;
        } else {
            strbuf_putc(out, s[i++]);
        }
    }
    return false;
}

/*
 * Parse an alias value list s[0..len) into canonical form in out.
 * NULL on success, else the reason.
 */
static const char *alias_parse_values(const char *s, size_t len, struct strbuf *out,
                                      struct strbuf *item)
{
    size_t i = 0;
    strbuf_reset(out);
    while (i < len) {
        while (i < len && is_ws(s[i]))
            i++;
        if (i >= len)
            break;
        if (s[i] == ',') {
            i++; /* empty element: tolerated, like a trailing comma */
            continue;
        }
        if (s[i] == '"') {
            if (!parse_quoted(s, len, &i, item))
                return "unterminated quoted value";
            while (i < len && is_ws(s[i]))
                i++;
            if (i < len && s[i] != ',')
                return "text after a quoted value (missing ',')";
            if (item->len == 0)
                return "empty quoted value";
            alias_put_item(out, item->data, item->len);
        } else {
            size_t start = i;
            while (i < len && s[i] != ',')
                i++;
            size_t end = i;
            while (end > start && is_ws(s[end - 1]))
                end--;
            alias_put_item(out, s + start, end - start);
        }
        if (i < len && s[i] == ',')
            i++;
    }
    if (out->len == 0)
        return "no value";
    return NULL;
}

/* Handle one logical line (continuations joined). */
static void parse_entry(struct parse_state *ps, const char *s, size_t len, long line)
{
    size_t i = 0;

    strbuf_reset(&ps->key);
    strbuf_reset(&ps->value);
    if (ps->format == DICT_FORMAT_MAP) {
        while (i < len && !is_ws(s[i]))
            i++;
        strbuf_append(&ps->key, s, i);
        while (i < len && is_ws(s[i]))
            i++;
        size_t end = len;
        while (end > i && is_ws(s[end - 1]))
            end--;
        if (i >= end) {
            parse_error(ps, line, "expected \"key value\"");
            return;
        }
        strbuf_append(&ps->value, s + i, end - i);
    } else {
        if (s[0] == '"') {
            if (!parse_quoted(s, len, &i, &ps->key)) {
                parse_error(ps, line, "unterminated quoted name");
                return;
            }
            while (i < len && is_ws(s[i]))
                i++;
            if (i >= len || s[i] != ':') {
                parse_error(ps, line, "expected \"name: value\"");
                return;
            }
        } else {
            while (i < len && s[i] != ':')
                i++;
            if (i >= len) {
                parse_error(ps, line, "expected \"name: value\"");
                return;
            }
            size_t end = i;
            while (end > 0 && is_ws(s[end - 1]))
                end--;
            strbuf_append(&ps->key, s, end);
            for (size_t k = 0; k < ps->key.len; k++) {
                if (is_ws(ps->key.data[k])) {
                    parse_error(ps, line, "whitespace in alias name (quote it)");
                    return;
                }
            }
        }
        i++; /* the ':' */
        const char *why = alias_parse_values(s + i, len - i, &ps->value, &ps->item);
        if (why) {
            parse_error(ps, line, why);
            return;
        }
    }
    if (ps->key.len == 0) {
        parse_error(ps, line, "empty key");
        return;
    }
    if (ps->key.len > DICT_MAX_KEY) {
        parse_error(ps, line, "key too long");
        return;
    }
    lowercase(&ps->key);
    if (ps->emit) {
        strbuf_reset(&ps->reason);
        if (ps->emit(ps->ctx, ps->key.data, ps->value.data, &ps->reason) != 0) {
            parse_error(ps, line, ps->reason.len ? ps->reason.data : "cannot store entry");
            return;
        }
    }
    ps->count++;
}

long dict_parse_source(const char *text, size_t len, enum dict_format format,
                       int (*emit)(void *ctx, const char *key, const char *value,
                                   struct strbuf *reason_r),
                       void *ctx, const char *name, struct strbuf *err)
{
    struct parse_state ps = {
        .name = name,
        .err = err,
        .format = format,
        .emit = emit,
        .ctx = ctx,
    };
    struct strbuf logical = STRBUF_INIT;
    long lineno = 0, entry_line = 0;
    bool have_entry = false, entry_bad = false;
    size_t pos = 0;

    strbuf_init(&logical, 256);
    strbuf_init(&ps.key, 64);
    strbuf_init(&ps.value, 256);
    strbuf_init(&ps.item, 64);
    strbuf_init(&ps.reason, 64);

    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl ? 1 : 0);
        lineno++;
        if (llen > 0 && line[llen - 1] == '\r')
            llen--; /* CRLF files */

        /* Reject bytes that have no business in a table (and could end up in headers). */
        const char *bad = NULL;
        for (size_t i = 0; i < llen && !bad; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c == 0)
                bad = "NUL byte";
            else if (c == '\r')
                bad = "bare CR";
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                bad = "control character";
        }
        if (bad) {
            parse_error(&ps, lineno, bad);
            if (llen > 0 && is_ws(line[0])) {
                entry_bad = true; /* the entry this continues is broken too */
            } else {
                /* A broken new entry: finish the previous one, swallow its continuations. */
                if (have_entry && !entry_bad)
                    parse_entry(&ps, logical.data, logical.len, entry_line);
                strbuf_reset(&logical);
                have_entry = true;
                entry_bad = true;
                entry_line = lineno;
            }
            continue;
        }

        size_t i = 0;
        while (i < llen && is_ws(line[i]))
            i++;
        if (i == llen || line[i] == '#')
            continue; /* blank or comment: skipped, does not end an entry */

        if (i > 0) { /* continuation */
            if (!have_entry) {
                if (!entry_bad)
                    parse_error(&ps, lineno, "continuation line without an entry");
                continue;
            }
            size_t end = llen;
            while (end > i && is_ws(line[end - 1]))
                end--;
            if (logical.len + 1 + (end - i) > DICT_MAX_LINE) {
                if (!entry_bad)
                    parse_error(&ps, entry_line, "entry too long");
                entry_bad = true;
                continue;
            }
            strbuf_putc(&logical, ' ');
            strbuf_append(&logical, line + i, end - i);
            continue;
        }

        if (have_entry && !entry_bad)
            parse_entry(&ps, logical.data, logical.len, entry_line);
        strbuf_reset(&logical);
        have_entry = true;
        entry_bad = false;
        entry_line = lineno;
        if (llen > DICT_MAX_LINE) {
            parse_error(&ps, lineno, "line too long");
            entry_bad = true;
            continue;
        }
        strbuf_append(&logical, line, llen);
    }
    if (have_entry && !entry_bad)
        parse_entry(&ps, logical.data, logical.len, entry_line);

    strbuf_release(&logical);
    strbuf_release(&ps.key);
    strbuf_release(&ps.value);
    strbuf_release(&ps.item);
    strbuf_release(&ps.reason);
    return ps.failed ? -1 : ps.count;
}

char **dict_alias_split(const char *value, size_t *count_r, struct strbuf *err)
{
    size_t len = strlen(value), i = 0, n = 0, cap = 4;
    char **list = mycalloc(cap + 1, sizeof(*list));
    struct strbuf item = STRBUF_INIT;

    strbuf_init(&item, 64);
    while (i < len) {
        while (i < len && (is_ws(value[i]) || value[i] == ','))
            i++;
        if (i >= len)
            break;
        if (value[i] == '"') {
            if (!parse_quoted(value, len, &i, &item)) {
                strbuf_printf(err, "unterminated quoted value in \"%s\"", value);
                strbuf_release(&item);
                dict_alias_free(&list);
                return NULL;
            }
            while (i < len && value[i] != ',')
                i++; /* anything after the quote up to ',' is ignored */
        } else {
            size_t start = i;
            while (i < len && value[i] != ',')
                i++;
            size_t end = i;
            while (end > start && is_ws(value[end - 1]))
                end--;
            strbuf_reset(&item);
            strbuf_append(&item, value + start, end - start);
        }
        if (n == cap) {
            cap *= 2;
            list = myreallocarray(list, cap + 1, sizeof(*list));
        }
        list[n++] = mymemdup(item.data, item.len);
        list[n] = NULL;
    }
    strbuf_release(&item);
    if (count_r)
        *count_r = n;
    return list;
}

void dict_alias_free(char ***listp)
{
    char **list = *listp;
    if (list == NULL)
        return;
    for (size_t i = 0; list[i]; i++)
        myfree(list[i]);
    myfree(list);
    *listp = NULL;
}

/* ---- building ---- */

struct build_ctx {
    const struct dict_backend *be;
    void *build;
};

static int build_emit(void *ctx, const char *key, const char *value, struct strbuf *reason_r)
{
    struct build_ctx *bc = ctx;
    int r = bc->be->build_put(bc->build, key, value, reason_r);
    if (r == 1)
        strbuf_printf(reason_r, "duplicate key \"%s\"", key);
    return r == 0 ? 0 : -1;
}

/* Read a whole (bounded) file. NULL with err. */
static char *read_source(const char *path, size_t *len_r, struct strbuf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        strbuf_printf(err, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        strbuf_printf(err, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size > DICT_MAX_SOURCE) {
        strbuf_printf(err, "%s: file too large (limit %ld bytes)", path, (long)DICT_MAX_SOURCE);
        close(fd);
        return NULL;
    }
    struct strbuf sb = STRBUF_INIT;
    strbuf_init(&sb, (size_t)st.st_size);
    for (;;) {
        strbuf_grow(&sb, 65536);
        ssize_t n = read(fd, sb.data + sb.len, 65536);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            strbuf_printf(err, "read %s: %s", path, strerror(errno));
            strbuf_release(&sb);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        sb.len += (size_t)n;
        sb.data[sb.len] = 0;
        if (sb.len > (size_t)DICT_MAX_SOURCE) {
            strbuf_printf(err, "%s: file too large (limit %ld bytes)", path, (long)DICT_MAX_SOURCE);
            strbuf_release(&sb);
            close(fd);
            return NULL;
        }
    }
    close(fd);
    return strbuf_detach(&sb, len_r);
}

static void *build_start(const char *spec, const struct dict_backend **be_r, const char **name_r,
                         struct strbuf *err)
{
    const struct dict_backend *be = dict_parse_spec(spec, name_r, err);
    if (be == NULL)
        return NULL;
    if (be->build_begin == NULL) {
        strbuf_printf(err, "table %s: type \"%s\" cannot be built", spec, be->type);
        return NULL;
    }
    *be_r = be;
    return be->build_begin(*name_r, err);
}

long dict_build(const char *spec, enum dict_format format, struct strbuf *err)
{
    const struct dict_backend *be = NULL;
    const char *name = NULL;
    size_t len;
    char *text;

    {
        /* Check the spec before reading anything. */
        const struct dict_backend *chk = dict_parse_spec(spec, &name, err);
        if (chk == NULL)
            return -1;
        if (chk->build_begin == NULL) {
            strbuf_printf(err, "table %s: type \"%s\" cannot be built", spec, chk->type);
            return -1;
        }
    }
    if ((text = read_source(name, &len, err)) == NULL)
        return -1;
    struct build_ctx bc;
    bc.build = build_start(spec, &be, &name, err);
    if (bc.build == NULL) {
        myfree(text);
        return -1;
    }
    bc.be = be;
    long n = dict_parse_source(text, len, format, build_emit, &bc, name, err);
    myfree(text);
    if (n < 0) {
        be->build_abort(bc.build);
        return -1;
    }
    if (be->build_commit(bc.build, err) < 0)
        return -1;
    return n;
}

int dict_build_pairs(const char *spec, const char *const *keys, const char *const *values, size_t n,
                     struct strbuf *err)
{
    const struct dict_backend *be = NULL;
    const char *name = NULL;
    struct strbuf key = STRBUF_INIT;
    void *b = build_start(spec, &be, &name, err);

    if (b == NULL)
        return -1;
    strbuf_init(&key, 64);
    for (size_t i = 0; i < n; i++) {
        strbuf_reset(&key);
        strbuf_puts(&key, keys[i]);
        lowercase(&key);
        if (key.len == 0 || key.len > DICT_MAX_KEY) {
            strbuf_printf(err, "table %s: bad key \"%s\"", spec, keys[i]);
            goto fail;
        }
        int r = be->build_put(b, key.data, values[i], err);
        if (r == 1)
            strbuf_printf(err, "table %s: duplicate key \"%s\"", spec, key.data);
        if (r != 0)
            goto fail;
    }
    strbuf_release(&key);
    return be->build_commit(b, err);

fail:
    strbuf_release(&key);
    be->build_abort(b);
    return -1;
}
