/*
 * alias - alias tables and the expansion of one recipient into final targets.
 *
 * Alias values are comma-separated lists of: a local user name ("bob"), an
 * address in a local domain ("bob@example.test", may itself be an alias),
 * or a remote address (forwarded: re-submitted to the queue). Pipes
 * ("|cmd"), files ("/path") and ":include:" are not supported yet and fail
 * the target with 5.3.0.
 *
 * Loops: like sendmail and Postfix, an alias that leads back to a name
 * already being expanded (a: a, b or a: b / b: a) is not expanded again:
 * the name is delivered to the virtual user of that name if one exists, and
 * otherwise cut. Depth is bounded by local_alias_depth_limit, the number of
 * targets by local_alias_expansion_limit. Duplicate targets are removed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "dict.h"
#include "local.h"
#include "msg.h"
#include "mymalloc.h"
#include "recipient.h"
#include "vuser.h"

#define ALIAS_VALUE_MAX 65536 /* an alias value longer than this is a table error */

/* Open alias tables, reopened when alias_maps' text changes (reload). */
static char *alias_text;
static char **alias_specs;
static struct dict **alias_dicts;
static size_t alias_count;

static void alias_refresh(void)
{
    const char *text = config_str("alias_maps");
    if (alias_text != NULL && strcmp(alias_text, text) == 0)
        return;
    for (size_t i = 0; i < alias_count; i++)
        dict_close(&alias_dicts[i]);
    myfree(alias_dicts);
    config_list_free(&alias_specs);
    myfree(alias_text);
    alias_text = mystrdup(text);
    alias_specs = config_split_list(alias_text, &alias_count);
    alias_dicts = mycalloc(alias_count ? alias_count : 1, sizeof(*alias_dicts));
}

/* First match of name in alias_maps. DICT_ERROR with err when a table fails. */
static enum dict_result alias_lookup(const char *name, struct strbuf *value, struct strbuf *err)
{
    alias_refresh();
    for (size_t i = 0; i < alias_count; i++) {
        if (alias_dicts[i] == NULL) {
            strbuf_reset(err);
            alias_dicts[i] = dict_open(alias_specs[i], err);
            if (alias_dicts[i] == NULL)
                return DICT_ERROR;
        }
        enum dict_result r = dict_lookup(alias_dicts[i], name, value);
        if (r == DICT_ERROR) {
            strbuf_reset(err);
            strbuf_printf(err, "alias table %s: lookup error", alias_specs[i]);
            return r;
        }
        if (r == DICT_FOUND) {
            if (value->len > ALIAS_VALUE_MAX) {
                strbuf_reset(err);
                strbuf_printf(err, "alias table %s: value for %s too long", alias_specs[i], name);
                return DICT_ERROR;
            }
            return r;
        }
    }
    return DICT_NOTFOUND;
}

struct expand_state {
    const char *queue_id;
    struct local_expansion *exp;
    const char *chain[101]; /* alias names being expanded (depth <= 100) */
    int depth;
    size_t produced; /* targets produced, for local_alias_expansion_limit */
    bool limit_hit;
};

