/*
 * imapd - the IMAP server (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2).
 *
 * One connection per process at a time (SERVER_SINGLE, like pop3d): master
 * hands us the listening socket, server_main accepts and calls
 * imapd_service. Users are the virtual users of virtual_user_maps; their
 * Maildirs belong to mail_owner, so the whole session runs unprivileged.
 *
 * TLS: STARTTLS and IMAPS (imapd_tls_wrappermode, port 993) with the
 * certificate of imapd_tls_cert_file, loaded in pre_init. Logins without
 * TLS are refused (LOGINDISABLED) unless the client is on loopback
 * (imapd_plaintext_auth_loopback) or imapd_plaintext_auth = yes.
 */
#include "config.h"
#include "imapd.h"
#include "msg.h"
#include "server.h"
#include "vuser.h"

struct imapd_params imapd_params;
struct tls_ctx *imapd_tls_ctx;
bool imapd_tls_wrapper;

/* Hard ceiling of one literal in memory, whatever the parameters say. */
#define APPEND_HARD_MAX (1024LL * 1024 * 1024)

void imapd_params_load(void)
{
    imapd_params.timeout = config_time("imapd_timeout");
    imapd_params.preauth_timeout = config_time("imapd_preauth_timeout");
    imapd_params.idle_timeout = config_time("imapd_idle_timeout");
    imapd_params.auth_delay = config_time("imapd_auth_failure_delay");
    imapd_params.auth_limit = config_int("imapd_auth_failure_limit");
    imapd_params.line_limit = config_size("imapd_max_line_length");
    imapd_params.literal_limit = config_size("imapd_max_literal_size");
    imapd_params.append_limit = config_size("imapd_max_append_size");
    if (imapd_params.append_limit <= 0 || imapd_params.append_limit > APPEND_HARD_MAX)
        imapd_params.append_limit = APPEND_HARD_MAX;
    imapd_params.command_limit = config_size("imapd_max_command_size");
    imapd_params.list_depth = config_int("imapd_max_list_depth");
    imapd_params.error_limit = config_int("imapd_error_limit");
    imapd_params.user_conn_limit = config_int("imapd_user_connection_limit");
    imapd_params.idle_notify_ms = config_time("imapd_idle_check_interval") * 1000;
    imapd_params.release_ms = config_time("imapd_idle_release_delay") * 1000;
    imapd_params.plaintext_auth = config_bool("imapd_plaintext_auth");
    imapd_params.plaintext_auth_loopback = config_bool("imapd_plaintext_auth_loopback");
    imapd_params.tls_timeout_ms = (int)config_time("tls_handshake_timeout") * 1000;
}

static void imapd_pre_init(void)
{
    struct strbuf err = STRBUF_INIT;
    if (tls_server_ctx_from_config("imapd", &imapd_tls_ctx, &err) < 0)
        msg_fatal("TLS: %s", strbuf_str(&err));
    imapd_tls_wrapper = config_bool("imapd_tls_wrappermode");
    if (imapd_tls_wrapper && imapd_tls_ctx == NULL)
        msg_fatal("imapd_tls_wrappermode = yes needs imapd_tls_cert_file");
    strbuf_release(&err);
}

static void imapd_post_init(void)
{
    imapd_params_load();
    /*
     * Open virtual_user_maps now rather than at the first login: in a
     * template (service_templates) the table's handle and cache are then
     * shared copy-on-write by every worker instead of built by each (~25 KiB
     * of heap a worker, scattered over more pages). A worker reopens it by
     * itself when the table file changes (dict.c). Errors show at login.
     */
    struct vuser u;
    struct strbuf err = STRBUF_INIT;
    if (vuser_lookup("tegami-imapd-template", &u, &err) > 0)
        vuser_release(&u);
    strbuf_release(&err);
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_SINGLE,
        .pre_init = imapd_pre_init,
        .post_init = imapd_post_init,
        .service = imapd_service,
        .loop = NULL,
        .template_ok = true,
    };
    msg_init("imapd");
    server_main(argc, argv, &spec);
}
