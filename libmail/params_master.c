/* Parameters of master: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_master[] = {
    {"service_throttle_time", CONFIG_TIME, "60s", 1, 86400,
     "how long master waits before it starts a service again that keeps failing; also the "
     "window in which service_throttle_limit failures are counted"},
    {"service_throttle_limit", CONFIG_INT, "5", 1, 64,
     "abnormal exits (signal or non-zero status) of one service within service_throttle_time "
     "after which master stops starting it for service_throttle_time"},
    {"master_stop_timeout", CONFIG_TIME, "10s", 1, 3600,
     "on stop, how long master waits for its children after SIGTERM before it sends SIGKILL"},
    {"master_control_timeout", CONFIG_TIME, "2s", 1, 60,
     "read/write timeout for one request on master's control socket public/master"},
    {"master_control_record_limit", CONFIG_SIZE, "4k", 256, 1048576,
     "largest request record master accepts on its control socket"},
    {"master_listen_backlog", CONFIG_INT, "100", 1, 65535,
     "listen(2) backlog of the inet and unix sockets master opens for services"},
    {"service_templates", CONFIG_BOOL, "yes", 0, 0,
     "start the processes of a service (process limit other than 1) by forking them from one "
     "initialised template process of that service instead of exec'ing each; the daemons that "
     "support it are smtpd, pop3d and imapd, others are always exec'ed"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
