/*
 * dict_db - Berkeley DB 5.3 backends "hash:" and "btree:" for dict.
 *
 * The table "hash:NAME" is the file NAME.db. Readers open it DB_RDONLY with
 * no environment (no locking is needed: a table is never written in place,
 * only replaced by rename). Builders write NAME.db.tmpXXXXXXXX with
 * DB_CREATE|DB_EXCL, fsync it, rename it over NAME.db and fsync the
 * directory. Keys and values are stored without a terminating NUL.
 *
 * The new file takes the permissions (and, when we are root, the owner) of
 * the text source NAME if it exists, else of the old NAME.db, else 0644:
 * users.db holds password hashes and must be exactly as readable as users.
 */
#include "dict.h"
#include "msg.h"
#include "mymalloc.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Berkeley DB's own diagnostic text for the last error (appended to err). */
static char db_last_errmsg[256];

static void db_errcall(const DB_ENV *env, const char *prefix, const char *text)
{
    (void)env;
    (void)prefix;
    snprintf(db_last_errmsg, sizeof(db_last_errmsg), "%s", text ? text : "");
}

static void db_error(struct strbuf *err, const char *what, const char *path, int ret)
{
    if (err) {
        strbuf_printf(err, "%s %s: %s", what, path, db_strerror(ret));
        if (db_last_errmsg[0])
            strbuf_printf(err, " (%s)", db_last_errmsg);
    }
    db_last_errmsg[0] = 0;
}

static void db_path(const char *name, struct strbuf *out)
{
    strbuf_reset(out);
    strbuf_puts(out, name);
    strbuf_puts(out, ".db");
}

static void *db_open_type(const char *name, DBTYPE type, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    DB *db = NULL;
    int ret;

    db_path(name, &path);
    if ((ret = db_create(&db, NULL, 0)) != 0) {
        db_error(err, "db_create for", path.data, ret);
        strbuf_release(&path);
        return NULL;
    }
    db->set_errcall(db, db_errcall);
    db_last_errmsg[0] = 0;
    if ((ret = db->open(db, NULL, path.data, NULL, type, DB_RDONLY, 0)) != 0) {
        db_error(err, "open", path.data, ret);
        db->close(db, 0);
        strbuf_release(&path);
        return NULL;
    }
    strbuf_release(&path);
    return db;
}

static void *db_open_hash(const char *name, struct strbuf *err)
{
    return db_open_type(name, DB_HASH, err);
}

static void *db_open_btree(const char *name, struct strbuf *err)
{
    return db_open_type(name, DB_BTREE, err);
}

static enum dict_result db_lookup(void *handle, const char *key, struct strbuf *value)
{
    DB *db = handle;
    DBT k, v;
    int ret;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)strlen(key);
    ret = db->get(db, NULL, &k, &v, 0);
    if (ret == DB_NOTFOUND)
        return DICT_NOTFOUND;
    if (ret != 0) {
        msg_warn("dict lookup \"%s\": %s", key, db_strerror(ret));
        return DICT_ERROR;
    }
    strbuf_reset(value);
    strbuf_append(value, v.data, v.size);
    return DICT_FOUND;
}

static void db_close_handle(void *handle)
{
    DB *db = handle;
    if (db)
        db->close(db, 0);
}

struct db_build {
    DB *db;
    char *tmp;
    char *final;
};

static void random_suffix(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[16];
    if (n > sizeof(rnd))
        n = sizeof(rnd);
    if (getrandom(rnd, n, GRND_NONBLOCK) != (ssize_t)n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long x = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            rnd[i] = (unsigned char)(x >> 33);
        }
    }
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    out[n] = 0;
}

