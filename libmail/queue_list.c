/*
 * queue_list - list the queue for mailq and mailctl queue. See queue_list.h.
 */
#include "queue_list.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const enum queue_dir ql_dirs[] = {QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE,
                                         QUEUE_DEFERRED, QUEUE_HOLD};

/*
 * qmgr's defer/ID file: "address TAB dsn reason" per recipient deferred in
 * the last attempt (qmgr/defer_log.c). Attach each reason to the first
 * pending recipient with that address. Missing or unreadable: no reasons.
 */
static void ql_read_reasons(struct queue_list_entry *e)
{
    struct strbuf path = STRBUF_INIT;
    char *buf;
    ssize_t len;
    int fd;

    strbuf_printf(&path, "%s/defer/%s", queue_root(), e->id);
    fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    strbuf_release(&path);
    if (fd < 0)
        return;
    buf = mymalloc(1024 * 1024 + 1);
    len = read(fd, buf, 1024 * 1024);
    close(fd);
    if (len > 0) {
        buf[len] = '\0';
        for (char *line = buf, *next; line != NULL && *line != '\0'; line = next) {
            char *nl = strchr(line, '\n');
            next = nl != NULL ? nl + 1 : NULL;
            if (nl != NULL)
                *nl = '\0';
            char *tab = strchr(line, '\t');
            if (tab == NULL)
                continue;
            *tab = '\0';
            for (size_t r = 0; r < e->nrcpts; r++)
                if (e->rcpts[r].reason == NULL && strcmp(e->rcpts[r].address, line) == 0) {
                    e->rcpts[r].reason = mystrdup(tab + 1);
                    break;
                }
        }
    }
    myfree(buf);
}

static void ql_read_one(struct queue_list_entry *e, int dfd, const char *name)
{
    struct qf_message msg;
    struct strbuf err = STRBUF_INIT;
    struct stat st;
    int fd;

    fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        e->error = mystrdup(strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        e->error = mystrdup("not a regular file");
        close(fd);
        return;
    }
    e->arrival = st.st_mtime;
    e->size = (unsigned long long)st.st_size;
    memset(&msg, 0, sizeof(msg));
    strbuf_reset(&err);
    if (qf_read(fd, &msg, &err) < 0) {
        e->error = mystrdup(err.len ? err.data : "malformed queue file");
        close(fd);
        strbuf_release(&err);
        return;
    }
    close(fd);
    strbuf_release(&err);
    e->arrival = msg.arrival;
    e->size = msg.content_size;
    e->sender = mystrdup(msg.sender ? msg.sender : "");
    e->rcpts = mycalloc(msg.nrcpts ? msg.nrcpts : 1, sizeof(*e->rcpts));
    for (size_t i = 0; i < msg.nrcpts; i++) {
        if (msg.rcpts[i].status != QF_RCPT_PENDING)
            continue;
        e->rcpts[e->nrcpts].address = mystrdup(msg.rcpts[i].address ? msg.rcpts[i].address : "");
        e->rcpts[e->nrcpts].status = msg.rcpts[i].status;
        e->nrcpts++;
    }
    qf_message_release(&msg);
    if (e->dir == QUEUE_DEFERRED)
        ql_read_reasons(e);
}

static int ql_compare(const void *a, const void *b)
{
    const struct queue_list_entry *x = a, *y = b;

    if (x->arrival != y->arrival)
        return x->arrival < y->arrival ? -1 : 1;
    return strcmp(x->id, y->id);
}

