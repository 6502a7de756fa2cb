/* resolve - routing of one recipient to a transport and nexthop (resolve.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "dict.h"
#include "dsn.h"
#include "msg.h"
#include "mymalloc.h"
#include "nexthop.h"
#include "recipient.h"
#include "resolve.h"

#define NEXTHOP_MAX 300 /* "[" + 255-byte host + "]:65535" */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static void put_lower(struct strbuf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        strbuf_putc(out, lower((unsigned char)s[i]));
}

bool qmgr_nexthop_valid(const char *nh)
{
    struct nexthop parsed;

    /* The smtp client's own parser: what qmgr routes, smtp accepts. */
    return strlen(nh) <= NEXTHOP_MAX && nexthop_parse(nh, 25, &parsed, NULL) == 0;
}

static void route_reset(struct qmgr_route *route)
{
    route->kind = QMGR_ROUTE_LOCAL;
    strbuf_reset(&route->nexthop);
    strbuf_reset(&route->reason);
    route->dsn[0] = '\0';
}

static void route_set(struct qmgr_route *route, enum qmgr_route_kind kind, const char *dsn,
                      const char *reason)
{
    route->kind = kind;
    snprintf(route->dsn, sizeof(route->dsn), "%s", dsn);
    strbuf_reset(&route->reason);
    strbuf_puts(&route->reason, reason);
}

