/*
 * fetch - FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 3516
 * BINARY, RFC 7162 CHANGEDSINCE/VANISHED), and the message-access helpers
 * of fetch.h.
 *
 * Each message file is mapped once per command; ENVELOPE, BODY and
 * BODYSTRUCTURE come from the index cache and are parsed (then cached)
 * only on a miss. Stored files have LF line ends: every byte range sent is
 * converted to CRLF first, so sizes and <partial> offsets count CRLF octets
 * and an APPENDed message comes back byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "imap_fetch.h"
#include "mymalloc.h"

/* Messages whose \Seen is set in one index transaction. */
#define FETCH_BATCH 1000

/* ---- helpers shared with store.c, search.c, copy.c ------------------ */

int imapd_msgfile_open(struct imap_session *s, const struct mbox_rec *r, struct imapd_msgfile *mf)
{
    struct strbuf err;
    struct stat st;
    int fd;

    memset(mf, 0, sizeof(mf[0]));
    mf->uid = r->uid;
    mf->data = "";
    strbuf_init(&err, 0);
    /* mbox_msg_open finds the file even when another session renamed it */
    if ((fd = mbox_msg_open(s->mbox, r->uid, &err)) < 0) {
        msg_warn("%s: user=%s, folder=%s: cannot open message: %s", s->client,
                 s->user ? s->user : "", s->folder ? s->folder : "", strbuf_str(&err));
        strbuf_release(&err);
        return -1;
    }
    strbuf_release(&err);
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            msg_warn("%s: mmap uid %u: %s", s->client, r->uid, strerror(errno));
            close(fd);
            return -1;
        }
        mf->map = m;
        mf->map_len = (size_t)st.st_size;
        mf->data = m;
        mf->len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

struct message *imapd_msgfile_parsed(struct imapd_msgfile *mf)
{
    if (mf->msg == NULL)
        mf->msg = message_parse(mf->data, mf->len);
    return mf->msg;
}

void imapd_msgfile_close(struct imapd_msgfile *mf)
{
    if (mf->msg != NULL)
        message_free(&mf->msg);
    if (mf->map != NULL)
        munmap(mf->map, mf->map_len);
    memset(mf, 0, sizeof(*mf));
}

void imapd_append_flags(struct imap_session *s, const struct mbox_rec *r, struct strbuf *out)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } sys[] = {
        {MBOX_F_SEEN, "\\Seen"},       {MBOX_F_ANSWERED, "\\Answered"},
        {MBOX_F_FLAGGED, "\\Flagged"}, {MBOX_F_DELETED, "\\Deleted"},
        {MBOX_F_DRAFT, "\\Draft"},
    };
    bool first = true;
    strbuf_putc(out, '(');
    for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
        if (!(r->flags & sys[i].bit))
            continue;
        if (!first)
            strbuf_putc(out, ' ');
        strbuf_puts(out, sys[i].name);
        first = false;
    }
    for (unsigned k = 0; k < MBOX_KEYWORDS_MAX; k++) {
        if (!(r->keywords & ((uint64_t)1 << k)))
            continue;
        const char *name = mbox_keyword_name(s->mbox, k);
        if (name == NULL)
            continue;
        if (!first)
            strbuf_putc(out, ' ');
        strbuf_puts(out, name);
        first = false;
    }
    /* RFC 9051 has no \Recent flag. */
    if ((r->flags & MBOX_F_RECENT) && !(s->enabled & IMAPD_ENABLE_REV2)) {
        if (!first)
            strbuf_putc(out, ' ');
        strbuf_puts(out, "\\Recent");
    }
    strbuf_putc(out, ')');
}

void imapd_append_set(struct strbuf *out, const uint32_t *v, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        size_t j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        if (!first)
            strbuf_putc(out, ',');
        if (j == i)
            strbuf_printf(out, "%u", v[i]);
        else
            strbuf_printf(out, "%u:%u", v[i], v[j]);
        first = false;
        i = j + 1;
    }
}

