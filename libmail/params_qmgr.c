/* Parameters of qmgr: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_qmgr[] = {
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
