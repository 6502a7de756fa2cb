/*
 * imapd select - SELECT EXAMINE CLOSE UNSELECT EXPUNGE CHECK, and the
 * session's view of the selected folder with its untagged updates
 * (RFC 3501 §5.2, §7.3, §7.4.1; RFC 7162 CONDSTORE/QRESYNC).
 *
 * The view is this session's list of UIDs in sequence order. The index
 * (struct mbox) may move ahead of it (other sessions, delivery); the view
 * follows only when the client is told, in imapd_view_sync.
 */
#include "imapd.h"

#include <stdlib.h>
#include <string.h>

#include "mailbox.h"
#include "mbox_index.h"
#include "msg.h"
#include "mymalloc.h"

/* ---- the view ----------------------------------------------------------- */

static void view_push(struct imap_view *v, uint32_t uid)
{
    if (v->count == v->cap) {
        v->cap = v->cap + v->cap / 2 + 64; /* geometric, and from 0 or 1 too */
        v->uids = myreallocarray(v->uids, v->cap, sizeof(*v->uids));
    }
    v->uids[v->count++] = uid;
}

static void view_free(struct imap_view *v)
{
    myfree(v->uids);
    myfree(v->told);
    memset(v, 0, sizeof(*v));
}

/* Index of uid in the view (binary search), or -1. */
static long view_find(const struct imap_view *v, uint32_t uid)
{
    size_t lo = 0, hi = v->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->count && v->uids[lo] == uid ? (long)lo : -1;
}

