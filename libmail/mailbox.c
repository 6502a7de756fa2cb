/*
 * mailbox - Maildir++ folders (see mailbox.h).
 *
 * Folder "A.B" is the directory root/.A.B with each component in modified
 * UTF-7; INBOX is root. Creation builds the folder under a temporary name in
 * the root and renames it into place, deletion renames it out of the
 * namespace first, so other processes never see half a folder.
 */
#include "mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "msg.h"
#include "mutf7.h"
#include "mymalloc.h"
#include "utf8.h"

#define SUBSCRIPTIONS "subscriptions"
#define SUBSCRIPTIONS_LOCK "tegami-subscriptions.lock"

char mailbox_delimiter(void)
{
    return '.';
}

bool mailbox_is_inbox(const char *name)
{
    return strcasecmp(name, "INBOX") == 0;
}

int mailbox_name_check(const char *name, struct strbuf *canon, struct strbuf *err)
{
    size_t len = strlen(name);
    if (len == 0) {
        strbuf_puts(err, "Empty mailbox name");
        return -1;
    }
    if (len > MAILBOX_NAME_MAX) {
        strbuf_puts(err, "Mailbox name too long");
        return -1;
    }
    if (!utf8_valid(name, len)) {
        strbuf_puts(err, "Mailbox name is not valid UTF-8");
        return -1;
    }
    unsigned depth = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        /* '/' and '\\' could name a path; controls could split log lines
         * or the subscriptions file. */
        if (c < 0x20 || c == 0x7F) {
            strbuf_puts(err, "Mailbox name contains a control character");
            return -1;
        }
        if (c == '/' || c == '\\') {
            strbuf_printf(err, "Character '%c' not allowed in mailbox name", c);
            return -1;
        }
        if (c == '*' || c == '%') {
            strbuf_puts(err, "Wildcards not allowed in mailbox name");
            return -1;
        }
        if (c == '.') {
            /* Empty components: leading/trailing '.', "..": one would make
             * the directory name "..", or a name with two spellings. */
            if (i == 0 || i + 1 == len || name[i + 1] == '.') {
                strbuf_puts(err, "Mailbox name has an empty hierarchy level");
                return -1;
            }
            if (++depth > MAILBOX_DEPTH_MAX) {
                strbuf_puts(err, "Mailbox name has too many hierarchy levels");
                return -1;
            }
        }
    }
    if (canon) {
        strbuf_reset(canon);
        if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == 0 || name[5] == '.')) {
            strbuf_puts(canon, "INBOX");
            strbuf_puts(canon, name + 5);
        } else {
            strbuf_puts(canon, name);
        }
    }
    return 0;
}

int mailbox_name_to_dir(const char *root, const char *name, struct strbuf *path_r,
                        struct strbuf *err)
{
    struct strbuf canon = STRBUF_INIT;
    if (mailbox_name_check(name, &canon, err) < 0) {
        strbuf_release(&canon);
        return -1;
    }
    strbuf_reset(path_r);
    strbuf_puts(path_r, root);
    if (strcmp(canon.data, "INBOX") != 0) {
        size_t base = path_r->len;
        strbuf_puts(path_r, "/.");
        const char *why = NULL;
        if (mutf7_from_utf8(canon.data, canon.len, path_r, &why) < 0) {
            strbuf_printf(err, "Bad mailbox name: %s", why);
            strbuf_release(&canon);
            return -1;
        }
        if (path_r->len - base - 1 > NAME_MAX) {
            strbuf_puts(err, "Mailbox name too long");
            strbuf_release(&canon);
            return -1;
        }
    }
    strbuf_release(&canon);
    return 0;
}

static bool is_folder_dir(const char *dir)
{
    struct strbuf p = STRBUF_INIT;
    struct stat st;
    strbuf_printf(&p, "%s/cur", dir);
    bool ok = stat(p.data, &st) == 0 && S_ISDIR(st.st_mode);
    strbuf_release(&p);
    return ok;
}