void imapd_condstore_enable(struct imap_session *s)
{
    if (s->enabled & IMAPD_ENABLE_CONDSTORE)
        return;
    s->enabled |= IMAPD_ENABLE_CONDSTORE;
    /* RFC 7162 §3.1: the first CONDSTORE-enabling command in the selected
     * state tells the HIGHESTMODSEQ the client has not seen yet. */
    if (s->mbox != NULL)
        imapd_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
                       (unsigned long long)mbox_highestmodseq(s->mbox));
}

/* ---- one FETCH ------------------------------------------------------- */

struct fetch_ctx {
    struct imap_session *s;
    struct imap_fetch_request *req;
    bool uid_cmd;
    bool condstore;
    bool unknown_cte;
    bool expunged;
    bool failed;
    struct strbuf out;  /* one untagged FETCH response */
    struct strbuf tmp;  /* CRLF-converted section */
    struct strbuf tmp2; /* filtered/decoded section */
    struct strbuf part; /* "1.2" */
};

static void part_string(const struct imap_fetch_item *it, size_t nparts, struct strbuf *out)
{
    strbuf_reset(out);
    for (size_t i = 0; i < nparts; i++)
        strbuf_printf(out, "%s%u", i ? "." : "", it->part[i]);
}

/* The transfer encoding of part (a "1.2" string, nparts numbers). */
static enum imap_cte part_cte(struct imapd_msgfile *mf, const char *part, size_t nparts)
{
    struct message *m = imapd_msgfile_parsed(mf);
    size_t hoff, hlen;
    if (message_section(m, part, MESSAGE_SEC_MIME, &hoff, &hlen) == 0)
        return imap_fetch_cte(mf->data + hoff, hlen);
    /* part 1 of a message that is not multipart: its header is the message's */
    if (nparts == 1 && message_section(m, "", MESSAGE_SEC_HEADER, &hoff, &hlen) == 0)
        return imap_fetch_cte(mf->data + hoff, hlen);
    return IMAP_CTE_IDENTITY;
}

/*
 * The CRLF bytes of one section of mf into ctx->tmp2 (or ctx->tmp). Returns
 * the buffer, NULL when the section does not exist (NIL).
 */
static struct strbuf *section_bytes(struct fetch_ctx *ctx, struct imapd_msgfile *mf,
                                    const struct imap_fetch_item *it, bool *unknown_cte_r)
{
    struct message *m = imapd_msgfile_parsed(mf);
    size_t off, len;

    strbuf_reset(&ctx->tmp);
    strbuf_reset(&ctx->tmp2);
    part_string(it, it->nparts, &ctx->part);
    if (it->form == IFF_BINARY || it->att == IFA_BINARY_SIZE) {
        if (it->nparts == 0) {
            message_append_crlf(mf->data, mf->len, &ctx->tmp);
            return &ctx->tmp;
        }
        if (message_section(m, ctx->part.data, MESSAGE_SEC_ALL, &off, &len) < 0)
            return NULL;
        enum imap_cte cte = part_cte(mf, ctx->part.data, it->nparts);
        if (cte == IMAP_CTE_UNKNOWN) {
            *unknown_cte_r = true;
            return NULL;
        }
        message_append_crlf(mf->data + off, len, &ctx->tmp);
        if (cte == IMAP_CTE_IDENTITY)
            return &ctx->tmp;
        imap_fetch_decode(cte, ctx->tmp.data, ctx->tmp.len, &ctx->tmp2);
        return &ctx->tmp2;
    }
    enum message_sec what = MESSAGE_SEC_ALL;
    switch (it->spec) {
    case IFS_ALL:
        if (it->nparts == 0) {
            message_append_crlf(mf->data, mf->len, &ctx->tmp);
            return &ctx->tmp;
        }
        what = MESSAGE_SEC_ALL;
        break;
    case IFS_HEADER:
    case IFS_HEADER_FIELDS:
    case IFS_HEADER_FIELDS_NOT:
        what = MESSAGE_SEC_HEADER;
        break;
    case IFS_TEXT:
        what = MESSAGE_SEC_TEXT;
        break;
    case IFS_MIME:
        what = MESSAGE_SEC_MIME;
        break;
    }
    if (message_section(m, ctx->part.data, what, &off, &len) < 0)
        return NULL;
    if (it->spec == IFS_HEADER_FIELDS || it->spec == IFS_HEADER_FIELDS_NOT) {
        message_header_filter(mf->data + off, len, (const char *const *)it->fields, it->nfields,
                              it->spec == IFS_HEADER_FIELDS_NOT, &ctx->tmp);
        return &ctx->tmp;
    }
    message_append_crlf(mf->data + off, len, &ctx->tmp);
    return &ctx->tmp;
}

