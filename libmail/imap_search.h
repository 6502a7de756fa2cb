/*
 * imap_search - the IMAP SEARCH program (RFC 3501 §6.4.4, RFC 9051 §6.4.4,
 * RFC 7162 §3.1.5 MODSEQ, RFC 4731 / RFC 9051 ESEARCH RETURN options):
 * parsing into a small tree, and evaluating it against one message at a
 * time through callbacks.
 *
 * Used by imapd/search.c. Parsing works on H6a's command tokenizer
 * (imap_parse.h) and is pure, so unit tests and the fuzz target reach it
 * without a socket. Evaluation asks the caller only for what a key needs
 * (flags and sizes are plain fields; headers, body text and the sent date
 * go through callbacks the caller may compute lazily and cache).
 *
 * Memory: imap_search_parse allocates the program; the caller frees it
 * with imap_search_free. Error texts returned through *error_r are static.
 */
#ifndef TEGAMI_IMAP_SEARCH_H
#define TEGAMI_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap_parse.h"
#include "strbuf.h"

/* NOT/OR/parenthesis nesting bound: deeper programs are refused (BAD). */
#define IMAP_SEARCH_MAX_DEPTH 32
/* Keys per program: bounds evaluation cost per message. */
#define IMAP_SEARCH_MAX_KEYS 1000

enum imap_search_key {
    ISK_AND, /* children: every one (the implicit list, parentheses) */
    ISK_OR,  /* children: exactly two */
    ISK_NOT, /* children: exactly one */
    ISK_ALL,
    ISK_SEQSET, /* ranges: message sequence numbers */
    ISK_UIDSET, /* ranges: UIDs */
    ISK_FLAG,   /* flag bit set (arg.flag); negated keys use ISK_NOT */
    ISK_KEYWORD,
    ISK_NEW,    /* RECENT and not SEEN */
    ISK_OLD,    /* not RECENT */
    ISK_BEFORE, /* internal date, compared as days */
    ISK_ON,
    ISK_SINCE,
    ISK_SENTBEFORE, /* Date: header */
    ISK_SENTON,
    ISK_SENTSINCE,
    ISK_LARGER, /* RFC822.SIZE */
    ISK_SMALLER,
    ISK_HEADER, /* field name (empty: any field with the value) + value */
    ISK_BODY,
    ISK_TEXT,
    ISK_MODSEQ,
};

/* Flag bits (match the index's system flag bits through imapd/search.c). */
#define IMAP_SF_SEEN 0x01u
#define IMAP_SF_ANSWERED 0x02u
#define IMAP_SF_FLAGGED 0x04u
#define IMAP_SF_DELETED 0x08u
#define IMAP_SF_DRAFT 0x10u
#define IMAP_SF_RECENT 0x20u

struct imap_search_node {
    enum imap_search_key key;
    uint32_t flag; /* ISK_FLAG */
    char *str;     /* KEYWORD, HEADER field (lowercase), BODY/TEXT needle */
    char *value;   /* HEADER value */
    long long day; /* date keys: days since 1970-01-01 */
    uint64_t num;  /* LARGER/SMALLER size, MODSEQ value */
    struct imap_seq_range *ranges;
    size_t nranges;
    size_t *children; /* indexes into prog->nodes */
    size_t nchildren;
};

/* RETURN options of ESEARCH (RFC 4731 §3.1, RFC 9051 §6.4.4). */
#define IMAP_SEARCH_RET_MIN 0x01u
#define IMAP_SEARCH_RET_MAX 0x02u
#define IMAP_SEARCH_RET_ALL 0x04u
#define IMAP_SEARCH_RET_COUNT 0x08u
#define IMAP_SEARCH_RET_SAVE 0x10u

struct imap_search_program {
    struct imap_search_node *nodes; /* nodes[0] is the root (an ISK_AND) */
    size_t nnodes;
    bool esearch;      /* a RETURN (...) was given: answer ESEARCH */
    unsigned ret;      /* IMAP_SEARCH_RET_*; RETURN () means ALL */
    bool charset_utf8; /* CHARSET given (UTF-8 or US-ASCII) */
    bool uses_modseq;  /* a MODSEQ key: the reply carries (MODSEQ n) */
    bool needs_header; /* some key reads headers or the Date: */
    bool needs_body;   /* some key reads the body text */
};

enum imap_search_parse_result {
    IMAP_SEARCH_OK = 0,
    IMAP_SEARCH_BAD = -1,        /* syntax error: tagged BAD with *error_r */
    IMAP_SEARCH_BADCHARSET = -2, /* tagged NO [BADCHARSET (UTF-8 US-ASCII)] *error_r */
};

/*
 * Parse the rest of a SEARCH command from p (after "SEARCH" / "UID SEARCH"),
 * up to the end of the line. allow_return: accept RETURN (...) (ESEARCH
 * advertised or IMAP4rev2). On success *prog_r is the program.
 */
enum imap_search_parse_result imap_search_parse(struct imap_parser *p, bool allow_return,
                                                struct imap_search_program **prog_r,
                                                const char **error_r);
void imap_search_free(struct imap_search_program **progp);

/* What the evaluator knows about one message. */
struct imap_search_msg {
    uint32_t seq, uid;
    uint32_t max_seq, max_uid; /* what "*" means in this view */
    uint32_t flags;            /* IMAP_SF_* */
    uint64_t size;             /* RFC822.SIZE */
    uint64_t modseq;
    time_t internaldate;
    /* Keyword set on this message? (exact, case-insensitive per RFC 9051) */
    bool (*has_keyword)(void *ctx, const char *kw);
    /*
     * Decoded (UTF-8) values of the header field name (lowercase), each
     * value followed by a NUL-free separator; name "" = every header line.
     * Return false when the message cannot be read (the key fails).
     */
    bool (*header)(void *ctx, const char *name, struct strbuf *out);
    /* Decoded body text (UTF-8). */
    bool (*body)(void *ctx, struct strbuf *out);
    /* The Date: header as days since 1970-01-01 in its own zone; false if none. */
    bool (*sent_day)(void *ctx, long long *day_r);
    void *ctx;
};

/* Does the message match the program? */
bool imap_search_match(const struct imap_search_program *prog, const struct imap_search_msg *m);

/* Is seq within ranges, with "*" meaning max? */
bool imap_seq_ranges_contain(const struct imap_seq_range *r, size_t n, uint32_t v, uint32_t max);

/*
 * Case-insensitive substring match of UTF-8 needle in UTF-8 hay (RFC 3501
 * §6.4.4: case-insensitive; Latin, Greek and Cyrillic letters fold; invalid
 * bytes compare as themselves). An empty needle matches.
 */
bool imap_search_text_contains(const char *hay, size_t hay_len, const char *needle,
                               size_t needle_len);

/* Parse an IMAP date "1-Feb-1994" / "01-Feb-1994" into days since 1970-01-01. */
bool imap_search_parse_date(const char *s, size_t len, long long *day_r);
/* Days since 1970-01-01 of the civil date y-m-d (proleptic Gregorian). */
long long imap_days_from_civil(long long y, unsigned m, unsigned d);

#endif
