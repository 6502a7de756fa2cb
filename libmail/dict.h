/*
 * dict - lookup tables "type:name" behind a small backend interface.
 *
 * Backends: "hash:" and "btree:" (Berkeley DB 5.3; the file is NAME.db built
 * from the text file NAME), and "static:VALUE" (every key maps to VALUE). A
 * backend is a struct dict_backend; adding LMDB means adding one, without
 * touching callers. Keys are case-insensitive (lowercased when built and when
 * looked up), like Postfix's. An open table notices a rebuilt file (checked
 * at most once a second) and reopens it, so `mailctl map build` and
 * `newaliases` take effect without restarts.
 *
 * Building is atomic: the new .db is written under a temporary name and
 * renamed over the old one.
 */
#ifndef TEGAMI_DICT_H
#define TEGAMI_DICT_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

enum dict_result { DICT_FOUND = 1, DICT_NOTFOUND = 0, DICT_ERROR = -1 };

/* Text source formats for dict_build. */
enum dict_format {
    DICT_FORMAT_MAP,     /* "key value..." per line, like postmap */
    DICT_FORMAT_ALIASES, /* "name: value, value" per line, like newaliases */
};

struct dict;

struct dict_backend {
    const char *type; /* "hash" */
    /* Open the table for reading. NULL with err on failure. */
    void *(*open)(const char *name, struct strbuf *err);
    enum dict_result (*lookup)(void *handle, const char *key, struct strbuf *value);
    void (*close)(void *handle);
    /*
     * Building: begin (to a temp file), put pairs, commit (rename) or abort.
     * build_put returns 0, 1 if the key is already there (nothing stored),
     * or -1 with err. NULL build_begin: the type cannot be built.
     */
    void *(*build_begin)(const char *name, struct strbuf *err);
    int (*build_put)(void *build, const char *key, const char *value, struct strbuf *err);
    int (*build_commit)(void *build, struct strbuf *err);
    void (*build_abort)(void *build);
    /* The file whose change means "reopen" (NULL: never changes). */
    void (*file_name)(const char *name, struct strbuf *out);
};

/* Open "type:name". NULL with err on failure (unknown type, missing file). */
struct dict *dict_open(const char *spec, struct strbuf *err);
/* Look key up; the value is put into value (reset first) when found. */
enum dict_result dict_lookup(struct dict *d, const char *key, struct strbuf *value);
void dict_close(struct dict **dp);
/* The spec the table was opened with. */
const char *dict_spec(const struct dict *d);

/*
 * Build table spec ("hash:/etc/tegami/aliases") from its text source (the
 * name without ".db"). Malformed lines are errors with "file:line: reason".
 * Returns the number of entries, or -1.
 */
long dict_build(const char *spec, enum dict_format format, struct strbuf *err);
/* Build from an in-memory list of pairs (mailctl user). */
int dict_build_pairs(const char *spec, const char *const *keys, const char *const *values, size_t n,
                     struct strbuf *err);

/*
 * Parse a text source (the contents of the file called name, used in
 * errors) in the given format, and call emit for each entry with the
 * lowercased key and the value. For DICT_FORMAT_ALIASES the value is the
 * canonical list "a, b, \"c d\"" (see dict_alias_split). emit returns 0 to
 * go on, or -1 with a reason in reason_r, reported as "name:line: reason".
 * Parsing continues after a bad line so that several errors are reported
 * (one per line in err, at most DICT_MAX_ERRORS). Returns the number of
 * entries, or -1 if anything was wrong. Exposed for fuzzing and `mailctl check`.
 */
long dict_parse_source(const char *text, size_t len, enum dict_format format,
                       int (*emit)(void *ctx, const char *key, const char *value,
                                   struct strbuf *reason_r),
                       void *ctx, const char *name, struct strbuf *err);

/* Bounds of text sources (compile-time: they describe the file format). */
#define DICT_MAX_KEY 1024            /* bytes in a key */
#define DICT_MAX_LINE 65536          /* bytes in a logical line (with continuations) */
#define DICT_MAX_SOURCE (256L << 20) /* bytes in a source file */
#define DICT_MAX_ERRORS 20           /* error lines reported by one parse */

/*
 * Split an alias value as stored by DICT_FORMAT_ALIASES ("a, b, \"|cmd x\"")
 * into its elements, quotes and backslash escapes removed. Returns a
 * NULL-terminated array (free with dict_alias_free), or NULL with err for an
 * unterminated quote.
 */
char **dict_alias_split(const char *value, size_t *count_r, struct strbuf *err);
void dict_alias_free(char ***listp);

/* The backend for a type name ("hash"), NULL if unknown. */
const struct dict_backend *dict_backend_find(const char *type);
/* Berkeley DB backends (dict_db.c). */
extern const struct dict_backend dict_backend_hash;
extern const struct dict_backend dict_backend_btree;

#endif
