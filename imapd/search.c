/*
 * search - SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4), ESEARCH
 * replies (RFC 4731; always under IMAP4rev2) and the MODSEQ key (RFC 7162).
 *
 * The program is parsed by libmail/imap_search.c and evaluated per message
 * of the view. Flags, sizes, dates and modseqs come from the index; a
 * message file is mapped and parsed only when a key needs its headers or
 * text, and then once per message per command.
 */
#include <string.h>

#include "fetch.h"
#include "imap_search.h"
#include "mymalloc.h"

/* The evaluator's flag bits are the index's, so r->flags is passed as is. */
_Static_assert(IMAP_SF_SEEN == MBOX_F_SEEN && IMAP_SF_ANSWERED == MBOX_F_ANSWERED &&
                   IMAP_SF_FLAGGED == MBOX_F_FLAGGED && IMAP_SF_DELETED == MBOX_F_DELETED &&
                   IMAP_SF_DRAFT == MBOX_F_DRAFT && IMAP_SF_RECENT == MBOX_F_RECENT,
               "search flag bits differ from mbox_index's");

/* Bound on the decoded text one message offers to BODY/TEXT. */
#define SEARCH_BODY_MAX ((size_t)32 * 1024 * 1024)

struct search_msg {
    struct imap_session *s;
    const struct mbox_rec *r;
    struct imapd_msgfile mf;
    bool opened, open_failed;
    bool whole; /* a key needs the body: parse the whole message */
};

/* Length of the header block (up to and including the empty line), or len. */
static size_t header_len(const char *d, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (d[i] != '\n')
            continue;
        if (d[i + 1] == '\n')
            return i + 2;
        if (d[i + 1] == '\r' && i + 2 < len && d[i + 2] == '\n')
            return i + 3;
    }
    return len;
}

static struct message *search_message(struct search_msg *sm)
{
    if (sm->r == NULL)
        return NULL; /* expunged elsewhere: no content */
    if (!sm->opened && !sm->open_failed) {
        if (imapd_msgfile_open(sm->s, sm->r, &sm->mf) < 0) {
            sm->open_failed = true;
        } else {
            sm->opened = true;
            /* Header keys only: parse just the header block, not the MIME tree. */
            if (!sm->whole)
                sm->mf.msg = message_parse(sm->mf.data, header_len(sm->mf.data, sm->mf.len));
        }
    }
    return sm->opened ? imapd_msgfile_parsed(&sm->mf) : NULL;
}

static bool cb_has_keyword(void *ctx, const char *kw)
{
    struct search_msg *sm = ctx;
    if (sm->r == NULL)
        return false;
    int k = mbox_keyword(sm->s->mbox, kw, false);
    return k >= 0 && (sm->r->keywords & ((uint64_t)1 << k)) != 0;
}

static bool cb_header(void *ctx, const char *name, struct strbuf *out)
{
    struct search_msg *sm = ctx;
    struct message *m = search_message(sm);
    if (m == NULL)
        return false;
    if (name[0] != '\0')
        return message_header_decoded(m, name, out) == 0;
    size_t off, len;
    if (message_section(m, "", MESSAGE_SEC_HEADER, &off, &len) < 0)
        return false;
    message_decode_2047(sm->mf.data + off, len, out);
    return true;
}

static bool cb_body(void *ctx, struct strbuf *out)
{
    struct search_msg *sm = ctx;
    struct message *m = search_message(sm);
    if (m == NULL)
        return false;
    message_body_text(m, SEARCH_BODY_MAX, out);
    return true;
}

/* The zone offset (seconds east) written at the end of a Date: value; 0 if none. */
static long date_zone(const char *v, size_t len)
{
    for (size_t i = len; i-- > 0;) {
        if ((v[i] == '+' || v[i] == '-') && len - i >= 5) {
            const char *d = v + i + 1;
            bool digits = true;
            for (int k = 0; k < 4; k++)
                digits = digits && d[k] >= '0' && d[k] <= '9';
            if (!digits)
                continue;
            long off = ((d[0] - '0') * 10 + (d[1] - '0')) * 3600L +
                       ((d[2] - '0') * 10 + (d[3] - '0')) * 60L;
            return v[i] == '-' ? -off : off;
        }
    }
    return 0;
}

static bool cb_sent_day(void *ctx, long long *day_r)
{
    struct search_msg *sm = ctx;
    struct message *m = search_message(sm);
    struct strbuf raw;
    bool ok = false;
    if (m == NULL)
        return false;
    strbuf_init(&raw, 64);
    if (message_header_raw(m, "date", &raw) == 0) {
        time_t t = message_parse_date(raw.data, raw.len);
        if (t != (time_t)-1) {
            /* RFC 3501 §6.4.4: the date in the header, its time and zone disregarded */
            long long local = (long long)t + date_zone(raw.data, raw.len);
            *day_r = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
            ok = true;
        }
    }
    strbuf_release(&raw);
    return ok;
}

