/* Unit tests for libmail/vuser: names, hashing, users file administration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mymalloc.h"
#include "vuser.h"

static char tmpdir[4096];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_scratch_dir(tmpdir, sizeof(tmpdir), "test_vuser"), 0);

    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    config_set_directory(tmpdir);
    strbuf_printf(&v, "%s/mail", tmpdir);
    assert_int_equal(config_override("virtual_mailbox_base", v.data, &err), 0);
    assert_int_equal(config_override("virtual_user_maps", "hash:$config_directory/users", &err), 0);
    strbuf_release(&err);
    strbuf_release(&v);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

static void write_users(const char *text)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/users", tmpdir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_users(void)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/users", tmpdir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char *buf = mycalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_name_validation(void **state)
{
    (void)state;
    assert_false(vuser_name_valid(""));
    assert_false(vuser_name_valid(".hidden"));
    assert_false(vuser_name_valid("Alice"));
    assert_false(vuser_name_valid("a/b"));
    assert_false(vuser_name_valid("a b"));
    assert_false(vuser_name_valid("a:b"));
    assert_false(vuser_name_valid("a@b"));
    char longname[66];
    memset(longname, 'a', 65);
    longname[65] = 0;
    assert_false(vuser_name_valid(longname));
    longname[64] = 0;
    assert_true(vuser_name_valid(longname));
    assert_true(vuser_name_valid("alice"));
    assert_true(vuser_name_valid("a.b_c-9"));
}

static void test_malformed_users_file_is_reported_with_line(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    write_users("# users\nalice:$6$x$y\nnocolon\nBad:$6$x$y\nalice:$6$a$b\nbob:\n");
    assert_int_equal(vuser_add("carol", "pw", &err), -1);
    assert_non_null(strstr(err.data, "users:3: expected \"name:hash\""));
    assert_non_null(strstr(err.data, "users:4: invalid user name"));
    assert_non_null(strstr(err.data, "users:5: duplicate user"));
    assert_non_null(strstr(err.data, "users:6: invalid password hash"));
    size_t n = 0;
    strbuf_reset(&err);
    assert_null(vuser_list(&n, &err));
    char p[4200];
    snprintf(p, sizeof(p), "%s/users", tmpdir);
    unlink(p);
    strbuf_release(&err);
}

static void test_add_rejects_invalid_name_and_empty_password(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(vuser_add("../etc", "pw", &err), -1);
    assert_non_null(strstr(err.data, "invalid user name"));
    strbuf_reset(&err);
    assert_int_equal(vuser_add("dave", "", &err), -1);
    assert_non_null(strstr(err.data, "empty password"));
    strbuf_release(&err);
}

static void test_hash_and_verify(void **state)
{
    (void)state;
    struct strbuf h = STRBUF_INIT, h2 = STRBUF_INIT, err = STRBUF_INIT;
    assert_int_equal(vuser_hash("secret", &h, &err), 0);
    assert_true(strncmp(h.data, "$y$", 3) == 0 || strncmp(h.data, "$6$", 3) == 0);
    assert_int_equal(vuser_hash("secret", &h2, &err), 0);
    assert_string_not_equal(h.data, h2.data); /* fresh salt each time */

    struct vuser u = {.name = "x", .hash = h.data, .maildir = "/m"};
    assert_true(vuser_verify(&u, "secret"));
    assert_false(vuser_verify(&u, "Secret"));
    assert_false(vuser_verify(&u, ""));
    assert_false(vuser_verify(&u, "secret "));
    struct vuser locked = {.name = "x", .hash = "!locked", .maildir = "/m"};
    assert_false(vuser_verify(&locked, "secret"));
    struct vuser empty = {.name = "x", .hash = "", .maildir = "/m"};
    assert_false(vuser_verify(&empty, ""));
    strbuf_release(&h);
    strbuf_release(&h2);
    strbuf_release(&err);
}

static void test_add_del_passwd_round_trip(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, md = STRBUF_INIT;
    struct vuser u;

    write_users("# our users\n");
    assert_int_equal(vuser_add("alice", "pw1", &err), 0);
    assert_int_equal(vuser_add("bob", "pw2", &err), 0);
    assert_int_equal(vuser_add("alice", "again", &err), -1);
    assert_non_null(strstr(err.data, "already exists"));

    char *text = read_users();
    assert_true(strncmp(text, "# our users\nalice:$", 19) == 0); /* comments kept */
    assert_non_null(strstr(text, "\nbob:$"));
    myfree(text);

    assert_int_equal(vuser_lookup("alice", &u, &err), 1);
    assert_string_equal(u.name, "alice");
    assert_true(vuser_verify(&u, "pw1"));
    assert_false(vuser_verify(&u, "pw2"));
    vuser_maildir("alice", &md);
    assert_string_equal(u.maildir, md.data);
    assert_non_null(strstr(md.data, "/mail/alice/Maildir"));
    vuser_release(&u);
    /* Login names are case-insensitive. */
    assert_int_equal(vuser_lookup("ALICE", &u, &err), 1);
    assert_string_equal(u.name, "alice");
    vuser_release(&u);
    assert_int_equal(vuser_lookup("nobody", &u, &err), 0);
    assert_int_equal(vuser_lookup("../x", &u, &err), 0);

    size_t n = 0;
    char **names = vuser_list(&n, &err);
    assert_non_null(names);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "alice");
    assert_string_equal(names[1], "bob");
    config_list_free(&names);

    /* The table is reopened when rebuilt (checked at most once a second). */
    assert_int_equal(vuser_passwd("alice", "newpw", &err), 0);
    assert_int_equal(vuser_del("bob", &err), 0);
    assert_int_equal(vuser_del("bob", &err), -1);
    assert_int_equal(vuser_passwd("nobody", "x", &err), -1);
    sleep(1);
    usleep(100000);
    assert_int_equal(vuser_lookup("alice", &u, &err), 1);
    assert_true(vuser_verify(&u, "newpw"));
    assert_false(vuser_verify(&u, "pw1"));
    vuser_release(&u);
    assert_int_equal(vuser_lookup("bob", &u, &err), 0);

    names = vuser_list(&n, &err);
    assert_int_equal(n, 1);
    config_list_free(&names);

    /* No temporary files are left in the config directory. */
    char cmd[4400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q tmp", tmpdir);
    assert_int_not_equal(system(cmd), 0);
    strbuf_release(&err);
    strbuf_release(&md);
}

static void test_rebuild_after_hand_edit(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, h = STRBUF_INIT;
    struct vuser u;
    assert_int_equal(vuser_hash("handpw", &h, &err), 0);
    struct strbuf text = STRBUF_INIT;
    strbuf_printf(&text, "carol:%s\n", h.data);
    write_users(text.data);
    assert_int_equal(vuser_rebuild(&err), 0);
    sleep(1);
    usleep(100000);
    assert_int_equal(vuser_lookup("carol", &u, &err), 1);
    assert_true(vuser_verify(&u, "handpw"));
    vuser_release(&u);
    strbuf_release(&err);
    strbuf_release(&h);
    strbuf_release(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_validation),
        cmocka_unit_test(test_malformed_users_file_is_reported_with_line),
        cmocka_unit_test(test_add_rejects_invalid_name_and_empty_password),
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_add_del_passwd_round_trip),
        cmocka_unit_test(test_rebuild_after_hand_edit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
