/* Unit tests for libmail/mailbox: Maildir++ folder names, safety, create,
 * delete, rename, list, subscriptions and a new user's defaults. */
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

#include "mailbox.h"
#include "maildir.h"
#include "mbox_index.h"
#include "mymalloc.h"

static char tmpdir[4096];
static char root[4200];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_scratch_dir(tmpdir, sizeof(tmpdir), "test_mailbox"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

static int fresh(void **state)
{
    (void)state;
    static int n;
    snprintf(root, sizeof(root), "%s/u%d/Maildir", tmpdir, ++n);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(maildir_create(root, &err), 0);
    strbuf_release(&err);
    return 0;
}

static bool is_dir(const char *rel)
{
    char p[4600];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

struct listing {
    char names[64][128];
    unsigned attrs[64];
    size_t n;
};

static void collect(void *ctx, const char *name, unsigned attrs)
{
    struct listing *l = ctx;
    if (l->n < 64) {
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
        l->attrs[l->n++] = attrs;
    }
}

static int find(const struct listing *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return (int)i;
    return -1;
}

static void test_unsafe_names_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",        "..",      ".",     "../x",     "a/../../etc", "/etc/passwd", "a/b",
        "a\\b",    ".hidden", "a.",    "a..b",     "a.b.",        "x\ny",        "tab\there",
        "del\x7f", "bad\xff", "wild*", "per%cent", "caf\xc3",
    };
    struct strbuf err = STRBUF_INIT, dir = STRBUF_INIT;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strbuf_reset(&err);
        if (mailbox_name_check(bad[i], NULL, &err) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err.len > 0);
        assert_int_equal(mailbox_name_to_dir(root, bad[i], &dir, &err), -1);
        assert_int_equal(mailbox_create(root, bad[i], &err), -1);
    }
    /* Too long, too deep. */
    char longname[MAILBOX_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(mailbox_name_check(longname, NULL, &err), -1);
    char deep[64] = "a";
    for (int i = 0; i < MAILBOX_DEPTH_MAX; i++)
        strcat(deep, ".a");
    assert_int_equal(mailbox_name_check(deep, NULL, &err), -1);
    /* A component whose directory name would exceed NAME_MAX. */
    struct strbuf big = STRBUF_INIT;
    for (int i = 0; i < 100; i++)
        strbuf_puts(&big, "\xc3\xa9");
    assert_int_equal(mailbox_name_to_dir(root, big.data, &dir, &err), -1);
    strbuf_release(&big);
    /* Nothing was created inside the root or beside it. */
    assert_false(is_dir("../etc"));
    assert_false(is_dir(".hidden"));
    DIR *dp = opendir(root);
    assert_non_null(dp);
    struct dirent *de;
    size_t entries = 0;
    while ((de = readdir(dp)) != NULL)
        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(dp);
    assert_int_equal(entries, 3); /* cur new tmp */
    strbuf_release(&err);
    strbuf_release(&dir);
}

static void test_names_map_to_maildirpp_directories(void **state)
{
    (void)state;
    struct strbuf dir = STRBUF_INIT, err = STRBUF_INIT, canon = STRBUF_INIT;
    assert_int_equal(mailbox_delimiter(), '.');
    assert_int_equal(mailbox_name_to_dir(root, "INBOX", &dir, &err), 0);
    assert_string_equal(dir.data, root);
    assert_int_equal(mailbox_name_to_dir(root, "iNbOx", &dir, &err), 0);
    assert_string_equal(dir.data, root);
    assert_true(mailbox_is_inbox("inbox"));
    assert_false(mailbox_is_inbox("inboxes"));
    char want[4600];
    snprintf(want, sizeof(want), "%s/.Lists.tegami", root);
    assert_int_equal(mailbox_name_to_dir(root, "Lists.tegami", &dir, &err), 0);
    assert_string_equal(dir.data, want);
    snprintf(want, sizeof(want), "%s/.Entw&APw-rfe", root);
    assert_int_equal(mailbox_name_to_dir(root, "Entw\xc3\xbcrfe", &dir, &err), 0);
    assert_string_equal(dir.data, want);
    snprintf(want, sizeof(want), "%s/.Q&-A", root);
    assert_int_equal(mailbox_name_to_dir(root, "Q&A", &dir, &err), 0);
    assert_string_equal(dir.data, want);
    assert_int_equal(mailbox_name_check("inbox.Sub", &canon, &err), 0);
    assert_string_equal(canon.data, "INBOX.Sub");
    assert_int_equal(mailbox_special_use("Sent"), MAILBOX_ATTR_SENT);
    assert_int_equal(mailbox_special_use("Trash"), MAILBOX_ATTR_TRASH);
    assert_int_equal(mailbox_special_use("Other"), 0);
    strbuf_release(&dir);
    strbuf_release(&err);
    strbuf_release(&canon);
}

