/* Unit tests for libmail/config.c: main.cf parsing, expansion, overrides, types. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "strbuf.h"

static struct strbuf errs;

static int setup(void **state)
{
    (void)state;
    config_reset();
    config_set_directory("/cfg");
    strbuf_init(&errs, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_reset();
    strbuf_release(&errs);
    return 0;
}

static int load(const char *text)
{
    strbuf_reset(&errs);
    return config_load_text("main.cf", text, strlen(text), &errs);
}

/* ---------------------------------------------------------- malformed input */

static void test_missing_equals_is_error_with_line(void **state)
{
    (void)state;
    assert_int_equal(load("# comment\nmyhostname mail.example\n"), -1);
    assert_non_null(strstr(errs.data, "main.cf:2: "));
    assert_non_null(strstr(errs.data, "missing '='"));
}

static void test_line_without_name_is_error(void **state)
{
    (void)state;
    assert_int_equal(load("= value\n"), -1);
    assert_non_null(strstr(errs.data, "main.cf:1: "));
}

static void test_invalid_name_character_is_error(void **state)
{
    (void)state;
    assert_int_equal(load("my-hostname = x\n"), -1);
    assert_non_null(strstr(errs.data, "main.cf:1: invalid character '-'"));
}

static void test_continuation_without_parameter_is_error(void **state)
{
    (void)state;
    assert_int_equal(load("   orphan text\nmyhostname = a\n"), -1);
    assert_non_null(strstr(errs.data, "main.cf:1: continuation line"));
}

static void test_nul_byte_is_error(void **state)
{
    static const char text[] = "myhostname = a\0b\nmydomain = x\n";

    (void)state;
    strbuf_reset(&errs);
    assert_int_equal(config_load_text("main.cf", text, sizeof(text) - 1, &errs), -1);
    assert_non_null(strstr(errs.data, "main.cf:1: NUL byte"));
}

static void test_overlong_line_is_error(void **state)
{
    size_t n = 70000;
    char *text = malloc(n + 20);

    (void)state;
    memcpy(text, "myhostname = ", 13);
    memset(text + 13, 'a', n);
    text[13 + n] = '\n';
    strbuf_reset(&errs);
    assert_int_equal(config_load_text("main.cf", text, 14 + n, &errs), -1);
    assert_non_null(strstr(errs.data, "main.cf:1: line too long"));
    free(text);
}

static void test_every_error_is_reported(void **state)
{
    (void)state;
    assert_int_equal(load("a b\nok = 1\nc d\n"), -1);
    assert_non_null(strstr(errs.data, "main.cf:1:"));
    assert_non_null(strstr(errs.data, "main.cf:3:"));
}

static void test_failed_load_keeps_previous_values(void **state)
{
    (void)state;
    assert_int_equal(load("myhostname = good.example\n"), 0);
    assert_int_equal(load("myhostname = bad.example\nbroken\n"), -1);
    assert_string_equal(config_str("myhostname"), "good.example");
}

static void test_stray_dollar_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("myorigin = a$ b\n"), 0);
    strbuf_reset(&errs);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "main.cf:1: myorigin:"));
    assert_non_null(strstr(errs.data, "$$"));
}

static void test_unclosed_brace_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("myorigin = ${myhostname\n"), 0);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "missing '}'"));
}

static void test_expansion_loop_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("myorigin = $mydomain\nmydomain = x.$myorigin\n"), 0);
    strbuf_reset(&errs);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "loop"));
}

static void test_self_reference_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("myorigin = $myorigin\n"), 0);
    assert_int_equal(config_check(&errs), -1);
}

static void test_deep_reference_chain_is_bounded(void **state)
{
    struct strbuf text = STRBUF_INIT;

    (void)state;
    strbuf_reset(&text);
    for (int i = 0; i < 40; i++)
        strbuf_printf(&text, "v%d = $v%d\n", i, i + 1);
    strbuf_puts(&text, "v40 = end\nmyorigin = $v0\n");
    assert_int_equal(load(text.data), 0);
    strbuf_reset(&errs);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "too deeply"));
    strbuf_release(&text);
}

