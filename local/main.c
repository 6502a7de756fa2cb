/*
 * local - the local delivery agent.
 *
 * qmgr keeps one connection to private/local open and sends "deliver"
 * requests on it (docs/protocols.md): queue_id, sender, the content's
 * offset/size in active/QUEUEID, then index/rcpt/orig per recipient. For
 * each recipient local expands aliases, checks for mail loops
 * (Delivered-To, hop count), writes the message into the user's Maildir
 * with Return-Path and Delivered-To prepended, or re-submits it for remote
 * alias targets, and answers index/status/dsn/reason per recipient, then
 * end=1.
 *
 * Privileges: every mailbox is a virtual user's Maildir owned by mail_owner,
 * so local runs as mail_owner (-u in master.cf) or, in a sandbox, as the
 * invoking user. System users (/etc/passwd, uid switching, .forward) are a
 * later step.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "deliver_request.h"
#include "local.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "recipient.h"
#include "server.h"
#include "stream.h"

struct local_params local_params;

/* One recipient of a request. */
struct rcpt {
    long long index;
    const char *rcpt;
    const char *orig;
    int status;
    char dsn[16];
    struct strbuf reason;
};

/* One request being served. */
struct request {
    const char *queue_id;
    const char *sender;
    off_t offset;
    size_t size;
    int fd;
    struct local_headers hdr;
    struct rcpt *rcpts;
    size_t nrcpts;
};

static void local_post_init(void)
{
    local_params.alias_depth_limit = (int)config_int("local_alias_depth_limit");
    local_params.alias_expansion_limit = (int)config_int("local_alias_expansion_limit");
    local_params.header_scan_limit = (size_t)config_size("local_header_scan_limit");
    local_params.request_size_limit = (size_t)config_size("local_request_size_limit");
    local_params.hopcount_limit = (int)config_int("hopcount_limit");
    long long t = config_time("ipc_timeout");
    local_params.ipc_timeout_ms = t > 86400 ? 86400000 : (int)(t * 1000);
}

static void set_result(struct rcpt *r, int status, const char *dsn, const char *fmt, ...)
    MSG_PRINTF(4, 5);

static void set_result(struct rcpt *r, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    r->status = status;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    strbuf_reset(&r->reason);
    va_start(ap, fmt);
    strbuf_vprintf(&r->reason, fmt, ap);
    va_end(ap);
}

/* "to=<final>, orig_to=<...>, relay=local, dsn=..., status=..." */
static void log_result(const struct request *q, const char *to, const char *orig_to,
                       const char *dsn, const char *status, const char *text)
{
    struct strbuf t = STRBUF_INIT, o = STRBUF_INIT, x = STRBUF_INIT;
    local_sanitize(&t, to);
    local_sanitize(&x, text);
    if (orig_to != NULL && *orig_to && strcasecmp(orig_to, to) != 0) {
        local_sanitize(&o, orig_to);
        msg_info("%s: to=<%s>, orig_to=<%s>, relay=local, dsn=%s, status=%s (%s)", q->queue_id,
                 t.data, o.data, dsn, status, x.data);
    } else {
        msg_info("%s: to=<%s>, relay=local, dsn=%s, status=%s (%s)", q->queue_id, t.data, dsn,
                 status, x.data);
    }
    strbuf_release(&t);
    strbuf_release(&o);
    strbuf_release(&x);
}

/* ORCPT may come as "rfc822;addr" (RFC 3461 §4.2): log and re-submit the address. */
static const char *strip_rfc822(const char *orig)
{
    return strncasecmp(orig, "rfc822;", 7) == 0 ? orig + 7 : orig;
}

static const char *status_word(int status)
{
    return status == 2 ? "sent" : status == 4 ? "deferred" : "bounced";
}