static void test_create_delete_and_list(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(mailbox_create(root, "Work", &err), 0);
    assert_true(is_dir(".Work/cur") && is_dir(".Work/new") && is_dir(".Work/tmp"));
    assert_int_equal(mailbox_create(root, "Work", &err), MAILBOX_EEXIST);
    assert_int_equal(mailbox_create(root, "INBOX", &err), MAILBOX_EEXIST);
    assert_int_equal(mailbox_create(root, "Work.Project", &err), 0);
    assert_int_equal(mailbox_create(root, "Deep.Er.Child", &err), 0); /* parents implied */
    assert_int_equal(mailbox_create(root, "\xe6\x97\xa5\xe6\x9c\xac", &err), 0);
    assert_true(is_dir(".&ZeVnLA-"));
    assert_int_equal(mailbox_exists(root, "Work", &err), 1);
    assert_int_equal(mailbox_exists(root, "Nope", &err), 0);
    /* A directory that is not a valid name is skipped by LIST. */
    char p[4600];
    snprintf(p, sizeof(p), "%s/.bad&name/cur", root);
    struct strbuf e2 = STRBUF_INIT;
    assert_int_equal(maildir_create(p, &e2), 0);
    strbuf_release(&e2);

    struct listing l = {0};
    assert_int_equal(mailbox_list(root, collect, &l, &err), 0);
    assert_string_equal(l.names[0], "INBOX");
    assert_int_equal(l.attrs[0] & MAILBOX_ATTR_HASNOCHILDREN, MAILBOX_ATTR_HASNOCHILDREN);
    int w = find(&l, "Work"), wp = find(&l, "Work.Project"), d = find(&l, "Deep"),
        de = find(&l, "Deep.Er"), dc = find(&l, "Deep.Er.Child"),
        j = find(&l, "\xe6\x97\xa5\xe6\x9c\xac");
    assert_true(w > 0 && wp > 0 && d > 0 && de > 0 && dc > 0 && j > 0);
    assert_int_equal(find(&l, "bad&name"), -1);
    assert_true(l.attrs[w] & MAILBOX_ATTR_HASCHILDREN);
    assert_true(l.attrs[wp] & MAILBOX_ATTR_HASNOCHILDREN);
    assert_true(l.attrs[d] & MAILBOX_ATTR_NOSELECT);
    assert_true(l.attrs[de] & MAILBOX_ATTR_NOSELECT);
    assert_false(l.attrs[dc] & MAILBOX_ATTR_NOSELECT);
    assert_false(l.attrs[w] & MAILBOX_ATTR_NOSELECT);
    assert_int_equal(l.n, 7);

    /* Delete: children stay, the parent becomes \Noselect. */
    assert_int_equal(mailbox_delete(root, "Work", &err), 0);
    assert_false(is_dir(".Work"));
    assert_true(is_dir(".Work.Project"));
    assert_int_equal(mailbox_delete(root, "Work", &err), MAILBOX_ENOENT);
    assert_int_equal(mailbox_delete(root, "INBOX", &err), -1);
    assert_int_equal(mailbox_delete(root, "../..", &err), -1);
    memset(&l, 0, sizeof(l));
    assert_int_equal(mailbox_list(root, collect, &l, &err), 0);
    w = find(&l, "Work");
    assert_true(w > 0);
    assert_true(l.attrs[w] & MAILBOX_ATTR_NOSELECT);
    /* Nothing left behind in the root by create/delete. */
    snprintf(p, sizeof(p), "%s", root);
    strbuf_release(&err);
}