/* First index whose uid >= uid. */
static size_t view_lower_bound(const struct imap_view *v, uint32_t uid)
{
    size_t lo = 0, hi = v->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t imapd_view_seq(const struct imap_session *s, uint32_t uid)
{
    long i = view_find(&s->view, uid);
    return i < 0 ? 0 : (uint32_t)(i + 1);
}

void imapd_view_reported(struct imap_session *s, size_t i, uint64_t modseq)
{
    struct imap_view *v = &s->view;
    /* At or below view.modseq the next sync does not report it anyway. */
    if (i >= v->count || modseq <= v->modseq)
        return;
    if (v->ntold == v->captold) {
        v->captold = v->captold ? 2 * v->captold : 16;
        v->told = myreallocarray(v->told, v->captold, sizeof(*v->told));
    }
    v->told[v->ntold].uid = v->uids[i];
    v->told[v->ntold].modseq = modseq;
    v->ntold++;
}

static int told_cmp(const void *a, const void *b)
{
    const struct imap_view_told *x = a, *y = b;
    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return x->modseq < y->modseq ? -1 : x->modseq > y->modseq;
}

/* The highest modseq at which the session was told uid's FLAGS since the last sync, or 0. */
static uint64_t told_modseq(const struct imap_view *v, uint32_t uid)
{
    size_t lo = 0, hi = v->ntold;
    while (lo < hi) { /* last entry with this uid: the highest modseq (sorted) */
        size_t mid = lo + (hi - lo) / 2;
        if (v->told[mid].uid <= uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && v->told[lo - 1].uid == uid ? v->told[lo - 1].modseq : 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

bool imapd_view_resolve(struct imap_session *s, const struct imap_seqset *set, bool uid,
                        size_t **idx_r, size_t *count_r, const char **error_r)
{
    const struct imap_view *v = &s->view;
    size_t n = 0, cap = 16;
    size_t *out = mymalloc(cap * sizeof(*out));
    *idx_r = NULL;
    *count_r = 0;
    if (set->saved) {
        /* RFC 5182: "$" is the UIDs of the last SEARCH RETURN (SAVE). */
        for (size_t k = 0; k < s->saved_count; k++) {
            long i = view_find(v, s->saved_uids[k]);
            if (i < 0)
                continue;
            if (n == cap)
                out = myreallocarray(out, cap *= 2, sizeof(*out));
            out[n++] = (size_t)i;
        }
    } else if (!uid) {
        for (size_t k = 0; k < set->count; k++) {
            uint32_t lo = set->ranges[k].lo, hi = set->ranges[k].hi;
            uint32_t last = (uint32_t)v->count;
            if (lo == IMAP_SEQ_STAR)
                lo = last;
            if (hi == IMAP_SEQ_STAR)
                hi = last;
            if (lo > hi) {
                uint32_t t = lo;
                lo = hi;
                hi = t;
            }
            if (lo == 0 || hi > last) {
                myfree(out);
                *error_r = "Invalid messageset";
                return false;
            }
            for (uint32_t q = lo; q <= hi; q++) {
                if (n == cap)
                    out = myreallocarray(out, cap *= 2, sizeof(*out));
                out[n++] = q - 1;
                if (q == UINT32_MAX)
                    break;
            }
        }
    } else if (v->count > 0) {
        uint32_t maxuid = v->uids[v->count - 1];
        for (size_t k = 0; k < set->count; k++) {
            uint32_t lo = set->ranges[k].lo, hi = set->ranges[k].hi;
            if (lo == IMAP_SEQ_STAR)
                lo = maxuid;
            if (hi == IMAP_SEQ_STAR)
                hi = maxuid;
            if (lo > hi) { /* "n:*" with n beyond the last UID means "*:n" */
                uint32_t t = lo;
                lo = hi;
                hi = t;
            }
            for (size_t i = view_lower_bound(v, lo); i < v->count && v->uids[i] <= hi; i++) {
                if (n == cap)
                    out = myreallocarray(out, cap *= 2, sizeof(*out));
                out[n++] = i;
            }
        }
    }
    if (n > 1) {
        qsort(out, n, sizeof(*out), cmp_size);
        size_t w = 1;
        for (size_t i = 1; i < n; i++)
            if (out[i] != out[w - 1])
                out[w++] = out[i];
        n = w;
    }
    *idx_r = out;
    *count_r = n;
    return true;
}

/* ---- responses ---------------------------------------------------------- */

void imapd_flags_append(struct imap_session *s, const struct mbox_rec *r, struct strbuf *out)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } sys[] = {{MBOX_F_ANSWERED, "\\Answered"}, {MBOX_F_FLAGGED, "\\Flagged"},
               {MBOX_F_DELETED, "\\Deleted"},   {MBOX_F_SEEN, "\\Seen"},
               {MBOX_F_DRAFT, "\\Draft"},       {MBOX_F_RECENT, "\\Recent"}};
    bool first = true;
    strbuf_putc(out, '(');
    for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
        if (!(r->flags & sys[i].bit))
            continue;
        /* RFC 9051 has no \Recent. */
        if (sys[i].bit == MBOX_F_RECENT && (s->enabled & IMAPD_ENABLE_REV2))
            continue;
        if (!first)
            strbuf_putc(out, ' ');
        strbuf_puts(out, sys[i].name);
        first = false;
    }
    for (unsigned k = 0; k < MBOX_KEYWORDS_MAX; k++) {
        if (!(r->keywords & (1ULL << k)))
            continue;
        const char *kw = mbox_keyword_name(s->mbox, k);
        if (kw == NULL)
            continue;
        if (!first)
            strbuf_putc(out, ' ');
        strbuf_puts(out, kw);
        first = false;
    }
    strbuf_putc(out, ')');
}

void imapd_uidset_append(struct strbuf *out, const uint32_t *uids, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && uids[j + 1] == uids[j] + 1)
            j++;
        if (i > 0)
            strbuf_putc(out, ',');
        if (j == i)
            strbuf_printf(out, "%u", uids[i]);
        else
            strbuf_printf(out, "%u:%u", uids[i], uids[j]);
        i = j + 1;
    }
}

/*
 * FLAGS and PERMANENTFLAGS: the system flags and the folder's keywords. Sent
 * at SELECT and again whenever a keyword is new to the folder, to every
 * session, before any FETCH that carries it (RFC 3501 §7.2.6; Dovecot does
 * the same, and clients build their keyword lists from it).
 */
static void send_flag_lists(struct imap_session *s)
{
    struct strbuf sb = STRBUF_INIT;
    size_t n = mbox_keyword_count(s->mbox);
    strbuf_puts(&sb, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for (size_t k = 0; k < n; k++) {
        const char *kw = mbox_keyword_name(s->mbox, (unsigned)k);
        if (kw)
            strbuf_printf(&sb, " %s", kw);
    }
    imapd_untagged(s, "FLAGS (%s)", sb.data);
    if (s->readonly)
        imapd_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
    else
        imapd_untagged(s, "OK [PERMANENTFLAGS (%s \\*)] Flags permitted.", sb.data);
    s->view.keywords = n;
    strbuf_release(&sb);
}

/* "* n FETCH (UID u FLAGS (...) MODSEQ (m))" for one record of the view. */
static void send_flags_update(struct imap_session *s, uint32_t seq, const struct mbox_rec *r,
                              bool with_uid)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "* %u FETCH (", seq);
    /* RFC 7162 §3.2.4: with QRESYNC every FETCH carries the UID. */
    if (with_uid || (s->enabled & IMAPD_ENABLE_QRESYNC))
        strbuf_printf(&sb, "UID %u ", r->uid);
    strbuf_puts(&sb, "FLAGS ");
    imapd_flags_append(s, r, &sb);
    if (s->enabled & IMAPD_ENABLE_CONDSTORE)
        strbuf_printf(&sb, " MODSEQ (%llu)", (unsigned long long)r->modseq);
    strbuf_puts(&sb, ")\r\n");
    imapd_write(s, sb.data, sb.len);
    strbuf_release(&sb);
}

