/*
 * queue - queue IDs, queue directories and atomic moves between them.
 *
 * A queue ID is unique per host and sorts by arrival: base-32 text made from
 * the arrival time in microseconds and the file's inode, e.g. "4XB7K2Q9M0A3C".
 * Characters are [0-9A-V]; length is QUEUE_ID_MIN..QUEUE_ID_MAX-1.
 *
 * A file is created under a hidden temporary name (".t<random>") in the
 * target directory, written, then queue_commit() fsyncs it, renames it to its
 * queue ID and fsyncs the directory: after queue_commit returns 0 the file
 * survives a crash. Every later move is one rename(2). Readers ignore names
 * starting with '.'; qmgr removes stale ones.
 *
 * The queue root is config_str("queue_directory") unless queue_set_root()
 * was called (tests).
 */
#ifndef TEGAMI_QUEUE_H
#define TEGAMI_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

#define QUEUE_ID_MIN 8
#define QUEUE_ID_MAX 24 /* buffer size including the NUL */

enum queue_dir {
    QUEUE_MAILDROP,
    QUEUE_INCOMING,
    QUEUE_ACTIVE,
    QUEUE_DEFERRED,
    QUEUE_HOLD,
    QUEUE_CORRUPT,
    QUEUE_DIR_COUNT
};

/* "maildrop", "incoming", ... */
const char *queue_dir_name(enum queue_dir dir);
/* Parse a directory name; false if unknown. */
bool queue_dir_parse(const char *name, enum queue_dir *dir_r);

void queue_set_root(const char *path);
const char *queue_root(void);
/* $root/<dir>/<id> into out (reset first). */
void queue_path(struct strbuf *out, enum queue_dir dir, const char *id);

/* True if id has the queue ID syntax (never contains '/' or starts with '.'). */
bool queue_id_valid(const char *id);
/* Arrival time (seconds) encoded in a queue ID, or -1 when invalid. */
long long queue_id_time(const char *id);

/*
 * Create all queue directories (and private/, public/, pid/) under root with
 * the right modes. maildrop is 01733 unless sandbox (0700). 0 or -1 with err.
 */
int queue_make_dirs(const char *root, bool sandbox, struct strbuf *err);

/* An open, not yet committed queue file. */
struct queue_new {
    int fd;
    off_t stale_size; /* a reused file's old size (its tail stays behind the end record) */
    enum queue_dir dir;
    char id[QUEUE_ID_MAX];
    char tmpname[64];
};

/* Create a new file in dir under a temporary name and assign its queue ID. */
int queue_create(enum queue_dir dir, struct queue_new *qn, struct strbuf *err);
/* fsync the file, rename it to its ID, fsync the directory; closes fd. 0 or -1. */
int queue_commit(struct queue_new *qn, struct strbuf *err);
/* Remove the temporary file and close fd (abandon a message). */
void queue_abort(struct queue_new *qn);

/* rename dir/id → to/id. 0, or -1 with errno set. */
int queue_move(const char *id, enum queue_dir from, enum queue_dir to);
/* unlink dir/id. 0, or -1 with errno set. */
int queue_remove(enum queue_dir dir, const char *id);
/* Open dir/id (O_RDWR when writable). fd or -1 with errno. */
int queue_open(enum queue_dir dir, const char *id, bool writable);

/*
 * Wake a daemon through its fifo $root/public/<service> ("qmgr", "pickup").
 * Writes text (e.g. "I<queueid>\n" or "F\n") in one non-blocking write; a
 * missing reader is not an error (the daemon scans its queue on start).
 */
void queue_notify(const char *service, const char *text);

/* Wake-up fifo messages understood by qmgr. */
#define QMGR_REQ_INCOMING 'I' /* "I<queueid>\n": a new file is in incoming/ */
#define QMGR_REQ_SCAN 'S'     /* "S\n": scan incoming/ */
#define QMGR_REQ_FLUSH 'F'    /* "F\n": retry all deferred mail now */

#endif