static void append_section(struct fetch_ctx *ctx, struct imapd_msgfile *mf,
                           const struct imap_fetch_item *it)
{
    bool unknown = false;
    struct strbuf *b = section_bytes(ctx, mf, it, &unknown);

    if (unknown)
        ctx->unknown_cte = true;
    imap_fetch_item_name(it, &ctx->out);
    strbuf_putc(&ctx->out, ' ');
    if (it->att == IFA_BINARY_SIZE) {
        strbuf_printf(&ctx->out, "%zu", b ? b->len : (size_t)0);
        return;
    }
    if (b == NULL) {
        strbuf_puts(&ctx->out, "NIL");
        return;
    }
    const char *data = b->data ? b->data : "";
    size_t len = b->len;
    if (it->partial) {
        size_t start = it->offset < len ? (size_t)it->offset : len;
        size_t n = len - start;
        if (it->count < n)
            n = (size_t)it->count;
        data += start;
        len = n;
    }
    /* Large bodies go out directly rather than through one more copy: send
     * what is built so far, then the literal. (No failure can follow once
     * the file is open, so a response is never cut short.) */
    bool nul = it->form == IFF_BINARY && memchr(data, '\0', len) != NULL;
    strbuf_printf(&ctx->out, "%s{%zu}\r\n", nul ? "~" : "", len);
    if (len < 4096) {
        strbuf_append(&ctx->out, data, len);
        return;
    }
    imapd_write(ctx->s, ctx->out.data, ctx->out.len);
    strbuf_reset(&ctx->out);
    imapd_write(ctx->s, data, len);
}

/* ENVELOPE / BODY / BODYSTRUCTURE through the index cache. */
static void append_cached(struct fetch_ctx *ctx, struct imapd_msgfile *mf, bool *opened,
                          const struct mbox_rec *r, const char *field, int *ok)
{
    struct strbuf v;
    strbuf_init(&v, 0);
    if (mbox_cache_get(ctx->s->mbox, r->uid, field, &v) != 1) {
        if (!*opened) {
            if (imapd_msgfile_open(ctx->s, r, mf) < 0) {
                *ok = -1;
                strbuf_release(&v);
                return;
            }
            *opened = true;
        }
        /* Parsed anyway: cache all three renderings, so FETCH ENVELOPE
         * then FETCH BODYSTRUCTURE (what clients do) parses once. */
        struct message *m = imapd_msgfile_parsed(mf);
        static const char *const fields[] = {"envelope", "bodystructure", "body"};
        struct strbuf w;
        strbuf_init(&w, 256);
        for (int f = 0; f < 3; f++) {
            strbuf_reset(&w);
            if (f == 0)
                message_envelope(m, &w);
            else
                message_bodystructure(m, f == 1, &w);
            mbox_cache_put(ctx->s->mbox, r->uid, fields[f], w.data ? w.data : "", w.len);
            if (strcmp(field, fields[f]) == 0) {
                strbuf_reset(&v);
                strbuf_append(&v, w.data ? w.data : "", w.len);
            }
        }
        strbuf_release(&w);
    }
    strbuf_append(&ctx->out, v.data ? v.data : "", v.len);
    strbuf_release(&v);
}

static void append_internaldate(struct strbuf *out, time_t t)
{
    static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    strbuf_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d %c%02ld%02ld\"", tm.tm_mday,
                  mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                  off / 60, off % 60);
}

static bool needs_file(const struct imap_fetch_request *req)
{
    for (size_t i = 0; i < req->nitems; i++)
        if (req->items[i].att == IFA_SECTION || req->items[i].att == IFA_BINARY_SIZE)
            return true;
    return false;
}

