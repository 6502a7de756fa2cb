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
     "maximum number of delivered queue files kept in pool/ (files over 128 KiB emptied) for "
     "reuse by new mail, which saves an inode allocation per message; 0 removes them"},
    {"qmgr_stale_file_time", CONFIG_TIME, "1d", 60, 365 * DAY,
     "age after which qmgr removes left-over temporary (dot) files from queue directories"},
    {"transport_maps", CONFIG_LIST, "", 0, 0,
     "tables mapping a recipient domain (then its parents as .parent) to transport:nexthop "
     "(smtp, local or error:X.Y.Z text)"},
    {"relayhost", CONFIG_STR, "", 0, 0,
     "nexthop for all non-local mail not routed by transport_maps, e.g. [relay.example]:587; "
     "empty: deliver to the recipient domain's MX"},
    {"default_transport", CONFIG_STR, "smtp", 0, 0,
     "transport[:nexthop] for non-local mail not routed by transport_maps or relayhost"},
    {"smtp_request_timeout", CONFIG_TIME, "3600s", 1, DAY,
     "longest time qmgr waits for the smtp delivery agent to answer one delivery request"},
    {"qmgr_smtp_connection_limit", CONFIG_INT, "100", 1, 10000,
     "maximum number of parallel connections (deliveries in progress) from qmgr to smtp, all "
     "destinations together"},
    {"smtp_destination_concurrency_limit", CONFIG_INT, "20", 1, 1000,
     "maximum number of parallel smtp deliveries to one destination (transport and nexthop)"},
    {"smtp_destination_recipient_limit", CONFIG_INT, "50", 1, 10000,
     "maximum number of recipients in one delivery request to smtp"},
    {"initial_destination_concurrency", CONFIG_INT, "5", 1, 1000,
     "parallel smtp deliveries a destination starts with; +1 after each success (slow start)"},
    {"destination_concurrency_failed_cohort_limit", CONFIG_INT, "1", 1, 1000,
     "consecutive dead-destination reports, with nothing else in flight, after which a "
     "destination is skipped (its mail deferred at once) for minimal_backoff_time"},
    {"delay_warning_time", CONFIG_TIME, "4h", 0, 365 * DAY,
     "age of a still-deferred message at which its sender gets one delay notice (Action: "
     "delayed); 0 = never"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