struct flag_ctx {
    struct imap_session *s;
    bool quiet;
    size_t first_new; /* view index of the first message this sync added (told by EXISTS) */
};

static void flag_change_cb(void *ctx, const struct mbox_rec *r)
{
    struct flag_ctx *fc = ctx;
    long i = view_find(&fc->s->view, r->uid);
    if (i < 0 || (size_t)i >= fc->first_new || r->modseq <= told_modseq(&fc->s->view, r->uid))
        return;
    if (!fc->quiet)
        send_flags_update(fc->s, (uint32_t)i + 1, r, false);
}

void imapd_view_sync(struct imap_session *s, unsigned flags)
{
    struct imap_view *v = &s->view;
    struct strbuf err = STRBUF_INIT;
    if (s->mbox == NULL)
        return;
    if (mbox_sync(s->mbox, &err) < 0) {
        msg_warn("user=%s, folder=%s: sync: %s", s->user, s->folder, strbuf_str(&err));
        strbuf_release(&err);
        return;
    }
    strbuf_release(&err);
    size_t total = mbox_count(s->mbox);
    uint32_t maxuid = v->count ? v->uids[v->count - 1] : 0;
    /* Records above the view's last UID are new; the rest must all be in the view. */
    size_t first_new = total;
    while (first_new > 0 && mbox_rec_at(s->mbox, first_new - 1)->uid > maxuid)
        first_new--;
    if (first_new != v->count) {
        v->expunge_pending = true;
        if (flags & IMAPD_SYNC_EXPUNGES) {
            /* Merge walk: view UIDs missing from the index were expunged. */
            struct strbuf vanished = STRBUF_INIT;
            uint32_t *gone = NULL;
            size_t ngone = 0, w = 0, j = 0;
            bool qresync = (s->enabled & IMAPD_ENABLE_QRESYNC) != 0;
            for (size_t i = 0; i < v->count; i++) {
                const struct mbox_rec *r = j < first_new ? mbox_rec_at(s->mbox, j) : NULL;
                while (r && r->uid < v->uids[i]) {
                    j++;
                    r = j < first_new ? mbox_rec_at(s->mbox, j) : NULL;
                }
                if (r && r->uid == v->uids[i]) {
                    v->uids[w++] = v->uids[i];
                    j++;
                    continue;
                }
                if (qresync) {
                    gone = myreallocarray(gone, ngone + 1, sizeof(*gone));
                    gone[ngone++] = v->uids[i];
                } else {
                    /* The sequence number as the client knows it now. */
                    imapd_untagged(s, "%zu EXPUNGE", w + 1);
                }
            }
            v->count = w;
            if (ngone) {
                imapd_uidset_append(&vanished, gone, ngone);
                imapd_untagged(s, "VANISHED %s", vanished.data);
            }
            myfree(gone);
            strbuf_release(&vanished);
            v->expunge_pending = false;
        }
    } else {
        v->expunge_pending = false;
    }
    /* New messages: EXISTS (and RECENT for IMAP4rev1). */
    size_t before = v->count;
    for (size_t i = first_new; i < total; i++)
        view_push(v, mbox_rec_at(s->mbox, i)->uid);
    size_t recent = mbox_recent_count(s->mbox);
    if (v->count != before) {
        imapd_untagged(s, "%zu EXISTS", v->count);
    }
    if ((v->count != before || recent != v->recent) && !(s->enabled & IMAPD_ENABLE_REV2))
        imapd_untagged(s, "%zu RECENT", recent);
    v->recent = recent;
    if (mbox_keyword_count(s->mbox) > v->keywords)
        send_flag_lists(s);
    /* Flag changes not yet reported. */
    uint64_t high = mbox_highestmodseq(s->mbox);
    if (high > v->modseq) {
        struct flag_ctx fc = {s, (flags & IMAPD_SYNC_QUIET) != 0, before};
        if (v->ntold > 1)
            qsort(v->told, v->ntold, sizeof(*v->told), told_cmp);
        mbox_changed_since(s->mbox, v->modseq, flag_change_cb, &fc);
        v->modseq = high;
    }
    /* Everything told is at or below view.modseq now. */
    v->ntold = 0;
    if (v->captold > 64) {
        myfree(v->told);
        v->told = NULL;
        v->captold = 0;
    }
    v->uidnext = mbox_uidnext(s->mbox);
}