/* One untagged FETCH for view index vi. Returns false when the session must end. */
static void fetch_one(struct fetch_ctx *ctx, size_t vi, const struct mbox_rec *r, bool seen_set)
{
    struct imap_session *s = ctx->s;
    struct imap_fetch_request *req = ctx->req;
    struct imapd_msgfile mf;
    bool opened = false;
    bool flags_sent = false;
    bool sp = false;
    int ok = 0;

    memset(&mf, 0, sizeof(mf));
    if (needs_file(req)) {
        if (imapd_msgfile_open(s, r, &mf) < 0) {
            ctx->failed = true;
            return;
        }
        opened = true;
    }
    /* RFC 3516 §4.2: an encoding we cannot undo fails the command; check
     * before any output so the message gets no half response. */
    for (size_t i = 0; i < req->nitems && opened; i++) {
        const struct imap_fetch_item *it = &req->items[i];
        if ((it->form != IFF_BINARY && it->att != IFA_BINARY_SIZE) || it->nparts == 0)
            continue;
        part_string(it, it->nparts, &ctx->part);
        if (part_cte(&mf, ctx->part.data, it->nparts) == IMAP_CTE_UNKNOWN) {
            ctx->unknown_cte = true;
            imapd_msgfile_close(&mf);
            return;
        }
    }
    strbuf_reset(&ctx->out);
    strbuf_printf(&ctx->out, "* %zu FETCH (", vi + 1);
#define SEP()                                                                                      \
    do {                                                                                           \
        if (sp)                                                                                    \
            strbuf_putc(&ctx->out, ' ');                                                           \
        sp = true;                                                                                 \
    } while (0)
    if (ctx->uid_cmd || (req->atts & (1u << IFA_UID))) {
        SEP();
        strbuf_printf(&ctx->out, "UID %u", r->uid);
    }
    for (size_t i = 0; i < req->nitems && ok == 0; i++) {
        const struct imap_fetch_item *it = &req->items[i];
        switch (it->att) {
        case IFA_UID:
        case IFA_MODSEQ:
            continue; /* written once, first / last */
        case IFA_FLAGS:
            if (flags_sent)
                continue;
            SEP();
            strbuf_puts(&ctx->out, "FLAGS ");
            imapd_append_flags(s, r, &ctx->out);
            flags_sent = true;
            break;
        case IFA_INTERNALDATE:
            SEP();
            strbuf_puts(&ctx->out, "INTERNALDATE ");
            append_internaldate(&ctx->out, r->internaldate);
            break;
        case IFA_RFC822_SIZE:
            SEP();
            strbuf_printf(&ctx->out, "RFC822.SIZE %llu", (unsigned long long)r->vsize);
            break;
        case IFA_ENVELOPE:
            SEP();
            strbuf_puts(&ctx->out, "ENVELOPE ");
            append_cached(ctx, &mf, &opened, r, "envelope", &ok);
            break;
        case IFA_BODYSTRUCTURE:
            SEP();
            strbuf_puts(&ctx->out, "BODYSTRUCTURE ");
            append_cached(ctx, &mf, &opened, r, "bodystructure", &ok);
            break;
        case IFA_BODY:
            SEP();
            strbuf_puts(&ctx->out, "BODY ");
            append_cached(ctx, &mf, &opened, r, "body", &ok);
            break;
        case IFA_SECTION:
        case IFA_BINARY_SIZE:
            SEP();
            append_section(ctx, &mf, it);
            break;
        }
    }
    if (ok == 0 && seen_set && !flags_sent) {
        /* RFC 3501 §6.4.5: the \Seen flag set implicitly is reported */
        SEP();
        strbuf_puts(&ctx->out, "FLAGS ");
        imapd_append_flags(s, r, &ctx->out);
        flags_sent = true;
    }
    if (ok == 0 && ((req->atts & (1u << IFA_MODSEQ)) || (ctx->condstore && flags_sent))) {
        SEP();
        strbuf_printf(&ctx->out, "MODSEQ (%llu)", (unsigned long long)r->modseq);
    }
#undef SEP
    if (opened)
        imapd_msgfile_close(&mf);
    if (ok != 0) {
        ctx->failed = true;
        return;
    }
    strbuf_puts(&ctx->out, ")\r\n");
    imapd_write(s, ctx->out.data, ctx->out.len);
    if (flags_sent)
        imapd_view_reported(s, vi, r->modseq);
}

