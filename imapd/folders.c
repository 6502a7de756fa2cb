/*
 * imapd folders - LIST LSUB CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE
 * STATUS NAMESPACE (RFC 3501 §6.3, RFC 5258 LIST-EXTENDED, RFC 6154
 * SPECIAL-USE, RFC 3348 CHILDREN, RFC 2342 NAMESPACE, RFC 8438 STATUS=SIZE).
 *
 * Names cross the wire in modified UTF-7 (or UTF-8 once UTF8=ACCEPT is
 * enabled) and everything below imapd works on UTF-8 names: libmail/mailbox
 * checks each name (no "..", no '/', no absolute paths, ...) before any file
 * system call, so a name can never leave the user's Maildir.
 */
#include "imapd.h"

#include <string.h>
#include <strings.h>

#include "mailbox.h"
#include "mbox_index.h"
#include "msg.h"
#include "mutf7.h"
#include "mymalloc.h"

/* ---- names on the wire -------------------------------------------------- */

bool imapd_parse_folder(struct imap_session *s, const char *tag, struct imap_parser *p,
                        struct strbuf *out)
{
    struct imap_str name;
    if (!imap_parse_astring(p, &name)) {
        imapd_bad(s, tag, p->error);
        return false;
    }
    strbuf_reset(out);
    if (!imap_str_is_text(&name)) {
        imapd_no(s, tag, "Invalid mailbox name.");
        return false;
    }
    const char *why = NULL;
    if (s->enabled & IMAPD_ENABLE_UTF8) {
        strbuf_append(out, name.data, name.len);
    } else if (mutf7_to_utf8(name.data, name.len, out, &why) < 0) {
        imapd_no(s, tag, "Mailbox name is not valid mUTF-7.");
        return false;
    }
    return true;
}

/* astring characters only: the name may go without quotes. */
static bool atom_safe(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\", c))
            return false;
    }
    return true;
}

/* The wire form of a name: mUTF-7, or UTF-8 with UTF8=ACCEPT. */
static void folder_name_append(struct imap_session *s, const char *name_utf8, struct strbuf *out)
{
    struct strbuf w = STRBUF_INIT;
    const char *why;
    if ((s->enabled & IMAPD_ENABLE_UTF8) ||
        mutf7_from_utf8(name_utf8, strlen(name_utf8), &w, &why) < 0) {
        strbuf_reset(&w);
        strbuf_puts(&w, name_utf8);
    }
    if (atom_safe(w.data ? w.data : "")) {
        strbuf_puts(out, w.data);
    } else {
        bool plain = true;
        for (size_t i = 0; i < w.len; i++) {
            unsigned char c = (unsigned char)w.data[i];
            if (c < 0x20 || c == 0x7f || (c >= 0x80 && !(s->enabled & IMAPD_ENABLE_UTF8)))
                plain = false;
        }
        if (plain) {
            strbuf_putc(out, '"');
            for (size_t i = 0; i < w.len; i++) {
                if (w.data[i] == '"' || w.data[i] == '\\')
                    strbuf_putc(out, '\\');
                strbuf_putc(out, w.data[i]);
            }
            strbuf_putc(out, '"');
        } else {
            imapd_string_append(out, w.data ? w.data : "", w.len);
        }
    }
    strbuf_release(&w);
}

const char *imapd_name_text(const char *name_utf8)
{
    static struct strbuf text;
    const char *why;
    strbuf_reset(&text);
    if (mutf7_from_utf8(name_utf8, strlen(name_utf8), &text, &why) < 0) {
        strbuf_reset(&text);
        strbuf_puts(&text, "?");
    }
    for (size_t i = 0; i < text.len; i++)
        if ((unsigned char)text.data[i] < 0x20 || (unsigned char)text.data[i] >= 0x7f)
            text.data[i] = '?';
    return strbuf_str(&text);
}

