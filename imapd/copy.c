/*
 * copy - COPY / UID COPY (RFC 3501 §6.4.7), MOVE / UID MOVE (RFC 6851),
 * COPYUID (RFC 4315 §3) and UID EXPUNGE (RFC 4315 §2.1).
 *
 * A copy is all or nothing: when one message fails, the ones already
 * copied are expunged from the destination again and the reply is NO.
 * MOVE is COPY, then expunge from the source, then the EXPUNGE (or
 * VANISHED) responses through the view sync.
 */
#include <string.h>

#include "fetch.h"
#include "mailbox.h"
#include "mymalloc.h"

/* Messages copied in one destination index transaction. */
#define COPY_BATCH 1000

/* The text of a COPYUID response code (RFC 4315 §3), for a tagged or untagged OK. */
static void copyuid_code(struct strbuf *out, uint32_t uidvalidity, const uint32_t *src,
                         const uint32_t *dst, size_t n)
{
    strbuf_printf(out, "COPYUID %u ", uidvalidity);
    imapd_append_set(out, src, n);
    strbuf_putc(out, ' ');
    /* the n-th destination UID belongs to the n-th source UID; both lists
     * ascend (new UIDs are handed out in order), so ranges keep the pairing */
    imapd_append_set(out, dst, n);
}

