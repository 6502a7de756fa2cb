/*
 * server - the daemon skeleton every service process runs in.
 *
 * master starts a service process as
 *     <daemon_directory>/<command> -c CONFIG_DIR -n SERVICE -t TYPE [-u] [-o name=value]... [args]
 * with the service's listening socket (or fifo) on fd SERVER_LISTEN_FD and
 * the write end of a status pipe on fd SERVER_STATUS_FD. -u means
 * "unprivileged": drop to mail_owner when running as root.
 *
 * server_main() parses that, loads main.cf and the overrides, opens the log,
 * calls pre_init (still privileged), drops privileges in one place, calls
 * post_init, then runs one of two loops:
 *
 *  SERVER_SINGLE (smtpd, local, pop3d): accept one connection, report busy
 *    to master, call service(), report idle; after max_use connections or
 *    max_idle seconds without one, exit (master starts a fresh process when
 *    needed). service() owns the fd and must close it.
 *  SERVER_LONG (qmgr, pickup): call loop(listen_fd), which runs until the
 *    process should exit. server_should_exit() turns true on SIGTERM or when
 *    master goes away; long loops must check it at least every second.
 *
 * Status records on the pipe are struct server_status, written whole. A
 * SERVER_SINGLE worker with a slot on the service's scoreboard (fd
 * SERVER_SCORE_FD) keeps its idle/busy state there instead and writes 'B'
 * only when it takes a connection and no other slot is idle: the record
 * then just wakes master to consider starting another process.
 *
 * Templates (master's service_templates): a SERVER_SINGLE daemon whose spec
 * sets template_ok may be started with -T and a SOCK_SEQPACKET socket to
 * master on fd SERVER_TEMPLATE_FD. It then initialises as usual (pre_init,
 * privilege drop, post_init), says "R" (ready) and serves no client itself:
 * for every "S" from master it forks a worker that runs the normal accept
 * loop, already initialised, and answers "P<pid>" (or "F<reason>"). The
 * worker is forked twice so that it becomes master's child (master is a
 * child subreaper), and master supervises it like any other. A worker shares
 * the template's pages copy-on-write: relocated libraries, the parsed
 * configuration, TLS contexts. A daemon without template_ok answers "N"
 * and exits; master then starts its processes directly.
 */
#ifndef TEGAMI_SERVER_H
#define TEGAMI_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SERVER_LISTEN_FD 3
#define SERVER_STATUS_FD 4
#define SERVER_TEMPLATE_FD 5 /* only with -T */
#define SERVER_SCORE_FD 6    /* the service's scoreboard (scoreboard.h), when master gives one */

#define SERVER_STATUS_IDLE 'I'
#define SERVER_STATUS_BUSY 'B'

struct server_status {
    pid_t pid;
    char status; /* SERVER_STATUS_* */
};

enum server_mode { SERVER_SINGLE, SERVER_LONG };

struct server_client {
    int fd;
    struct sockaddr_storage peer; /* ss_family AF_UNIX for local sockets */
    socklen_t peer_len;
    char addr[64]; /* numeric peer address, "unix" for UNIX sockets */
    int port;
    bool nonblock_socket; /* fd is an accepted socket, already non-blocking (stream_sockopen) */
};

struct server_spec {
    enum server_mode mode;
    void (*pre_init)(void);
    void (*post_init)(void);
    void (*service)(struct server_client *client); /* SERVER_SINGLE */
    void (*loop)(int listen_fd);                   /* SERVER_LONG */
    /* SERVER_SINGLE only: nothing post_init sets up is per-process (no open
     * connection, no random state of a library that would repeat in every
     * copy), so workers may be forked from one initialised template. */
    bool template_ok;
};

/* Run the daemon; returns only through exit(). */
_Noreturn void server_main(int argc, char **argv, const struct server_spec *spec);
/* The service name from -n ("smtpd", "10025", "submission" ...). */
const char *server_service_name(void);
/* Extra arguments after the options (from master.cf). */
char **server_args(int *count_r);
/* True once the process was asked to stop (SIGTERM at once; master gone: within a second). */
bool server_should_exit(void);
/* Drop root privileges to mail_owner (no-op when not root). */
void server_drop_privileges(void);

#endif