static void test_exponential_expansion_is_bounded(void **state)
{
    struct strbuf text = STRBUF_INIT;

    (void)state;
    strbuf_reset(&text);
    strbuf_puts(&text, "x0 = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
    for (int i = 1; i < 18; i++)
        strbuf_printf(&text, "x%d = $x%d$x%d$x%d$x%d\n", i, i - 1, i - 1, i - 1, i - 1);
    strbuf_puts(&text, "myorigin = $x17\n");
    assert_int_equal(load(text.data), 0);
    strbuf_reset(&errs);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "too long"));
    strbuf_release(&text);
}

static void test_undefined_reference_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("myorigin = $no_such_param\n"), 0);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "undefined parameter $no_such_param"));
    /* The getter is lenient: undefined expands to nothing. */
    assert_string_equal(config_str("myorigin"), "");
}

static void test_bad_integer_fails_check_with_line(void **state)
{
    (void)state;
    assert_int_equal(load("\n\nmax_use = lots\n"), 0);
    strbuf_reset(&errs);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "main.cf:3: max_use: expected a decimal integer"));
}

static void test_out_of_bounds_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("max_use = 0\n"), 0);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "out of range"));
}

static void test_integer_overflow_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("message_size_limit = 99999999999999999999999\n"), 0);
    assert_int_equal(config_check(&errs), -1);
    assert_int_equal(load("message_size_limit = 9999999999999999g\n"), 0);
    assert_int_equal(config_check(&errs), -1);
}

static void test_bad_time_suffix_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("max_idle = 10x\n"), 0);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "expected a time"));
}

static void test_bad_bool_fails_check(void **state)
{
    (void)state;
    assert_int_equal(load("sandbox = maybe\n"), 0);
    assert_int_equal(config_check(&errs), -1);
    assert_non_null(strstr(errs.data, "expected yes or no"));
}

static void test_override_unknown_name_fails(void **state)
{
    (void)state;
    strbuf_reset(&errs);
    assert_int_equal(config_override("no_such_param", "1", &errs), -1);
    assert_non_null(strstr(errs.data, "unknown parameter"));
}

static void test_override_invalid_value_fails_and_keeps_old(void **state)
{
    (void)state;
    assert_int_equal(load("max_use = 7\n"), 0);
    assert_int_equal(config_override("max_use", "x", &errs), -1);
    assert_int_equal(config_int("max_use"), 7);
    assert_int_equal(config_override("max_use", "0", &errs), -1);
    assert_int_equal(config_int("max_use"), 7);
}

static void test_config_directory_cannot_be_overridden(void **state)
{
    (void)state;
    assert_int_equal(config_override("config_directory", "/x", &errs), -1);
}

/* ---------------------------------------------------------- behaviour */

static void test_unknown_parameter_is_warning_only(void **state)
{
    (void)state;
    assert_int_equal(load("my_own_thing = 1\n"), 0);
    assert_non_null(strstr(errs.data, "main.cf:1: warning: unknown parameter"));
}

static void test_duplicate_parameter_later_wins_with_warning(void **state)
{
    (void)state;
    assert_int_equal(load("max_use = 5\nmax_use = 6\n"), 0);
    assert_non_null(strstr(errs.data, "warning"));
    assert_int_equal(config_int("max_use"), 6);
}

static void test_comments_blank_lines_and_continuations(void **state)
{
    (void)state;
    assert_int_equal(load("# top\r\n"
                          "mydestination = a.example,\r\n"
                          "    b.example\n"
                          "  # comment inside does not end the line\n"
                          "\n"
                          "\tc.example   \n"
                          "myorigin=x.example\n"),
                     0);
    assert_string_equal(config_str("mydestination"), "a.example, b.example c.example");
    assert_string_equal(config_str("myorigin"), "x.example");
}

static void test_empty_value_is_allowed(void **state)
{
    size_t n;
    char **l;

    (void)state;
    assert_int_equal(load("mynetworks =\n"), 0);
    assert_string_equal(config_str("mynetworks"), "");
    l = config_list("mynetworks", &n);
    assert_int_equal(n, 0);
    assert_null(l[0]);
    config_list_free(&l);
    assert_null(l);
}

