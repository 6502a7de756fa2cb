/*
 * mbox_index - a Maildir folder and its Berkeley DB index (see mbox_index.h).
 *
 * Index keys (btree, so each kind is one contiguous, ordered range):
 *   "H"                 header (struct hdr, encoded)
 *   "U" + be32(uid)     message record (rec_encode), UID order = key order
 *   "X" + be32(uid)     tombstone: be64(modseq of the expunge)
 *   "K" + byte(i)       keyword i's name
 *   "C" + be32(uid) + field   cached string
 *
 * Transactions: flock on tegami-index.lock (LOCK_SH to read, LOCK_EX to
 * write). The lock file holds, at offset 0, the change counter (be64) and,
 * at offset 8, a "write in progress" byte set before the first change and
 * cleared after the commit's flush: a reader that finds it set under the lock knows a
 * writer died half-way and rebuilds the index from the Maildir.
 *
 * Index writes are not fsync'ed (like Dovecot's fsync_mode=optimized):
 * a commit writes the DB's dirty pages to the kernel (memp_trickle), so
 * every process sees them and a crashed process loses nothing. Only a
 * system crash can lose or tear them, so before the first unsynced change
 * the lock file records this boot's id at offset 9 (fsync'ed once); a
 * transaction that finds another boot's id there rebuilds the index from
 * the Maildir, which holds every flag and UID (file names). An idle
 * session's release fsyncs the DB and clears the id. Without a boot id
 * (no /proc) every commit fsyncs the DB as before.
 *
 * Durability of new messages (APPEND, COPY): the file's data is fsync'ed
 * before it is renamed or linked into cur/; the directory cur/ is fsync'ed
 * once when the outermost transaction commits (so a COPY of 20,000
 * messages in one mbox_txn_begin/commit costs one directory fsync, not
 * 20,000), before the index's DB->sync, and a failed fsync fails the
 * commit. Callers report success only after the commit.
 */
#include "mbox_index.h"

#include <db.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mailbox.h"
#include "maildir.h"
#include "msg.h"
#include "mymalloc.h"

#define INDEX_DB "tegami-index.db"
#define INDEX_LOCK "tegami-index.lock"
#define UIDVALIDITY_FILE "tegami-uidvalidity"
#define KEYWORDS_FILE "tegami-keywords"

/* Keywords 0..25 also go into the file name as the letters a..z (as
 * Dovecot's Maildir does), so a rebuilt index keeps them. */
#define NAME_KEYWORDS 26

#define HDR_VERSION 1
#define REC_VERSION 1
#define REC_FIXED (1 + 4 + 8 + 8 + 8 + 8 + 8 + 2) /* bytes before the file name */

/* Ceilings: every UID / modseq ever handed out is below the ceiling kept in
 * tegami-uidvalidity; raising it costs one small file write per step. */
#define UID_STEP 1024u
#define MODSEQ_STEP 65536u

/* A directory mtime this close to now may still change within the same
 * timestamp tick: do not trust it to mean "unchanged" later. */
#define MTIME_DIRTY_SECS 2

struct hdr {
    uint32_t uidvalidity, uidnext, recent_uid;
    uint64_t highestmodseq, tombstone_floor;
    int64_t cur_sec, cur_nsec, new_sec, new_nsec; /* scanned dir mtimes, 0 = rescan */
};

struct pending {
    uint32_t uid;
    char *field;
    char *value;
    size_t len;
};

struct range {
    uint32_t lo, hi; /* [lo, hi) claimed \Recent */
};

/*
 * File names live in blocks that never move, so a record's filename stays
 * valid while the array is rebuilt around it: one allocation per block
 * instead of one malloc per message (its header and rounding cost ~16 bytes
 * a name, and loading 100,000 records took 100,000 mallocs). The old name of
 * a renamed file stays behind as garbage until names_compact.
 */
#define NAME_BLOCK 16384

struct name_block {
    struct name_block *next;
    size_t used, cap;
    char data[];
};

struct mbox {
    char *dir;
    unsigned flags;
    int lock_fd;
    int notify_fd;
    const struct kv_ops *kv;
    void *db;        /* the backend's handle, NULL when closed */
    uint64_t gen;    /* change counter when our records were last current */
    uint64_t db_gen; /* change counter when the DB handle was (re)opened */
    bool have_gen;
    unsigned txn_depth; /* mbox_txn_begin nesting */
    bool txn_write;     /* the current transaction holds LOCK_EX */
    bool txn_dirty;     /* the current transaction changed the DB */
    bool cur_unsynced;  /* new entries in cur/ not fsync'ed yet (done at the outermost commit) */
    bool boot_marked;   /* the lock file names this boot: unsynced DB writes are covered */
    struct hdr h;
    uint32_t uid_ceiling;
    uint64_t modseq_ceiling;
    struct mbox_rec *recs;
    size_t n, cap;
    struct name_block *names; /* the records' file names, newest block first */
    size_t names_live;        /* bytes of names in use (NULs included) */
    size_t names_dead;        /* bytes of replaced names, freed by names_compact */
    size_t released_n;        /* the record count at mbox_release (sizes the reload) */
    size_t released_names;    /* and names_live */
    char *kw[MBOX_KEYWORDS_MAX];
    size_t nkw;
    struct range *recent;
    size_t nrecent;
    struct pending *pend;
    size_t npend, cappend;
    bool rebuilding;
    bool db_missing;     /* the last db_open found no index file (a new folder) */
    bool released;       /* mbox_release: no records, no DB handle */
    bool resume_changed; /* mbox_resume loaded others' changes: the next mbox_sync says 1 */
};

/* ---- small helpers ---- */

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void be64(unsigned char *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void path_of(const struct mbox *b, const char *what, struct strbuf *out)
{
    strbuf_reset(out);
    strbuf_printf(out, "%s/%s", b->dir, what);
}

/* ---- record encoding ---- */

static size_t rec_encode(const struct mbox_rec *r, unsigned char *buf, size_t cap)
{
    size_t nlen = strlen(r->filename);
    if (nlen > 0xFFFF || REC_FIXED + nlen > cap)
        return 0;
    unsigned char *p = buf;
    *p++ = REC_VERSION;
    be32(p, r->flags & MBOX_F_STORABLE);
    p += 4;
    be64(p, r->keywords);
    p += 8;
    be64(p, r->modseq);
    p += 8;
    be64(p, r->size);
    p += 8;
    be64(p, r->vsize);
    p += 8;
    be64(p, (uint64_t)(int64_t)r->internaldate);
    p += 8;
    p[0] = (unsigned char)(nlen >> 8);
    p[1] = (unsigned char)nlen;
    p += 2;
    memcpy(p, r->filename, nlen);
    return REC_FIXED + nlen;
}

int mbox_rec_decode(const void *data, size_t len, struct mbox_rec *r, const char **filename_r,
                    size_t *filename_len_r)
{
    const unsigned char *p = data;
    if (len < REC_FIXED || p[0] != REC_VERSION)
        return -1;
    memset(r, 0, sizeof(*r));
    r->flags = get32(p + 1);
    if (r->flags & ~MBOX_F_STORABLE)
        return -1;
    r->keywords = get64(p + 5);
    r->modseq = get64(p + 13);
    r->size = get64(p + 21);
    r->vsize = get64(p + 29);
    r->internaldate = (time_t)(int64_t)get64(p + 37);
    size_t nlen = (size_t)p[45] << 8 | p[46];
    if (REC_FIXED + nlen != len || nlen == 0 || r->modseq == 0)
        return -1;
    const char *name = (const char *)p + REC_FIXED;
    /* A file name: no NUL, no '/', not "." or "..". */
    if (memchr(name, 0, nlen) != NULL || memchr(name, '/', nlen) != NULL || name[0] == '.')
        return -1;
    *filename_r = name;
    *filename_len_r = nlen;
    return 0;
}

static size_t hdr_encode(const struct hdr *h, unsigned char *buf)
{
    unsigned char *p = buf;
    *p++ = HDR_VERSION;
    be32(p, h->uidvalidity);
    be32(p + 4, h->uidnext);
    be32(p + 8, h->recent_uid);
    be64(p + 12, h->highestmodseq);
    be64(p + 20, h->tombstone_floor);
    be64(p + 28, (uint64_t)h->cur_sec);
    be64(p + 36, (uint64_t)h->cur_nsec);
    be64(p + 44, (uint64_t)h->new_sec);
    be64(p + 52, (uint64_t)h->new_nsec);
    return 61;
}

static int hdr_decode(const void *data, size_t len, struct hdr *h)
{
    const unsigned char *p = data;
    if (len != 61 || p[0] != HDR_VERSION)
        return -1;
    p++;
    h->uidvalidity = get32(p);
    h->uidnext = get32(p + 4);
    h->recent_uid = get32(p + 8);
    h->highestmodseq = get64(p + 12);
    h->tombstone_floor = get64(p + 20);
    h->cur_sec = (int64_t)get64(p + 28);
    h->cur_nsec = (int64_t)get64(p + 36);
    h->new_sec = (int64_t)get64(p + 44);
    h->new_nsec = (int64_t)get64(p + 52);
    if (h->uidvalidity == 0 || h->uidnext == 0 || h->highestmodseq == 0)
        return -1;
    return 0;
}

/* ---- file names: <base>[,S=n][,W=n][,U=n][:2,<flags>] ---- */

struct fname {
    size_t base_len;  /* up to ':' (or all) */
    const char *info; /* after ":2," or NULL */
    uint32_t uid;     /* U=, 0 if none */
    bool have_s, have_w;
    uint64_t s, w;
};

static bool parse_num(const char *p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    if (p >= end || *p < '0' || *p > '9')
        return false;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *v = x;
    return p == end;
}

static void fname_parse(const char *name, struct fname *f)
{
    memset(f, 0, sizeof(*f));
    const char *colon = strchr(name, ':');
    f->base_len = colon ? (size_t)(colon - name) : strlen(name);
    if (colon && colon[1] == '2' && colon[2] == ',')
        f->info = colon + 3;
    const char *end = name + f->base_len;
    const char *p = memchr(name, ',', f->base_len);
    while (p != NULL && p < end) {
        const char *next = memchr(p + 1, ',', (size_t)(end - p - 1));
        const char *stop = next ? next : end;
        uint64_t v;
        if (stop - p > 3 && p[2] == '=' && parse_num(p + 3, stop, &v)) {
            if (p[1] == 'S') {
                f->have_s = true;
                f->s = v;
            } else if (p[1] == 'W') {
                f->have_w = true;
                f->w = v;
            } else if (p[1] == 'U' && v > 0 && v <= UINT32_MAX) {
                f->uid = (uint32_t)v;
            }
        }
        p = next;
    }
}

static uint32_t flags_from_info(const char *info)
{
    uint32_t fl = 0;
    for (; info && *info; info++) {
        switch (*info) {
        case 'D':
            fl |= MBOX_F_DRAFT;
            break;
        case 'F':
            fl |= MBOX_F_FLAGGED;
            break;
        case 'R':
            fl |= MBOX_F_ANSWERED;
            break;
        case 'S':
            fl |= MBOX_F_SEEN;
            break;
        case 'T':
            fl |= MBOX_F_DELETED;
            break;
        default:
            break;
        }
    }
    return fl;
}

static uint64_t keywords_from_info(const char *info)
{
    uint64_t kw = 0;
    for (; info && *info; info++)
        if (*info >= 'a' && *info <= 'z')
            kw |= (uint64_t)1 << (*info - 'a');
    return kw;
}

/*
 * Build "<base without U=>,U=<uid>:2,<flags>" with the system flags as
 * DFRST and keywords 0..25 as a..z, keeping other info letters we do not
 * interpret (P), all sorted as Maildir wants.
 */
static void fname_build(const char *old, uint32_t uid, uint32_t flags, uint64_t keywords,
                        struct strbuf *out)
{
    struct fname f;
    fname_parse(old, &f);
    strbuf_reset(out);
    const char *end = old + f.base_len;
    const char *p = old;
    const char *c = memchr(old, ',', f.base_len);
    strbuf_append(out, old, c ? (size_t)(c - old) : f.base_len);
    while (c != NULL && c < end) {
        const char *next = memchr(c + 1, ',', (size_t)(end - c - 1));
        const char *stop = next ? next : end;
        if (!(stop - c > 2 && c[1] == 'U' && c[2] == '='))
            strbuf_append(out, c, (size_t)(stop - c));
        c = next;
    }
    (void)p;
    strbuf_printf(out, ",U=%u:2,", uid);
    bool have[128] = {false};
    for (const char *i = f.info; i && *i; i++)
        if ((unsigned char)*i < 128 && *i > ' ')
            have[(unsigned char)*i] = true;
    have['D'] = flags & MBOX_F_DRAFT;
    have['F'] = flags & MBOX_F_FLAGGED;
    have['R'] = flags & MBOX_F_ANSWERED;
    have['S'] = flags & MBOX_F_SEEN;
    have['T'] = flags & MBOX_F_DELETED;
    for (int k = 0; k < NAME_KEYWORDS; k++)
        have['a' + k] = (keywords >> k) & 1;
    have[','] = false;
    have['/'] = false;
    have[':'] = false;
    for (int ch = 33; ch < 127; ch++)
        if (have[ch])
            strbuf_putc(out, ch);
}

/* ---- the lock file and transactions ---- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* The lock file's counter, "write in progress" byte and (when mark_r is
 * not NULL) the boot id of unsynced changes, all zero when absent: one read. */
static int read_gen(struct mbox *b, uint64_t *gen_r, bool *dirty_r, unsigned char *mark_r)
{
    unsigned char buf[25];
    ssize_t n = pread(b->lock_fd, buf, sizeof(buf), 0);
    if (n < 0)
        return -1;
    if (n < 25)
        memset(buf + 9, 0, 16); /* no complete mark */
    if (n < 9)
        memset(buf, 0, 9);
    *gen_r = get64(buf);
    *dirty_r = buf[8] != 0;
    if (mark_r != NULL)
        memcpy(mark_r, buf + 9, 16);
    return 0;
}

static int write_gen(struct mbox *b, uint64_t gen, bool dirty)
{
    unsigned char buf[9];
    be64(buf, gen);
    buf[8] = dirty ? 1 : 0;
    return pwrite(b->lock_fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) ? 0 : -1;
}

/* This boot's id (16 bytes), or false when unknown: then the DB is fsync'ed at every commit. */
static bool boot_id(unsigned char id[16])
{
    static unsigned char cached[16];
    static int state; /* 0 not read, 1 known, -1 unknown */
    /* TEGAMI_TEST_BOOT_ID lets the unit tests simulate a restart (read each time). */
    const char *t = getenv("TEGAMI_TEST_BOOT_ID");
    if (state == 0 || t != NULL) {
        state = -1;
        char buf[64] = "";
        if (t != NULL) {
            snprintf(buf, sizeof(buf), "%s", t);
        } else {
            FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "re");
            if (fp != NULL) {
                if (fgets(buf, sizeof(buf), fp) == NULL)
                    buf[0] = 0;
                fclose(fp);
            }
        }
        size_t n = 0;
        for (const char *c = buf; *c && n < 32; c++) {
            int v = *c >= '0' && *c <= '9'   ? *c - '0'
                    : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10
                    : *c >= 'A' && *c <= 'F' ? *c - 'A' + 10
                                             : -1;
            if (v < 0)
                continue; /* the dashes */
            cached[n / 2] = (unsigned char)(n % 2 ? cached[n / 2] | v : v << 4);
            n++;
        }
        static const unsigned char zero[16];
        if (n == 32 && memcmp(cached, zero, 16) != 0)
            state = 1;
    }
    if (state == 1)
        memcpy(id, cached, 16);
    return state == 1;
}

