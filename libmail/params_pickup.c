/* Parameters of pickup and sendmail: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_pickup[] = {
    {"pickup_scan_interval", CONFIG_TIME, "60s", 1, 3600,
     "how often pickup scans maildrop/ without a wake-up from sendmail"},
    {"sendmail_header_size_limit", CONFIG_SIZE, "1m", 1024, 1073741824,
     "largest message header block sendmail accepts on standard input"},
    {"sendmail_recipient_limit", CONFIG_INT, "10000", 1, 100000,
     "most recipients one sendmail submission may have (arguments plus -t headers)"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
