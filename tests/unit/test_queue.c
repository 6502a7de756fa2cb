/* Unit tests for libmail/queue.c: queue IDs, directories, atomic commit, wake-ups. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

static char root[256];

static int setup(void **state)
{
    (void)state;
    if (test_scratch_dir(root, sizeof(root), "queueXXXXX") < 0)
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

static int count_entries(const char *dir)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", root, dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_id_valid_rejects_bad_ids(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "ABC",
        "1234567",
        "../../etc/passwd",
        ".t1234567890",
        "ABCDEFGHIJKLW",
        "abcdefghijkl",
        "0123456789ABCDEFGHIJKLMN",
        "12345678 ",
        "1234/5678",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (queue_id_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(queue_id_time(bad[i]), -1);
    }
    assert_false(queue_id_valid(NULL));
    assert_true(queue_id_valid("0123456789ABCDEFGHIJKLM"));
}

static void test_dir_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < QUEUE_DIR_COUNT; i++) {
        enum queue_dir d;
        assert_true(queue_dir_parse(queue_dir_name((enum queue_dir)i), &d));
        assert_int_equal(d, i);
    }
    enum queue_dir d;
    assert_false(queue_dir_parse("private", &d));
    assert_false(queue_dir_parse("", &d));
}

static void test_make_dirs_sets_modes(void **state)
{
    (void)state;
    struct stat st;
    char path[400];
    snprintf(path, sizeof(path), "%s/maildrop", root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 01733);
    snprintf(path, sizeof(path), "%s/incoming", root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/private", root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/pid", root);
    assert_int_equal(stat(path, &st), 0);
    /* idempotent; sandbox mode tightens maildrop */
    assert_int_equal(queue_make_dirs(root, true, NULL), 0);
    snprintf(path, sizeof(path), "%s/maildrop", root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(queue_make_dirs(root, false, NULL), 0);
}

static void test_create_commit_ids_are_unique_sorted_and_timed(void **state)
{
    (void)state;
    char prev[QUEUE_ID_MAX] = "";
    long long now = (long long)time(NULL);
    for (int i = 0; i < 50; i++) {
        struct queue_new qn;
        struct strbuf err = STRBUF_INIT;
        assert_int_equal(queue_create(QUEUE_INCOMING, &qn, &err), 0);
        assert_true(qn.tmpname[0] == '.');
        assert_true(queue_id_valid(qn.id));
        struct stat st;
        assert_int_equal(fstat(qn.fd, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(write(qn.fd, "x", 1), 1);
        assert_int_equal(queue_commit(&qn, &err), 0);
        assert_int_equal(qn.fd, -1);
        assert_true(strcmp(prev, qn.id) < 0);
        snprintf(prev, sizeof(prev), "%s", qn.id);
        long long t = queue_id_time(qn.id);
        assert_true(t >= now - 1 && t <= now + 2);
        strbuf_release(&err);
    }
    assert_int_equal(count_entries("incoming"), 50);
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    int before = count_entries("hold");
    struct queue_new qn;
    assert_int_equal(queue_create(QUEUE_HOLD, &qn, NULL), 0);
    assert_int_equal(count_entries("hold"), before + 1);
    queue_abort(&qn);
    queue_abort(&qn); /* harmless twice */
    assert_int_equal(count_entries("hold"), before);
}

/* A fork()ed child must not repeat its parent's temporary names. */
static void test_temporary_names_differ_after_fork(void **state)
{
    (void)state;
    struct queue_new a, b;
    int p[2];
    char child_name[sizeof(a.tmpname)] = "";
    assert_int_equal(queue_create(QUEUE_HOLD, &a, NULL), 0); /* the generator is seeded now */
    queue_abort(&a);
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = queue_create(QUEUE_HOLD, &b, NULL) == 0;
        if (ok) {
            ok = write(p[1], b.tmpname, sizeof(b.tmpname)) == (ssize_t)sizeof(b.tmpname);
            queue_abort(&b);
        }
        _exit(ok ? 0 : 1);
    }
    close(p[1]);
    assert_int_equal(read(p[0], child_name, sizeof(child_name)), (ssize_t)sizeof(child_name));
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(queue_create(QUEUE_HOLD, &b, NULL), 0);
    assert_string_not_equal(b.tmpname, child_name);
    queue_abort(&b);
}

static void test_move_open_remove(void **state)
{
    (void)state;
    struct queue_new qn;
    assert_int_equal(queue_create(QUEUE_INCOMING, &qn, NULL), 0);
    assert_int_equal(write(qn.fd, "hello", 5), 5);
    assert_int_equal(queue_commit(&qn, NULL), 0);
    assert_int_equal(queue_move(qn.id, QUEUE_INCOMING, QUEUE_ACTIVE), 0);
    assert_int_equal(queue_open(QUEUE_INCOMING, qn.id, false), -1);
    int fd = queue_open(QUEUE_ACTIVE, qn.id, true);
    assert_true(fd >= 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "hello\0\0\0", 8); /* padded with zeros */
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 4096);
    close(fd);
    assert_int_equal(queue_move("../x", QUEUE_ACTIVE, QUEUE_DEFERRED), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(queue_remove(QUEUE_ACTIVE, qn.id), 0);
    assert_int_equal(queue_remove(QUEUE_ACTIVE, qn.id), -1);
    assert_int_equal(errno, ENOENT);
    struct strbuf p = STRBUF_INIT;
    queue_path(&p, QUEUE_DEFERRED, "ABC");
    assert_true(strstr(p.data, "/deferred/ABC") != NULL);
    strbuf_release(&p);
}

static void test_notify_without_fifo_or_reader_is_quiet(void **state)
{
    (void)state;
    queue_notify("nosuch", "I123\n"); /* ENOENT */
    char path[400];
    snprintf(path, sizeof(path), "%s/public/qmgr", root);
    assert_int_equal(mkfifo(path, 0622), 0);
    queue_notify("qmgr", "S\n"); /* ENXIO: no reader */
}

static void test_notify_delivers_and_survives_reader_restart(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof(path), "%s/public/pickup", root);
    assert_int_equal(mkfifo(path, 0622), 0);
    int r = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(r >= 0);
    queue_notify("pickup", "W\n");
    queue_notify("pickup", "W\n");
    char buf[16];
    assert_int_equal(read(r, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "W\nW\n", 4);
    close(r); /* reader gone: the cached fd now gives EPIPE, never SIGPIPE death */
    queue_notify("pickup", "W\n");
    r = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(r >= 0);
    queue_notify("pickup", "F\n");
    assert_int_equal(read(r, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "F\n", 2);
    /* re-created fifo: the name is followed */
    close(r);
    unlink(path);
    assert_int_equal(mkfifo(path, 0622), 0);
    r = open(path, O_RDONLY | O_NONBLOCK);
    queue_notify("pickup", "S\n");
    assert_int_equal(read(r, buf, sizeof(buf)), 2);
    close(r);
    sigset_t pending;
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid_rejects_bad_ids),
        cmocka_unit_test(test_dir_names_round_trip),
        cmocka_unit_test(test_make_dirs_sets_modes),
        cmocka_unit_test(test_temporary_names_differ_after_fork),
        cmocka_unit_test(test_create_commit_ids_are_unique_sorted_and_timed),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_move_open_remove),
        cmocka_unit_test(test_notify_without_fifo_or_reader_is_quiet),
        cmocka_unit_test(test_notify_delivers_and_survives_reader_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
