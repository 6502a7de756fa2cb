/*
 * submission - message submission (RFC 6409) policy of smtpd: who may
 * use which sender address, and the headers a submission server adds.
 *
 * A service with smtpd_submission = yes (587, 465 in the sandbox) requires
 * AUTH before MAIL (check.c, 530 5.7.0). An authenticated client, on any
 * service, may only use sender addresses its login owns:
 * smtpd_sender_login_maps is a list of tables mapping a sender address,
 * else "@domain", to the logins (separated by commas or spaces) allowed to
 * use it, like Postfix's; an entry decides. Without an entry, "login@D"
 * and "login+ext@D" belong to login for every local domain D
 * (mydestination). The null sender is allowed (bounces sent by a client).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "config.h"
#include "dict.h"
#include "msg.h"
#include "mymalloc.h"
#include "recipient.h"
#include "smtpd.h"

void smtpd_submission_policy(struct smtpd_policy *policy)
{
    policy->tls_available = smtpd_tls_available();
    policy->auth_enabled = config_bool("smtpd_sasl_auth_enable") || config_bool("smtpd_submission");
    policy->auth_tls_only = config_bool("smtpd_tls_auth_only");
    policy->submission = config_bool("smtpd_submission");
    policy->sender_owned = smtpd_sender_owned;
}

const char *smtpd_protocol_name(bool esmtp, bool tls, bool auth)
{
    if (!esmtp)
        return "SMTP";
    if (tls && auth)
        return "ESMTPSA";
    if (tls)
        return "ESMTPS";
    if (auth)
        return "ESMTPA";
    return "ESMTP";
}

/* The tables of smtpd_sender_login_maps, opened once per process. */
static struct dict **login_maps;
static size_t login_nmaps;
static bool login_maps_open;

static int open_login_maps(struct strbuf *err)
{
    if (login_maps_open)
        return 0;
    size_t n = 0;
    char **specs = config_list("smtpd_sender_login_maps", &n);
    struct dict **maps = mycalloc(n + 1, sizeof(*maps));
    for (size_t i = 0; i < n; i++) {
        maps[i] = dict_open(specs[i], err);
        if (maps[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                dict_close(&maps[j]);
            myfree(maps);
            config_list_free(&specs);
            return -1;
        }
    }
    config_list_free(&specs);
    login_maps = maps;
    login_nmaps = n;
    login_maps_open = true;
    return 0;
}

/* Is login in the value list "a, b c"? */
static bool value_has_login(const char *value, const char *login)
{
    char **names = config_split_list(value, NULL);
    bool found = false;
    for (char **p = names; *p && !found; p++)
        found = strcasecmp(*p, login) == 0;
    config_list_free(&names);
    return found;
}

int smtpd_sender_owned(const char *login, const char *sender, struct strbuf *err)
{
    if (sender[0] == '\0')
        return 1;
    struct strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    int rc = -2; /* no entry yet */
    if (open_login_maps(err) < 0)
        return -1;
    const char *at = strrchr(sender, '@');
    for (size_t i = 0; i < login_nmaps && rc == -2; i++) {
        for (int pass = 0; pass < 2 && rc == -2; pass++) {
            strbuf_reset(&key);
            if (pass == 0)
                strbuf_puts(&key, sender);
            else if (at)
                strbuf_puts(&key, at);
            else
                break;
            switch (dict_lookup(login_maps[i], key.data, &value)) {
            case DICT_FOUND:
                rc = value_has_login(value.data, login) ? 1 : 0;
                break;
            case DICT_ERROR:
                strbuf_printf(err, "%s: lookup of %s failed", dict_spec(login_maps[i]), key.data);
                rc = -1;
                break;
            default:
                break;
            }
        }
    }
    if (rc == -2) {
        /* Default: login@<local domain>, with or without an extension. */
        rc = 0;
        if (at && recipient_domain_is_local(at + 1)) {
            struct strbuf user = STRBUF_INIT;
            recipient_local_user(sender, &user);
            rc = strcmp(strbuf_str(&user), login) == 0;
            strbuf_release(&user);
        }
    }
    strbuf_release(&key);
    strbuf_release(&value);
    return rc;
}

void smtpd_submission_header(struct smtpd_submission_hdrs *h, const char *line, size_t len)
{
    if (!h->active)
        return;
    if (len >= 5 && strncasecmp(line, "Date:", 5) == 0)
        h->date = true;
    else if (len >= 11 && strncasecmp(line, "Message-ID:", 11) == 0)
        h->message_id = true;
}

void smtpd_submission_missing(const struct smtpd_submission_hdrs *h, const char *queue_id,
                              const char *myhostname, struct strbuf *out)
{
    if (!h->active)
        return;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (!h->date) {
        char date[64];
        if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) > 0)
            strbuf_printf(out, "Date: %s\n", date);
    }
    if (!h->message_id) {
        /* RFC 5322 §3.6.4: unique: time, queue ID (unique per host), random. */
        unsigned char rnd[4] = {0, 0, 0, 0};
        (void)RAND_bytes(rnd, sizeof(rnd));
        char stamp[32];
        if (strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
            stamp[0] = '\0';
        strbuf_printf(out, "Message-ID: <%s.%s.%02x%02x%02x%02x@%s>\n", stamp, queue_id, rnd[0],
                      rnd[1], rnd[2], rnd[3], myhostname);
    }
}
