/*
 * imapd append - APPEND (RFC 3501 §6.3.11) with UIDPLUS APPENDUID
 * (RFC 4315), TRYCREATE, flags, keywords and the internal date.
 *
 * The message arrives as a literal that the session has already checked
 * against imapd_max_append_size before reading it (NO [TOOBIG] otherwise)
 * and buffered whole. It is stored with LF line ends, as every Maildir file
 * in tegami; FETCH restores CRLF, so a message sent with CRLF comes back
 * byte for byte.
 */
#include "imapd.h"

#include <string.h>

#include "mailbox.h"
#include "mbox_index.h"
#include "msg.h"
#include "mymalloc.h"

/* "(" flag *(SP flag) ")" into system flags and keyword names. */
static bool parse_append_flags(struct imap_parser *p, uint32_t *flags_r, const char ***kw_r,
                               size_t *nkw_r)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } sys[] = {{"\\Seen", MBOX_F_SEEN},
               {"\\Answered", MBOX_F_ANSWERED},
               {"\\Flagged", MBOX_F_FLAGGED},
               {"\\Deleted", MBOX_F_DELETED},
               {"\\Draft", MBOX_F_DRAFT}};
    if (!imap_parse_list_begin(p))
        return false;
    for (bool first = true; !imap_parse_peek(p, ')'); first = false) {
        const char *f;
        if ((!first && !imap_parse_sp(p)) || !imap_parse_flag(p, false, &f))
            return false;
        if (f[0] == '\\') {
            size_t k;
            for (k = 0; k < sizeof(sys) / sizeof(sys[0]) && !imap_atom_is(f, sys[k].name); k++)
                ;
            if (k == sizeof(sys) / sizeof(sys[0]))
                return imap_parse_fail(p, "Invalid system flag");
            *flags_r |= sys[k].bit;
        } else {
            if (*nkw_r >= MBOX_KEYWORDS_MAX)
                return imap_parse_fail(p, "Too many keywords");
            *kw_r = myreallocarray(*kw_r, *nkw_r + 1, sizeof(**kw_r));
            (*kw_r)[(*nkw_r)++] = f;
        }
    }
    return imap_parse_list_end(p);
}

/* CRLF → LF (bare CR and bare LF are kept as they are). */
static char *to_lf(const char *data, size_t len, size_t *len_r)
{
    char *out = mymalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            continue;
        out[n++] = data[i];
    }
    out[n] = '\0';
    *len_r = n;
    return out;
}

void imapd_cmd_append(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf name = STRBUF_INIT, dir = STRBUF_INIT, err = STRBUF_INIT, canon = STRBUF_INIT;
    const char **kw = NULL;
    size_t nkw = 0;
    uint32_t flags = 0;
    time_t when = 0;
    struct imap_str msg;
    struct mbox *own = NULL;
    char *lf = NULL;
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &name))
        goto out;
    if (!imap_parse_sp(p))
        goto bad;
    if (imap_parse_peek(p, '(')) {
        if (!parse_append_flags(p, &flags, &kw, &nkw) || !imap_parse_sp(p))
            goto bad;
    }
    if (imap_parse_peek(p, '"')) {
        if (!imap_parse_date_time(p, &when) || !imap_parse_sp(p))
            goto bad;
    }
    if (imap_parse_peek(p, 'U') || imap_parse_peek(p, 'u')) {
        /* RFC 6855 §4: APPEND ... UTF8 (~{n}...) carries a message with UTF-8 headers. */
        const char *ext;
        if (!imap_parse_atom(p, &ext))
            goto bad;
        if (!imap_atom_is(ext, "UTF8")) {
            imap_parse_fail(p, "Expected a literal with the message");
            goto bad;
        }
        if (!imap_parse_sp(p) || !imap_parse_list_begin(p) || !imap_parse_literal8(p, &msg) ||
            !imap_parse_list_end(p) || !imap_parse_eol(p))
            goto bad;
    } else {
        if (imap_parse_peek(p, '~')) {
            /* RFC 3516 literal8: the message may hold any octet. */
            if (!imap_parse_literal8(p, &msg) || !imap_parse_eol(p))
                goto bad;
        } else {
            if (!imap_parse_peek(p, '{')) {
                imap_parse_fail(p, "Expected a literal with the message");
                goto bad;
            }
            if (!imap_parse_string(p, &msg) || !imap_parse_eol(p))
                goto bad;
        }
    }
    if (mailbox_name_check(name.data, &canon, &err) < 0) {
        imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
        goto out;
    }
    if (msg.len == 0) {
        imapd_no(s, tag, "Can't save a zero byte message.");
        goto out;
    }
    struct mbox *b;
    int ex = mailbox_exists(s->maildir, canon.data, &err);
    if (ex <= 0) {
        if (ex < 0)
            imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
        else
            imapd_tagged(s, tag, IMAP_NO, "TRYCREATE", "Mailbox doesn't exist: %s",
                         imapd_name_text(canon.data));
        goto out;
    }
    if (s->mbox && !s->readonly && strcmp(s->folder, canon.data) == 0) {
        b = s->mbox; /* the view sync before the tagged reply shows the EXISTS */
        /* (An EXAMINE'd folder takes APPENDs through a second, writable handle.) */
    } else {
        if (mailbox_name_to_dir(s->maildir, canon.data, &dir, &err) < 0 ||
            mbox_open(dir.data, MBOX_NO_CREATE | MBOX_NO_RECENT, &own, &err) < 0) {
            msg_warn("user=%s, folder=%s: append: %s", s->user, canon.data, strbuf_str(&err));
            imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Internal error opening the mailbox.");
            goto out;
        }
        b = own;
    }
    uint64_t keywords = 0;
    for (size_t i = 0; i < nkw; i++) {
        int k = mbox_keyword(b, kw[i], true);
        if (k < 0) {
            imapd_tagged(s, tag, IMAP_NO, "LIMIT", "Too many keywords in this mailbox.");
            goto out;
        }
        keywords |= 1ULL << k;
    }
    size_t lflen;
    lf = to_lf(msg.data, msg.len, &lflen);
    uint32_t uid = 0;
    if (mbox_append(b, lf, lflen, flags, keywords, when, &uid, &err) < 0) {
        msg_warn("user=%s, folder=%s: append: %s", s->user, canon.data, strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Internal error saving the message.");
        goto out;
    }
    msg_info("append: user=%s, folder=%s, uid=%u, size=%zu", s->user, canon.data, uid, msg.len);
    imapd_tagged(s, tag, IMAP_OK, NULL, "[APPENDUID %u %u] Append completed.", mbox_uidvalidity(b),
                 uid);
    goto out;
bad:
    imapd_bad(s, tag, p->error);
out:
    if (own)
        mbox_close(&own);
    myfree(lf);
    myfree(kw);
    strbuf_release(&name);
    strbuf_release(&dir);
    strbuf_release(&err);
    strbuf_release(&canon);
}
