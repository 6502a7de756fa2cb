/* Unit tests for smtpd/check.c: the reply to each command, without a socket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <strings.h>

#include "smtpd.h"

static const struct smtpd_limits limits = {
    .line_limit = 2048,
    .rcpt_limit = 2,
    .size_limit = 1000,
    .hard_error_limit = 20,
    .soft_error_limit = 10,
    .error_sleep = 0,
    .timeout = 300,
    .hopcount_limit = 50,
};

static enum recipient_class fake_classify(const char *address, struct strbuf *err)
{
    (void)err;
    if (strcmp(address, "alice@example.test") == 0 || strcasecmp(address, "postmaster") == 0)
        return RECIPIENT_LOCAL;
    if (strcmp(address, "nobody@example.test") == 0)
        return RECIPIENT_UNKNOWN_USER;
    if (strcmp(address, "broken@example.test") == 0)
        return RECIPIENT_ERROR;
    return RECIPIENT_REMOTE;
}

static struct smtpd_policy policy = {
    .limits = &limits,
    .myhostname = "mail.example.test",
    .client_trusted = false,
    .classify = fake_classify,
};

/* Parse line, check it in state st; returns the verdict, reply text in out. */
static struct smtpd_verdict run(const struct smtpd_state *st, const char *line, struct strbuf *out)
{
    struct smtp_cmd cmd;
    const char *perr = NULL;
    smtp_cmd_init(&cmd);
    enum smtp_parse_result pr = smtp_parse_command(line, strlen(line), 0, &cmd, &perr);
    struct smtpd_verdict v = smtpd_check(st, &policy, pr, perr, &cmd, false, out);
    smtp_cmd_release(&cmd);
    return v;
}

static const struct smtpd_state fresh = {false, false, false, 0};
static const struct smtpd_state greeted = {true, true, false, 0};
static const struct smtpd_state in_mail = {true, true, true, 0};
static const struct smtpd_state with_rcpt = {true, true, true, 1};

static void test_garbage_gets_500_or_502_and_counts_as_error(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtpd_verdict v = run(&greeted, "FOO bar", &out);
    assert_int_equal(v.code, 502);
    assert_true(v.count_error);
    assert_string_equal(strbuf_str(&out), "502 5.5.2 Error: command not recognized");
    v = run(&greeted, "", &out);
    assert_int_equal(v.code, 500);
    assert_true(v.count_error);
    v = run(&greeted, "EXPN staff", &out);
    assert_int_equal(v.code, 502);
    strbuf_release(&out);
}

static void test_sequence_errors_are_503(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&fresh, "MAIL FROM:<a@b.c>", &out).code, 503);
    assert_string_equal(strbuf_str(&out), "503 5.5.1 Error: send HELO/EHLO first");
    assert_int_equal(run(&greeted, "RCPT TO:<alice@example.test>", &out).code, 503);
    assert_int_equal(run(&greeted, "DATA", &out).code, 503);
    assert_int_equal(run(&in_mail, "MAIL FROM:<a@b.c>", &out).code, 503);
    assert_int_equal(run(&in_mail, "DATA", &out).code, 554);
    strbuf_release(&out);
}

static void test_syntax_errors_are_501(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&fresh, "EHLO", &out).code, 501);
    assert_int_equal(run(&greeted, "MAIL FROM:a@b.c", &out).code, 501);
    assert_memory_equal(strbuf_str(&out), "501 5.5.4", 9);
    assert_int_equal(run(&greeted, "MAIL FROM:<a b@c>", &out).code, 501);
    assert_memory_equal(strbuf_str(&out), "501 5.1.7", 9);
    assert_int_equal(run(&in_mail, "RCPT TO:<x y@c>", &out).code, 501);
    assert_memory_equal(strbuf_str(&out), "501 5.1.3", 9);
    assert_int_equal(run(&with_rcpt, "DATA now", &out).code, 501);
    assert_int_equal(run(&greeted, "RSET x", &out).code, 501);
    assert_int_equal(run(&greeted, "VRFY", &out).code, 501);
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> SIZE=12x", &out).code, 501);
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> BODY=BINARYMIME", &out).code, 501);
    strbuf_release(&out);
}

static void test_unknown_mail_parameter_is_555(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> AUTH=<>", &out).code, 555);
    assert_int_equal(run(&in_mail, "RCPT TO:<alice@example.test> NOTIFY=NEVER", &out).code, 555);
    /* after HELO (not EHLO) no parameter is allowed */
    struct smtpd_state helo = {true, false, false, 0};
    assert_int_equal(run(&helo, "MAIL FROM:<a@b.c> SIZE=10", &out).code, 555);
    strbuf_release(&out);
}