static void test_defaults_are_compiled_in(void **state)
{
    (void)state;
    assert_string_equal(config_str("queue_directory"), "/var/spool/tegami");
    assert_int_equal(config_int("default_process_limit"), 100);
    assert_int_equal(config_time("max_idle"), 100);
    assert_int_equal(config_time("ipc_timeout"), 300);
    assert_int_equal(config_size("message_size_limit"), 10240000);
    assert_false(config_bool("sandbox"));
    assert_string_equal(config_str("mynetworks"), "127.0.0.0/8, [::1]/128");
    assert_string_equal(config_str("recipient_delimiter"), "+");
    assert_int_equal(config_check(&errs), 0);
}

static void test_myhostname_default_is_host_name(void **state)
{
    char host[256] = "";

    (void)state;
    gethostname(host, sizeof(host) - 1);
    assert_string_equal(config_str("myhostname"), host[0] ? host : "localhost");
}

static void test_mydomain_is_myhostname_minus_first_label(void **state)
{
    (void)state;
    assert_int_equal(load("myhostname = mail.example.test\n"), 0);
    assert_string_equal(config_str("mydomain"), "example.test");
    assert_string_equal(config_str("myorigin"), "mail.example.test");
    assert_string_equal(config_str("mydestination"),
                        "mail.example.test, localhost.example.test, localhost");
    assert_int_equal(load("myhostname = single\n"), 0);
    assert_string_equal(config_str("mydomain"), "localdomain");
}

static void test_config_directory_expands(void **state)
{
    (void)state;
    assert_string_equal(config_str("virtual_user_maps"), "hash:/cfg/users");
    assert_string_equal(config_str("alias_database"), "hash:/cfg/aliases");
    config_set_directory("/other");
    assert_string_equal(config_directory(), "/other");
    assert_string_equal(config_str("alias_maps"), "hash:/other/aliases");
}

static void test_dollar_forms_expand(void **state)
{
    (void)state;
    assert_int_equal(load("mydomain = d.example\n"
                          "myhostname = h.$mydomain\n"
                          "myorigin = ${myhostname}/$(mydomain)/$$mydomain/x$\n"),
                     0);
    /* A trailing lone '$' is an error; rewrite without it. */
    assert_int_equal(load("mydomain = d.example\n"
                          "myhostname = h.$mydomain\n"
                          "myorigin = ${myhostname}/$(mydomain)/$$mydomain\n"),
                     0);
    assert_string_equal(config_str("myorigin"), "h.d.example/d.example/$mydomain");
}

static void test_conditional_expansion(void **state)
{
    (void)state;
    assert_int_equal(load("recipient_delimiter =\n"
                          "mydomain = d.example\n"
                          "myorigin = [${mydomain?has $mydomain}][${recipient_delimiter:none}]"
                          "[${recipient_delimiter?x}][${mydomain:y}]\n"),
                     0);
    assert_string_equal(config_str("myorigin"), "[has d.example][none][][]");
}

static void test_user_defined_names_expand(void **state)
{
    (void)state;
    assert_int_equal(load("base = /srv/t\nqueue_directory = $base/queue\n"), 0);
    assert_string_equal(config_str("queue_directory"), "/srv/t/queue");
    assert_int_equal(config_check(&errs), 0);
}

static void test_override_beats_main_cf(void **state)
{
    (void)state;
    assert_int_equal(load("max_use = 5\n"), 0);
    assert_int_equal(config_override("max_use", "9", &errs), 0);
    assert_int_equal(config_int("max_use"), 9);
    /* Reloading main.cf keeps the override. */
    assert_int_equal(load("max_use = 6\n"), 0);
    assert_int_equal(config_int("max_use"), 9);
    config_reset();
    assert_int_equal(config_int("max_use"), 1000);
}

static void test_override_value_is_expanded(void **state)
{
    (void)state;
    assert_int_equal(load("myhostname = h.example\n"), 0);
    assert_int_equal(config_override("myorigin", "$myhostname", &errs), 0);
    assert_string_equal(config_str("myorigin"), "h.example");
}

static void test_time_suffixes(void **state)
{
    (void)state;
    assert_int_equal(load("max_idle = 2m\nipc_timeout = 1h\n"), 0);
    assert_int_equal(config_time("max_idle"), 120);
    assert_int_equal(config_time("ipc_timeout"), 3600);
    assert_int_equal(load("max_idle = 1d\nipc_timeout = 45s\n"), 0);
    assert_int_equal(config_time("max_idle"), 86400);
    assert_int_equal(config_time("ipc_timeout"), 45);
    assert_int_equal(load("max_idle = 1w\n"), 0);
    assert_int_equal(config_check(&errs), -1); /* above the 1 day bound */
    assert_int_equal(load("max_idle = 30\n"), 0);
    assert_int_equal(config_time("max_idle"), 30);
}

