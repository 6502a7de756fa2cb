/*
 * master control socket $queue_directory/public/master.
 *
 * Protocol (docs/protocols.md): the client sends one attr record
 * {request=status}; master answers one record per service
 * {service, type, listen, command, maxproc, procs, busy, pids} and a final
 * {end=1}. Unknown requests get {end=1, error=...}.
 *
 * master serves a client inline in its event loop, so every read and write
 * is bounded by master_control_timeout and the request by
 * master_control_record_limit: a stuck client delays supervision by at most
 * a few seconds and can never block it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "master.h"
#include "msg.h"
#include "sock.h"
#include "stream.h"

int master_control_open(const char *path, struct strbuf *err)
{
    int fd = sock_unix_listen(path, 16, 0666, err);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    return fd;
}

static void master_control_status(struct stream *s)
{
    struct attr_list l = ATTR_LIST_INIT;
    struct strbuf pids = STRBUF_INIT;

    for (struct master_service *svc = master_services; svc; svc = svc->next) {
        int procs = 0;
        strbuf_reset(&pids);
        for (struct master_child *c = master_children; c; c = c->next) {
            if (c->svc != svc || c->is_template)
                continue;
            procs++;
            strbuf_printf(&pids, "%s%ld", pids.len ? " " : "", (long)c->pid);
        }
        attr_list_reset(&l);
        attr_list_add_str(&l, "service", svc->name);
        attr_list_add_str(&l, "type", svc->type);
        attr_list_add_str(&l, "listen", svc->listen);
        attr_list_add_str(&l, "command", svc->argv[0]);
        attr_list_add_int(&l, "maxproc", svc->maxproc);
        attr_list_add_int(&l, "procs", procs);
        attr_list_add_int(&l, "busy", procs - master_service_avail(svc));
        attr_list_add_str(&l, "pids", strbuf_str(&pids));
        if (svc->tmpl)
            attr_list_add_int(&l, "template", (long long)svc->tmpl->pid);
        if (throttle_active(&svc->throttle, time(NULL)))
            attr_list_add_int(&l, "throttled",
                              (long long)throttle_remaining(&svc->throttle, time(NULL)));
        if (attr_write(s, &l) < 0)
            goto out;
    }
    attr_list_reset(&l);
    attr_list_add_int(&l, "end", 1);
    (void)attr_write(s, &l);
out:
    attr_list_release(&l);
    strbuf_release(&pids);
}

static void master_control_serve(int fd)
{
    struct stream *s = stream_fdopen(fd);
    struct attr_list req = ATTR_LIST_INIT;
    const char *why = NULL;

    stream_set_timeout(s, (int)config_time("master_control_timeout") * 1000);
    int rc = attr_read(s, (size_t)config_size("master_control_record_limit"), &req, &why);
    if (rc == 0) {
        const char *what = attr_list_get(&req, "request");
        if (what && strcmp(what, "status") == 0) {
            master_control_status(s);
        } else {
            struct attr_list l = ATTR_LIST_INIT;
            msg_warn("control: unknown request \"%s\"", what ? what : "");
            attr_list_add_int(&l, "end", 1);
            attr_list_add_str(&l, "error", "unknown request");
            (void)attr_write(s, &l);
            attr_list_release(&l);
        }
    } else if (rc > 0) {
        msg_warn("control: malformed request: %s", why ? why : "?");
    } else if (rc != STREAM_EOF) {
        msg_warn("control: read request: %s", rc == STREAM_TIMEOUT ? "timeout" : "I/O error");
    }
    attr_list_release(&req);
    stream_free(&s);
}

void master_control_accept(int lfd)
{
    /* A bounded batch per wake-up, so clients cannot starve the loop. */
    for (int i = 0; i < 8; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                msg_warn("control: accept: %s", strerror(errno));
            return;
        }
        master_control_serve(fd);
    }
}
