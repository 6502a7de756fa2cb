/*
 * mailq - list the mail queue (the same listing as `mailctl queue list`).
 *
 *   mailq [-C DIR] [--json]
 *
 * DIR defaults to $MAIL_CONFIG, then /etc/tegami. Exit 0, 1 on error, 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "msg.h"
#include "queue_list.h"

static void usage(void)
{
    fputs("usage: mailq [-C DIR] [--json]\n", stderr);
}

int main(int argc, char **argv)
{
    struct strbuf err = STRBUF_INIT, out = STRBUF_INIT;
    struct queue_list_entry *e;
    size_t n;
    bool json = false;

    msg_init("mailq");
    msg_set_stderr(true);
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-C") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            config_set_directory(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            usage();
            return 2;
        }
    }
    strbuf_reset(&err);
    if (config_load(&err) < 0) {
        fprintf(stderr, "mailq: %s", err.data);
        return 1;
    }
    strbuf_reset(&err);
    if (queue_list_scan(&e, &n, &err) < 0) {
        fprintf(stderr, "mailq: %s\n", err.data);
        return 1;
    }
    strbuf_reset(&out);
    if (json)
        queue_list_format_json(e, n, &out);
    else
        queue_list_format_text(e, n, &out);
    fwrite(out.data, 1, out.len, stdout);
    queue_list_free(&e, n);
    strbuf_release(&out);
    strbuf_release(&err);
    return fflush(stdout) == 0 ? 0 : 1;
}