/*
 * Before the DB may get writes that are not fsync'ed: make sure the lock
 * file durably names this boot, so that a system crash is noticed.
 */
static int boot_mark(struct mbox *b, struct strbuf *err)
{
    unsigned char id[16];
    if (b->boot_marked || !boot_id(id))
        return 0;
    if (pwrite(b->lock_fd, id, 16, 9) != 16 || fsync(b->lock_fd) < 0) {
        strbuf_printf(err, "%s/" INDEX_LOCK ": write: %s", b->dir, strerror(errno));
        return -1;
    }
    b->boot_marked = true;
    return 0;
}

static int side_read(struct mbox *b, uint32_t *uidvalidity, uint32_t *uidc, uint64_t *modc)
{
    struct strbuf p = STRBUF_INIT;
    path_of(b, UIDVALIDITY_FILE, &p);
    FILE *fp = fopen(p.data, "re");
    strbuf_release(&p);
    if (fp == NULL)
        return -1;
    unsigned long long v = 0, u = 0, m = 0;
    int n = fscanf(fp, "%llu %llu %llu", &v, &u, &m);
    fclose(fp);
    if (n < 1 || v == 0 || v > UINT32_MAX)
        return -1;
    *uidvalidity = (uint32_t)v;
    *uidc = n >= 2 && u <= UINT32_MAX ? (uint32_t)u : 0;
    *modc = n >= 3 ? m : 0;
    return 0;
}

static int side_write(struct mbox *b, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT, body = STRBUF_INIT;
    path_of(b, UIDVALIDITY_FILE, &p);
    strbuf_printf(&body, "%u %u %llu\n", b->h.uidvalidity, b->uid_ceiling,
                  (unsigned long long)b->modseq_ceiling);
    int rc = mailbox_file_replace(p.data, body.data, body.len, err);
    strbuf_release(&p);
    strbuf_release(&body);
    return rc;
}

/* ---- the key-value backend ----
 *
 * The index needs an ordered key-value file with prefix scans; everything
 * Berkeley DB specific is behind this table, so another store (LMDB) can
 * be added without touching the rest (CONVENTIONS: backends behind a small
 * function table). Values returned by get/scan are valid until the next
 * call on the handle.
 */
struct kv_ops {
    /* 0 with *h_r, or -1 with err; *missing_r when the file does not exist. */
    int (*open)(const char *path, bool create, void **h_r, bool *missing_r, struct strbuf *err);
    void (*close)(void *h);
    /* 1 found, 0 not found, -1 error. */
    int (*get)(void *h, const void *k, size_t klen, const void **v_r, size_t *vlen_r,
               struct strbuf *err);
    int (*put)(void *h, const void *k, size_t klen, const void *v, size_t vlen, struct strbuf *err);
    /* 0 also when the key is absent. */
    int (*del)(void *h, const void *k, size_t klen, struct strbuf *err);
    /* Call cb for each key starting with prefix, in key order, until cb
     * returns non-zero. 0, or -1 with err. */
    int (*scan)(void *h, const void *prefix, size_t plen,
                int (*cb)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen),
                void *ctx, struct strbuf *err);
    /* Write everything to the file (visible to other processes) and fsync. */
    int (*sync)(void *h, struct strbuf *err);
    /* Hand the written pages to the kernel without fsync. 0, or -1 with err. */
    int (*flush)(void *h, struct strbuf *err);
};

static int bdb_fail(struct strbuf *err, const char *what, int ret)
{
    strbuf_printf(err, INDEX_DB ": %s: %s", what, db_strerror(ret));
    return -1;
}

static int bdb_open(const char *path, bool create, void **h_r, bool *missing_r, struct strbuf *err)
{
    DB *db = NULL;
    int ret;
    if ((ret = db_create(&db, NULL, 0)) != 0)
        return bdb_fail(err, "db_create", ret);
    db->set_errcall(db, NULL);
    db->set_errfile(db, NULL);
    (void)db->set_cachesize(db, 0, 512 * 1024, 1);
    ret = db->open(db, NULL, path, NULL, DB_BTREE, create ? DB_CREATE : 0, 0600);
    *missing_r = ret == ENOENT;
    if (ret != 0) {
        db->close(db, 0);
        return bdb_fail(err, "open", ret);
    }
    *h_r = db;
    return 0;
}

static void bdb_close(void *h)
{
    DB *db = h;
    db->close(db, 0);
}

static int bdb_get(void *h, const void *k, size_t klen, const void **v_r, size_t *vlen_r,
                   struct strbuf *err)
{
    DB *db = h;
    DBT key, val;
    memset(&key, 0, sizeof(key));
    memset(&val, 0, sizeof(val));
    key.data = (void *)k;
    key.size = (u_int32_t)klen;
    int ret = db->get(db, NULL, &key, &val, 0);
    if (ret == DB_NOTFOUND)
        return 0;
    if (ret != 0)
        return bdb_fail(err, "get", ret);
    *v_r = val.data;
    *vlen_r = val.size;
    return 1;
}

static int bdb_put(void *h, const void *k, size_t klen, const void *v, size_t vlen,
                   struct strbuf *err)
{
    DB *db = h;
    DBT key, val;
    memset(&key, 0, sizeof(key));
    memset(&val, 0, sizeof(val));
    key.data = (void *)k;
    key.size = (u_int32_t)klen;
    val.data = (void *)v;
    val.size = (u_int32_t)vlen;
    int ret = db->put(db, NULL, &key, &val, 0);
    return ret != 0 ? bdb_fail(err, "put", ret) : 0;
}

static int bdb_del(void *h, const void *k, size_t klen, struct strbuf *err)
{
    DB *db = h;
    DBT key;
    memset(&key, 0, sizeof(key));
    key.data = (void *)k;
    key.size = (u_int32_t)klen;
    int ret = db->del(db, NULL, &key, 0);
    return ret != 0 && ret != DB_NOTFOUND ? bdb_fail(err, "del", ret) : 0;
}

static int bdb_scan(void *h, const void *prefix, size_t plen,
                    int (*cb)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen),
                    void *ctx, struct strbuf *err)
{
    DB *db = h;
    DBC *cur = NULL;
    DBT key, val;
    int ret = db->cursor(db, NULL, &cur, 0);
    if (ret != 0)
        return bdb_fail(err, "cursor", ret);
    memset(&key, 0, sizeof(key));
    memset(&val, 0, sizeof(val));
    key.data = (void *)prefix;
    key.size = (u_int32_t)plen;
    ret = cur->get(cur, &key, &val, DB_SET_RANGE);
    while (ret == 0 && key.size >= plen && memcmp(key.data, prefix, plen) == 0) {
        if (cb(ctx, key.data, key.size, val.data, val.size) != 0)
            break;
        ret = cur->get(cur, &key, &val, DB_NEXT);
    }
    cur->close(cur);
    if (ret != 0 && ret != DB_NOTFOUND)
        return bdb_fail(err, "cursor", ret);
    return 0;
}

static int bdb_sync(void *h, struct strbuf *err)
{
    DB *db = h;
    int ret = db->sync(db, 0);
    return ret != 0 ? bdb_fail(err, "sync", ret) : 0;
}

/* Write the dirty cache pages to the kernel, without fsync. */
static int bdb_flush(void *h, struct strbuf *err)
{
    DB *db = h;
    DB_ENV *env = db->get_env(db);
    int nwrote = 0;
    int ret = env ? env->memp_trickle(env, 100, &nwrote) : db->sync(db, 0);
    return ret != 0 ? bdb_fail(err, "flush", ret) : 0;
}

static const struct kv_ops kv_bdb = {bdb_open, bdb_close, bdb_get,  bdb_put,
                                     bdb_del,  bdb_scan,  bdb_sync, bdb_flush};