int mailbox_exists(const char *root, const char *name, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT;
    if (mailbox_name_to_dir(root, name, &dir, err) < 0) {
        strbuf_release(&dir);
        return -1;
    }
    int r = is_folder_dir(dir.data) ? 1 : 0;
    strbuf_release(&dir);
    return r;
}

unsigned mailbox_special_use(const char *name)
{
    if (strcmp(name, "Sent") == 0)
        return MAILBOX_ATTR_SENT;
    if (strcmp(name, "Drafts") == 0)
        return MAILBOX_ATTR_DRAFTS;
    if (strcmp(name, "Trash") == 0)
        return MAILBOX_ATTR_TRASH;
    if (strcmp(name, "Junk") == 0)
        return MAILBOX_ATTR_JUNK;
    return 0;
}

/* A fresh name in the root that is not a folder (no leading '.'). */
static void temp_name(const char *root, const char *what, struct strbuf *out)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    strbuf_reset(out);
    strbuf_printf(out, "%s/tegami-%s.%ld.%ld.%ld.%u", root, what, (long)getpid(), (long)ts.tv_sec,
                  (long)ts.tv_nsec, ++counter);
}

/*
 * RFC 3501 §2.3.1.1: a folder deleted and created again under the same
 * name must not get its old UIDVALIDITY back, even within one second. The
 * root keeps the next value to hand out (tegami-uidvalidity-next); the new
 * folder's tegami-uidvalidity starts with max(now, next), which mbox_index
 * then uses. Best effort: without it the index falls back to the time.
 */
static void preset_uidvalidity(const char *root, const char *folder)
{
    struct strbuf p = STRBUF_INIT, body = STRBUF_INIT;
    strbuf_printf(&p, "%s/tegami-uidvalidity-next", root);
    int fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        if (fd >= 0)
            close(fd);
        strbuf_release(&p);
        return;
    }
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    unsigned long long next = 0;
    if (n > 0) {
        buf[n] = 0;
        next = strtoull(buf, NULL, 10);
    }
    unsigned long long v = (unsigned long long)time(NULL);
    if (next > v && next < 0xFFFFFFFFull)
        v = next;
    strbuf_printf(&body, "%llu\n", v + 1);
    if (pwrite(fd, body.data, body.len, 0) == (ssize_t)body.len &&
        ftruncate(fd, (off_t)body.len) == 0) {
        strbuf_reset(&p);
        strbuf_printf(&p, "%s/tegami-uidvalidity", folder);
        strbuf_reset(&body);
        strbuf_printf(&body, "%llu\n", v);
        int f2 = open(p.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (f2 >= 0) {
            if (write(f2, body.data, body.len) != (ssize_t)body.len)
                unlink(p.data);
            close(f2);
        }
    }
    close(fd);
    strbuf_release(&p);
    strbuf_release(&body);
}

static int remove_tree(const char *dir);