void imapd_write_folder_name(struct imap_session *s, const char *name_utf8)
{
    struct strbuf sb = STRBUF_INIT;
    folder_name_append(s, name_utf8, &sb);
    imapd_write(s, sb.data, sb.len);
    strbuf_release(&sb);
}

/* Check a name for a command that names an existing or new folder; NO on failure. */
static bool folder_checked(struct imap_session *s, const char *tag, struct strbuf *name)
{
    struct strbuf canon = STRBUF_INIT, err = STRBUF_INIT;
    if (mailbox_name_check(name->data, &canon, &err) < 0) {
        msg_info("user=%s, client=%s: refused folder name: %s", s->user, s->client,
                 strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
        strbuf_release(&canon);
        strbuf_release(&err);
        return false;
    }
    strbuf_reset(name);
    strbuf_append(name, canon.data, canon.len);
    strbuf_release(&canon);
    strbuf_release(&err);
    return true;
}

/* ---- LIST / LSUB -------------------------------------------------------- */

static bool wild_match(const char *pat, const char *name)
{
    /* Patterns longer than any name could need match nothing. */
    if (strlen(name) > MAILBOX_NAME_MAX * 2 || strlen(pat) > MAILBOX_NAME_MAX * 4)
        return false;
    return imap_list_match(pat, name, '.');
}

/* Match with "INBOX" (first component) compared without case. */
static bool name_matches(const char *pattern, const char *name)
{
    if (strncasecmp(pattern, "INBOX", 5) == 0 && (pattern[5] == '\0' || pattern[5] == '.') &&
        strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '.'))
        return wild_match(pattern + 5, name + 5);
    return wild_match(pattern, name);
}

#define SEL_SUBSCRIBED 0x01u
#define SEL_SPECIAL_USE 0x02u
#define SEL_RECURSIVEMATCH 0x04u
#define RET_SUBSCRIBED 0x01u
#define RET_CHILDREN 0x02u
#define RET_SPECIAL_USE 0x04u

struct list_ctx {
    struct imap_session *s;
    char **patterns;
    size_t npatterns;
    unsigned sel, ret;
    bool lsub;
    bool extended;
    unsigned status; /* RFC 5819 LIST-STATUS items, 0 = none */
    unsigned long count;
};

static int status_write(struct imap_session *s, const char *name, unsigned want,
                        struct strbuf *err);

static void list_cb(void *ctx, const char *name, unsigned attrs)
{
    struct list_ctx *lc = ctx;
    bool match = false;
    for (size_t i = 0; i < lc->npatterns && !match; i++)
        match = name_matches(lc->patterns[i], name);
    if (!match)
        return;
    if ((lc->sel & SEL_SPECIAL_USE) && !(attrs & MAILBOX_ATTR_SPECIAL_USE))
        return;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, lc->lsub ? "* LSUB (" : "* LIST (");
    size_t start = sb.len;
#define ADD(s_)                                                                                    \
    do {                                                                                           \
        if (sb.len > start)                                                                        \
            strbuf_putc(&sb, ' ');                                                                 \
        strbuf_puts(&sb, s_);                                                                      \
    } while (0)
    if (lc->lsub) {
        if (attrs & (MAILBOX_ATTR_NOSELECT | MAILBOX_ATTR_NONEXISTENT))
            ADD("\\Noselect");
    } else {
        if (attrs & MAILBOX_ATTR_NONEXISTENT)
            ADD("\\NonExistent");
        else if (attrs & MAILBOX_ATTR_NOSELECT)
            ADD("\\Noselect");
        if ((attrs & MAILBOX_ATTR_SUBSCRIBED) &&
            ((lc->ret & RET_SUBSCRIBED) || (lc->sel & SEL_SUBSCRIBED)))
            ADD("\\Subscribed");
        if (!(attrs & MAILBOX_ATTR_NONEXISTENT)) {
            if (attrs & MAILBOX_ATTR_HASCHILDREN)
                ADD("\\HasChildren");
            else if (attrs & MAILBOX_ATTR_HASNOCHILDREN)
                ADD("\\HasNoChildren");
        }
        /* RFC 6154 §2: special-use attributes, as Dovecot sends them on every LIST. */
        if (attrs & MAILBOX_ATTR_SENT)
            ADD("\\Sent");
        if (attrs & MAILBOX_ATTR_DRAFTS)
            ADD("\\Drafts");
        if (attrs & MAILBOX_ATTR_TRASH)
            ADD("\\Trash");
        if (attrs & MAILBOX_ATTR_JUNK)
            ADD("\\Junk");
    }
