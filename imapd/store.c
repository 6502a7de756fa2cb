/*
 * store - STORE and UID STORE (RFC 3501 §6.4.6, RFC 9051 §6.4.6) with
 * RFC 7162 UNCHANGEDSINCE / [MODIFIED] and MODSEQ in the replies.
 *
 * The flags go to the index (mbox_store_flags: system flags into the file
 * name, keywords into the index), which gives each changed message a new
 * modseq; other sessions learn about it through their view sync. This
 * session is told with an untagged FETCH unless .SILENT.
 */
#include <string.h>
#include <strings.h>

#include "fetch.h"
#include "mymalloc.h"

/* Messages changed in one index transaction. */
#define STORE_BATCH 1000

/* Check: parse the flags of a STORE; false after answering BAD/NO. */
static bool parse_flags(struct imap_session *s, const char *tag, struct imap_parser *p,
                        bool create_keywords, uint32_t *flags_r, uint64_t *kw_r)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } sys[] = {
        {"\\Seen", MBOX_F_SEEN},       {"\\Answered", MBOX_F_ANSWERED},
        {"\\Flagged", MBOX_F_FLAGGED}, {"\\Deleted", MBOX_F_DELETED},
        {"\\Draft", MBOX_F_DRAFT},
    };
    bool list = imap_parse_peek(p, '(');

    *flags_r = 0;
    *kw_r = 0;
    if (list && !imap_parse_list_begin(p))
        goto bad;
    if (list && imap_parse_peek(p, ')')) {
        if (!imap_parse_list_end(p) || !imap_parse_eol(p))
            goto bad;
        return true;
    }
    for (;;) {
        const char *flag;
        if (!imap_parse_flag(p, false, &flag))
            goto bad;
        if (flag[0] == '\\') {
            size_t i;
            for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
                if (strcasecmp(flag, sys[i].name) == 0)
                    break;
            if (i == sizeof(sys) / sizeof(sys[0])) {
                imapd_bad(s, tag, "Invalid system flag");
                return false;
            }
            *flags_r |= sys[i].bit;
        } else {
            int k = mbox_keyword(s->mbox, flag, create_keywords);
            if (k < 0 && create_keywords) {
                imapd_tagged(s, tag, IMAP_NO, "LIMIT", "Too many keywords in this mailbox");
                return false;
            }
            if (k >= 0)
                *kw_r |= (uint64_t)1 << k;
        }
        if (list && imap_parse_peek(p, ')')) {
            if (!imap_parse_list_end(p))
                goto bad;
            break;
        }
        if (!list && imap_parse_at_eol(p))
            break;
        if (!imap_parse_sp(p))
            goto bad;
    }
    if (!imap_parse_eol(p))
        goto bad;
    return true;
bad:
    imapd_bad(s, tag, p->error ? p->error : "Invalid flags");
    return false;
}

