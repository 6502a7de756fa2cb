/*
 * recipient - is an address ours, and who receives it? (see recipient.h)
 *
 * Called for every RCPT TO (smtpd) and every recipient qmgr schedules, so it
 * must be cheap: the parsed mydestination list and the open alias tables are
 * cached and only rebuilt when the parameter text changes (a reload, or a
 * test's config_override). dict notices rebuilt .db files by itself, and
 * vuser keeps virtual_user_maps open, so after the first call a lookup opens
 * no files.
 *
 * Decisions (docs/decisions-local.md):
 *  - mydestination entries are domain names only (no tables, no /files).
 *  - An address literal "[1.2.3.4]" is local only if "[1.2.3.4]" or
 *    "1.2.3.4" is listed in mydestination.
 *  - "postmaster" (any local domain, any case, any extension) is always
 *    RECIPIENT_LOCAL without a table lookup (RFC 5321 §4.5.1). If neither an
 *    alias nor a user exists, local answers 5.1.1 at delivery time.
 *  - The extension is stripped at the first recipient_delimiter character
 *    unless that would leave an empty name ("+foo" stays "+foo").
 */
#include "recipient.h"

#include <string.h>

#include "config.h"
#include "dict.h"
#include "msg.h"
#include "mymalloc.h"
#include "vuser.h"

#define RECIPIENT_MAX_ADDRESS 1024 /* longer than any RFC 5321 path (256) */

/* Parsed mydestination, rebuilt when the parameter's text changes. */
static char *mydest_text;
static char **mydest_list;
static size_t mydest_count;

/* Open alias tables, reopened when alias_maps' text changes. */
static char *alias_text;
static char **alias_specs;
static struct dict **alias_dicts; /* NULL entry = open failed, retried next call */
static size_t alias_count;

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Compare a domain (len bytes) with a mydestination entry, ignoring case and one trailing dot. */
static bool domain_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen > 0 && a[alen - 1] == '.')
        alen--;
    if (blen > 0 && b[blen - 1] == '.')
        blen--;
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

static void mydest_refresh(void)
{
    const char *text = config_str("mydestination");
    if (mydest_text != NULL && strcmp(mydest_text, text) == 0)
        return;
    myfree(mydest_text);
    config_list_free(&mydest_list);
    mydest_text = mystrdup(text);
    mydest_list = config_split_list(mydest_text, &mydest_count);
}

static bool domain_is_local_len(const char *domain, size_t len)
{
    mydest_refresh();
    for (size_t i = 0; i < mydest_count; i++)
        if (domain_equal(domain, len, mydest_list[i]))
            return true;
    /* An address literal also matches its bare form in the list. */
    if (len >= 2 && domain[0] == '[' && domain[len - 1] == ']')
        for (size_t i = 0; i < mydest_count; i++)
            if (domain_equal(domain + 1, len - 2, mydest_list[i]))
                return true;
    return false;
}

bool recipient_domain_is_local(const char *domain)
{
    if (domain == NULL || *domain == 0)
        return true; /* no domain = local, like an address without '@' */
    return domain_is_local_len(domain, strlen(domain));
}

static void alias_close_all(void)
{
    for (size_t i = 0; i < alias_count; i++)
        dict_close(&alias_dicts[i]);
    myfree(alias_dicts);
    alias_dicts = NULL;
    config_list_free(&alias_specs);
    alias_count = 0;
    myfree(alias_text);
    alias_text = NULL;
}

static void alias_refresh(void)
{
    const char *text = config_str("alias_maps");
    if (alias_text != NULL && strcmp(alias_text, text) == 0)
        return;
    alias_close_all();
    alias_text = mystrdup(text);
    alias_specs = config_split_list(alias_text, &alias_count);
    alias_dicts = mycalloc(alias_count ? alias_count : 1, sizeof(*alias_dicts));
}

/*
 * Look name up in every alias table in order. DICT_FOUND at the first hit,
 * DICT_ERROR (with err) if a table cannot be opened or read, else NOTFOUND.
 */
