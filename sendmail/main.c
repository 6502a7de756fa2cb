/*
 * sendmail - the sendmail(8) submission interface.
 *
 *   sendmail [-C DIR] [-t] [-i] [-oi] [-f sender] [-F fullname] [--] [rcpt...]
 *
 * Reads one message on standard input (LF or CRLF line ends; stored with
 * LF), adds Message-ID, Date and From when they are missing, and writes a
 * queue file into maildrop/ (queue_create + fsync + rename), then wakes
 * pickup. It needs no running daemon: the file waits in maildrop/ until
 * pickup, which re-checks it like network input, moves it on. Exit codes
 * are sysexits(3): 0 once the file is committed.
 *
 * Without -i (or -oi) a line holding a single "." ends the input. With -t
 * the To, Cc and Bcc headers are added to the recipients and Bcc headers
 * are removed. Bare local parts get "@$myorigin".
 *
 * Common sendmail flags (-oem, -odi, -bm, -v, -N, -R, -V, -B, -h, -U, -n,
 * -m, -d, -X, -L, -A) are accepted and ignored; -q asks qmgr to flush.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue.h"
#include "queue_file.h"
#include "strbuf.h"

#define LINE_PIECE_MAX 65536 /* stdin is processed in lines of at most this many bytes */

/* ---- options ---- */

struct options {
    const char *config_dir;
    bool extract;     /* -t */
    bool ignore_dots; /* -i, -oi */
    const char *sender;
    const char *fullname;
    bool flush; /* -q */
    char **rcpt_args;
    int nrcpt_args;
};

static _Noreturn void usage(const char *why)
{
    if (why)
        fprintf(stderr, "sendmail: %s\n", why);
    fprintf(stderr, "usage: sendmail [-C dir] [-t] [-i] [-f sender] [-F fullname] [--] "
                    "[recipient ...]\n");
    exit(EX_USAGE);
}

static void parse_options(int argc, char **argv, struct options *o)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == 0)
            break;
        for (const char *p = a + 1; *p; p++) {
            char c = *p;
            const char *val = NULL;
            if (strchr("CfFrNRVBhLXoqbA", c)) {
                /* Options with a value: the rest of this argument or the next one. */
                if (p[1])
                    val = p + 1;
                else if (c == 'q' || c == 'b' || c == 'A')
                    val = ""; /* -q, -b?, -A? take no separate argument */
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    usage("option requires an argument");
            }
            switch (c) {
            case 't':
                o->extract = true;
                continue;
            case 'i':
                o->ignore_dots = true;
                continue;
            case 'v':
            case 'n':
            case 'm':
            case 'U':
            case 'd':
            case 'e':
                continue;
            case 'C': {
                /* -C names the config directory (or a main.cf inside it). */
                struct stat st;
                if (stat(val, &st) == 0 && S_ISREG(st.st_mode)) {
                    char *dir = mystrdup(val);
                    char *slash = strrchr(dir, '/');
                    if (slash == NULL)
                        o->config_dir = ".";
                    else {
                        *slash = 0;
                        o->config_dir = *dir ? dir : "/";
                    }
                } else {
                    o->config_dir = val;
                }
                break;
            }
            case 'f':
            case 'r':
                o->sender = val;
                break;
            case 'F':
                o->fullname = val;
                break;
            case 'o':
                if (strcmp(val, "i") == 0)
                    o->ignore_dots = true;
                break; /* -oem, -odi, -oQ... ignored */
            case 'b':
                if (*val != 0 && strcmp(val, "m") != 0)
                    usage("only -bm (the default) is supported");
                break;
            case 'q':
                o->flush = true;
                break;
            default:
                if (strchr("NRVBhLXA", c))
                    break;
                fprintf(stderr, "sendmail: unknown option -%c\n", c);
                usage(NULL);
            }
            break; /* the value used the rest of this argument */
        }
    }
    o->rcpt_args = argv + i;
    o->nrcpt_args = argc - i;
}

/* ---- recipients ---- */

