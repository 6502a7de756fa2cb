/* Unit tests for master.cf parsing (libmail/master_cf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "strbuf.h"

static struct strbuf errs;
static struct master_entry *ents;
static size_t nents;

static int setup(void **state)
{
    (void)state;
    config_reset();
    strbuf_init(&errs, 0);
    ents = NULL;
    nents = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    master_cf_free(&ents, nents);
    strbuf_release(&errs);
    return 0;
}

static int parse(const char *text)
{
    master_cf_free(&ents, nents);
    strbuf_reset(&errs);
    return master_cf_parse("master.cf", text, strlen(text), &ents, &nents, &errs);
}

static void expect_error(const char *text, const char *where, const char *what)
{
    assert_int_equal(parse(text), -1);
    assert_null(ents);
    assert_int_equal(nents, 0);
    if (strstr(errs.data, where) == NULL || strstr(errs.data, what) == NULL)
        fail_msg("expected \"%s\" ... \"%s\" in: %s", where, what, errs.data);
}

/* ---------------------------------------------------------- malformed input */

static void test_too_few_columns_is_error(void **state)
{
    (void)state;
    expect_error("# header\nsmtp inet n - n - \n", "master.cf:2: ", "at least 7 columns");
}

static void test_unknown_type_is_error(void **state)
{
    (void)state;
    expect_error("smtp tcp n - n - smtpd\n", "master.cf:1: ", "unknown service type");
}

static void test_bad_flag_column_is_error(void **state)
{
    (void)state;
    expect_error("smtp inet maybe - n - smtpd\n", "master.cf:1: ", "private column");
    expect_error("smtp inet n x n - smtpd\n", "master.cf:1: ", "unpriv column");
    expect_error("smtp inet n - q - smtpd\n", "master.cf:1: ", "chroot column");
}

static void test_bad_maxproc_is_error(void **state)
{
    (void)state;
    expect_error("25 inet n - n many smtpd\n", "master.cf:1: ", "maxproc");
    expect_error("25 inet n - n -3 smtpd\n", "master.cf:1: ", "maxproc");
    expect_error("25 inet n - n 99999999999999999999 smtpd\n", "master.cf:1: ", "maxproc");
}

static void test_command_with_path_is_error(void **state)
{
    (void)state;
    expect_error("25 inet n - n - /bin/sh\n", "master.cf:1: ", "program name");
    expect_error("25 inet n - n - ../smtpd\n", "master.cf:1: ", "program name");
}

static void test_bad_inet_port_is_error(void **state)
{
    (void)state;
    expect_error("127.0.0.1:0 inet n - n - smtpd\n", "master.cf:1: ", "port out of range");
    expect_error("127.0.0.1:70000 inet n - n - smtpd\n", "master.cf:1: ", "out of range");
    expect_error("127.0.0.1: inet n - n - smtpd\n", "master.cf:1: ", "missing port");
    expect_error("[::1] inet n - n - smtpd\n", "master.cf:1: ", "port");
    expect_error("25x inet n - n - smtpd\n", "master.cf:1: ", "port must be");
    expect_error("nosuchservicename inet n - n - smtpd\n", "master.cf:1: ", "unknown service");
    expect_error("127.0.0.1:sm/tp inet n - n - smtpd\n", "master.cf:1: ", "port must be");
}

static void test_bad_unix_name_is_error(void **state)
{
    (void)state;
    expect_error("../evil unix - - n - local\n", "master.cf:1: ", "name must be");
    expect_error(".hidden fifo - - n - qmgr\n", "master.cf:1: ", "name must be");
}

static void test_override_without_value_is_error(void **state)
{
    (void)state;
    expect_error("25 inet n - n - smtpd\n  -o max_use\n", "master.cf:1: ", "expected name=value");
    expect_error("25 inet n - n - smtpd\n  -o\n", "master.cf:1: ", "-o without");
}

static void test_override_of_unknown_parameter_is_error(void **state)
{
    (void)state;
    expect_error("25 inet n - n - smtpd\n  -o no_such_thing=1\n",
                 "master.cf:1: ", "unknown parameter");
}

static void test_continuation_without_entry_is_error(void **state)
{
    (void)state;
    expect_error("  -o max_use=1\n25 inet n - n - smtpd\n", "master.cf:1: ", "continuation line");
}

static void test_duplicate_service_is_error(void **state)
{
    (void)state;
    expect_error("25 inet n - n - smtpd\nlocal unix - - n - local\n25 inet n - n - smtpd\n",
                 "master.cf:3: ", "duplicate service");
}

