/*
 * tls - smtpd's TLS: the server context and the handshake for STARTTLS
 * (RFC 3207) and implicit TLS (RFC 8314, smtpd_tls_wrappermode).
 *
 * The context is made in pre_init, before the privilege drop (a real
 * key file is usually readable by root only), once per process: master
 * restarts every smtpd on `mailctl reload`, so new certificate files take
 * effect then. A bad certificate or key is fatal at start (master throttles
 * the service and the log says why) rather than a silent plain-text server.
 */
#include <stdlib.h>

#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "smtpd.h"
#include "stream.h"
#include "tls.h"

static struct tls_ctx *smtpd_tls_ctx;
static bool smtpd_tls_wrapper;
static int smtpd_tls_timeout_ms;

void smtpd_tls_pre_init(void)
{
    struct strbuf err = STRBUF_INIT;
    int r = tls_server_ctx_from_config("smtpd", &smtpd_tls_ctx, &err);
    if (r < 0)
        msg_fatal("TLS: %s", strbuf_str(&err));
    smtpd_tls_wrapper = config_bool("smtpd_tls_wrappermode");
    if (smtpd_tls_wrapper && r == 0)
        msg_fatal("smtpd_tls_wrappermode = yes needs smtpd_tls_cert_file");
    smtpd_tls_timeout_ms = (int)config_time("tls_handshake_timeout") * 1000;
    strbuf_release(&err);
}

bool smtpd_tls_available(void)
{
    return smtpd_tls_ctx != NULL;
}

bool smtpd_tls_wrappermode(void)
{
    return smtpd_tls_wrapper;
}

int smtpd_tls_handshake(struct stream *stream, const char *client_name, const char *client_addr,
                        struct tls_conn **conn_r, char **info_r)
{
    struct strbuf err = STRBUF_INIT;
    *conn_r = NULL;
    *info_r = NULL;
    if (smtpd_tls_ctx == NULL)
        msg_panic("smtpd_tls_handshake without a TLS context");
    struct tls_conn *c =
        tls_conn_start(smtpd_tls_ctx, stream, true, NULL, smtpd_tls_timeout_ms, &err);
    if (c == NULL) {
        msg_info("SSL_accept error from %s[%s]: %s", client_name, client_addr, strbuf_str(&err));
        strbuf_release(&err);
        return -1;
    }
    strbuf_reset(&err);
    tls_conn_describe(c, &err);
    msg_info("%s TLS connection established from %s[%s]: %s",
             tls_conn_resumed(c) ? "Reused" : "Anonymous", client_name, client_addr,
             strbuf_str(&err));
    *conn_r = c;
    *info_r = strbuf_detach(&err, NULL);
    return 0;
}
