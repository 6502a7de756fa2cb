/* Unit tests for libmail/smtp_parse: malformed input first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smtp_parse.h"

static enum smtp_parse_result parse(struct smtp_cmd *cmd, const char *line, const char **err)
{
    return smtp_parse_command(line, strlen(line), 0, cmd, err);
}

static void test_control_characters_are_syntax_errors(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "HELO a\rb", &err), SMTP_PARSE_SYNTAX);
    assert_non_null(err);
    assert_int_equal(parse(&cmd, "HELO a\nb", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(smtp_parse_command("NOOP\0x", 6, 0, &cmd, &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "HELO a\tb", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "HELO \x7f", &err), SMTP_PARSE_SYNTAX);
    smtp_cmd_release(&cmd);
}

static void test_eight_bit_needs_utf8_flag(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    const char *l = "HELO h\xc3\xa9";
    assert_int_equal(smtp_parse_command(l, strlen(l), 0, &cmd, &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(smtp_parse_command(l, strlen(l), SMTP_PARSE_UTF8, &cmd, &err), SMTP_PARSE_OK);
    smtp_cmd_release(&cmd);
}

static void test_empty_line_and_leading_space_are_syntax_errors(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, " HELO x", &err), SMTP_PARSE_SYNTAX);
    smtp_cmd_release(&cmd);
}

static void test_unknown_verbs_are_reported_with_truncated_text(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "XYZZY foo", NULL), SMTP_PARSE_UNKNOWN);
    assert_string_equal(cmd.verb_text, "XYZZY");
    assert_int_equal(cmd.verb, SMTP_VERB_UNKNOWN);
    assert_int_equal(parse(&cmd, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", NULL), SMTP_PARSE_UNKNOWN);
    assert_int_equal(strlen(cmd.verb_text), SMTP_VERB_TEXT_MAX - 1);
    assert_int_equal(parse(&cmd, "MA1L FROM:<a@b>", NULL), SMTP_PARSE_UNKNOWN);
    assert_int_equal(parse(&cmd, "get / HTTP/1.0", NULL), SMTP_PARSE_UNKNOWN);
    assert_string_equal(cmd.verb_text, "GET");
    smtp_cmd_release(&cmd);
}

static void test_mail_without_brackets_is_rejected(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "MAIL FROM:a@b.c", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL TO:<a@b.c>", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL FROM:", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(cmd.verb, SMTP_VERB_MAIL);
    smtp_cmd_release(&cmd);
}

static void test_bad_paths_are_address_errors(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c", &err), SMTP_PARSE_ADDRESS);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a b@c>", &err), SMTP_PARSE_ADDRESS);
    assert_int_equal(parse(&cmd, "MAIL FROM:<user>", &err), SMTP_PARSE_ADDRESS);
    assert_int_equal(parse(&cmd, "RCPT TO:<>", &err), SMTP_PARSE_ADDRESS);
    assert_int_equal(parse(&cmd, "RCPT TO:<alice>", &err), SMTP_PARSE_ADDRESS);
    assert_int_equal(cmd.verb, SMTP_VERB_RCPT);
    smtp_cmd_release(&cmd);
}

static void test_bad_parameters_are_rejected(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c>SIZE=1", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c> SIZE=", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c> -X=1", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c> A_B=1", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c> A=b=c", &err), SMTP_PARSE_SYNTAX);
    assert_int_equal(parse(&cmd, "MAIL FROM:<a@b.c> SIZE=1 size=2", &err), SMTP_PARSE_SYNTAX);
    assert_string_equal(err, "duplicate parameter");
    smtp_cmd_release(&cmd);
}

static void test_parameter_count_is_bounded(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    char line[1024] = "MAIL FROM:<a@b.c>";
    smtp_cmd_init(&cmd);
    for (int i = 0; i < SMTP_PARAM_MAX + 1; i++) {
        size_t l = strlen(line);
        line[l] = ' ';
        line[l + 1] = 'P';
        line[l + 2] = (char)('A' + i);
        line[l + 3] = '\0';
    }
    assert_int_equal(parse(&cmd, line, &err), SMTP_PARSE_SYNTAX);
    assert_string_equal(err, "too many parameters");
    smtp_cmd_release(&cmd);
}

static void test_overlong_line_is_rejected(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(smtp_parse_command("NOOP", SMTP_PARSE_LINE_MAX + 1, 0, &cmd, &err),
                     SMTP_PARSE_SYNTAX);
    smtp_cmd_release(&cmd);
}

static void test_mail_from_with_params_parses(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    const char *err = NULL;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "mail from:<Joe@Example.ORG> size=1000 body=8BITMIME  ", &err),
                     SMTP_PARSE_OK);
    assert_int_equal(cmd.verb, SMTP_VERB_MAIL);
    assert_true(cmd.has_path);
    assert_string_equal(cmd.path.local, "Joe");
    assert_string_equal(cmd.path.domain, "Example.ORG");
    assert_int_equal(cmd.nparams, 2);
    assert_string_equal(smtp_cmd_param(&cmd, "SIZE")->value, "1000");
    assert_string_equal(smtp_cmd_param(&cmd, "BODY")->value, "8BITMIME");
    assert_null(smtp_cmd_param(&cmd, "AUTH"));
    smtp_cmd_release(&cmd);
}

static void test_mail_from_space_after_colon_and_null_path(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "MAIL FROM: <a@b.c>", NULL), SMTP_PARSE_OK);
    assert_int_equal(parse(&cmd, "MAIL FROM:<>", NULL), SMTP_PARSE_OK);
    assert_null(cmd.path.local);
    assert_int_equal(cmd.nparams, 0);
    assert_int_equal(parse(&cmd, "MAIL FROM:<> KEYONLY", NULL), SMTP_PARSE_OK);
    assert_int_equal(cmd.nparams, 1);
    assert_null(cmd.params[0].value);
    smtp_cmd_release(&cmd);
}

static void test_rcpt_postmaster_without_domain_is_allowed(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "RCPT TO:<PostMaster>", NULL), SMTP_PARSE_OK);
    assert_null(cmd.path.domain);
    assert_int_equal(parse(&cmd, "RCPT TO:<bob@example.test> NOTIFY=NEVER", NULL), SMTP_PARSE_OK);
    assert_string_equal(cmd.path.local, "bob");
    assert_string_equal(cmd.params[0].key, "NOTIFY");
    smtp_cmd_release(&cmd);
}

static void test_simple_verbs_keep_their_argument(void **state)
{
    (void)state;
    struct smtp_cmd cmd;
    smtp_cmd_init(&cmd);
    assert_int_equal(parse(&cmd, "ehlo client.example  ", NULL), SMTP_PARSE_OK);
    assert_int_equal(cmd.verb, SMTP_VERB_EHLO);
    assert_string_equal(cmd.arg, "client.example");
    assert_int_equal(parse(&cmd, "DATA", NULL), SMTP_PARSE_OK);
    assert_int_equal(cmd.verb, SMTP_VERB_DATA);
    assert_string_equal(cmd.arg, "");
    assert_int_equal(parse(&cmd, "QUIT", NULL), SMTP_PARSE_OK);
    assert_string_equal(smtp_verb_name(cmd.verb), "QUIT");
    smtp_cmd_release(&cmd);
}

static void test_xtext_rejects_malformed_and_round_trips(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_false(smtp_xtext_decode("a+2", 3, &out));
    assert_false(smtp_xtext_decode("a+2g", 4, &out));
    assert_false(smtp_xtext_decode("a+2b", 4, &out)); /* lowercase hex is not xtext */
    assert_false(smtp_xtext_decode("a=b", 3, &out));
    assert_false(smtp_xtext_decode("a b", 3, &out));
    assert_true(smtp_xtext_decode("rfc822;a+2Bb@c", 14, &out));
    assert_string_equal(strbuf_str(&out), "rfc822;a+b@c");
    struct strbuf enc = STRBUF_INIT;
    smtp_xtext_encode("a+b=c d", 7, &enc);
    assert_string_equal(strbuf_str(&enc), "a+2Bb+3Dc+20d");
    assert_true(smtp_xtext_decode(enc.data, enc.len, &out));
    assert_string_equal(strbuf_str(&out), "a+b=c d");
    strbuf_release(&out);
    strbuf_release(&enc);
}

