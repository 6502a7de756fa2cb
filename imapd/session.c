/*
 * imapd session - one IMAP connection: greeting, command assembly (lines and
 * literals, every bound checked before bytes are read), states, dispatch,
 * the commands of any state, login, STARTTLS, ENABLE, ID and IDLE.
 */
#include "imapd.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "login.h"
#include "mailbox.h"
#include "mbox_index.h"
#include "msg.h"
#include "mymalloc.h"
#include "sasl.h"
#include "sock.h"
#include "vuser.h"

/* A too-long line is skipped up to this many line_limit-sized chunks; a
 * client that sends more without a LF is dropped (invariant 3). */
#define SKIP_CHUNKS_MAX 64
/* IDLE sends "* OK Still here" this often (seconds). */
#define IDLE_KEEPALIVE_S 120
/* ID (RFC 2971 §3.3): at most 30 field/value pairs. */
#define ID_PAIRS_MAX 30

/* ---- replies ------------------------------------------------------------ */

void imapd_write(struct imap_session *s, const void *data, size_t len)
{
    (void)stream_write(s->stream, data, len); /* errors are sticky; the loop sees them */
}

void imapd_printf(struct imap_session *s, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    imapd_write(s, sb.data, sb.len);
    strbuf_release(&sb);
}

void imapd_untagged(struct imap_session *s, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    strbuf_puts(&sb, "* ");
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    strbuf_append(&sb, "\r\n", 2);
    imapd_write(s, sb.data, sb.len);
    strbuf_release(&sb);
}

static const char *status_word(enum imap_status st)
{
    return st == IMAP_OK ? "OK" : st == IMAP_NO ? "NO" : "BAD";
}

void imapd_tagged(struct imap_session *s, const char *tag, enum imap_status st, const char *code,
                  const char *fmt, ...)
{
    if (s->state == IMAP_STATE_SELECTED && s->mbox != NULL)
        imapd_view_sync(s, s->sync_flags);
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "%s %s ", tag, status_word(st));
    if (code && *code)
        strbuf_printf(&sb, "[%s] ", code);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    strbuf_append(&sb, "\r\n", 2);
    imapd_write(s, sb.data, sb.len);
    strbuf_release(&sb);
}

void imapd_ok(struct imap_session *s, const char *tag, const char *text)
{
    imapd_tagged(s, tag, IMAP_OK, NULL, "%s", text);
}

void imapd_no(struct imap_session *s, const char *tag, const char *text)
{
    imapd_tagged(s, tag, IMAP_NO, NULL, "%s", text);
}

/* Count one erroneous command; ends the session at imapd_error_limit. */
static void count_error(struct imap_session *s)
{
    if (++s->errors >= (unsigned long long)imapd_params.error_limit &&
        s->state != IMAP_STATE_LOGOUT) {
        msg_warn("too many invalid commands from %s (%u), disconnecting", s->client, s->errors);
        imapd_untagged(s, "BYE Too many invalid IMAP commands.");
        s->state = IMAP_STATE_LOGOUT;
    }
}

void imapd_bad(struct imap_session *s, const char *tag, const char *text)
{
    /* Reasons are our static texts, never client data: safe to log. */
    msg_info("BAD from %s%s%s: %s", s->client, s->user ? ", user=" : "", s->user ? s->user : "",
             text ? text : "Invalid arguments");
    imapd_tagged(s, tag ? tag : "*", IMAP_BAD, NULL, "%s", text ? text : "Invalid arguments");
    count_error(s);
}

/* Quoted only when every byte is printable 7-bit text (or UTF-8 with
 * UTF8=ACCEPT is not assumed: literals are always safe). */