void imapd_cmd_search(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid)
{
    struct imap_search_program *prog = NULL;
    const char *error;

    if (s->mbox == NULL) {
        imapd_bad(s, tag, "No mailbox selected");
        return;
    }
    switch (imap_search_parse(p, true, &prog, &error)) {
    case IMAP_SEARCH_OK:
        break;
    case IMAP_SEARCH_BADCHARSET:
        imapd_tagged(s, tag, IMAP_NO, "BADCHARSET (UTF-8 US-ASCII)", "%s", error);
        return;
    case IMAP_SEARCH_BAD:
        imapd_bad(s, tag, error);
        return;
    }
    if (prog->uses_modseq)
        imapd_condstore_enable(s);

    uint32_t *hits = mymalloc((s->view.count ? s->view.count : 1) * sizeof(*hits));
    size_t nhits = 0;
    uint64_t maxmodseq = 0;
    uint32_t max_uid = s->view.count ? s->view.uids[s->view.count - 1] : 0;

    for (size_t vi = 0; vi < s->view.count; vi++) {
        uint32_t muid = s->view.uids[vi];
        static const struct mbox_rec gone = {0};
        const struct mbox_rec *r = mbox_rec_by_uid(s->mbox, muid, NULL);
        struct search_msg sm;
        memset(&sm, 0, sizeof(sm));
        sm.s = s;
        sm.r = r;
        /*
         * Expunged by another session but not yet reported to this one: it
         * keeps its sequence number and is matched with no flags and no
         * content (so SEARCH ALL still lists it, as Dovecot does; RFC 2180
         * §4.1.3 allows either).
         */
        if (r == NULL)
            r = &gone;
        sm.whole = prog->needs_body;
        struct imap_search_msg m = {
            .seq = (uint32_t)(vi + 1),
            .uid = muid,
            .max_seq = (uint32_t)s->view.count,
            .max_uid = max_uid,
            .flags = r->flags,
            .size = r->vsize,
            .modseq = r->modseq,
            .internaldate = r->internaldate,
            .has_keyword = cb_has_keyword,
            .header = cb_header,
            .body = cb_body,
            .sent_day = cb_sent_day,
            .ctx = &sm,
        };
        if (imap_search_match(prog, &m)) {
            hits[nhits++] = uid ? muid : (uint32_t)(vi + 1);
            if (r->modseq > maxmodseq)
                maxmodseq = r->modseq;
        }
        if (sm.opened)
            imapd_msgfile_close(&sm.mf);
    }

    struct strbuf out;
    strbuf_init(&out, 64 + nhits * 6);
    bool esearch = prog->esearch || (s->enabled & IMAPD_ENABLE_REV2);
    unsigned ret = prog->esearch ? prog->ret : IMAP_SEARCH_RET_ALL;
    if (esearch) {
        /* RFC 4731 §3.1 / RFC 9051 §7.3.4 */
        strbuf_puts(&out, "* ESEARCH (TAG ");
        imapd_string_append(&out, tag, strlen(tag));
        strbuf_putc(&out, ')');
        if (uid)
            strbuf_puts(&out, " UID");
        if ((ret & IMAP_SEARCH_RET_MIN) && nhits > 0)
            strbuf_printf(&out, " MIN %u", hits[0]);
        if ((ret & IMAP_SEARCH_RET_MAX) && nhits > 0)
            strbuf_printf(&out, " MAX %u", hits[nhits - 1]);
        if (ret & IMAP_SEARCH_RET_COUNT)
            strbuf_printf(&out, " COUNT %zu", nhits);
        if ((ret & IMAP_SEARCH_RET_ALL) && nhits > 0) {
            strbuf_puts(&out, " ALL ");
            imapd_append_set(&out, hits, nhits);
        }
        if (prog->uses_modseq && nhits > 0)
            strbuf_printf(&out, " MODSEQ %llu", (unsigned long long)maxmodseq);
    } else {
        strbuf_puts(&out, "* SEARCH");
        for (size_t i = 0; i < nhits; i++)
            strbuf_printf(&out, " %u", hits[i]);
        if (prog->uses_modseq && nhits > 0)
            strbuf_printf(&out, " (MODSEQ %llu)", (unsigned long long)maxmodseq);
    }
    strbuf_puts(&out, "\r\n");
    imapd_write(s, out.data, out.len);
    strbuf_release(&out);
    myfree(hits);
    imap_search_free(&prog);
    imapd_ok(s, tag, "Search completed");
}