int imapd_view_change_fd(struct imap_session *s)
{
    return s->mbox ? mbox_change_fd(s->mbox) : -1;
}

void imapd_view_change_ack(struct imap_session *s)
{
    if (s->mbox)
        mbox_change_ack(s->mbox);
}

void imapd_unselect(struct imap_session *s)
{
    if (s->mbox)
        mbox_close(&s->mbox);
    myfree(s->folder);
    s->folder = NULL;
    view_free(&s->view);
    myfree(s->saved_uids);
    s->saved_uids = NULL;
    s->saved_count = 0;
    s->readonly = false;
    if (s->state == IMAP_STATE_SELECTED)
        s->state = IMAP_STATE_AUTH;
}

/* ---- SELECT / EXAMINE --------------------------------------------------- */

struct qresync_args {
    bool given;
    uint32_t uidvalidity;
    uint64_t modseq;
    struct imap_seqset known; /* known-uids, count 0 = not given */
};

/* "(CONDSTORE)" / "(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))". */
static bool parse_select_params(struct imap_parser *p, bool *condstore_r, struct qresync_args *q)
{
    if (!imap_parse_list_begin(p))
        return false;
    for (bool first = true; !imap_parse_peek(p, ')'); first = false) {
        const char *name;
        if ((!first && !imap_parse_sp(p)) || !imap_parse_atom(p, &name))
            return false;
        if (imap_atom_is(name, "CONDSTORE")) {
            *condstore_r = true;
        } else if (imap_atom_is(name, "QRESYNC")) {
            if (!imap_parse_sp(p) || !imap_parse_list_begin(p) ||
                !imap_parse_nz_number(p, &q->uidvalidity) || !imap_parse_sp(p) ||
                !imap_parse_number64(p, &q->modseq))
                return false;
            if (imap_parse_peek(p, ' ')) {
                if (!imap_parse_sp(p))
                    return false;
                if (!imap_parse_peek(p, '(') && !imap_parse_seqset(p, &q->known))
                    return false;
                if (q->known.saved)
                    return imap_parse_fail(p, "Invalid known-uids");
                if (imap_parse_peek(p, ' ') && !imap_parse_sp(p))
                    return false;
                if (imap_parse_peek(p, '(')) {
                    /* seq-match-data: an optimisation hint; checked, not used. */
                    struct imap_seqset a, b;
                    if (!imap_parse_list_begin(p) || !imap_parse_seqset(p, &a) ||
                        !imap_parse_sp(p) || !imap_parse_seqset(p, &b) || !imap_parse_list_end(p))
                        return false;
                }
            }
            if (!imap_parse_list_end(p))
                return false;
            q->given = true;
        } else {
            return imap_parse_fail(p, "Unknown SELECT parameter");
        }
    }
    return imap_parse_list_end(p);
}

static bool in_seqset(const struct imap_seqset *set, uint32_t uid)
{
    for (size_t i = 0; i < set->count; i++)
        if (uid >= set->ranges[i].lo && uid <= set->ranges[i].hi)
            return true;
    return false;
}

struct vanished_ctx {
    const struct qresync_args *q;
    uint32_t *uids;
    size_t n;
};

static void vanished_cb(void *ctx, uint32_t uid)
{
    struct vanished_ctx *vc = ctx;
    if (vc->q->known.count && !in_seqset(&vc->q->known, uid))
        return;
    vc->uids = myreallocarray(vc->uids, vc->n + 1, sizeof(*vc->uids));
    vc->uids[vc->n++] = uid;
}