static void db_close(struct mbox *b)
{
    if (b->db) {
        b->kv->close(b->db);
        b->db = NULL;
    }
}

static int db_open(struct mbox *b, bool create, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    db_close(b);
    path_of(b, INDEX_DB, &p);
    size_t mark = err->len;
    int rc = b->kv->open(p.data, create, &b->db, &b->db_missing, err);
    if (rc < 0 && err->len > mark) {
        /* say which folder */
        struct strbuf t = STRBUF_INIT;
        strbuf_printf(&t, "%s/%s", b->dir, err->data + mark);
        strbuf_truncate(err, mark);
        strbuf_append(err, t.data, t.len);
        strbuf_release(&t);
    }
    strbuf_release(&p);
    return rc;
}

static int db_put(struct mbox *b, const void *k, size_t klen, const void *v, size_t vlen,
                  struct strbuf *err)
{
    if (boot_mark(b, err) < 0)
        return -1;
    if (b->kv->put(b->db, k, klen, v, vlen, err) < 0)
        return -1;
    b->txn_dirty = true;
    return 0;
}

static int db_del(struct mbox *b, const void *k, size_t klen, struct strbuf *err)
{
    if (boot_mark(b, err) < 0)
        return -1;
    if (b->kv->del(b->db, k, klen, err) < 0)
        return -1;
    b->txn_dirty = true;
    return 0;
}

/* Mark the DB as being written (before the first change of a transaction). */
static int txn_mark_dirty(struct mbox *b, struct strbuf *err)
{
    if (b->txn_dirty)
        return 0;
    if (write_gen(b, b->gen, true) < 0) {
        strbuf_printf(err, "%s/" INDEX_LOCK ": write: %s", b->dir, strerror(errno));
        return -1;
    }
    b->txn_dirty = true;
    return 0;
}

static int put_hdr(struct mbox *b, struct strbuf *err)
{
    unsigned char buf[64];
    size_t n = hdr_encode(&b->h, buf);
    if (txn_mark_dirty(b, err) < 0)
        return -1;
    return db_put(b, "H", 1, buf, n, err);
}

static int put_rec(struct mbox *b, const struct mbox_rec *r, struct strbuf *err)
{
    unsigned char key[5], buf[REC_FIXED + 0x10000];
    key[0] = 'U';
    be32(key + 1, r->uid);
    size_t n = rec_encode(r, buf, sizeof(buf));
    if (n == 0) {
        strbuf_printf(err, "file name too long: %s", r->filename);
        return -1;
    }
    if (txn_mark_dirty(b, err) < 0)
        return -1;
    return db_put(b, key, 5, buf, n, err);
}

/* ---- records and their names ---- */

static void names_free_all(struct mbox *b)
{
    while (b->names != NULL) {
        struct name_block *nb = b->names;
        b->names = nb->next;
        myfree(nb);
    }
    b->names_live = b->names_dead = 0;
}

static void names_new_block(struct mbox *b, size_t cap)
{
    struct name_block *nb = mymalloc(sizeof(*nb) + cap);
    nb->next = b->names;
    nb->used = 0;
    nb->cap = cap;
    b->names = nb;
}

/* Room for bytes of names in one block (a reload knows the total). */
static void names_reserve(struct mbox *b, size_t bytes)
{
    if (bytes > 0 && (b->names == NULL || b->names->cap - b->names->used < bytes))
        names_new_block(b, bytes);
}

/* A NUL-terminated copy of name[0..len) that stays put until names_compact. */
static const char *name_add(struct mbox *b, const char *name, size_t len)
{
    if (b->names == NULL || b->names->cap - b->names->used < len + 1)
        names_new_block(b, len + 1 > NAME_BLOCK ? len + 1 : NAME_BLOCK);
    char *p = b->names->data + b->names->used;
    memcpy(p, name, len);
    p[len] = 0;
    b->names->used += len + 1;
    b->names_live += len + 1;
    return p;
}

/* A name is no longer used (file renamed or gone): garbage until compaction. */
static void name_drop(struct mbox *b, const char *name)
{
    size_t n = strlen(name) + 1;
    b->names_live -= n;
    b->names_dead += n;
}

/*
 * When replaced names (STORE renames) outweigh the live ones, copy the live
 * ones into one new block. Moves every filename: only at the end of an
 * outermost transaction, after which the header says pointers may change.
 */
static void names_compact(struct mbox *b)
{
    if (b->names_dead < 4 * NAME_BLOCK || b->names_dead < b->names_live)
        return;
    struct name_block *old = b->names;
    b->names = NULL;
    b->names_live = b->names_dead = 0;
    size_t total = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->recs[i].filename != NULL) /* NULL: dropped, not compacted yet (an error path) */
            total += strlen(b->recs[i].filename) + 1;
    names_reserve(b, total);
    for (size_t i = 0; i < b->n; i++)
        if (b->recs[i].filename != NULL)
            b->recs[i].filename = name_add(b, b->recs[i].filename, strlen(b->recs[i].filename));
    while (old != NULL) {
        struct name_block *nb = old;
        old = nb->next;
        myfree(nb);
    }
}

static void recs_clear(struct mbox *b)
{
    names_free_all(b);
    b->n = 0;
}

/* Capacity for at least want records. */
static void recs_reserve(struct mbox *b, size_t want)
{
    if (want > b->cap) {
        b->recs = myreallocarray(b->recs, want, sizeof(*b->recs));
        b->cap = want;
    }
}

/* After a full load: the array exactly as big as the folder (no doubling slack). */
static void recs_fit(struct mbox *b)
{
    if (b->n == 0) {
        myfree(b->recs);
        b->recs = NULL;
        b->cap = 0;
    } else if (b->cap > b->n) {
        b->recs = myreallocarray(b->recs, b->n, sizeof(*b->recs));
        b->cap = b->n;
    }
}

/* Accessors of the records on a released handle: a caller's bug. */
static void check_live(const struct mbox *b, const char *what)
{
    if (b->released)
        msg_panic("mbox %s: %s on a released handle (mbox_resume first)", b->dir, what);
}

static void kw_clear(struct mbox *b)
{
    for (size_t i = 0; i < b->nkw; i++)
        myfree(b->kw[i]);
    b->nkw = 0;
}

static struct mbox_rec *rec_add(struct mbox *b)
{
    if (b->n == b->cap)
        recs_reserve(b, b->cap + b->cap / 2 + 64); /* geometric: O(1) amortised */
    return &b->recs[b->n++];
}

static bool is_recent(const struct mbox *b, uint32_t uid)
{
    /* A handle that claims nothing (EXAMINE, STATUS) shows as \Recent what
     * no session has claimed yet, without claiming it. */
    if (b->flags & (MBOX_READONLY | MBOX_NO_RECENT))
        return uid >= b->h.recent_uid;
    for (size_t i = 0; i < b->nrecent; i++)
        if (uid >= b->recent[i].lo && uid < b->recent[i].hi)
            return true;
    return false;
}

struct load_ctx {
    struct mbox *b;
    const char *bad; /* why the index is damaged, NULL if not */
    uint32_t prev;
};

static int load_keyword(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct load_ctx *lc = ctx;
    struct mbox *b = lc->b;
    unsigned i = klen == 2 ? ((const unsigned char *)k)[1] : 999;
    if (i != b->nkw || i >= MBOX_KEYWORDS_MAX || vlen == 0 || vlen > 255 || memchr(v, 0, vlen)) {
        lc->bad = "bad keyword";
        return 1;
    }
    b->kw[b->nkw] = mymalloc(vlen + 1);
    memcpy(b->kw[b->nkw], v, vlen);
    b->kw[b->nkw][vlen] = 0;
    b->nkw++;
    return 0;
}

static int load_record(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct load_ctx *lc = ctx;
    struct mbox *b = lc->b;
    struct mbox_rec r;
    const char *fn;
    size_t fnlen;
    if (klen != 5 || mbox_rec_decode(v, vlen, &r, &fn, &fnlen) < 0) {
        lc->bad = "bad record";
        return 1;
    }
    r.uid = get32((const unsigned char *)k + 1);
    if (r.uid <= lc->prev || r.uid >= b->h.uidnext || r.modseq > b->h.highestmodseq) {
        lc->bad = "record out of range";
        return 1;
    }
    lc->prev = r.uid;
    r.filename = name_add(b, fn, fnlen);
    if (is_recent(b, r.uid))
        r.flags |= MBOX_F_RECENT;
    *rec_add(b) = r;
    return 0;
}

/*
 * Read the header, keywords and all records (one pass in key order). 0, or
 * -1 with err when the index is damaged (the caller rebuilds it).
 */
static int load_all(struct mbox *b, bool may_keep_records, struct strbuf *err)
{
    kw_clear(b);
    struct hdr old = b->h;
    const void *v;
    size_t vlen;
    int r = b->kv->get(b->db, "H", 1, &v, &vlen, err);
    if (r <= 0) {
        strbuf_printf(err, "%s/" INDEX_DB ": no header", b->dir);
        return -1;
    }
    if (hdr_decode(v, vlen, &b->h) < 0) {
        strbuf_printf(err, "%s/" INDEX_DB ": bad header", b->dir);
        return -1;
    }
    struct load_ctx lc = {b, NULL, 0};
    if (b->kv->scan(b->db, "K", 1, load_keyword, &lc, err) < 0)
        return -1;
    if (lc.bad == NULL) {
        /* Every change to a record also changes the header (modseq,
         * UIDNEXT): an unchanged header after another process's write (the
         * cache, a keyword) means our records are still right. */
        unsigned char e1[64], e2[64];
        size_t n1 = hdr_encode(&old, e1), n2 = hdr_encode(&b->h, e2);
        if (may_keep_records && n1 == n2 && memcmp(e1, e2, n1) == 0)
            return 0;
        recs_clear(b);
        if (b->released) {
            /* Reload after mbox_release: about what was there. */
            recs_reserve(b, b->released_n + 16);
            names_reserve(b, b->released_names + 1024);
        }
        int r2 = b->kv->scan(b->db, "U", 1, load_record, &lc, err);
        recs_fit(b);
        if (r2 < 0)
            return -1;
    }
    if (lc.bad != NULL) {
        strbuf_printf(err, "%s/" INDEX_DB ": %s", b->dir, lc.bad);
        return -1;
    }
    return 0;
}

static int rebuild(struct mbox *b, struct strbuf *err);
static int keywords_read(struct mbox *b, struct strbuf *err);

/*
 * Start a transaction: lock, and make our view current (reopen the DB and
 * reload when another process changed it; rebuild when it is damaged).
 */