/* Deliver one recipient of request q; the result goes into r. */
static void deliver_rcpt(struct request *q, struct rcpt *r)
{
    struct local_expansion exp;
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT, top = STRBUF_INIT, fwd_id = STRBUF_INIT;
    const char **fwd = NULL;
    size_t nfwd = 0, nok = 0, ntemp = 0, nperm = 0;
    const struct local_target *first_temp = NULL, *first_perm = NULL, *last_ok = NULL;
    const char *orig_to = (r->orig && *r->orig) ? strip_rfc822(r->orig) : r->rcpt;
    char last_name[256] = "";

    /*
     * No domain check here: qmgr routed this recipient to local (its domain is
     * in mydestination, or transport_maps says local:), and local delivers by
     * the local part, as Postfix's local(8) does.
     */
    local_expand(q->queue_id, r->rcpt, &exp);
    fwd = mycalloc(exp.count ? exp.count : 1, sizeof(*fwd));

    /* Forwarding loop through an alias (we forwarded it before and it came back). */
    if (exp.aliased) {
        strbuf_puts(&top, r->rcpt);
        for (size_t i = 0; i < top.len; i++)
            if (top.data[i] >= 'A' && top.data[i] <= 'Z')
                top.data[i] = (char)(top.data[i] + ('a' - 'A'));
        if (local_headers_delivered_to(&q->hdr, top.data)) {
            set_result(r, 5, "5.4.6", "mail forwarding loop for %s", top.data);
            log_result(q, r->rcpt, orig_to, r->dsn, "bounced", strbuf_str(&r->reason));
            goto done;
        }
    } else {
        strbuf_puts(&top, r->rcpt);
    }

    for (size_t i = 0; i < exp.count; i++) {
        struct local_target *t = &exp.items[i];
        const char *to_orig = exp.aliased ? r->rcpt : orig_to;
        switch (t->kind) {
        case LOCAL_TARGET_FAIL:
            if (t->status == 4) {
                ntemp++;
                if (!first_temp)
                    first_temp = t;
            } else {
                nperm++;
                if (!first_perm)
                    first_perm = t;
            }
            log_result(q, t->address, to_orig, t->dsn, status_word(t->status), t->reason);
            break;
        case LOCAL_TARGET_REMOTE:
            fwd[nfwd++] = t->address;
            break;
        case LOCAL_TARGET_USER: {
            if (local_headers_delivered_to(&q->hdr, t->address)) {
                t->kind = LOCAL_TARGET_FAIL;
                t->status = 5;
                snprintf(t->dsn, sizeof(t->dsn), "5.4.6");
                strbuf_reset(&err);
                strbuf_printf(&err, "mail forwarding loop for %s", t->address);
                t->reason = strbuf_detach(&err, NULL);
                nperm++;
                if (!first_perm)
                    first_perm = t;
                log_result(q, t->address, to_orig, t->dsn, "bounced", t->reason);
                break;
            }
            const char *dsn = "4.2.0";
            if (local_deliver_maildir(t->maildir, q->sender, t->address, q->fd, q->offset, q->size,
                                      &name, &dsn, &err) == 0) {
                nok++;
                last_ok = t;
                snprintf(last_name, sizeof(last_name), "%s", strbuf_str(&name));
                strbuf_reset(&err);
                strbuf_printf(&err, "delivered to maildir %s", strbuf_str(&name));
                log_result(q, t->address, to_orig, "2.0.0", "sent", err.data);
            } else {
                t->kind = LOCAL_TARGET_FAIL;
                t->status = 4;
                snprintf(t->dsn, sizeof(t->dsn), "%s", dsn);
                struct strbuf reason = STRBUF_INIT;
                strbuf_printf(&reason, "cannot write to maildir: %s", strbuf_str(&err));
                t->reason = strbuf_detach(&reason, NULL);
                ntemp++;
                if (!first_temp)
                    first_temp = t;
                log_result(q, t->address, to_orig, t->dsn, "deferred", t->reason);
            }
            break;
        }
        }
    }

    /*
     * Temporary failures among other successes are re-submitted with the
     * remote targets, so the delivered copies are not repeated on retry.
     */
    bool resubmit_temp = ntemp > 0 && (nok > 0 || nfwd > 0);
    if (resubmit_temp)
        for (size_t i = 0; i < exp.count; i++)
            if (exp.items[i].kind == LOCAL_TARGET_FAIL && exp.items[i].status == 4)
                fwd[nfwd++] = exp.items[i].address;
    bool forwarded = false;
    if (nfwd > 0) {
        strbuf_reset(&err);
        if (local_forward(q->sender, top.data, fwd, nfwd, orig_to, q->fd, q->offset, q->size,
                          &fwd_id, &err) == 0) {
            forwarded = true;
            for (size_t i = 0; i < nfwd; i++) {
                struct strbuf txt = STRBUF_INIT;
                strbuf_printf(&txt, "forwarded as %s", fwd_id.data);
                log_result(q, fwd[i], exp.aliased ? r->rcpt : orig_to, "2.0.0", "sent", txt.data);
                strbuf_release(&txt);
            }
            if (resubmit_temp)
                ntemp = 0;
        } else {
            msg_warn("%s: cannot re-submit for %s: %s", q->queue_id, r->rcpt, strbuf_str(&err));
            if (!first_temp) {
                set_result(r, 4, "4.3.0", "cannot re-submit forwarded mail: %s", strbuf_str(&err));
                goto done;
            }
            ntemp = ntemp ? ntemp : 1;
        }
    }

    if (ntemp > 0 && first_temp != NULL) {
        set_result(r, 4, first_temp->dsn, "%s: %s", first_temp->address, first_temp->reason);
    } else if (nperm > 0) {
        if (exp.aliased || exp.count > 1)
            set_result(r, 5, first_perm->dsn, "%s: %s%s", first_perm->address, first_perm->reason,
                       (nok || forwarded) ? " (other alias members were delivered)" : "");
        else
            set_result(r, 5, first_perm->dsn, "%s", first_perm->reason);
    } else if (nok == 0 && !forwarded) {
        /* Everything was cut by loop detection. */
        set_result(r, 5, "5.4.6", "alias loop for %s: no deliverable recipients", top.data);
        log_result(q, r->rcpt, orig_to, r->dsn, "bounced", strbuf_str(&r->reason));
    } else if (nok == 1 && !forwarded && last_ok != NULL) {
        set_result(r, 2, "2.0.0", "delivered to maildir %s", last_name);
    } else if (forwarded && nok == 0) {
        set_result(r, 2, "2.0.0", "forwarded as %s", fwd_id.data);
    } else if (forwarded) {
        set_result(r, 2, "2.0.0", "delivered to %zu mailbox%s, forwarded as %s", nok,
                   nok == 1 ? "" : "es", fwd_id.data);
    } else {
        set_result(r, 2, "2.0.0", "delivered to %zu mailboxes", nok);
    }

done:
    myfree(fwd);
    local_expansion_release(&exp);
    strbuf_release(&name);
    strbuf_release(&err);
    strbuf_release(&top);
    strbuf_release(&fwd_id);
}

