/* dsn - RFC 3464 delivery status notifications. See dsn.h. */
#include "dsn.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "mymalloc.h"

bool dsn_wanted(const struct qf_message *msg)
{
    /* RFC 5321 §4.5.5 / §6.1: never answer the null sender, never bounce a bounce. */
    if (msg == NULL || msg->sender == NULL || msg->sender[0] == '\0')
        return false;
    return !msg->is_bounce;
}

bool dsn_rcpt_notify(const struct qf_recipient *r, enum dsn_action action)
{
    unsigned n = r->notify;

    if (n & QF_NOTIFY_NEVER)
        return false;
    switch (action) {
    case DSN_ACTION_FAILED:
        return n == 0 || (n & QF_NOTIFY_FAILURE);
    case DSN_ACTION_DELAYED:
        return n == 0 || (n & QF_NOTIFY_DELAY);
    case DSN_ACTION_DELIVERED:
        return (n & QF_NOTIFY_SUCCESS) != 0;
    }
    return false;
}

static bool digits(const char **sp, size_t min, size_t max)
{
    size_t n = 0;

    while (isdigit((unsigned char)**sp)) {
        (*sp)++;
        n++;
    }
    return n >= min && n <= max;
}

bool dsn_status_valid(const char *s)
{
    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    s += 2;
    if (!digits(&s, 1, 3) || *s++ != '.')
        return false;
    if (!digits(&s, 1, 3))
        return false;
    return *s == '\0';
}

static const char *action_name(enum dsn_action a)
{
    switch (a) {
    case DSN_ACTION_FAILED:
        return "failed";
    case DSN_ACTION_DELAYED:
        return "delayed";
    case DSN_ACTION_DELIVERED:
        return "delivered";
    }
    return "failed";
}

/* Append text as one header-safe line fragment: controls become spaces, length bounded. */
static void put_clean(struct strbuf *out, const char *s, size_t max)
{
    size_t n = 0;

    if (s == NULL)
        return;
    for (; *s != '\0' && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        strbuf_putc(out, (c < 0x20 || c == 0x7f) ? ' ' : c);
    }
}

