/* Parameters of local: name, type, default, bounds, one-line doc (docs/config.md). */
#include "config.h"

const struct config_param params_local[] = {
    {"local_alias_depth_limit", CONFIG_INT, "20", 1, 100,
     "Maximum nesting depth of alias expansion; deeper aliases are cut with a warning"},
    {"local_alias_expansion_limit", CONFIG_INT, "1000", 1, 100000,
     "Maximum number of addresses one recipient may expand to through aliases"},
    {"local_header_scan_limit", CONFIG_SIZE, "64k", 1024, 16777216,
     "Bytes of the message header that local reads for Delivered-To/Received loop detection"},
    {"local_request_size_limit", CONFIG_SIZE, "1m", 4096, 67108864,
     "Largest qmgr delivery request record local accepts"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