static int txn_begin(struct mbox *b, bool write, struct strbuf *err)
{
    if (b->txn_depth > 0) {
        if (write && !b->txn_write)
            msg_panic("mbox: write inside a read transaction");
        b->txn_depth++;
        return 0;
    }
    if (flock(b->lock_fd, write ? LOCK_EX : LOCK_SH) < 0) {
        strbuf_printf(err, "%s/" INDEX_LOCK ": flock: %s", b->dir, strerror(errno));
        return -1;
    }
    b->txn_depth = 1;
    b->txn_write = write;
    b->txn_dirty = false;
    uint64_t gen;
    bool dirty;
    unsigned char mark[16], now[16];
    static const unsigned char none[16];
    if (read_gen(b, &gen, &dirty, mark) < 0) {
        strbuf_printf(err, "%s/" INDEX_LOCK ": read: %s", b->dir, strerror(errno));
        goto fail;
    }
    bool have_boot = boot_id(now);
    b->boot_marked = have_boot && memcmp(mark, now, 16) == 0;
    if (!dirty && memcmp(mark, none, 16) != 0 && (!have_boot || memcmp(mark, now, 16) != 0)) {
        msg_warn("%s: the system restarted before the index's last changes were on disk; "
                 "rebuilding the index",
                 b->dir);
        dirty = true; /* rebuild below; its commit marks this boot */
    } else if (dirty) {
        msg_warn("%s: an index writer died during a change; rebuilding the index", b->dir);
    }
    if (dirty || b->db == NULL || !b->have_gen || gen != b->gen || b->released) {
        struct strbuf e2 = STRBUF_INIT;
        /* A released handle has no records to keep: load them whatever the header says. */
        bool ok = !dirty && (b->db != NULL && gen == b->db_gen ? 0 : db_open(b, false, &e2)) == 0 &&
                  load_all(b, b->have_gen && !b->released, &e2) == 0;
        if (!ok) {
            if (!dirty && e2.len > 0 && !b->db_missing)
                msg_warn("%s; rebuilding the index", e2.data);
            strbuf_release(&e2);
            if (!write) {
                /* Upgrade: a rebuild writes. */
                if (flock(b->lock_fd, LOCK_EX) < 0) {
                    strbuf_printf(err, "flock: %s", strerror(errno));
                    goto fail;
                }
                b->txn_write = true;
            }
            b->gen = b->db_gen = gen;
            if (rebuild(b, err) < 0)
                goto fail;
        } else {
            strbuf_release(&e2);
            b->gen = b->db_gen = gen;
        }
        b->have_gen = true;
        b->released = false;
    }
    return 0;
fail:
    b->txn_depth = 0;
    flock(b->lock_fd, LOCK_UN);
    return -1;
}

static int txn_end(struct mbox *b, struct strbuf *err)
{
    if (b->txn_depth == 0)
        msg_panic("mbox: txn_end without txn_begin");
    if (--b->txn_depth > 0)
        return 0;
    int rc = 0;
    /* The new files' names first: once the index (synced next) has their
     * records, they must exist after a crash. A crash before the index
     * sync leaves files with U= at or above the indexed UIDNEXT, which the
     * next sync keeps (see scan_cur). */
    if (b->cur_unsynced) {
        b->cur_unsynced = false;
        struct strbuf p = STRBUF_INIT;
        strbuf_printf(&p, "%s/cur", b->dir);
        if (fsync_dir(p.data) < 0) {
            strbuf_printf(err, "fsync %s: %s", p.data, strerror(errno));
            rc = -1;
        }
        strbuf_release(&p);
    }
    if (b->txn_dirty) {
        /* Covered by this boot's mark: hand the pages to the kernel only. */
        bool db_failed = boot_mark(b, err) < 0 ||
                         (b->boot_marked ? b->kv->flush(b->db, err) : b->kv->sync(b->db, err)) < 0;
        if (db_failed)
            rc = -1;
        b->db_gen = ++b->gen;
        /* Leaves the dirty byte set when the sync failed: the next
         * transaction rebuilds. */
        if (write_gen(b, b->gen, db_failed) < 0 && rc == 0) {
            strbuf_printf(err, "%s/" INDEX_LOCK ": write: %s", b->dir, strerror(errno));
            rc = -1;
        }
        b->txn_dirty = false;
    }
    flock(b->lock_fd, LOCK_UN);
    names_compact(b);
    return rc;
}

/* Next UID / modseq, raising the ceilings in the side file first. */
static int next_uid(struct mbox *b, uint32_t *uid_r, struct strbuf *err)
{
    if (b->h.uidnext >= UINT32_MAX - UID_STEP) {
        strbuf_printf(err, "%s: UID space exhausted", b->dir);
        return -1;
    }
    if (b->h.uidnext >= b->uid_ceiling) {
        b->uid_ceiling = b->h.uidnext + UID_STEP;
        if (side_write(b, err) < 0)
            return -1;
    }
    *uid_r = b->h.uidnext++;
    return 0;
}

static int next_modseq(struct mbox *b, uint64_t *modseq_r, struct strbuf *err)
{
    if (b->h.highestmodseq + 1 >= b->modseq_ceiling) {
        b->modseq_ceiling = b->h.highestmodseq + 1 + MODSEQ_STEP;
        if (side_write(b, err) < 0)
            return -1;
    }
    *modseq_r = ++b->h.highestmodseq;
    return 0;
}

/* ---- scanning the Maildir ---- */

/* W= for a file without it: its size plus one byte per LF. */
static int count_vsize(const char *path, uint64_t *size_r, uint64_t *vsize_r, time_t *mtime_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    char buf[65536];
    uint64_t lfs = 0;
    ssize_t got;
    while ((got = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < got; i++)
            lfs += buf[i] == '\n';
    close(fd);
    *size_r = (uint64_t)st.st_size;
    *vsize_r = (uint64_t)st.st_size + lfs;
    *mtime_r = st.st_mtime;
    return got < 0 ? -1 : 0;
}

/* Sizes and internal date of a file in sub/ ("new"/"cur"). 0 or -1 (gone). */
static int file_info(struct mbox *b, const char *sub, const char *name, const struct fname *f,
                     struct mbox_rec *r)
{
    struct strbuf p = STRBUF_INIT;
    strbuf_printf(&p, "%s/%s/%s", b->dir, sub, name);
    int rc = 0;
    if (f->have_s && f->have_w) {
        struct stat st;
        if (stat(p.data, &st) < 0)
            rc = -1;
        else {
            r->size = f->s;
            r->vsize = f->w;
            r->internaldate = st.st_mtime;
        }
    } else {
        rc = count_vsize(p.data, &r->size, &r->vsize, &r->internaldate);
    }
    strbuf_release(&p);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* All entries of dir/sub not starting with '.', sorted. */
static int read_names(struct mbox *b, const char *sub, char ***names_r, size_t *n_r,
                      struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    strbuf_printf(&p, "%s/%s", b->dir, sub);
    DIR *dp = opendir(p.data);
    if (dp == NULL) {
        strbuf_printf(err, "opendir %s: %s", p.data, strerror(errno));
        strbuf_release(&p);
        return -1;
    }
    strbuf_release(&p);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            v = myreallocarray(v, cap, sizeof(*v));
        }
        v[n++] = mystrdup(de->d_name);
    }
    closedir(dp);
    if (n > 1)
        qsort(v, n, sizeof(*v), name_cmp);
    *names_r = v;
    *n_r = n;
    return 0;
}

static void names_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        myfree(v[i]);
    myfree(v);
}

static size_t find_idx(const struct mbox *b, uint32_t uid, bool *found)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->recs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < b->n && b->recs[lo].uid == uid;
    return lo;
}

/* The modseq of the changes of this transaction (allocated once). */
struct scan_ctx {
    uint64_t modseq;
    bool changed;
};

static int scan_modseq(struct mbox *b, struct scan_ctx *sc, struct strbuf *err)
{
    if (sc->modseq == 0 && next_modseq(b, &sc->modseq, err) < 0)
        return -1;
    sc->changed = true;
    return 0;
}

static int collect_key(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    (void)v;
    (void)vlen;
    struct strbuf *keys = ctx;
    uint16_t n = (uint16_t)klen;
    if (klen > 0xFFFF)
        return 0;
    strbuf_append(keys, &n, sizeof(n));
    strbuf_append(keys, k, klen);
    return 0;
}

/* Drop the cached strings of uid (keys collected first, then deleted). */
static int del_cache(struct mbox *b, uint32_t uid, struct strbuf *err)
{
    unsigned char k[5];
    k[0] = 'C';
    be32(k + 1, uid);
    struct strbuf keys = STRBUF_INIT;
    int rc = b->kv->scan(b->db, k, 5, collect_key, &keys, err);
    for (size_t off = 0; rc == 0 && off + 2 <= keys.len;) {
        uint16_t n;
        memcpy(&n, keys.data + off, sizeof(n));
        rc = db_del(b, keys.data + off + 2, n, err);
        off += 2 + (size_t)n;
    }
    strbuf_release(&keys);
    return rc;
}

/* Drop record idx (the file is gone): tombstone, cache, array. */
static int drop_rec(struct mbox *b, size_t idx, uint64_t modseq, struct strbuf *err)
{
    unsigned char k[5], v[8];
    uint32_t uid = b->recs[idx].uid;
    k[0] = 'U';
    be32(k + 1, uid);
    if (txn_mark_dirty(b, err) < 0 || db_del(b, k, 5, err) < 0)
        return -1;
    k[0] = 'X';
    be64(v, modseq);
    if (db_put(b, k, 5, v, 8, err) < 0)
        return -1;
    if (del_cache(b, uid, err) < 0)
        return -1;
    /* Marked here, removed from the array by compact_recs: one pass for
     * any number of expunges instead of one memmove each. */
    name_drop(b, b->recs[idx].filename);
    b->recs[idx].filename = NULL;
    return 0;
}

static void compact_recs(struct mbox *b)
{
    size_t j = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->recs[i].filename != NULL)
            b->recs[j++] = b->recs[i];
    b->n = j;
}

struct extra {
    char *name;
    uint32_t uid; /* the U= it carries, 0 = none or not adoptable */
};