#undef ADD
    strbuf_puts(&sb, ") \".\" ");
    folder_name_append(lc->s, name, &sb);
    strbuf_puts(&sb, "\r\n");
    imapd_write(lc->s, sb.data, sb.len);
    strbuf_release(&sb);
    lc->count++;
    /* RFC 5819 §2: a STATUS for each selectable folder listed. */
    if (lc->status && !(attrs & (MAILBOX_ATTR_NOSELECT | MAILBOX_ATTR_NONEXISTENT))) {
        struct strbuf err = STRBUF_INIT;
        if (status_write(lc->s, name, lc->status, &err) < 0)
            msg_warn("user=%s, folder=%s: list-status: %s", lc->s->user, name, strbuf_str(&err));
        strbuf_release(&err);
    }
}

/* "(" opt *(SP opt) ")" of atoms, into a bit set by the table. */
static bool parse_opts(struct imap_parser *p, const char *const *names, const unsigned *bits,
                       size_t n, unsigned *out)
{
    if (!imap_parse_list_begin(p))
        return false;
    for (bool first = true; !imap_parse_peek(p, ')'); first = false) {
        const char *o;
        if ((!first && !imap_parse_sp(p)) || !imap_parse_atom_ext(p, "-", &o))
            return false;
        size_t k;
        for (k = 0; k < n && !imap_atom_is(o, names[k]); k++)
            ;
        if (k == n)
            return imap_parse_fail(p, "Unknown LIST option");
        *out |= bits[k];
    }
    return imap_parse_list_end(p);
}

static bool parse_status_items(struct imap_parser *p, unsigned *want_r);

/* RETURN options: the table's atoms, and RFC 5819 "STATUS (items)". */
static bool parse_return_opts(struct imap_parser *p, const char *const *names, const unsigned *bits,
                              size_t n, struct list_ctx *lc)
{
    if (!imap_parse_list_begin(p))
        return false;
    for (bool first = true; !imap_parse_peek(p, ')'); first = false) {
        const char *o;
        if ((!first && !imap_parse_sp(p)) || !imap_parse_atom_ext(p, "-", &o))
            return false;
        if (imap_atom_is(o, "STATUS")) {
            if (!imap_parse_sp(p) || !parse_status_items(p, &lc->status))
                return false;
            continue;
        }
        size_t k;
        for (k = 0; k < n && !imap_atom_is(o, names[k]); k++)
            ;
        if (k == n)
            return imap_parse_fail(p, "Unknown LIST option");
        lc->ret |= bits[k];
    }
    return imap_parse_list_end(p);
}

/* The reference and a pattern, joined and turned into UTF-8. */
static bool add_pattern(struct list_ctx *lc, const struct imap_str *ref, const struct imap_str *pat)
{
    struct strbuf joined = STRBUF_INIT, utf8 = STRBUF_INIT;
    const char *why;
    if (!imap_str_is_text(ref) || !imap_str_is_text(pat))
        return false;
    strbuf_append(&joined, ref->data, ref->len);
    if (ref->len > 0 && ref->data[ref->len - 1] != '.' && pat->len > 0 && pat->data[0] != '.')
        strbuf_putc(&joined, '.');
    strbuf_append(&joined, pat->data, pat->len);
    bool ok = true;
    if (lc->s->enabled & IMAPD_ENABLE_UTF8)
        strbuf_append(&utf8, joined.data, joined.len);
    else
        ok = mutf7_to_utf8(joined.data, joined.len, &utf8, &why) == 0;
    if (ok) {
        lc->patterns = myreallocarray(lc->patterns, lc->npatterns + 1, sizeof(char *));
        lc->patterns[lc->npatterns++] = strbuf_detach(&utf8, NULL);
    }
    strbuf_release(&joined);
    strbuf_release(&utf8);
    return ok;
}

