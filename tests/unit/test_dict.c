/* Unit tests for libmail/dict: source parsing, building, lookups, reopen. */
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

#include "dict.h"
#include "mymalloc.h"

static char tmpdir[4096];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_scratch_dir(tmpdir, sizeof(tmpdir), "test_dict"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tree(tmpdir) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Collects emitted entries as "key=value\n". */
static int collect(void *ctx, const char *key, const char *value, struct strbuf *reason)
{
    (void)reason;
    struct strbuf *sb = ctx;
    strbuf_printf(sb, "%s=%s\n", key, value);
    return 0;
}

static long parse(const char *text, enum dict_format f, struct strbuf *out, struct strbuf *err)
{
    strbuf_reset(out);
    strbuf_reset(err);
    return dict_parse_source(text, strlen(text), f, collect, out, "src", err);
}

static void test_parse_map_rejects_key_without_value(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    assert_int_equal(parse("good value\nlonely\n", DICT_FORMAT_MAP, &out, &err), -1);
    assert_string_equal(err.data, "src:2: expected \"key value\"");
    strbuf_release(&out);
    strbuf_release(&err);
}

static void test_parse_reports_every_bad_line_with_its_number(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    assert_int_equal(parse(" cont\nk v\nbad\x01line x\nk2\n", DICT_FORMAT_MAP, &out, &err), -1);
    assert_non_null(strstr(err.data, "src:1: continuation line without an entry"));
    assert_non_null(strstr(err.data, "src:3: control character"));
    assert_non_null(strstr(err.data, "src:4: expected \"key value\""));
    strbuf_release(&out);
    strbuf_release(&err);
}

static void test_parse_rejects_nul_and_bare_cr(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    static const char nul[] = "a b\nc \0d\n";
    assert_int_equal(
        dict_parse_source(nul, sizeof(nul) - 1, DICT_FORMAT_MAP, collect, &out, "src", &err), -1);
    assert_string_equal(err.data, "src:2: NUL byte");
    assert_int_equal(parse("a b\rc\n", DICT_FORMAT_MAP, &out, &err), -1);
    assert_string_equal(err.data, "src:1: bare CR");
    /* CRLF line ends are fine. */
    assert_int_equal(parse("a b\r\nc d\r\n", DICT_FORMAT_MAP, &out, &err), 2);
    assert_string_equal(out.data, "a=b\nc=d\n");
    strbuf_release(&out);
    strbuf_release(&err);
}

static void test_parse_rejects_overlong_line(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT, text = STRBUF_INIT;
    strbuf_puts(&text, "k ");
    for (int i = 0; i < DICT_MAX_LINE; i++)
        strbuf_putc(&text, 'x');
    strbuf_puts(&text, "\nok yes\n");
    assert_int_equal(parse(text.data, DICT_FORMAT_MAP, &out, &err), -1);
    assert_string_equal(err.data, "src:1: line too long");
    assert_string_equal(out.data, "ok=yes\n");
    strbuf_release(&out);
    strbuf_release(&err);
    strbuf_release(&text);
}

static void test_parse_aliases_malformed(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    assert_int_equal(parse("noseparator\n", DICT_FORMAT_ALIASES, &out, &err), -1);
    assert_string_equal(err.data, "src:1: expected \"name: value\"");
    assert_int_equal(parse("a: \"open\n", DICT_FORMAT_ALIASES, &out, &err), -1);
    assert_string_equal(err.data, "src:1: unterminated quoted value");
    assert_int_equal(parse("a:   \n", DICT_FORMAT_ALIASES, &out, &err), -1);
    assert_string_equal(err.data, "src:1: no value");
    assert_int_equal(parse("a b: c\n", DICT_FORMAT_ALIASES, &out, &err), -1);
    assert_string_equal(err.data, "src:1: whitespace in alias name (quote it)");
    assert_int_equal(parse("a: \"x\" y\n", DICT_FORMAT_ALIASES, &out, &err), -1);
    assert_string_equal(err.data, "src:1: text after a quoted value (missing ',')");
    strbuf_release(&out);
    strbuf_release(&err);
}

static void test_parse_map_comments_blank_lines_and_continuations(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    const char *text = "# comment\n"
                       "\n"
                       "Key1   value one  \n"
                       "key2\tv2\n"
                       "   continued\n"
                       "  # a comment inside does not end the entry\n"
                       "\tmore\n"
                       "key3 x # not a comment\n";
    assert_int_equal(parse(text, DICT_FORMAT_MAP, &out, &err), 3);
    assert_string_equal(err.data, "");
    assert_string_equal(out.data,
                        "key1=value one\nkey2=v2 continued more\nkey3=x # not a comment\n");
    strbuf_release(&out);
    strbuf_release(&err);
}

static void test_parse_aliases_canonical_values(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    const char *text = "Postmaster: root\n"
                       "team : alice,bob ,\n"
                       "  carol\n"
                       "\"odd name\": \"|/usr/bin/prog a, b\", \"q\\\"x\"\n";
    assert_int_equal(parse(text, DICT_FORMAT_ALIASES, &out, &err), 3);
    assert_string_equal(out.data, "postmaster=root\n"
                                  "team=alice, bob, carol\n"
                                  "odd name=\"|/usr/bin/prog a, b\", \"q\\\"x\"\n");
    strbuf_release(&out);
    strbuf_release(&err);
}

static void test_alias_split_undoes_quoting(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    size_t n = 0;
    char **list = dict_alias_split("alice, \"|/usr/bin/prog a, b\", \"q\\\"x\"", &n, &err);
    assert_non_null(list);
    assert_int_equal(n, 3);
    assert_string_equal(list[0], "alice");
    assert_string_equal(list[1], "|/usr/bin/prog a, b");
    assert_string_equal(list[2], "q\"x");
    assert_null(list[3]);
    dict_alias_free(&list);
    assert_null(list);
    assert_null(dict_alias_split("a, \"open", &n, &err));
    strbuf_release(&err);
}

static void test_open_missing_file_is_an_error(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    char spec[4200];
    snprintf(spec, sizeof(spec), "hash:%s/nonexistent", tmpdir);
    assert_null(dict_open(spec, &err));
    assert_non_null(strstr(err.data, "nonexistent.db"));
    strbuf_reset(&err);
    assert_null(dict_open("nosuchtype:/x", &err));
    assert_non_null(strstr(err.data, "unknown table type"));
    strbuf_reset(&err);
    assert_null(dict_open("nocolon", &err));
    strbuf_release(&err);
}

static void test_build_refuses_malformed_source_and_keeps_old_table(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    char src[4200], spec[4300];
    path_of(src, sizeof(src), "badmap");
    snprintf(spec, sizeof(spec), "hash:%s", src);
    write_file(src, "a 1\n");
    assert_int_equal(dict_build(spec, DICT_FORMAT_MAP, &err), 1);
    write_file(src, "a 2\nbroken\n");
    assert_int_equal(dict_build(spec, DICT_FORMAT_MAP, &err), -1);
    assert_non_null(strstr(err.data, "badmap:2: expected"));
    struct dict *d = dict_open(spec, &err);
    assert_non_null(d);
    assert_int_equal(dict_lookup(d, "a", &v), DICT_FOUND);
    assert_string_equal(v.data, "1");
    dict_close(&d);
    /* No temporary files left behind. */
    char cmd[4400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q tmp", tmpdir);
    assert_int_not_equal(system(cmd), 0);
    strbuf_release(&err);
    strbuf_release(&v);
}

static void test_build_rejects_duplicate_keys(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    char src[4200], spec[4300];
    path_of(src, sizeof(src), "dupaliases");
    snprintf(spec, sizeof(spec), "hash:%s", src);
    write_file(src, "root: alice\nROOT: bob\n");
    assert_int_equal(dict_build(spec, DICT_FORMAT_ALIASES, &err), -1);
    assert_non_null(strstr(err.data, "dupaliases:2: duplicate key \"root\""));
    strbuf_release(&err);
}

static void test_build_and_lookup_is_case_insensitive(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    char src[4200], spec[4300];
    const char *types[] = {"hash", "btree"};
    for (int t = 0; t < 2; t++) {
        path_of(src, sizeof(src), types[t]);
        snprintf(spec, sizeof(spec), "%s:%s", types[t], src);
        write_file(src, "# aliases\nPostmaster: root\nalice: Alice@Example.ORG, bob\n");
        assert_int_equal(dict_build(spec, DICT_FORMAT_ALIASES, &err), 2);
        struct dict *d = dict_open(spec, &err);
        assert_non_null(d);
        assert_string_equal(dict_spec(d), spec);
        assert_int_equal(dict_lookup(d, "POSTMASTER", &v), DICT_FOUND);
        assert_string_equal(v.data, "root");
        assert_int_equal(dict_lookup(d, "Alice", &v), DICT_FOUND);
        assert_string_equal(v.data, "Alice@Example.ORG, bob"); /* values keep their case */
        assert_int_equal(dict_lookup(d, "carol", &v), DICT_NOTFOUND);
        assert_int_equal(dict_lookup(d, "", &v), DICT_NOTFOUND);
        dict_close(&d);
        assert_null(d);
    }
    strbuf_release(&err);
    strbuf_release(&v);
}

static void test_static_table_returns_its_value(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    struct dict *d = dict_open("static:OK", &err);
    assert_non_null(d);
    assert_int_equal(dict_lookup(d, "anything", &v), DICT_FOUND);
    assert_string_equal(v.data, "OK");
    dict_close(&d);
    assert_int_equal(dict_build("static:x", DICT_FORMAT_MAP, &err), -1);
    strbuf_release(&err);
    strbuf_release(&v);
}

static void test_build_pairs_and_reopen_after_rebuild(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    char src[4200], spec[4300];
    path_of(src, sizeof(src), "pairs");
    snprintf(spec, sizeof(spec), "hash:%s", src);
    const char *k1[] = {"Alice", "bob"}, *v1[] = {"h1", "h2"};
    assert_int_equal(dict_build_pairs(spec, k1, v1, 2, &err), 0);
    struct dict *d = dict_open(spec, &err);
    assert_non_null(d);
    assert_int_equal(dict_lookup(d, "alice", &v), DICT_FOUND);
    assert_string_equal(v.data, "h1");

    const char *k2[] = {"alice", "carol"}, *v2[] = {"new", "h3"};
    assert_int_equal(dict_build_pairs(spec, k2, v2, 2, &err), 0);
    sleep(1);
    usleep(100000);
    assert_int_equal(dict_lookup(d, "alice", &v), DICT_FOUND);
    assert_string_equal(v.data, "new");
    assert_int_equal(dict_lookup(d, "bob", &v), DICT_NOTFOUND);
    assert_int_equal(dict_lookup(d, "carol", &v), DICT_FOUND);

    /* A duplicate key makes the build fail and leaves the table alone. */
    const char *k3[] = {"x", "X"}, *v3[] = {"1", "2"};
    assert_int_equal(dict_build_pairs(spec, k3, v3, 2, &err), -1);
    assert_non_null(strstr(err.data, "duplicate key"));
    sleep(1);
    usleep(100000);
    assert_int_equal(dict_lookup(d, "carol", &v), DICT_FOUND);
    dict_close(&d);
    strbuf_release(&err);
    strbuf_release(&v);
}

static void test_built_table_takes_source_mode(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    char src[4200], db[4300], spec[4300];
    struct stat st;
    path_of(src, sizeof(src), "secret");
    snprintf(spec, sizeof(spec), "hash:%s", src);
    snprintf(db, sizeof(db), "%s.db", src);
    write_file(src, "k v\n");
    chmod(src, 0600);
    assert_int_equal(dict_build(spec, DICT_FORMAT_MAP, &err), 1);
    assert_int_equal(stat(db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    strbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_map_rejects_key_without_value),
        cmocka_unit_test(test_parse_reports_every_bad_line_with_its_number),
        cmocka_unit_test(test_parse_rejects_nul_and_bare_cr),
        cmocka_unit_test(test_parse_rejects_overlong_line),
        cmocka_unit_test(test_parse_aliases_malformed),
        cmocka_unit_test(test_parse_map_comments_blank_lines_and_continuations),
        cmocka_unit_test(test_parse_aliases_canonical_values),
        cmocka_unit_test(test_alias_split_undoes_quoting),
        cmocka_unit_test(test_open_missing_file_is_an_error),
        cmocka_unit_test(test_build_refuses_malformed_source_and_keeps_old_table),
        cmocka_unit_test(test_build_rejects_duplicate_keys),
        cmocka_unit_test(test_build_and_lookup_is_case_insensitive),
        cmocka_unit_test(test_static_table_returns_its_value),
        cmocka_unit_test(test_build_pairs_and_reopen_after_rebuild),
        cmocka_unit_test(test_built_table_takes_source_mode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