struct rcpt_list {
    char **addr;
    size_t count, cap, limit;
    bool utf8;
};

static const char *myorigin;

/*
 * Validate one addr-spec, qualify a bare local part with @$myorigin and
 * add it (once) to the list. false with a reason on a bad address.
 */
static bool rcpt_add(struct rcpt_list *l, const char *text, size_t len, const char **why_r)
{
    struct address a;
    if (!address_parse(text, len, ADDRESS_NO_DOMAIN_OK | ADDRESS_UTF8, &a, why_r))
        return false;
    if (a.domain == NULL)
        a.domain = mystrdup(myorigin);
    struct strbuf sb = STRBUF_INIT;
    address_format(&a, &sb);
    if (a.utf8)
        l->utf8 = true;
    address_release(&a);
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->addr[i], sb.data) == 0) {
            strbuf_release(&sb);
            return true;
        }
    }
    if (l->count >= l->limit) {
        *why_r = "too many recipients";
        strbuf_release(&sb);
        return false;
    }
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->addr = myreallocarray(l->addr, l->cap, sizeof(*l->addr));
    }
    l->addr[l->count++] = strbuf_detach(&sb, NULL);
    return true;
}

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Finish one address of a list: the angle-addr if there was one, else the bare text. */
static bool list_flush(struct rcpt_list *l, struct strbuf *plain, struct strbuf *angle,
                       bool *have_angle, const char **why_r)
{
    struct strbuf *use = *have_angle ? angle : plain;
    const char *s = strbuf_str(use);
    size_t len = use->len;
    /* An obsolete source route "@a,@b:" in an angle-addr is dropped (RFC 5322 §4.4). */
    if (*have_angle && len > 0 && s[0] == '@') {
        const char *colon = memchr(s, ':', len);
        if (colon == NULL) {
            *why_r = "malformed route in address";
            return false;
        }
        len -= (size_t)(colon + 1 - s);
        s = colon + 1;
    }
    bool ok = true;
    if (len > 0)
        ok = rcpt_add(l, s, len, why_r);
    strbuf_reset(plain);
    strbuf_reset(angle);
    *have_angle = false;
    return ok;
}

/*
 * Parse an RFC 5322 address-list (display names, angle-addrs, groups,
 * comments, quoted strings), adding every address to l. Empty members are
 * allowed ("To: a@b, , c@d", "undisclosed-recipients:;").
 */
static bool parse_address_list(struct rcpt_list *l, const char *s, size_t len, const char **why_r)
{
    struct strbuf plain = STRBUF_INIT, angle = STRBUF_INIT;
    bool in_angle = false, have_angle = false, ok = true;
    /* Words separated by white space outside <...> are a phrase, not an address. */
    bool space_seen = false, multiword = false;
    for (size_t i = 0; i < len && ok; i++) {
        char c = s[i];
        if (c == '(') {
            /* Comment, possibly nested; iterative depth count, no recursion. */
            size_t depth = 1;
            for (i++; i < len && depth > 0; i++) {
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                else if (s[i] == '(')
                    depth++;
                else if (s[i] == ')')
                    depth--;
            }
            i--;
            if (depth > 0) {
                *why_r = "unterminated comment in address list";
                ok = false;
            }
            continue;
        }
        struct strbuf *target = in_angle ? &angle : &plain;
        if (c == '"') {
            if (!in_angle && space_seen && plain.len > 0)
                multiword = true;
            space_seen = false;
            size_t start = i;
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\' && i + 1 < len)
                    i++;
            if (i >= len) {
                *why_r = "unterminated quoted string in address list";
                ok = false;
                break;
            }
            strbuf_append(target, s + start, i - start + 1);
            continue;
        }
        if (is_wsp(c)) {
            if (!in_angle && plain.len > 0)
                space_seen = true;
            continue;
        }
        if (in_angle) {
            if (c == '>') {
                in_angle = false;
                have_angle = true;
            } else {
                strbuf_putc(&angle, c);
            }
            continue;
        }
        switch (c) {
        case '<':
            in_angle = true;
            strbuf_reset(&angle);
            strbuf_reset(&plain); /* what came before was a display name */
            space_seen = multiword = false;
            break;
        case ',':
        case ';':
            if (multiword && !have_angle) {
                *why_r = "phrase without an address";
                ok = false;
                break;
            }
            ok = list_flush(l, &plain, &angle, &have_angle, why_r);
            space_seen = multiword = false;
            break;
        case ':':
            strbuf_reset(&plain); /* group display name */
            space_seen = multiword = false;
            break;
        default:
            if (have_angle) {
                *why_r = "text after angle address";
                ok = false;
            } else {
                char last = plain.len ? plain.data[plain.len - 1] : 0;
                /* obsolete "john . doe @ example" spacing stays one address */
                if (space_seen && last != '.' && last != '@' && c != '.' && c != '@')
                    multiword = true;
                space_seen = false;
                strbuf_putc(&plain, c);
            }
        }
    }
    if (ok && in_angle) {
        *why_r = "unterminated angle address";
        ok = false;
    }
    if (ok && multiword && !have_angle) {
        *why_r = "phrase without an address";
        ok = false;
    }
    if (ok)
        ok = list_flush(l, &plain, &angle, &have_angle, why_r);
    strbuf_release(&plain);
    strbuf_release(&angle);
    return ok;
}