void imapd_cmd_list(struct imap_session *s, const char *tag, struct imap_parser *p, bool lsub)
{
    static const char *const sel_names[] = {"SUBSCRIBED", "SPECIAL-USE", "RECURSIVEMATCH",
                                            "REMOTE"};
    static const unsigned sel_bits[] = {SEL_SUBSCRIBED, SEL_SPECIAL_USE, SEL_RECURSIVEMATCH, 0};
    static const char *const ret_names[] = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"};
    static const unsigned ret_bits[] = {RET_SUBSCRIBED, RET_CHILDREN, RET_SPECIAL_USE};
    struct list_ctx lc;
    struct imap_str ref, pat;
    bool empty_pattern = false, bad_name = false;
    memset(&lc, 0, sizeof(lc));
    lc.s = s;
    lc.lsub = lsub;
    if (!imap_parse_sp(p))
        goto bad;
    if (!lsub && imap_parse_peek(p, '(')) {
        lc.extended = true;
        if (!parse_opts(p, sel_names, sel_bits, 4, &lc.sel) || !imap_parse_sp(p))
            goto bad;
        if (lc.sel & SEL_RECURSIVEMATCH && !(lc.sel & SEL_SUBSCRIBED)) {
            imap_parse_fail(p, "RECURSIVEMATCH needs another selection option");
            goto bad;
        }
    }
    if (!imap_parse_astring(p, &ref) || !imap_parse_sp(p))
        goto bad;
    if (!lsub && imap_parse_peek(p, '(')) {
        lc.extended = true;
        if (!imap_parse_list_begin(p))
            goto bad;
        for (bool first = true; !imap_parse_peek(p, ')'); first = false) {
            if ((!first && !imap_parse_sp(p)) || !imap_parse_list_mailbox(p, &pat))
                goto bad;
            if (!add_pattern(&lc, &ref, &pat))
                bad_name = true;
        }
        if (!imap_parse_list_end(p))
            goto bad;
    } else {
        if (!imap_parse_list_mailbox(p, &pat))
            goto bad;
        if (pat.len == 0)
            empty_pattern = true;
        else if (!add_pattern(&lc, &ref, &pat))
            bad_name = true;
    }
    if (!lsub && imap_parse_peek(p, ' ')) {
        const char *kw;
        if (!imap_parse_sp(p) || !imap_parse_atom(p, &kw))
            goto bad;
        if (!imap_atom_is(kw, "RETURN")) {
            imap_parse_fail(p, "Expected RETURN");
            goto bad;
        }
        if (!imap_parse_sp(p) || !parse_return_opts(p, ret_names, ret_bits, 3, &lc))
            goto bad;
    }
    if (!imap_parse_eol(p))
        goto bad;
    if (empty_pattern) {
        /* RFC 3501 §6.3.8: the delimiter and the root of the reference. */
        imapd_untagged(s, "%s (\\Noselect) \".\" \"\"", lsub ? "LSUB" : "LIST");
        imapd_ok(s, tag, lsub ? "Lsub completed." : "List completed.");
        goto out;
    }
    (void)bad_name; /* a pattern that is not valid mUTF-7 matches nothing */
    struct strbuf err = STRBUF_INIT;
    int r = 0;
    if (lc.npatterns > 0) {
        if (lsub || (lc.sel & SEL_SUBSCRIBED))
            r = mailbox_list_subscribed(s->maildir, list_cb, &lc, &err);
        else
            r = mailbox_list(s->maildir, list_cb, &lc, &err);
    }
    if (r < 0) {
        msg_warn("user=%s: list: %s", s->user, strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Internal error listing mailboxes.");
    } else {
        imapd_ok(s, tag, lsub ? "Lsub completed." : "List completed.");
    }
    strbuf_release(&err);
    goto out;
bad:
    imapd_bad(s, tag, p->error);
out:
    for (size_t i = 0; i < lc.npatterns; i++)
        myfree(lc.patterns[i]);
    myfree(lc.patterns);
}

/* ---- CREATE DELETE RENAME SUBSCRIBE ------------------------------------- */

void imapd_cmd_create(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &name))
        goto out;
    /* RFC 5465 CREATE-SPECIAL-USE is not offered: no "(USE ...)" parameter. */
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    /* RFC 3501 §6.3.3: a trailing delimiter only says a children are planned. */
    if (name.len > 1 && name.data[name.len - 1] == '.')
        strbuf_truncate(&name, name.len - 1);
    if (!folder_checked(s, tag, &name))
        goto out;
    if (mailbox_is_inbox(name.data)) {
        imapd_tagged(s, tag, IMAP_NO, "ALREADYEXISTS", "Mailbox already exists");
        goto out;
    }
    int r = mailbox_create(s->maildir, name.data, &err);
    if (r == MAILBOX_EEXIST)
        imapd_tagged(s, tag, IMAP_NO, "ALREADYEXISTS", "Mailbox already exists");
    else if (r < 0)
        imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
    else {
        msg_info("create: user=%s, folder=%s", s->user, name.data);
        imapd_ok(s, tag, "Create completed.");
    }