void qmgr_route_parse(const char *value, const char *domain, struct qmgr_route *route)
{
    const char *colon;
    size_t tlen;
    const char *nexthop;

    route_reset(route);
    if (value == NULL)
        value = "";
    while (*value == ' ' || *value == '\t')
        value++;
    colon = strchr(value, ':');
    tlen = colon != NULL ? (size_t)(colon - value) : strlen(value);
    nexthop = colon != NULL ? colon + 1 : "";
    while (*nexthop == ' ' || *nexthop == '\t')
        nexthop++;

    if (tlen == 4 && strncmp(value, "smtp", 4) == 0) {
        struct strbuf nh = STRBUF_INIT;
        size_t nlen = strlen(nexthop);
        while (nlen > 0 && (nexthop[nlen - 1] == ' ' || nexthop[nlen - 1] == '\t'))
            nlen--;
        if (nlen == 0) {
            nexthop = domain != NULL ? domain : "";
            nlen = strlen(nexthop);
        }
        put_lower(&nh, nexthop, nlen);
        if (!qmgr_nexthop_valid(strbuf_str(&nh))) {
            struct strbuf why = STRBUF_INIT;
            const char *p = strbuf_str(&nh);
            strbuf_puts(&why, "invalid nexthop \"");
            for (size_t i = 0; p[i] != '\0' && i < 100; i++)
                strbuf_putc(&why, (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?');
            strbuf_puts(&why, "\" for the smtp transport");
            route_set(route, QMGR_ROUTE_DEFER, "4.3.5", why.data);
            strbuf_release(&why);
        } else {
            route->kind = QMGR_ROUTE_SMTP;
            strbuf_puts(&route->nexthop, strbuf_str(&nh));
        }
        strbuf_release(&nh);
    } else if (tlen == 5 && strncmp(value, "local", 5) == 0) {
        route->kind = QMGR_ROUTE_LOCAL;
    } else if (tlen == 5 && strncmp(value, "error", 5) == 0) {
        /* "error:5.7.1 text", "error:text" (5.0.0), "error:4.3.2 text" defers. */
        char code[12] = "5.0.0";
        const char *text = nexthop;
        const char *sp = strchr(nexthop, ' ');
        size_t clen = sp != NULL ? (size_t)(sp - nexthop) : strlen(nexthop);
        if (clen > 0 && clen < sizeof(code)) {
            char cand[12];
            memcpy(cand, nexthop, clen);
            cand[clen] = '\0';
            if (dsn_status_valid(cand) && cand[0] != '2') {
                memcpy(code, cand, clen + 1);
                text = nexthop + clen;
                while (*text == ' ')
                    text++;
            }
        }
        if (*text == '\0')
            text = "mail for this destination is not accepted (transport_maps: error)";
        route_set(route, code[0] == '4' ? QMGR_ROUTE_DEFER : QMGR_ROUTE_ERROR, code, "");
        /* The text goes into log lines and DSNs: no control bytes, bounded. */
        for (size_t i = 0; text[i] != '\0' && i < 500; i++)
            strbuf_putc(&route->reason,
                        (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i]);
    } else {
        struct strbuf why = STRBUF_INIT;
        strbuf_puts(&why, "unknown mail transport \"");
        for (size_t i = 0; i < tlen && i < 40; i++)
            strbuf_putc(&why, (value[i] > 0x20 && value[i] < 0x7f) ? value[i] : '?');
        strbuf_puts(&why, "\"");
        route_set(route, QMGR_ROUTE_DEFER, "4.3.5", why.data);
        strbuf_release(&why);
    }
}

/* Open transport tables, reopened when transport_maps' text changes. */
static char *maps_text;
static char **maps_specs;
static struct dict **maps_dicts; /* NULL entry: not open yet (or failed; retried) */
static size_t maps_count;

static void maps_refresh(void)
{
    const char *text = config_str("transport_maps");

    if (maps_text != NULL && strcmp(maps_text, text) == 0)
        return;
    for (size_t i = 0; i < maps_count; i++)
        dict_close(&maps_dicts[i]);
    myfree(maps_dicts);
    config_list_free(&maps_specs);
    myfree(maps_text);
    maps_text = mystrdup(text);
    maps_specs = config_split_list(maps_text, &maps_count);
    maps_dicts = mycalloc(maps_count ? maps_count : 1, sizeof(*maps_dicts));
}

/* Look key up in the tables in order: FOUND (value), NOTFOUND or ERROR (err). */
static enum dict_result maps_lookup(const char *key, struct strbuf *value, struct strbuf *err)
{
    for (size_t i = 0; i < maps_count; i++) {
        if (maps_dicts[i] == NULL) {
            struct strbuf oerr = STRBUF_INIT;
            maps_dicts[i] = dict_open(maps_specs[i], &oerr);
            if (maps_dicts[i] == NULL) {
                strbuf_printf(err, "transport table %s: %s", maps_specs[i], strbuf_str(&oerr));
                strbuf_release(&oerr);
                return DICT_ERROR;
            }
            strbuf_release(&oerr);
        }
        enum dict_result r = dict_lookup(maps_dicts[i], key, value);
        if (r == DICT_ERROR) {
            strbuf_printf(err, "transport table %s: lookup error", maps_specs[i]);
            return DICT_ERROR;
        }
        if (r == DICT_FOUND)
            return DICT_FOUND;
    }
    return DICT_NOTFOUND;
}

void qmgr_resolve(const char *address, struct qmgr_route *route)
{
    struct strbuf err = STRBUF_INIT, domain = STRBUF_INIT, value = STRBUF_INIT;
    const char *at = strrchr(address, '@');
    enum dict_result found = DICT_NOTFOUND;

    route_reset(route);
    switch (recipient_classify(address, &err)) {
    case RECIPIENT_LOCAL:
    case RECIPIENT_UNKNOWN_USER:
        /* local answers 5.1.1 for unknown users; that is what makes the bounce. */
        route->kind = QMGR_ROUTE_LOCAL;
        goto out;
    case RECIPIENT_ERROR:
        route_set(route, QMGR_ROUTE_DEFER, "4.3.0", strbuf_str(&err));
        goto out;
    case RECIPIENT_REMOTE:
    default:
        break;
    }
    if (at != NULL)
        put_lower(&domain, at + 1, strlen(at + 1));
    while (domain.len > 0 && domain.data[domain.len - 1] == '.')
        strbuf_truncate(&domain, domain.len - 1);

    /* transport_maps: the domain, then ".parent" for each parent domain. */
    maps_refresh();
    if (maps_count > 0 && domain.len > 0) {
        found = maps_lookup(domain.data, &value, &err);
        for (const char *p = strchr(domain.data, '.'); found == DICT_NOTFOUND && p != NULL;
             p = strchr(p + 1, '.'))
            if (p[1] != '\0' && domain.data[0] != '[')
                found = maps_lookup(p, &value, &err);
    }
    if (found == DICT_ERROR) {
        msg_warn("%s", strbuf_str(&err));
        route_set(route, QMGR_ROUTE_DEFER, "4.3.0", strbuf_str(&err));
        goto out;
    }
    if (found != DICT_FOUND) {
        const char *relayhost = config_str("relayhost");
        strbuf_reset(&value);
        if (relayhost[0] != '\0')
            strbuf_printf(&value, "smtp:%s", relayhost);
        else
            strbuf_puts(&value, config_str("default_transport"));
    }
    qmgr_route_parse(value.data, domain.data != NULL ? domain.data : "", route);
    if (route->kind == QMGR_ROUTE_DEFER && strcmp(route->dsn, "4.3.5") == 0)
        msg_warn("%s: %s (from %s)", address, strbuf_str(&route->reason),
                 found == DICT_FOUND ? "transport_maps" : "relayhost/default_transport");
out:
    strbuf_release(&err);
    strbuf_release(&domain);
    strbuf_release(&value);
}

void qmgr_route_release(struct qmgr_route *route)
{
    strbuf_release(&route->nexthop);
    strbuf_release(&route->reason);
}
