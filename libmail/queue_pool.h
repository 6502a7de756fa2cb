/*
 * queue_pool - reuse of delivered queue files ($queue_directory/pool/).
 *
 * Why: creating a file allocates an inode and removing one frees it. On
 * ext4 the allocator skips inodes freed in the last minute (without a
 * journal it checks each one in the inode table, under the directory
 * lock), so a queue that creates and removes a thousand files a second
 * spends most of its create time scanning. Instead, qmgr renames a file it
 * is done with into pool/; queue_create() for incoming/
 * renames one back under a temporary name and writes the new message into
 * it. Every step is a rename, so a crash leaves either a file in pool/
 * (never read) or an ordinary temporary (dot) file in incoming/.
 *
 * A pool file is owned by mail_owner, mode 0600, and holds either nothing
 * or the old bytes of a delivered message (at most QUEUE_POOL_KEEP_BYTES;
 * larger files are truncated to zero before they enter pool/). Nothing ever
 * reads a pool file: its next writer overwrites it from offset 0 and
 * truncates what is left over before the fsync (queue_commit), so a
 * delivered 1 KiB file keeps its data block and is neither freed nor
 * allocated again (with the "discard" mount option, every freed extent is
 * a synchronous discard request to the device). Names in pool/ are the
 * queue IDs the files last had; they mean nothing. qmgr bounds the pool
 * (queue_file_reuse_limit) and removes files that sat unused for a queue
 * run (queue_pool_trim).
 *
 * Callers: queue.c (take), qmgr (put, trim).
 */
#ifndef TEGAMI_QUEUE_POOL_H
#define TEGAMI_QUEUE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "queue.h"

#define QUEUE_POOL_DIR "pool"

/* Files up to this size keep their bytes (and blocks) in pool/; larger ones are emptied. */
#define QUEUE_POOL_KEEP_BYTES (128 * 1024)
/* queue_commit pads a fully fsync'ed incoming file to a multiple of this. */
#define QUEUE_PAD_BYTES 4096

/*
 * Take a file from pool/ and rename it to dir/tmpname (which must not
 * exist). Returns an fd open read-write at offset 0, with the file's old
 * size in *size_r (stale bytes the caller overwrites; what it does not stays
 * behind the end record, see queue_commit) and its inode number in *ino_r, or -1 when the pool is
 * empty or unusable (the caller creates a new file). Remembers an empty pool for 200 ms, so an idle
 * pool costs nothing.
 */
int queue_pool_take(enum queue_dir dir, const char *tmpname, off_t *size_r, ino_t *ino_r);

/*
 * Put the file dir/id, whose open descriptor is fd, into pool/: truncate
 * it to zero if it is larger than QUEUE_POOL_KEEP_BYTES (its size is size,
 * or found with fstat when size is -1), then rename. 0,
 * or -1 with errno (the file is left in dir/, possibly empty). The caller
 * must not use fd for anything but close().
 */
int queue_pool_put(enum queue_dir dir, const char *id, int fd, off_t size);

/*
 * Remove pool files beyond keep, and those not changed for max_idle
 * seconds (0: keep them). Returns the number of files left.
 */
size_t queue_pool_trim(size_t keep, time_t max_idle);

/*
 * Taking a file from pool/ is a rename whose removal from pool/ is never
 * fsync'ed; after a crash of the machine the file can be linked both in
 * pool/ and under its queue ID (fsck may even count both links), and the
 * next writer would overwrite a queued message. Run before any process
 * takes from the pool (master at start): removes every pool/ entry whose
 * inode is also linked in a queue directory. Returns how many.
 */
size_t queue_pool_recover(void);

#endif