static int create_dir(const char *root, const char *dir, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT, p = STRBUF_INIT;
    int rc = -1;
    temp_name(root, "creating", &tmp);
    if (maildir_create(tmp.data, &p) < 0) {
        msg_warn("mailbox create: %s", p.data);
        strbuf_puts(err, "Cannot create mailbox");
        goto out;
    }
    /* Maildir++: a folder holds a "maildirfolder" file (for deliverers
     * that must know they write into a folder, e.g. quota tools). */
    strbuf_reset(&p);
    strbuf_printf(&p, "%s/maildirfolder", tmp.data);
    int fd = open(p.data, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    preset_uidvalidity(root, tmp.data);
    if (rename(tmp.data, dir) < 0) {
        int e = errno;
        (void)remove_tree(tmp.data);
        if (e == EEXIST || e == ENOTEMPTY) {
            strbuf_puts(err, "Mailbox already exists");
            rc = MAILBOX_EEXIST;
        } else {
            msg_warn("mailbox create: rename to %s: %s", dir, strerror(e));
            strbuf_puts(err, "Cannot create mailbox");
        }
        goto out;
    }
    rc = 0;
out:
    strbuf_release(&tmp);
    strbuf_release(&p);
    return rc;
}

int mailbox_create(const char *root, const char *name, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT;
    int rc = -1;
    if (mailbox_name_to_dir(root, name, &dir, err) < 0)
        goto out;
    if (mailbox_is_inbox(name) || is_folder_dir(dir.data)) {
        strbuf_puts(err, "Mailbox already exists");
        rc = MAILBOX_EEXIST;
        goto out;
    }
    struct stat st;
    if (stat(root, &st) < 0) {
        struct strbuf e2 = STRBUF_INIT;
        if (maildir_create(root, &e2) < 0) {
            msg_warn("mailbox create: %s", e2.data);
            strbuf_release(&e2);
            strbuf_puts(err, "Cannot create mailbox");
            goto out;
        }
        strbuf_release(&e2);
    }
    /* A directory without cur/ (left by something else) is not a folder:
     * it would make the rename fail with ENOTEMPTY; move an empty one away. */
    rmdir(dir.data);
    rc = create_dir(root, dir.data, err);
out:
    strbuf_release(&dir);
    return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Remove a directory tree (no shell, no symlink following). */
static int remove_tree(const char *dir)
{
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int mailbox_delete(const char *root, const char *name, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT, tmp = STRBUF_INIT;
    int rc = -1;
    if (mailbox_name_to_dir(root, name, &dir, err) < 0)
        goto out;
    if (mailbox_is_inbox(name)) {
        strbuf_puts(err, "INBOX cannot be deleted");
        goto out;
    }
    if (!is_folder_dir(dir.data)) {
        strbuf_puts(err, "Mailbox does not exist");
        rc = MAILBOX_ENOENT;
        goto out;
    }
    temp_name(root, "deleting", &tmp);
    if (rename(dir.data, tmp.data) < 0) {
        if (errno == ENOENT) {
            strbuf_puts(err, "Mailbox does not exist");
            rc = MAILBOX_ENOENT;
        } else {
            msg_warn("mailbox delete: rename %s: %s", dir.data, strerror(errno));
            strbuf_puts(err, "Cannot delete mailbox");
        }
        goto out;
    }
    if (remove_tree(tmp.data) < 0)
        msg_warn("mailbox delete: cannot remove all of %s: %s", tmp.data, strerror(errno));
    rc = 0;
out:
    strbuf_release(&dir);
    strbuf_release(&tmp);
    return rc;
}

/* ---- listing ---- */

struct entry {
    char *name;
    unsigned attrs;
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

static struct entry *entries_find(struct entries *e, const char *name)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i].name, name) == 0)
            return &e->v[i];
    return NULL;
}

static struct entry *entries_add(struct entries *e, const char *name, size_t len, unsigned attrs)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 32;
        e->v = myreallocarray(e->v, e->cap, sizeof(*e->v));
    }
    struct entry *x = &e->v[e->n++];
    x->name = mymalloc(len + 1);
    memcpy(x->name, name, len);
    x->name[len] = 0;
    x->attrs = attrs;
    return x;
}

static void entries_free(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        myfree(e->v[i].name);
    myfree(e->v);
    memset(e, 0, sizeof(*e));
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    /* INBOX first, then by name. */
    bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
    if (xi != yi)
        return xi ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Read the subscriptions file: names one per line, appended to e. */
static int read_subscriptions(const char *root, struct entries *e, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    strbuf_printf(&p, "%s/" SUBSCRIPTIONS, root);
    FILE *fp = fopen(p.data, "re");
    if (fp == NULL) {
        int rc = errno == ENOENT ? 0 : -1;
        if (rc < 0) {
            msg_warn("open %s: %s", p.data, strerror(errno));
            strbuf_puts(err, "Cannot read subscriptions");
        }
        strbuf_release(&p);
        return rc;
    }
    char line[MAILBOX_NAME_MAX + 2];
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        else if (!feof(fp)) {
            /* overlong line: skip the rest of it */
            int c;
            while ((c = fgetc(fp)) != EOF && c != '\n')
                ;
            continue;
        }
        struct strbuf e2 = STRBUF_INIT, canon = STRBUF_INIT;
        if (len > 0 && mailbox_name_check(line, &canon, &e2) == 0 &&
            entries_find(e, canon.data) == NULL)
            entries_add(e, canon.data, canon.len, MAILBOX_ATTR_SUBSCRIBED);
        strbuf_release(&e2);
        strbuf_release(&canon);
    }
    fclose(fp);
    strbuf_release(&p);
    return 0;
}