static void test_declared_size_over_limit_is_552(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtpd_verdict v = run(&greeted, "MAIL FROM:<a@b.c> SIZE=1001", &out);
    assert_int_equal(v.code, 552);
    assert_string_equal(strbuf_str(&out), "552 5.3.4 Message size exceeds fixed limit");
    v = run(&greeted, "MAIL FROM:<a@b.c> SIZE=99999999999999999999", &out);
    assert_int_equal(v.code, 552);
    v = run(&greeted, "MAIL FROM:<a@b.c> SIZE=1000 BODY=8bitmime", &out);
    assert_int_equal(v.code, 250);
    assert_int_equal(v.size, 1000);
    strbuf_release(&out);
}

static void test_rcpt_classification_replies(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&in_mail, "RCPT TO:<alice@example.test>", &out).code, 250);
    assert_string_equal(strbuf_str(&out), "250 2.1.5 Ok");
    assert_int_equal(run(&in_mail, "RCPT TO:<Postmaster>", &out).code, 250);
    assert_int_equal(run(&in_mail, "RCPT TO:<nobody@example.test>", &out).code, 550);
    assert_string_equal(
        strbuf_str(&out),
        "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown");
    assert_int_equal(run(&in_mail, "RCPT TO:<x@remote.example>", &out).code, 554);
    assert_string_equal(strbuf_str(&out), "554 5.7.1 <x@remote.example>: Relay access denied");
    assert_int_equal(run(&in_mail, "RCPT TO:<broken@example.test>", &out).code, 451);
    assert_memory_equal(strbuf_str(&out), "451 4.3.0", 9);
    policy.client_trusted = true;
    assert_int_equal(run(&in_mail, "RCPT TO:<x@remote.example>", &out).code, 250);
    policy.client_trusted = false;
    strbuf_release(&out);
}

static void test_recipient_limit_is_452_not_an_error(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtpd_state full = {true, true, true, 2};
    struct smtpd_verdict v = run(&full, "RCPT TO:<alice@example.test>", &out);
    assert_int_equal(v.code, 452);
    assert_false(v.count_error);
    assert_string_equal(strbuf_str(&out), "452 4.5.3 Error: too many recipients");
    strbuf_release(&out);
}

static void test_ehlo_advertises_extensions(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&fresh, "EHLO client.example", &out).code, 250);
    assert_string_equal(strbuf_str(&out), "250-mail.example.test\r\n250-PIPELINING\r\n"
                                          "250-SIZE 1000\r\n250-8BITMIME\r\n"
                                          "250 ENHANCEDSTATUSCODES");
    assert_int_equal(run(&fresh, "HELO client.example", &out).code, 250);
    assert_string_equal(strbuf_str(&out), "250 mail.example.test");
    strbuf_release(&out);
}

static void test_simple_commands(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&with_rcpt, "DATA", &out).code, 354);
    assert_int_equal(run(&fresh, "NOOP", &out).code, 250);
    assert_int_equal(run(&fresh, "RSET", &out).code, 250);
    assert_int_equal(run(&fresh, "HELP", &out).code, 214);
    assert_int_equal(run(&fresh, "VRFY alice", &out).code, 252);
    assert_memory_equal(strbuf_str(&out), "252 2.5.2", 9);
    struct smtpd_verdict v = run(&fresh, "QUIT", &out);
    assert_int_equal(v.code, 221);
    assert_true(v.disconnect);
    strbuf_release(&out);
}

static void test_forbidden_command_disconnects(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtp_cmd cmd;
    smtp_cmd_init(&cmd);
    enum smtp_parse_result pr = smtp_parse_command("GET / HTTP/1.0", 14, 0, &cmd, NULL);
    struct smtpd_verdict v = smtpd_check(&fresh, &policy, pr, NULL, &cmd, true, &out);
    assert_true(v.disconnect);
    assert_int_equal(v.code, 221);
    smtp_cmd_release(&cmd);
    strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_gets_500_or_502_and_counts_as_error),
        cmocka_unit_test(test_sequence_errors_are_503),
        cmocka_unit_test(test_syntax_errors_are_501),
        cmocka_unit_test(test_unknown_mail_parameter_is_555),
        cmocka_unit_test(test_declared_size_over_limit_is_552),
        cmocka_unit_test(test_rcpt_classification_replies),
        cmocka_unit_test(test_recipient_limit_is_452_not_an_error),
        cmocka_unit_test(test_ehlo_advertises_extensions),
        cmocka_unit_test(test_simple_commands),
        cmocka_unit_test(test_forbidden_command_disconnects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