/*
 * Check a request and split out its recipients (libmail/deliver_request.c).
 * false (with a warning) when it is malformed: the connection is then
 * dropped, since we cannot answer per recipient.
 */
static bool request_parse(const struct attr_list *l, struct request *q)
{
    struct deliver_request d;
    const char *why = NULL;

    memset(q, 0, sizeof(*q));
    q->fd = -1;
    switch (deliver_request_decode(l, 0, &d, &why)) {
    case DELIVER_REQUEST_OK:
        break;
    case DELIVER_REQUEST_BAD_REQUEST: {
        const char *req = attr_list_get(l, "request");
        msg_warn("protocol error: unknown request \"%.30s\" (%s)", req ? req : "", why);
        return false;
    }
    case DELIVER_REQUEST_BAD_QUEUE_ID:
        msg_warn("protocol error: bad or missing queue_id (%s)", why);
        return false;
    case DELIVER_REQUEST_BAD_ENVELOPE:
        msg_warn("%s: protocol error: bad sender, offset or size (%s)", d.queue_id, why);
        return false;
    case DELIVER_REQUEST_BAD_RCPTS:
        msg_warn("%s: protocol error: malformed recipient list (%s)", d.queue_id, why);
        return false;
    }
    q->queue_id = d.queue_id;
    q->sender = d.sender;
    q->offset = (off_t)d.offset;
    q->size = (size_t)d.size;
    q->rcpts = mycalloc(d.nrcpts, sizeof(*q->rcpts));
    q->nrcpts = d.nrcpts;
    for (size_t i = 0; i < d.nrcpts; i++) {
        q->rcpts[i].index = d.rcpts[i].index;
        q->rcpts[i].rcpt = d.rcpts[i].rcpt;
        q->rcpts[i].orig = d.rcpts[i].orig;
    }
    deliver_request_release(&d);
    return true;
}