static int extra_cmp(const void *a, const void *b)
{
    const struct extra *x = a, *y = b;
    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Give the file cur/name (carrying flags in its info) the UID uid: rename it
 * so the name says it, and add the record (array order is the caller's). */
static int add_file(struct mbox *b, struct scan_ctx *sc, const char *sub, const char *name,
                    uint32_t uid, bool rename_it, struct mbox_rec *out, struct strbuf *err)
{
    struct fname f;
    fname_parse(name, &f);
    memset(out, 0, sizeof(*out));
    if (file_info(b, sub, name, &f, out) < 0)
        return 1; /* vanished meanwhile */
    out->uid = uid;
    out->flags = flags_from_info(f.info);
    /* Letters are ours only in names we wrote: trust them in a rebuild. */
    if (b->rebuilding)
        out->keywords = keywords_from_info(f.info) &
                        (b->nkw >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << b->nkw) - 1);
    struct strbuf nn = STRBUF_INIT, from = STRBUF_INIT, to = STRBUF_INIT;
    if (rename_it) {
        fname_build(name, uid, out->flags, out->keywords, &nn);
        strbuf_printf(&from, "%s/%s/%s", b->dir, sub, name);
        strbuf_printf(&to, "%s/cur/%s", b->dir, nn.data);
        if (rename(from.data, to.data) < 0) {
            int e = errno;
            strbuf_release(&from);
            strbuf_release(&to);
            strbuf_release(&nn);
            if (e == ENOENT)
                return 1;
            strbuf_printf(err, "rename %s/%s/%s: %s", b->dir, sub, name, strerror(e));
            return -1;
        }
    } else {
        strbuf_puts(&nn, name);
    }
    strbuf_release(&from);
    strbuf_release(&to);
    if (scan_modseq(b, sc, err) < 0) {
        strbuf_release(&nn);
        return -1;
    }
    out->modseq = sc->modseq;
    out->filename = name_add(b, nn.data, nn.len);
    strbuf_release(&nn);
    if (put_rec(b, out, err) < 0) {
        name_drop(b, out->filename);
        return -1;
    }
    return 0;
}

static bool mtime_trustworthy(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec - t->tv_sec >= MTIME_DIRTY_SECS;
}

static bool mtime_eq(int64_t sec, int64_t nsec, const struct timespec *t)
{
    return sec != 0 && sec == (int64_t)t->tv_sec && nsec == (int64_t)t->tv_nsec;
}

static int scan_cur(struct mbox *b, struct scan_ctx *sc, struct strbuf *err);

/*
 * Our own changes to cur/ (renames for flags, new files, unlinks) move its
 * mtime; without help the next sync would read all of cur/ again. Before a
 * change, cur_pre checks that cur/ still has the mtime we recorded (nobody
 * else changed it); cur_post then records the mtime after our change.
 * XXX: a Maildir client other than tegami that renames in cur/ in the same
 * timestamp tick between our stat and our change goes unnoticed until cur/
 * changes again. tegami's own writers (imapd, pop3d) all hold the index lock;
 * local writes only new/, which keeps the strict rule (MTIME_DIRTY_SECS).
 */
static bool cur_pre(struct mbox *b)
{
    struct strbuf p = STRBUF_INIT;
    struct stat st;
    strbuf_printf(&p, "%s/cur", b->dir);
    bool ok = stat(p.data, &st) == 0 && mtime_eq(b->h.cur_sec, b->h.cur_nsec, &st.st_mtim);
    strbuf_release(&p);
    return ok;
}

static void cur_post(struct mbox *b, bool tracked)
{
    struct strbuf p = STRBUF_INIT;
    struct stat st;
    strbuf_printf(&p, "%s/cur", b->dir);
    if (tracked && stat(p.data, &st) == 0) {
        b->h.cur_sec = st.st_mtim.tv_sec;
        b->h.cur_nsec = st.st_mtim.tv_nsec;
    } else {
        b->h.cur_sec = b->h.cur_nsec = 0;
    }
    strbuf_release(&p);
}

/*
 * Bring the records up to date with new/ and cur/ (inside a write
 * transaction). force scans both directories whatever their mtimes say.
 */
static int scan(struct mbox *b, bool force, struct scan_ctx *sc, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    struct stat st_new, st_cur;
    strbuf_printf(&p, "%s/new", b->dir);
    int r1 = stat(p.data, &st_new);
    strbuf_reset(&p);
    strbuf_printf(&p, "%s/cur", b->dir);
    int r2 = stat(p.data, &st_cur);
    if (r1 < 0 || r2 < 0) {
        strbuf_printf(err, "stat %s: %s", p.data, strerror(errno));
        strbuf_release(&p);
        return -1;
    }
    strbuf_release(&p);
    bool do_new = force || !mtime_eq(b->h.new_sec, b->h.new_nsec, &st_new.st_mtim);
    bool do_cur = force || !mtime_eq(b->h.cur_sec, b->h.cur_nsec, &st_cur.st_mtim);
    bool hdr_changed = false;

    if (do_cur && scan_cur(b, sc, err) < 0)
        return -1;
    /* cur/ as of st_cur is what the records now say. */
    int64_t cs = st_cur.st_mtim.tv_sec, cn = st_cur.st_mtim.tv_nsec;
    if (do_new) {
        char **names = NULL;
        size_t n = 0;
        if (read_names(b, "new", &names, &n, err) < 0)
            return -1;
        if (n > 0) {
            int64_t os = b->h.cur_sec, on = b->h.cur_nsec;
            b->h.cur_sec = cs;
            b->h.cur_nsec = cn;
            bool tracked = cur_pre(b);
            b->h.cur_sec = os;
            b->h.cur_nsec = on;
            cs = cn = tracked ? -1 : 0; /* -1: stat again after the moves */
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t uid;
            struct mbox_rec r;
            if (next_uid(b, &uid, err) < 0) {
                names_free(names, n);
                return -1;
            }
            int rc = add_file(b, sc, "new", names[i], uid, true, &r, err);
            if (rc < 0) {
                names_free(names, n);
                return -1;
            }
            if (rc == 0)
                *rec_add(b) = r;
        }
        names_free(names, n);
    }
    /* Remember the mtime of new/ we scanned, unless it may still change
     * within its timestamp tick (then the next sync reads new/ again: cheap,
     * new/ is short). cur/ is recorded as scanned (see cur_pre). */
    int64_t ns = 0, nn = 0;
    if (do_new && mtime_trustworthy(&st_new.st_mtim)) {
        ns = st_new.st_mtim.tv_sec;
        nn = st_new.st_mtim.tv_nsec;
    } else if (!do_new) {
        ns = b->h.new_sec;
        nn = b->h.new_nsec;
    }
    if (cs == -1) {
        int64_t os = b->h.cur_sec, on = b->h.cur_nsec;
        cur_post(b, true);
        cs = b->h.cur_sec;
        cn = b->h.cur_nsec;
        b->h.cur_sec = os;
        b->h.cur_nsec = on;
    }
    if (ns != b->h.new_sec || nn != b->h.new_nsec || cs != b->h.cur_sec || cn != b->h.cur_nsec) {
        b->h.new_sec = ns;
        b->h.new_nsec = nn;
        b->h.cur_sec = cs;
        b->h.cur_nsec = cn;
        hdr_changed = true;
    }
    /* \Recent: this handle claims what no session has seen yet. */
    if (!(b->flags & (MBOX_READONLY | MBOX_NO_RECENT)) && b->h.recent_uid < b->h.uidnext) {
        if (b->nrecent > 0 && b->recent[b->nrecent - 1].hi == b->h.recent_uid) {
            b->recent[b->nrecent - 1].hi = b->h.uidnext; /* one range, not many */
        } else {
            b->recent = myreallocarray(b->recent, b->nrecent + 1, sizeof(*b->recent));
            b->recent[b->nrecent].lo = b->h.recent_uid;
            b->recent[b->nrecent].hi = b->h.uidnext;
            b->nrecent++;
        }
        for (size_t i = 0; i < b->n; i++)
            if (b->recs[i].uid >= b->h.recent_uid)
                b->recs[i].flags |= MBOX_F_RECENT;
        b->h.recent_uid = b->h.uidnext;
        hdr_changed = true;
        sc->changed = true;
    }
    if (hdr_changed || b->txn_dirty)
        return put_hdr(b, err);
    return 0;
}

static int scan_cur(struct mbox *b, struct scan_ctx *sc, struct strbuf *err)
{
    char **names = NULL;
    size_t n = 0;
    if (read_names(b, "cur", &names, &n, err) < 0)
        return -1;
    bool *seen = mycalloc(b->n ? b->n : 1, sizeof(bool));
    struct extra *extra = NULL;
    size_t nextra = 0;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        struct fname f;
        fname_parse(names[i], &f);
        bool found = false;
        size_t idx = f.uid ? find_idx(b, f.uid, &found) : 0;
        if (found && !seen[idx]) {
            struct mbox_rec *r = &b->recs[idx];
            struct fname g;
            fname_parse(r->filename, &g);
            /* The same message if the base (before U=...) is the same. */
            if (g.base_len == f.base_len && memcmp(r->filename, names[i], f.base_len) == 0) {
                seen[idx] = true;
                uint32_t fl = flags_from_info(f.info);
                if (fl != (r->flags & MBOX_F_STORABLE) || strcmp(r->filename, names[i]) != 0) {
                    if (scan_modseq(b, sc, err) < 0)
                        goto out;
                    r->flags = (r->flags & ~MBOX_F_STORABLE) | fl;
                    name_drop(b, r->filename);
                    r->filename = name_add(b, names[i], strlen(names[i]));
                    r->modseq = sc->modseq;
                    if (put_rec(b, r, err) < 0)
                        goto out;
                }
                continue;
            }
        }
        extra = myreallocarray(extra, nextra + 1, sizeof(*extra));
        extra[nextra].name = names[i];
        extra[nextra].uid = found ? 0 : f.uid;
        nextra++;
    }
    /* Records whose files are gone. */
    for (size_t i = b->n; i-- > 0;) {
        if (seen[i])
            continue;
        if (scan_modseq(b, sc, err) < 0 || drop_rec(b, i, sc->modseq, err) < 0) {
            compact_recs(b);
            goto out;
        }
    }
    compact_recs(b);
    /* Files not in the index: keep the UID a file carries when a rebuild
     * is reading back its own names, or when it is above UIDNEXT (a crash
     * between the rename and the index write); else give a new UID. */
    uint32_t limit = b->uid_ceiling ? b->uid_ceiling : UINT32_MAX - UID_STEP;
    for (size_t i = 0; i < nextra; i++) {
        uint32_t u = extra[i].uid;
        if (u == 0 || u >= limit || (!b->rebuilding && u < b->h.uidnext))
            extra[i].uid = 0;
    }
    if (nextra > 1)
        qsort(extra, nextra, sizeof(*extra), extra_cmp);
    for (size_t i = 1; i < nextra; i++)
        if (extra[i].uid != 0 && extra[i].uid == extra[i - 1].uid)
            extra[i].uid = 0; /* a duplicate (hard-linked copy): new UID */
    if (nextra > 1)
        qsort(extra, nextra, sizeof(*extra), extra_cmp);
    /* Adopted UIDs first (merge into the sorted array), then new ones. */
    for (size_t i = 0; i < nextra; i++) {
        if (extra[i].uid == 0)
            continue;
        bool found;
        size_t idx = find_idx(b, extra[i].uid, &found);
        if (found)
            continue; /* cannot happen: uid checked above */
        struct mbox_rec r;
        int a = add_file(b, sc, "cur", extra[i].name, extra[i].uid, false, &r, err);
        if (a < 0)
            goto out;
        if (a > 0)
            continue;
        rec_add(b);
        memmove(&b->recs[idx + 1], &b->recs[idx], (b->n - 1 - idx) * sizeof(*b->recs));
        b->recs[idx] = r;
        if (r.uid >= b->h.uidnext)
            b->h.uidnext = r.uid + 1;
    }
    for (size_t i = 0; i < nextra; i++) {
        if (extra[i].uid != 0)
            continue;
        uint32_t uid;
        struct mbox_rec r;
        if (next_uid(b, &uid, err) < 0)
            goto out;
        int a = add_file(b, sc, "cur", extra[i].name, uid, true, &r, err);
        if (a < 0)
            goto out;
        if (a == 0)
            *rec_add(b) = r;
    }
    rc = 0;
out:
    myfree(seen);
    myfree(extra);
    names_free(names, n);
    return rc;
}

static int rebuild(struct mbox *b, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    db_close(b);
    path_of(b, INDEX_DB, &p);
    if (unlink(p.data) < 0 && errno != ENOENT) {
        strbuf_printf(err, "unlink %s: %s", p.data, strerror(errno));
        strbuf_release(&p);
        return -1;
    }
    strbuf_release(&p);
    if (db_open(b, true, err) < 0)
        return -1;
    recs_clear(b);
    kw_clear(b);
    uint32_t uidvalidity = 0, uidc = 0;
    uint64_t modc = 0;
    bool existed = side_read(b, &uidvalidity, &uidc, &modc) == 0;
    memset(&b->h, 0, sizeof(b->h));
    if (!existed) {
        uidvalidity = (uint32_t)time(NULL);
        uidc = 0;
        modc = 0;
    }
    b->h.uidvalidity = uidvalidity;
    b->h.uidnext = uidc > 1 ? uidc : 1;
    b->h.highestmodseq = modc > 1 ? modc : 1;
    /* A side file with only a UIDVALIDITY was preset by mailbox_create:
     * a new folder, no index ever existed. */
    bool fresh = !existed || uidc == 0;
    /* Tombstones before this modseq are lost with the old index. */
    b->h.tombstone_floor = fresh ? 0 : b->h.highestmodseq;
    b->h.recent_uid = fresh ? 1 : b->h.uidnext;
    b->uid_ceiling = uidc;
    b->modseq_ceiling = modc;
    if (!existed || b->uid_ceiling < b->h.uidnext || b->modseq_ceiling <= b->h.highestmodseq) {
        if (b->uid_ceiling < b->h.uidnext)
            b->uid_ceiling = b->h.uidnext;
        if (b->modseq_ceiling <= b->h.highestmodseq)
            b->modseq_ceiling = b->h.highestmodseq + 1;
        if (side_write(b, err) < 0)
            return -1;
    }
    /* Without a ceiling: adopt any U= the names carry. */
    if (fresh)
        b->uid_ceiling = 0;
    b->txn_dirty = false;
    if (put_hdr(b, err) < 0)
        return -1;
    if (keywords_read(b, err) < 0)
        return -1;
    b->rebuilding = true;
    struct scan_ctx sc = {0, false};
    int rc = scan(b, true, &sc, err);
    b->rebuilding = false;
    if (b->uid_ceiling < b->h.uidnext) {
        b->uid_ceiling = b->h.uidnext + UID_STEP;
        if (side_write(b, err) < 0)
            return -1;
    }
    if (rc == 0)
        rc = put_hdr(b, err);
    return rc;
}