/* All folders (real ones and parents implied by children), sorted, with attrs. */
static int collect(const char *root, struct entries *out, struct strbuf *err)
{
    DIR *dp = opendir(root);
    if (dp == NULL) {
        if (errno == ENOENT) {
            entries_add(out, "INBOX", 5, MAILBOX_ATTR_HASNOCHILDREN);
            return 0;
        }
        msg_warn("opendir %s: %s", root, strerror(errno));
        strbuf_puts(err, "Cannot list mailboxes");
        return -1;
    }
    entries_add(out, "INBOX", 5, 0);
    struct dirent *de;
    struct strbuf name = STRBUF_INIT, e2 = STRBUF_INIT, path = STRBUF_INIT, canon = STRBUF_INIT;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        strbuf_reset(&name);
        strbuf_reset(&e2);
        const char *why = NULL;
        const char *enc = de->d_name + 1;
        if (mutf7_to_utf8(enc, strlen(enc), &name, &why) < 0) {
            msg_warn("%s/%s: not a modified UTF-7 folder name (%s); skipped", root, de->d_name,
                     why);
            continue;
        }
        if (mailbox_name_check(name.data, &canon, &e2) < 0 || strcmp(canon.data, "INBOX") == 0) {
            msg_warn("%s/%s: unsafe folder name (%s); skipped", root, de->d_name, e2.data);
            continue;
        }
        strbuf_reset(&path);
        strbuf_printf(&path, "%s/%s", root, de->d_name);
        if (!is_folder_dir(path.data))
            continue;
        struct entry *x = entries_find(out, canon.data);
        if (x)
            x->attrs &= ~MAILBOX_ATTR_NOSELECT;
        else
            entries_add(out, canon.data, canon.len, 0);
        /* Parents that exist only through this child. */
        for (size_t i = canon.len; i-- > 0;) {
            if (canon.data[i] != '.')
                continue;
            canon.data[i] = 0;
            if (entries_find(out, canon.data) == NULL)
                entries_add(out, canon.data, i, MAILBOX_ATTR_NOSELECT);
            canon.data[i] = '.';
        }
    }
    closedir(dp);
    strbuf_release(&name);
    strbuf_release(&e2);
    strbuf_release(&path);
    strbuf_release(&canon);
    /* A "parent" that is really a folder was added as NOSELECT first if
     * its child came first: fix by checking the directory. */
    struct strbuf dir = STRBUF_INIT, e3 = STRBUF_INIT;
    for (size_t i = 0; i < out->n; i++) {
        if (!(out->v[i].attrs & MAILBOX_ATTR_NOSELECT))
            continue;
        if (mailbox_name_to_dir(root, out->v[i].name, &dir, &e3) == 0 && is_folder_dir(dir.data))
            out->v[i].attrs &= ~MAILBOX_ATTR_NOSELECT;
    }
    strbuf_release(&dir);
    strbuf_release(&e3);
    for (size_t i = 0; i < out->n; i++) {
        size_t len = strlen(out->v[i].name);
        bool children = false;
        for (size_t j = 0; j < out->n && !children; j++)
            children = j != i && strncmp(out->v[j].name, out->v[i].name, len) == 0 &&
                       out->v[j].name[len] == '.';
        out->v[i].attrs |= children ? MAILBOX_ATTR_HASCHILDREN : MAILBOX_ATTR_HASNOCHILDREN;
        out->v[i].attrs |= mailbox_special_use(out->v[i].name);
    }
    qsort(out->v, out->n, sizeof(*out->v), entry_cmp);
    return 0;
}

