/*
 * deliver_request - decode qmgr's "deliver" request (see deliver_request.h).
 */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "deliver_request.h"
#include "mymalloc.h"
#include "queue.h"

/* The attributes that appear once, before the recipients. */
enum field { F_REQUEST, F_QUEUE_ID, F_SENDER, F_OFFSET, F_SIZE, F_NEXTHOP, F_COUNT };

static const struct {
    const char *name;
    enum deliver_request_result class;
    const char *missing;
    const char *twice;
    const char *nul;
} fields[F_COUNT] = {
    [F_REQUEST] = {"request", DELIVER_REQUEST_BAD_REQUEST, "missing request", "request given twice",
                   "NUL byte in request"},
    [F_QUEUE_ID] = {"queue_id", DELIVER_REQUEST_BAD_QUEUE_ID, "missing queue_id",
                    "queue_id given twice", "NUL byte in queue_id"},
    [F_SENDER] = {"sender", DELIVER_REQUEST_BAD_ENVELOPE, "missing sender", "sender given twice",
                  "NUL byte in sender"},
    [F_OFFSET] = {"offset", DELIVER_REQUEST_BAD_ENVELOPE, "missing offset", "offset given twice",
                  "NUL byte in offset"},
    [F_SIZE] = {"size", DELIVER_REQUEST_BAD_ENVELOPE, "missing size", "size given twice",
                "NUL byte in size"},
    [F_NEXTHOP] = {"nexthop", DELIVER_REQUEST_BAD_ENVELOPE, "missing nexthop",
                   "nexthop given twice", "NUL byte in nexthop"},
};

/* A decimal integer, optionally negative, digits only (what attr_list_add_int writes). */
static bool parse_decimal(const struct attr *a, long long *v_r)
{
    const char *p = a->value;
    size_t n = a->len, k = (n > 0 && p[0] == '-') ? 1 : 0;
    long long v = 0;

    if (k == n)
        return false;
    for (size_t i = k; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        int d = p[i] - '0';
        /* Accumulate negatively so LLONG_MIN fits; stop before overflow. */
        if (v < (LLONG_MIN + d) / 10)
            return false;
        v = v * 10 - d;
    }
    if (k == 0) {
        if (v == LLONG_MIN)
            return false;
        v = -v;
    }
    *v_r = v;
    return true;
}

static enum deliver_request_result fail(struct deliver_request *req,
                                        enum deliver_request_result class, const char *why,
                                        const char **error_r)
{
    myfree(req->rcpts);
    req->rcpts = NULL;
    req->nrcpts = 0;
    *error_r = why;
    return class;
}

/* A single field given twice or with a NUL inside: the error text, else NULL. */
static const char *single_error(const struct attr *const f[F_COUNT], const bool twice[F_COUNT],
                                int k)
{
    if (f[k] != NULL && memchr(f[k]->value, 0, f[k]->len) != NULL)
        return fields[k].nul;
    if (twice[k])
        return fields[k].twice;
    return NULL;
}

/* Values that go into headers and SMTP commands: no line breaks. */
static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static bool has_brackets(const char *s)
{
    return strpbrk(s, "<>") != NULL;
}

