/*
 * queue_list - read the queue for people: `mailq` and `mailctl queue`.
 *
 * queue_list_scan() reads every file in maildrop/, incoming/, active/,
 * deferred/ and hold/ (names starting with '.' are skipped) and returns one
 * entry per message, oldest first. A file that cannot be parsed still gets
 * an entry, with error set, so an administrator sees it. Nothing here
 * changes the queue. The caller owns the returned array
 * (queue_list_free).
 */
#ifndef TEGAMI_QUEUE_LIST_H
#define TEGAMI_QUEUE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue.h"
#include "strbuf.h"

struct queue_list_rcpt {
    char *address;
    char status;  /* QF_RCPT_PENDING or QF_RCPT_DONE */
    char *reason; /* deferred/: qmgr's last deferral reason ("4.4.1 text"), or NULL */
};

struct queue_list_entry {
    char id[QUEUE_ID_MAX];
    enum queue_dir dir;
    time_t arrival;                /* from the file, else the file's mtime */
    unsigned long long size;       /* message content size (file size if unparsable) */
    char *sender;                  /* "" for the null sender; NULL if unparsable */
    struct queue_list_rcpt *rcpts; /* pending recipients only */
    size_t nrcpts;
    char *error; /* why the file could not be read, or NULL */
};

/* Upper bound of messages listed (a runaway queue must not exhaust memory). */
#define QUEUE_LIST_MAX 1000000

/* Scan the queue. 0, or -1 with err (queue directory unreadable). */
int queue_list_scan(struct queue_list_entry **entries_r, size_t *count_r, struct strbuf *err);
void queue_list_free(struct queue_list_entry **entriesp, size_t count);

/* Postfix mailq-style text ("Mail queue is empty" when count is 0). */
void queue_list_format_text(const struct queue_list_entry *e, size_t count, struct strbuf *out);
/*
 * JSON: an array of {queue_id, queue, arrival_time, message_size, sender,
 * recipients: [{address, status, reason}]} (status "pending"; reason, qmgr's last
 * deferral reason, only when known), "[]" when empty.
 */
void queue_list_format_json(const struct queue_list_entry *e, size_t count, struct strbuf *out);

/* Append s as a JSON string literal (quotes included; invalid UTF-8 escaped). */
void queue_list_json_string(struct strbuf *out, const char *s);

/* Find which directory holds id. true with *dir_r set, false if in none. */
bool queue_list_find(const char *id, enum queue_dir *dir_r);

#endif