static void request_fail_all(struct request *q, int status, const char *dsn, const char *reason)
{
    for (size_t i = 0; i < q->nrcpts; i++) {
        set_result(&q->rcpts[i], status, dsn, "%s", reason);
        log_result(q, q->rcpts[i].rcpt, q->rcpts[i].orig ? strip_rfc822(q->rcpts[i].orig) : NULL,
                   dsn, status_word(status), reason);
    }
}

static void request_serve(struct request *q)
{
    struct strbuf why = STRBUF_INIT;

    q->fd = queue_open(QUEUE_ACTIVE, q->queue_id, false);
    if (q->fd < 0) {
        strbuf_printf(&why, "cannot open queue file: %s", strerror(errno));
        msg_warn("%s: %s", q->queue_id, why.data);
        request_fail_all(q, 4, "4.3.0", why.data);
    } else if (local_headers_read(q->fd, q->offset, q->size, &q->hdr) < 0) {
        strbuf_printf(&why, "cannot read queue file: %s", strerror(errno));
        msg_warn("%s: %s", q->queue_id, why.data);
        request_fail_all(q, 4, "4.3.0", why.data);
    } else if (q->hdr.received > (size_t)local_params.hopcount_limit) {
        strbuf_printf(&why, "mail forwarding loop: too many hops (%zu Received headers)",
                      q->hdr.received);
        request_fail_all(q, 5, "5.4.6", why.data);
    } else {
        for (size_t i = 0; i < q->nrcpts; i++)
            deliver_rcpt(q, &q->rcpts[i]);
    }
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    local_headers_release(&q->hdr);
    strbuf_release(&why);
}

static void request_reply(const struct request *q, struct attr_list *reply)
{
    attr_list_reset(reply);
    for (size_t i = 0; i < q->nrcpts; i++) {
        const struct rcpt *r = &q->rcpts[i];
        attr_list_add_int(reply, "index", r->index);
        attr_list_add_int(reply, "status", r->status);
        attr_list_add_str(reply, "dsn", r->dsn);
        attr_list_add_str(reply, "reason", strbuf_str(&r->reason));
    }
    attr_list_add_str(reply, "end", "1");
}

static void request_release(struct request *q)
{
    for (size_t i = 0; i < q->nrcpts; i++)
        strbuf_release(&q->rcpts[i].reason);
    myfree(q->rcpts);
    q->rcpts = NULL;
    q->nrcpts = 0;
}

/* One qmgr connection: requests until EOF, a timeout or a protocol error. */
static void local_service(struct server_client *client)
{
    struct stream *s = stream_fdopen(client->fd);
    struct attr_list req = ATTR_LIST_INIT, reply = ATTR_LIST_INIT;

    stream_set_timeout(s, local_params.ipc_timeout_ms);
    while (!server_should_exit()) {
        const char *error = NULL;
        int r = attr_read(s, local_params.request_size_limit, &req, &error);
        if (r < 0) {
            if (r == STREAM_TIMEOUT)
                msg_info("qmgr connection idle for ipc_timeout: closing");
            else if (r != STREAM_EOF)
                msg_warn("qmgr connection: read error");
            break;
        }
        if (r > 0) {
            msg_warn("protocol error: malformed request record: %s", error ? error : "?");
            break;
        }
        struct request q;
        if (!request_parse(&req, &q))
            break;
        request_serve(&q);
        request_reply(&q, &reply);
        request_release(&q);
        if (attr_write(s, &reply) < 0) {
            msg_warn("qmgr connection: cannot send reply");
            break;
        }
    }
    attr_list_release(&req);
    attr_list_release(&reply);
    stream_free(&s);
}

int main(int argc, char **argv)
{
    static const struct server_spec spec = {
        .mode = SERVER_SINGLE,
        .pre_init = NULL,
        .post_init = local_post_init,
        .service = local_service,
        .loop = NULL,
    };
    msg_init("local");
    server_main(argc, argv, &spec);
}