/* ---- open, close, sync ---- */

int mbox_open(const char *folder_dir, unsigned flags, struct mbox **mbox_r, struct strbuf *err)
{
    *mbox_r = NULL;
    struct strbuf p = STRBUF_INIT;
    struct stat st;
    strbuf_printf(&p, "%s/cur", folder_dir);
    if (stat(p.data, &st) < 0) {
        int e = errno;
        if (e != ENOENT || (flags & MBOX_NO_CREATE)) {
            strbuf_printf(err, "%s: %s", p.data, strerror(e));
            strbuf_release(&p);
            errno = e;
            return -1;
        }
        if (maildir_create(folder_dir, err) < 0) {
            strbuf_release(&p);
            return -1;
        }
    }
    struct mbox *b = mycalloc(1, sizeof(*b));
    b->dir = mystrdup(folder_dir);
    b->flags = flags;
    b->notify_fd = -1;
    b->kv = &kv_bdb;
    path_of(b, INDEX_LOCK, &p);
    b->lock_fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (b->lock_fd < 0) {
        int e = errno;
        strbuf_printf(err, "open %s: %s", p.data, strerror(e));
        strbuf_release(&p);
        mbox_close(&b);
        errno = e;
        return -1;
    }
    strbuf_release(&p);
    uint32_t v;
    (void)side_read(b, &v, &b->uid_ceiling, &b->modseq_ceiling);
    if (mbox_sync(b, err) < 0) {
        mbox_close(&b);
        return -1;
    }
    *mbox_r = b;
    return 0;
}

void mbox_close(struct mbox **mboxp)
{
    struct mbox *b = *mboxp;
    if (b == NULL)
        return;
    if (b->npend > 0 && b->lock_fd >= 0) {
        struct strbuf err = STRBUF_INIT;
        if (mbox_cache_flush(b, &err) < 0)
            msg_warn("%s", err.data);
        strbuf_release(&err);
    }
    for (size_t i = 0; i < b->npend; i++) {
        myfree(b->pend[i].field);
        myfree(b->pend[i].value);
    }
    myfree(b->pend);
    recs_clear(b);
    myfree(b->recs);
    kw_clear(b);
    myfree(b->recent);
    db_close(b);
    if (b->lock_fd >= 0)
        close(b->lock_fd);
    if (b->notify_fd >= 0)
        close(b->notify_fd);
    myfree(b->dir);
    myfree(b);
    *mboxp = NULL;
}

static bool stat_dirs(struct mbox *b, struct timespec *n, struct timespec *c)
{
    struct strbuf p = STRBUF_INIT;
    struct stat st1, st2;
    strbuf_printf(&p, "%s/new", b->dir);
    bool ok = stat(p.data, &st1) == 0;
    strbuf_reset(&p);
    strbuf_printf(&p, "%s/cur", b->dir);
    ok = ok && stat(p.data, &st2) == 0;
    strbuf_release(&p);
    if (ok) {
        *n = st1.st_mtim;
        *c = st2.st_mtim;
    }
    return ok;
}

bool mbox_changed(struct mbox *b)
{
    struct timespec n, c;
    uint64_t gen;
    bool dirty;
    if (!b->have_gen || read_gen(b, &gen, &dirty, NULL) < 0 || dirty || gen != b->gen)
        return true;
    if (!stat_dirs(b, &n, &c))
        return true;
    return !mtime_eq(b->h.new_sec, b->h.new_nsec, &n) || !mtime_eq(b->h.cur_sec, b->h.cur_nsec, &c);
}

int mbox_sync(struct mbox *b, struct strbuf *err)
{
    if (b->released && mbox_resume(b, err) < 0)
        return -1;
    /* Others' changes a resume loaded count as changes found by this sync. */
    bool resumed = b->resume_changed;
    b->resume_changed = false;
    if (b->npend > 0 && mbox_cache_flush(b, err) < 0)
        return -1;
    bool claim = !(b->flags & (MBOX_READONLY | MBOX_NO_RECENT));
    if (!mbox_changed(b) && !(claim && b->h.recent_uid < b->h.uidnext))
        return resumed ? 1 : 0;
    uint64_t old_modseq = b->h.highestmodseq;
    uint32_t old_next = b->h.uidnext;
    size_t old_n = b->n;
    if (txn_begin(b, true, err) < 0)
        return -1;
    struct scan_ctx sc = {0, false};
    int rc = scan(b, false, &sc, err);
    if (txn_end(b, err) < 0)
        rc = -1;
    if (rc < 0)
        return -1;
    if (b->flags & (MBOX_READONLY | MBOX_NO_RECENT))
        for (size_t i = 0; i < b->n; i++)
            b->recs[i].flags = (b->recs[i].flags & ~MBOX_F_RECENT) |
                               (is_recent(b, b->recs[i].uid) ? MBOX_F_RECENT : 0);
    return resumed || sc.changed || b->h.highestmodseq != old_modseq || b->h.uidnext != old_next ||
                   b->n != old_n
               ? 1
               : 0;
}

/* ---- idle sessions ---- */

/*
 * Make the index's changes durable and clear this boot's mark (an idle
 * session's release): fsync the DB file under the write lock, so every
 * process's flushed pages are on disk, then zero the mark. A mark of
 * another boot is left for the next transaction to act on.
 */
static int boot_unmark(struct mbox *b, struct strbuf *err)
{
    static const unsigned char none[16];
    unsigned char mark[16], now[16];
    if (flock(b->lock_fd, LOCK_EX) < 0) {
        strbuf_printf(err, "%s/" INDEX_LOCK ": flock: %s", b->dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    uint64_t gen;
    bool dirty;
    if (read_gen(b, &gen, &dirty, mark) == 0 && memcmp(mark, none, 16) != 0 && boot_id(now) &&
        memcmp(mark, now, 16) == 0) {
        struct strbuf p = STRBUF_INIT;
        path_of(b, INDEX_DB, &p);
        int fd = open(p.data, O_RDONLY | O_CLOEXEC);
        if ((fd >= 0 && fsync(fd) == 0) || (fd < 0 && errno == ENOENT)) {
            if (pwrite(b->lock_fd, none, 16, 9) != 16)
                rc = -1;
        } else {
            rc = -1;
        }
        if (rc < 0)
            strbuf_printf(err, "%s: sync: %s", p.data, strerror(errno));
        if (fd >= 0)
            close(fd);
        strbuf_release(&p);
    }
    b->boot_marked = false;
    flock(b->lock_fd, LOCK_UN);
    return rc;
}

int mbox_release(struct mbox *b, struct strbuf *err)
{
    if (b->txn_depth > 0)
        msg_panic("mbox_release inside a transaction");
    int rc = 0;
    if (b->npend > 0 && mbox_cache_flush(b, err) < 0)
        rc = -1;
    if (boot_unmark(b, err) < 0)
        rc = -1;
    myfree(b->pend);
    b->pend = NULL;
    b->npend = b->cappend = 0;
    /* The DB handle's cache pages are most of an idle handle's memory; the
     * next transaction reopens it (the same path as after another process's
     * write), and txn_begin reloads the records of a released handle. */
    db_close(b);
    if (!b->released) {
        b->released_n = b->n;
        b->released_names = b->names_live;
        recs_clear(b);
        myfree(b->recs);
        b->recs = NULL;
        b->cap = 0;
        b->released = true;
    }
    return rc;
}

int mbox_resume(struct mbox *b, struct strbuf *err)
{
    if (!b->released)
        return 0;
    uint64_t old_modseq = b->h.highestmodseq;
    uint32_t old_next = b->h.uidnext;
    size_t old_n = b->released_n;
    /* A read transaction: txn_begin reloads (or rebuilds) a released handle. */
    if (txn_begin(b, false, err) < 0)
        return -1;
    int rc = txn_end(b, err);
    if (b->h.highestmodseq != old_modseq || b->h.uidnext != old_next || b->n != old_n)
        b->resume_changed = true;
    return rc;
}

bool mbox_released(const struct mbox *b)
{
    return b->released;
}

/* ---- IDLE ---- */

int mbox_change_fd(struct mbox *b)
{
    if (b->notify_fd >= 0)
        return b->notify_fd;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -1;
    struct strbuf p = STRBUF_INIT;
    static const char *const subs[] = {"new", "cur"};
    bool ok = true;
    for (size_t i = 0; i < 2 && ok; i++) {
        path_of(b, subs[i], &p);
        ok = inotify_add_watch(
                 fd, p.data, IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR) >= 0;
    }
    path_of(b, INDEX_LOCK, &p);
    ok = ok && inotify_add_watch(fd, p.data, IN_MODIFY) >= 0;
    strbuf_release(&p);
    if (!ok) {
        msg_warn("%s: inotify: %s", b->dir, strerror(errno));
        close(fd);
        return -1;
    }
    b->notify_fd = fd;
    return fd;
}

void mbox_change_ack(struct mbox *b)
{
    char buf[4096];
    if (b->notify_fd < 0)
        return;
    while (read(b->notify_fd, buf, sizeof(buf)) > 0)
        ;
}

/* ---- accessors ---- */

uint32_t mbox_uidvalidity(const struct mbox *b)
{
    return b->h.uidvalidity;
}

uint32_t mbox_uidnext(const struct mbox *b)
{
    return b->h.uidnext;
}

uint64_t mbox_highestmodseq(const struct mbox *b)
{
    return b->h.highestmodseq;
}

size_t mbox_count(const struct mbox *b)
{
    check_live(b, "mbox_count");
    return b->n;
}

size_t mbox_recent_count(const struct mbox *b)
{
    check_live(b, "mbox_recent_count");
    size_t c = 0;
    for (size_t i = 0; i < b->n; i++)
        c += (b->recs[i].flags & MBOX_F_RECENT) != 0;
    return c;
}

uint32_t mbox_first_unseen_uid(const struct mbox *b)
{
    check_live(b, "mbox_first_unseen_uid");
    for (size_t i = 0; i < b->n; i++)
        if (!(b->recs[i].flags & MBOX_F_SEEN))
            return b->recs[i].uid;
    return 0;
}

const struct mbox_rec *mbox_rec_at(const struct mbox *b, size_t i)
{
    check_live(b, "mbox_rec_at");
    return i < b->n ? &b->recs[i] : NULL;
}

const struct mbox_rec *mbox_rec_by_uid(const struct mbox *b, uint32_t uid, size_t *index_r)
{
    check_live(b, "mbox_rec_by_uid");
    bool found;
    size_t i = find_idx(b, uid, &found);
    if (!found)
        return NULL;
    if (index_r)
        *index_r = i;
    return &b->recs[i];
}

int mbox_path(const struct mbox *b, const struct mbox_rec *r, struct strbuf *path_r)
{
    strbuf_reset(path_r);
    strbuf_printf(path_r, "%s/cur/%s", b->dir, r->filename);
    return 0;
}

int mbox_msg_open(struct mbox *b, uint32_t uid, struct strbuf *err)
{
    const struct mbox_rec *r = mbox_rec_by_uid(b, uid, NULL);
    if (r == NULL) {
        strbuf_printf(err, "%s: no message with UID %u", b->dir, uid);
        errno = ENOENT;
        return -1;
    }
    struct strbuf p = STRBUF_INIT;
    mbox_path(b, r, &p);
    int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        /* Renamed by another session (flags): look for its U= in cur/. */
        char **names = NULL;
        size_t n = 0;
        struct strbuf e2 = STRBUF_INIT;
        if (read_names(b, "cur", &names, &n, &e2) == 0) {
            for (size_t i = 0; i < n && fd < 0; i++) {
                struct fname f;
                fname_parse(names[i], &f);
                if (f.uid != uid)
                    continue;
                strbuf_reset(&p);
                strbuf_printf(&p, "%s/cur/%s", b->dir, names[i]);
                fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            }
            names_free(names, n);
        }
        strbuf_release(&e2);
        if (fd < 0)
            errno = ENOENT;
    }
    if (fd < 0)
        strbuf_printf(err, "open %s: %s", p.data, strerror(errno));
    strbuf_release(&p);
    return fd;
}

int mbox_txn_begin(struct mbox *b, struct strbuf *err)
{
    return txn_begin(b, true, err);
}

int mbox_txn_commit(struct mbox *b, struct strbuf *err)
{
    return txn_end(b, err);
}

/* ---- changes ---- */

static int rename_flags(struct mbox *b, struct mbox_rec *r, uint32_t flags, uint64_t keywords,
                        struct strbuf *err)
{
    struct strbuf nn = STRBUF_INIT, from = STRBUF_INIT, to = STRBUF_INIT;
    fname_build(r->filename, r->uid, flags, keywords, &nn);
    int rc = 0;
    if (strcmp(nn.data, r->filename) != 0) {
        strbuf_printf(&from, "%s/cur/%s", b->dir, r->filename);
        strbuf_printf(&to, "%s/cur/%s", b->dir, nn.data);
        bool tracked = cur_pre(b);
        int rr = rename(from.data, to.data);
        int e = errno;
        cur_post(b, tracked && rr == 0);
        errno = e;
        if (rr < 0) {
            rc = errno == ENOENT ? 1 : -1;
            if (rc < 0)
                strbuf_printf(err, "rename %s: %s", from.data, strerror(errno));
        } else {
            name_drop(b, r->filename);
            r->filename = name_add(b, nn.data, nn.len);
        }
    }
    strbuf_release(&nn);
    strbuf_release(&from);
    strbuf_release(&to);
    return rc;
}

int mbox_store_flags(struct mbox *b, uint32_t uid, uint32_t flags, uint64_t keywords,
                     enum mbox_flags_op op, uint64_t unchangedsince, uint64_t *modseq_r,
                     struct strbuf *err)
{
    if (b->flags & MBOX_READONLY) {
        strbuf_puts(err, "mailbox is read-only");
        return -1;
    }
    if (txn_begin(b, true, err) < 0)
        return -1;
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool found;
        size_t idx = find_idx(b, uid, &found);
        if (!found) {
            strbuf_printf(err, "no message with UID %u", uid);
            goto out;
        }
        struct mbox_rec *r = &b->recs[idx];
        if (modseq_r)
            *modseq_r = r->modseq;
        if (unchangedsince != 0 && r->modseq > unchangedsince) {
            rc = 1;
            goto out;
        }
        uint32_t nf = r->flags & MBOX_F_STORABLE;
        uint64_t nk = r->keywords;
        flags &= MBOX_F_STORABLE;
        switch (op) {
        case MBOX_FLAGS_SET:
            nf = flags;
            nk = keywords;
            break;
        case MBOX_FLAGS_ADD:
            nf |= flags;
            nk |= keywords;
            break;
        case MBOX_FLAGS_REMOVE:
            nf &= ~flags;
            nk &= ~keywords;
            break;
        }
        if (nf == (r->flags & MBOX_F_STORABLE) && nk == r->keywords) {
            rc = 0;
            goto out;
        }
        int rr = rename_flags(b, r, nf, nk, err);
        if (rr < 0)
            goto out;
        if (rr > 0) {
            /* Renamed under us by another Maildir client: rescan, retry. */
            struct scan_ctx sc = {0, false};
            b->h.cur_sec = b->h.cur_nsec = 0;
            if (scan(b, false, &sc, err) < 0)
                goto out;
            continue;
        }
        uint64_t m;
        if (next_modseq(b, &m, err) < 0)
            goto out;
        r->flags = (r->flags & ~MBOX_F_STORABLE) | nf;
        r->keywords = nk;
        r->modseq = m;
        if (modseq_r)
            *modseq_r = m;
        if (put_rec(b, r, err) < 0 || put_hdr(b, err) < 0)
            goto out;
        rc = 0;
        goto out;
    }
    strbuf_printf(err, "message UID %u keeps moving", uid);
out:
    if (txn_end(b, err) < 0)
        rc = -1;
    return rc;
}