static bool quotable(const char *data, size_t len)
{
    if (len > 1024)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

void imapd_string_append(struct strbuf *out, const char *data, size_t len)
{
    if (data == NULL) {
        strbuf_puts(out, "NIL");
        return;
    }
    if (quotable(data, len)) {
        strbuf_putc(out, '"');
        for (size_t i = 0; i < len; i++) {
            if (data[i] == '"' || data[i] == '\\')
                strbuf_putc(out, '\\');
            strbuf_putc(out, data[i]);
        }
        strbuf_putc(out, '"');
        return;
    }
    strbuf_printf(out, "{%zu}\r\n", len);
    strbuf_append(out, data, len);
}

void imapd_write_string(struct imap_session *s, const char *data, size_t len)
{
    if (data == NULL)
        data = "";
    if (quotable(data, len)) {
        struct strbuf sb = STRBUF_INIT;
        imapd_string_append(&sb, data, len);
        imapd_write(s, sb.data, sb.len);
        strbuf_release(&sb);
        return;
    }
    imapd_printf(s, "{%zu}\r\n", len);
    imapd_write(s, data, len);
}

void imapd_write_nstring(struct imap_session *s, const char *data, size_t len)
{
    if (data == NULL)
        imapd_write(s, "NIL", 3);
    else
        imapd_write_string(s, data, len);
}

/* ---- memory ------------------------------------------------------------- */

/* A session end trims the heap when at least this much more is free than
 * after the last trim. */
#define TRIM_SLACK (256 * 1024)

/* Free heap bytes after our last malloc_trim (SIZE_MAX: not known yet). */
static size_t heap_free_trimmed = SIZE_MAX;

/*
 * Give free heap pages back to the kernel (malloc_trim also drops this
 * worker's private copies of the template's pages that are free now).
 * Unless force, only when there is much more free than last time.
 */
static void heap_trim(bool force)
{
    size_t free_now = mallinfo2().fordblks;
    if (heap_free_trimmed == SIZE_MAX)
        heap_free_trimmed = free_now; /* the first session: its start is the reference */
    if (!force && free_now < heap_free_trimmed + TRIM_SLACK)
        return;
    (void)malloc_trim(0);
    heap_free_trimmed = mallinfo2().fordblks;
}

/* ---- input -------------------------------------------------------------- */

static long long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/*
 * No input for imapd_idle_release_delay after our last response: give back
 * what an idle session can rebuild cheaply. The selected folder's Berkeley
 * DB handle and records (most of an idle session's heap: ~170 KiB of DB
 * cache and ~100 bytes a message) come back at the next command
 * (mbox_resume) or folder change (mbox_sync), the stream's empty buffers
 * (32 KiB) at the next read or write; drop1/drop2 are the caller's buffers
 * that hold nothing of value now (may be NULL). heap_trim then hands the
 * free heap pages back to the kernel.
 */
static void session_release(struct imap_session *s, struct strbuf *drop1, struct strbuf *drop2)
{
    if (s->released)
        return;
    if (s->mbox != NULL && !mbox_released(s->mbox)) {
        struct strbuf err = STRBUF_INIT;
        if (mbox_release(s->mbox, &err) < 0)
            msg_warn("user=%s, folder=%s: release: %s", s->user, s->folder, strbuf_str(&err));
        strbuf_release(&err);
    }
    if (drop1 != NULL)
        strbuf_release(drop1);
    if (drop2 != NULL)
        strbuf_release(drop2);
    stream_release_buffers(s->stream); /* 32 KiB, back at the next read/write */
    heap_trim(true);
    s->released = true;
}

/*
 * Before a command: reload the selected folder's records if the session
 * gave them back. false (logged, BYE sent) when the folder cannot be read.
 */
static bool session_resume(struct imap_session *s)
{
    if (s->mbox == NULL || !mbox_released(s->mbox))
        return true;
    struct strbuf err = STRBUF_INIT;
    bool ok = mbox_resume(s->mbox, &err) == 0;
    if (!ok) {
        msg_warn("user=%s, folder=%s: resume: %s", s->user, s->folder, strbuf_str(&err));
        imapd_untagged(s, "BYE Internal error: the selected mailbox cannot be read.");
        s->state = IMAP_STATE_LOGOUT;
    }
    strbuf_release(&err);
    return ok;
}

/*
 * Wait for input in slices of a second, so that SIGTERM from master
 * (server_should_exit) ends an idle session promptly. extra_fd (or -1) is
 * also watched (IDLE: the folder's change fd). After imapd_idle_release_delay
 * without input the session gives back its idle memory (session_release,
 * with drop1/drop2). 1 input ready, 2 extra_fd ready, 3 slice_ms elapsed
 * (if > 0), 0 timeout, -1 the process should exit.
 */
static int wait_for_input(struct imap_session *s, long long timeout_s, int extra_fd,
                          long long slice_ms, struct strbuf *drop1, struct strbuf *drop2)
{
    struct timespec start, last;
    clock_gettime(CLOCK_MONOTONIC, &start);
    last = start;
    for (;;) {
        if (server_should_exit())
            return -1;
        if (stream_buffered(s->stream) > 0)
            return 1;
        int wait_ms = 1000;
        if (!s->released && imapd_params.release_ms > 0) {
            long long left = imapd_params.release_ms - ms_since(&start);
            if (left <= 0)
                session_release(s, drop1, drop2);
            else if (left < wait_ms)
                wait_ms = (int)left;
        }
        struct pollfd pfd[2] = {{.fd = stream_fd(s->stream), .events = POLLIN, .revents = 0},
                                {.fd = extra_fd, .events = POLLIN, .revents = 0}};
        int n = poll(pfd, extra_fd >= 0 ? 2 : 1, wait_ms);
        if (n > 0 && pfd[0].revents)
            return 1;
        if (n > 0 && extra_fd >= 0 && pfd[1].revents)
            return 2;
        if (n < 0 && errno != EINTR)
            return 1; /* let the stream report the error */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= timeout_s)
            return 0;
        if (slice_ms > 0 &&
            (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >= slice_ms)
            return 3;
    }
}

static long long session_timeout(const struct imap_session *s)
{
    return s->state == IMAP_STATE_NOAUTH ? imapd_params.preauth_timeout : imapd_params.timeout;
}

/* Skip the rest of an over-long line: 0 once its LF is consumed, -1 to drop the client. */
static int skip_long_line(struct imap_session *s, struct strbuf *line)
{
    for (int i = 0; i < SKIP_CHUNKS_MAX; i++) {
        enum stream_result r = stream_read_line(s->stream, line, (size_t)imapd_params.line_limit);
        if (r == STREAM_OK)
            return 0;
        if (r != STREAM_PARTIAL)
            return -1;
    }
    msg_warn("endless command line from %s, disconnecting", s->client);
    return -1;
}

/* The tag at the start of buf (for a BAD about a command we could not take). */
static void peek_tag(const char *buf, size_t len, char *tag, size_t tagsize, bool *append_r)
{
    struct imap_parser p;
    const char *t, *name;
    snprintf(tag, tagsize, "*");
    if (append_r)
        *append_r = false;
    imap_parser_init(&p, buf, len, 1);
    if (imap_parse_tag(&p, &t) && strlen(t) < tagsize) {
        snprintf(tag, tagsize, "%s", t);
        if (append_r && imap_parse_sp(&p) && imap_parse_atom(&p, &name))
            *append_r = imap_atom_is(name, "APPEND");
    }
    imap_parser_release(&p);
}

enum assemble_result {
    ASM_OK,      /* cmd holds one complete command */
    ASM_REFUSED, /* the command was answered (refused); read the next */
    ASM_CLOSE,   /* end the session (logged) */
};

/*
 * Read one command: its lines and literals, wire bytes as sent, into cmd.
 * Every literal is checked against its bound before a byte of it is read:
 * a synchronising one that is too big gets a tagged NO [TOOBIG] (APPEND) or
 * BAD and the client never sends it; a non-synchronising one (LITERAL+)
 * cannot be stopped, so it ends the session with BYE (RFC 7888 §4).
 */
static enum assemble_result read_command(struct imap_session *s, struct strbuf *cmd,
                                         struct strbuf *line, const char **last)
{
    bool first = true, is_append = false;
    char tag[64];
    strbuf_reset(cmd);
    for (;;) {
        enum stream_result r = stream_read_line(s->stream, line, (size_t)imapd_params.line_limit);
        if (r == STREAM_PARTIAL) {
            if (first)
                peek_tag(line->data, line->len, tag, sizeof(tag), NULL);
            else
                peek_tag(cmd->data, cmd->len, tag, sizeof(tag), NULL);
            msg_warn("command line too long from %s", s->client);
            if (skip_long_line(s, line) < 0)
                return ASM_CLOSE;
            imapd_bad(s, tag, "Command line too long");
            return ASM_REFUSED;
        }
        if (r == STREAM_TIMEOUT) {
            msg_info("timeout after %s from %s", *last, s->client);
            imapd_untagged(s, "BYE Disconnected for inactivity.");
            return ASM_CLOSE;
        }
        if (r != STREAM_OK) {
            msg_info("lost connection after %s from %s", *last, s->client);
            return ASM_CLOSE;
        }
        if (first) {
            peek_tag(line->data, line->len, tag, sizeof(tag), &is_append);
            /* Before login APPEND is refused anyway: its literal gets the small bound. */
            if (s->state == IMAP_STATE_NOAUTH)
                is_append = false;
            first = false;
        }
        uint64_t size;
        bool nonsync;
        const char *why = NULL;
        int lit = imap_parse_literal_suffix(line->data, line->len, &size, &nonsync, &why);
        if (lit < 0) {
            imapd_bad(s, tag, why);
            return ASM_REFUSED;
        }
        unsigned long long limit = (unsigned long long)(is_append ? imapd_params.append_limit
                                                                  : imapd_params.literal_limit);
        unsigned long long total = (unsigned long long)imapd_params.command_limit;
        if (is_append)
            total += (unsigned long long)imapd_params.append_limit;
        if (cmd->len + line->len > total) {
            msg_warn("command too long from %s", s->client);
            imapd_bad(s, tag, "Command too long");
            /* A literal announced by this line will not come (BAD = not sent). */
            return nonsync && lit == 1 ? ASM_CLOSE : ASM_REFUSED;
        }
        strbuf_append(cmd, line->data, line->len);
        if (lit == 0)
            return ASM_OK;
        if (size > limit || size > total - cmd->len) {
            msg_warn("literal of %llu bytes refused from %s (limit %llu)", (unsigned long long)size,
                     s->client, limit);
            if (nonsync) {
                imapd_untagged(s, "BYE [TOOBIG] Literal too large.");
                return ASM_CLOSE;
            }
            if (is_append)
                imapd_tagged(s, tag, IMAP_NO, "TOOBIG", "Message too large.");
            else
                imapd_bad(s, tag, "Literal too large");
            return ASM_REFUSED;
        }
        if (!nonsync) {
            imapd_write(s, "+ OK\r\n", 6);
            if (stream_flush(s->stream) < 0)
                return ASM_CLOSE;
        }
        strbuf_grow(cmd, (size_t)size);
        if (size > 0) {
            r = stream_read_exact(s->stream, cmd->data + cmd->len, (size_t)size);
            if (r == STREAM_TIMEOUT) {
                msg_info("timeout in a literal after %s from %s", *last, s->client);
                imapd_untagged(s, "BYE Disconnected for inactivity.");
                return ASM_CLOSE;
            }
            if (r != STREAM_OK) {
                msg_info("lost connection in a literal after %s from %s", *last, s->client);
                return ASM_CLOSE;
            }
            cmd->len += (size_t)size;
            cmd->data[cmd->len] = '\0';
        }
    }
}

/* ---- any state ---------------------------------------------------------- */

/* May this session send a password? Same rule as pop3d's. */
static bool login_allowed(const struct imap_session *s)
{
    return s->tls != NULL || imapd_params.plaintext_auth ||
           (s->loopback && imapd_params.plaintext_auth_loopback);
}

static void capability_list(struct imap_session *s, struct strbuf *out)
{
    strbuf_puts(out, "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE");
    if (s->state == IMAP_STATE_NOAUTH) {
        if (imapd_tls_ctx != NULL && s->tls == NULL)
            strbuf_puts(out, " STARTTLS");
        if (login_allowed(s))
            strbuf_puts(out, " AUTH=PLAIN");
        else
            strbuf_puts(out, " LOGINDISABLED");
        return;
    }
    strbuf_puts(out,
                " NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS"
                " CONDSTORE QRESYNC ESEARCH UTF8=ACCEPT STATUS=SIZE");
    if (imapd_params.append_limit > 0)
        strbuf_printf(out, " APPENDLIMIT=%lld", imapd_params.append_limit);
}

static void cmd_capability(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    struct strbuf caps = STRBUF_INIT;
    capability_list(s, &caps);
    imapd_untagged(s, "CAPABILITY %s", caps.data);
    strbuf_release(&caps);
    imapd_ok(s, tag, "Capability completed.");
}

static void cmd_noop(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    imapd_ok(s, tag, "NOOP completed.");
}

static void cmd_logout(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    imapd_untagged(s, "BYE Logging out");
    if (s->mbox)
        imapd_unselect(s);
    s->state = IMAP_STATE_LOGOUT;
    imapd_ok(s, tag, "Logout completed.");
}

/* RFC 2971: log what the client says it is; answer with our name. */
static void cmd_id(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf seen = STRBUF_INIT;
    if (!imap_parse_sp(p))
        goto bad;
    if (imap_parse_peek(p, '(')) {
        if (!imap_parse_list_begin(p))
            goto bad;
        for (unsigned n = 0; !imap_parse_peek(p, ')'); n++) {
            struct imap_str k, v;
            if (n >= ID_PAIRS_MAX) {
                imap_parse_fail(p, "Too many ID fields");
                goto bad;
            }
            if ((n > 0 && !imap_parse_sp(p)) || !imap_parse_string(p, &k) || !imap_parse_sp(p) ||
                !imap_parse_nstring(p, &v))
                goto bad;
            if (imap_str_is_text(&k) && k.len <= 30 &&
                (v.data == NULL || (imap_str_is_text(&v) && v.len <= 1024))) {
                if (seen.len)
                    strbuf_puts(&seen, ", ");
                strbuf_printf(&seen, "%s=%s", k.data, v.data ? v.data : "NIL");
            }
        }
        if (!imap_parse_list_end(p))
            goto bad;
    } else {
        struct imap_str nil;
        if (!imap_parse_nstring(p, &nil))
            goto bad;
        if (nil.data != NULL) {
            imap_parse_fail(p, "Expected a list or NIL");
            goto bad;
        }
    }
    if (!imap_parse_eol(p))
        goto bad;
    if (seen.len) {
        /* Client text goes into the log: drop what could forge a line. */
        for (size_t i = 0; i < seen.len; i++)
            if ((unsigned char)seen.data[i] < 0x20 || seen.data[i] == 0x7f)
                seen.data[i] = '?';
        msg_info("id: client=%s, %s", s->client, seen.data);
    }
    imapd_untagged(s, "ID (\"name\" \"tegami\" \"vendor\" \"tegami\")");
    imapd_ok(s, tag, "ID completed.");
    strbuf_release(&seen);
    return;
bad:
    strbuf_release(&seen);
    imapd_bad(s, tag, p->error);
}

/* RFC 5161 ENABLE. */
static void cmd_enable(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf enabled = STRBUF_INIT;
    if (!imap_parse_sp(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    for (bool first = true; first || !imap_parse_at_eol(p); first = false) {
        const char *cap;
        if ((!first && !imap_parse_sp(p)) || !imap_parse_atom_ext(p, "=", &cap)) {
            strbuf_release(&enabled);
            imapd_bad(s, tag, p->error);
            return;
        }
        static const struct {
            const char *name;
            unsigned bits;
        } known[] = {{"CONDSTORE", IMAPD_ENABLE_CONDSTORE},
                     {"QRESYNC", IMAPD_ENABLE_QRESYNC | IMAPD_ENABLE_CONDSTORE},
                     {"UTF8=ACCEPT", IMAPD_ENABLE_UTF8},
                     {"IMAP4rev2", IMAPD_ENABLE_REV2}};
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
            if (!imap_atom_is(cap, known[k].name) || (s->enabled & known[k].bits) == known[k].bits)
                continue; /* unknown or already on: not listed (RFC 5161 §3.1) */
            s->enabled |= known[k].bits;
            strbuf_printf(&enabled, " %s", known[k].name);
        }
    }
    if (!imap_parse_eol(p)) {
        strbuf_release(&enabled);
        imapd_bad(s, tag, p->error);
        return;
    }
    imapd_untagged(s, "ENABLED%s", enabled.data ? enabled.data : "");
    strbuf_release(&enabled);
    imapd_ok(s, tag, "Enabled.");
}

/* ---- not authenticated -------------------------------------------------- */

static void sleep_seconds(long long secs)
{
    struct timespec ts = {(time_t)secs, 0};
    while (secs > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int imapd_session_start_tls(struct imap_session *s)
{
    struct strbuf err = STRBUF_INIT;
    /* RFC 3501 §6.2.1 / RFC 2595 §3.1: nothing pipelined before the handshake counts. */
    stream_discard_input(s->stream);
    if (stream_flush(s->stream) < 0) {
        strbuf_release(&err);
        return -1;
    }
    s->tls =
        tls_conn_start(imapd_tls_ctx, s->stream, true, NULL, imapd_params.tls_timeout_ms, &err);
    if (s->tls == NULL) {
        msg_info("TLS handshake failed with %s: %s", s->client, strbuf_str(&err));
        strbuf_release(&err);
        return -1;
    }
    strbuf_reset(&err);
    tls_conn_describe(s->tls, &err);
    msg_info("TLS connection established from %s: %s%s", s->client, strbuf_str(&err),
             tls_conn_resumed(s->tls) ? " (resumed)" : "");
    strbuf_release(&err);
    return 0;
}

static void cmd_starttls(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    if (imapd_tls_ctx == NULL) {
        imapd_bad(s, tag, "TLS support isn't enabled.");
        return;
    }
    if (s->tls != NULL) {
        imapd_bad(s, tag, "TLS is already active.");
        return;
    }
    imapd_ok(s, tag, "Begin TLS negotiation now.");
    if (imapd_session_start_tls(s) < 0)
        s->state = IMAP_STATE_LOGOUT;
}

/*
 * One slot of imapd_user_connection_limit: an flock on one of the files
 * $data_directory/imapd-users/<user>.<n>. The kernel drops the lock when
 * the process ends, however it ends, so a crash never leaks a slot.
 * Returns the locked fd, -1 when every slot is taken, -2 when the slots
 * cannot be used (logged; the login goes ahead: a guard, not a gate).
 */
static int user_slot_acquire(const char *user)
{
    struct strbuf path = STRBUF_INIT;
    const char *data = config_str("data_directory");
    strbuf_printf(&path, "%s/imapd-users", data);
    if (mkdir(path.data, 0700) < 0 && errno != EEXIST) {
        msg_warn("mkdir %s: %m (no per-user connection limit)", path.data);
        strbuf_release(&path);
        return -2;
    }
    size_t base = path.len;
    for (long long i = 0; i < imapd_params.user_conn_limit; i++) {
        strbuf_truncate(&path, base);
        strbuf_printf(&path, "/%s.%lld", user, i);
        int fd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            msg_warn("open %s: %m (no per-user connection limit)", path.data);
            strbuf_release(&path);
            return -2;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            strbuf_release(&path);
            return fd;
        }
        close(fd);
    }
    strbuf_release(&path);
    return -1;
}

static void auth_failed(struct imap_session *s, const char *tag, const char *user, const char *why)
{
    s->auth_failures++;
    msg_warn("authentication failed: user=%s, client=%s, reason=%s, failures=%u",
             user && *user ? user : "<invalid>", s->client, why ? why : "?", s->auth_failures);
    sleep_seconds(imapd_params.auth_delay);
    imapd_tagged(s, tag, IMAP_NO, "AUTHENTICATIONFAILED", "Authentication failed.");
    if (s->auth_failures >= (unsigned long long)imapd_params.auth_limit) {
        msg_warn("too many authentication failures from %s, disconnecting", s->client);
        imapd_untagged(s, "BYE Too many invalid authentication attempts.");
        s->state = IMAP_STATE_LOGOUT;
    }
}

/* Check the password of login; on success the authenticated state begins. */
static void do_login(struct imap_session *s, const char *tag, const char *login_name,
                     const char *password, const char *method)
{
    char *user = login_user_name(login_name);
    struct vuser u;
    struct strbuf err = STRBUF_INIT;
    const char *why = NULL;
    int found = user ? login_verify(user, password, &u, &why, &err) : 0;
    if (user == NULL) {
        login_verify_dummy(password);
        why = "invalid login name";
    }
    if (found < 0) {
        msg_warn("user lookup %s: %s", user, strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "UNAVAILABLE", "Authentication temporarily unavailable.");
        goto out;
    }
    if (found == 0) {
        auth_failed(s, tag, user, why);
        goto out;
    }
    int slot = user_slot_acquire(user);
    if (slot == -1) {
        msg_warn("login refused: user=%s, client=%s, reason=too many connections (%lld)", user,
                 s->client, imapd_params.user_conn_limit);
        vuser_release(&u);
        imapd_tagged(s, tag, IMAP_NO, "LIMIT", "Too many simultaneous connections for this user.");
        goto out;
    }
    s->user_slot_fd = slot;
    /* RFC 6154: the special-use folders of a new user; idempotent. */
    if (mailbox_create_defaults(u.maildir, &err) < 0)
        msg_warn("user=%s: default folders: %s", user, strbuf_str(&err));
    s->user = user;
    user = NULL;
    s->maildir = mystrdup(u.maildir);
    vuser_release(&u);
    s->state = IMAP_STATE_AUTH;
    stream_set_timeout(s->stream, (int)(imapd_params.timeout * 1000));
    msg_info("login: user=%s, client=%s, method=%s, tls=%s", s->user, s->client, method,
             s->tls ? tls_conn_version(s->tls) : "no");
    struct strbuf caps = STRBUF_INIT;
    capability_list(s, &caps);
    imapd_tagged(s, tag, IMAP_OK, NULL, "[CAPABILITY %s] Logged in", caps.data);
    strbuf_release(&caps);
out:
    myfree(user);
    strbuf_release(&err);
}

static void plaintext_refused(struct imap_session *s, const char *tag)
{
    msg_info("plaintext login refused without TLS from %s", s->client);
    imapd_tagged(s, tag, IMAP_NO, "PRIVACYREQUIRED",
                 "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
}

static void cmd_login(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct imap_str user, pass;
    if (!imap_parse_sp(p) || !imap_parse_astring(p, &user) || !imap_parse_sp(p) ||
        !imap_parse_astring(p, &pass) || !imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    if (!login_allowed(s)) {
        plaintext_refused(s, tag);
        return;
    }
    if (!imap_str_is_text(&user) || !imap_str_is_text(&pass)) {
        auth_failed(s, tag, NULL, "NUL in login");
        return;
    }
    do_login(s, tag, user.data, pass.data, "LOGIN");
    explicit_bzero((char *)pass.data, pass.len);
}

/* RFC 3501 §6.2.2 AUTHENTICATE PLAIN, with RFC 4959 SASL-IR. */
static void cmd_authenticate(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    const char *mech, *ir = NULL;
    if (!imap_parse_sp(p) || !imap_parse_atom_ext(p, "-_", &mech)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    if (imap_parse_peek(p, ' ')) {
        if (!imap_parse_sp(p) || !imap_parse_atom_ext(p, "=+/", &ir)) {
            imapd_bad(s, tag, p->error);
            return;
        }
    }
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    if (sasl_mech_find(mech) != SASL_MECH_PLAIN) {
        imapd_no(s, tag, "Unsupported authentication mechanism.");
        return;
    }
    if (!login_allowed(s)) {
        plaintext_refused(s, tag);
        return;
    }
    struct strbuf line = STRBUF_INIT;
    const char *resp = ir;
    size_t rlen = ir ? strlen(ir) : 0;
    if (ir == NULL) {
        imapd_write(s, "+ \r\n", 4);
        if (stream_flush(s->stream) < 0) {
            s->state = IMAP_STATE_LOGOUT;
            return;
        }
        enum stream_result r = stream_read_line(s->stream, &line, SASL_RESPONSE_MAX + 2);
        if (r != STREAM_OK) {
            if (r == STREAM_PARTIAL)
                msg_warn("SASL response too long from %s", s->client);
            else
                msg_info("lost connection during AUTHENTICATE from %s", s->client);
            strbuf_release(&line);
            s->state = IMAP_STATE_LOGOUT;
            return;
        }
        strbuf_truncate(&line, line.len - 1);
        if (line.len > 0 && line.data[line.len - 1] == '\r')
            strbuf_truncate(&line, line.len - 1);
        resp = line.data;
        rlen = line.len;
    }
    if (sasl_is_cancel(resp, rlen)) {
        strbuf_release(&line);
        imapd_bad(s, tag, "Authentication aborted by client.");
        return;
    }
    struct sasl_creds cr;
    const char *why = NULL;
    int r = sasl_plain_decode(resp, rlen, &cr, &why);
    if (line.data)
        explicit_bzero(line.data, line.len);
    strbuf_release(&line);
    if (r < 0) {
        msg_warn("malformed SASL PLAIN response from %s: %s", s->client, why);
        imapd_bad(s, tag, "Invalid base64 data in continued response");
        return;
    }
    /* RFC 4616: an authzid other than the login asks to act as someone else: refused. */
    if (cr.authzid[0] != '\0' && strcmp(cr.authzid, cr.authcid) != 0)
        auth_failed(s, tag, cr.authcid, "proxy login (authzid) refused");
    else
        do_login(s, tag, cr.authcid, cr.passwd, "PLAIN");
    sasl_creds_release(&cr);
}

/* ---- IDLE (RFC 2177) ---------------------------------------------------- */

static void cmd_idle(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    /* Updates that are already due go out before the continuation. */
    if (s->state == IMAP_STATE_SELECTED && s->mbox)
        imapd_view_sync(s, IMAPD_SYNC_EXPUNGES);
    imapd_write(s, "+ idling\r\n", 10);
    struct strbuf line = STRBUF_INIT;
    struct timespec begin, keepalive;
    clock_gettime(CLOCK_MONOTONIC, &begin);
    keepalive = begin;
    for (;;) {
        if (stream_flush(s->stream) < 0) {
            s->state = IMAP_STATE_LOGOUT;
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = imapd_params.idle_timeout - (now.tv_sec - begin.tv_sec);
        /* Like Dovecot: a line every 2 minutes keeps NAT state and the client's timer alive. */
        if (now.tv_sec - keepalive.tv_sec >= IDLE_KEEPALIVE_S) {
            imapd_untagged(s, "OK Still here");
            keepalive = now;
            continue;
        }
        int fd = s->state == IMAP_STATE_SELECTED ? imapd_view_change_fd(s) : -1;
        int w = left <= 0 ? 0
                          : wait_for_input(s, left, fd,
                                           imapd_params.idle_notify_ms < IDLE_KEEPALIVE_S * 1000
                                               ? imapd_params.idle_notify_ms
                                               : IDLE_KEEPALIVE_S * 1000,
                                           &line, NULL);
        if (w < 0) {
            imapd_untagged(s, "BYE Server shutting down.");
            s->state = IMAP_STATE_LOGOUT;
            break;
        }
        if (w == 0) {
            msg_info("IDLE timeout from %s", s->client);
            imapd_untagged(s, "BYE Disconnected for inactivity.");
            s->state = IMAP_STATE_LOGOUT;
            break;
        }
        if (w == 2 || w == 3) {
            if (w == 2)
                imapd_view_change_ack(s);
            if (s->state != IMAP_STATE_SELECTED || s->mbox == NULL)
                continue;
            /* The periodic check of a released folder reloads nothing unless
             * the cheap test (change counter, directory mtimes) says so. */
            if (w == 3 && mbox_released(s->mbox) && !mbox_changed(s->mbox))
                continue;
            imapd_view_sync(s, IMAPD_SYNC_EXPUNGES);
            s->released = false; /* let it go again after the delay */
            continue;
        }
        enum stream_result r = stream_read_line(s->stream, &line, 64);
        if (r == STREAM_PARTIAL) {
            if (skip_long_line(s, &line) < 0) {
                s->state = IMAP_STATE_LOGOUT;
                break;
            }
            imapd_bad(s, tag, "Expected DONE.");
            break;
        }
        if (r != STREAM_OK) {
            msg_info("lost connection during IDLE from %s", s->client);
            s->state = IMAP_STATE_LOGOUT;
            break;
        }
        size_t n = line.len;
        while (n > 0 && (line.data[n - 1] == '\n' || line.data[n - 1] == '\r'))
            n--;
        if (n == 4 && strncasecmp(line.data, "DONE", 4) == 0)
            imapd_ok(s, tag, "Idle completed.");
        else
            imapd_bad(s, tag, "Expected DONE.");
        break;
    }
    strbuf_release(&line);
}

/* ---- dispatch ----------------------------------------------------------- */

#define ST_NOAUTH (1u << IMAP_STATE_NOAUTH)
#define ST_AUTH (1u << IMAP_STATE_AUTH)
#define ST_SELECTED (1u << IMAP_STATE_SELECTED)
#define ST_ANY (ST_NOAUTH | ST_AUTH | ST_SELECTED)
#define ST_LOGGEDIN (ST_AUTH | ST_SELECTED)

/* Adapters from the table's signature to the handlers' own. */
static void h_list(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_list(s, t, p, false);
}
static void h_lsub(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_list(s, t, p, true);
}
static void h_subscribe(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_subscribe(s, t, p, true);
}
static void h_unsubscribe(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_subscribe(s, t, p, false);
}
static void h_select(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_select(s, t, p, false);
}
static void h_examine(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_select(s, t, p, true);
}
static void h_close(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_close(s, t, p, true);
}
static void h_unselect(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_close(s, t, p, false);
}
static void h_fetch(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_fetch(s, t, p, false);
}
static void h_store(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_store(s, t, p, false);
}
static void h_search(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_search(s, t, p, false);
}
static void h_copy(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_copy(s, t, p, false, false);
}
static void h_move(struct imap_session *s, const char *t, struct imap_parser *p)
{
    imapd_cmd_copy(s, t, p, false, true);
}

static void cmd_uid(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    const char *name;
    if (!imap_parse_sp(p) || !imap_parse_atom(p, &name)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    /* RFC 3501 §7.4.1: the UID forms may carry EXPUNGE responses. */
    s->sync_flags = IMAPD_SYNC_EXPUNGES;
    if (imap_atom_is(name, "FETCH"))
        imapd_cmd_fetch(s, tag, p, true);
    else if (imap_atom_is(name, "STORE"))
        imapd_cmd_store(s, tag, p, true);
    else if (imap_atom_is(name, "SEARCH"))
        imapd_cmd_search(s, tag, p, true);
    else if (imap_atom_is(name, "COPY"))
        imapd_cmd_copy(s, tag, p, true, false);
    else if (imap_atom_is(name, "MOVE"))
        imapd_cmd_copy(s, tag, p, true, true);
    else if (imap_atom_is(name, "EXPUNGE"))
        imapd_cmd_uid_expunge(s, tag, p);
    else
        imapd_bad(s, tag, "Unknown UID command.");
}

static const struct imap_command {
    const char *name;
    unsigned states;
    bool expunges; /* may send EXPUNGE responses (RFC 3501 §7.4.1) */
    imapd_cmd_fn *fn;
} commands[] = {
    {"CAPABILITY", ST_ANY, true, cmd_capability},
    {"NOOP", ST_ANY, true, cmd_noop},
    {"LOGOUT", ST_ANY, true, cmd_logout},
    {"ID", ST_ANY, true, cmd_id},
    {"STARTTLS", ST_NOAUTH, true, cmd_starttls},
    {"LOGIN", ST_NOAUTH, true, cmd_login},
    {"AUTHENTICATE", ST_NOAUTH, true, cmd_authenticate},
    {"ENABLE", ST_LOGGEDIN, true, cmd_enable},
    {"SELECT", ST_LOGGEDIN, true, h_select},
    {"EXAMINE", ST_LOGGEDIN, true, h_examine},
    {"CREATE", ST_LOGGEDIN, true, imapd_cmd_create},
    {"DELETE", ST_LOGGEDIN, true, imapd_cmd_delete},
    {"RENAME", ST_LOGGEDIN, true, imapd_cmd_rename},
    {"SUBSCRIBE", ST_LOGGEDIN, true, h_subscribe},
    {"UNSUBSCRIBE", ST_LOGGEDIN, true, h_unsubscribe},
    {"LIST", ST_LOGGEDIN, true, h_list},
    {"LSUB", ST_LOGGEDIN, true, h_lsub},
    {"STATUS", ST_LOGGEDIN, true, imapd_cmd_status},
    {"NAMESPACE", ST_LOGGEDIN, true, imapd_cmd_namespace},
    {"APPEND", ST_LOGGEDIN, true, imapd_cmd_append},
    {"IDLE", ST_LOGGEDIN, true, cmd_idle},
    {"CHECK", ST_SELECTED, true, imapd_cmd_check},
    {"CLOSE", ST_SELECTED, true, h_close},
    {"UNSELECT", ST_SELECTED, true, h_unselect},
    {"EXPUNGE", ST_SELECTED, true, imapd_cmd_expunge},
    {"FETCH", ST_SELECTED, false, h_fetch},
    {"STORE", ST_SELECTED, false, h_store},
    {"SEARCH", ST_SELECTED, false, h_search},
    {"COPY", ST_SELECTED, true, h_copy},
    {"MOVE", ST_SELECTED, true, h_move},
    {"UID", ST_SELECTED, true, cmd_uid},
};

static const char *state_name(enum imap_state st)
{
    switch (st) {
    case IMAP_STATE_NOAUTH:
        return "not authenticated";
    case IMAP_STATE_AUTH:
        return "authenticated";
    case IMAP_STATE_SELECTED:
        return "selected";
    case IMAP_STATE_LOGOUT:
        return "logout";
    }
    return "?";
}

/* Parse and run one assembled command. last gets its name (static text). */
static void run_command(struct imap_session *s, const struct strbuf *cmd, const char **last)
{
    struct imap_parser p;
    const char *tag, *name;
    imap_parser_init(&p, cmd->data, cmd->len, (unsigned)imapd_params.list_depth);
    if (imap_parse_at_eol(&p)) {
        imap_parser_release(&p);
        imapd_bad(s, "*", "Empty command line.");
        return;
    }
    if (!imap_parse_tag(&p, &tag)) {
        imapd_bad(s, "*", p.error);
        imap_parser_release(&p);
        return;
    }
    if (!imap_parse_sp(&p) || !imap_parse_atom(&p, &name)) {
        imapd_bad(s, tag,
                  p.error && strcmp(p.error, "Missing argument") == 0 ? "Missing command."
                                                                      : p.error);
        imap_parser_release(&p);
        return;
    }
    const struct imap_command *c = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (imap_atom_is(name, commands[i].name))
            c = &commands[i];
    if (c == NULL) {
        imapd_bad(s, tag, "Unknown command.");
    } else if (!(c->states & (1u << s->state))) {
        if (s->state == IMAP_STATE_NOAUTH)
            imapd_bad(s, tag, "Command not valid before login (LOGIN or AUTHENTICATE first).");
        else if (c->states == ST_NOAUTH)
            imapd_bad(s, tag, "Command not valid after login.");
        else
            imapd_bad(s, tag, "Command not valid in this state (no folder selected).");
        msg_info("command %s refused in %s state from %s", c->name, state_name(s->state),
                 s->client);
    } else {
        *last = c->name;
        s->commands++;
        s->sync_flags = c->expunges ? IMAPD_SYNC_EXPUNGES : 0;
        c->fn(s, tag, &p);
        s->sync_flags = IMAPD_SYNC_EXPUNGES;
    }
    /* Wipe what may hold a password before the buffers are reused. */
    if (c && (c->fn == cmd_login || c->fn == cmd_authenticate))
        explicit_bzero(cmd->data, cmd->len);
    imap_parser_release(&p);
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
void imapd_service(struct server_client *client)
{
    struct imap_session s;
    char clientbuf[96];
    memset(&s, 0, sizeof(s));
    snprintf(clientbuf, sizeof(clientbuf), "[%s]:%d", client->addr, client->port);
    snprintf(s.addr, sizeof(s.addr), "%s", client->addr);
    s.client = clientbuf;
    s.state = IMAP_STATE_NOAUTH;
    s.user_slot_fd = -1;
    s.sync_flags = IMAPD_SYNC_EXPUNGES;
    if (client->peer.ss_family == AF_INET || client->peer.ss_family == AF_INET6) {
        int on = 1;
        (void)setsockopt(client->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
    if (heap_free_trimmed == SIZE_MAX)
        heap_free_trimmed = mallinfo2().fordblks;
    s.stream = client->nonblock_socket ? stream_sockopen(client->fd) : stream_fdopen(client->fd);
    /* Before login every read (a literal too) waits at most imapd_preauth_timeout. */
    stream_set_timeout(s.stream, (int)(imapd_params.preauth_timeout * 1000));
    s.loopback = sock_addr_is_loopback((const struct sockaddr *)&client->peer);
    msg_info("connect from %s", s.client);

    /* IMAPS: the handshake comes before the greeting. */
    if (imapd_tls_wrapper && imapd_session_start_tls(&s) < 0) {
        s.state = IMAP_STATE_LOGOUT;
    } else {
        struct strbuf caps = STRBUF_INIT;
        capability_list(&s, &caps);
        imapd_untagged(&s, "OK [CAPABILITY %s] tegami ready.", caps.data);
        strbuf_release(&caps);
    }

    struct strbuf line = STRBUF_INIT, cmd = STRBUF_INIT;
    const char *last = "CONNECT";
    while (s.state != IMAP_STATE_LOGOUT) {
        /* Answer a pipelined batch of commands in one write. */
        if (stream_buffered(s.stream) == 0 && stream_flush(s.stream) < 0) {
            msg_info("lost connection after %s from %s", last, s.client);
            break;
        }
        int w = wait_for_input(&s, session_timeout(&s), -1, 0, &line, &cmd);
        if (w < 0) {
            imapd_untagged(&s, "BYE Server shutting down.");
            msg_info("shutdown after %s from %s", last, s.client);
            break;
        }
        if (w == 0) {
            imapd_untagged(&s, "BYE Disconnected for inactivity.");
            msg_info("timeout after %s from %s", last, s.client);
            break;
        }
        enum assemble_result ar = read_command(&s, &cmd, &line, &last);
        explicit_bzero(line.data, line.len);
        if (ar == ASM_CLOSE)
            break;
        if (ar == ASM_OK && session_resume(&s))
            run_command(&s, &cmd, &last);
        s.released = false; /* the command (or a refusal's view sync) allocated again */
        /* Do not keep a huge APPEND buffer around between commands. */
        if (cmd.cap > 1024 * 1024)
            strbuf_release(&cmd);
    }
    if (s.mbox)
        imapd_unselect(&s);
    (void)stream_flush(s.stream);
    if (s.user)
        msg_info("logout: user=%s, client=%s, commands=%lu, in=%llu, out=%llu", s.user, s.client,
                 s.commands, stream_bytes_in(s.stream), stream_bytes_out(s.stream));
    msg_info("disconnect from %s in=%llu out=%llu", s.client, stream_bytes_in(s.stream),
             stream_bytes_out(s.stream));
    strbuf_release(&line);
    strbuf_release(&cmd);
    myfree(s.user);
    myfree(s.maildir);
    if (s.user_slot_fd >= 0)
        close(s.user_slot_fd);
    tls_conn_free(&s.tls);
    stream_free(&s.stream);
    /* The process waits for its next client: what this session freed goes
     * back too, unless it was little (a login and logout: trimming and
     * faulting the pages in again would cost more than it saves). */
    heap_trim(false);
}