struct vanished_ctx {
    const struct imap_seqset *set;
    uint32_t max;
    uint32_t *uids;
    size_t n, cap;
};

static void vanished_cb(void *vctx, uint32_t uid)
{
    struct vanished_ctx *v = vctx;
    bool in = false;
    for (size_t i = 0; i < v->set->count && !in; i++) {
        uint32_t lo = v->set->ranges[i].lo, hi = v->set->ranges[i].hi;
        if (hi == IMAP_SEQ_STAR)
            hi = v->max;
        if (lo == IMAP_SEQ_STAR)
            lo = v->max;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        in = uid >= lo && uid <= hi;
    }
    if (!in)
        return;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->uids = myreallocarray(v->uids, v->cap, sizeof(*v->uids));
    }
    v->uids[v->n++] = uid;
}

/*
 * The index was rebuilt after the client's modseq, so its tombstones do not
 * say what vanished: report every UID of the set (below UIDNEXT) that has
 * no message now (RFC 7162 §3.2.6 allows reporting UIDs never seen).
 */
static void vanished_gaps(struct imap_session *s, const struct imap_seqset *set, uint32_t max,
                          struct strbuf *out)
{
    size_t n = mbox_count(s->mbox);
    bool first = true;
    for (size_t k = 0; k < set->count; k++) {
        uint32_t lo = set->ranges[k].lo == IMAP_SEQ_STAR ? max : set->ranges[k].lo;
        uint32_t hi = set->ranges[k].hi == IMAP_SEQ_STAR ? max : set->ranges[k].hi;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (hi > max)
            hi = max;
        if (lo == 0)
            lo = 1;
        if (lo > hi)
            continue;
        uint64_t cur = lo;
        for (size_t i = 0; i < n && cur <= hi; i++) {
            uint32_t u = mbox_rec_at(s->mbox, i)->uid;
            if (u < cur)
                continue;
            if (u > hi)
                break;
            if (u > cur) {
                strbuf_printf(out, "%s%llu", first ? "" : ",", (unsigned long long)cur);
                if (u - 1 > cur)
                    strbuf_printf(out, ":%u", u - 1);
                first = false;
            }
            cur = (uint64_t)u + 1;
        }
        if (cur <= hi) {
            strbuf_printf(out, "%s%llu", first ? "" : ",", (unsigned long long)cur);
            if (hi > cur)
                strbuf_printf(out, ":%u", hi);
            first = false;
        }
    }
}

