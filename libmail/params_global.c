/*
 * Global parameters: used by more than one program. Name, type, default,
 * bounds, one-line doc (docs/config-global.md).
 *
 * Three defaults are computed by config.c rather than written here:
 * config_directory (the directory in effect), myhostname (gethostname(2))
 * and mydomain (myhostname minus its first label, "localdomain" when it has
 * only one). Their def text below is what the docs show.
 */
#include "config.h"

#define KIB 1024LL
#define DAY (24LL * 3600)

const struct config_param params_global[] = {
    {"config_directory", CONFIG_STR, "/etc/tegami", 0, 0,
     "the configuration directory in effect (-c DIR, $MAIL_CONFIG or /etc/tegami); read-only"},
    {"sandbox", CONFIG_BOOL, "no", 0, 0,
     "yes: a self-contained instance run by an ordinary user (no privilege changes)"},
    {"myhostname", CONFIG_STR, "(the host name)", 0, 0,
     "this host's fully qualified name, used in greetings, Received headers and bounces"},
    {"mydomain", CONFIG_STR, "(myhostname minus its first label)", 0, 0, "this host's domain"},
    {"myorigin", CONFIG_STR, "$myhostname", 0, 0,
     "domain appended to unqualified addresses of locally submitted mail"},
    {"mydestination", CONFIG_LIST, "$myhostname, localhost.$mydomain, localhost", 0, 0,
     "domains delivered locally (users in virtual_user_maps and aliases)"},
    {"mynetworks", CONFIG_LIST, "127.0.0.0/8, [::1]/128", 0, 0,
     "trusted client networks that may relay; an empty value trusts nothing"},
    {"queue_directory", CONFIG_STR, "/var/spool/tegami", 0, 0,
     "root of the mail queue (maildrop, incoming, active, deferred, hold, ...)"},
    {"daemon_directory", CONFIG_STR, "/usr/libexec/tegami", 0, 0,
     "directory holding the daemon programs that master starts"},
    {"data_directory", CONFIG_STR, "/var/lib/tegami", 0, 0,
     "directory for writable state that is not queue (caches, locks)"},
    {"mail_owner", CONFIG_STR, "tegami", 0, 0,
     "unprivileged account the daemons run as and that owns queue and Maildirs"},
    {"virtual_mailbox_base", CONFIG_STR, "/var/mail/tegami", 0, 0,
     "base directory of virtual users' Maildirs: <base>/<user>/Maildir/"},
    {"virtual_user_maps", CONFIG_STR, "hash:$config_directory/users", 0, 0,
     "lookup table of virtual users (name -> password hash)"},
    {"alias_maps", CONFIG_LIST, "hash:$config_directory/aliases", 0, 0,
     "alias tables that local consults"},
    {"alias_database", CONFIG_LIST, "$alias_maps", 0, 0, "alias tables that newaliases rebuilds"},
    {"recipient_delimiter", CONFIG_STR, "+", 0, 0,
     "separator between user name and address extension (user+ext); empty disables"},
    {"maillog_file", CONFIG_STR, "", 0, 0,
     "log file written by every program; empty means syslog (facility mail)"},
    {"message_size_limit", CONFIG_SIZE, "10240000", 0, 4096 * KIB *KIB,
     "largest accepted message in bytes (envelope + content); 0 means no limit"},
    {"default_process_limit", CONFIG_INT, "100", 1, 10000,
     "process limit of a master.cf service whose maxproc column is \"-\""},
    {"max_use", CONFIG_INT, "1000", 1, 1000000,
     "connections a single-connection daemon process serves before it exits"},
    {"max_idle", CONFIG_TIME, "100s", 1, DAY,
     "time a daemon process waits for work before it exits"},
    {"ipc_timeout", CONFIG_TIME, "300s", 1, DAY,
     "time limit of one read or write on an internal socket"},
    {"hopcount_limit", CONFIG_INT, "50", 1, 1000,
     "Received: headers after which a message is bounced as looping"},
    {"dirsync_group_commit", CONFIG_BOOL, "yes", 0, 0,
     "share directory fsyncs after renames between processes ($queue_directory/pid/dirsync); no: "
     "every process fsyncs the directory itself"},
    {"resolver_address", CONFIG_LIST, "", 0, 0,
     "DNS servers to forward lookups to, as ip@port (port 53 if omitted); empty: the system's "
     "resolver (/etc/resolv.conf)"},
    {"resolver_timeout", CONFIG_TIME, "10s", 1, 300,
     "time limit of one DNS lookup; an answer that takes longer is a temporary failure"},
    {"resolver_max_records", CONFIG_INT, "100", 1, 1000,
     "records kept from one DNS answer (MX, A, AAAA or TLSA); the rest are ignored"},
    {NULL, CONFIG_STR, NULL, 0, 0, NULL},
};