static enum dict_result alias_exists(const char *name, struct strbuf *err)
{
    struct strbuf value = STRBUF_INIT;
    enum dict_result res = DICT_NOTFOUND;

    alias_refresh();
    for (size_t i = 0; i < alias_count && res == DICT_NOTFOUND; i++) {
        if (alias_dicts[i] == NULL) {
            struct strbuf oerr = STRBUF_INIT;
            alias_dicts[i] = dict_open(alias_specs[i], &oerr);
            if (alias_dicts[i] == NULL) {
                if (err)
                    strbuf_printf(err, "alias table %s: %s", alias_specs[i], strbuf_str(&oerr));
                strbuf_release(&oerr);
                res = DICT_ERROR;
                break;
            }
            strbuf_release(&oerr);
        }
        res = dict_lookup(alias_dicts[i], name, &value);
        if (res == DICT_ERROR && err)
            strbuf_printf(err, "alias table %s: lookup error", alias_specs[i]);
    }
    strbuf_release(&value);
    return res;
}

/* Split address at its last '@'; *domain_r is NULL when there is none. */
static size_t split_address(const char *address, const char **domain_r)
{
    const char *at = strrchr(address, '@');
    if (at == NULL) {
        *domain_r = NULL;
        return strlen(address);
    }
    *domain_r = at + 1;
    return (size_t)(at - address);
}

void recipient_local_user(const char *address, struct strbuf *out)
{
    const char *domain;
    size_t len = split_address(address, &domain);
    const char *delims = config_str("recipient_delimiter");

    strbuf_reset(out);
    /* A quoted local part ("a b"@x) is stored quoted by address_format: unquote. */
    if (len >= 2 && address[0] == '"' && address[len - 1] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            if (address[i] == '\\' && i + 2 < len)
                i++;
            strbuf_putc(out, ascii_lower((unsigned char)address[i]));
        }
    } else {
        for (size_t i = 0; i < len; i++)
            strbuf_putc(out, ascii_lower((unsigned char)address[i]));
    }
    if (*delims != 0 && out->len > 0) {
        size_t cut = strcspn(out->data, delims);
        if (cut > 0 && cut < out->len)
            strbuf_truncate(out, cut);
    }
}

int recipient_user_exists(const char *user, struct strbuf *err)
{
    switch (alias_exists(user, err)) {
    case DICT_FOUND:
        return 1;
    case DICT_ERROR:
        return -1;
    default:
        break;
    }
    if (!vuser_name_valid(user))
        return 0;
    struct vuser vu = {0};
    struct strbuf verr = STRBUF_INIT;
    int r = vuser_lookup(user, &vu, &verr);
    if (r > 0)
        vuser_release(&vu);
    else if (r < 0 && err)
        strbuf_printf(err, "virtual_user_maps: %s", strbuf_str(&verr));
    strbuf_release(&verr);
    return r > 0 ? 1 : r == 0 ? 0 : -1;
}

enum recipient_class recipient_classify(const char *address, struct strbuf *err)
{
    const char *domain;
    struct strbuf user = STRBUF_INIT;
    enum recipient_class cls;

    if (err)
        strbuf_reset(err);
    if (address == NULL || strlen(address) > RECIPIENT_MAX_ADDRESS)
        return RECIPIENT_UNKNOWN_USER;
    split_address(address, &domain);
    if (domain != NULL && !domain_is_local_len(domain, strlen(domain)))
        return RECIPIENT_REMOTE;

    recipient_local_user(address, &user);
    if (user.len == 0) {
        cls = RECIPIENT_UNKNOWN_USER;
    } else if (strcmp(user.data, "postmaster") == 0) {
        /* RFC 5321 §4.5.1: always accepted; local resolves or answers 5.1.1. */
        cls = RECIPIENT_LOCAL;
    } else {
        int r = recipient_user_exists(user.data, err);
        cls = r > 0 ? RECIPIENT_LOCAL : r == 0 ? RECIPIENT_UNKNOWN_USER : RECIPIENT_ERROR;
    }
    strbuf_release(&user);
    return cls;
}
