/* Parameters of smtp: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

#define DAY (24LL * 3600)

const struct config_param params_smtp[] = {
    {"smtp_port", CONFIG_INT, "25", 1, 65535,
     "TCP port of remote SMTP servers when the nexthop has no :port"},
    {"smtp_helo_name", CONFIG_STR, "$myhostname", 0, 0,
     "host name the smtp client sends in EHLO/HELO"},
    {"smtp_mx_address_limit", CONFIG_INT, "5", 1, 100,
     "most MX host addresses the smtp client tries for one delivery"},
    {"smtp_connect_timeout", CONFIG_TIME, "30s", 1, 3600,
     "time limit for a TCP connection to a remote SMTP server"},
    {"smtp_helo_timeout", CONFIG_TIME, "300s", 1, 3600,
     "time limit for the greeting and the EHLO/HELO reply (RFC 5321 4.5.3.2.1)"},
    {"smtp_mail_timeout", CONFIG_TIME, "300s", 1, 3600,
     "time limit for the MAIL FROM reply (RFC 5321 4.5.3.2.2)"},
    {"smtp_rcpt_timeout", CONFIG_TIME, "300s", 1, 3600,
     "time limit for each RCPT TO reply (RFC 5321 4.5.3.2.3)"},
    {"smtp_data_init_timeout", CONFIG_TIME, "120s", 1, 3600,
     "time limit for the DATA (354) reply (RFC 5321 4.5.3.2.4)"},
    {"smtp_data_xfer_timeout", CONFIG_TIME, "180s", 1, 3600,
     "time limit for each write of message content (RFC 5321 4.5.3.2.5)"},
    {"smtp_data_done_timeout", CONFIG_TIME, "600s", 1, 3600,
     "time limit for the reply to the final dot (RFC 5321 4.5.3.2.6)"},
    {"smtp_quit_timeout", CONFIG_TIME, "300s", 1, 3600, "time limit for the QUIT and RSET replies"},
    {"smtp_starttls_timeout", CONFIG_TIME, "300s", 1, 3600,
     "time limit for the STARTTLS reply and the TLS handshake"},
    {"smtp_tls_security_level", CONFIG_STR, "may", 0, 0,
     "outbound TLS: none, may (opportunistic), encrypt, verify or dane"},
    {"smtp_tls_policy_maps", CONFIG_LIST, "", 0, 0,
     "tables mapping a nexthop domain to a TLS security level that overrides "
     "smtp_tls_security_level"},
    {"smtp_dns_trust_anchor_file", CONFIG_STR, "", 0, 0,
     "DNSSEC trust anchors (DS/DNSKEY records) for the smtp client's resolver; empty: no "
     "validation, so DANE behaves as may"},
    {"smtp_connection_cache_time", CONFIG_TIME, "2s", 0, 300,
     "how long an smtp process keeps a finished session open for the next message to the "
     "same nexthop; 0 disables reuse"},
    {"smtp_sasl_auth_enable", CONFIG_BOOL, "no", 0, 0,
     "authenticate to remote servers (AUTH PLAIN or LOGIN) with smtp_sasl_password_maps"},
    {"smtp_sasl_password_maps", CONFIG_LIST, "", 0, 0,
     "tables mapping a nexthop as given (e.g. [relay.test]:587), then the server's host "
     "name, to user:password"},
    {"smtp_sasl_tls_only", CONFIG_BOOL, "yes", 0, 0,
     "send SMTP AUTH only inside TLS (never a password in the clear)"},
    {"smtp_request_size_limit", CONFIG_SIZE, "1m", 4096, 67108864,
     "largest qmgr delivery request record smtp accepts"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
