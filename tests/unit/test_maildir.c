/* Unit tests for libmail/maildir: delivery, listing, new -> cur, locking. */
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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir.h"
#include "mymalloc.h"

static char tmpdir[4096];
static char md[4200];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_scratch_dir(tmpdir, sizeof(tmpdir), "test_maildir"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

/* A fresh Maildir path (not created) per test. */
static int fresh(void **state)
{
    static int n;
    (void)state;
    snprintf(md, sizeof(md), "%s/u%d/Maildir", tmpdir, ++n);
    return 0;
}

/* A source file holding text, as a queue file would. */
static int source_fd(const char *text, size_t len)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/src.XXXXXX", tmpdir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    return fd;
}

static size_t count_entries(const char *sub)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", md, sub);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static char *read_all(const char *rel, size_t *len_r)
{
    char path[4500];
    snprintf(path, sizeof(path), "%s/%s", md, rel);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = mymalloc((size_t)st.st_size + 1);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    buf[st.st_size] = 0;
    *len_r = (size_t)st.st_size;
    return buf;
}

static void test_deliver_truncated_source_leaves_nothing(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    int fd = source_fd("short\n", 6);
    assert_int_equal(maildir_deliver(md, "", 0, fd, 0, 100, &name, &err), -1);
    assert_non_null(strstr(err.data, "ends"));
    assert_int_equal(count_entries("new"), 0);
    assert_int_equal(count_entries("tmp"), 0);
    close(fd);
    strbuf_release(&name);
    strbuf_release(&err);
}

static void test_deliver_bad_fd_fails_cleanly(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    assert_int_equal(maildir_create(md, &err), 0);
    assert_int_equal(maildir_deliver(md, "x\n", 2, -1, 0, 10, &name, &err), -1);
    assert_int_equal(count_entries("new"), 0);
    assert_int_equal(count_entries("tmp"), 0);
    strbuf_release(&name);
    strbuf_release(&err);
}

static void test_lock_rejects_bad_name(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(maildir_lock(md, "../x", &err), -1);
    assert_int_equal(maildir_lock(md, "", &err), -1);
    strbuf_release(&err);
}

static void test_create_makes_subdirectories(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    struct stat st;
    char p[4300];
    assert_int_equal(maildir_create(md, &err), 0);
    assert_int_equal(maildir_create(md, &err), 0); /* idempotent */
    snprintf(p, sizeof(p), "%s/tmp", md);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    strbuf_release(&err);
}

static void test_deliver_one_file_in_new_with_sizes_and_exact_content(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    const char *pre = "Return-Path: <a@b>\nDelivered-To: c@d\n";
    const char *body = "JUNKSubject: hi\n\nline one\nline two\nno final newline";
    size_t skip = 4, blen = strlen(body) - skip;
    int fd = source_fd(body, strlen(body));
    /* Not created beforehand: the first delivery makes the Maildir. */
    assert_int_equal(maildir_deliver(md, pre, strlen(pre), fd, (off_t)skip, blen, &name, &err), 0);
    close(fd);
    assert_int_equal(count_entries("new"), 1);
    assert_int_equal(count_entries("tmp"), 0);
    assert_int_equal(strncmp(name.data, "new/", 4), 0);

    size_t size = strlen(pre) + blen, lfs = 2 + 4;
    char expect[64];
    snprintf(expect, sizeof(expect), ",S=%zu,W=%zu", size, size + lfs);
    assert_non_null(strstr(name.data, expect));
    assert_null(strchr(name.data + 4, '/'));

    size_t len;
    char *got = read_all(name.data, &len);
    assert_int_equal(len, size);
    assert_memory_equal(got, pre, strlen(pre));
    assert_memory_equal(got + strlen(pre), body + skip, blen);
    myfree(got);
    strbuf_release(&name);
    strbuf_release(&err);
}

/* W= counts every LF, whatever the bytes around it and the alignment. */
static void test_deliver_counts_lf_among_any_bytes(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = {'\n', '\n', 0x8a, 0x0b, 0x09, 0x00, 0xff, 0x80, 'a'};
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    unsigned long long x = 12345;
    for (size_t n = 0; n < 70; n += 7) {
        char body[80];
        size_t lfs = 0;
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            body[i] = (char)alphabet[(x >> 33) % sizeof(alphabet)];
            lfs += body[i] == '\n';
        }
        int fd = source_fd(body, n);
        /* An odd-length prefix with one LF shifts the content's alignment. */
        assert_int_equal(maildir_deliver(md, "P: q\n", 5, fd, 0, n, &name, &err), 0);
        close(fd);
        char expect[64];
        snprintf(expect, sizeof(expect), ",S=%zu,W=%zu", n + 5, n + 5 + lfs + 1);
        if (strstr(name.data, expect) == NULL)
            fail_msg("%zu bytes: %s, expected %s", n, name.data, expect);
    }
    strbuf_release(&name);
    strbuf_release(&err);
}

static void test_deliver_large_message_spanning_blocks(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT, text = STRBUF_INIT;
    size_t lines = 0;
    while (text.len < 300000) {
        strbuf_printf(&text, "line %zu with some text\n", lines);
        lines++;
    }
    /* A prefix bigger than half a block takes the separate-write path. */
    struct strbuf pre = STRBUF_INIT;
    for (int i = 0; i < 5000; i++)
        strbuf_puts(&pre, "X-Pad: 0123456789\n");
    int fd = source_fd(text.data, text.len);
    assert_int_equal(maildir_deliver(md, pre.data, pre.len, fd, 0, text.len, &name, &err), 0);
    close(fd);
    char expect[64];
    size_t size = pre.len + text.len;
    snprintf(expect, sizeof(expect), ",S=%zu,W=%zu", size, size + lines + 5000);
    assert_non_null(strstr(name.data, expect));
    size_t len;
    char *got = read_all(name.data, &len);
    assert_int_equal(len, size);
    assert_memory_equal(got + pre.len, text.data, text.len);
    myfree(got);
    strbuf_release(&name);
    strbuf_release(&err);
    strbuf_release(&text);
    strbuf_release(&pre);
}