/* ---- input ---- */

struct reader {
    int fd;
    char buf[LINE_PIECE_MAX];
    size_t start, end;
    bool eof;
};

/*
 * Next piece of input: a whole line (LF included, *complete_r true), or at
 * most LINE_PIECE_MAX bytes of a longer line, or the last unterminated
 * line. 1 = got a piece, 0 = end of input, -1 = read error.
 */
static int read_piece(struct reader *r, const char **p_r, size_t *len_r, bool *complete_r)
{
    for (;;) {
        char *lf = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (lf) {
            *p_r = r->buf + r->start;
            *len_r = (size_t)(lf - (r->buf + r->start)) + 1;
            *complete_r = true;
            r->start += *len_r;
            return 1;
        }
        if (r->eof || r->end - r->start == sizeof(r->buf)) {
            if (r->end == r->start)
                return 0;
            *p_r = r->buf + r->start;
            *len_r = r->end - r->start;
            *complete_r = false;
            r->start = r->end;
            return 1;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        ssize_t n = read(r->fd, r->buf + r->end, sizeof(r->buf) - r->end);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            r->eof = true;
        r->end += (size_t)n;
    }
}

/* ---- the message ---- */

struct submission {
    struct qf_writer *w;
    long long size_limit;
    bool too_big;
    size_t header_limit, header_total;
    struct options *opt;
    struct rcpt_list *rcpts;
    bool have_from, have_date, have_msgid;
    struct strbuf hdr; /* the current header, folded lines included */
    const char *queue_id;
    const char *login;
    int exit_code;
    const char *error;
};

static void emit(struct submission *s, const char *data, size_t len)
{
    if (s->too_big)
        return;
    if ((long long)(qf_writer_content_size(s->w) + len) > s->size_limit) {
        s->too_big = true;
        return;
    }
    qf_writer_content(s->w, data, len);
}

static void emit_str(struct submission *s, const char *str)
{
    emit(s, str, strlen(str));
}

/* The field name of a header line ("Subject: x" -> "Subject"), or 0 length if not a header. */
static size_t header_name_len(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && line[i] > 32 && line[i] < 127 && line[i] != ':')
        i++;
    if (i == 0)
        return 0;
    size_t name = i;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) /* obsolete "Name :" */
        i++;
    return i < len && line[i] == ':' ? name : 0;
}

static bool name_is(const char *line, size_t nlen, const char *name)
{
    return nlen == strlen(name) && strncasecmp(line, name, nlen) == 0;
}

