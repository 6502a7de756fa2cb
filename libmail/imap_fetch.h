/*
 * imap_fetch - the FETCH attribute list (RFC 3501 §6.4.5, RFC 9051 §6.4.5,
 * RFC 3516 BINARY, RFC 7162 §3.1.4 CHANGEDSINCE and §3.2.6 VANISHED).
 *
 * Used by imapd/fetch.c. imap_fetch_parse reads, on H6a's tokenizer, what
 * follows "FETCH <set>": one attribute, a macro (ALL, FAST, FULL) or a
 * parenthesised list, then optional fetch modifiers, then the line end. It
 * is pure, so unit tests and the fuzz target reach it without a socket.
 *
 * Memory: the request and its strings are allocated; the caller frees
 * them with imap_fetch_free. Error texts in *error_r are static.
 */
#ifndef TEGAMI_IMAP_FETCH_H
#define TEGAMI_IMAP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
#include "strbuf.h"

/* Part numbers in a section ("1.2.3"): deeper is refused. */
#define IMAP_FETCH_MAX_PART_DEPTH 32
/* Attributes in one FETCH and fields in one HEADER.FIELDS list. */
#define IMAP_FETCH_MAX_ITEMS 100
#define IMAP_FETCH_MAX_FIELDS 200

enum imap_fetch_att {
    IFA_FLAGS,
    IFA_INTERNALDATE,
    IFA_RFC822_SIZE,
    IFA_UID,
    IFA_ENVELOPE,
    IFA_BODYSTRUCTURE,
    IFA_BODY,    /* the non-extensible BODYSTRUCTURE */
    IFA_MODSEQ,  /* RFC 7162 */
    IFA_SECTION, /* BODY[...], BINARY[...], RFC822, RFC822.HEADER, RFC822.TEXT */
    IFA_BINARY_SIZE,
};

enum imap_fetch_spec {
    IFS_ALL, /* BODY[] or BODY[1.2]: the whole message or part */
    IFS_HEADER,
    IFS_HEADER_FIELDS,
    IFS_HEADER_FIELDS_NOT,
    IFS_TEXT,
    IFS_MIME,
};

/* How the item is named in the reply. */
enum imap_fetch_form {
    IFF_BODY,          /* BODY[...] */
    IFF_BINARY,        /* BINARY[...] */
    IFF_RFC822,        /* RFC822 = BODY[] */
    IFF_RFC822_HEADER, /* = BODY.PEEK[HEADER] */
    IFF_RFC822_TEXT,   /* = BODY[TEXT] */
};

struct imap_fetch_item {
    enum imap_fetch_att att;
    /* IFA_SECTION / IFA_BINARY_SIZE: */
    enum imap_fetch_form form;
    enum imap_fetch_spec spec;
    uint32_t part[IMAP_FETCH_MAX_PART_DEPTH];
    size_t nparts;
    char **fields; /* HEADER.FIELDS (NOT): names as given (ASCII) */
    size_t nfields;
    bool peek; /* BODY.PEEK / BINARY.PEEK / RFC822.HEADER: does not set \Seen */
    bool partial;
    uint64_t offset, count; /* <offset.count> */
};

struct imap_fetch_request {
    struct imap_fetch_item *items;
    size_t nitems;
    unsigned atts;     /* bit (1u << enum imap_fetch_att) for each attribute asked for */
    bool sets_seen;    /* some body item without PEEK */
    bool changedsince; /* CHANGEDSINCE given (implies MODSEQ) */
    uint64_t modseq;   /* its value */
    bool vanished;     /* VANISHED modifier (UID FETCH with QRESYNC only) */
};

/*
 * Parse after "FETCH <set>" (p is at the SP before the attributes) up to and
 * including the line end. Returns true with *req_r, or false with a reason
 * for a tagged BAD.
 */
bool imap_fetch_parse(struct imap_parser *p, struct imap_fetch_request **req_r,
                      const char **error_r);
void imap_fetch_free(struct imap_fetch_request **reqp);

/* Append the reply name of a section item: "BODY[1.2.HEADER.FIELDS (A B)]<5>". */
void imap_fetch_item_name(const struct imap_fetch_item *it, struct strbuf *out);

/* Content-Transfer-Encoding (RFC 2045 §6) for BINARY[] (RFC 3516). */
enum imap_cte { IMAP_CTE_IDENTITY, IMAP_CTE_BASE64, IMAP_CTE_QP, IMAP_CTE_UNKNOWN };
/*
 * The encoding named by the Content-Transfer-Encoding field of a header
 * block (LF or CRLF lines); IDENTITY when absent or 7bit/8bit/binary,
 * UNKNOWN for anything else (the caller answers NO [UNKNOWN-CTE]).
 */
enum imap_cte imap_fetch_cte(const char *hdr, size_t len);
/*
 * Append the decoded form of len bytes (CRLF text) to out. Tolerant like
 * mail readers: base64 skips characters outside its alphabet and stops at
 * '='; quoted-printable removes soft line breaks and keeps a malformed
 * "=XY" as it is. IDENTITY and UNKNOWN copy.
 */
void imap_fetch_decode(enum imap_cte cte, const char *in, size_t len, struct strbuf *out);

#endif
