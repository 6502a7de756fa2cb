/*
 * pop3d - the POP3 server (RFC 1939, RFC 2449 CAPA).
 *
 * One connection per process at a time (SERVER_SINGLE): master hands us the
 * listening socket, server_main accepts and calls pop3d_service. Users are
 * the virtual users of virtual_user_maps; every Maildir belongs to
 * mail_owner, so the whole session runs unprivileged.
 *
 * TLS: STLS (RFC 2595) and POP3S (pop3d_tls_wrappermode, port 995) with the
 * certificate of pop3d_tls_cert_file, loaded in pre_init (before the
 * privilege drop; a reload restarts pop3d and reloads it). Logins without
 * TLS (USER/PASS, AUTH PLAIN) are refused unless the client is on loopback
 * (pop3d_plaintext_auth_loopback) or pop3d_plaintext_auth = yes.
 */
#include "config.h"
#include "msg.h"
#include "pop3d.h"
#include "server.h"

struct pop3d_params pop3d_params;
struct tls_ctx *pop3d_tls_ctx;
bool pop3d_tls_wrapper;

void pop3d_params_load(void)
{
    pop3d_params.timeout = config_time("pop3d_timeout");
    pop3d_params.auth_delay = config_time("pop3d_auth_failure_delay");
    pop3d_params.auth_limit = config_int("pop3d_auth_failure_limit");
    pop3d_params.line_limit = config_int("pop3d_line_length_limit");
    pop3d_params.error_limit = config_int("pop3d_error_limit");
    pop3d_params.plaintext_auth = config_bool("pop3d_plaintext_auth");
    pop3d_params.plaintext_auth_loopback = config_bool("pop3d_plaintext_auth_loopback");
    pop3d_params.tls_timeout_ms = (int)config_time("tls_handshake_timeout") * 1000;
}

static void pop3d_pre_init(void)
{
    struct strbuf err = STRBUF_INIT;
    if (tls_server_ctx_from_config("pop3d", &pop3d_tls_ctx, &err) < 0)
        msg_fatal("TLS: %s", strbuf_str(&err));
    pop3d_tls_wrapper = config_bool("pop3d_tls_wrappermode");
    if (pop3d_tls_wrapper && pop3d_tls_ctx == NULL)
        msg_fatal("pop3d_tls_wrappermode = yes needs pop3d_tls_cert_file");
    strbuf_release(&err);
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
        .template_ok = true,
    };
    msg_init("pop3d");
    server_main(argc, argv, &spec);
}
