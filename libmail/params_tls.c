/*
 * Parameters of TLS, SASL authentication and submission (smtpd, pop3d):
 * name, type, default, bounds, one-line doc (docs/config.md).
 */
#include "config.h"

const struct config_param params_tls[] = {
    /* Shared by every TLS server and client. */
    {"tls_protocols", CONFIG_STR, ">=TLSv1.2", 0, 0,
     "TLS versions allowed: \">=TLSv1.2\", \">=TLSv1.3\" or a list such as \"TLSv1.2 TLSv1.3\" "
     "(nothing older than TLS 1.2 is possible)"},
    {"tls_cipherlist", CONFIG_STR,
     "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1", 0, 0,
     "OpenSSL cipher string for TLS 1.2 (forward secrecy and AEAD only by default)"},
    {"tls_ciphersuites", CONFIG_STR, "", 0, 0,
     "TLS 1.3 cipher suites (OpenSSL syntax); empty = OpenSSL's defaults"},
    {"tls_session_cache_timeout", CONFIG_TIME, "3600s", 0, 86400,
     "how long a TLS session may be resumed (session cache and tickets)"},
    {"tls_session_tickets", CONFIG_BOOL, "yes", 0, 0,
     "issue session tickets; their key is shared by all processes via "
     "$data_directory/tls_ticket.key"},
    {"tls_handshake_timeout", CONFIG_TIME, "60s", 1, 3600,
     "how long a TLS handshake (STARTTLS, STLS or implicit TLS) may take"},

    /* smtpd */
    {"smtpd_tls_cert_file", CONFIG_STR, "", 0, 0,
     "PEM certificate chain of smtpd (certificate first); empty = no STARTTLS and no port 465"},
    {"smtpd_tls_key_file", CONFIG_STR, "$smtpd_tls_cert_file", 0, 0,
     "PEM private key of smtpd_tls_cert_file"},
    {"smtpd_tls_eccert_file", CONFIG_STR, "", 0, 0,
     "optional second certificate chain (e.g. ECDSA beside an RSA one)"},
    {"smtpd_tls_eckey_file", CONFIG_STR, "$smtpd_tls_eccert_file", 0, 0,
     "PEM private key of smtpd_tls_eccert_file"},
    {"smtpd_tls_wrappermode", CONFIG_BOOL, "no", 0, 0,
     "implicit TLS (RFC 8314, port 465): the handshake starts at connect, before the greeting"},
    {"smtpd_tls_auth_only", CONFIG_BOOL, "yes", 0, 0, "offer and accept AUTH only over TLS"},
    {"smtpd_sasl_auth_enable", CONFIG_BOOL, "yes", 0, 0,
     "offer SMTP AUTH PLAIN and LOGIN (RFC 4954) against the virtual users"},
    {"smtpd_auth_failure_limit", CONFIG_INT, "3", 1, 100,
     "failed AUTH attempts in one session after which smtpd says 421 4.7.0 and disconnects"},
    {"smtpd_auth_failure_delay", CONFIG_TIME, "1s", 0, 60,
     "delay before the first 535 reply; it doubles with each further failure"},
    {"smtpd_auth_failure_delay_max", CONFIG_TIME, "8s", 0, 300,
     "upper bound of the growing delay before a 535 reply"},
    {"smtpd_submission", CONFIG_BOOL, "no", 0, 0,
     "submission service (RFC 6409): AUTH before MAIL, senders must belong to the login, "
     "Message-ID and Date added when missing"},
    {"smtpd_sender_login_maps", CONFIG_LIST, "", 0, 0,
     "tables mapping a sender address (or @domain) to the logins allowed to use it; without "
     "an entry, login@<each mydestination domain> belongs to login"},

    /* pop3d */
    {"pop3d_tls_cert_file", CONFIG_STR, "$smtpd_tls_cert_file", 0, 0,
     "PEM certificate chain of pop3d; empty = no STLS and no POP3S"},
    {"pop3d_tls_key_file", CONFIG_STR, "$smtpd_tls_key_file", 0, 0,
     "PEM private key of pop3d_tls_cert_file"},
    {"pop3d_tls_eccert_file", CONFIG_STR, "$smtpd_tls_eccert_file", 0, 0,
     "optional second certificate chain of pop3d"},
    {"pop3d_tls_eckey_file", CONFIG_STR, "$smtpd_tls_eckey_file", 0, 0,
     "PEM private key of pop3d_tls_eccert_file"},
    {"pop3d_tls_wrappermode", CONFIG_BOOL, "no", 0, 0,
     "implicit TLS (POP3S, port 995): the handshake starts at connect"},
    {"pop3d_plaintext_auth", CONFIG_BOOL, "no", 0, 0,
     "allow USER/PASS and AUTH PLAIN on connections without TLS from any client"},
    {"pop3d_plaintext_auth_loopback", CONFIG_BOOL, "yes", 0, 0,
     "allow plain-text logins without TLS from loopback clients (127.0.0.0/8, ::1)"},
    /* smtp client (smtp_tls_security_level and smtp_tls_policy_maps: params_smtp.c) */
    {"smtp_tls_CAfile", CONFIG_STR, "", 0, 0,
     "PEM file of CA certificates the smtp client trusts at security level verify; "
     "with smtp_tls_CApath also empty, OpenSSL's default trust store"},
    {"smtp_tls_CApath", CONFIG_STR, "", 0, 0,
     "directory of hashed CA certificates (c_rehash) the smtp client trusts at level verify"},
    {"smtp_tls_protocols", CONFIG_STR, ">=TLSv1.2", 0, 0,
     "TLS versions the smtp client allows, in tls_protocols syntax"},
    {"smtp_tls_ciphers", CONFIG_STR, "DEFAULT", 0, 0,
     "OpenSSL cipher string of the smtp client for TLS 1.2 (opportunistic TLS: broad by "
     "default)"},
    {"smtp_tls_ciphersuites", CONFIG_STR, "", 0, 0,
     "TLS 1.3 cipher suites of the smtp client; empty = OpenSSL's defaults"},
    {"smtp_tls_cert_file", CONFIG_STR, "", 0, 0,
     "optional PEM client certificate chain the smtp client presents; empty = none"},
    {"smtp_tls_key_file", CONFIG_STR, "$smtp_tls_cert_file", 0, 0,
     "PEM private key of smtp_tls_cert_file"},
    {"smtp_tls_session_cache_size", CONFIG_INT, "256", 0, 100000,
     "TLS sessions an smtp client process keeps for resumption (per server name and "
     "policy); 0 = no resumption"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
