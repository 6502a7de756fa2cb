/* Unit tests for libmail/queue_pool.c: reuse of delivered queue files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirsync.h"
#include "queue.h"
#include "queue_pool.h"
#include "strbuf.h"

static char root[256];

static int setup(void **state)
{
    (void)state;
    if (test_scratch_dir(root, sizeof(root), "qpoolXXXXX") < 0)
        return -1;
    queue_set_root(root);
    struct strbuf err = STRBUF_INIT;
    int rc = queue_make_dirs(root, false, &err);
    strbuf_release(&err);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(root) == 0 ? 0 : -1;
}

/* Commit a message with the given bytes into incoming/; returns its ID in qn. */
static void commit_msg(struct queue_new *qn, const char *text)
{
    assert_int_equal(queue_create(QUEUE_INCOMING, qn, NULL), 0);
    assert_int_equal(write(qn->fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(queue_commit(qn, NULL), 0);
}

/* Put the incoming file id (open as fd) into pool/, and wait out the 200 ms
 * for which a create remembers the pool as empty. */
static void put_and_wait(const char *id, int fd)
{
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, id, fd, -1), 0);
    close(fd);
    usleep(250 * 1000);
}

static void test_pool_take_reuses_the_inode_and_commit_keeps_its_size(void **state)
{
    (void)state;
    struct queue_new a, b, c, d;
    struct stat st, st2;
    char buf[64];

    /* A fully fsync'ed file is padded with zeros to a whole 4 KiB. */
    commit_msg(&a, "first message, delivered");
    int fd = queue_open(QUEUE_INCOMING, a.id, true);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, QUEUE_PAD_BYTES);
    assert_int_equal(pread(fd, buf, 26, 0), 26);
    assert_memory_equal(buf, "first message, delivered\0\0", 26);
    put_and_wait(a.id, fd);
    assert_true(queue_open(QUEUE_INCOMING, a.id, false) < 0);

    /* The next new file is the same inode under a new ID. The shorter
     * message is written over the old one, whose tail stays: the size and
     * the blocks do not change, so the inode need not be written again. */
    commit_msg(&b, "second");
    fd = queue_open(QUEUE_INCOMING, b.id, true);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st2.st_size, QUEUE_PAD_BYTES);
    assert_int_equal(pread(fd, buf, 24, 0), 24);
    assert_memory_equal(buf, "secondmessage, delivered", 24);
    assert_string_not_equal(a.id, b.id);

    /* One a little longer than the first still fits (that is the pad's
     * purpose): same inode, same size. */
    put_and_wait(b.id, fd);
    const char *third = "third message, a bit longer than the first";
    commit_msg(&c, third);
    fd = queue_open(QUEUE_INCOMING, c.id, true);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st2.st_size, QUEUE_PAD_BYTES);

    /* One longer than the file grows it (full fsync), padded again. */
    put_and_wait(c.id, fd);
    static char fourth[QUEUE_PAD_BYTES + 100];
    memset(fourth, 'y', sizeof(fourth) - 1);
    commit_msg(&d, fourth);
    fd = queue_open(QUEUE_INCOMING, d.id, false);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st2), 0);
    close(fd);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st2.st_size, 2 * QUEUE_PAD_BYTES);
    assert_int_equal(queue_pool_trim(100, 0), 0);
}

static void test_pool_take_on_empty_pool_returns_minus_one(void **state)
{
    (void)state;
    off_t size = -1;
    ino_t ino = 0;
    assert_int_equal(queue_pool_take(QUEUE_INCOMING, ".tnothing", &size, &ino), -1);
}

/* Count the bytes of the only file in pool/ (-1: none or several). */
static off_t pool_file_size(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, QUEUE_POOL_DIR);
    DIR *d = opendir(path);
    struct dirent *de;
    off_t size = -1;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        assert_int_equal(fstatat(dirfd(d), de->d_name, &st, 0), 0);
        size = st.st_size;
        n++;
    }
    closedir(d);
    return n == 1 ? size : -1;
}

static void test_pool_put_keeps_a_small_file_and_empties_a_large_one(void **state)
{
    (void)state;
    struct queue_new a, b;
    static char big[QUEUE_POOL_KEEP_BYTES + 2];

    /* Small: its block stays (no free, no discard); the bytes are stale, never read. */
    commit_msg(&a, "small message");
    int fd = queue_open(QUEUE_INCOMING, a.id, true);
    assert_true(fd >= 0);
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, a.id, fd, -1), 0);
    close(fd);
    assert_int_equal(pool_file_size(), QUEUE_PAD_BYTES); /* 13 bytes, padded */
    assert_int_equal(queue_pool_trim(0, 0), 0);

    /* Large: emptied before it enters pool/, so the pool's disk use stays bounded. */
    memset(big, 'x', sizeof(big) - 1);
    commit_msg(&b, big);
    fd = queue_open(QUEUE_INCOMING, b.id, true);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_size > QUEUE_POOL_KEEP_BYTES);
    /* The caller's size (qmgr's, from its open) decides, without another fstat. */
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, b.id, fd, st.st_size), 0);
    close(fd);
    assert_int_equal(pool_file_size(), 0);

    /* take reports a kept file's stale size to its next writer. */
    commit_msg(&a, "small message");
    fd = queue_open(QUEUE_INCOMING, a.id, true);
    assert_int_equal(queue_pool_trim(0, 0), 0);
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, a.id, fd, -1), 0);
    close(fd);
    usleep(250 * 1000); /* past the 200 ms for which an empty pool is remembered */
    off_t stale = -1;
    ino_t ino = 0;
    fd = queue_pool_take(QUEUE_INCOMING, ".tstale", &stale, &ino);
    assert_true(fd >= 0);
    assert_int_equal(stale, QUEUE_PAD_BYTES); /* 13 bytes, padded */
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(ino == st.st_ino); /* the id is made from it without another fstat */
    close(fd);
}

