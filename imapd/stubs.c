/*
 * stubs - weak stand-ins for the handlers of fetch.c, store.c, search.c and
 * copy.c, so imapd links before those exist. A strong definition in those
 * files replaces each one at link time; until then the command answers NO.
 */
#include "imapd.h"

#define WEAK __attribute__((weak))

static void not_implemented(struct imap_session *s, const char *tag)
{
    imapd_no(s, tag, "Not implemented");
}

WEAK void imapd_cmd_fetch(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid)
{
    (void)p;
    (void)uid;
    not_implemented(s, tag);
}

WEAK void imapd_cmd_store(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid)
{
    (void)p;
    (void)uid;
    not_implemented(s, tag);
}

WEAK void imapd_cmd_search(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid)
{
    (void)p;
    (void)uid;
    not_implemented(s, tag);
}

WEAK void imapd_cmd_copy(struct imap_session *s, const char *tag, struct imap_parser *p, bool uid,
                         bool move)
{
    (void)p;
    (void)uid;
    (void)move;
    not_implemented(s, tag);
}

WEAK void imapd_cmd_uid_expunge(struct imap_session *s, const char *tag, struct imap_parser *p)
{
    (void)p;
    not_implemented(s, tag);
}