int mailbox_list(const char *root, mailbox_list_cb *cb, void *ctx, struct strbuf *err)
{
    struct entries all = {0}, subs = {0};
    if (collect(root, &all, err) < 0 || read_subscriptions(root, &subs, err) < 0) {
        entries_free(&all);
        entries_free(&subs);
        return -1;
    }
    for (size_t i = 0; i < all.n; i++) {
        unsigned attrs = all.v[i].attrs;
        if (entries_find(&subs, all.v[i].name))
            attrs |= MAILBOX_ATTR_SUBSCRIBED;
        cb(ctx, all.v[i].name, attrs);
    }
    entries_free(&all);
    entries_free(&subs);
    return 0;
}

int mailbox_list_subscribed(const char *root, mailbox_list_cb *cb, void *ctx, struct strbuf *err)
{
    struct entries all = {0}, subs = {0};
    if (collect(root, &all, err) < 0 || read_subscriptions(root, &subs, err) < 0) {
        entries_free(&all);
        entries_free(&subs);
        return -1;
    }
    qsort(subs.v, subs.n, sizeof(*subs.v), entry_cmp);
    for (size_t i = 0; i < subs.n; i++) {
        struct entry *x = entries_find(&all, subs.v[i].name);
        unsigned attrs = MAILBOX_ATTR_SUBSCRIBED;
        if (x == NULL)
            attrs |= MAILBOX_ATTR_NONEXISTENT | MAILBOX_ATTR_NOSELECT;
        else
            attrs |= x->attrs;
        cb(ctx, subs.v[i].name, attrs);
    }
    entries_free(&all);
    entries_free(&subs);
    return 0;
}

/* ---- subscriptions ---- */

static int subs_lock(const char *root, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT;
    strbuf_printf(&p, "%s/" SUBSCRIPTIONS_LOCK, root);
    int fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        msg_warn("lock %s: %s", p.data, strerror(errno));
        strbuf_puts(err, "Cannot update subscriptions");
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    strbuf_release(&p);
    return fd;
}

int mailbox_file_replace(const char *path, const char *data, size_t len, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT;
    int rc = -1;
    strbuf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            close(fd);
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0) {
        close(fd);
        goto fail;
    }
    if (close(fd) < 0 || rename(tmp.data, path) < 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    strbuf_printf(err, "write %s: %s", path, strerror(errno));
    unlink(tmp.data);
out:
    strbuf_release(&tmp);
    return rc;
}

static int write_subscriptions(const char *root, const struct entries *e, struct strbuf *err)
{
    struct strbuf p = STRBUF_INIT, body = STRBUF_INIT, why = STRBUF_INIT;
    for (size_t i = 0; i < e->n; i++) {
        strbuf_puts(&body, e->v[i].name);
        strbuf_putc(&body, '\n');
    }
    strbuf_printf(&p, "%s/" SUBSCRIPTIONS, root);
    int rc = mailbox_file_replace(p.data, body.data, body.len, &why);
    if (rc < 0) {
        msg_warn("%s", why.data);
        strbuf_puts(err, "Cannot update subscriptions");
    }
    strbuf_release(&p);
    strbuf_release(&body);
    strbuf_release(&why);
    return rc;
}

/* Change the subscription of name; how: 1 add, 0 remove. */
static int subs_change(const char *root, const char *name, int how, struct strbuf *err)
{
    struct strbuf canon = STRBUF_INIT;
    if (mailbox_name_check(name, &canon, err) < 0) {
        strbuf_release(&canon);
        return -1;
    }
    int lock = subs_lock(root, err);
    if (lock < 0) {
        strbuf_release(&canon);
        return -1;
    }
    struct entries subs = {0};
    int rc = read_subscriptions(root, &subs, err);
    if (rc == 0) {
        struct entry *x = entries_find(&subs, canon.data);
        if (how && x == NULL) {
            entries_add(&subs, canon.data, canon.len, 0);
            rc = write_subscriptions(root, &subs, err);
        } else if (!how && x != NULL) {
            myfree(x->name);
            *x = subs.v[--subs.n];
            rc = write_subscriptions(root, &subs, err);
        }
    }
    entries_free(&subs);
    close(lock);
    strbuf_release(&canon);
    return rc;
}