void imapd_cmd_store(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid)
{
    struct imap_seqset set;
    const char *atom, *error;
    bool unchanged_given = false;
    uint64_t unchangedsince = 0;
    enum mbox_flags_op op;
    bool silent;
    uint32_t flags;
    uint64_t kws;
    size_t *idx = NULL, count = 0;

    if (s->mbox == NULL) {
        imapd_bad(s, tag, "No mailbox selected");
        return;
    }
    if (!imap_parse_sp(p) || !imap_parse_seqset(p, &set) || !imap_parse_sp(p))
        goto bad;
    if (imap_parse_peek(p, '(')) {
        /* RFC 7162 §3.1.3: STORE modifiers */
        if (!imap_parse_list_begin(p) || !imap_parse_atom(p, &atom))
            goto bad;
        if (!imap_atom_is(atom, "UNCHANGEDSINCE")) {
            imap_parse_fail(p, "Unknown STORE modifier");
            goto bad;
        }
        if (!imap_parse_sp(p) || !imap_parse_number64(p, &unchangedsince) ||
            !imap_parse_list_end(p) || !imap_parse_sp(p))
            goto bad;
        unchanged_given = true;
    }
    if (!imap_parse_atom(p, &atom) || !imap_parse_sp(p))
        goto bad;
    op = MBOX_FLAGS_SET;
    if (atom[0] == '+' || atom[0] == '-') {
        op = atom[0] == '+' ? MBOX_FLAGS_ADD : MBOX_FLAGS_REMOVE;
        atom++;
    }
    if (strcasecmp(atom, "FLAGS") == 0) {
        silent = false;
    } else if (strcasecmp(atom, "FLAGS.SILENT") == 0) {
        silent = true;
    } else {
        imap_parse_fail(p, "Invalid STORE attribute");
        goto bad;
    }
    if (s->readonly) {
        /* check the syntax first, then refuse: the folder was EXAMINEd */
        imapd_tagged(s, tag, IMAP_NO, "READ-ONLY", "Mailbox is read-only");
        return;
    }
    if (!parse_flags(s, tag, p, op != MBOX_FLAGS_REMOVE, &flags, &kws))
        return;
    if (!imapd_view_resolve(s, &set, uid, &idx, &count, &error)) {
        imapd_bad(s, tag, error ? error : "Invalid messageset");
        return;
    }
    if (unchanged_given)
        imapd_condstore_enable(s);
    bool condstore = (s->enabled & IMAPD_ENABLE_CONDSTORE) != 0;

    uint32_t *modified = NULL;
    size_t nmodified = 0;
    bool expunged = false;
    struct strbuf out, err;
    strbuf_init(&out, 128);
    strbuf_init(&err, 0);
    /* Act in batches: one index transaction (one lock, one DB sync) per
     * STORE_BATCH messages, and the replies written after each commit, so
     * no transaction is held across network output. */
    int *rcs = mycalloc(count < STORE_BATCH ? (count ? count : 1) : STORE_BATCH, sizeof(*rcs));
    uint64_t *old = mycalloc(count < STORE_BATCH ? (count ? count : 1) : STORE_BATCH, sizeof(*old));
    for (size_t base = 0; base < count; base += STORE_BATCH) {
        size_t end = count - base < STORE_BATCH ? count : base + STORE_BATCH;
        strbuf_reset(&err);
        bool txn = mbox_txn_begin(s->mbox, &err) == 0;
        if (!txn)
            msg_warn("%s: user=%s: STORE: %s", s->client, s->user, strbuf_str(&err));
        for (size_t k = base; k < end; k++) {
            uint32_t muid = s->view.uids[idx[k]];
            const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, muid, NULL);
            uint64_t modseq = 0;
            int rc;
            if (r == NULL) {
                rcs[k - base] = -2;
                continue;
            }
            old[k - base] = r->modseq;
            if (unchanged_given && unchangedsince == 0) {
                rc = 1; /* RFC 7162 §3.1.3: every modseq is > 0, so this always fails */
            } else {
                strbuf_reset(&err);
                rc = mbox_store_flags(s->mbox, muid, flags, kws, op,
                                      unchanged_given ? unchangedsince : 0, &modseq, &err);
                if (rc < 0 && mbox_rec_by_uid(s->mbox, muid, NULL) != NULL)
                    msg_warn("%s: user=%s: STORE uid %u: %s", s->client, s->user, muid,
                             strbuf_str(&err));
            }
            rcs[k - base] = rc;
        }
        strbuf_reset(&err);
        if (txn && mbox_txn_commit(s->mbox, &err) < 0)
            msg_warn("%s: user=%s: STORE commit: %s", s->client, s->user, strbuf_str(&err));

        for (size_t k = base; k < end; k++) {
            size_t vi = idx[k];
            uint32_t muid = s->view.uids[vi];
            int rc = rcs[k - base];
            if (rc == 1) {
                if (modified == NULL)
                    modified = mycalloc(count, sizeof(*modified));
                modified[nmodified++] = uid ? muid : (uint32_t)(vi + 1);
                continue;
            }
            const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, muid, NULL);
            if (r == NULL) {
                expunged = true;
                continue;
            }
            if (rc < 0)
                continue;
            bool changed = r->modseq != old[k - base];
            if (silent && !(condstore && changed)) {
                imapd_view_reported(s, vi, r->modseq);
                continue;
            }
            strbuf_reset(&out);
            strbuf_printf(&out, "* %zu FETCH (", vi + 1);
            if (!silent) {
                strbuf_puts(&out, "FLAGS ");
                imapd_append_flags(s, r, &out);
            }
            if (uid)
                strbuf_printf(&out, "%sUID %u", silent ? "" : " ", muid);
            if (condstore)
                strbuf_printf(&out, "%sMODSEQ (%llu)", (!silent || uid) ? " " : "",
                              (unsigned long long)r->modseq);
            strbuf_puts(&out, ")\r\n");
            imapd_write(s, out.data, out.len);
            imapd_view_reported(s, vi, r->modseq);
        }
    }
    myfree(rcs);
    myfree(old);

    if (nmodified > 0) {
        /* the set is sorted: idx is sorted and UIDs follow sequence order */
        strbuf_reset(&out);
        strbuf_puts(&out, "MODIFIED ");
        imapd_append_set(&out, modified, nmodified);
        imapd_tagged(s, tag, IMAP_OK, out.data, "Conditional STORE failed");
    } else if (expunged) {
        imapd_tagged(s, tag, IMAP_NO, "EXPUNGEISSUED", "Some of the messages no longer exist");
    } else {
        imapd_ok(s, tag, "Store completed");
    }
    myfree(modified);
    myfree(idx);
    strbuf_release(&out);
    strbuf_release(&err);
    return;
bad:
    imapd_bad(s, tag, p->error ? p->error : "Invalid STORE arguments");
}
