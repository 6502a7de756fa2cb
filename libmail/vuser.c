/*
 * vuser - virtual mail users. See vuser.h.
 *
 * The text file $config_directory/users is the source of truth; every edit
 * rewrites it atomically (temporary file, fsync, rename, fsync of the
 * directory) under an flock(2) of the config directory, then rebuilds the
 * table(s) of virtual_user_maps that are built from it. Daemons only read
 * the table (which dict reopens when it is rebuilt).
 */
#include "vuser.h"
#include "config.h"
#include "dict.h"
#include "msg.h"
#include "mymalloc.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define VUSER_NAME_MAX 64
#define VUSER_PASSWORD_MAX 4096    /* longer "passwords" are refused, not hashed */
#define VUSER_FILE_MAX (64L << 20) /* bytes in the users file */

bool vuser_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len > VUSER_NAME_MAX || name[0] == '.')
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

void vuser_maildir(const char *name, struct strbuf *out)
{
    const char *base = config_str("virtual_mailbox_base");
    size_t blen = strlen(base);
    while (blen > 1 && base[blen - 1] == '/')
        blen--;
    strbuf_reset(out);
    strbuf_append(out, base, blen);
    strbuf_printf(out, "/%s/Maildir", name);
}

/* ---- lookup ---- */

/* The tables of virtual_user_maps, reopened when the parameter value changes. */
static char *vu_spec;
static struct dict **vu_dicts;
static size_t vu_ndicts;

static void vu_close_all(void)
{
    for (size_t i = 0; i < vu_ndicts; i++)
        dict_close(&vu_dicts[i]);
    myfree(vu_dicts);
    vu_dicts = NULL;
    vu_ndicts = 0;
    myfree(vu_spec);
    vu_spec = NULL;
}

static int vu_open_all(struct strbuf *err)
{
    const char *spec = config_str("virtual_user_maps");
    if (vu_spec && strcmp(vu_spec, spec) == 0)
        return 0;
    vu_close_all();

    size_t n = 0;
    char **list = config_split_list(spec, &n);
    struct dict **dicts = mycalloc(n ? n : 1, sizeof(*dicts));
    for (size_t i = 0; i < n; i++) {
        if ((dicts[i] = dict_open(list[i], err)) == NULL) {
            for (size_t j = 0; j < i; j++)
                dict_close(&dicts[j]);
            myfree(dicts);
            config_list_free(&list);
            return -1;
        }
    }
    config_list_free(&list);
    vu_dicts = dicts;
    vu_ndicts = n;
    vu_spec = mystrdup(spec);
    return 0;
}

int vuser_lookup(const char *name, struct vuser *out, struct strbuf *err)
{
    struct strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (strlen(name) > VUSER_NAME_MAX)
        return 0;
    /* Login names are matched case-insensitively; the stored name is lowercase. */
    strbuf_init(&key, 64);
    for (const char *s = name; *s; s++)
        strbuf_putc(&key, *s >= 'A' && *s <= 'Z' ? *s + ('a' - 'A') : *s);
    if (!vuser_name_valid(key.data)) {
        strbuf_release(&key);
        return 0;
    }
    if (vu_open_all(err) < 0) {
        strbuf_release(&key);
        return -1;
    }
    strbuf_init(&value, 128);
    for (size_t i = 0; i < vu_ndicts && rc == 0; i++) {
        enum dict_result r = dict_lookup(vu_dicts[i], key.data, &value);
        if (r == DICT_ERROR) {
            strbuf_printf(err, "table %s: lookup of \"%s\" failed", dict_spec(vu_dicts[i]),
                          key.data);
            rc = -1;
        } else if (r == DICT_FOUND) {
            rc = 1;
        }
    }
    if (rc == 1) {
        /* The value is the hash; surrounding blanks are not part of it. */
        size_t s = 0, e = value.len;
        while (s < e && (value.data[s] == ' ' || value.data[s] == '\t'))
            s++;
        while (e > s && (value.data[e - 1] == ' ' || value.data[e - 1] == '\t'))
            e--;
        struct strbuf md = STRBUF_INIT;
        vuser_maildir(key.data, &md);
        out->name = strbuf_detach(&key, NULL);
        out->hash = mystrndup(value.data + s, e - s);
        out->maildir = strbuf_detach(&md, NULL);
    }
    strbuf_release(&key);
    strbuf_release(&value);
    return rc;
}