static void test_rename_moves_children_and_subscriptions(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(mailbox_create(root, "A", &err), 0);
    assert_int_equal(mailbox_create(root, "A.B", &err), 0);
    assert_int_equal(mailbox_create(root, "C", &err), 0);
    assert_int_equal(mailbox_subscribe(root, "A.B", &err), 0);
    assert_int_equal(mailbox_rename(root, "A", "C", &err), MAILBOX_EEXIST);
    assert_int_equal(mailbox_rename(root, "A", "A.X", &err), -1); /* into itself */
    assert_int_equal(mailbox_rename(root, "Nope", "Z", &err), MAILBOX_ENOENT);
    assert_int_equal(mailbox_rename(root, "A", "../Z", &err), -1);
    assert_int_equal(mailbox_rename(root, "A", "Z\xc3\xa9", &err), 0);
    assert_true(is_dir(".Z&AOk-/cur"));
    assert_true(is_dir(".Z&AOk-.B/cur"));
    assert_false(is_dir(".A"));
    assert_false(is_dir(".A.B"));
    struct listing l = {0};
    assert_int_equal(mailbox_list_subscribed(root, collect, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "Z\xc3\xa9.B");
    strbuf_release(&err);
}

static void test_rename_inbox_moves_messages(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    char p[4600];
    snprintf(p, sizeof(p), "%s/new/1.M1P1Q1.host,S=2,W=3", root);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
    snprintf(p, sizeof(p), "%s/cur/2.M1P1Q1.host,S=2,W=3:2,S", root);
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mailbox_rename(root, "INBOX", "Old", &err), 0);
    snprintf(p, sizeof(p), "%s/.Old/cur/1.M1P1Q1.host,S=2,W=3:2,", root);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/.Old/cur/2.M1P1Q1.host,S=2,W=3:2,S", root);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/cur/2.M1P1Q1.host,S=2,W=3:2,S", root);
    assert_int_equal(access(p, F_OK), -1);
    assert_true(is_dir("cur")); /* INBOX stays */
    strbuf_release(&err);
}

