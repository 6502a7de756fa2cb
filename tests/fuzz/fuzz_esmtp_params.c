/* libFuzzer target: MAIL/RCPT ESMTP parameter values (esmtp_params) and BDAT arguments. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "esmtp_params.h"
#include "mymalloc.h"
#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_cmd cmd;
    struct esmtp_mail m;
    struct esmtp_rcpt r;
    const char *err, *key;
    unsigned long long n;
    bool last;

    smtp_cmd_init(&cmd);
    if (smtp_parse_command((const char *)data, size, SMTP_PARSE_UTF8, &cmd, &err) ==
        SMTP_PARSE_OK) {
        esmtp_mail_parse(cmd.params, cmd.nparams, ESMTP_ALLOW_AUTH, &m, &key, &err);
        esmtp_rcpt_parse(cmd.params, cmd.nparams, true, &r, &key, &err);
        esmtp_rcpt_parse(cmd.params, cmd.nparams, false, &r, &key, &err);
        if (cmd.verb == SMTP_VERB_BDAT)
            esmtp_bdat_parse(cmd.arg, &n, &last, &err);
    }
    smtp_cmd_release(&cmd);
    char *s = mymalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    esmtp_bdat_parse(s, &n, &last, &err);
    myfree(s);
    return 0;
}