int mbox_expunge_uids(struct mbox *b, const uint32_t *uids, size_t n, struct strbuf *err)
{
    if (txn_begin(b, true, err) < 0)
        return -1;
    int rc = 0;
    uint64_t m = 0;
    struct strbuf p = STRBUF_INIT;
    bool tracked = n > 0 && cur_pre(b), touched = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool found;
        size_t idx = find_idx(b, uids[i], &found);
        if (!found || b->recs[idx].filename == NULL)
            continue; /* unknown, or listed twice */
        touched = true;
        mbox_path(b, &b->recs[idx], &p);
        if (unlink(p.data) < 0 && errno != ENOENT) {
            strbuf_printf(err, "unlink %s: %s", p.data, strerror(errno));
            rc = -1;
            break;
        }
        if (m == 0 && next_modseq(b, &m, err) < 0) {
            rc = -1;
            break;
        }
        rc = drop_rec(b, idx, m, err);
    }
    compact_recs(b);
    strbuf_release(&p);
    if (touched)
        cur_post(b, tracked);
    if (rc == 0 && m != 0)
        rc = put_hdr(b, err);
    if (txn_end(b, err) < 0)
        rc = -1;
    return rc;
}

/* A unique base name for a file we create: like maildir_deliver's. */
static void new_base(struct strbuf *out)
{
    static unsigned long seq;
    static char host[64];
    if (host[0] == 0) {
        char h[256];
        if (gethostname(h, sizeof(h)) < 0)
            strcpy(host, "localhost");
        else {
            h[sizeof(h) - 1] = 0;
            size_t j = 0;
            for (size_t i = 0; h[i] && j < sizeof(host) - 1; i++)
                host[j++] = (h[i] == '/' || h[i] == ':' || h[i] == ',' || h[i] == '.') ? '_' : h[i];
            host[j] = 0;
        }
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    strbuf_printf(out, "%lld.M%06ldP%ldQ%lui.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                  (long)getpid(), ++seq, host);
}

/* Link or rename a finished file into cur/ under its UID and add the record. */
static int commit_file(struct mbox *b, const char *from, bool link_it, uint64_t size,
                       uint64_t vsize, time_t idate, uint32_t flags, uint64_t keywords,
                       uint32_t *uid_r, struct strbuf *err)
{
    uint32_t uid;
    uint64_t m;
    if (next_uid(b, &uid, err) < 0 || next_modseq(b, &m, err) < 0)
        return -1;
    struct strbuf base = STRBUF_INIT, nn = STRBUF_INIT, to = STRBUF_INIT;
    new_base(&base);
    strbuf_printf(&base, ",S=%llu,W=%llu", (unsigned long long)size, (unsigned long long)vsize);
    fname_build(base.data, uid, flags, keywords, &nn);
    strbuf_printf(&to, "%s/cur/%s", b->dir, nn.data);
    bool tracked = cur_pre(b);
    int r = link_it ? link(from, to.data) : rename(from, to.data);
    int e = errno;
    cur_post(b, tracked && r == 0);
    if (r < 0) {
        strbuf_printf(err, "%s %s: %s", link_it ? "link" : "rename", to.data, strerror(e));
        strbuf_release(&base);
        strbuf_release(&nn);
        strbuf_release(&to);
        return link_it && (e == EXDEV || e == EPERM || e == EMLINK || e == ENOENT) ? 1 : -1;
    }
    b->cur_unsynced = true; /* fsync'ed by the outermost txn_end */
    struct mbox_rec rec;
    memset(&rec, 0, sizeof(rec));
    rec.uid = uid;
    rec.flags = flags & MBOX_F_STORABLE;
    rec.keywords = keywords;
    rec.modseq = m;
    rec.size = size;
    rec.vsize = vsize;
    rec.internaldate = idate;
    rec.filename = name_add(b, nn.data, nn.len);
    strbuf_release(&nn);
    strbuf_release(&base);
    strbuf_release(&to);
    if (put_rec(b, &rec, err) < 0 || put_hdr(b, err) < 0) {
        name_drop(b, rec.filename);
        return -1;
    }
    *rec_add(b) = rec; /* the greatest UID: the array stays sorted */
    *uid_r = uid;
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Write data into a new file in tmp/ with mtime idate, fsync'ed. */
static int write_tmp(struct mbox *b, const char *data, size_t len, time_t idate,
                     struct strbuf *path_r, struct strbuf *err)
{
    strbuf_reset(path_r);
    strbuf_printf(path_r, "%s/tmp/", b->dir);
    new_base(path_r);
    int fd = open(path_r->data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        strbuf_printf(err, "create %s: %s", path_r->data, strerror(errno));
        return -1;
    }
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        strbuf_printf(err, "write %s: %s", path_r->data, strerror(errno));
        close(fd);
        unlink(path_r->data);
        return -1;
    }
    struct timespec ts[2] = {{idate, 0}, {idate, 0}};
    (void)futimens(fd, ts);
    close(fd);
    return 0;
}

int mbox_append(struct mbox *b, const char *data, size_t len, uint32_t flags, uint64_t keywords,
                time_t internaldate, uint32_t *uid_r, struct strbuf *err)
{
    if (internaldate == 0)
        internaldate = time(NULL);
    uint64_t lfs = 0;
    for (const char *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        lfs++;
    struct strbuf tmp = STRBUF_INIT;
    if (write_tmp(b, data, len, internaldate, &tmp, err) < 0) {
        strbuf_release(&tmp);
        return -1;
    }
    /* Only the rename into cur/ and the index write happen under the lock. */
    if (txn_begin(b, true, err) < 0) {
        unlink(tmp.data);
        strbuf_release(&tmp);
        return -1;
    }
    int rc =
        commit_file(b, tmp.data, false, len, len + lfs, internaldate, flags, keywords, uid_r, err);
    if (rc != 0)
        unlink(tmp.data);
    if (txn_end(b, err) < 0)
        rc = -1;
    strbuf_release(&tmp);
    return rc == 0 ? 0 : -1;
}

int mbox_copy(struct mbox *src, uint32_t uid, struct mbox *dst, uint32_t *new_uid_r,
              struct strbuf *err)
{
    const struct mbox_rec *r = mbox_rec_by_uid(src, uid, NULL);
    if (r == NULL) {
        strbuf_printf(err, "no message with UID %u", uid);
        return -1;
    }
    if (dst->flags & MBOX_READONLY) {
        strbuf_puts(err, "mailbox is read-only");
        return -1;
    }
    /* Keywords by name: the destination may number them differently. */
    uint64_t kw = 0;
    for (unsigned i = 0; i < src->nkw; i++) {
        if (!(r->keywords & ((uint64_t)1 << i)))
            continue;
        int k = mbox_keyword(dst, src->kw[i], true);
        if (k >= 0)
            kw |= (uint64_t)1 << k;
    }
    r = mbox_rec_by_uid(src, uid, NULL); /* src may be dst: re-find */
    if (r == NULL) {
        strbuf_printf(err, "no message with UID %u", uid);
        return -1;
    }
    struct mbox_rec copy = *r;
    struct strbuf from = STRBUF_INIT;
    mbox_path(src, r, &from);
    copy.filename = NULL;
    /* Cached strings go along (read before dst's transaction may reload). */
    struct strbuf env = STRBUF_INIT, bs = STRBUF_INIT, body = STRBUF_INIT;
    int he = mbox_cache_get(src, uid, "envelope", &env);
    int hb = mbox_cache_get(src, uid, "bodystructure", &bs);
    int hy = mbox_cache_get(src, uid, "body", &body);
    if (txn_begin(dst, true, err) < 0) {
        strbuf_release(&from);
        strbuf_release(&env);
        strbuf_release(&bs);
        strbuf_release(&body);
        return -1;
    }
    int rc = commit_file(dst, from.data, true, copy.size, copy.vsize, copy.internaldate, copy.flags,
                         kw, new_uid_r, err);
    if (rc == 1) {
        /* Another file system, or renamed meanwhile: copy the bytes. */
        strbuf_reset(err);
        int fd = mbox_msg_open(src, uid, err);
        rc = -1;
        if (fd >= 0) {
            struct strbuf data = STRBUF_INIT, tmp = STRBUF_INIT;
            char buf[65536];
            ssize_t got;
            while ((got = read(fd, buf, sizeof(buf))) > 0)
                strbuf_append(&data, buf, (size_t)got);
            close(fd);
            if (got == 0 &&
                write_tmp(dst, data.data, data.len, copy.internaldate, &tmp, err) == 0) {
                rc = commit_file(dst, tmp.data, false, copy.size, copy.vsize, copy.internaldate,
                                 copy.flags, kw, new_uid_r, err);
                if (rc != 0) {
                    unlink(tmp.data);
                    rc = -1;
                }
            }
            strbuf_release(&data);
            strbuf_release(&tmp);
        }
    }
    if (txn_end(dst, err) < 0)
        rc = -1;
    if (rc == 0) {
        if (he == 1)
            mbox_cache_put(dst, *new_uid_r, "envelope", env.data, env.len);
        if (hb == 1)
            mbox_cache_put(dst, *new_uid_r, "bodystructure", bs.data, bs.len);
        if (hy == 1)
            mbox_cache_put(dst, *new_uid_r, "body", body.data, body.len);
    }
    strbuf_release(&from);
    strbuf_release(&env);
    strbuf_release(&bs);
    strbuf_release(&body);
    return rc;
}

/* ---- keywords ---- */

/* RFC 3501 flag-keyword = atom: no atom-specials, no '\\' start. */
static bool keyword_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255 || name[0] == '\\')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7F || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

static int kw_find(const struct mbox *b, const char *name)
{
    for (size_t i = 0; i < b->nkw; i++)
        if (strcasecmp(b->kw[i], name) == 0)
            return (int)i;
    return -1;
}

/* tegami-keywords: "<i> <name>" a line (Dovecot's dovecot-keywords format),
 * replaced atomically; a rebuild reads it back. */
static int keywords_write(struct mbox *b, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT, body = STRBUF_INIT;
    path_of(b, KEYWORDS_FILE, &p);
    for (size_t i = 0; i < b->nkw; i++)
        strbuf_printf(&body, "%zu %s\n", i, b->kw[i]);
    int rc = mailbox_file_replace(p.data, body.data, body.len, err);
    strbuf_release(&p);
    strbuf_release(&body);
    return rc;
}

static bool keyword_valid(const char *name);

/* Rebuild: the keyword names back from tegami-keywords, in their order. */
static int keywords_read(struct mbox *b, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    path_of(b, KEYWORDS_FILE, &p);
    FILE *fp = fopen(p.data, "re");
    strbuf_release(&p);
    if (fp == NULL)
        return 0;
    char line[300];
    int rc = 0;
    while (rc == 0 && b->nkw < MBOX_KEYWORDS_MAX && fgets(line, sizeof(line), fp) != NULL) {
        char *sp = strchr(line, ' ');
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        if (sp == NULL || strtoul(line, NULL, 10) != b->nkw || !keyword_valid(sp + 1))
            break; /* damaged: keep what came before */
        unsigned char key[2] = {'K', (unsigned char)b->nkw};
        rc = db_put(b, key, 2, sp + 1, strlen(sp + 1), err);
        if (rc == 0)
            b->kw[b->nkw++] = mystrdup(sp + 1);
    }
    fclose(fp);
    return rc;
}

int mbox_keyword(struct mbox *b, const char *name, bool create)
{
    int k = kw_find(b, name);
    if (k >= 0 || !create || !keyword_valid(name))
        return k;
    struct strbuf err = STRBUF_INIT;
    if (txn_begin(b, true, &err) < 0) {
        msg_warn("%s", err.data);
        strbuf_release(&err);
        return -1;
    }
    k = kw_find(b, name); /* another process may have added it */
    if (k < 0 && b->nkw < MBOX_KEYWORDS_MAX) {
        unsigned char key[2] = {'K', (unsigned char)b->nkw};
        if (txn_mark_dirty(b, &err) == 0 && db_put(b, key, 2, name, strlen(name), &err) == 0) {
            b->kw[b->nkw] = mystrdup(name);
            k = (int)b->nkw++;
            if (keywords_write(b, &err) < 0)
                k = -1;
        }
    }
    if (txn_end(b, &err) < 0)
        k = -1;
    if (err.len)
        msg_warn("%s", err.data);
    strbuf_release(&err);
    return k;
}

const char *mbox_keyword_name(const struct mbox *b, unsigned i)
{
    return i < b->nkw ? b->kw[i] : NULL;
}

size_t mbox_keyword_count(const struct mbox *b)
{
    return b->nkw;
}

/* ---- QRESYNC and CONDSTORE ---- */

/*
 * Read-only access to the DB without reloading the records (pointers the
 * caller holds stay valid): reopen the handle if another process wrote.
 */
static int peek_begin(struct mbox *b)
{
    /* Inside a transaction we hold the lock and are current: a second
     * flock on the same fd would turn LOCK_EX into LOCK_SH. */
    if (b->txn_depth > 0)
        return b->db ? 0 : -1;
    if (flock(b->lock_fd, LOCK_SH) < 0)
        return -1;
    uint64_t gen;
    bool dirty;
    if (read_gen(b, &gen, &dirty, NULL) < 0 || dirty) {
        flock(b->lock_fd, LOCK_UN);
        return -1;
    }
    /* Only the handle is reopened; the records stay until the next sync
     * (mbox_changed sees the new counter). */
    if (gen != b->db_gen || b->db == NULL) {
        struct strbuf e = STRBUF_INIT;
        int r = db_open(b, false, &e);
        strbuf_release(&e);
        if (r < 0) {
            flock(b->lock_fd, LOCK_UN);
            return -1;
        }
        b->db_gen = gen;
    }
    return 0;
}

static void peek_end(struct mbox *b)
{
    if (b->txn_depth == 0)
        flock(b->lock_fd, LOCK_UN);
}

struct tomb_ctx {
    uint64_t since;
    void (*cb)(void *ctx, uint32_t uid);
    void *ctx;
};

static int tomb_one(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct tomb_ctx *tc = ctx;
    if (klen == 5 && vlen == 8 && get64(v) > tc->since)
        tc->cb(tc->ctx, get32((const unsigned char *)k + 1));
    return 0;
}

int mbox_expunged_since(struct mbox *b, uint64_t since, void (*cb)(void *ctx, uint32_t uid),
                        void *ctx)
{
    if (peek_begin(b) < 0)
        return 1;
    struct tomb_ctx tc = {since, cb, ctx};
    struct strbuf err = STRBUF_INIT;
    int r = b->kv->scan(b->db, "X", 1, tomb_one, &tc, &err);
    if (r < 0)
        msg_warn("%s: %s", b->dir, err.data);
    strbuf_release(&err);
    peek_end(b);
    if (r < 0)
        return 1; /* incomplete: the client must resync */
    return since < b->h.tombstone_floor ? 1 : 0;
}

uint64_t mbox_tombstone_floor(const struct mbox *b)
{
    return b->h.tombstone_floor;
}

void mbox_changed_since(const struct mbox *b, uint64_t since,
                        void (*cb)(void *ctx, const struct mbox_rec *r), void *ctx)
{
    check_live(b, "mbox_changed_since");
    for (size_t i = 0; i < b->n; i++)
        if (b->recs[i].modseq > since)
            cb(ctx, &b->recs[i]);
}

/* ---- cache ---- */

static void cache_key(uint32_t uid, const char *field, struct strbuf *k)
{
    strbuf_reset(k);
    unsigned char u[5];
    u[0] = 'C';
    be32(u + 1, uid);
    strbuf_append(k, u, 5);
    strbuf_puts(k, field);
}

int mbox_cache_get(struct mbox *b, uint32_t uid, const char *field, struct strbuf *out)
{
    for (size_t i = b->npend; i-- > 0;) {
        if (b->pend[i].uid == uid && strcmp(b->pend[i].field, field) == 0) {
            strbuf_reset(out);
            strbuf_append(out, b->pend[i].value, b->pend[i].len);
            return 1;
        }
    }
    if (peek_begin(b) < 0)
        return 0;
    struct strbuf k = STRBUF_INIT;
    cache_key(uid, field, &k);
    const void *v;
    size_t vlen;
    struct strbuf err = STRBUF_INIT;
    int found = b->kv->get(b->db, k.data, k.len, &v, &vlen, &err);
    if (found == 1) {
        strbuf_reset(out);
        strbuf_append(out, v, vlen);
    } else if (found < 0) {
        msg_warn("%s: %s", b->dir, err.data);
        found = 0;
    }
    strbuf_release(&err);
    peek_end(b);
    strbuf_release(&k);
    return found;
}

#define CACHE_PENDING_MAX 4096

void mbox_cache_put(struct mbox *b, uint32_t uid, const char *field, const char *v, size_t len)
{
    if (len > 1024 * 1024 || strlen(field) > 64)
        return; /* not worth caching */
    if (b->npend == b->cappend) {
        b->cappend = b->cappend ? 2 * b->cappend : 64;
        b->pend = myreallocarray(b->pend, b->cappend, sizeof(*b->pend));
    }
    struct pending *p = &b->pend[b->npend++];
    p->uid = uid;
    p->field = mystrdup(field);
    p->value = mymalloc(len + 1);
    if (len > 0)
        memcpy(p->value, v, len);
    p->len = len;
    if (b->npend >= CACHE_PENDING_MAX) {
        struct strbuf err = STRBUF_INIT;
        if (mbox_cache_flush(b, &err) < 0)
            msg_warn("%s", err.data);
        strbuf_release(&err);
    }
}

int mbox_cache_flush(struct mbox *b, struct strbuf *err)
{
    if (b->npend == 0)
        return 0;
    int rc = 0;
    if (txn_begin(b, true, err) < 0) {
        rc = -1;
    } else {
        struct strbuf k = STRBUF_INIT;
        for (size_t i = 0; i < b->npend && rc == 0; i++) {
            bool found;
            (void)find_idx(b, b->pend[i].uid, &found);
            if (!found)
                continue; /* expunged meanwhile */
            cache_key(b->pend[i].uid, b->pend[i].field, &k);
            rc = txn_mark_dirty(b, err);
            if (rc == 0)
                rc = db_put(b, k.data, k.len, b->pend[i].value, b->pend[i].len, err);
        }
        strbuf_release(&k);
        if (txn_end(b, err) < 0)
            rc = -1;
    }
    for (size_t i = 0; i < b->npend; i++) {
        myfree(b->pend[i].field);
        myfree(b->pend[i].value);
    }
    b->npend = 0;
    return rc;
}
