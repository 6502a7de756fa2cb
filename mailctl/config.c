/*
 * mailctl config - show parameters, like postconf(1).
 *
 *   mailctl config            every parameter's effective value
 *   mailctl config -d         compiled-in defaults
 *   mailctl config NAME...    the named parameters
 *   mailctl config --markdown the reference table of docs/config.md
 */
#include "mailctl.h"

#include <stdio.h>
#include <string.h>

#include "config.h"

static const char *config_type_name(enum config_type t)
{
    switch (t) {
    case CONFIG_STR:
        return "text";
    case CONFIG_INT:
        return "integer";
    case CONFIG_BOOL:
        return "yes/no";
    case CONFIG_TIME:
        return "time";
    case CONFIG_SIZE:
        return "size";
    case CONFIG_LIST:
        return "list";
    }
    return "?";
}

static void config_print_markdown(void)
{
    size_t it = 0;
    const struct config_param *p;

    puts("| parameter | type | default | bounds | meaning |");
    puts("| --- | --- | --- | --- | --- |");
    while ((p = config_param_next(&it)) != NULL) {
        char bounds[64] = "";
        if ((p->type == CONFIG_INT || p->type == CONFIG_TIME || p->type == CONFIG_SIZE) &&
            (p->min != 0 || p->max != 0))
            snprintf(bounds, sizeof(bounds), "%lld..%lld", p->min, p->max);
        printf("| `%s` | %s | `%s` | %s | ", p->name, config_type_name(p->type),
               p->def ? p->def : "", bounds);
        for (const char *c = p->doc ? p->doc : ""; *c; c++)
            fputs(*c == '|' ? "\\|" : (char[]){*c, 0}, stdout);
        puts(" |");
    }
}

int mailctl_config(int argc, char **argv)
{
    bool defaults = false, markdown = false;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-d") == 0)
            defaults = true;
        else if (strcmp(argv[i], "--markdown") == 0)
            markdown = true;
        else
            mailctl_usage();
    }
    if (markdown) {
        config_print_markdown();
        return MAILCTL_OK;
    }
    if (!defaults && mailctl_load_config() != 0)
        return MAILCTL_ERROR;

    int rc = MAILCTL_OK;
    if (i < argc) {
        for (; i < argc; i++) {
            const struct config_param *p = config_find_param(argv[i]);
            if (p == NULL) {
                fprintf(stderr, "mailctl: unknown parameter %s\n", argv[i]);
                rc = MAILCTL_ERROR;
                continue;
            }
            printf("%s = %s\n", p->name, defaults ? (p->def ? p->def : "") : config_str(p->name));
        }
        return rc;
    }
    size_t it = 0;
    const struct config_param *p;
    while ((p = config_param_next(&it)) != NULL) {
        const char *def = p->def ? p->def : "";
        if (defaults) {
            printf("%s = %s\n", p->name, def);
            continue;
        }
        printf("%s = %s\n", p->name, config_str(p->name));
    }
    return rc;
}