static struct local_target *target_add(struct local_expansion *exp, enum local_target_kind kind,
                                       const char *address)
{
    if (exp->count == exp->cap) {
        exp->cap = exp->cap ? exp->cap * 2 : 4;
        exp->items = myreallocarray(exp->items, exp->cap, sizeof(*exp->items));
    }
    struct local_target *t = &exp->items[exp->count++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->address = mystrdup(address);
    return t;
}

static void target_fail(struct expand_state *st, const char *address, int status, const char *dsn,
                        const char *reason)
{
    struct local_expansion *exp = st->exp;
    for (size_t i = 0; i < exp->count; i++)
        if (exp->items[i].kind == LOCAL_TARGET_FAIL && strcmp(exp->items[i].address, address) == 0)
            return;
    struct local_target *t = target_add(exp, LOCAL_TARGET_FAIL, address);
    t->status = status;
    snprintf(t->dsn, sizeof(t->dsn), "%s", dsn);
    t->reason = mystrdup(reason);
}

static bool budget_ok(struct expand_state *st, const char *address)
{
    if (st->produced >= (size_t)local_params.alias_expansion_limit) {
        if (!st->limit_hit) {
            st->limit_hit = true;
            msg_warn("%s: alias expansion of %s exceeds local_alias_expansion_limit (%d)",
                     st->queue_id, address, local_params.alias_expansion_limit);
            target_fail(st, address, 5, "5.3.0", "alias expansion limit exceeded");
        }
        return false;
    }
    st->produced++;
    return true;
}

static void add_user(struct expand_state *st, const char *address, const char *maildir)
{
    struct local_expansion *exp = st->exp;
    for (size_t i = 0; i < exp->count; i++)
        if (exp->items[i].kind == LOCAL_TARGET_USER && strcmp(exp->items[i].maildir, maildir) == 0)
            return; /* duplicate */
    if (!budget_ok(st, address))
        return;
    struct local_target *t = target_add(exp, LOCAL_TARGET_USER, address);
    t->maildir = mystrdup(maildir);
}

static void add_remote(struct expand_state *st, const char *address)
{
    struct local_expansion *exp = st->exp;
    for (size_t i = 0; i < exp->count; i++)
        if (exp->items[i].kind == LOCAL_TARGET_REMOTE &&
            strcasecmp(exp->items[i].address, address) == 0)
            return;
    if (!budget_ok(st, address))
        return;
    target_add(exp, LOCAL_TARGET_REMOTE, address);
}

static bool in_chain(const struct expand_state *st, const char *user)
{
    for (int i = 0; i < st->depth; i++)
        if (strcmp(st->chain[i], user) == 0)
            return true;
    return false;
}

static void lowercase(struct strbuf *sb)
{
    for (size_t i = 0; i < sb->len; i++)
        if (sb->data[i] >= 'A' && sb->data[i] <= 'Z')
            sb->data[i] = (char)(sb->data[i] + ('a' - 'A'));
}

static void expand_user(struct expand_state *st, const char *user, const char *address,
                        const char *domain);

/* Expand one alias value (canonical list, see dict_alias_split) found for user. */
static void expand_value(struct expand_state *st, const char *owner, const char *value,
                         const char *domain)
{
    struct strbuf item = STRBUF_INIT, tuser = STRBUF_INIT, taddr = STRBUF_INIT, err = STRBUF_INIT;
    size_t n = 0;
    char **list = dict_alias_split(value, &n, &err);

    if (list == NULL) {
        msg_warn("%s: alias %s: %s", st->queue_id, owner, strbuf_str(&err));
        target_fail(st, owner, 4, "4.3.0", "malformed alias table entry");
        goto done;
    }
    for (size_t i = 0; i < n && !st->limit_hit; i++) {
        const char *s = list[i];
        size_t len = strlen(s);
        if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
            s++;
            len -= 2;
        }
        if (len == 0)
            continue;
        strbuf_reset(&item);
        strbuf_append(&item, s, len);
        if (item.data[0] == '|' || item.data[0] == '/' ||
            strncasecmp(item.data, ":include:", 9) == 0) {
            msg_warn("%s: alias %s: target \"%s\" not supported (pipes, files and includes "
                     "come later)",
                     st->queue_id, owner, item.data);
            target_fail(st, item.data, 5, "5.3.0", "unsupported alias target type");
            continue;
        }
        const char *at = strrchr(item.data, '@');
        if (at != NULL && !recipient_domain_is_local(at + 1)) {
            add_remote(st, item.data);
            continue;
        }
        recipient_local_user(item.data, &tuser);
        if (tuser.len == 0) {
            target_fail(st, item.data, 5, "5.1.3", "bad alias target address");
            continue;
        }
        const char *tdomain = at ? at + 1 : domain;
        strbuf_reset(&taddr);
        strbuf_printf(&taddr, "%s@%s", tuser.data, tdomain);
        lowercase(&taddr);
        expand_user(st, tuser.data, taddr.data, tdomain);
    }
done:
    dict_alias_free(&list);
    strbuf_release(&item);
    strbuf_release(&tuser);
    strbuf_release(&taddr);
    strbuf_release(&err);
}

