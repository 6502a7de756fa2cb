/* Parameters of global: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_global[] = {
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
