/* Unit tests for libmail/login: login names and password checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <string.h>

#include "config.h"
#include "login.h"
#include "mymalloc.h"
#include "vuser.h"

static char tmpdir[4096];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_scratch_dir(tmpdir, sizeof(tmpdir), "test_login"), 0);
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    config_set_directory(tmpdir);
    strbuf_printf(&v, "%s/mail", tmpdir);
    assert_int_equal(config_override("virtual_mailbox_base", v.data, &err), 0);
    assert_int_equal(config_override("virtual_user_maps", "hash:$config_directory/users", &err), 0);
    assert_int_equal(config_override("mydestination", "example.test, mail.example.test", &err), 0);
    assert_int_equal(vuser_add("alice", "s3cret", &err), 0);
    strbuf_release(&err);
    strbuf_release(&v);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

static void expect_name(const char *login, const char *want)
{
    char *name = login_user_name(login);
    if (want == NULL) {
        assert_null(name);
        return;
    }
    assert_non_null(name);
    assert_string_equal(name, want);
    myfree(name);
}

static void test_foreign_domains_and_invalid_names_are_not_logins(void **state)
{
    (void)state;
    expect_name("", NULL);
    expect_name("alice@other.test", NULL);
    expect_name("alice@", NULL);
    expect_name("a/b", NULL);
    expect_name("../alice", NULL);
    expect_name("al ice", NULL);
}

static void test_login_names_are_lowercased_and_local_domains_dropped(void **state)
{
    (void)state;
    expect_name("alice", "alice");
    expect_name("Alice", "alice");
    expect_name("ALICE@Example.TEST", "alice");
    expect_name("alice@mail.example.test", "alice");
}

static void test_wrong_password_unknown_and_invalid_users_are_refused(void **state)
{
    (void)state;
    struct vuser u;
    struct strbuf err = STRBUF_INIT;
    const char *why = NULL;
    assert_int_equal(login_verify("alice", "wrong", &u, &why, &err), 0);
    assert_string_equal(why, "wrong password");
    assert_int_equal(login_verify("bob", "s3cret", &u, &why, &err), 0);
    assert_string_equal(why, "unknown user");
    assert_int_equal(login_verify(NULL, "s3cret", &u, &why, &err), 0);
    assert_string_equal(why, "invalid login name");
    assert_int_equal(login_verify("", "s3cret", &u, &why, &err), 0);
    strbuf_release(&err);
}

static void test_right_password_fills_the_user(void **state)
{
    (void)state;
    struct vuser u;
    struct strbuf err = STRBUF_INIT;
    const char *why = NULL;
    assert_int_equal(login_verify("alice", "s3cret", &u, &why, &err), 1);
    assert_string_equal(u.name, "alice");
    assert_non_null(strstr(u.maildir, "/mail/alice/Maildir"));
    vuser_release(&u);
    strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_domains_and_invalid_names_are_not_logins),
        cmocka_unit_test(test_login_names_are_lowercased_and_local_domains_dropped),
        cmocka_unit_test(test_wrong_password_unknown_and_invalid_users_are_refused),
        cmocka_unit_test(test_right_password_fills_the_user),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
