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

static const struct smtpd_state fresh = {false, false, false, 0, false, NULL, false, false, false};
static const struct smtpd_state greeted = {true, true, false, 0, false, NULL, false, false, false};
static const struct smtpd_state in_mail = {true, true, true, 0, false, NULL, false, false, false};
static const struct smtpd_state with_rcpt = {true, true, true, 1, false, NULL, false, false, false};

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
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> BODY=BINARY", &out).code, 501);
    strbuf_release(&out);
}

static void test_unknown_mail_parameter_is_555(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> AUTH=<>", &out).code, 555);
    assert_int_equal(run(&in_mail, "RCPT TO:<alice@example.test> FOO=1", &out).code, 555);
    /* after HELO (not EHLO) no parameter is allowed */
    struct smtpd_state helo = {true, false, false, 0, false, NULL, false, false, false};
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
    struct smtpd_state full = {true, true, true, 2, false, NULL, false, false, false};
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
                                          "250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
                                          "250-BINARYMIME\r\n"
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

/* ---- TLS, AUTH, submission -------------------------------------------- */

static int fake_sender_owned(const char *login, const char *sender, struct strbuf *err)
{
    (void)err;
    if (strcmp(sender, "broken@example.test") == 0)
        return -1;
    return strcmp(login, "alice") == 0 && strcmp(sender, "alice@example.test") == 0;
}

static struct smtpd_policy tls_policy(bool submission)
{
    struct smtpd_policy p = policy;
    p.tls_available = true;
    p.auth_enabled = true;
    p.auth_tls_only = true;
    p.submission = submission;
    p.sender_owned = fake_sender_owned;
    return p;
}

static struct smtpd_verdict run_p(const struct smtpd_policy *pol, const struct smtpd_state *st,
                                  const char *line, struct strbuf *out)
{
    struct smtp_cmd cmd;
    const char *perr = NULL;
    smtp_cmd_init(&cmd);
    enum smtp_parse_result pr = smtp_parse_command(line, strlen(line), 0, &cmd, &perr);
    struct smtpd_verdict v = smtpd_check(st, pol, pr, perr, &cmd, false, out);
    smtp_cmd_release(&cmd);
    return v;
}

static const struct smtpd_state tls_greeted = {true, true,  false, 0,    true,
                                               NULL, false, false, false};
static const struct smtpd_state tls_authed = {true,    true,  false, 0,    true,
                                              "alice", false, false, false};

static void test_starttls_only_when_configured_and_not_in_tls(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtpd_policy p = tls_policy(false);
    assert_int_equal(run(&greeted, "STARTTLS", &out).code, 502);
    assert_int_equal(run_p(&p, &greeted, "STARTTLS", &out).code, 220);
    assert_string_equal(strbuf_str(&out), "220 2.0.0 Ready to start TLS");
    assert_int_equal(run_p(&p, &greeted, "STARTTLS now", &out).code, 501);
    assert_int_equal(run_p(&p, &tls_greeted, "STARTTLS", &out).code, 554);
    /* EHLO: STARTTLS before TLS, AUTH only after it. */
    assert_int_equal(run_p(&p, &fresh, "EHLO c.example", &out).code, 250);
    assert_non_null(strstr(strbuf_str(&out), "250-STARTTLS\r\n"));
    assert_null(strstr(strbuf_str(&out), "AUTH"));
    const struct smtpd_state tls_fresh = {false, false, false, 0, true, NULL, false, false, false};
    assert_int_equal(run_p(&p, &tls_fresh, "EHLO c.example", &out).code, 250);
    assert_null(strstr(strbuf_str(&out), "STARTTLS"));
    assert_non_null(strstr(strbuf_str(&out), "250-AUTH PLAIN LOGIN\r\n"));
    p.auth_tls_only = false;
    assert_int_equal(run_p(&p, &fresh, "EHLO c.example", &out).code, 250);
    assert_non_null(strstr(strbuf_str(&out), "250-AUTH PLAIN LOGIN\r\n"));
    strbuf_release(&out);
}

static void test_auth_checks(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtpd_policy p = tls_policy(false);
    /* RFC 4954 §6: 538 before TLS when AUTH needs encryption. */
    assert_int_equal(run_p(&p, &greeted, "AUTH PLAIN", &out).code, 538);
    assert_int_equal(run_p(&p, &tls_greeted, "AUTH PLAIN", &out).code, 334);
    assert_int_equal(run_p(&p, &tls_greeted, "AUTH login dXNlcg==", &out).code, 334);
    assert_int_equal(run_p(&p, &tls_greeted, "AUTH CRAM-MD5", &out).code, 504);
    assert_int_equal(run_p(&p, &tls_greeted, "AUTH PLAIN a b", &out).code, 504);
    assert_int_equal(run_p(&p, &tls_greeted, "AUTH", &out).code, 501);
    assert_int_equal(run_p(&p, &tls_authed, "AUTH PLAIN", &out).code, 503);
    const struct smtpd_state tls_fresh = {false, false, false, 0, true, NULL, false, false, false};
    assert_int_equal(run_p(&p, &tls_fresh, "AUTH PLAIN", &out).code, 503);
    const struct smtpd_state tls_mail = {true, true, true, 0, true, NULL, false, false, false};
    assert_int_equal(run_p(&p, &tls_mail, "AUTH PLAIN", &out).code, 503);
    p.auth_enabled = false;
    assert_int_equal(run_p(&p, &tls_greeted, "AUTH PLAIN", &out).code, 503);
    strbuf_release(&out);
}

static void test_submission_needs_auth_and_owned_sender(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    struct smtpd_policy p = tls_policy(true);
    struct smtpd_verdict v = run_p(&p, &tls_greeted, "MAIL FROM:<alice@example.test>", &out);
    assert_int_equal(v.code, 530);
    assert_string_equal(strbuf_str(&out), "530 5.7.0 Authentication required");
    assert_int_equal(run_p(&p, &tls_authed, "MAIL FROM:<alice@example.test>", &out).code, 250);
    assert_int_equal(run_p(&p, &tls_authed, "MAIL FROM:<bob@example.test>", &out).code, 553);
    assert_memory_equal(strbuf_str(&out), "553 5.7.1 ", 10);
    assert_int_equal(run_p(&p, &tls_authed, "MAIL FROM:<broken@example.test>", &out).code, 451);
    /* RFC 4954 §5 AUTH= is accepted when AUTH is offered. */
    assert_int_equal(run_p(&p, &tls_authed, "MAIL FROM:<alice@example.test> AUTH=<>", &out).code,
                     250);
    /* Authenticated clients may relay; others may not. */
    const struct smtpd_state authed_mail = {true,    true,  true,  0,    true,
                                            "alice", false, false, false};
    const struct smtpd_state anon_mail = {true, true, true, 0, true, NULL, false, false, false};
    assert_int_equal(run_p(&p, &authed_mail, "RCPT TO:<x@remote.example>", &out).code, 250);
    assert_int_equal(run_p(&p, &anon_mail, "RCPT TO:<x@remote.example>", &out).code, 554);
    strbuf_release(&out);
}

/* Parse with the flags session.c would use (UTF-8 paths after EHLO). */
static struct smtpd_verdict run_u(const struct smtpd_state *st, const char *line,
                                  struct strbuf *out)
{
    struct smtp_cmd cmd;
    const char *perr = NULL;
    smtp_cmd_init(&cmd);
    enum smtp_parse_result pr = smtp_parse_command(
        line, strlen(line), smtpd_parse_flags(st, line, strlen(line)), &cmd, &perr);
    struct smtpd_verdict v = smtpd_check(st, &policy, pr, perr, &cmd, false, out);
    smtp_cmd_release(&cmd);
    return v;
}

static void test_utf8_address_needs_smtputf8(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    /* RFC 6531 §3.5: 553 5.6.7 without SMTPUTF8. */
    assert_int_equal(run_u(&greeted,
                           "MAIL FROM:<j\xc3\xb6"
                           "e@b.example>",
                           &out)
                         .code,
                     553);
    assert_memory_equal(strbuf_str(&out), "553 5.6.7 ", 10);
    assert_int_equal(run_u(&greeted,
                           "MAIL FROM:<j\xc3\xb6"
                           "e@b.example> SMTPUTF8",
                           &out)
                         .code,
                     250);
    assert_int_equal(run_u(&greeted, "MAIL FROM:<a@b.example> SMTPUTF8=yes", &out).code, 501);
    assert_int_equal(run_u(&in_mail,
                           "RCPT TO:<j\xc3\xb6"
                           "e@example.test>",
                           &out)
                         .code,
                     553);
    assert_memory_equal(strbuf_str(&out), "553 5.6.7 ", 10);
    struct smtpd_state utf8_mail = in_mail;
    utf8_mail.smtputf8 = true;
    /* Classified (fake: remote, not trusted): past the SMTPUTF8 check. */
    assert_int_equal(run_u(&utf8_mail,
                           "RCPT TO:<j\xc3\xb6"
                           "e@example.test>",
                           &out)
                         .code,
                     554);
    /* Malformed UTF-8 is a bad address, SMTPUTF8 or not. */
    assert_int_equal(run_u(&utf8_mail,
                           "RCPT TO:<j\xc3"
                           "e@example.test>",
                           &out)
                         .code,
                     501);
    /* After HELO no UTF-8 at all: an 8-bit command is a syntax error. */
    struct smtpd_state helo = greeted;
    helo.esmtp = false;
    assert_int_equal(run_u(&helo,
                           "MAIL FROM:<j\xc3\xb6"
                           "e@b.example>",
                           &out)
                         .code,
                     500);
    strbuf_release(&out);
}

static void test_dsn_parameters(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> RET=HDRS ENVID=QQ+2B1", &out).code, 250);
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> RET=BODY", &out).code, 501);
    assert_int_equal(run(&greeted, "MAIL FROM:<a@b.c> ENVID=a+zz", &out).code, 501);
    assert_string_equal(strbuf_str(&out), "501 5.5.4 Bad ENVID parameter (malformed ENVID xtext)");
    assert_int_equal(run(&in_mail,
                         "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b",
                         &out)
                         .code,
                     250);
    assert_int_equal(run(&in_mail, "RCPT TO:<alice@example.test> NOTIFY=NEVER", &out).code, 250);
    assert_int_equal(run(&in_mail, "RCPT TO:<alice@example.test> NOTIFY=NEVER,DELAY", &out).code,
                     501);
    assert_int_equal(run(&in_mail, "RCPT TO:<alice@example.test> ORCPT=alice", &out).code, 501);
    strbuf_release(&out);
}

static void test_bdat_checks(void **state)
{
    (void)state;
    struct strbuf out = STRBUF_INIT;
    /* A size we cannot parse: 501 and the session ends (the bytes cannot be skipped). */
    struct smtpd_verdict v = run(&with_rcpt, "BDAT", &out);
    assert_int_equal(v.code, 501);
    assert_true(v.disconnect);
    v = run(&with_rcpt, "BDAT -1", &out);
    assert_true(v.disconnect);
    v = run(&with_rcpt, "BDAT 10 FIRST", &out);
    assert_true(v.disconnect);
    v = run(&with_rcpt, "BDAT 99999999999999999999999", &out);
    assert_true(v.disconnect);
    /* Sequence errors: the chunk is read and discarded (session.c), not a disconnect. */
    v = run(&greeted, "BDAT 10", &out);
    assert_int_equal(v.code, 503);
    assert_false(v.disconnect);
    v = run(&in_mail, "BDAT 10 LAST", &out);
    assert_int_equal(v.code, 554);
    v = run(&with_rcpt, "BDAT 10 last", &out);
    assert_int_equal(v.code, 250);
    assert_int_equal(v.size, 10);
    /* RFC 3030: no DATA after BDAT, none with BODY=BINARYMIME. */
    struct smtpd_state st = with_rcpt;
    st.bdat = true;
    assert_int_equal(run(&st, "DATA", &out).code, 503);
    st = with_rcpt;
    st.binarymime = true;
    assert_int_equal(run(&st, "DATA", &out).code, 503);
    assert_int_equal(run(&st, "BDAT 1", &out).code, 250);
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
        cmocka_unit_test(test_starttls_only_when_configured_and_not_in_tls),
        cmocka_unit_test(test_auth_checks),
        cmocka_unit_test(test_submission_needs_auth_and_owned_sender),
        cmocka_unit_test(test_utf8_address_needs_smtputf8),
        cmocka_unit_test(test_dsn_parameters),
        cmocka_unit_test(test_bdat_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
