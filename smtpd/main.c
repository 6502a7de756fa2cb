/*
 * smtpd - the SMTP server (RFC 5321), one client at a time.
 *
 * master starts it with the listening socket on fd 3 (server.h). Each
 * connection is one session (session.c); commands are checked (check.c)
 * and mail is written straight into incoming/ (data.c). Configuration is
 * read once per process, at post_init: no per-message reloading, no fork.
 */
#include <stdlib.h>

#include "abuse.h"
#include "config.h"
#include "msg.h"
#include "server.h"
#include "smtpd.h"
#include "sock.h"
#include "strbuf.h"

static struct smtpd_limits limits;
static struct smtpd_policy policy;
static struct sock_networks *mynetworks;
static struct strbuf banner = STRBUF_INIT;
static char **forbidden;

/* Read every parameter once; a bad value is fatal at start, not per client. */
static void smtpd_post_init(void)
{
    struct strbuf err = STRBUF_INIT;

    limits.line_limit = (size_t)config_int("smtpd_line_length_limit");
    limits.rcpt_limit = (size_t)config_int("smtpd_recipient_limit");
    limits.size_limit = (unsigned long long)config_size("message_size_limit");
    limits.hard_error_limit = (int)config_int("smtpd_hard_error_limit");
    limits.soft_error_limit = (int)config_int("smtpd_soft_error_limit");
    limits.error_sleep = (int)config_time("smtpd_error_sleep_time");
    limits.timeout = (int)config_time("smtpd_timeout");
    limits.hopcount_limit = (int)config_int("hopcount_limit");

    mynetworks = sock_networks_parse(config_str("mynetworks"), &err);
    if (mynetworks == NULL)
        msg_fatal("bad mynetworks: %s", strbuf_str(&err));
    strbuf_release(&err);

    strbuf_puts(&banner, config_str("smtpd_banner"));
    forbidden = config_list("smtpd_forbidden_commands", NULL);

    policy.limits = &limits;
    policy.myhostname = config_str("myhostname");
    policy.classify = recipient_classify;
    smtpd_submission_policy(&policy); /* TLS, AUTH, submission (submission.c) */
    smtpd_abuse_init();
}

static void smtpd_service(struct server_client *client)
{
    struct smtpd_policy p = policy;
    /* DESIGN invariant 5: only mynetworks may relay (an empty list: nobody). */
    p.client_trusted = client->peer.ss_family != AF_UNIX &&
                       sock_networks_match(mynetworks, (const struct sockaddr *)&client->peer);
    /* Connection limits and the pre-greeting check (abuse.c). */
    if (!smtpd_abuse_connect(client, &banner))
        return;
    smtpd_session_run(client, &limits, &p, &banner, forbidden);
    smtpd_abuse_disconnect(client);
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_SINGLE,
        .pre_init = smtpd_tls_pre_init, /* certificates, before the privilege drop */
        .post_init = smtpd_post_init,
        .service = smtpd_service,
        .template_ok = true,
    };
    server_main(argc, argv, &spec);
}