static bool is_ascii(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

static void put_date(struct strbuf *out, time_t t)
{
    struct tm tm;
    char buf[64];

    /* RFC 5322 §3.3 date-time; the C locale gives English names. */
    if (localtime_r(&t, &tm) == NULL ||
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        strbuf_puts(out, "Thu, 01 Jan 1970 00:00:00 +0000");
    else
        strbuf_puts(out, buf);
}

/* Address type for Final-Recipient/Original-Recipient: RFC 6533 utf-8 when needed. */
static void put_addr_field(struct strbuf *out, const char *field, const char *addr)
{
    strbuf_printf(out, "%s: %s; ", field, is_ascii(addr) ? "rfc822" : "utf-8");
    put_clean(out, addr, 512);
    strbuf_putc(out, '\n');
}

static void put_status(struct strbuf *out, const struct dsn_rcpt *r)
{
    if (dsn_status_valid(r->status))
        strbuf_puts(out, r->status);
    else if (r->action == DSN_ACTION_DELIVERED)
        strbuf_puts(out, "2.0.0");
    else if (r->action == DSN_ACTION_DELAYED)
        strbuf_puts(out, "4.0.0");
    else
        strbuf_puts(out, "5.0.0");
}

static bool contains(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    return hay != NULL && nlen <= hlen && memmem(hay, hlen, needle, nlen) != NULL;
}

void dsn_compose(const struct dsn_request *req, struct strbuf *out)
{
    const struct qf_message *msg = req->msg;
    const char *host = req->myhostname != NULL ? req->myhostname : "localhost";
    const char *qid = req->queue_id != NULL ? req->queue_id : "unknown";
    struct strbuf boundary = STRBUF_INIT;
    struct strbuf probe = STRBUF_INIT;
    size_t nfailed = 0, ndelayed = 0, i;
    bool eightbit = msg->smtputf8 || !is_ascii(msg->sender);
    unsigned tries = 0;

    for (i = 0; i < req->nrcpts; i++) {
        if (req->rcpts[i].action == DSN_ACTION_FAILED)
            nfailed++;
        else if (req->rcpts[i].action == DSN_ACTION_DELAYED)
            ndelayed++;
        if (!is_ascii(req->rcpts[i].address))
            eightbit = true;
    }
    for (i = 0; i < req->original_len && !eightbit; i++)
        if ((unsigned char)req->original[i] >= 0x80)
            eightbit = true;

    /* A boundary that does not occur in the returned original (RFC 2046 §5.1.1). */
    for (;;) {
        strbuf_reset(&boundary);
        strbuf_printf(&boundary, "%s.%lld/", qid, (long long)req->now);
        put_clean(&boundary, host, 200);
        if (tries > 0)
            strbuf_printf(&boundary, "/%u", tries);
        strbuf_reset(&probe);
        strbuf_puts(&probe, "--");
        strbuf_append(&probe, boundary.data, boundary.len);
        if (!contains(req->original, req->original_len, probe.data, probe.len) || tries > 1000)
            break;
        tries++;
    }

    /* Top-level headers. */
    strbuf_puts(out, "From: MAILER-DAEMON@");
    put_clean(out, host, 255);
    strbuf_puts(out, " (Mail Delivery System)\n");
    strbuf_puts(out, "To: ");
    put_clean(out, msg->sender, 512);
    strbuf_puts(out, "\nSubject: ");
    if (nfailed > 0)
        strbuf_puts(out, "Undelivered Mail Returned to Sender");
    else if (ndelayed > 0)
        strbuf_puts(out, "Delayed Mail (still being retried)");
    else
        strbuf_puts(out, "Successful Mail Delivery Report");
    strbuf_puts(out, "\nDate: ");
    put_date(out, req->now);
    strbuf_printf(out, "\nMessage-Id: <%lld.%s@", (long long)req->now, qid);
    put_clean(out, host, 255);
    strbuf_puts(out, ">\n");
    strbuf_puts(out, "Auto-Submitted: auto-replied\n");
    strbuf_puts(out, "MIME-Version: 1.0\n");
    strbuf_puts(out, "Content-Type: multipart/report; report-type=delivery-status;\n");
    strbuf_printf(out, "\tboundary=\"%s\"\n", boundary.data);
    if (eightbit)
        strbuf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    strbuf_puts(out, "\nThis is a MIME-encapsulated message.\n\n");

    /* Part 1: for people. */
    strbuf_printf(out, "--%s\n", boundary.data);
    strbuf_puts(out, "Content-Description: Notification\n");
    strbuf_printf(out, "Content-Type: text/plain; charset=%s\n\n", eightbit ? "utf-8" : "us-ascii");
    strbuf_puts(out, "This is the mail system at host ");
    put_clean(out, host, 255);
    strbuf_puts(out, ".\n\n");
    if (nfailed > 0) {
        strbuf_puts(out, "I'm sorry to have to inform you that your message could not\n"
                         "be delivered to one or more recipients. It's attached below.\n\n"
                         "For further assistance, please send mail to postmaster.\n\n"
                         "If you do so, please include this problem report. You can\n"
                         "delete your own text from the attached returned message.\n\n");
    } else if (ndelayed > 0) {
        strbuf_puts(out, "Your message could not be delivered yet to one or more\n"
                         "recipients. The mail system will keep trying; you do not\n"
                         "need to send it again.\n\n");
    } else {
        strbuf_puts(out, "Your message was successfully delivered to the destination(s)\n"
                         "listed below.\n\n");
    }
    strbuf_puts(out, "                   The mail system\n\n");
    for (i = 0; i < req->nrcpts; i++) {
        const struct dsn_rcpt *r = &req->rcpts[i];
        strbuf_putc(out, '<');
        put_clean(out, r->address, 512);
        strbuf_puts(out, ">: ");
        put_clean(out, r->reason != NULL ? r->reason : action_name(r->action), DSN_REASON_MAX);
        strbuf_puts(out, "\n\n");
    }

    /* Part 2: RFC 3464 §2.2 per-message fields, then §2.3 per-recipient blocks. */
    strbuf_printf(out, "--%s\n", boundary.data);
    strbuf_puts(out, "Content-Description: Delivery report\n");
    strbuf_puts(out, "Content-Type: message/delivery-status\n\n");
    strbuf_puts(out, "Reporting-MTA: dns; ");
    put_clean(out, host, 255);
    strbuf_printf(out, "\nX-Tegami-Queue-ID: %s\n", qid);
    put_addr_field(out, "X-Tegami-Sender", msg->sender);
    if (msg->envid != NULL && msg->envid[0] != '\0') {
        strbuf_puts(out, "Original-Envelope-Id: ");
        put_clean(out, msg->envid, 200);
        strbuf_putc(out, '\n');
    }
    strbuf_puts(out, "Arrival-Date: ");
    put_date(out, msg->arrival);
    strbuf_putc(out, '\n');
    for (i = 0; i < req->nrcpts; i++) {
        const struct dsn_rcpt *r = &req->rcpts[i];
        strbuf_putc(out, '\n');
        put_addr_field(out, "Final-Recipient", r->address);
        if (r->orig != NULL && r->orig[0] != '\0') {
            const char *semi = strchr(r->orig, ';');
            if (semi != NULL && semi != r->orig) {
                /* Already "addr-type;address" (RFC 3461 ORCPT form). */
                strbuf_puts(out, "Original-Recipient: ");
                put_clean(out, r->orig, 512);
                strbuf_putc(out, '\n');
            } else {
                put_addr_field(out, "Original-Recipient", r->orig);
            }
        }
        strbuf_printf(out, "Action: %s\n", action_name(r->action));
        strbuf_puts(out, "Status: ");
        put_status(out, r);
        strbuf_puts(out, "\n");
        if (r->action == DSN_ACTION_DELAYED && req->will_retry_until > 0) {
            strbuf_puts(out, "Will-Retry-Until: ");
            put_date(out, req->will_retry_until);
            strbuf_putc(out, '\n');
        }
        if (r->reason != NULL && r->reason[0] != '\0') {
            strbuf_puts(out, "Diagnostic-Code: X-Tegami; ");
            put_clean(out, r->reason, DSN_REASON_MAX);
            strbuf_putc(out, '\n');
        }
    }
    strbuf_putc(out, '\n');

    /* Part 3: what was returned. */
    strbuf_printf(out, "--%s\n", boundary.data);
    const char *what = nfailed > 0 || ndelayed > 0 ? "Undelivered" : "Delivered";
    if (req->original_full) {
        strbuf_printf(out, "Content-Description: %s Message\n", what);
        strbuf_puts(out, "Content-Type: message/rfc822\n");
    } else {
        strbuf_printf(out, "Content-Description: %s Message Headers\n", what);
        strbuf_puts(out, "Content-Type: text/rfc822-headers\n");
    }
    if (eightbit)
        strbuf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    strbuf_putc(out, '\n');
    if (req->original_len > 0) {
        strbuf_append(out, req->original, req->original_len);
        if (req->original[req->original_len - 1] != '\n')
            strbuf_putc(out, '\n');
    }
    strbuf_printf(out, "\n--%s--\n", boundary.data);

    strbuf_release(&boundary);
    strbuf_release(&probe);
}

int dsn_read_original(int fd, const struct qf_message *msg, size_t full_limit, struct strbuf *out,
                      bool *full_r)
{
    bool full = msg->dsn_ret == 1 && msg->content_size <= full_limit;
    size_t want = full
                      ? msg->content_size
                      : (msg->content_size < DSN_HEADERS_MAX ? msg->content_size : DSN_HEADERS_MAX);
    size_t got = 0;

    strbuf_reset(out);
    *full_r = full;
    strbuf_grow(out, want);
    while (got < want) {
        ssize_t n = pread(fd, out->data + got, want - got, msg->content_offset + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break; /* shorter than the envelope says: return what there is */
        got += (size_t)n;
    }
    out->len = got;
    out->data[got] = '\0';
    if (!full) {
        /* Headers end at the first empty line; a header block cut by the bound ends at a line end.
         */
        const char *p = out->data;
        size_t len = out->len;
        size_t end = len;
        if (len > 0 && p[0] == '\n') {
            end = 0;
        } else {
            const char *blank = memmem(p, len, "\n\n", 2);
            if (blank != NULL) {
                end = (size_t)(blank - p) + 1;
            } else if (len == DSN_HEADERS_MAX && len < msg->content_size) {
                const char *nl = memrchr(p, '\n', len);
                end = nl != NULL ? (size_t)(nl - p) + 1 : 0;
            }
        }
        strbuf_truncate(out, end);
    }
    return 0;
}