/* RFC 7162 §3.2.5.1: VANISHED (EARLIER) and the changed flags since q->modseq. */
static void qresync_report(struct imap_session *s, const struct qresync_args *q)
{
    if (q->uidvalidity != mbox_uidvalidity(s->mbox))
        return; /* the client must resync from scratch: nothing to add */
    struct vanished_ctx vc = {q, NULL, 0};
    if (mbox_expunged_since(s->mbox, q->modseq, vanished_cb, &vc) == 1) {
        /* Tombstones incomplete: every known UID that is gone is reported. */
        myfree(vc.uids);
        vc.uids = NULL;
        vc.n = 0;
        uint32_t top = mbox_uidnext(s->mbox);
        if (q->known.count) {
            for (size_t i = 0; i < q->known.count; i++) {
                uint32_t hi =
                    q->known.ranges[i].hi == IMAP_SEQ_STAR ? top - 1 : q->known.ranges[i].hi;
                for (uint32_t u = q->known.ranges[i].lo; u <= hi && u < top; u++)
                    if (mbox_rec_by_uid(s->mbox, u, NULL) == NULL &&
                        (vc.n == 0 || vc.uids[vc.n - 1] < u)) {
                        vc.uids = myreallocarray(vc.uids, vc.n + 1, sizeof(*vc.uids));
                        vc.uids[vc.n++] = u;
                    }
            }
        } else {
            for (uint32_t u = 1; u < top; u++)
                if (mbox_rec_by_uid(s->mbox, u, NULL) == NULL) {
                    vc.uids = myreallocarray(vc.uids, vc.n + 1, sizeof(*vc.uids));
                    vc.uids[vc.n++] = u;
                }
        }
    }
    if (vc.n) {
        struct strbuf sb = STRBUF_INIT;
        imapd_uidset_append(&sb, vc.uids, vc.n);
        imapd_untagged(s, "VANISHED (EARLIER) %s", sb.data);
        strbuf_release(&sb);
    }
    myfree(vc.uids);
    for (size_t i = 0; i < s->view.count; i++) {
        const struct mbox_rec *r = mbox_rec_at(s->mbox, i);
        if (r && r->modseq > q->modseq)
            send_flags_update(s, (uint32_t)i + 1, r, true);
    }
}

void imapd_cmd_select(struct imap_session *s, const char *tag, struct imap_parser *p, bool examine)
{
    struct strbuf name = STRBUF_INIT, dir = STRBUF_INIT, err = STRBUF_INIT, sb = STRBUF_INIT;
    bool condstore = false;
    struct qresync_args q;
    memset(&q, 0, sizeof(q));
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &name))
        goto out; /* answered */
    if (imap_parse_peek(p, ' ')) {
        if (!imap_parse_sp(p) || !parse_select_params(p, &condstore, &q)) {
            imapd_bad(s, tag, p->error);
            goto out;
        }
    }
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (q.given && !(s->enabled & IMAPD_ENABLE_QRESYNC)) {
        imapd_bad(s, tag, "QRESYNC not enabled.");
        goto out;
    }
    /* RFC 3501 §6.3.1: a failed SELECT leaves no folder selected. */
    if (s->mbox) {
        imapd_unselect(s);
        /* RFC 7162 §3.2.11 / RFC 9051 §7.1: the old folder is closed. */
        imapd_untagged(s, "OK [CLOSED] Previous mailbox closed.");
    }
    if (condstore)
        s->enabled |= IMAPD_ENABLE_CONDSTORE;
    if (mailbox_name_to_dir(s->maildir, name.data, &dir, &err) < 0) {
        imapd_no(s, tag, strbuf_str(&err));
        goto out;
    }
    int ex = mailbox_exists(s->maildir, name.data, &err);
    if (ex <= 0) {
        if (ex < 0)
            imapd_no(s, tag, strbuf_str(&err));
        else
            imapd_tagged(s, tag, IMAP_NO, "NONEXISTENT", "Mailbox doesn't exist: %s",
                         imapd_name_text(name.data));
        goto out;
    }
    unsigned oflags = MBOX_NO_CREATE;
    if (examine)
        oflags |= MBOX_READONLY;
    if (s->enabled & IMAPD_ENABLE_REV2)
        oflags |= MBOX_NO_RECENT;
    strbuf_reset(&err);
    if (mbox_open(dir.data, oflags, &s->mbox, &err) < 0) {
        msg_warn("user=%s, folder=%s: open: %s", s->user, name.data, strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Internal error opening the mailbox.");
        goto out;
    }
    s->folder = strbuf_detach(&name, NULL);
    s->readonly = examine;
    s->state = IMAP_STATE_SELECTED;
    memset(&s->view, 0, sizeof(s->view));
    size_t total = mbox_count(s->mbox);
    s->view.cap = total ? total : 16;
    s->view.uids = myreallocarray(NULL, s->view.cap, sizeof(*s->view.uids));
    for (size_t i = 0; i < total; i++)
        s->view.uids[i] = mbox_rec_at(s->mbox, i)->uid;
    s->view.count = total;
    s->view.modseq = mbox_highestmodseq(s->mbox);
    s->view.uidnext = mbox_uidnext(s->mbox);
    s->view.uidvalidity = mbox_uidvalidity(s->mbox);
    s->view.recent = mbox_recent_count(s->mbox);

    send_flag_lists(s);
    imapd_untagged(s, "%zu EXISTS", s->view.count);
    if (s->enabled & IMAPD_ENABLE_REV2) {
        /* RFC 9051 §6.3.2: LIST is a required untagged response of SELECT. */
        imapd_write(s, "* LIST () \".\" ", 14);
        imapd_write_folder_name(s, s->folder);
        imapd_write(s, "\r\n", 2);
    }
    if (!(s->enabled & IMAPD_ENABLE_REV2)) {
        imapd_untagged(s, "%zu RECENT", s->view.recent);
        uint32_t unseen = mbox_first_unseen_uid(s->mbox);
        uint32_t seq = unseen ? imapd_view_seq(s, unseen) : 0;
        if (seq)
            imapd_untagged(s, "OK [UNSEEN %u] First unseen.", seq);
    }
    imapd_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", s->view.uidvalidity);
    imapd_untagged(s, "OK [UIDNEXT %u] Predicted next UID", s->view.uidnext);
    imapd_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)s->view.modseq);
    if (q.given)
        qresync_report(s, &q);
    msg_info("select: user=%s, folder=%s, messages=%zu%s", s->user, s->folder, s->view.count,
             examine ? ", read-only" : "");
    imapd_tagged(s, tag, IMAP_OK, examine ? "READ-ONLY" : "READ-WRITE", "%s completed.",
                 examine ? "Examine" : "Select");
