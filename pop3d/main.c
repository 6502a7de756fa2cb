/*
 * pop3d - the POP3 server (RFC 1939, RFC 2449 CAPA).
 *
 * One connection per process at a time (SERVER_SINGLE): master hands us the
 * listening socket, server_main accepts and calls pop3d_service. Users are
 * the virtual users of virtual_user_maps; every Maildir belongs to
 * mail_owner, so the whole session runs unprivileged.
 *
 * XXX: USER/PASS in plain text is allowed because tegami has no TLS yet.
 * When TLS arrives, STLS (and SASL AUTH) are the hooks in commands.c, and a
 * parameter should forbid plain-text logins on unencrypted connections.
 */
#include "config.h"
#include "msg.h"
#include "pop3d.h"
#include "server.h"

struct pop3d_params pop3d_params;

void pop3d_params_load(void)
{
    pop3d_params.timeout = config_time("pop3d_timeout");
    pop3d_params.auth_delay = config_time("pop3d_auth_failure_delay");
    pop3d_params.auth_limit = config_int("pop3d_auth_failure_limit");
    pop3d_params.line_limit = config_int("pop3d_line_length_limit");
    pop3d_params.error_limit = config_int("pop3d_error_limit");
}

static void pop3d_pre_init(void)
{
}

static void pop3d_post_init(void)
{
    pop3d_params_load();
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_SINGLE,
        .pre_init = pop3d_pre_init,
        .post_init = pop3d_post_init,
        .service = pop3d_service,
        .loop = NULL,
    };
    msg_init("pop3d");
    server_main(argc, argv, &spec);
}