void vuser_release(struct vuser *u)
{
    if (u == NULL)
        return;
    myfree(u->name);
    if (u->hash)
        explicit_bzero(u->hash, strlen(u->hash));
    myfree(u->hash);
    myfree(u->maildir);
    memset(u, 0, sizeof(*u));
}

/* ---- hashing ---- */

bool vuser_verify(const struct vuser *u, const char *password)
{
    if (u == NULL || u->hash == NULL || password == NULL)
        return false;
    size_t hlen = strlen(u->hash);
    /* "*" and "!" hashes are locked accounts (as in shadow(5)). */
    if (hlen < 3 || u->hash[0] != '$' || strlen(password) > VUSER_PASSWORD_MAX)
        return false;
    struct crypt_data *cd = mycalloc(1, sizeof(*cd));
    const char *res = crypt_r(password, u->hash, cd);
    bool ok = res != NULL && res[0] != '*' && strlen(res) == hlen &&
              CRYPTO_memcmp(res, u->hash, hlen) == 0;
    explicit_bzero(cd, sizeof(*cd));
    myfree(cd);
    return ok;
}

int vuser_hash(const char *password, struct strbuf *hash_r, struct strbuf *err)
{
    size_t plen = password ? strlen(password) : 0;
    if (plen == 0) {
        strbuf_puts(err, "empty password");
        return -1;
    }
    if (plen > VUSER_PASSWORD_MAX) {
        strbuf_printf(err, "password longer than %d bytes", VUSER_PASSWORD_MAX);
        return -1;
    }
    /* yescrypt where libcrypt has it, else SHA-512; both with a fresh random salt. */
    char *salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
    if (salt == NULL)
        salt = crypt_gensalt_ra("$6$", 0, NULL, 0);
    if (salt == NULL) {
        strbuf_printf(err, "crypt_gensalt: %s", strerror(errno));
        return -1;
    }
    struct crypt_data *cd = mycalloc(1, sizeof(*cd));
    const char *res = crypt_r(password, salt, cd);
    free(salt); /* allocated by libcrypt with malloc */
    int rc = 0;
    if (res == NULL || res[0] != '$') {
        strbuf_printf(err, "crypt: %s", strerror(errno ? errno : EINVAL));
        rc = -1;
    } else {
        strbuf_reset(hash_r);
        strbuf_puts(hash_r, res);
    }
    explicit_bzero(cd, sizeof(*cd));
    myfree(cd);
    return rc;
}

/* ---- the users file ---- */

struct users_line {
    char *text; /* the line as read (without '\n') */
    char *name; /* NULL for comments and blank lines */
    char *hash;
};

struct users_file {
    char *path;
    struct users_line *lines;
    size_t n, cap;
    bool exists;
    mode_t mode;
    uid_t uid;
    gid_t gid;
};

static void users_free(struct users_file *uf)
{
    for (size_t i = 0; i < uf->n; i++) {
        myfree(uf->lines[i].text);
        myfree(uf->lines[i].name);
        myfree(uf->lines[i].hash);
    }
    myfree(uf->lines);
    myfree(uf->path);
    memset(uf, 0, sizeof(*uf));
}

static void users_path(struct strbuf *out)
{
    strbuf_reset(out);
    strbuf_puts(out, config_directory());
    strbuf_puts(out, "/users");
}

static struct users_line *users_append(struct users_file *uf)
{
    if (uf->n == uf->cap) {
        uf->cap = uf->cap ? uf->cap * 2 : 32;
        uf->lines = myreallocarray(uf->lines, uf->cap, sizeof(*uf->lines));
    }
    struct users_line *l = &uf->lines[uf->n++];
    memset(l, 0, sizeof(*l));
    return l;
}

