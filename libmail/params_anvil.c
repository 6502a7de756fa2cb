/*
 * Parameters of abuse resistance: the anvil service (per-client connection
 * count and rate bookkeeping) and smtpd's use of it, the pre-greeting check.
 * name, type, default, bounds, one-line doc (docs/config.md).
 */
#include "config.h"

const struct config_param params_anvil[] = {
    {"anvil_rate_time_unit", CONFIG_TIME, "60s", 1, 86400,
     "time unit over which anvil counts connection rates (the window of *_rate_limit)"},
    {"anvil_max_clients", CONFIG_INT, "100000", 10, 10000000,
     "most (service, client address) entries anvil remembers; idle ones are dropped first"},
    {"anvil_connection_limit", CONFIG_INT, "1000", 1, 100000,
     "most anvil clients (smtpd processes) the anvil server serves at once"},
    {"anvil_client_open_limit", CONFIG_INT, "100", 1, 100000,
     "most connections one anvil client may have registered at once (an smtpd holds one)"},
    {"anvil_client_timeout", CONFIG_TIME, "1s", 1, 60,
     "how long smtpd waits for anvil before it lets the client in anyway (fail open)"},
    {"anvil_client_retry_time", CONFIG_TIME, "5s", 0, 3600,
     "after anvil failed to answer, how long smtpd skips it (connections are allowed meanwhile)"},
    {"smtpd_client_connection_count_limit", CONFIG_INT, "50", 0, 1000000,
     "most simultaneous connections one client address may have to a service (0 = no limit)"},
    {"smtpd_client_connection_rate_limit", CONFIG_INT, "0", 0, 1000000,
     "most connections one client address may open per anvil_rate_time_unit (0 = no limit)"},
    {"smtpd_client_auth_failure_limit", CONFIG_INT, "10", 0, 1000000,
     "most failed AUTH attempts one client address may make per anvil_rate_time_unit, over all "
     "its connections and smtpd services (0 = no limit)"},
    {"smtpd_client_event_limit_exceptions", CONFIG_LIST, "$mynetworks", 0, 0,
     "clients exempt from the connection and AUTH failure limits and the pre-greeting check"},
    {"smtpd_pregreet_wait", CONFIG_TIME, "0s", 0, 60,
     "send \"220-\" and wait this long for a client that talks before the greeting (0 = only "
     "check, no wait)"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