out:
    strbuf_release(&name);
    strbuf_release(&dir);
    strbuf_release(&err);
    strbuf_release(&sb);
}

/* ---- CLOSE / UNSELECT / EXPUNGE / CHECK ---------------------------------- */

/* UIDs of the view's messages with \Deleted (mymalloc'd). */
static uint32_t *deleted_uids(struct imap_session *s, size_t *n_r)
{
    uint32_t *uids = NULL;
    size_t n = 0;
    for (size_t i = 0; i < s->view.count; i++) {
        const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, s->view.uids[i], NULL);
        if (r && (r->flags & MBOX_F_DELETED)) {
            uids = myreallocarray(uids, n + 1, sizeof(*uids));
            uids[n++] = r->uid;
        }
    }
    *n_r = n;
    return uids;
}

void imapd_cmd_close(struct imap_session *s, const char *tag, struct imap_parser *p, bool expunge)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    /* RFC 3501 §6.4.2: CLOSE expunges silently, and never on a read-only folder. */
    if (expunge && !s->readonly) {
        struct strbuf err = STRBUF_INIT;
        size_t n;
        uint32_t *uids = deleted_uids(s, &n);
        if (n && mbox_expunge_uids(s->mbox, uids, n, &err) < 0)
            msg_warn("user=%s, folder=%s: expunge: %s", s->user, s->folder, strbuf_str(&err));
        myfree(uids);
        strbuf_release(&err);
    }
    imapd_unselect(s);
    imapd_ok(s, tag, expunge ? "Close completed." : "Unselect completed.");
}

void imapd_cmd_expunge(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    if (s->readonly) {
        imapd_no(s, tag, "Mailbox is read-only.");
        return;
    }
    struct strbuf err = STRBUF_INIT;
    size_t n;
    uint32_t *uids = deleted_uids(s, &n);
    if (n && mbox_expunge_uids(s->mbox, uids, n, &err) < 0) {
        msg_warn("user=%s, folder=%s: expunge: %s", s->user, s->folder, strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Internal error during expunge.");
    } else {
        /* The EXPUNGE/VANISHED responses come from the sync in imapd_tagged. */
        imapd_ok(s, tag, "Expunge completed.");
    }
    myfree(uids);
    strbuf_release(&err);
}

void imapd_cmd_check(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    struct strbuf err = STRBUF_INIT;
    if (mbox_cache_flush(s->mbox, &err) < 0)
        msg_warn("user=%s, folder=%s: check: %s", s->user, s->folder, strbuf_str(&err));
    strbuf_release(&err);
    imapd_ok(s, tag, "Check completed.");
}