out:
    strbuf_release(&name);
    strbuf_release(&err);
}

void imapd_cmd_delete(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &name))
        goto out;
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (!folder_checked(s, tag, &name))
        goto out;
    if (mailbox_is_inbox(name.data)) {
        imapd_no(s, tag, "INBOX can't be deleted.");
        goto out;
    }
    if (s->mbox && strcmp(s->folder, name.data) == 0) {
        /* RFC 9051 §6.3.4 lets a server refuse; the view would point at nothing. */
        imapd_tagged(s, tag, IMAP_NO, "INUSE", "Can't delete the selected mailbox.");
        goto out;
    }
    int r = mailbox_delete(s->maildir, name.data, &err);
    if (r == MAILBOX_ENOENT)
        imapd_tagged(s, tag, IMAP_NO, "NONEXISTENT", "Mailbox doesn't exist: %s",
                     imapd_name_text(name.data));
    else if (r < 0)
        imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
    else {
        msg_info("delete: user=%s, folder=%s", s->user, name.data);
        imapd_ok(s, tag, "Delete completed.");
    }
out:
    strbuf_release(&name);
    strbuf_release(&err);
}

void imapd_cmd_rename(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf from = STRBUF_INIT, to = STRBUF_INIT, err = STRBUF_INIT;
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &from))
        goto out;
    if (!imap_parse_sp(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (!imapd_parse_folder(s, tag, p, &to))
        goto out;
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (!folder_checked(s, tag, &from) || !folder_checked(s, tag, &to))
        goto out;
    if (mailbox_is_inbox(to.data)) {
        imapd_tagged(s, tag, IMAP_NO, "ALREADYEXISTS", "Mailbox already exists");
        goto out;
    }
    if (s->mbox && strcmp(s->folder, from.data) == 0) {
        imapd_tagged(s, tag, IMAP_NO, "INUSE", "Can't rename the selected mailbox.");
        goto out;
    }
    int r = mailbox_rename(s->maildir, from.data, to.data, &err);
    if (r == MAILBOX_ENOENT)
        imapd_tagged(s, tag, IMAP_NO, "NONEXISTENT", "Mailbox doesn't exist: %s",
                     imapd_name_text(from.data));
    else if (r == MAILBOX_EEXIST)
        imapd_tagged(s, tag, IMAP_NO, "ALREADYEXISTS", "Mailbox already exists");
    else if (r < 0)
        imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
    else {
        msg_info("rename: user=%s, from=%s, to=%s", s->user, from.data, to.data);
        imapd_ok(s, tag, "Rename completed.");
    }
out:
    strbuf_release(&from);
    strbuf_release(&to);
    strbuf_release(&err);
}

void imapd_cmd_subscribe(struct imap_session *s, const char *tag, struct imap_parser *p,
                         bool subscribe)
{
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &name))
        goto out;
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (!folder_checked(s, tag, &name))
        goto out;
    int r = subscribe ? mailbox_subscribe(s->maildir, name.data, &err)
                      : mailbox_unsubscribe(s->maildir, name.data, &err);
    if (r < 0)
        imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
    else
        imapd_ok(s, tag, subscribe ? "Subscribe completed." : "Unsubscribe completed.");