void imapd_cmd_copy(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid,
                    bool move)
{
    struct imap_seqset set;
    struct strbuf name, path, err, code;
    const char *error;
    size_t *idx = NULL, count = 0;
    struct mbox *dst = NULL;
    bool same;
    uint32_t *src_uids = NULL, *dst_uids = NULL;
    size_t ncopied = 0;

    if (s->mbox == NULL) {
        imapd_bad(s, tag, "No mailbox selected");
        return;
    }
    if (!imap_parse_sp(p) || !imap_parse_seqset(p, &set) || !imap_parse_sp(p)) {
        imapd_bad(s, tag, p->error ? p->error : "Invalid arguments");
        return;
    }
    strbuf_init(&name, 64);
    strbuf_init(&path, 128);
    strbuf_init(&err, 0);
    strbuf_init(&code, 64);
    if (!imapd_parse_folder(s, tag, p, &name))
        goto out; /* answered */
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (move && s->readonly) {
        imapd_tagged(s, tag, IMAP_NO, "READ-ONLY", "Mailbox is read-only");
        goto out;
    }
    if (!imapd_view_resolve(s, &set, uid, &idx, &count, &error)) {
        imapd_bad(s, tag, error ? error : "Invalid messageset");
        goto out;
    }
    int ex = mailbox_exists(s->maildir, name.data, &err);
    if (ex < 0) {
        imapd_no(s, tag, err.len ? err.data : "Invalid mailbox name");
        goto out;
    }
    if (ex == 0) {
        imapd_tagged(s, tag, IMAP_NO, "TRYCREATE", "Mailbox doesn't exist: %s", name.data);
        goto out;
    }
    /* Every source message must still exist (RFC 2180 §4.4.1: fail rather
     * than copy part of the set). */
    src_uids = mycalloc(count ? count : 1, sizeof(*src_uids));
    dst_uids = mycalloc(count ? count : 1, sizeof(*dst_uids));
    for (size_t k = 0; k < count; k++) {
        src_uids[k] = s->view.uids[idx[k]];
        if (mbox_rec_by_uid(s->mbox, src_uids[k], NULL) == NULL) {
            imapd_tagged(s, tag, IMAP_NO, "EXPUNGEISSUED",
                         "Some of the requested messages no longer exist");
            goto out;
        }
    }
    if (count == 0) {
        /* RFC 3501: an empty UID set is no error; nothing to report */
        imapd_ok(s, tag, move ? "No messages moved" : "No messages copied");
        goto out;
    }
    if (mailbox_name_to_dir(s->maildir, name.data, &path, &err) < 0) {
        imapd_no(s, tag, err.len ? err.data : "Invalid mailbox name");
        goto out;
    }
    /* the same folder: copy within the open index (no second handle) */
    same = false;
    if (s->folder != NULL) {
        struct strbuf here;
        strbuf_init(&here, 128);
        same = mailbox_name_to_dir(s->maildir, s->folder, &here, &err) == 0 &&
               strcmp(here.data, path.data) == 0;
        strbuf_release(&here);
    }
    if (same) {
        dst = s->mbox;
    } else {
        if (mbox_open(path.data, MBOX_NO_RECENT | MBOX_NO_CREATE, &dst, &err) < 0) {
            msg_warn("%s: user=%s: COPY to %s: %s", s->client, s->user, name.data,
                     strbuf_str(&err));
            imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Cannot open the destination mailbox");
            goto out;
        }
    }
    /* One destination index transaction per COPY_BATCH messages (one lock,
     * one DB sync), released between batches so other sessions get a turn. */
    bool failed = false;
    for (size_t k = 0; k < count && !failed; k++) {
        bool batch_start = k % COPY_BATCH == 0;
        if (batch_start) {
            strbuf_reset(&err);
            if (mbox_txn_begin(dst, &err) < 0) {
                msg_warn("%s: user=%s: COPY to %s: %s", s->client, s->user, name.data,
                         strbuf_str(&err));
                failed = true;
                break;
            }
        }
        strbuf_reset(&err);
        if (mbox_copy(s->mbox, src_uids[k], dst, &dst_uids[k], &err) < 0) {
            msg_warn("%s: user=%s: COPY uid %u to %s: %s", s->client, s->user, src_uids[k],
                     name.data, strbuf_str(&err));
            failed = true;
        } else {
            ncopied++;
        }
        if (failed || k + 1 == count || (k + 1) % COPY_BATCH == 0) {
            strbuf_reset(&err);
            if (mbox_txn_commit(dst, &err) < 0) {
                /* not durable: answer NO and, for MOVE, keep the source */
                msg_warn("%s: user=%s: COPY to %s: commit: %s", s->client, s->user, name.data,
                         strbuf_str(&err));
                failed = true;
            }
        }
    }
    if (failed) {
        /* all or nothing: take back what was copied */
        strbuf_reset(&err);
        if (ncopied > 0 && mbox_expunge_uids(dst, dst_uids, ncopied, &err) < 0)
            msg_warn("%s: user=%s: undo COPY to %s: %s", s->client, s->user, name.data,
                     strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Copy failed");
        goto out;
    }
    copyuid_code(&code, mbox_uidvalidity(dst), src_uids, dst_uids, ncopied);
    if (!move) {
        imapd_tagged(s, tag, IMAP_OK, code.data, "Copy completed");
        goto out;
    }
    /* RFC 6851 §4.3: COPYUID in an untagged OK before the expunges */
    imapd_untagged(s, "OK [%s] Moved UIDs.", code.data);
    strbuf_reset(&err);
    if (mbox_expunge_uids(s->mbox, src_uids, ncopied, &err) < 0) {
        msg_warn("%s: user=%s: MOVE expunge in %s: %s", s->client, s->user,
                 s->folder ? s->folder : "", strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Messages copied but not removed");
        goto out;
    }
    imapd_view_sync(s, IMAPD_SYNC_EXPUNGES);
    imapd_ok(s, tag, "Move completed");
out:
    if (dst != NULL && dst != s->mbox)
        mbox_close(&dst);
    myfree(src_uids);
    myfree(dst_uids);
    myfree(idx);
    strbuf_release(&name);
    strbuf_release(&path);
    strbuf_release(&err);
    strbuf_release(&code);
}

void imapd_cmd_uid_expunge(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct imap_seqset set;
    const char *error;
    size_t *idx = NULL, count = 0;
    struct strbuf err;

    if (s->mbox == NULL) {
        imapd_bad(s, tag, "No mailbox selected");
        return;
    }
    if (!imap_parse_sp(p) || !imap_parse_seqset(p, &set) || !imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error ? p->error : "Invalid arguments");
        return;
    }
    if (s->readonly) {
        imapd_tagged(s, tag, IMAP_NO, "READ-ONLY", "Mailbox is read-only");
        return;
    }
    if (!imapd_view_resolve(s, &set, true, &idx, &count, &error)) {
        imapd_bad(s, tag, error ? error : "Invalid messageset");
        return;
    }
    uint32_t *uids = mycalloc(count ? count : 1, sizeof(*uids));
    size_t n = 0;
    for (size_t k = 0; k < count; k++) {
        const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, s->view.uids[idx[k]], NULL);
        if (r != NULL && (r->flags & MBOX_F_DELETED))
            uids[n++] = r->uid;
    }
    strbuf_init(&err, 0);
    if (n > 0 && mbox_expunge_uids(s->mbox, uids, n, &err) < 0) {
        msg_warn("%s: user=%s: UID EXPUNGE in %s: %s", s->client, s->user,
                 s->folder ? s->folder : "", strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Expunge failed");
    } else {
        imapd_view_sync(s, IMAPD_SYNC_EXPUNGES);
        imapd_ok(s, tag, "Expunge completed");
    }
    strbuf_release(&err);
    myfree(uids);
    myfree(idx);
}
