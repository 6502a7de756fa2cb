/* Parameters of imapd: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_imapd[] = {
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