/* Decide about the header collected in s->hdr: note it, extract, emit or drop. */
static void header_done(struct submission *s)
{
    if (s->hdr.len == 0)
        return;
    const char *h = s->hdr.data;
    size_t nlen = header_name_len(h, s->hdr.len);
    bool drop = false;
    if (name_is(h, nlen, "From"))
        s->have_from = true;
    else if (name_is(h, nlen, "Date"))
        s->have_date = true;
    else if (name_is(h, nlen, "Message-ID"))
        s->have_msgid = true;
    if (s->opt->extract &&
        (name_is(h, nlen, "To") || name_is(h, nlen, "Cc") || name_is(h, nlen, "Bcc"))) {
        const char *colon = memchr(h, ':', s->hdr.len);
        const char *why = NULL;
        /* Folded lines: the list parser treats CR/LF like any white space. */
        if (!parse_address_list(s->rcpts, colon + 1, s->hdr.len - (size_t)(colon + 1 - h), &why) &&
            s->exit_code == 0) {
            static char errbuf[512];
            snprintf(errbuf, sizeof(errbuf), "bad address in %.*s header: %s", (int)nlen, h, why);
            s->error = errbuf;
            s->exit_code = EX_DATAERR;
        }
        drop = name_is(h, nlen, "Bcc");
    }
    if (!drop)
        emit(s, s->hdr.data, s->hdr.len);
    strbuf_reset(&s->hdr);
}

/* RFC 5322 date-time, e.g. "Sat, 22 Nov 2025 22:13:00 +0100". */
static void rfc5322_date(char *buf, size_t size, time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* A display name as an RFC 5322 phrase: atoms as they are, otherwise a quoted string. */
static void put_phrase(struct strbuf *out, const char *name)
{
    bool plain = *name != 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!(*p == ' ' || *p >= 0x80 || (*p > 32 && *p < 127 && !strchr("()<>[]:;@\\,.\"", *p))))
            plain = false;
    if (plain) {
        strbuf_puts(out, name);
        return;
    }
    strbuf_putc(out, '"');
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 32 || *p == 127)
            continue; /* no control characters (no header injection) */
        if (*p == '"' || *p == '\\')
            strbuf_putc(out, '\\');
        strbuf_putc(out, (char)*p);
    }
    strbuf_putc(out, '"');
}

static void headers_missing(struct submission *s)
{
    header_done(s);
    struct strbuf sb = STRBUF_INIT;
    time_t now = time(NULL);
    char date[64];
    rfc5322_date(date, sizeof(date), now);
    if (!s->have_from) {
        strbuf_puts(&sb, "From: ");
        if (s->opt->fullname && *s->opt->fullname) {
            put_phrase(&sb, s->opt->fullname);
            strbuf_printf(&sb, " <%s@%s>\n", s->login, myorigin);
        } else {
            strbuf_printf(&sb, "%s@%s\n", s->login, myorigin);
        }
    }
    if (!s->have_date)
        strbuf_printf(&sb, "Date: %s\n", date);
    if (!s->have_msgid) {
        struct tm tm;
        gmtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
        strbuf_printf(&sb, "Message-ID: <%s.%s@%s>\n", stamp, s->queue_id,
                      config_str("myhostname"));
    }
    emit(s, sb.data, sb.len);
    strbuf_release(&sb);
}