out:
    strbuf_release(&name);
    strbuf_release(&err);
}

/* ---- STATUS ------------------------------------------------------------- */

#define STATUS_MESSAGES 0x01u
#define STATUS_RECENT 0x02u
#define STATUS_UIDNEXT 0x04u
#define STATUS_UIDVALIDITY 0x08u
#define STATUS_UNSEEN 0x10u
#define STATUS_HIGHESTMODSEQ 0x20u
#define STATUS_SIZE 0x40u
#define STATUS_DELETED 0x80u

static const struct {
    const char *name;
    unsigned bit;
} status_items[] = {{"MESSAGES", STATUS_MESSAGES}, {"RECENT", STATUS_RECENT},
                    {"UIDNEXT", STATUS_UIDNEXT},   {"UIDVALIDITY", STATUS_UIDVALIDITY},
                    {"UNSEEN", STATUS_UNSEEN},     {"HIGHESTMODSEQ", STATUS_HIGHESTMODSEQ},
                    {"SIZE", STATUS_SIZE},         {"DELETED", STATUS_DELETED}};
#define STATUS_ITEMS (sizeof(status_items) / sizeof(status_items[0]))

/* "(" status-att *(SP status-att) ")" into a bit set. */
static bool parse_status_items(struct imap_parser *p, unsigned *want_r)
{
    if (!imap_parse_list_begin(p))
        return false;
    for (bool first = true; !imap_parse_peek(p, ')'); first = false) {
        const char *it;
        if ((!first && !imap_parse_sp(p)) || !imap_parse_atom(p, &it))
            return false;
        size_t k;
        for (k = 0; k < STATUS_ITEMS && !imap_atom_is(it, status_items[k].name); k++)
            ;
        if (k == STATUS_ITEMS)
            return imap_parse_fail(p, "Invalid STATUS item");
        *want_r |= status_items[k].bit;
    }
    if (!imap_parse_list_end(p))
        return false;
    if (*want_r == 0)
        return imap_parse_fail(p, "Empty STATUS item list");
    return true;
}

/*
 * Write "* STATUS name (...)" for an existing folder (checked name). 0, or
 * -1 with err (logged by the caller; the folder could not be read).
 */