int queue_list_scan(struct queue_list_entry **entries_r, size_t *count_r, struct strbuf *err)
{
    struct queue_list_entry *entries = NULL;
    size_t n = 0, cap = 0;
    struct strbuf path = STRBUF_INIT;

    *entries_r = NULL;
    *count_r = 0;
    for (size_t d = 0; d < sizeof(ql_dirs) / sizeof(ql_dirs[0]); d++) {
        DIR *dir;
        struct dirent *de;
        int dfd;

        strbuf_reset(&path);
        strbuf_printf(&path, "%s/%s", queue_root(), queue_dir_name(ql_dirs[d]));
        dir = opendir(path.data);
        if (dir == NULL) {
            if (errno == ENOENT)
                continue;
            if (errno == EACCES) {
                /* e.g. maildrop/ (01733) for an ordinary user: list the rest. */
                msg_warn("%s: %s (not listed)", path.data, strerror(errno));
                continue;
            }
            if (err)
                strbuf_printf(err, "%s: %s", path.data, strerror(errno));
            strbuf_release(&path);
            queue_list_free(&entries, n);
            return -1;
        }
        dfd = dirfd(dir);
        while ((de = readdir(dir)) != NULL && n < QUEUE_LIST_MAX) {
            struct queue_list_entry *e;

            if (de->d_name[0] == '.')
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                entries = myreallocarray(entries, cap, sizeof(*entries));
            }
            e = &entries[n++];
            memset(e, 0, sizeof(*e));
            {
                size_t len = strnlen(de->d_name, sizeof(e->id) - 1);

                memcpy(e->id, de->d_name, len);
                e->id[len] = 0;
            }
            e->dir = ql_dirs[d];
            if (!queue_id_valid(de->d_name)) {
                e->error = mystrdup("file name is not a queue ID");
                continue;
            }
            ql_read_one(e, dfd, de->d_name);
        }
        closedir(dir);
    }
    strbuf_release(&path);
    if (n > 1)
        qsort(entries, n, sizeof(*entries), ql_compare);
    *entries_r = entries;
    *count_r = n;
    return 0;
}

void queue_list_free(struct queue_list_entry **entriesp, size_t count)
{
    struct queue_list_entry *entries = *entriesp;

    if (entries == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        myfree(entries[i].sender);
        for (size_t r = 0; r < entries[i].nrcpts; r++) {
            myfree(entries[i].rcpts[r].address);
            myfree(entries[i].rcpts[r].reason);
        }
        myfree(entries[i].rcpts);
        myfree(entries[i].error);
    }
    myfree(entries);
    *entriesp = NULL;
}

bool queue_list_find(const char *id, enum queue_dir *dir_r)
{
    struct strbuf path = STRBUF_INIT;
    struct stat st;
    bool found = false;

    if (!queue_id_valid(id))
        return false;
    for (size_t d = 0; d < sizeof(ql_dirs) / sizeof(ql_dirs[0]) && !found; d++) {
        queue_path(&path, ql_dirs[d], id);
        if (lstat(path.data, &st) == 0 && S_ISREG(st.st_mode)) {
            *dir_r = ql_dirs[d];
            found = true;
        }
    }
    if (!found) {
        queue_path(&path, QUEUE_CORRUPT, id);
        if (lstat(path.data, &st) == 0 && S_ISREG(st.st_mode)) {
            *dir_r = QUEUE_CORRUPT;
            found = true;
        }
    }
    strbuf_release(&path);
    return found;
}

/* ------------------------------------------------------------ text */

static void ql_printable(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c == 0x7f)
            strbuf_printf(out, "\\x%02x", c);
        else
            strbuf_putc(out, c);
    }
}

