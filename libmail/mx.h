/*
 * mx - choose the hosts to try for a domain from its MX records (RFC 5321 §5.1).
 *
 * A pure function: the caller looks the MX records up (dns.h) and passes
 * them in with this host's own names; mx_select() orders them (lowest
 * preference first, random order among equal preferences) and decides the
 * special cases: no MX records (the domain itself is the implicit MX), a
 * null MX (RFC 7505: a single MX "." with preference 0, the domain accepts no
 * mail), and an MX list naming this host (only hosts with a lower preference
 * than this host are used; none left is a mail loop).
 *
 * The output points at the caller's strings (input hosts or the domain); the
 * caller owns all memory.
 */
#ifndef TEGAMI_MX_H
#define TEGAMI_MX_H

#include <stddef.h>
#include <stdint.h>

#define MX_SELECT_MAX 1024 /* more records than this is malformed input */

struct mx_record {
    uint16_t pref;
    const char *host; /* "" or "." is the root (null MX); a trailing dot is ignored */
};

enum mx_result {
    MX_SELECT_OK,      /* out_r holds *count_r >= 1 hosts in the order to try */
    MX_SELECT_NULL_MX, /* RFC 7505: bounce at once */
    MX_SELECT_LOOP,    /* the best MX is this host: bounce as a mail loop */
    MX_SELECT_INVALID, /* bad arguments (empty domain, NULL host, too many records) */
};

/* Random source: a uniformly random number in [0, bound), bound >= 1. */
typedef uint32_t (*mx_random_fn)(void *ctx, uint32_t bound);

/*
 * Select the hosts to try. records/count: the domain's MX records (count 0 =
 * none: the domain itself is used). self/nself: this host's own names
 * (myhostname, and any address literals or other names it is known by),
 * compared without case and trailing dot. out_r has room for max(count, 1)
 * records. rnd NULL uses arc4random_uniform().
 */
enum mx_result mx_select(const char *domain, const struct mx_record *records, size_t count,
                         const char *const *self, size_t nself, mx_random_fn rnd, void *rnd_ctx,
                         struct mx_record *out_r, size_t *count_r);

const char *mx_result_str(enum mx_result result);

#endif
