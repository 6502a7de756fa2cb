/*
 * Unit tests for libmail/recipient.c: local vs remote vs unknown, extension
 * stripping, case, postmaster, table errors. Real Berkeley DB tables are
 * built in a scratch config directory.
 */
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
#include "dict.h"
#include "recipient.h"
#include "strbuf.h"

static char tmpdir[4096];

static void write_file(const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void load_config(void)
{
    struct strbuf err = STRBUF_INIT;
    char text[9000];
    config_reset();
    config_set_directory(tmpdir);
    snprintf(text, sizeof(text),
             "myhostname = mail.example.test\n"
             "mydomain = example.test\n"
             "mydestination = $mydomain, $myhostname, localhost\n"
             "alias_maps = hash:%s/aliases\n"
             "virtual_user_maps = hash:%s/users\n",
             tmpdir, tmpdir);
    assert_int_equal(config_load_text("main.cf", text, strlen(text), &err), 0);
    strbuf_release(&err);
}

static int setup(void **state)
{
    (void)state;
    if (test_scratch_dir(tmpdir, sizeof(tmpdir), "test_recipient") < 0)
        return -1;

    struct strbuf err = STRBUF_INIT;
    char spec[4200];
    write_file("aliases", "# test aliases\n"
                          "info: alice, bob\n"
                          "Sales: alice@example.test\n"
                          "outside: someone@remote.test\n"
                          "ghost: nobody\n");
    snprintf(spec, sizeof(spec), "hash:%s/aliases", tmpdir);
    if (dict_build(spec, DICT_FORMAT_ALIASES, &err) < 0) {
        fprintf(stderr, "dict_build: %s\n", strbuf_str(&err));
        return -1;
    }
    const char *keys[] = {"alice", "bob"};
    const char *values[] = {"$6$salt$x", "$6$salt$y"};
    snprintf(spec, sizeof(spec), "hash:%s/users", tmpdir);
    write_file("users", "alice:$6$salt$x\nbob:$6$salt$y\n");
    if (dict_build_pairs(spec, keys, values, 2, &err) < 0) {
        fprintf(stderr, "dict_build_pairs: %s\n", strbuf_str(&err));
        return -1;
    }
    strbuf_release(&err);
    load_config();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

/* Each test starts from the standard configuration. */
static int reset_config(void **state)
{
    (void)state;
    load_config();
    return 0;
}

static enum recipient_class classify(const char *addr)
{
    struct strbuf err = STRBUF_INIT;
    enum recipient_class c = recipient_classify(addr, &err);
    strbuf_release(&err);
    return c;
}

static void test_malformed_addresses_are_unknown_users(void **state)
{
    (void)state;
    assert_int_equal(classify(""), RECIPIENT_UNKNOWN_USER);
    assert_int_equal(classify("@example.test"), RECIPIENT_UNKNOWN_USER);
    assert_int_equal(classify("+tag@example.test"), RECIPIENT_UNKNOWN_USER);
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(classify(big), RECIPIENT_UNKNOWN_USER);
}

static void test_other_domain_is_remote(void **state)
{
    (void)state;
    assert_int_equal(classify("bob@remote.test"), RECIPIENT_REMOTE);
    assert_int_equal(classify("alice@sub.example.test"), RECIPIENT_REMOTE);
    assert_int_equal(classify("alice@[192.0.2.1]"), RECIPIENT_REMOTE);
}

static void test_existing_user_in_local_domain_is_local(void **state)
{
    (void)state;
    assert_int_equal(classify("alice@example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("bob@mail.example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("bob@localhost"), RECIPIENT_LOCAL);
}

static void test_address_without_domain_is_local(void **state)
{
    (void)state;
    assert_int_equal(classify("alice"), RECIPIENT_LOCAL);
    assert_int_equal(classify("carol"), RECIPIENT_UNKNOWN_USER);
}

static void test_domain_and_user_compare_case_insensitively(void **state)
{
    (void)state;
    assert_int_equal(classify("ALICE@Example.TEST"), RECIPIENT_LOCAL);
    assert_int_equal(classify("alice@example.test."), RECIPIENT_LOCAL);
    assert_true(recipient_domain_is_local("MAIL.EXAMPLE.TEST"));
    assert_false(recipient_domain_is_local("example.org"));
}

static void test_extension_is_stripped(void **state)
{
    (void)state;
    assert_int_equal(classify("alice+lists@example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("info+x@example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("carol+x@example.test"), RECIPIENT_UNKNOWN_USER);

    struct strbuf u = STRBUF_INIT;
    recipient_local_user("Alice+Tag@X.test", &u);
    assert_string_equal(strbuf_str(&u), "alice");
    recipient_local_user("alice", &u);
    assert_string_equal(strbuf_str(&u), "alice");
    recipient_local_user("+only@x", &u);
    assert_string_equal(strbuf_str(&u), "+only");
    recipient_local_user("\"Al\\\"ice\"@x", &u);
    assert_string_equal(strbuf_str(&u), "al\"ice");
    strbuf_release(&u);
}

static void test_recipient_delimiter_is_configurable(void **state)
{
    (void)state;
    struct strbuf u = STRBUF_INIT;
    assert_int_equal(config_override("recipient_delimiter", "-", NULL), 0);
    recipient_local_user("alice-tag@x", &u);
    assert_string_equal(strbuf_str(&u), "alice");
    recipient_local_user("alice+tag@x", &u);
    assert_string_equal(strbuf_str(&u), "alice+tag");
    assert_int_equal(config_override("recipient_delimiter", "", NULL), 0);
    recipient_local_user("alice-tag@x", &u);
    assert_string_equal(strbuf_str(&u), "alice-tag");
    strbuf_release(&u);
}

static void test_alias_is_local(void **state)
{
    (void)state;
    assert_int_equal(classify("info@example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("sales@example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("outside@example.test"), RECIPIENT_LOCAL);
    /* An alias exists even when its target does not: local answers later. */
    assert_int_equal(classify("ghost@example.test"), RECIPIENT_LOCAL);
}

static void test_unknown_user_in_local_domain(void **state)
{
    (void)state;
    assert_int_equal(classify("nobody@example.test"), RECIPIENT_UNKNOWN_USER);
    assert_int_equal(classify("mailer-daemon@example.test"), RECIPIENT_UNKNOWN_USER);
}

static void test_postmaster_always_exists(void **state)
{
    (void)state;
    assert_int_equal(classify("postmaster@example.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("PostMaster@localhost"), RECIPIENT_LOCAL);
    assert_int_equal(classify("postmaster"), RECIPIENT_LOCAL);
    /* Even when the tables are broken (RFC 5321 §4.5.1). */
    assert_int_equal(config_override("alias_maps", "hash:/nonexistent/aliases", NULL), 0);
    assert_int_equal(classify("postmaster@example.test"), RECIPIENT_LOCAL);
}

static void test_user_exists_looks_up_postmaster_too(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(recipient_user_exists("alice", &err), 1); /* a user */
    assert_int_equal(recipient_user_exists("info", &err), 1);  /* an alias */
    assert_int_equal(recipient_user_exists("nobody", &err), 0);
    assert_int_equal(recipient_user_exists("no/such", &err), 0); /* not a valid user name */
    /* No special case: in these tables postmaster resolves nowhere. */
    assert_int_equal(recipient_user_exists("postmaster", &err), 0);
    char spec[4200];
    snprintf(spec, sizeof(spec), "hash:%s/missing", tmpdir);
    assert_int_equal(config_override("alias_maps", spec, NULL), 0);
    strbuf_reset(&err);
    assert_int_equal(recipient_user_exists("postmaster", &err), -1);
    assert_non_null(strstr(strbuf_str(&err), "missing"));
    snprintf(spec, sizeof(spec), "hash:%s/nousers", tmpdir);
    assert_int_equal(config_override("alias_maps", "", NULL), 0);
    assert_int_equal(config_override("virtual_user_maps", spec, NULL), 0);
    strbuf_reset(&err);
    assert_int_equal(recipient_user_exists("alice", &err), -1);
    assert_non_null(strstr(strbuf_str(&err), "virtual_user_maps"));
    strbuf_release(&err);
}

static void test_missing_alias_table_is_an_error(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    char spec[4200];
    snprintf(spec, sizeof(spec), "hash:%s/missing", tmpdir);
    assert_int_equal(config_override("alias_maps", spec, NULL), 0);
    assert_int_equal(recipient_classify("alice@example.test", &err), RECIPIENT_ERROR);
    assert_true(err.len > 0);
    /* Remote addresses need no table. */
    assert_int_equal(recipient_classify("alice@remote.test", &err), RECIPIENT_REMOTE);
    strbuf_release(&err);
}

static void test_missing_user_table_is_an_error(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    char spec[4200];
    snprintf(spec, sizeof(spec), "hash:%s/nousers", tmpdir);
    assert_int_equal(config_override("virtual_user_maps", spec, NULL), 0);
    assert_int_equal(recipient_classify("alice@example.test", &err), RECIPIENT_ERROR);
    assert_true(err.len > 0);
    /* Aliases are found before the user table is consulted. */
    assert_int_equal(recipient_classify("info@example.test", &err), RECIPIENT_LOCAL);
    strbuf_release(&err);
}

static void test_empty_alias_maps_means_no_aliases(void **state)
{
    (void)state;
    assert_int_equal(config_override("alias_maps", "", NULL), 0);
    assert_int_equal(classify("info@example.test"), RECIPIENT_UNKNOWN_USER);
    assert_int_equal(classify("alice@example.test"), RECIPIENT_LOCAL);
}

static void test_mydestination_change_is_noticed(void **state)
{
    (void)state;
    assert_int_equal(classify("alice@other.test"), RECIPIENT_REMOTE);
    assert_int_equal(config_override("mydestination", "other.test", NULL), 0);
    assert_int_equal(classify("alice@other.test"), RECIPIENT_LOCAL);
    assert_int_equal(classify("alice@example.test"), RECIPIENT_REMOTE);
    assert_true(recipient_domain_is_local(""));
}

static void test_address_literal_matches_listed_address(void **state)
{
    (void)state;
    assert_int_equal(config_override("mydestination", "example.test, 127.0.0.1", NULL), 0);
    assert_int_equal(classify("alice@[127.0.0.1]"), RECIPIENT_LOCAL);
    assert_int_equal(classify("alice@[127.0.0.2]"), RECIPIENT_REMOTE);
}

static void test_many_lookups_are_fast(void **state)
{
    (void)state;
    /* 100k classifications: tables stay open, so this takes well under a second. */
    for (int i = 0; i < 100000; i++)
        assert_int_equal(classify((i & 1) ? "alice@example.test" : "info+x@example.test"),
                         RECIPIENT_LOCAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_malformed_addresses_are_unknown_users, reset_config),
        cmocka_unit_test_setup(test_other_domain_is_remote, reset_config),
        cmocka_unit_test_setup(test_existing_user_in_local_domain_is_local, reset_config),
        cmocka_unit_test_setup(test_address_without_domain_is_local, reset_config),
        cmocka_unit_test_setup(test_domain_and_user_compare_case_insensitively, reset_config),
        cmocka_unit_test_setup(test_extension_is_stripped, reset_config),
        cmocka_unit_test_setup(test_recipient_delimiter_is_configurable, reset_config),
        cmocka_unit_test_setup(test_alias_is_local, reset_config),
        cmocka_unit_test_setup(test_unknown_user_in_local_domain, reset_config),
        cmocka_unit_test_setup(test_postmaster_always_exists, reset_config),
        cmocka_unit_test_setup(test_user_exists_looks_up_postmaster_too, reset_config),
        cmocka_unit_test_setup(test_missing_alias_table_is_an_error, reset_config),
        cmocka_unit_test_setup(test_missing_user_table_is_an_error, reset_config),
        cmocka_unit_test_setup(test_empty_alias_maps_means_no_aliases, reset_config),
        cmocka_unit_test_setup(test_mydestination_change_is_noticed, reset_config),
        cmocka_unit_test_setup(test_address_literal_matches_listed_address, reset_config),
        cmocka_unit_test_setup(test_many_lookups_are_fast, reset_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