void queue_list_format_text(const struct queue_list_entry *e, size_t count, struct strbuf *out)
{
    unsigned long long total = 0;
    size_t requests = 0;

    if (count == 0) {
        strbuf_puts(out, "Mail queue is empty\n");
        return;
    }
    strbuf_printf(out, "%-22s %9s %-20s  %s\n", "-Queue ID-", "--Size--", "----Arrival Time----",
                  "-Sender/Recipient-------");
    for (size_t i = 0; i < count; i++) {
        char idcol[QUEUE_ID_MAX + 2];
        char when[64];
        struct tm tm;
        char mark = e[i].dir == QUEUE_ACTIVE ? '*' : e[i].dir == QUEUE_HOLD ? '!' : ' ';
        time_t t = e[i].arrival;

        snprintf(idcol, sizeof(idcol), "%s%c", e[i].id, mark);
        if (localtime_r(&t, &tm) == NULL ||
            strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
            snprintf(when, sizeof(when), "-");
        strbuf_printf(out, "%-22s %9llu %-20s  ", idcol, e[i].size, when);
        if (e[i].error) {
            strbuf_puts(out, "?\n");
            strbuf_printf(out, "%55s(%s: unreadable: ", "", queue_dir_name(e[i].dir));
            ql_printable(out, e[i].error);
            strbuf_puts(out, ")\n\n");
        } else {
            ql_printable(out, *e[i].sender ? e[i].sender : "MAILER-DAEMON");
            strbuf_putc(out, '\n');
            bool reasons = false;
            for (size_t r = 0; r < e[i].nrcpts; r++)
                reasons = reasons || e[i].rcpts[r].reason != NULL;
            if (e[i].dir == QUEUE_DEFERRED && !reasons)
                strbuf_printf(out, "%55s(deferred)\n", "");
            else if (e[i].dir == QUEUE_MAILDROP)
                strbuf_printf(out, "%55s(maildrop: waiting for pickup)\n", "");
            for (size_t r = 0; r < e[i].nrcpts; r++) {
                /* Like Postfix: the last deferral reason above its recipient(s). */
                const char *why = e[i].rcpts[r].reason;
                if (why != NULL && (r == 0 || e[i].rcpts[r - 1].reason == NULL ||
                                    strcmp(why, e[i].rcpts[r - 1].reason) != 0)) {
                    strbuf_printf(out, "%55s(", "");
                    ql_printable(out, why);
                    strbuf_puts(out, ")\n");
                }
                strbuf_printf(out, "%55s", "");
                ql_printable(out, e[i].rcpts[r].address);
                strbuf_putc(out, '\n');
            }
            strbuf_putc(out, '\n');
        }
        total += e[i].size;
        requests++;
    }
    strbuf_printf(out, "-- %llu Kbytes in %zu Request%s.\n", (total + 1023) / 1024, requests,
                  requests == 1 ? "" : "s");
}

/* ------------------------------------------------------------ JSON */

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t ql_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] >= 0xa0)
            return 0; /* surrogates */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0;
        if (c == 0xf4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

void queue_list_json_string(struct strbuf *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    strbuf_putc(out, '"');
    while (*s) {
        size_t n;

        switch (*s) {
        case '"':
            strbuf_puts(out, "\\\"");
            s++;
            continue;
        case '\\':
            strbuf_puts(out, "\\\\");
            s++;
            continue;
        case '\n':
            strbuf_puts(out, "\\n");
            s++;
            continue;
        case '\r':
            strbuf_puts(out, "\\r");
            s++;
            continue;
        case '\t':
            strbuf_puts(out, "\\t");
            s++;
            continue;
        default:
            break;
        }
        if (*s < 0x20 || *s == 0x7f) {
            strbuf_printf(out, "\\u%04x", *s);
            s++;
            continue;
        }
        n = ql_utf8_len(s);
        if (n == 0) {
            /* Not UTF-8: show the byte as the Latin-1 character it would be. */
            strbuf_printf(out, "\\u%04x", *s);
            s++;
            continue;
        }
        strbuf_append(out, s, n);
        s += n;
    }
    strbuf_putc(out, '"');
}

void queue_list_format_json(const struct queue_list_entry *e, size_t count, struct strbuf *out)
{
    strbuf_putc(out, '[');
    for (size_t i = 0; i < count; i++) {
        strbuf_puts(out, i ? ",\n {" : "\n {");
        strbuf_puts(out, "\"queue_id\": ");
        queue_list_json_string(out, e[i].id);
        strbuf_puts(out, ", \"queue\": ");
        queue_list_json_string(out, queue_dir_name(e[i].dir));
        strbuf_printf(out, ", \"arrival_time\": %lld, \"message_size\": %llu",
                      (long long)e[i].arrival, e[i].size);
        strbuf_puts(out, ", \"sender\": ");
        queue_list_json_string(out, e[i].sender ? e[i].sender : "");
        if (e[i].error) {
            strbuf_puts(out, ", \"error\": ");
            queue_list_json_string(out, e[i].error);
        }
        strbuf_puts(out, ", \"recipients\": [");
        for (size_t r = 0; r < e[i].nrcpts; r++) {
            strbuf_puts(out, r ? ", {\"address\": " : "{\"address\": ");
            queue_list_json_string(out, e[i].rcpts[r].address);
            strbuf_puts(out, ", \"status\": \"pending\"");
            if (e[i].rcpts[r].reason != NULL) {
                strbuf_puts(out, ", \"reason\": ");
                queue_list_json_string(out, e[i].rcpts[r].reason);
            }
            strbuf_putc(out, '}');
        }
        strbuf_puts(out, "]}");
    }
    strbuf_puts(out, count ? "\n]\n" : "]\n");
}
