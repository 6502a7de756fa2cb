/* Parameters of qmgr: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

#define DAY (24LL * 3600)

const struct config_param params_qmgr[] = {
    {"queue_run_delay", CONFIG_TIME, "60s", 1, DAY,
     "how often qmgr scans deferred/ for mail whose retry time has come (and incoming/ as a safety "
     "net)"},
    {"qmgr_message_active_limit", CONFIG_INT, "10000", 1, 1000000,
     "maximum number of messages in active/ (in qmgr's memory) at once"},
    {"minimal_backoff_time", CONFIG_TIME, "300s", 1, 30 * DAY,
     "shortest time a deferred message waits before the next delivery attempt"},
    {"maximal_backoff_time", CONFIG_TIME, "4000s", 1, 30 * DAY,
     "longest time a deferred message waits before the next delivery attempt"},
    {"maximal_queue_lifetime", CONFIG_TIME, "5d", 0, 365 * DAY,
     "age after which undeliverable mail is returned to the sender (4.4.7, delivery time expired)"},
    {"bounce_queue_lifetime", CONFIG_TIME, "5d", 0, 365 * DAY,
     "age after which an undeliverable bounce message is discarded"},
    {"local_destination_concurrency_limit", CONFIG_INT, "20", 1, 1000,
     "maximum number of parallel connections (deliveries in progress) from qmgr to local"},
    {"local_destination_recipient_limit", CONFIG_INT, "50", 1, 10000,
     "maximum number of recipients in one delivery request to local"},
    {"bounce_size_limit", CONFIG_SIZE, "50000", 0, 100LL * 1024 * 1024,
     "largest original message returned whole in a bounce (RET=FULL); larger ones get headers "
     "only"},
    {"queue_file_reuse_limit", CONFIG_INT, "10000", 0, 1000000,
     "maximum number of delivered queue files kept (emptied) in pool/ for reuse by new mail, "
     "which saves an inode allocation per message; 0 removes them"},
    {"qmgr_stale_file_time", CONFIG_TIME, "1d", 60, 365 * DAY,
     "age after which qmgr removes left-over temporary (dot) files from queue directories"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
