/* Unit tests for libmail/esmtp_params: MAIL/RCPT parameter values and BDAT sizes. Malformed first.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "esmtp_params.h"
#include "smtp_parse.h"

/* Parse a MAIL line and its parameters; returns the esmtp result (or -1: line rejected). */
static int mail(const char *line, unsigned allow, struct esmtp_mail *out, const char **key_r)
{
    struct smtp_cmd cmd;
    const char *err = NULL;
    int r = -1;
    smtp_cmd_init(&cmd);
    static char keybuf[64]; /* the key points into cmd, which is released here */
    const char *key = NULL;
    if (smtp_parse_command(line, strlen(line), SMTP_PARSE_UTF8, &cmd, &err) == SMTP_PARSE_OK)
        r = (int)esmtp_mail_parse(cmd.params, cmd.nparams, allow, out, &key, &err);
    snprintf(keybuf, sizeof(keybuf), "%s", key ? key : "");
    *key_r = keybuf;
    smtp_cmd_release(&cmd);
    return r;
}

static int rcpt(const char *line, bool utf8, struct esmtp_rcpt *out)
{
    struct smtp_cmd cmd;
    const char *err = NULL, *key = NULL;
    int r = -1;
    smtp_cmd_init(&cmd);
    if (smtp_parse_command(line, strlen(line), SMTP_PARSE_UTF8, &cmd, &err) == SMTP_PARSE_OK) {
        r = (int)esmtp_rcpt_parse(cmd.params, cmd.nparams, utf8, out, &key, &err);
        if (r != ESMTP_OK) {
            assert_non_null(key);
            assert_non_null(err);
        }
    }
    smtp_cmd_release(&cmd);
    return r;
}

static void test_bad_xtext_is_syntax_error(void **state)
{
    (void)state;
    struct esmtp_mail m;
    struct esmtp_rcpt r;
    const char *key = NULL;
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=abc+", 0, &m, &key), ESMTP_SYNTAX);
    assert_string_equal(key, "ENVID");
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=abc+4", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=abc+4g", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=abc+4a", 0, &m, &key),
                     ESMTP_SYNTAX); /* lowercase hex */
    /* Decoded control characters would end up in DSN headers. */
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=a+0Ab", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=a+00b", 0, &m, &key), ESMTP_SYNTAX);
    /* 8-bit ENVID is never valid (xtext is ASCII). */
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=a\xc3\xa9", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;a+zzb", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;a+0Db", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=;a@b.c", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=a@b.c", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc_822;a@b.c", false, &r), ESMTP_SYNTAX);
    /* UTF-8 in an ORCPT only under SMTPUTF8. */
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;j+C3+B6e@b.c", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;j+C3+B6e@b.c", true, &r), ESMTP_OK);
    assert_string_equal(r.orcpt, "rfc822;j\xc3\xb6"
                                 "e@b.c");
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;j+C3e@b.c", true, &r), ESMTP_SYNTAX);
}

static void test_duplicate_and_empty_params_are_refused(void **state)
{
    (void)state;
    struct esmtp_mail m;
    struct esmtp_rcpt r;
    const char *key = NULL;
    /* smtp_parse refuses duplicates before this module sees them. */
    assert_int_equal(mail("MAIL FROM:<a@b.c> RET=FULL ret=HDRS", 0, &m, &key), -1);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=NEVER NOTIFY=NEVER", false, &r), -1);
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID=", 0, &m, &key), -1);
    /* Known keywords without their value. */
    assert_int_equal(mail("MAIL FROM:<a@b.c> ENVID", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> RET", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> BODY", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> SIZE", 0, &m, &key), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT", false, &r), ESMTP_SYNTAX);
    assert_int_equal(mail("MAIL FROM:<a@b.c> SMTPUTF8=1", 0, &m, &key), ESMTP_SYNTAX);
}

static void test_notify_rules(void **state)
{
    (void)state;
    struct esmtp_rcpt r;
    /* RFC 3461 §4.1: NEVER must be alone; each keyword at most once. */
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=NEVER,SUCCESS", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=SUCCESS,NEVER", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=SUCCESS,SUCCESS", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=SUCCESS,", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=,SUCCESS", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=ALWAYS", false, &r), ESMTP_SYNTAX);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> NOTIFY=NEVER", false, &r), ESMTP_OK);
    assert_int_equal(r.notify, ESMTP_NOTIFY_NEVER);
    assert_int_equal(rcpt("RCPT TO:<a@b.c> notify=success,Failure,DELAY", false, &r), ESMTP_OK);
    assert_int_equal(r.notify, ESMTP_NOTIFY_SUCCESS | ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY);
    assert_int_equal(rcpt("RCPT TO:<a@b.c>", false, &r), ESMTP_OK);
    assert_int_equal(r.notify, 0);
    assert_string_equal(r.orcpt, "");
}

