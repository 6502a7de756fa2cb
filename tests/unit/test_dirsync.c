/* Unit tests for libmail/dirsync.c: group commit of directory fsyncs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "dirsync.h"
#include "strbuf.h"

#define PROCS 8
#define RENAMES 200
#define MAX_FSYNCS (PROCS * RENAMES + 64)

/*
 * Shared with the forked children: a global event clock, and for each real
 * fsync and each call the clock values around it. The clock is read before
 * a fsync starts and after it ends, after a rename completes and after the
 * call returns, so the check below is conservative.
 */
struct fsync_rec {
    uint64_t start, end;
};
struct call_rec {
    uint64_t renamed, returned;
    int rc;
};
struct shared {
    _Atomic uint64_t clock;
    _Atomic uint64_t nfsync;
    _Atomic int fail; /* the hook fails with EIO */
    unsigned sleep_us;
    struct fsync_rec fsyncs[MAX_FSYNCS];
    struct call_rec calls[PROCS * RENAMES];
};

static struct shared *sh;
static char root[256];
static char map_path[300];

static int counting_fsync(int fd)
{
    uint64_t i = atomic_fetch_add(&sh->nfsync, 1);
    uint64_t start = atomic_fetch_add(&sh->clock, 1) + 1;
    if (atomic_load(&sh->fail)) {
        errno = EIO;
        return -1;
    }
    int rc = fsync(fd);
    if (sh->sleep_us)
        usleep(sh->sleep_us); /* a disk cache flush takes time: let callers pile up */
    uint64_t end = atomic_fetch_add(&sh->clock, 1) + 1;
    if (i < MAX_FSYNCS) {
        sh->fsyncs[i].start = start;
        sh->fsyncs[i].end = end;
    }
    return rc;
}

static int setup(void **state)
{
    (void)state;
    if (test_scratch_dir(root, sizeof(root), "dirsyncXXXXX") < 0)
        return -1;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return -1;
    snprintf(map_path, sizeof(map_path), "%s/dirsync", root);
    dirsync_set_path(map_path);
    dirsync_reset();
    dirsync_fsync_hook = counting_fsync;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dirsync_fsync_hook = fsync;
    dirsync_set_path(NULL);
    dirsync_reset();
    config_reset();
    munmap(sh, sizeof(*sh));
    return test_remove_tree(root) == 0 ? 0 : -1;
}