static void test_nul_byte_is_error(void **state)
{
    static const char text[] = "25 inet n - n - smt\0pd\n";

    (void)state;
    strbuf_reset(&errs);
    assert_int_equal(master_cf_parse("master.cf", text, sizeof(text) - 1, &ents, &nents, &errs),
                     -1);
    assert_non_null(strstr(errs.data, "NUL"));
}

static void test_every_bad_line_is_reported(void **state)
{
    (void)state;
    assert_int_equal(parse("0 inet n - n - smtpd\nb unix - - n - local\nc bogus - - n - x\n"
                           "d unix - - n\n"),
                     -1);
    assert_non_null(strstr(errs.data, "master.cf:1:"));
    assert_null(strstr(errs.data, "master.cf:2:"));
    assert_non_null(strstr(errs.data, "master.cf:3:"));
    assert_non_null(strstr(errs.data, "master.cf:4:"));
}

/* ---------------------------------------------------------- behaviour */

static void test_sandbox_master_cf_parses(void **state)
{
    (void)state;
    assert_int_equal(parse("# service type private unpriv chroot maxproc command\n"
                           "127.0.0.1:10025   inet  n - n - smtpd\n"
                           "    -o max_use=10\n"
                           "    -o max_idle=30s\n"
                           "127.0.0.1:10110  inet  n - n - pop3d\n"
                           "qmgr     fifo  n - n 1 qmgr\n"
                           "pickup   fifo  n - n 1 pickup\n"
                           "local    unix  - - n - local -v\n"
                           "[::1]:10025 inet n y y 0 smtpd\n"
                           "127.0.0.1:smtp inet n - n - smtpd\n"),
                     0);
    assert_int_equal(nents, 7);
    assert_string_equal(ents[0].service, "127.0.0.1:10025");
    assert_string_equal(ents[0].type, "inet");
    assert_false(ents[0].private_);
    assert_true(ents[0].unpriv);
    assert_false(ents[0].chroot);
    assert_int_equal(ents[0].maxproc, 100);
    assert_int_equal(ents[0].argc, 1);
    assert_string_equal(ents[0].argv[0], "smtpd");
    assert_null(ents[0].argv[1]);
    assert_int_equal(ents[0].noverrides, 2);
    assert_string_equal(ents[0].overrides[0], "max_use=10");
    assert_string_equal(ents[0].overrides[1], "max_idle=30s");
    assert_null(ents[0].overrides[2]);
    assert_int_equal(ents[0].line, 2);
    assert_int_equal(ents[1].line, 5);
    assert_int_equal(ents[1].noverrides, 0);
    assert_null(ents[1].overrides[0]);
    assert_int_equal(ents[2].maxproc, 1);
    assert_string_equal(ents[2].type, "fifo");
    assert_true(ents[4].private_);
    assert_int_equal(ents[4].argc, 2);
    assert_string_equal(ents[4].argv[1], "-v");
    assert_true(ents[5].chroot);
    assert_int_equal(ents[5].maxproc, 0);
}

static void test_maxproc_dash_uses_default_process_limit(void **state)
{
    (void)state;
    assert_int_equal(config_load_text("main.cf", "default_process_limit = 7\n",
                                      strlen("default_process_limit = 7\n"), NULL),
                     0);
    assert_int_equal(parse("25 inet n - n - smtpd\n"), 0);
    assert_int_equal(ents[0].maxproc, 7);
}

static void test_override_on_first_line_and_joined_form(void **state)
{
    (void)state;
    assert_int_equal(parse("25 inet n - n - smtpd -o max_use=3 -omax_idle=5s arg\n"), 0);
    assert_int_equal(ents[0].noverrides, 2);
    assert_string_equal(ents[0].overrides[1], "max_idle=5s");
    assert_int_equal(ents[0].argc, 2);
    assert_string_equal(ents[0].argv[1], "arg");
}

static void test_override_values_may_contain_commas(void **state)
{
    (void)state;
    assert_int_equal(parse("25 inet n - n - smtpd\n -o mynetworks=127.0.0.0/8,[::1]/128\n"), 0);
    assert_string_equal(ents[0].overrides[0], "mynetworks=127.0.0.0/8,[::1]/128");
}

static void test_empty_file_has_no_services(void **state)
{
    (void)state;
    assert_int_equal(parse("# nothing\n\n"), 0);
    assert_int_equal(nents, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_too_few_columns_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_flag_column_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_maxproc_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_with_path_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inet_port_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_unix_name_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_without_value_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_of_unknown_parameter_is_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_continuation_without_entry_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_service_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_bad_line_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_master_cf_parses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maxproc_dash_uses_default_process_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_override_on_first_line_and_joined_form, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_override_values_may_contain_commas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_has_no_services, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