static int status_write(struct imap_session *s, const char *name, unsigned want, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT, sb = STRBUF_INIT;
    struct mbox *b = NULL, *use;
    if (want & STATUS_HIGHESTMODSEQ) /* RFC 7162 §3.1: a CONDSTORE enabling command */
        s->enabled |= IMAPD_ENABLE_CONDSTORE;
    if (s->mbox && strcmp(s->folder, name) == 0) {
        use = s->mbox;
    } else {
        if (mailbox_name_to_dir(s->maildir, name, &dir, err) < 0 ||
            mbox_open(dir.data, MBOX_READONLY | MBOX_NO_CREATE, &b, err) < 0) {
            strbuf_release(&dir);
            return -1;
        }
        use = b;
    }
    size_t total = mbox_count(use), unseen = 0, deleted = 0;
    unsigned long long size = 0;
    for (size_t i = 0; i < total; i++) {
        const struct mbox_rec *r = mbox_rec_at(use, i);
        if (!(r->flags & MBOX_F_SEEN))
            unseen++;
        if (r->flags & MBOX_F_DELETED)
            deleted++;
        size += r->vsize;
    }
    strbuf_puts(&sb, "* STATUS ");
    folder_name_append(s, name, &sb);
    strbuf_puts(&sb, " (");
    bool first = true;
    /* Table order, not the client's: RFC 3501 does not require it. */
    for (size_t k = 0; k < STATUS_ITEMS; k++) {
        if (!(want & status_items[k].bit))
            continue;
        strbuf_printf(&sb, "%s%s ", first ? "" : " ", status_items[k].name);
        first = false;
        switch (status_items[k].bit) {
        case STATUS_MESSAGES:
            strbuf_printf(&sb, "%zu", total);
            break;
        case STATUS_RECENT:
            strbuf_printf(&sb, "%zu", mbox_recent_count(use));
            break;
        case STATUS_UIDNEXT:
            strbuf_printf(&sb, "%u", mbox_uidnext(use));
            break;
        case STATUS_UIDVALIDITY:
            strbuf_printf(&sb, "%u", mbox_uidvalidity(use));
            break;
        case STATUS_UNSEEN:
            strbuf_printf(&sb, "%zu", unseen);
            break;
        case STATUS_HIGHESTMODSEQ:
            strbuf_printf(&sb, "%llu", (unsigned long long)mbox_highestmodseq(use));
            break;
        case STATUS_SIZE:
            strbuf_printf(&sb, "%llu", size);
            break;
        case STATUS_DELETED:
            strbuf_printf(&sb, "%zu", deleted);
            break;
        }
    }
    strbuf_puts(&sb, ")\r\n");
    imapd_write(s, sb.data, sb.len);
    if (b)
        mbox_close(&b);
    strbuf_release(&dir);
    strbuf_release(&sb);
    return 0;
}

void imapd_cmd_status(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    unsigned want = 0;
    if (!imap_parse_sp(p) || !imapd_parse_folder(s, tag, p, &name))
        goto out;
    if (!imap_parse_sp(p) || !parse_status_items(p, &want) || !imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        goto out;
    }
    if (!folder_checked(s, tag, &name))
        goto out;
    if (!(s->mbox && strcmp(s->folder, name.data) == 0)) {
        int ex = mailbox_exists(s->maildir, name.data, &err);
        if (ex < 0) {
            imapd_tagged(s, tag, IMAP_NO, "CANNOT", "%s", strbuf_str(&err));
            goto out;
        }
        if (ex == 0) {
            imapd_tagged(s, tag, IMAP_NO, "NONEXISTENT", "Mailbox doesn't exist: %s",
                         imapd_name_text(name.data));
            goto out;
        }
    }
    if (status_write(s, name.data, want, &err) < 0) {
        msg_warn("user=%s, folder=%s: status: %s", s->user, name.data, strbuf_str(&err));
        imapd_tagged(s, tag, IMAP_NO, "SERVERBUG", "Internal error reading the mailbox.");
        goto out;
    }
    imapd_ok(s, tag, "Status completed.");
out:
    strbuf_release(&name);
    strbuf_release(&err);
}

/* RFC 2342: one personal namespace, no others. */
void imapd_cmd_namespace(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    if (!imap_parse_eol(p)) {
        imapd_bad(s, tag, p->error);
        return;
    }
    imapd_untagged(s, "NAMESPACE ((\"\" \".\")) NIL NIL");
    imapd_ok(s, tag, "Namespace completed.");
}