enum deliver_request_result deliver_request_decode(const struct attr_list *l, unsigned flags,
                                                   struct deliver_request *req,
                                                   const char **error_r)
{
    const struct attr *f[F_COUNT] = {NULL};
    bool twice[F_COUNT] = {false}, other_nul = false;
    size_t nindex = 0;

    memset(req, 0, sizeof(*req));

    /*
     * Collect the single fields. Their problems are reported in field order
     * below, so that queue_id is known for every error after its own.
     */
    for (size_t i = 0; i < l->count; i++) {
        const struct attr *a = &l->items[i];
        int k = 0;
        while (k < F_COUNT && strcmp(a->name, fields[k].name) != 0)
            k++;
        if (k < F_COUNT) {
            if (f[k] != NULL)
                twice[k] = true;
            else
                f[k] = a;
        } else if (strcmp(a->name, "index") == 0) {
            nindex++;
        } else if (strcmp(a->name, "rcpt") != 0 && strcmp(a->name, "orig") != 0 &&
                   memchr(a->value, 0, a->len) != NULL) {
            other_nul = true;
        }
    }
    const char *why;
    if ((why = single_error(f, twice, F_REQUEST)) != NULL)
        return fail(req, DELIVER_REQUEST_BAD_REQUEST, why, error_r);
    if (f[F_REQUEST] == NULL)
        return fail(req, DELIVER_REQUEST_BAD_REQUEST, fields[F_REQUEST].missing, error_r);
    if (strcmp(f[F_REQUEST]->value, "deliver") != 0)
        return fail(req, DELIVER_REQUEST_BAD_REQUEST, "unknown request", error_r);
    if ((why = single_error(f, twice, F_QUEUE_ID)) != NULL)
        return fail(req, DELIVER_REQUEST_BAD_QUEUE_ID, why, error_r);
    if (f[F_QUEUE_ID] == NULL)
        return fail(req, DELIVER_REQUEST_BAD_QUEUE_ID, fields[F_QUEUE_ID].missing, error_r);
    /* It names a file in active/: no "/", "..", or anything but base-32 digits. */
    if (!queue_id_valid(f[F_QUEUE_ID]->value))
        return fail(req, DELIVER_REQUEST_BAD_QUEUE_ID, "malformed queue_id", error_r);
    req->queue_id = f[F_QUEUE_ID]->value;
    for (int k = F_QUEUE_ID + 1; k < F_COUNT; k++)
        if ((why = single_error(f, twice, k)) != NULL)
            return fail(req, fields[k].class, why, error_r);
    if (other_nul)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "NUL byte in an attribute value", error_r);

    if (f[F_SENDER] == NULL)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, fields[F_SENDER].missing, error_r);
    req->sender = f[F_SENDER]->value;
    if (has_crlf(req->sender))
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "CR or LF in sender", error_r);
    if ((flags & DELIVER_REQUEST_NO_BRACKETS) && has_brackets(req->sender))
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "'<' or '>' in sender", error_r);

    if (f[F_OFFSET] == NULL)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, fields[F_OFFSET].missing, error_r);
    if (!parse_decimal(f[F_OFFSET], &req->offset))
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "offset is not a decimal number", error_r);
    if (req->offset < 0)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "negative offset", error_r);
    if (f[F_SIZE] == NULL)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, fields[F_SIZE].missing, error_r);
    if (!parse_decimal(f[F_SIZE], &req->size))
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "size is not a decimal number", error_r);
    if (req->size < 0)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "negative size", error_r);
    /* Both become off_t/size_t positions in the queue file. */
    if (req->offset > LLONG_MAX - req->size)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, "offset + size overflows", error_r);

    if (f[F_NEXTHOP] != NULL)
        req->nexthop = f[F_NEXTHOP]->value;
    else if (flags & DELIVER_REQUEST_NEXTHOP)
        return fail(req, DELIVER_REQUEST_BAD_ENVELOPE, fields[F_NEXTHOP].missing, error_r);

    /* The recipients: "index" starts one, "rcpt" and "orig" belong to the last one. */
    if (nindex == 0)
        return fail(req, DELIVER_REQUEST_BAD_RCPTS, "no recipients", error_r);
    req->rcpts = mycalloc(nindex, sizeof(*req->rcpts));
    struct deliver_rcpt *cur = NULL;
    for (size_t i = 0; i < l->count; i++) {
        const struct attr *a = &l->items[i];
        bool is_rcpt = strcmp(a->name, "rcpt") == 0, is_orig = strcmp(a->name, "orig") == 0;
        if (strcmp(a->name, "index") == 0) {
            if (cur != NULL && cur->rcpt == NULL)
                return fail(req, DELIVER_REQUEST_BAD_RCPTS, "recipient without rcpt", error_r);
            cur = &req->rcpts[req->nrcpts++];
            if (memchr(a->value, 0, a->len) != NULL)
                return fail(req, DELIVER_REQUEST_BAD_RCPTS, "NUL byte in index", error_r);
            if (!parse_decimal(a, &cur->index))
                return fail(req, DELIVER_REQUEST_BAD_RCPTS, "index is not a decimal number",
                            error_r);
            if (cur->index < 0)
                return fail(req, DELIVER_REQUEST_BAD_RCPTS, "negative index", error_r);
        } else if (is_rcpt || is_orig) {
            if (cur == NULL)
                return fail(req, DELIVER_REQUEST_BAD_RCPTS,
                            is_rcpt ? "rcpt before the first index" : "orig before the first index",
                            error_r);
            if (memchr(a->value, 0, a->len) != NULL)
                return fail(req, DELIVER_REQUEST_BAD_RCPTS,
                            is_rcpt ? "NUL byte in rcpt" : "NUL byte in orig", error_r);
            if (has_crlf(a->value))
                return fail(req, DELIVER_REQUEST_BAD_RCPTS,
                            is_rcpt ? "CR or LF in rcpt" : "CR or LF in orig", error_r);
            if (is_rcpt) {
                if (cur->rcpt != NULL)
                    return fail(req, DELIVER_REQUEST_BAD_RCPTS, "rcpt given twice for a recipient",
                                error_r);
                if (a->len == 0)
                    return fail(req, DELIVER_REQUEST_BAD_RCPTS, "empty rcpt", error_r);
                if ((flags & DELIVER_REQUEST_NO_BRACKETS) && has_brackets(a->value))
                    return fail(req, DELIVER_REQUEST_BAD_RCPTS, "'<' or '>' in rcpt", error_r);
                cur->rcpt = a->value;
            } else {
                if (cur->orig != NULL)
                    return fail(req, DELIVER_REQUEST_BAD_RCPTS, "orig given twice for a recipient",
                                error_r);
                cur->orig = a->value;
            }
        }
    }
    if (cur == NULL || cur->rcpt == NULL)
        return fail(req, DELIVER_REQUEST_BAD_RCPTS, "recipient without rcpt", error_r);
    *error_r = NULL;
    return DELIVER_REQUEST_OK;
}

void deliver_request_release(struct deliver_request *req)
{
    myfree(req->rcpts);
    req->rcpts = NULL;
    req->nrcpts = 0;
}