static void test_subscriptions_persist_and_list_nonexistent(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(mailbox_create(root, "Real", &err), 0);
    assert_int_equal(mailbox_subscribe(root, "Real", &err), 0);
    assert_int_equal(mailbox_subscribe(root, "Real", &err), 0); /* idempotent */
    assert_int_equal(mailbox_subscribe(root, "Ghost", &err), 0);
    assert_int_equal(mailbox_subscribe(root, "inbox", &err), 0);
    assert_int_equal(mailbox_subscribe(root, "../x", &err), -1);
    struct listing l = {0};
    assert_int_equal(mailbox_list_subscribed(root, collect, &l, &err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[0], "INBOX");
    int g = find(&l, "Ghost"), r = find(&l, "Real");
    assert_true(g > 0 && r > 0);
    assert_true(l.attrs[g] & MAILBOX_ATTR_NONEXISTENT);
    assert_false(l.attrs[r] & MAILBOX_ATTR_NONEXISTENT);
    memset(&l, 0, sizeof(l));
    assert_int_equal(mailbox_list(root, collect, &l, &err), 0);
    r = find(&l, "Real");
    assert_true(l.attrs[r] & MAILBOX_ATTR_SUBSCRIBED);
    assert_int_equal(mailbox_unsubscribe(root, "Ghost", &err), 0);
    assert_int_equal(mailbox_unsubscribe(root, "Never", &err), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(mailbox_list_subscribed(root, collect, &l, &err), 0);
    assert_int_equal(l.n, 2);
    /* A damaged subscriptions file: bad lines are ignored. */
    char p[4600];
    snprintf(p, sizeof(p), "%s/subscriptions", root);
    FILE *fp = fopen(p, "a");
    assert_non_null(fp);
    fputs("../../etc\n\nok.name\n", fp);
    for (int i = 0; i < 2000; i++)
        fputc('x', fp);
    fputs("\nlast\n", fp);
    fclose(fp);
    memset(&l, 0, sizeof(l));
    assert_int_equal(mailbox_list_subscribed(root, collect, &l, &err), 0);
    assert_int_equal(l.n, 4);
    assert_true(find(&l, "ok.name") > 0);
    assert_true(find(&l, "last") > 0);
    strbuf_release(&err);
}

static void test_defaults_create_special_use_folders_once(void **state)
{
    (void)state;
    char newroot[4600];
    snprintf(newroot, sizeof(newroot), "%s/fresh/Maildir", root);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(mailbox_create_defaults(newroot, &err), 0);
    struct listing l = {0};
    assert_int_equal(mailbox_list(newroot, collect, &l, &err), 0);
    assert_int_equal(l.n, 5);
    static const struct {
        const char *name;
        unsigned attr;
    } want[] = {{"Sent", MAILBOX_ATTR_SENT},
                {"Drafts", MAILBOX_ATTR_DRAFTS},
                {"Trash", MAILBOX_ATTR_TRASH},
                {"Junk", MAILBOX_ATTR_JUNK}};
    for (size_t i = 0; i < 4; i++) {
        int k = find(&l, want[i].name);
        assert_true(k > 0);
        assert_int_equal(l.attrs[k] & MAILBOX_ATTR_SPECIAL_USE, want[i].attr);
        assert_true(l.attrs[k] & MAILBOX_ATTR_SUBSCRIBED);
    }
    assert_true(l.attrs[0] & MAILBOX_ATTR_SUBSCRIBED);
    /* Idempotent; an unsubscribe sticks. */
    assert_int_equal(mailbox_unsubscribe(newroot, "Junk", &err), 0);
    assert_int_equal(mailbox_create_defaults(newroot, &err), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(mailbox_list(newroot, collect, &l, &err), 0);
    assert_int_equal(l.n, 5);
    assert_false(l.attrs[find(&l, "Junk")] & MAILBOX_ATTR_SUBSCRIBED);
    strbuf_release(&err);
}

/* RFC 3501 §2.3.1.1: a folder created again gets a new UIDVALIDITY, even
 * within the same second; CREATE leaves nothing else in the root. */
static void test_recreated_folder_gets_a_new_uidvalidity(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, dir = STRBUF_INIT;
    uint32_t seen[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mailbox_create(root, "Again", &err), 0);
        assert_int_equal(mailbox_name_to_dir(root, "Again", &dir, &err), 0);
        struct mbox *b = NULL;
        assert_int_equal(mbox_open(dir.data, MBOX_NO_CREATE, &b, &err), 0);
        seen[i] = mbox_uidvalidity(b);
        assert_int_equal(mbox_uidnext(b), 1);
        mbox_close(&b);
        for (int k = 0; k < i; k++)
            assert_true(seen[k] < seen[i]);
        assert_int_equal(mailbox_delete(root, "Again", &err), 0);
    }
    DIR *dp = opendir(root);
    assert_non_null(dp);
    struct dirent *de;
    while ((de = readdir(dp)) != NULL)
        assert_null(strstr(de->d_name, "tegami-creating"));
    closedir(dp);
    strbuf_release(&err);
    strbuf_release(&dir);
}

static void test_file_replace(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, path = STRBUF_INIT;
    char buf[64];

    /* A missing directory: an error naming the file, nothing left behind. */
    strbuf_printf(&path, "%s/nosuchdir/file", tmpdir);
    assert_int_equal(mailbox_file_replace(path.data, "x", 1, &err), -1);
    assert_non_null(strstr(err.data, "write "));
    assert_non_null(strstr(err.data, "nosuchdir/file"));

    /* Written, then replaced whole; no temporary file remains. */
    strbuf_reset(&path);
    strbuf_printf(&path, "%s/replaced", tmpdir);
    strbuf_reset(&err);
    assert_int_equal(mailbox_file_replace(path.data, "first version\n", 14, &err), 0);
    assert_int_equal(mailbox_file_replace(path.data, "second\n", 7, &err), 0);
    int fd = open(path.data, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "second\n", 7);
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
    strbuf_release(&err);
    strbuf_release(&path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_unsafe_names_are_refused, fresh),
        cmocka_unit_test_setup(test_names_map_to_maildirpp_directories, fresh),
        cmocka_unit_test_setup(test_create_delete_and_list, fresh),
        cmocka_unit_test_setup(test_rename_moves_children_and_subscriptions, fresh),
        cmocka_unit_test_setup(test_rename_inbox_moves_messages, fresh),
        cmocka_unit_test_setup(test_subscriptions_persist_and_list_nonexistent, fresh),
        cmocka_unit_test_setup(test_defaults_create_special_use_folders_once, fresh),
        cmocka_unit_test_setup(test_recreated_folder_gets_a_new_uidvalidity, fresh),
        cmocka_unit_test(test_file_replace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