/* Copy standard input into the content record. 0, or an EX_ code. */
static int copy_message(struct submission *s)
{
    struct reader *r = mycalloc(1, sizeof(*r));
    r->fd = 0;
    bool in_headers = true, line_start = true, first = true;
    int rc = 0;
    strbuf_init(&s->hdr, 1024);
    for (;;) {
        const char *p;
        size_t len;
        bool complete;
        int n = read_piece(r, &p, &len, &complete);
        if (n < 0) {
            s->error = "error reading standard input";
            rc = EX_IOERR;
            break;
        }
        if (n == 0)
            break;
        bool at_start = line_start;
        line_start = complete;
        char *fixed = NULL;
        if (complete && len >= 2 && p[len - 2] == '\r') {
            /* CRLF -> LF */
            fixed = mymemdup(p, len);
            fixed[len - 2] = '\n';
            len--;
            p = fixed;
        } else if (!complete && r->eof) {
            /* The last line lacks its LF: add it. */
            fixed = mymalloc(len + 1);
            memcpy(fixed, p, len);
            fixed[len++] = '\n';
            p = fixed;
            complete = true;
            line_start = true;
        }
        if (!s->opt->ignore_dots && at_start && complete && len == 2 && p[0] == '.') {
            myfree(fixed);
            break; /* a line with a single dot ends the input */
        }
        if (in_headers && at_start && first && len >= 5 && memcmp(p, "From ", 5) == 0) {
            first = false; /* a mailbox "From " envelope line, not a header */
            myfree(fixed);
            continue;
        }
        first = false;
        if (in_headers) {
            bool cont = at_start && (p[0] == ' ' || p[0] == '\t') && s->hdr.len > 0;
            bool start = at_start && header_name_len(p, len) > 0;
            if ((cont || start) && !complete && !r->eof) {
                s->error = "header line too long";
                rc = EX_DATAERR;
                myfree(fixed);
                break;
            }
            if (cont || start) {
                if (start)
                    header_done(s);
                s->header_total += len;
                if (s->header_total > s->header_limit) {
                    s->error = "message header too large";
                    rc = EX_DATAERR;
                    myfree(fixed);
                    break;
                }
                strbuf_append(&s->hdr, p, len);
                myfree(fixed);
                continue;
            }
            /* End of the header section: a blank line, or a line that is no header. */
            headers_missing(s);
            in_headers = false;
            emit_str(s, "\n");
            if (!(len == 1 && p[0] == '\n'))
                emit(s, p, len);
            myfree(fixed);
            continue;
        }
        emit(s, p, len);
        myfree(fixed);
        if (s->too_big)
            break;
    }
    if (rc == 0 && in_headers)
        headers_missing(s);
    if (rc == 0 && s->too_big) {
        s->error = "message too large (message_size_limit)";
        rc = EX_DATAERR;
    }
    if (rc == 0 && s->exit_code)
        rc = s->exit_code;
    strbuf_release(&s->hdr);
    myfree(r);
    return rc;
}

/* ---- main ---- */

static char tmp_path[4096];

/* A signal during the submission: remove the half-written file, then go. */
static void on_signal(int sig)
{
    (void)sig;
    if (tmp_path[0])
        unlink(tmp_path);
    _exit(EX_TEMPFAIL);
}

static _Noreturn void fail(int code, const char *fmt, ...) MSG_PRINTF(2, 3);

static _Noreturn void fail(int code, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sendmail: %s\n", sb.data);
    msg_warn("uid=%u: %s", (unsigned)getuid(), sb.data);
    exit(code);
}