int mailbox_subscribe(const char *root, const char *name, struct strbuf *err)
{
    return subs_change(root, name, 1, err);
}

int mailbox_unsubscribe(const char *root, const char *name, struct strbuf *err)
{
    return subs_change(root, name, 0, err);
}

/* ---- rename ---- */

/* Move every message file of INBOX (cur/ and new/) into dir/cur. */
static int move_inbox_messages(const char *root, const char *dir, struct strbuf *err)
{
    static const char *const subs[] = {"new", "cur"};
    struct strbuf from = STRBUF_INIT, to = STRBUF_INIT;
    int rc = 0;
    for (size_t d = 0; d < 2 && rc == 0; d++) {
        strbuf_reset(&from);
        strbuf_printf(&from, "%s/%s", root, subs[d]);
        DIR *dp = opendir(from.data);
        if (dp == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            strbuf_reset(&from);
            strbuf_printf(&from, "%s/%s/%s", root, subs[d], de->d_name);
            strbuf_reset(&to);
            /* Files from new/ get the ":2," info part they get in cur/. */
            strbuf_printf(&to, "%s/cur/%s%s", dir, de->d_name,
                          d == 0 && strchr(de->d_name, ':') == NULL ? ":2," : "");
            if (rename(from.data, to.data) < 0 && errno != ENOENT) {
                msg_warn("rename %s -> %s: %s", from.data, to.data, strerror(errno));
                strbuf_puts(err, "Cannot move all of INBOX");
                rc = -1;
                break;
            }
        }
        closedir(dp);
    }
    strbuf_release(&from);
    strbuf_release(&to);
    return rc;
}

