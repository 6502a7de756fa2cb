/* Parameters of pop3d: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_pop3d[] = {
    {"pop3d_timeout", CONFIG_TIME, "600s", 1, 86400,
     "Close a POP3 session after this long without a command (and bound each write)."},
    {"pop3d_auth_failure_delay", CONFIG_TIME, "1s", 0, 60,
     "Wait this long before answering a failed USER/PASS login."},
    {"pop3d_auth_failure_limit", CONFIG_INT, "3", 1, 100,
     "Disconnect after this many failed logins in one POP3 session."},
    {"pop3d_line_length_limit", CONFIG_INT, "1024", 255, 1024,
     "Longest POP3 command line accepted, CRLF included (RFC 2449 says 255); longer gets -ERR."},
    {"pop3d_error_limit", CONFIG_INT, "10", 1, 1000,
     "Disconnect a POP3 client after this many erroneous commands."},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
