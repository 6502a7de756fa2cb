/* Parameters of imapd: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_imapd[] = {
    {"imapd_timeout", CONFIG_TIME, "30m", 60, 86400,
     "Close an IMAP session after this long without a command (RFC 9051 §5.4 wants at least "
     "30 minutes); also bounds each read and write."},
    {"imapd_idle_timeout", CONFIG_TIME, "30m", 60, 86400,
     "End an IDLE command with BYE after this long without DONE (clients re-IDLE every ~29 "
     "minutes)."},
    {"imapd_preauth_timeout", CONFIG_TIME, "60s", 5, 3600,
     "Close a connection that has not logged in after this long without a command."},
    {"imapd_auth_failure_delay", CONFIG_TIME, "1s", 0, 60,
     "Wait this long before answering a failed LOGIN or AUTHENTICATE."},
    {"imapd_auth_failure_limit", CONFIG_INT, "3", 1, 100,
     "Disconnect with BYE after this many failed logins in one IMAP session."},
    {"imapd_max_line_length", CONFIG_SIZE, "64k", 1024, 16777216,
     "Longest line of an IMAP command (between literals), CRLF included; longer gets BAD."},
    {"imapd_max_literal_size", CONFIG_SIZE, "64k", 1024, 1073741824,
     "Largest literal accepted outside APPEND; a larger one is refused before it is read."},
    {"imapd_max_append_size", CONFIG_SIZE, "$message_size_limit", 0, 1073741824,
     "Largest message APPEND accepts; refused with NO [TOOBIG] before it is read (0 = 1 GiB)."},
    {"imapd_max_command_size", CONFIG_SIZE, "1m", 4096, 1073741824,
     "Largest IMAP command outside APPEND, lines and literals together."},
    {"imapd_max_list_depth", CONFIG_INT, "16", 2, 100,
     "Deepest nesting of parenthesised lists accepted in a command."},
    {"imapd_error_limit", CONFIG_INT, "20", 1, 1000,
     "Disconnect with BYE after this many BAD commands in one session."},
    {"imapd_user_connection_limit", CONFIG_INT, "10", 1, 10000,
     "Most simultaneous IMAP sessions of one user (across all imapd processes)."},
    {"imapd_idle_check_interval", CONFIG_TIME, "30s", 1, 3600,
     "During IDLE, also look for changes this often (in case a change notification was missed)."},
    {"imapd_idle_release_delay", CONFIG_TIME, "1s", 0, 3600,
     "When a session has had no input for this long after its last response (also inside IDLE), "
     "it gives back what it can rebuild: the selected folder's index handle and records "
     "(reloaded at the next command or folder change, about 0.4 ms per 1,000 messages), its "
     "I/O buffers and free heap pages (0 = never)."},
    {"imapd_plaintext_auth", CONFIG_BOOL, "no", 0, 0,
     "Allow LOGIN and AUTHENTICATE PLAIN without TLS from any client (else LOGINDISABLED)."},
    {"imapd_plaintext_auth_loopback", CONFIG_BOOL, "yes", 0, 0,
     "Allow plain-text logins without TLS from loopback clients (127.0.0.0/8, ::1)."},
    {"imapd_tls_cert_file", CONFIG_STR, "$smtpd_tls_cert_file", 0, 0,
     "PEM certificate chain of imapd; empty = no STARTTLS and no IMAPS."},
    {"imapd_tls_key_file", CONFIG_STR, "$smtpd_tls_key_file", 0, 0,
     "PEM private key of imapd_tls_cert_file."},
    {"imapd_tls_eccert_file", CONFIG_STR, "$smtpd_tls_eccert_file", 0, 0,
     "Optional second certificate chain of imapd."},
    {"imapd_tls_eckey_file", CONFIG_STR, "$smtpd_tls_eckey_file", 0, 0,
     "PEM private key of imapd_tls_eccert_file."},
    {"imapd_tls_wrappermode", CONFIG_BOOL, "no", 0, 0,
     "Implicit TLS (IMAPS, port 993): the handshake starts at connect."},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
