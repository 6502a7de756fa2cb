/*
 * anvil_table - per-client connection bookkeeping (see anvil_table.h).
 *
 * A chained hash table over (service, address) with a seeded FNV-1a hash
 * (a peer chooses its address, so the seed keeps bucket collisions out of
 * its hands), plus a doubly linked list in order of last use: the oldest
 * entries sit at the head, so expiry and eviction look at the head first.
 */
#include "anvil_table.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mymalloc.h"

struct anvil_entry {
    struct anvil_entry *hnext;       /* hash chain */
    struct anvil_entry *prev, *next; /* use order, oldest first */
    char *service;
    char *addr;
    uint32_t hash;
    unsigned count;           /* connections open now */
    unsigned rate;            /* connections opened in this window */
    time_t window_start;      /* start of the rate window */
    time_t last;              /* last connect, disconnect or authentication failure */
    unsigned auth_failures;   /* authentication failures in this auth window */
    time_t auth_window_start; /* start of the auth window (0 failures: unused) */
};

struct anvil_table {
    struct anvil_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t size;
    size_t max;
    time_t unit;
    uint32_t seed;
    struct anvil_entry *head, *tail;
};

static uint32_t anvil_hash(uint32_t seed, const char *service, const char *addr)
{
    uint32_t h = 2166136261u ^ seed;
    for (const unsigned char *p = (const unsigned char *)service; *p; p++)
        h = (h ^ *p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u; /* separator: "ab"+"c" differs from "a"+"bc" */
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

struct anvil_table *anvil_table_create(size_t max_clients, time_t unit)
{
    struct anvil_table *t = mycalloc(1, sizeof(*t));
    t->max = max_clients ? max_clients : 1;
    t->unit = unit > 0 ? unit : 1;
    t->nbuckets = 64;
    /* About two entries per bucket when full; capped so a huge limit does not allocate up front. */
    while (t->nbuckets < t->max / 2 && t->nbuckets < ((size_t)1 << 20))
        t->nbuckets <<= 1;
    t->buckets = mycalloc(t->nbuckets, sizeof(*t->buckets));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t->seed = (uint32_t)ts.tv_nsec ^ ((uint32_t)ts.tv_sec << 7) ^ ((uint32_t)getpid() << 16) ^
              (uint32_t)(uintptr_t)t;
    return t;
}

static void list_unlink(struct anvil_table *t, struct anvil_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_append(struct anvil_table *t, struct anvil_entry *e)
{
    e->prev = t->tail;
    e->next = NULL;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
}

static void entry_remove(struct anvil_table *t, struct anvil_entry *e)
{
    struct anvil_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == NULL)
        msg_panic("anvil_table: entry not in its bucket");
    *pp = e->hnext;
    list_unlink(t, e);
    myfree(e->service);
    myfree(e->addr);
    myfree(e);
    t->size--;
}

void anvil_table_free(struct anvil_table **tp)
{
    struct anvil_table *t = *tp;
    if (t == NULL)
        return;
    struct anvil_entry *e = t->head;
    while (e) {
        struct anvil_entry *next = e->next;
        myfree(e->service);
        myfree(e->addr);
        myfree(e);
        e = next;
    }
    myfree(t->buckets);
    myfree(t);
    *tp = NULL;
}

static struct anvil_entry *entry_find(const struct anvil_table *t, const char *service,
                                      const char *addr, uint32_t h)
{
    for (struct anvil_entry *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->addr, addr) == 0 && strcmp(e->service, service) == 0)
            return e;
    return NULL;
}

/* Start a new rate window when the current one ran out. */
static void window_roll(const struct anvil_table *t, struct anvil_entry *e, time_t now)
{
    if (now < e->window_start || now - e->window_start >= t->unit) {
        e->window_start = now;
        e->rate = 0;
    }
}

static void touch(struct anvil_table *t, struct anvil_entry *e, time_t now)
{
    e->last = now;
    if (t->tail != e) {
        list_unlink(t, e);
        list_append(t, e);
    }
}

size_t anvil_table_expire(struct anvil_table *t, time_t now)
{
    size_t removed = 0;
    struct anvil_entry *e = t->head;
    while (e) {
        struct anvil_entry *next = e->next;
        if (e->count == 0) {
            /* Use order = order of last: the first idle entry still fresh ends the walk. */
            if (now >= e->last && now - e->last < t->unit)
                break;
            entry_remove(t, e);
            removed++;
        }
        e = next;
    }
    return removed;
}

/* Make room for one more entry: expire, else drop the oldest idle entry. */
static bool make_room(struct anvil_table *t, time_t now)
{
    if (t->size < t->max)
        return true;
    anvil_table_expire(t, now);
    if (t->size < t->max)
        return true;
    for (struct anvil_entry *e = t->head; e; e = e->next) {
        if (e->count == 0) {
            entry_remove(t, e);
            return true;
        }
    }
    return false;
}

/* The entry for (service, addr), created when missing; NULL when the table is full. */
static struct anvil_entry *entry_get(struct anvil_table *t, const char *service, const char *addr,
                                     time_t now)
{
    uint32_t h = anvil_hash(t->seed, service, addr);
    struct anvil_entry *e = entry_find(t, service, addr, h);
    if (e != NULL)
        return e;
    if (!make_room(t, now))
        return NULL;
    e = mycalloc(1, sizeof(*e));
    e->service = mystrdup(service);
    e->addr = mystrdup(addr);
    e->hash = h;
    e->window_start = now;
    e->auth_window_start = now;
    size_t b = h & (t->nbuckets - 1);
    e->hnext = t->buckets[b];
    t->buckets[b] = e;
    list_append(t, e);
    t->size++;
    return e;
}

enum anvil_table_result anvil_table_connect(struct anvil_table *t, const char *service,
                                            const char *addr, time_t now, unsigned *count_r,
                                            unsigned *rate_r)
{
    *count_r = 0;
    *rate_r = 0;
    struct anvil_entry *e = entry_get(t, service, addr, now);
    if (e == NULL)
        return ANVIL_TABLE_FULL;
    window_roll(t, e, now);
    if (e->count < UINT_MAX)
        e->count++;
    if (e->rate < UINT_MAX)
        e->rate++;
    touch(t, e, now);
    *count_r = e->count;
    *rate_r = e->rate;
    return ANVIL_TABLE_OK;
}

/* An auth window that ran out (or a clock that went back) reads as no failures. */
static bool auth_window_over(const struct anvil_table *t, const struct anvil_entry *e, time_t now)
{
    return now < e->auth_window_start || now - e->auth_window_start >= t->unit;
}

enum anvil_table_result anvil_table_auth_fail(struct anvil_table *t, const char *service,
                                              const char *addr, time_t now, unsigned *failures_r)
{
    *failures_r = 0;
    struct anvil_entry *e = entry_get(t, service, addr, now);
    if (e == NULL)
        return ANVIL_TABLE_FULL;
    if (e->auth_failures == 0 || auth_window_over(t, e, now)) {
        e->auth_window_start = now;
        e->auth_failures = 0;
    }
    if (e->auth_failures < UINT_MAX)
        e->auth_failures++;
    /* Touched: the entry (and so the count) lives at least one unit after the last failure. */
    touch(t, e, now);
    *failures_r = e->auth_failures;
    return ANVIL_TABLE_OK;
}

enum anvil_table_result anvil_table_auth_failures(struct anvil_table *t, const char *service,
                                                  const char *addr, time_t now,
                                                  unsigned *failures_r)
{
    struct anvil_entry *e = entry_find(t, service, addr, anvil_hash(t->seed, service, addr));
    *failures_r = 0;
    if (e == NULL)
        return ANVIL_TABLE_UNKNOWN;
    if (!auth_window_over(t, e, now))
        *failures_r = e->auth_failures;
    return ANVIL_TABLE_OK;
}

enum anvil_table_result anvil_table_disconnect(struct anvil_table *t, const char *service,
                                               const char *addr, time_t now)
{
    struct anvil_entry *e = entry_find(t, service, addr, anvil_hash(t->seed, service, addr));
    if (e == NULL)
        return ANVIL_TABLE_UNKNOWN;
    if (e->count > 0)
        e->count--;
    touch(t, e, now);
    return ANVIL_TABLE_OK;
}

enum anvil_table_result anvil_table_lookup(struct anvil_table *t, const char *service,
                                           const char *addr, time_t now, unsigned *count_r,
                                           unsigned *rate_r)
{
    struct anvil_entry *e = entry_find(t, service, addr, anvil_hash(t->seed, service, addr));
    *count_r = 0;
    *rate_r = 0;
    if (e == NULL)
        return ANVIL_TABLE_UNKNOWN;
    *count_r = e->count;
    /* An expired window reads as 0 without being reset here. */
    *rate_r = (now < e->window_start || now - e->window_start >= t->unit) ? 0 : e->rate;
    return ANVIL_TABLE_OK;
}

size_t anvil_table_size(const struct anvil_table *t)
{
    return t->size;
}

/* A service name or client address: 1..ANVIL_NAME_MAX printable bytes, no space. */
static const char *name_value(const struct attr_list *req, const char *name, const char **why_r)
{
    for (size_t i = 0; i < req->count; i++) {
        const struct attr *a = &req->items[i];
        if (strcmp(a->name, name) != 0)
            continue;
        if (a->len == 0 || a->len > ANVIL_NAME_MAX) {
            *why_r = "bad length";
            return NULL;
        }
        for (size_t j = 0; j < a->len; j++) {
            unsigned char c = (unsigned char)a->value[j];
            if (c <= ' ' || c >= 0x7f) {
                *why_r = "bad character";
                return NULL;
            }
        }
        return a->value;
    }
    *why_r = "missing";
    return NULL;
}

static const char *result_text(enum anvil_table_result r)
{
    switch (r) {
    case ANVIL_TABLE_OK:
        return "ok";
    case ANVIL_TABLE_FULL:
        return "full";
    case ANVIL_TABLE_UNKNOWN:
        return "unknown";
    }
    return "error";
}

static char *opens_key(const char *service, const char *addr)
{
    size_t ls = strlen(service), la = strlen(addr);
    char *k = mymalloc(ls + la + 2);
    memcpy(k, service, ls);
    k[ls] = ' ';
    memcpy(k + ls + 1, addr, la + 1);
    return k;
}

static bool opens_remove(struct anvil_opens *o, const char *key)
{
    for (size_t i = 0; i < o->count; i++) {
        if (strcmp(o->keys[i], key) == 0) {
            myfree(o->keys[i]);
            o->keys[i] = o->keys[--o->count];
            return true;
        }
    }
    return false;
}

bool anvil_table_request(struct anvil_table *t, struct anvil_opens *opens,
                         const struct attr_list *req, time_t now, struct attr_list *reply)
{
    const char *why = NULL;
    unsigned count = 0, rate = 0, failures = 0;
    enum anvil_table_result r;

    attr_list_reset(reply);
    const char *request = attr_list_get(req, "request");
    if (request == NULL) {
        attr_list_add_str(reply, "status", "error");
        attr_list_add_str(reply, "reason", "no request attribute");
        return false;
    }
    bool is_connect = strcmp(request, "connect") == 0;
    bool is_disconnect = strcmp(request, "disconnect") == 0;
    bool is_lookup = strcmp(request, "lookup") == 0;
    bool is_auth_fail = strcmp(request, "auth_fail") == 0;
    if (!is_connect && !is_disconnect && !is_lookup && !is_auth_fail) {
        /* Well-formed but not ours: answer, keep the connection. */
        attr_list_add_str(reply, "status", "error");
        attr_list_add_str(reply, "reason", "unknown request");
        return true;
    }
    const char *service = name_value(req, "service", &why);
    if (service == NULL) {
        attr_list_add_str(reply, "status", "error");
        attr_list_addf(reply, "reason", "service: %s", why);
        return false;
    }
    const char *addr = name_value(req, "client", &why);
    if (addr == NULL) {
        attr_list_add_str(reply, "status", "error");
        attr_list_addf(reply, "reason", "client: %s", why);
        return false;
    }
    if (is_connect) {
        if (opens->count >= opens->max) {
            r = ANVIL_TABLE_FULL;
        } else {
            r = anvil_table_connect(t, service, addr, now, &count, &rate);
            if (r == ANVIL_TABLE_OK) {
                if (opens->count == opens->cap) {
                    opens->cap = opens->cap ? opens->cap * 2 : 4;
                    opens->keys = myreallocarray(opens->keys, opens->cap, sizeof(*opens->keys));
                }
                opens->keys[opens->count++] = opens_key(service, addr);
            }
        }
    } else if (is_disconnect) {
        char *key = opens_key(service, addr);
        /* Only what this client opened: one client cannot close another's connections. */
        r = opens_remove(opens, key) ? anvil_table_disconnect(t, service, addr, now)
                                     : ANVIL_TABLE_UNKNOWN;
        myfree(key);
    } else if (is_auth_fail) {
        r = anvil_table_auth_fail(t, service, addr, now, &failures);
    } else {
        r = anvil_table_lookup(t, service, addr, now, &count, &rate);
        (void)anvil_table_auth_failures(t, service, addr, now, &failures);
    }
    attr_list_add_str(reply, "status", result_text(r));
    if (is_connect || is_lookup) {
        attr_list_add_int(reply, "count", count);
        attr_list_add_int(reply, "rate", rate);
    }
    if (is_lookup || is_auth_fail)
        attr_list_add_int(reply, "auth_failures", failures);
    return true;
}

void anvil_table_close(struct anvil_table *t, struct anvil_opens *opens, time_t now)
{
    for (size_t i = 0; i < opens->count; i++) {
        char *sp = strchr(opens->keys[i], ' ');
        if (sp) {
            *sp = '\0';
            (void)anvil_table_disconnect(t, opens->keys[i], sp + 1, now);
        }
        myfree(opens->keys[i]);
    }
    myfree(opens->keys);
    opens->keys = NULL;
    opens->count = opens->cap = 0;
}