static void test_oversized_envid_and_orcpt_are_refused(void **state)
{
    (void)state;
    char line[1200];
    struct esmtp_mail m;
    struct esmtp_rcpt r;
    const char *key = NULL;
    char val[600];

    memset(val, 'x', 101);
    val[101] = 0;
    snprintf(line, sizeof(line), "MAIL FROM:<a@b.c> ENVID=%s", val);
    assert_int_equal(mail(line, 0, &m, &key), ESMTP_SYNTAX);
    val[100] = 0; /* exactly 100: fine */
    snprintf(line, sizeof(line), "MAIL FROM:<a@b.c> ENVID=%s", val);
    assert_int_equal(mail(line, 0, &m, &key), ESMTP_OK);
    assert_int_equal(strlen(m.envid), 100);

    memset(val, 'y', sizeof(val));
    memcpy(val, "rfc822;", 7);
    val[501] = 0;
    snprintf(line, sizeof(line), "RCPT TO:<a@b.c> ORCPT=%s", val);
    assert_int_equal(rcpt(line, false, &r), ESMTP_SYNTAX);
    val[500] = 0;
    snprintf(line, sizeof(line), "RCPT TO:<a@b.c> ORCPT=%s", val);
    assert_int_equal(rcpt(line, false, &r), ESMTP_OK);
    assert_int_equal(strlen(r.orcpt), 500);
    /* An over-long addr-type. */
    snprintf(line, sizeof(line), "RCPT TO:<a@b.c> ORCPT=%040d;a@b.c", 0);
    assert_int_equal(rcpt(line, false, &r), ESMTP_SYNTAX);
}

static void test_bad_bdat_sizes(void **state)
{
    (void)state;
    unsigned long long n = 7;
    bool last = true;
    const char *err = NULL;
    const char *bad[] = {"",
                         " 1",
                         "1 ",
                         "-1",
                         "+1",
                         "0x10",
                         "1.5",
                         "1  LAST",
                         "1 LASTX",
                         "1 FIRST",
                         "LAST",
                         "1 LAST x",
                         "18446744073709551616",
                         "123456789012345678901",
                         "1\tLAST"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        assert_false(esmtp_bdat_parse(bad[i], &n, &last, &err));
        assert_non_null(err);
        assert_int_equal(n, 7); /* untouched */
    }
    assert_false(esmtp_bdat_parse(NULL, &n, &last, NULL));
    assert_true(esmtp_bdat_parse("0", &n, &last, &err));
    assert_int_equal(n, 0);
    assert_false(last);
    assert_true(esmtp_bdat_parse("0 LAST", &n, &last, &err));
    assert_true(last);
    assert_true(esmtp_bdat_parse("18446744073709551615 last", &n, &last, &err));
    assert_true(n == 18446744073709551615ULL);
    assert_true(esmtp_bdat_parse("00012", &n, &last, &err));
    assert_int_equal(n, 12);
}

static void test_unknown_params_are_unsupported(void **state)
{
    (void)state;
    struct esmtp_mail m;
    struct esmtp_rcpt r;
    const char *key = NULL;
    assert_int_equal(mail("MAIL FROM:<a@b.c> FOO=1", 0, &m, &key), ESMTP_UNSUPPORTED);
    assert_string_equal(key, "FOO");
    /* AUTH= only when AUTH is offered. */
    assert_int_equal(mail("MAIL FROM:<a@b.c> AUTH=<>", 0, &m, &key), ESMTP_UNSUPPORTED);
    assert_int_equal(mail("MAIL FROM:<a@b.c> AUTH=<>", ESMTP_ALLOW_AUTH, &m, &key), ESMTP_OK);
    assert_true(m.auth);
    /* MAIL parameters are not RCPT parameters. */
    assert_int_equal(rcpt("RCPT TO:<a@b.c> RET=FULL", false, &r), ESMTP_UNSUPPORTED);
    assert_int_equal(mail("MAIL FROM:<a@b.c> NOTIFY=NEVER", 0, &m, &key), ESMTP_UNSUPPORTED);
}

static void test_good_mail_params_decode(void **state)
{
    (void)state;
    struct esmtp_mail m;
    struct esmtp_rcpt r;
    const char *key = NULL;
    assert_int_equal(mail("MAIL FROM:<j\xc3\xb6"
                          "e@b.c> SMTPUTF8 BODY=binarymime RET=hdrs "
                          "ENVID=QQ+2B1+3D2 SIZE=123",
                          0, &m, &key),
                     ESMTP_OK);
    assert_true(m.smtputf8);
    assert_int_equal(m.body, ESMTP_BODY_BINARYMIME);
    assert_int_equal(m.ret, ESMTP_RET_HDRS);
    assert_string_equal(m.envid, "QQ+1=2");
    assert_true(m.has_size);
    assert_int_equal(m.size, 123);
    assert_int_equal(mail("MAIL FROM:<> RET=FULL BODY=8BITMIME", 0, &m, &key), ESMTP_OK);
    assert_int_equal(m.ret, ESMTP_RET_FULL);
    assert_int_equal(m.body, ESMTP_BODY_8BITMIME);
    assert_false(m.smtputf8);
    assert_string_equal(m.envid, "");
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=rfc822;bob+2Bx@b.c", false, &r), ESMTP_OK);
    assert_string_equal(r.orcpt, "rfc822;bob+x@b.c");
    /* RFC 6533 utf-8 type: kept as sent (raw UTF-8 only under SMTPUTF8). */
    assert_int_equal(rcpt("RCPT TO:<a@b.c> ORCPT=utf-8;j\\x{F6}e@b.c", false, &r), ESMTP_OK);
    assert_string_equal(r.orcpt, "utf-8;j\\x{F6}e@b.c");
    assert_true(esmtp_non_ascii("j\xc3\xb6"));
    assert_false(esmtp_non_ascii("joe"));
    assert_false(esmtp_non_ascii(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_xtext_is_syntax_error),
        cmocka_unit_test(test_duplicate_and_empty_params_are_refused),
        cmocka_unit_test(test_notify_rules),
        cmocka_unit_test(test_oversized_envid_and_orcpt_are_refused),
        cmocka_unit_test(test_bad_bdat_sizes),
        cmocka_unit_test(test_unknown_params_are_unsupported),
        cmocka_unit_test(test_good_mail_params_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