/*
 * user: lowercased local name without extension; address: the final
 * address used for Delivered-To and logs; domain: for bare alias targets.
 */
static void expand_user(struct expand_state *st, const char *user, const char *address,
                        const char *domain)
{
    struct strbuf value = STRBUF_INIT, err = STRBUF_INIT;
    bool loop = false;

    enum dict_result r = alias_lookup(user, &value, &err);
    if (r == DICT_ERROR) {
        msg_warn("%s: %s: %s", st->queue_id, address, strbuf_str(&err));
        target_fail(st, address, 4, "4.3.0", "alias table lookup error");
        goto done;
    }
    if (r == DICT_FOUND) {
        if (in_chain(st, user)) {
            loop = true; /* leads back to itself: deliver to the user, no re-expansion */
        } else if (st->depth >= local_params.alias_depth_limit) {
            msg_warn("%s: alias expansion of %s deeper than local_alias_depth_limit (%d)",
                     st->queue_id, address, local_params.alias_depth_limit);
            target_fail(st, address, 5, "5.4.6", "alias expansion too deep (alias loop?)");
            goto done;
        } else {
            st->exp->aliased = st->exp->aliased || st->depth == 0;
            st->chain[st->depth++] = user;
            expand_value(st, address, value.data, domain);
            st->depth--;
            goto done;
        }
    }

    /* A virtual user. */
    struct vuser vu = {0};
    int v = vuser_name_valid(user) ? vuser_lookup(user, &vu, &err) : 0;
    if (v > 0) {
        add_user(st, address, vu.maildir);
        vuser_release(&vu);
    } else if (v < 0) {
        msg_warn("%s: %s: virtual_user_maps: %s", st->queue_id, address, strbuf_str(&err));
        target_fail(st, address, 4, "4.3.0", "user table lookup error");
    } else if (loop) {
        msg_info("%s: alias loop at %s: cut", st->queue_id, address);
        st->exp->cut++;
    } else {
        target_fail(st, address, 5, "5.1.1", "user unknown");
    }

done:
    strbuf_release(&value);
    strbuf_release(&err);
}

void local_expand(const char *queue_id, const char *rcpt, struct local_expansion *exp)
{
    struct expand_state st;
    struct strbuf user = STRBUF_INIT, addr = STRBUF_INIT;
    const char *at = strrchr(rcpt, '@');
    const char *domain = at ? at + 1 : config_str("myorigin");

    memset(&st, 0, sizeof(st));
    memset(exp, 0, sizeof(*exp));
    st.exp = exp;
    st.queue_id = queue_id;
    if (local_params.alias_depth_limit > 100)
        local_params.alias_depth_limit = 100;

    recipient_local_user(rcpt, &user);
    if (at)
        strbuf_puts(&addr, rcpt);
    else
        strbuf_printf(&addr, "%s@%s", rcpt, domain);
    lowercase(&addr);
    if (user.len == 0)
        target_fail(&st, addr.data, 5, "5.1.3", "bad recipient address syntax");
    else
        expand_user(&st, user.data, addr.data, domain);
    strbuf_release(&user);
    strbuf_release(&addr);
}

void local_expansion_release(struct local_expansion *exp)
{
    for (size_t i = 0; i < exp->count; i++) {
        myfree(exp->items[i].address);
        myfree(exp->items[i].maildir);
        myfree(exp->items[i].reason);
    }
    myfree(exp->items);
    memset(exp, 0, sizeof(*exp));
}
