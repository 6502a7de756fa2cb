/* Parameters of smtpd: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_smtpd[] = {
    {"smtpd_banner", CONFIG_STR, "$myhostname ESMTP tegami", 0, 0,
     "text after \"220 \" in the SMTP greeting"},
    {"smtpd_timeout", CONFIG_TIME, "300s", 1, 3600,
     "how long smtpd waits for a client command or DATA input before 421 and disconnect"},
    {"smtpd_recipient_limit", CONFIG_INT, "1000", 1, 100000,
     "recipients accepted per message; more get 452 4.5.3"},
    {"smtpd_line_length_limit", CONFIG_INT, "2048", 512, 65536,
     "longest SMTP command line in bytes (CRLF included); longer lines get 500 5.5.2"},
    {"smtpd_hard_error_limit", CONFIG_INT, "20", 1, 10000,
     "error replies in one session after which smtpd says 421 4.7.0 and disconnects"},
    {"smtpd_soft_error_limit", CONFIG_INT, "10", 0, 10000,
     "error replies after which each further reply is delayed by smtpd_error_sleep_time"},
    {"smtpd_error_sleep_time", CONFIG_TIME, "1s", 0, 60,
     "tarpit delay before each reply once smtpd_soft_error_limit errors were made"},
    {"smtpd_forbidden_commands", CONFIG_LIST, "CONNECT GET POST USER PASS", 0, 0,
     "commands (web proxies, POP) that make smtpd disconnect at once"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