static void test_size_suffixes(void **state)
{
    (void)state;
    assert_int_equal(load("message_size_limit = 10k\n"), 0);
    assert_int_equal(config_size("message_size_limit"), 10240);
    assert_int_equal(load("message_size_limit = 2M\n"), 0);
    assert_int_equal(config_size("message_size_limit"), 2 * 1024 * 1024);
    assert_int_equal(load("message_size_limit = 1g\n"), 0);
    assert_int_equal(config_size("message_size_limit"), 1024LL * 1024 * 1024);
    assert_int_equal(load("message_size_limit = 0\n"), 0);
    assert_int_equal(config_size("message_size_limit"), 0);
}

static void test_bool_words(void **state)
{
    (void)state;
    assert_int_equal(load("sandbox = yes\n"), 0);
    assert_true(config_bool("sandbox"));
    assert_int_equal(load("sandbox = True\n"), 0);
    assert_true(config_bool("sandbox"));
    assert_int_equal(load("sandbox = no\n"), 0);
    assert_false(config_bool("sandbox"));
    assert_int_equal(load("sandbox = 0\n"), 0);
    assert_false(config_bool("sandbox"));
}

static void test_split_list_on_commas_and_space(void **state)
{
    size_t n;
    char **l = config_split_list(" a, b,,c\td ,\n e", &n);

    (void)state;
    assert_int_equal(n, 5);
    assert_string_equal(l[0], "a");
    assert_string_equal(l[2], "c");
    assert_string_equal(l[4], "e");
    assert_null(l[5]);
    config_list_free(&l);
    l = config_split_list("", &n);
    assert_int_equal(n, 0);
    assert_null(l[0]);
    config_list_free(&l);
}

static void test_find_param(void **state)
{
    const struct config_param *p;

    (void)state;
    p = config_find_param("message_size_limit");
    assert_non_null(p);
    assert_int_equal(p->type, CONFIG_SIZE);
    assert_null(config_find_param("nonexistent_parameter"));
}

static void test_load_reads_main_cf_from_directory(void **state)
{
    char tmpl[] = "/tmp/tegami-config-XXXXXX";
    char path[512];
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(tmpl));
    config_set_directory(tmpl);
    strbuf_reset(&errs);
    assert_int_equal(config_load(&errs), -1); /* missing main.cf */
    assert_non_null(strstr(errs.data, "main.cf: cannot open"));
    snprintf(path, sizeof(path), "%s/main.cf", tmpl);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("queue_directory = $config_directory/queue\nbogus\n", f);
    fclose(f);
    strbuf_reset(&errs);
    assert_int_equal(config_load(&errs), -1);
    assert_non_null(strstr(errs.data, "main.cf:2: "));
    f = fopen(path, "w");
    fputs("queue_directory = $config_directory/queue\n", f);
    fclose(f);
    assert_int_equal(config_load(&errs), 0);
    snprintf(path, sizeof(path), "%s/queue", tmpl);
    assert_string_equal(config_str("queue_directory"), path);
    snprintf(path, sizeof(path), "%s/main.cf", tmpl);
    unlink(path);
    rmdir(tmpl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_equals_is_error_with_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_without_name_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_name_character_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_without_parameter_is_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_line_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_error_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_load_keeps_previous_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_dollar_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unclosed_brace_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expansion_loop_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_reference_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_reference_chain_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exponential_expansion_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undefined_reference_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_integer_fails_check_with_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_bounds_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer_overflow_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_time_suffix_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bool_fails_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_unknown_name_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_invalid_value_fails_and_keeps_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_directory_cannot_be_overridden, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_parameter_is_warning_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_parameter_later_wins_with_warning, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_comments_blank_lines_and_continuations, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_empty_value_is_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_are_compiled_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_myhostname_default_is_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mydomain_is_myhostname_minus_first_label, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_directory_expands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dollar_forms_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_defined_names_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_beats_main_cf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_value_is_expanded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_suffixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_suffixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_list_on_commas_and_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_reads_main_cf_from_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