static int dir_fsync_errno;
static int failing_dir_fsync(int fd)
{
    (void)fd;
    errno = dir_fsync_errno;
    return -1;
}

/*
 * A reused file committed in place relies on the directory fsync's cache
 * flush. Where a directory cannot be fsync'ed (EINVAL) the commit still
 * succeeds (the file gets its own fsync); a failing one (EIO) takes the
 * message back.
 */
static void test_commit_in_place_without_a_directory_fsync(void **state)
{
    (void)state;
    struct queue_new a, b, c;
    commit_msg(&a, "a message of some length");
    int fd = queue_open(QUEUE_INCOMING, a.id, true);
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, a.id, fd, -1), 0);
    close(fd);
    usleep(250 * 1000);
    dirsync_fsync_hook = failing_dir_fsync;
    dir_fsync_errno = EINVAL;
    commit_msg(&b, "shorter");
    fd = queue_open(QUEUE_INCOMING, b.id, true);
    assert_true(fd >= 0);
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, b.id, fd, -1), 0);
    close(fd);
    usleep(250 * 1000);
    dir_fsync_errno = EIO;
    assert_int_equal(queue_create(QUEUE_INCOMING, &c, NULL), 0);
    assert_int_equal(write(c.fd, "short", 5), 5);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(queue_commit(&c, &err), -1);
    assert_non_null(strstr(err.data, "fsync"));
    assert_true(queue_open(QUEUE_INCOMING, c.id, false) < 0);
    strbuf_release(&err);
    dirsync_fsync_hook = fsync;
}

/* After a crash, a pool file also linked as a queued message is dropped from pool/ only. */
static void test_pool_recover_drops_entries_linked_elsewhere(void **state)
{
    (void)state;
    struct queue_new a, b, c;
    char pool_b[4096], pool_c[4096], in_a[4096];
    struct stat st;

    commit_msg(&a, "queued message");
    commit_msg(&b, "b");
    commit_msg(&c, "c");
    int fd = queue_open(QUEUE_INCOMING, b.id, true);
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, b.id, fd, -1), 0);
    close(fd);
    fd = queue_open(QUEUE_INCOMING, c.id, true);
    assert_int_equal(queue_pool_put(QUEUE_INCOMING, c.id, fd, -1), 0);
    close(fd);
    snprintf(pool_b, sizeof(pool_b), "%s/pool/%s", root, b.id);
    snprintf(pool_c, sizeof(pool_c), "%s/pool/%s", root, c.id);
    snprintf(in_a, sizeof(in_a), "%s/incoming/%s", root, a.id);
    /* What a lost pool/ update leaves: pool/B is the inode of incoming/A. */
    assert_int_equal(unlink(pool_b), 0);
    assert_int_equal(link(in_a, pool_b), 0);

    assert_int_equal(queue_pool_recover(), 1);
    assert_true(stat(pool_b, &st) < 0 && errno == ENOENT);
    assert_int_equal(stat(in_a, &st), 0);
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(st.st_size, QUEUE_PAD_BYTES);
    assert_int_equal(stat(pool_c, &st), 0); /* an ordinary pool file stays */
    assert_int_equal(queue_pool_recover(), 0);
    assert_int_equal(queue_pool_trim(0, 0), 0);
    assert_int_equal(queue_remove(QUEUE_INCOMING, a.id), 0);
}

static void test_pool_trim_keeps_at_most_keep(void **state)
{
    (void)state;
    struct queue_new q[5];
    for (int i = 0; i < 5; i++)
        commit_msg(&q[i], "x");
    for (int i = 0; i < 5; i++) {
        int fd = queue_open(QUEUE_INCOMING, q[i].id, true);
        assert_true(fd >= 0);
        assert_int_equal(queue_pool_put(QUEUE_INCOMING, q[i].id, fd, -1), 0);
        close(fd);
    }
    assert_int_equal(queue_pool_trim(3, 0), 3);
    assert_int_equal(queue_pool_trim(0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Before the empty-pool test: an empty pool is not looked at again for 200 ms. */
        cmocka_unit_test_setup_teardown(test_pool_take_reuses_the_inode_and_commit_keeps_its_size,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_put_keeps_a_small_file_and_empties_a_large_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_in_place_without_a_directory_fsync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_recover_drops_entries_linked_elsewhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_trim_keeps_at_most_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_take_on_empty_pool_returns_minus_one, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