static void open_log(void)
{
    const char *path = config_str("maillog_file");
    if (*path == 0)
        return;
    /* The log file may not be ours to write (a system instance): then use syslog. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    close(fd);
    msg_open_file(path);
}

int main(int argc, char **argv)
{
    struct options opt = {0};
    msg_init("sendmail");
    parse_options(argc, argv, &opt);
    if (opt.config_dir)
        config_set_directory(opt.config_dir);
    struct strbuf errors = STRBUF_INIT;
    if (config_load(&errors) < 0) {
        fprintf(stderr, "sendmail: configuration error: %s\n", strbuf_str(&errors));
        exit(EX_CONFIG);
    }
    strbuf_release(&errors);
    open_log();

    if (opt.flush) {
        queue_notify("qmgr", "F\n");
        exit(0);
    }

    myorigin = config_str("myorigin");
    struct passwd *pw = getpwuid(getuid());
    char uidname[32];
    snprintf(uidname, sizeof(uidname), "uid%u", (unsigned)getuid());
    const char *login = pw && pw->pw_name[0] ? pw->pw_name : uidname;
    struct address la;
    const char *why;
    if (!address_parse(login, strlen(login), ADDRESS_NO_DOMAIN_OK, &la, &why) || la.domain)
        login = uidname; /* a login name that is no valid local part */
    else
        address_release(&la);

    /* Envelope sender: -f (validated), else login@$myorigin. */
    struct strbuf sender = STRBUF_INIT;
    strbuf_init(&sender, 64);
    bool utf8 = false;
    if (opt.sender) {
        const char *f = opt.sender;
        size_t flen = strlen(f);
        if (flen >= 2 && f[0] == '<' && f[flen - 1] == '>') {
            f++;
            flen -= 2;
        }
        struct address a;
        if (!address_parse(f, flen, ADDRESS_NULL_OK | ADDRESS_NO_DOMAIN_OK | ADDRESS_UTF8, &a,
                           &why))
            fail(EX_USAGE, "bad sender address \"%s\": %s", opt.sender, why);
        if (a.local && a.domain == NULL)
            a.domain = mystrdup(myorigin);
        address_format(&a, &sender);
        utf8 = a.utf8;
        address_release(&a);
    } else {
        strbuf_printf(&sender, "%s@%s", login, myorigin);
    }

    struct rcpt_list rcpts = {0};
    rcpts.limit = (size_t)config_int("sendmail_recipient_limit");
    for (int i = 0; i < opt.nrcpt_args; i++) {
        const char *a = opt.rcpt_args[i];
        if (!parse_address_list(&rcpts, a, strlen(a), &why))
            fail(EX_USAGE, "bad recipient address \"%s\": %s", a, why);
    }
    if (!opt.extract && rcpts.count == 0)
        fail(EX_USAGE, "no recipients specified");

    struct queue_new qn;
    struct strbuf err = STRBUF_INIT;
    signal(SIGPIPE, SIG_IGN);
    if (queue_create(QUEUE_MAILDROP, &qn, &err) < 0)
        fail(EX_TEMPFAIL, "cannot create a file in the mail queue: %s", err.data);
    snprintf(tmp_path, sizeof(tmp_path), "%s/maildrop/%s", queue_root(), qn.tmpname);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    struct submission s = {0};
    s.w = qf_writer_new(qn.fd);
    s.size_limit = config_size("message_size_limit");
    s.header_limit = (size_t)config_size("sendmail_header_size_limit");
    s.opt = &opt;
    s.rcpts = &rcpts;
    s.queue_id = qn.id;
    s.login = login;
    qf_writer_arrival(s.w, time(NULL));
    qf_writer_sender(s.w, sender.data);
    qf_writer_client(s.w, "localhost", NULL, NULL, "local");
    qf_writer_content_begin(s.w);
    int rc = copy_message(&s);
    qf_writer_content_end(s.w);
    if (rc == 0 && rcpts.count == 0) {
        rc = EX_USAGE;
        s.error = "no recipient addresses found in message header";
    }
    if (rc != 0) {
        qf_writer_abort(&s.w);
        queue_abort(&qn);
        fail(rc, "%s", s.error ? s.error : "submission failed");
    }
    for (size_t i = 0; i < rcpts.count; i++)
        qf_writer_recipient(s.w, rcpts.addr[i], NULL, 0);
    qf_writer_flags(s.w, utf8 || rcpts.utf8, false);
    size_t size = qf_writer_content_size(s.w);
    if (qf_writer_finish(&s.w, &err) < 0) {
        queue_abort(&qn);
        fail(EX_TEMPFAIL, "cannot write the queue file: %s", err.data);
    }
    char id[QUEUE_ID_MAX];
    if (queue_commit(&qn, &err) < 0)
        fail(EX_TEMPFAIL, "cannot commit the queue file: %s", err.data);
    tmp_path[0] = 0;
    snprintf(id, sizeof(id), "%s", qn.id);
    msg_info("%s: uid=%u, from=<%s>, size=%zu, nrcpt=%zu (queued in maildrop)", id,
             (unsigned)getuid(), sender.data, size, rcpts.count);
    queue_notify("pickup", "W\n");
    strbuf_release(&sender);
    strbuf_release(&err);
    for (size_t i = 0; i < rcpts.count; i++)
        myfree(rcpts.addr[i]);
    myfree(rcpts.addr);
    return 0;
}
