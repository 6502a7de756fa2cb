/*
 * master - internal interfaces between master's files.
 *
 *   main.c     options, pid file, daemonizing, signals, the event loop, stop
 *   service.c  the service table from master.cf: listeners, reload diff
 *   spawn.c    fork/exec of children, reaping, status pipes, throttling
 *   control.c  the status service on $queue_directory/public/master
 *
 * Everything runs in one thread; signal handlers only set flags and write a
 * byte to a self-pipe that the event loop polls.
 */
#ifndef TEGAMI_MASTER_H
#define TEGAMI_MASTER_H

/* A process that exits abnormally within this many seconds of its start,
 * without having served a client, failed to start (counts for the throttle). */
#define MASTER_STARTUP_SECONDS 10

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "scoreboard.h"
#include "server.h"
#include "strbuf.h"
#include "throttle.h"

struct master_service {
    char *name;       /* master.cf service column */
    char *type;       /* "inet", "unix" or "fifo" */
    char *listen;     /* "127.0.0.1:10025" or an absolute path */
    char *key;        /* type + listen: identity across reloads */
    char **argv;      /* command and args from master.cf, NULL-terminated */
    char **overrides; /* "name=value", NULL-terminated */
    bool private_;
    bool unpriv;
    int maxproc; /* 0 = no limit */
    int listen_fd;
    int status_rd, status_wr; /* status pipe: master reads, children write on fd 4 */
    int total;                /* live children, including those told to stop */
    struct scoreboard *score; /* idle/busy state of its workers (scoreboard.h), or NULL */
    int score_fd;             /* the board's memfd, given to children on fd 6 */
    struct throttle throttle;
    bool throttle_logged;
    /* Template (service_templates): a pre-initialised process that forks the
     * workers; master's own child, not counted in total or avail. */
    struct master_child *tmpl; /* NULL when none runs */
    int tmpl_fd;               /* master's end of its socket, -1 when none */
    bool tmpl_ready;           /* said "R" */
    bool tmpl_refused;         /* said "N", or failed: start directly until reload */
    int tmpl_pending;          /* "S" sent, "P"/"F" not yet read */
    char statbuf[sizeof(struct server_status)];
    size_t statlen;
    bool seen; /* reload bookkeeping */
    struct master_service *next;
};

struct master_child {
    pid_t pid;
    struct master_service *svc; /* NULL once its service was removed */
    char *command;              /* path, for log lines */
    char *svc_name;             /* service name, for log lines */
    time_t started;
    bool avail;    /* idle, as reported on the status pipe (until it has a slot) */
    bool served;   /* reported busy at least once */
    int slot;      /* its scoreboard slot once seen there, else -1 */
    bool stopping; /* master sent SIGTERM */
    bool is_template;
    struct master_child *next;
};

extern struct master_service *master_services;
extern struct master_child *master_children;
extern const char *master_config_dir;
extern bool master_subreaper; /* PR_SET_CHILD_SUBREAPER worked: templates possible */

/* service.c */
/* Build the service list described by master.cf (nothing opened). 0 or -1 with errors. */
int master_services_read(struct master_service **list_r, struct strbuf *errors);
/* Open the listener and status pipe. 0 or -1 with err. */
int master_service_open(struct master_service *svc, struct strbuf *err);
/* Close listener and status pipe; orphan and SIGTERM its children; free it. */
void master_service_destroy(struct master_service *svc);
void master_service_free_list(struct master_service **list);
/* Replace master_services with the new list: keep matching listeners, open new, close gone. */
void master_services_reconcile(struct master_service *fresh);
/* chown a path to mail_owner when running as root outside a sandbox. */
void master_chown_owner(const char *path);

/* spawn.c */
/* Start processes where a service has no idle one and is below its limit. */
void master_spawn_needed(time_t now);
/* Reap exited children (non-blocking); true if any was reaped. */
bool master_reap(void);
/* Idle processes of a service, not told to stop (scoreboard, else the pipe's records). */
int master_service_avail(struct master_service *svc);
/* Read status records from a service's pipe. */
void master_status_read(struct master_service *svc);
/* SIGTERM the children (of svc, or all when svc is NULL) and mark them stopping. */
void master_stop_children(struct master_service *svc, int sig);
/* Any service throttled right now, or a template still starting (master wakes each second)? */
bool master_any_throttled(time_t now);
/* Read what a service's template says ("R", "P<pid>", "F", "N"). */
void master_template_read(struct master_service *svc, time_t now);
/* Stop a service's template (reload, removal, failure); its workers stay. */
void master_template_drop(struct master_service *svc);

/* control.c */
int master_control_open(const char *path, struct strbuf *err);
/* Accept and serve pending clients on the control socket. */
void master_control_accept(int fd);

#endif