static void test_reply_lines_malformed_rejected(void **state)
{
    (void)state;
    int code;
    bool last;
    const char *text;
    size_t tl;
    assert_false(smtp_parse_reply("25", 2, &code, &last, &text, &tl));
    assert_false(smtp_parse_reply("650 x", 5, &code, &last, &text, &tl));
    assert_false(smtp_parse_reply("2a0 x", 5, &code, &last, &text, &tl));
    assert_false(smtp_parse_reply("250x", 4, &code, &last, &text, &tl));
    assert_false(smtp_parse_reply("250 a\rb", 7, &code, &last, &text, &tl));
    assert_true(smtp_parse_reply("250-PIPELINING", 14, &code, &last, &text, &tl));
    assert_int_equal(code, 250);
    assert_false(last);
    assert_int_equal(tl, 10);
    assert_memory_equal(text, "PIPELINING", 10);
    assert_true(smtp_parse_reply("354", 3, &code, &last, &text, &tl));
    assert_true(last);
    assert_int_equal(tl, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_characters_are_syntax_errors),
        cmocka_unit_test(test_eight_bit_needs_utf8_flag),
        cmocka_unit_test(test_empty_line_and_leading_space_are_syntax_errors),
        cmocka_unit_test(test_unknown_verbs_are_reported_with_truncated_text),
        cmocka_unit_test(test_mail_without_brackets_is_rejected),
        cmocka_unit_test(test_bad_paths_are_address_errors),
        cmocka_unit_test(test_bad_parameters_are_rejected),
        cmocka_unit_test(test_parameter_count_is_bounded),
        cmocka_unit_test(test_overlong_line_is_rejected),
        cmocka_unit_test(test_mail_from_with_params_parses),
        cmocka_unit_test(test_mail_from_space_after_colon_and_null_path),
        cmocka_unit_test(test_rcpt_postmaster_without_domain_is_allowed),
        cmocka_unit_test(test_simple_verbs_keep_their_argument),
        cmocka_unit_test(test_xtext_rejects_malformed_and_round_trips),
        cmocka_unit_test(test_reply_lines_malformed_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