static void *db_build_begin_type(const char *name, DBTYPE type, struct strbuf *err)
{
    struct db_build *b = mycalloc(1, sizeof(*b));
    struct strbuf path = STRBUF_INIT;
    struct stat st;
    mode_t mode = 0644;
    bool have_owner = false;
    uid_t uid = 0;
    gid_t gid = 0;
    int ret = 0;

    db_path(name, &path);
    b->final = strbuf_detach(&path, NULL);
    if (stat(name, &st) == 0 || stat(b->final, &st) == 0) {
        mode = st.st_mode & 0777;
        uid = st.st_uid;
        gid = st.st_gid;
        have_owner = true;
    }

    for (int attempt = 0; attempt < 10; attempt++) {
        char suffix[9];
        random_suffix(suffix, 8);
        strbuf_reset(&path);
        strbuf_printf(&path, "%s.tmp%s", b->final, suffix);
        if ((ret = db_create(&b->db, NULL, 0)) != 0) {
            db_error(err, "db_create for", path.data, ret);
            goto fail;
        }
        b->db->set_errcall(b->db, db_errcall);
        b->db->set_cachesize(b->db, 0, 4 << 20, 1);
        db_last_errmsg[0] = 0;
        ret = b->db->open(b->db, NULL, path.data, NULL, type, DB_CREATE | DB_EXCL, 0600);
        if (ret == 0)
            break;
        b->db->close(b->db, 0);
        b->db = NULL;
        if (ret != EEXIST) {
            db_error(err, "create", path.data, ret);
            goto fail;
        }
    }
    if (b->db == NULL) {
        db_error(err, "create", path.data, ret);
        goto fail;
    }
    b->tmp = strbuf_detach(&path, NULL);

    int fd = -1;
    if (b->db->fd(b->db, &fd) == 0 && fd >= 0) {
        if (fchmod(fd, mode) < 0)
            msg_warn("chmod %s: %m", b->tmp);
        if (have_owner && geteuid() == 0 && fchown(fd, uid, gid) < 0)
            msg_warn("chown %s: %m", b->tmp);
    }
    return b;

fail:
    strbuf_release(&path);
    myfree(b->final);
    myfree(b);
    return NULL;
}

static void *db_build_begin_hash(const char *name, struct strbuf *err)
{
    return db_build_begin_type(name, DB_HASH, err);
}

static void *db_build_begin_btree(const char *name, struct strbuf *err)
{
    return db_build_begin_type(name, DB_BTREE, err);
}

static int db_build_put(void *build, const char *key, const char *value, struct strbuf *err)
{
    struct db_build *b = build;
    DBT k, v;
    int ret;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)strlen(key);
    v.data = (void *)value;
    v.size = (u_int32_t)strlen(value);
    ret = b->db->put(b->db, NULL, &k, &v, DB_NOOVERWRITE);
    if (ret == 0)
        return 0;
    if (ret == DB_KEYEXIST)
        return 1;
    db_error(err, "write", b->tmp, ret);
    return -1;
}

static void db_build_free(struct db_build *b)
{
    myfree(b->tmp);
    myfree(b->final);
    myfree(b);
}

static void db_build_abort(void *build)
{
    struct db_build *b = build;
    if (b == NULL)
        return;
    if (b->db)
        b->db->close(b->db, DB_NOSYNC);
    if (unlink(b->tmp) < 0 && errno != ENOENT)
        msg_warn("unlink %s: %m", b->tmp);
    db_build_free(b);
}

/* fsync the directory holding path, so that a rename in it is durable. */
static int fsync_parent(const char *path, struct strbuf *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? (slash == path ? mystrdup("/") : mystrndup(path, (size_t)(slash - path)))
                      : mystrdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync(fd) < 0) {
        strbuf_printf(err, "fsync %s: %s", dir, strerror(errno));
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    myfree(dir);
    return rc;
}

static int db_build_commit(void *build, struct strbuf *err)
{
    struct db_build *b = build;
    int ret, fd;

    ret = b->db->close(b->db, 0);
    b->db = NULL;
    if (ret != 0) {
        db_error(err, "close", b->tmp, ret);
        goto fail;
    }
    /* DB->close flushes its cache; make sure the bytes are on disk before the rename. */
    if ((fd = open(b->tmp, O_RDONLY | O_CLOEXEC)) < 0) {
        strbuf_printf(err, "open %s: %s", b->tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fd) < 0) {
        strbuf_printf(err, "fsync %s: %s", b->tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    close(fd);
    if (rename(b->tmp, b->final) < 0) {
        strbuf_printf(err, "rename %s to %s: %s", b->tmp, b->final, strerror(errno));
        goto fail;
    }
    ret = fsync_parent(b->final, err);
    db_build_free(b);
    return ret;

fail:
    db_build_abort(b);
    return -1;
}

static void db_file_name(const char *name, struct strbuf *out)
{
    db_path(name, out);
}

const struct dict_backend dict_backend_hash = {
    .type = "hash",
    .open = db_open_hash,
    .lookup = db_lookup,
    .close = db_close_handle,
    .build_begin = db_build_begin_hash,
    .build_put = db_build_put,
    .build_commit = db_build_commit,
    .build_abort = db_build_abort,
    .file_name = db_file_name,
};

const struct dict_backend dict_backend_btree = {
    .type = "btree",
    .open = db_open_btree,
    .lookup = db_lookup,
    .close = db_close_handle,
    .build_begin = db_build_begin_btree,
    .build_put = db_build_put,
    .build_commit = db_build_commit,
    .build_abort = db_build_abort,
    .file_name = db_file_name,
};