void imapd_cmd_fetch(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid)
{
    struct imap_seqset set;
    struct imap_fetch_request *req = NULL;
    const char *error;
    size_t *idx = NULL, count = 0;
    struct fetch_ctx ctx;

    if (s->mbox == NULL) {
        imapd_bad(s, tag, "No mailbox selected");
        return;
    }
    if (!imap_parse_sp(p) || !imap_parse_seqset(p, &set)) {
        imapd_bad(s, tag, p->error ? p->error : "Invalid messageset");
        return;
    }
    if (!imap_fetch_parse(p, &req, &error)) {
        imapd_bad(s, tag, error);
        return;
    }
    if (req->vanished && (!uid || !(s->enabled & IMAPD_ENABLE_QRESYNC))) {
        /* RFC 7162 §3.2.6: VANISHED only in UID FETCH with QRESYNC enabled */
        imapd_bad(s, tag, "VANISHED needs UID FETCH and QRESYNC");
        imap_fetch_free(&req);
        return;
    }
    if (!imapd_view_resolve(s, &set, uid, &idx, &count, &error)) {
        imapd_bad(s, tag, error ? error : "Invalid messageset");
        imap_fetch_free(&req);
        return;
    }
    if (req->changedsince || (req->atts & (1u << IFA_MODSEQ)))
        imapd_condstore_enable(s);

    memset(&ctx, 0, sizeof(ctx));
    ctx.s = s;
    ctx.req = req;
    ctx.uid_cmd = uid;
    ctx.condstore = (s->enabled & IMAPD_ENABLE_CONDSTORE) != 0;
    strbuf_init(&ctx.out, 256);
    strbuf_init(&ctx.tmp, 0);
    strbuf_init(&ctx.tmp2, 0);
    strbuf_init(&ctx.part, 0);

    if (req->vanished && !set.saved) {
        /* RFC 7162 §3.2.6: expunged UIDs in the set since CHANGEDSINCE, first */
        struct vanished_ctx v;
        memset(&v, 0, sizeof(v));
        v.set = &set;
        v.max = mbox_uidnext(s->mbox) > 0 ? mbox_uidnext(s->mbox) - 1 : 0;
        struct strbuf line;
        strbuf_init(&line, 64);
        strbuf_puts(&line, "* VANISHED (EARLIER) ");
        size_t head = line.len;
        if (mbox_expunged_since(s->mbox, req->modseq, vanished_cb, &v) == 1)
            vanished_gaps(s, &set, v.max, &line); /* tombstones incomplete */
        else
            imapd_append_set(&line, v.uids, v.n);
        if (line.len > head) {
            strbuf_puts(&line, "\r\n");
            imapd_write(s, line.data, line.len);
        }
        strbuf_release(&line);
        myfree(v.uids);
    }

    bool set_seen = req->sets_seen && !s->readonly;
    enum { SKIP, FETCH, FETCH_SEEN, GONE };
    unsigned char *todo = mymalloc(FETCH_BATCH);
    for (size_t base = 0; base < count; base += FETCH_BATCH) {
        size_t end = count - base < FETCH_BATCH ? count : base + FETCH_BATCH;
        bool txn = false;
        struct strbuf err;
        strbuf_init(&err, 0);
        /* Decide, and set \Seen for the batch in one index transaction
         * (committed before any output: never hold it across network I/O). */
        for (size_t k = base; k < end; k++) {
            uint32_t muid = s->view.uids[idx[k]];
            const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, muid, NULL);
            unsigned char t = FETCH;
            if (r == NULL)
                t = GONE;
            else if (req->changedsince && r->modseq <= req->modseq)
                t = SKIP;
            else if (set_seen && !(r->flags & MBOX_F_SEEN)) {
                uint64_t ms;
                if (!txn && mbox_txn_begin(s->mbox, &err) == 0)
                    txn = true;
                strbuf_reset(&err);
                if (mbox_store_flags(s->mbox, muid, MBOX_F_SEEN, 0, MBOX_FLAGS_ADD, 0, &ms, &err) ==
                    0)
                    t = FETCH_SEEN;
                else
                    msg_warn("%s: user=%s: set \\Seen on uid %u: %s", s->client, s->user, muid,
                             strbuf_str(&err));
            }
            todo[k - base] = t;
        }
        strbuf_reset(&err);
        if (txn && mbox_txn_commit(s->mbox, &err) < 0)
            msg_warn("%s: user=%s: set \\Seen: %s", s->client, s->user, strbuf_str(&err));
        strbuf_release(&err);
        for (size_t k = base; k < end; k++) {
            size_t vi = idx[k];
            const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, s->view.uids[vi], NULL);
            if (todo[k - base] == GONE || r == NULL) {
                ctx.expunged = true;
                continue;
            }
            if (todo[k - base] != SKIP)
                fetch_one(&ctx, vi, r, todo[k - base] == FETCH_SEEN);
        }
    }
    myfree(todo);
    mbox_cache_flush(s->mbox, &ctx.tmp);

    if (ctx.unknown_cte)
        imapd_tagged(s, tag, IMAP_NO, "UNKNOWN-CTE", "Unknown Content-Transfer-Encoding");
    else if (ctx.failed)
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Some messages could not be read");
    else if (ctx.expunged)
        imapd_tagged(s, tag, IMAP_NO, "EXPUNGEISSUED", "Some messages were expunged");
    else
        imapd_ok(s, tag, "Fetch completed");
    strbuf_release(&ctx.out);
    strbuf_release(&ctx.tmp);
    strbuf_release(&ctx.tmp2);
    strbuf_release(&ctx.part);
    myfree(idx);
    imap_fetch_free(&req);
}