int mailbox_rename(const char *root, const char *oldname, const char *newname, struct strbuf *err)
{
    struct strbuf oc = STRBUF_INIT, nc = STRBUF_INIT, od = STRBUF_INIT, nd = STRBUF_INIT;
    struct strbuf from = STRBUF_INIT, to = STRBUF_INIT;
    struct entries all = {0};
    int rc = -1;
    if (mailbox_name_check(oldname, &oc, err) < 0 || mailbox_name_check(newname, &nc, err) < 0 ||
        mailbox_name_to_dir(root, oc.data, &od, err) < 0 ||
        mailbox_name_to_dir(root, nc.data, &nd, err) < 0)
        goto out;
    if (strcmp(nc.data, "INBOX") == 0) {
        strbuf_puts(err, "Mailbox already exists");
        rc = MAILBOX_EEXIST;
        goto out;
    }
    if (strcmp(oc.data, nc.data) == 0) {
        strbuf_puts(err, "Mailbox already exists");
        rc = MAILBOX_EEXIST;
        goto out;
    }
    if (strncmp(nc.data, oc.data, oc.len) == 0 && nc.data[oc.len] == '.') {
        strbuf_puts(err, "Cannot rename a mailbox into itself");
        goto out;
    }
    if (collect(root, &all, err) < 0)
        goto out;
    /* The new name and all its would-be children must be free. */
    for (size_t i = 0; i < all.n; i++) {
        const char *n = all.v[i].name;
        if (strcmp(n, nc.data) == 0 && !(all.v[i].attrs & MAILBOX_ATTR_NOSELECT)) {
            strbuf_puts(err, "Mailbox already exists");
            rc = MAILBOX_EEXIST;
            goto out;
        }
    }
    if (strcmp(oc.data, "INBOX") == 0) {
        /* RFC 3501 §6.3.5: move INBOX's messages, INBOX stays (empty);
         * its children are not renamed. */
        int r = create_dir(root, nd.data, err);
        if (r != 0) {
            rc = r;
            goto out;
        }
        rc = move_inbox_messages(root, nd.data, err);
        goto out;
    }
    struct entry *self = entries_find(&all, oc.data);
    if (self == NULL) {
        strbuf_puts(err, "Mailbox does not exist");
        rc = MAILBOX_ENOENT;
        goto out;
    }
    /* Check every target first, then rename the folder and its children. */
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < all.n; i++) {
            const char *n = all.v[i].name;
            if (all.v[i].attrs & MAILBOX_ATTR_NOSELECT)
                continue;
            if (strcmp(n, oc.data) != 0 && !(strncmp(n, oc.data, oc.len) == 0 && n[oc.len] == '.'))
                continue;
            struct strbuf target = STRBUF_INIT;
            strbuf_puts(&target, nc.data);
            strbuf_puts(&target, n + oc.len);
            int bad = mailbox_name_to_dir(root, n, &from, err) < 0 ||
                      mailbox_name_to_dir(root, target.data, &to, err) < 0;
            strbuf_release(&target);
            if (bad)
                goto out;
            if (pass == 0) {
                if (is_folder_dir(to.data)) {
                    strbuf_puts(err, "Mailbox already exists");
                    rc = MAILBOX_EEXIST;
                    goto out;
                }
            } else if (rename(from.data, to.data) < 0) {
                msg_warn("rename %s -> %s: %s", from.data, to.data, strerror(errno));
                strbuf_puts(err, "Cannot rename mailbox");
                goto out;
            }
        }
    }
    /* Subscriptions follow the folder. */
    struct entries subs = {0};
    int lock = subs_lock(root, err);
    if (lock >= 0) {
        if (read_subscriptions(root, &subs, err) == 0) {
            bool changed = false;
            for (size_t i = 0; i < subs.n; i++) {
                const char *n = subs.v[i].name;
                if (strcmp(n, oc.data) == 0 ||
                    (strncmp(n, oc.data, oc.len) == 0 && n[oc.len] == '.')) {
                    struct strbuf t = STRBUF_INIT;
                    strbuf_puts(&t, nc.data);
                    strbuf_puts(&t, n + oc.len);
                    myfree(subs.v[i].name);
                    subs.v[i].name = strbuf_detach(&t, NULL);
                    changed = true;
                }
            }
            if (changed)
                (void)write_subscriptions(root, &subs, err);
        }
        entries_free(&subs);
        close(lock);
    }
    rc = 0;
out:
    entries_free(&all);
    strbuf_release(&oc);
    strbuf_release(&nc);
    strbuf_release(&od);
    strbuf_release(&nd);
    strbuf_release(&from);
    strbuf_release(&to);
    return rc;
}

/* ---- a new user's folders ---- */

int mailbox_create_defaults(const char *root, struct strbuf *err)
{
    static const char *const names[] = {"Sent", "Drafts", "Trash", "Junk"};
    struct strbuf e2 = STRBUF_INIT;
    bool created = false;
    if (!is_folder_dir(root)) {
        if (maildir_create(root, &e2) < 0) {
            msg_warn("mailbox defaults: %s", e2.data);
            strbuf_release(&e2);
            strbuf_puts(err, "Cannot create INBOX");
            return -1;
        }
        created = true;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        strbuf_reset(&e2);
        int r = mailbox_create(root, names[i], &e2);
        if (r == MAILBOX_EEXIST)
            continue;
        if (r < 0) {
            strbuf_puts(err, e2.data);
            strbuf_release(&e2);
            return -1;
        }
        created = true;
        if (mailbox_subscribe(root, names[i], err) < 0) {
            strbuf_release(&e2);
            return -1;
        }
    }
    strbuf_release(&e2);
    if (created && mailbox_subscribe(root, "INBOX", err) < 0)
        return -1;
    return 0;
}