static struct users_line *users_find(struct users_file *uf, const char *name)
{
    for (size_t i = 0; i < uf->n; i++)
        if (uf->lines[i].name && strcmp(uf->lines[i].name, name) == 0)
            return &uf->lines[i];
    return NULL;
}

/* Parse the users file; a missing file is an empty one. 0 or -1 with "path:line: reason". */
static int users_load(struct users_file *uf, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    struct stat st;
    int fd;

    memset(uf, 0, sizeof(*uf));
    users_path(&path);
    uf->path = strbuf_detach(&path, NULL);
    uf->mode = 0640;
    if ((fd = open(uf->path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT)
            return 0;
        strbuf_printf(err, "open %s: %s", uf->path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > VUSER_FILE_MAX) {
        strbuf_printf(err, "%s: not a regular file or too large", uf->path);
        close(fd);
        return -1;
    }
    uf->exists = true;
    uf->mode = st.st_mode & 0777;
    uf->uid = st.st_uid;
    uf->gid = st.st_gid;

    struct strbuf text = STRBUF_INIT;
    strbuf_init(&text, (size_t)st.st_size);
    for (;;) {
        strbuf_grow(&text, 65536);
        ssize_t r = read(fd, text.data + text.len, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            strbuf_printf(err, "read %s: %s", uf->path, strerror(errno));
            close(fd);
            strbuf_release(&text);
            return -1;
        }
        if (r == 0)
            break;
        text.len += (size_t)r;
        text.data[text.len] = 0;
        if (text.len > (size_t)VUSER_FILE_MAX) {
            strbuf_printf(err, "%s: too large", uf->path);
            close(fd);
            strbuf_release(&text);
            return -1;
        }
    }
    close(fd);

    int rc = 0;
    size_t pos = 0;
    long lineno = 0;
    while (pos < text.len) {
        const char *line = text.data + pos;
        const char *nl = memchr(line, '\n', text.len - pos);
        size_t llen = nl ? (size_t)(nl - line) : text.len - pos;
        pos += llen + (nl ? 1 : 0);
        lineno++;
        struct users_line *l = users_append(uf);
        l->text = mymemdup(line, llen);
        if (strlen(l->text) != llen) {
            strbuf_printf(err, "%s%s:%ld: NUL byte", err->len ? "\n" : "", uf->path, lineno);
            rc = -1;
            continue;
        }
        size_t s = 0, e = llen;
        while (s < e && (line[s] == ' ' || line[s] == '\t'))
            s++;
        while (e > s && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r'))
            e--;
        if (s == e || line[s] == '#')
            continue;
        const char *colon = memchr(line + s, ':', e - s);
        const char *reason = NULL;
        if (colon == NULL) {
            reason = "expected \"name:hash\"";
        } else {
            char *name = mystrndup(line + s, (size_t)(colon - (line + s)));
            char *hash = mystrndup(colon + 1, (size_t)(line + e - (colon + 1)));
            if (!vuser_name_valid(name))
                reason = "invalid user name";
            else if (hash[0] == 0 || strcspn(hash, " \t:") != strlen(hash))
                reason = "invalid password hash";
            else if (users_find(uf, name))
                reason = "duplicate user";
            if (reason) {
                myfree(name);
                myfree(hash);
            } else {
                l->name = name;
                l->hash = hash;
            }
        }
        if (reason) {
            strbuf_printf(err, "%s%s:%ld: %s", err->len ? "\n" : "", uf->path, lineno, reason);
            rc = -1;
        }
    }
    strbuf_release(&text);
    return rc;
}

static int fsync_dir(const char *dir, struct strbuf *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        strbuf_printf(err, "fsync %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Write the users file atomically. */
static int users_save(struct users_file *uf, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT, out = STRBUF_INIT;
    int fd, rc = -1;

    strbuf_printf(&tmp, "%s.tmpXXXXXX", uf->path);
    if ((fd = mkstemp(tmp.data)) < 0) {
        strbuf_printf(err, "create %s: %s", tmp.data, strerror(errno));
        strbuf_release(&tmp);
        return -1;
    }
    if (fchmod(fd, uf->mode) < 0)
        msg_warn("chmod %s: %m", tmp.data);
    if (uf->exists && geteuid() == 0 && fchown(fd, uf->uid, uf->gid) < 0)
        msg_warn("chown %s: %m", tmp.data);
    strbuf_init(&out, 4096);
    for (size_t i = 0; i < uf->n; i++) {
        strbuf_puts(&out, uf->lines[i].text);
        strbuf_putc(&out, '\n');
    }
    const char *p = out.data;
    size_t left = out.len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            strbuf_printf(err, "write %s: %s", tmp.data, strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        strbuf_printf(err, "fsync %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        strbuf_printf(err, "close %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, uf->path) < 0) {
        strbuf_printf(err, "rename %s to %s: %s", tmp.data, uf->path, strerror(errno));
        goto out;
    }
    rc = fsync_dir(config_directory(), err);
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp.data);
    strbuf_release(&tmp);
    strbuf_release(&out);
    return rc;
}

/*
 * The buildable tables of virtual_user_maps whose source is the users file.
 * Returns a NULL-terminated list (may be empty) to free with config_list_free.
 */
static char **users_tables(const char *users, size_t *n_r)
{
    size_t n = 0, out = 0;
    char **list = config_split_list(config_str("virtual_user_maps"), &n);
    struct stat ust;
    bool have_ust = stat(users, &ust) == 0;

    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(list[i], ':');
        bool keep = false;
        if (colon) {
            char *type = mystrndup(list[i], (size_t)(colon - list[i]));
            const struct dict_backend *be = dict_backend_find(type);
            myfree(type);
            if (be && be->build_begin) {
                struct stat st;
                keep = strcmp(colon + 1, users) == 0 ||
                       (have_ust && stat(colon + 1, &st) == 0 && st.st_dev == ust.st_dev &&
                        st.st_ino == ust.st_ino);
            }
        }
        if (keep)
            list[out++] = list[i];
        else
            myfree(list[i]);
    }
    list[out] = NULL;
    *n_r = out;
    return list;
}

static int users_rebuild(struct users_file *uf, struct strbuf *err)
{
    size_t nt = 0, nu = 0;
    char **tables = users_tables(uf->path, &nt);
    int rc = 0;

    if (nt == 0) {
        strbuf_printf(err, "virtual_user_maps (%s) has no hash: or btree: table built from %s",
                      config_str("virtual_user_maps"), uf->path);
        config_list_free(&tables);
        return -1;
    }
    const char **keys = mycalloc(uf->n + 1, sizeof(*keys));
    const char **values = mycalloc(uf->n + 1, sizeof(*values));
    for (size_t i = 0; i < uf->n; i++) {
        if (uf->lines[i].name) {
            keys[nu] = uf->lines[i].name;
            values[nu] = uf->lines[i].hash;
            nu++;
        }
    }
    for (size_t i = 0; i < nt && rc == 0; i++)
        rc = dict_build_pairs(tables[i], keys, values, nu, err);
    myfree(keys);
    myfree(values);
    config_list_free(&tables);
    return rc;
}

/* Serialise edits: an exclusive flock on the config directory itself. */
static int users_lock(struct strbuf *err)
{
    int fd = open(config_directory(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        strbuf_printf(err, "open %s: %s", config_directory(), strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR)
            continue;
        strbuf_printf(err, "lock %s: %s", config_directory(), strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

enum users_op { USERS_ADD, USERS_DEL, USERS_PASSWD, USERS_REBUILD };

static int users_edit(enum users_op op, const char *name, const char *password, struct strbuf *err)
{
    struct users_file uf;
    struct strbuf hash = STRBUF_INIT;
    int lock, rc = -1;

    if (op != USERS_REBUILD && !vuser_name_valid(name)) {
        strbuf_printf(err,
                      "invalid user name \"%s\" (lowercase a-z 0-9 . _ -, 1-%d bytes, "
                      "not starting with '.')",
                      name, VUSER_NAME_MAX);
        return -1;
    }
    if ((op == USERS_ADD || op == USERS_PASSWD) && vuser_hash(password, &hash, err) < 0)
        return -1;
    if ((lock = users_lock(err)) < 0) {
        strbuf_release(&hash);
        return -1;
    }
    if (users_load(&uf, err) < 0)
        goto out;
    /* Refuse before touching anything if the table could not be rebuilt. */
    {
        size_t nt = 0;
        char **tables = users_tables(uf.path, &nt);
        config_list_free(&tables);
        if (nt == 0) {
            strbuf_printf(err, "virtual_user_maps (%s) has no hash: or btree: table built from %s",
                          config_str("virtual_user_maps"), uf.path);
            goto out;
        }
    }
    struct users_line *l = op == USERS_REBUILD ? NULL : users_find(&uf, name);
    switch (op) {
    case USERS_ADD:
        if (l) {
            strbuf_printf(err, "user %s already exists", name);
            goto out;
        }
        l = users_append(&uf);
        l->name = mystrdup(name);
        l->hash = mystrdup(hash.data);
        break;
    case USERS_PASSWD:
        if (l == NULL) {
            strbuf_printf(err, "no such user: %s", name);
            goto out;
        }
        myfree(l->hash);
        l->hash = mystrdup(hash.data);
        break;
    case USERS_DEL:
        if (l == NULL) {
            strbuf_printf(err, "no such user: %s", name);
            goto out;
        }
        myfree(l->name);
        myfree(l->hash);
        myfree(l->text);
        memmove(l, l + 1, (size_t)(&uf.lines[uf.n] - (l + 1)) * sizeof(*l));
        uf.n--;
        l = NULL;
        break;
    case USERS_REBUILD:
        break;
    }
    if (l) { /* the edited line, in canonical form */
        struct strbuf t = STRBUF_INIT;
        strbuf_printf(&t, "%s:%s", l->name, l->hash);
        myfree(l->text);
        l->text = strbuf_detach(&t, NULL);
    }
    if (op != USERS_REBUILD && users_save(&uf, err) < 0)
        goto out;
    rc = users_rebuild(&uf, err);
    if (rc == 0 && op != USERS_REBUILD)
        msg_info("user %s: %s",
                 op == USERS_ADD   ? "added"
                 : op == USERS_DEL ? "deleted"
                                   : "password changed",
                 name);
out:
    users_free(&uf);
    if (hash.data)
        explicit_bzero(hash.data, hash.len);
    strbuf_release(&hash);
    close(lock);
    return rc;
}

int vuser_add(const char *name, const char *password, struct strbuf *err)
{
    return users_edit(USERS_ADD, name, password, err);
}

int vuser_del(const char *name, struct strbuf *err)
{
    return users_edit(USERS_DEL, name, NULL, err);
}

int vuser_passwd(const char *name, const char *password, struct strbuf *err)
{
    return users_edit(USERS_PASSWD, name, password, err);
}

int vuser_rebuild(struct strbuf *err)
{
    return users_edit(USERS_REBUILD, NULL, NULL, err);
}

char **vuser_list(size_t *count_r, struct strbuf *err)
{
    struct users_file uf;
    size_t n = 0;

    if (users_load(&uf, err) < 0) {
        users_free(&uf);
        return NULL;
    }
    char **list = mycalloc(uf.n + 1, sizeof(*list));
    for (size_t i = 0; i < uf.n; i++)
        if (uf.lines[i].name)
            list[n++] = mystrdup(uf.lines[i].name);
    list[n] = NULL;
    users_free(&uf);
    if (count_r)
        *count_r = n;
    return list;
}
