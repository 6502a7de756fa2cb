/* Parameters of mailbox: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_mailbox[] = {
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
