/*
 * dirsync - group commit of directory fsyncs across processes.
 *
 * A rename into a directory is durable only once that directory has been
 * fsync'ed, and one fsync of a directory that *starts* after a rename has
 * completed makes that rename durable. Many processes (smtpd into
 * incoming/, local into one Maildir's new/) rename into the same directory
 * and each fsyncs it; on a disk where every fsync is a cache flush most of
 * those fsyncs are redundant. dirsync shares, through a small file mapped
 * by every process ($queue_directory/pid/dirsync), one slot per directory
 * (keyed by st_dev/st_ino) with two counters: renames completed, and the
 * highest of those known durable. A caller whose rename is already covered
 * by a finished fsync returns at once; otherwise one caller fsyncs for all
 * the renames completed so far while the others wait for it.
 *
 * Callers: queue_commit (libmail/queue.c) and maildir_deliver
 * (libmail/maildir.c), right after their rename. Whenever the map cannot be
 * used (missing, wrong owner/size, full, a race on a slot's key, the
 * parameter dirsync_group_commit = no) the caller's directory is fsync'ed
 * as before: correctness never depends on the map.
 */
#ifndef TEGAMI_DIRSYNC_H
#define TEGAMI_DIRSYNC_H

#include <stdint.h>
#include <sys/stat.h>

/* Size of the map file; it holds a header and (size / 64 - 1) slots. */
#define DIRSYNC_MAP_SIZE 65536

/*
 * Call right AFTER a rename into the directory open as dirfd completed.
 * Returns 0 once a fsync of that directory that started after the call
 * began has completed (by this process or another), -1 with errno if the
 * fsync this process ran failed (the rename is then not known durable).
 */
int dirsync_after_rename(int dirfd);
/* The same, for a caller that keeps dirfd open and knows its fstat(). */
int dirsync_after_rename_st(int dirfd, const struct stat *st);

/*
 * Create the map file (mode 0600, DIRSYNC_MAP_SIZE bytes) under
 * queue_dir/pid if it is missing; master calls it before chowning it to
 * mail_owner. 0, or -1 with errno.
 */
int dirsync_create(const char *queue_dir);

/* Map counters (for tests and the benchmark): calls and real fsyncs. */
struct dirsync_stats {
    uint64_t calls;
    uint64_t fsyncs;
};
/* 0 and the counters of the map in use, -1 if this process has no map. */
int dirsync_stats(struct dirsync_stats *stats_r);

/* Test hooks: the fsync used (default fsync(2)), and the map path (NULL: the default). */
extern int (*dirsync_fsync_hook)(int fd);
void dirsync_set_path(const char *path);
/* Forget the map and the cached parameter (tests; after dirsync_set_path). */
void dirsync_reset(void);

#endif