static int open_dir(const char *name)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    mkdir(path, 0700);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* With an unusable map: every call still fsyncs itself and succeeds. */
static void expect_plain_fsyncs(int dfd)
{
    dirsync_reset();
    atomic_store(&sh->nfsync, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(dirsync_after_rename(dfd), 0);
    assert_int_equal(atomic_load(&sh->nfsync), 3);
    struct dirsync_stats st;
    assert_int_equal(dirsync_stats(&st), -1);
}

static void write_file(const char *path, mode_t mode, int byte, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    char buf[4096];
    memset(buf, byte, sizeof(buf));
    for (size_t done = 0; done < size;) {
        size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        done += n;
    }
    close(fd);
}

static void test_unusable_map_falls_back_to_fsync(void **state)
{
    (void)state;
    int dfd = open_dir("d");
    char path[400];

    /* The map's directory does not exist. */
    snprintf(path, sizeof(path), "%s/missing/dirsync", root);
    dirsync_set_path(path);
    expect_plain_fsyncs(dfd);

    /* A symlink (O_NOFOLLOW), even to a good map. */
    snprintf(path, sizeof(path), "%s/good", root);
    assert_int_equal(dirsync_create(root), -1); /* root/pid does not exist */
    write_file(path, 0600, 0, DIRSYNC_MAP_SIZE);
    snprintf(path, sizeof(path), "%s/link", root);
    assert_int_equal(symlink("good", path), 0);
    dirsync_set_path(path);
    expect_plain_fsyncs(dfd);

    /* Wrong size. */
    snprintf(path, sizeof(path), "%s/short", root);
    write_file(path, 0600, 0, 100);
    dirsync_set_path(path);
    expect_plain_fsyncs(dfd);

    /* Not our magic number. */
    snprintf(path, sizeof(path), "%s/garbage", root);
    write_file(path, 0600, 0xff, DIRSYNC_MAP_SIZE);
    dirsync_set_path(path);
    expect_plain_fsyncs(dfd);

    /* Readable or writable by others. */
    snprintf(path, sizeof(path), "%s/open", root);
    write_file(path, 0644, 0, DIRSYNC_MAP_SIZE);
    dirsync_set_path(path);
    expect_plain_fsyncs(dfd);

    /* A directory as the map. */
    snprintf(path, sizeof(path), "%s/d", root);
    dirsync_set_path(path);
    expect_plain_fsyncs(dfd);

    /* Group commit switched off: a good map is not even opened. */
    dirsync_set_path(map_path);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(config_override("dirsync_group_commit", "no", &err), 0);
    strbuf_release(&err);
    expect_plain_fsyncs(dfd);
    config_reset();
    close(dfd);
}

static void test_failed_fsync_is_reported_and_never_counts_as_durable(void **state)
{
    (void)state;
    int dfd = open_dir("d");
    dirsync_reset();
    atomic_store(&sh->fail, 1);
    errno = 0;
    assert_int_equal(dirsync_after_rename(dfd), -1);
    assert_int_equal(errno, EIO);
    atomic_store(&sh->fail, 0);
    /* The next caller must fsync again: the failed one advanced nothing. */
    atomic_store(&sh->nfsync, 0);
    assert_int_equal(dirsync_after_rename(dfd), 0);
    assert_int_equal(atomic_load(&sh->nfsync), 1);
    close(dfd);
}

static void test_single_process_every_call_succeeds_and_fsyncs(void **state)
{
    (void)state;
    int dfd = open_dir("d");
    int dfd2 = open_dir("e");
    dirsync_reset();
    atomic_store(&sh->nfsync, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(dirsync_after_rename(dfd), 0);
        assert_int_equal(dirsync_after_rename(dfd2), 0);
    }
    /* Alone, each rename needs its own fsync: none is skipped. */
    assert_int_equal(atomic_load(&sh->nfsync), 20);
    struct dirsync_stats st;
    assert_int_equal(dirsync_stats(&st), 0);
    assert_int_equal(st.calls, 20);
    assert_int_equal(st.fsyncs, 20);
    /* A regular file is not a directory: plain fsync, outside the map. */
    int fd = open(map_path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(dirsync_after_rename(fd), 0);
    assert_int_equal(dirsync_stats(&st), 0);
    assert_int_equal(st.calls, 20);
    close(fd);
    close(dfd);
    close(dfd2);
}

/*
 * The invariant, checked on the records: every call that returned 0 has a
 * fsync that started after its rename completed and ended before it
 * returned. Returns the number of calls without one.
 */
static size_t uncovered_calls(const struct call_rec *calls, size_t ncalls,
                              const struct fsync_rec *fs, size_t nfs)
{
    size_t bad = 0;
    for (size_t c = 0; c < ncalls; c++) {
        if (calls[c].rc != 0)
            continue;
        bool ok = false;
        for (size_t f = 0; f < nfs && !ok; f++)
            ok = fs[f].start > calls[c].renamed && fs[f].end < calls[c].returned;
        bad += !ok;
    }
    return bad;
}

static void test_coverage_check_catches_an_early_return(void **state)
{
    (void)state;
    /* The checker itself: a call that returned before any fsync ended is caught. */
    struct fsync_rec fs[] = {{5, 9}};
    struct call_rec good[] = {{4, 10, 0}};
    struct call_rec early[] = {{4, 8, 0}};
    struct call_rec stale[] = {{6, 10, 0}}; /* fsync started before the rename */
    assert_int_equal(uncovered_calls(good, 1, fs, 1), 0);
    assert_int_equal(uncovered_calls(early, 1, fs, 1), 1);
    assert_int_equal(uncovered_calls(stale, 1, fs, 1), 1);
}

static void child(int p, int dfd)
{
    char from[400], to[400];
    for (int i = 0; i < RENAMES; i++) {
        snprintf(from, sizeof(from), "%s/d/t%d.%d", root, p, i);
        snprintf(to, sizeof(to), "%s/d/m%d.%d", root, p, i);
        int fd = open(from, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || close(fd) < 0 || rename(from, to) < 0)
            _exit(2);
        struct call_rec *rec = &sh->calls[p * RENAMES + i];
        rec->renamed = atomic_fetch_add(&sh->clock, 1) + 1;
        rec->rc = dirsync_after_rename(dfd);
        rec->returned = atomic_fetch_add(&sh->clock, 1) + 1;
        if (rec->rc != 0)
            _exit(3);
    }
    _exit(0);
}

static void test_many_processes_share_fsyncs_and_every_rename_is_covered(void **state)
{
    (void)state;
    int dfd = open_dir("d");
    dirsync_reset();
    atomic_store(&sh->nfsync, 0);
    atomic_store(&sh->clock, 0);
    sh->sleep_us = 2000;
    /* Map it here once: the children inherit it, as daemons forked after a first use would. */
    assert_int_equal(dirsync_after_rename(dfd), 0);
    struct dirsync_stats before;
    assert_int_equal(dirsync_stats(&before), 0);
    atomic_store(&sh->nfsync, 0);

    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            /* Half of them map it on their own, as re-executed daemons do. */
            if (p % 2)
                dirsync_reset();
            child(p, dfd);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    sh->sleep_us = 0;
    size_t nfs = atomic_load(&sh->nfsync);
    size_t ncalls = PROCS * RENAMES;
    print_message("dirsync: %zu calls, %zu fsyncs\n", ncalls, nfs);
    assert_true(nfs <= MAX_FSYNCS);
    assert_true(nfs < ncalls);
    assert_int_equal(uncovered_calls(sh->calls, ncalls, sh->fsyncs, nfs), 0);
    struct dirsync_stats after;
    assert_int_equal(dirsync_stats(&after), 0);
    assert_int_equal(after.calls - before.calls, ncalls);
    assert_int_equal(after.fsyncs - before.fsyncs, nfs);
    close(dfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unusable_map_falls_back_to_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_fsync_is_reported_and_never_counts_as_durable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_process_every_call_succeeds_and_fsyncs, setup,
                                        teardown),
        cmocka_unit_test(test_coverage_check_catches_an_early_return),
        cmocka_unit_test_setup_teardown(
            test_many_processes_share_fsyncs_and_every_rename_is_covered, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