/* new/ is kept open between deliveries; a Maildir made again must get its own. */
static void test_deliver_after_the_maildir_was_made_again(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    char p[4500];
    struct stat st;
    int fd = source_fd("hello\n", 6);
    assert_int_equal(maildir_deliver(md, "", 0, fd, 0, 6, &name, &err), 0);
    snprintf(p, sizeof(p), "%s/%s", md, name.data);
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof(p), "%s/new", md);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(maildir_deliver(md, "", 0, fd, 0, 6, &name, &err), 0);
    snprintf(p, sizeof(p), "%s/%s", md, name.data);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 6);
    /* And without new/ at all, the delivery fails and leaves nothing. */
    snprintf(p, sizeof(p), "%s/new", md);
    char moved[4600];
    snprintf(moved, sizeof(moved), "%s/new.gone", md);
    assert_int_equal(rename(p, moved), 0);
    assert_int_equal(maildir_deliver(md, "", 0, fd, 0, 6, &name, &err), -1);
    close(fd);
    strbuf_release(&name);
    strbuf_release(&err);
}

static void test_list_oldest_first_and_moves_new_to_cur(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct maildir_msg *msgs = NULL;
    size_t n = 0;
    char names[3][512];
    int fd = source_fd("a\nb\n", 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(maildir_deliver(md, "", 0, fd, 0, 4, &name, &err), 0);
        snprintf(names[i], sizeof(names[i]), "%s", name.data);
    }
    close(fd);
    /* A file from another program, without S=/W=, older than ours. */
    char p[4500];
    snprintf(p, sizeof(p), "%s/cur/1000000000.M5P1.other:2,S", md);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("x\ny\nz\n", f);
    fclose(f);

    assert_int_equal(maildir_list(md, false, &msgs, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(msgs[0].path, "cur/1000000000.M5P1.other:2,S");
    assert_string_equal(msgs[0].uid, "1000000000.M5P1.other");
    assert_int_equal(msgs[0].size, 6);
    assert_int_equal(msgs[0].vsize, 9);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(msgs[i + 1].path, names[i]);
        assert_int_equal(msgs[i + 1].size, 4);
        assert_int_equal(msgs[i + 1].vsize, 6);
        assert_null(strchr(msgs[i + 1].uid, ','));
    }
    maildir_list_free(&msgs, n);
    assert_null(msgs);
    assert_int_equal(count_entries("new"), 3);

    assert_int_equal(maildir_list(md, true, &msgs, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(count_entries("new"), 0);
    assert_int_equal(count_entries("cur"), 4);
    for (int i = 0; i < 3; i++) {
        char want[600];
        snprintf(want, sizeof(want), "cur/%s:2,", names[i] + 4);
        assert_string_equal(msgs[i + 1].path, want);
    }
    maildir_list_free(&msgs, n);
    strbuf_release(&name);
    strbuf_release(&err);
}

static void test_list_of_missing_maildir_is_empty(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    struct maildir_msg *msgs = NULL;
    size_t n = 99;
    assert_int_equal(maildir_list(md, true, &msgs, &n, &err), 0);
    assert_int_equal(n, 0);
    maildir_list_free(&msgs, n);
    strbuf_release(&err);
}

static void test_lock_is_exclusive_until_closed(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    int a = maildir_lock(md, "pop3", &err);
    assert_true(a >= 0);
    int b = maildir_lock(md, "pop3", &err);
    assert_int_equal(b, -1);
    assert_non_null(strstr(err.data, "locked"));
    int other = maildir_lock(md, "imap", &err); /* another name is another lock */
    assert_true(other >= 0);
    close(other);
    close(a);
    b = maildir_lock(md, "pop3", &err);
    assert_true(b >= 0);
    close(b);
    strbuf_release(&err);
}

static void test_deliver_names_are_unique(void **state)
{
    (void)state;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    int fd = source_fd("m\n", 2);
    for (int i = 0; i < 200; i++)
        assert_int_equal(maildir_deliver(md, "", 0, fd, 0, 2, &name, &err), 0);
    close(fd);
    assert_int_equal(count_entries("new"), 200);
    strbuf_release(&name);
    strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_deliver_truncated_source_leaves_nothing, fresh),
        cmocka_unit_test_setup(test_deliver_bad_fd_fails_cleanly, fresh),
        cmocka_unit_test_setup(test_lock_rejects_bad_name, fresh),
        cmocka_unit_test_setup(test_create_makes_subdirectories, fresh),
        cmocka_unit_test_setup(test_deliver_one_file_in_new_with_sizes_and_exact_content, fresh),
        cmocka_unit_test_setup(test_deliver_counts_lf_among_any_bytes, fresh),
        cmocka_unit_test_setup(test_deliver_large_message_spanning_blocks, fresh),
        cmocka_unit_test_setup(test_deliver_after_the_maildir_was_made_again, fresh),
        cmocka_unit_test_setup(test_list_oldest_first_and_moves_new_to_cur, fresh),
        cmocka_unit_test_setup(test_list_of_missing_maildir_is_empty, fresh),
        cmocka_unit_test_setup(test_lock_is_exclusive_until_closed, fresh),
        cmocka_unit_test_setup(test_deliver_names_are_unique, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
