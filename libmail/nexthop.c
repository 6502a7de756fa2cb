/* nexthop - parse qmgr's delivery destination (nexthop.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "nexthop.h"

#define IPV6_TAG "IPv6:"
#define IPV6_TAG_LEN 5
#define IPV6_TEXT_MAX 45 /* INET6_ADDRSTRLEN - 1 */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/*
 * Check the host name s[0..len) (a trailing dot allowed) and store it in
 * out->host, without the trailing dot when strip_dot. NULL or the error.
 */
static const char *name_store(const char *s, size_t len, bool strip_dot, struct nexthop *out)
{
    size_t name_len = len, label = 0;

    if (len > 0 && s[len - 1] == '.')
        name_len--;
    if (name_len == 0)
        return "empty host name";
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return "bad character in host name";
    if ((strip_dot ? name_len : len) > NEXTHOP_HOST_MAX)
        return "host name too long";
    for (size_t i = 0; i < name_len; i++) {
        if (s[i] != '.') {
            if (++label > NEXTHOP_LABEL_MAX)
                return "host name label too long";
            continue;
        }
        if (label == 0)
            return "empty label in host name";
        label = 0;
    }
    if (label == 0)
        return "empty label in host name";
    if (strip_dot)
        len = name_len;
    memcpy(out->host, s, len);
    out->host[len] = 0;
    return NULL;
}

/* "[...]" contents: an IPv6 or IPv4 literal, else a host name. NULL or the error. */
static const char *bracket_store(const char *s, size_t len, struct nexthop *out)
{
    bool tagged = len >= IPV6_TAG_LEN && strncasecmp(s, IPV6_TAG, IPV6_TAG_LEN) == 0;

    if (len == 0)
        return "empty host name";
    if (tagged || memchr(s, ':', len) != NULL) {
        struct in6_addr a6;
        if (tagged) {
            s += IPV6_TAG_LEN;
            len -= IPV6_TAG_LEN;
        }
        if (len == 0)
            return "empty IPv6 address literal";
        if (len > IPV6_TEXT_MAX)
            return "bad IPv6 address literal";
        memcpy(out->host, s, len);
        out->host[len] = 0;
        if (inet_pton(AF_INET6, out->host, &a6) != 1) {
            out->host[0] = 0;
            return "bad IPv6 address literal";
        }
        out->literal = true;
        return NULL;
    }
    const char *err = name_store(s, len, false, out);
    if (err == NULL) {
        struct in_addr a4;
        out->literal = inet_pton(AF_INET, out->host, &a4) == 1;
    }
    return err;
}

/* The text after "host:" or "]:". NULL or the error. */
static const char *port_parse(const char *p, int *port)
{
    size_t ndigits = 0;
    long value = 0;

    if (*p == 0)
        return "empty port";
    while (p[ndigits] >= '0' && p[ndigits] <= '9') {
        if (ndigits < 6)
            value = value * 10 + (p[ndigits] - '0');
        ndigits++;
    }
    if (ndigits == 0)
        return "port is not a number";
    if (p[ndigits] != 0)
        return "trailing garbage after port";
    if (ndigits > 5 || value < 1 || value > 65535)
        return "port out of range (1-65535)";
    *port = (int)value;
    return NULL;
}

int nexthop_parse(const char *text, int default_port, struct nexthop *out, const char **error_r)
{
    const char *err = NULL, *port = NULL;
    int port_value = default_port;

    memset(out, 0, sizeof(*out));
    out->port = default_port;
    if (text == NULL || *text == 0) {
        err = "empty nexthop";
    } else if (*text == '[') {
        const char *close = strchr(text + 1, ']');
        if (close == NULL)
            err = "missing ']'";
        else if (memchr(text + 1, '[', (size_t)(close - text - 1)) != NULL ||
                 strpbrk(close + 1, "[]") != NULL)
            err = "unbalanced brackets";
        else if (close[1] == ':')
            port = close + 2;
        else if (close[1] != 0)
            err = "trailing garbage after ']'";
        if (err == NULL)
            err = bracket_store(text + 1, (size_t)(close - text - 1), out);
    } else {
        size_t hlen = strcspn(text, ":");
        if (strpbrk(text, "[]") != NULL)
            err = "unbalanced brackets";
        else if (text[hlen] == ':')
            port = text + hlen + 1;
        if (err == NULL)
            err = name_store(text, hlen, true, out);
        out->mx = true;
    }
    if (err == NULL && port != NULL)
        err = port_parse(port, &port_value);
    if (err != NULL) {
        memset(out, 0, sizeof(*out));
        out->port = default_port;
        if (error_r != NULL)
            *error_r = err;
        return -1;
    }
    out->port = port_value;
    return 0;
}
