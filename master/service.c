/*
 * master service table: what master.cf asks for, the listeners master owns
 * for it, and how a reload turns the running table into the new one.
 *
 * A service's identity across reloads is its key (type + listen address or
 * path). A service whose key survives keeps its listener and status pipe,
 * so connections queued in the kernel are never lost and an inet port is
 * never re-bound while old children still hold it; its command, overrides
 * and limits are taken from the new master.cf.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"
#include "sock.h"

struct master_service *master_services;

static char **master_strv_dup(char **v, size_t n)
{
    char **out = mycalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n && v && v[i]; i++)
        out[i] = mystrdup(v[i]);
    return out;
}

static void master_strv_free(char ***vp)
{
    char **v = *vp;
    if (v == NULL)
        return;
    for (size_t i = 0; v[i]; i++)
        myfree(v[i]);
    myfree(v);
    *vp = NULL;
}

static bool master_strv_equal(char **a, char **b)
{
    size_t i;
    for (i = 0; a[i] && b[i]; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return a[i] == NULL && b[i] == NULL;
}

static void master_service_free(struct master_service *svc)
{
    myfree(svc->name);
    myfree(svc->type);
    myfree(svc->listen);
    myfree(svc->key);
    master_strv_free(&svc->argv);
    master_strv_free(&svc->overrides);
    myfree(svc);
}

void master_service_free_list(struct master_service **list)
{
    struct master_service *svc = *list, *next;
    for (; svc; svc = next) {
        next = svc->next;
        master_service_free(svc);
    }
    *list = NULL;
}

int master_services_read(struct master_service **list_r, struct strbuf *errors)
{
    struct master_entry *ents = NULL;
    size_t n = 0;
    struct master_service *head = NULL, **tail = &head;
    const char *qdir = config_str("queue_directory");
    int rc = 0;

    *list_r = NULL;
    if (master_cf_load(&ents, &n, errors) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct master_entry *e = &ents[i];
        struct strbuf sb = STRBUF_INIT;
        if (e->argc == 0 || e->argv == NULL || e->argv[0] == NULL) {
            strbuf_printf(errors, "master.cf:%d: service %s has no command\n", e->line, e->service);
            rc = -1;
            continue;
        }
        if (strcmp(e->type, "inet") == 0) {
            strbuf_puts(&sb, e->service);
        } else if (strcmp(e->type, "unix") == 0 || strcmp(e->type, "fifo") == 0) {
            if (strchr(e->service, '/') || e->service[0] == '.' || e->service[0] == 0) {
                strbuf_printf(errors, "master.cf:%d: bad service name \"%s\"\n", e->line,
                              e->service);
                rc = -1;
                strbuf_release(&sb);
                continue;
            }
            strbuf_printf(&sb, "%s/%s/%s", qdir, e->private_ ? "private" : "public", e->service);
        } else {
            strbuf_printf(errors, "master.cf:%d: unknown service type \"%s\"\n", e->line, e->type);
            rc = -1;
            strbuf_release(&sb);
            continue;
        }
        struct master_service *dup;
        for (dup = head; dup; dup = dup->next)
            if (strcmp(dup->type, e->type) == 0 && strcmp(dup->listen, sb.data) == 0)
                break;
        if (dup) {
            strbuf_printf(errors, "master.cf:%d: duplicate service %s/%s\n", e->line, e->service,
                          e->type);
            rc = -1;
            strbuf_release(&sb);
            continue;
        }

        struct master_service *svc = mycalloc(1, sizeof(*svc));
        svc->name = mystrdup(e->service);
        svc->type = mystrdup(e->type);
        svc->listen = strbuf_detach(&sb, NULL);
        strbuf_printf(&sb, "%s %s", svc->type, svc->listen);
        svc->key = strbuf_detach(&sb, NULL);
        svc->argv = master_strv_dup(e->argv, e->argc);
        svc->overrides = master_strv_dup(e->overrides, e->noverrides);
        svc->private_ = e->private_;
        svc->unpriv = e->unpriv;
        /* Defensive: a parser that leaves "-" unresolved gives a negative number. */
        svc->maxproc = e->maxproc >= 0 ? e->maxproc : (int)config_int("default_process_limit");
        if (strcmp(e->type, "fifo") == 0 && svc->maxproc != 1) {
            /* Two readers of one fifo would split each other's wake-up lines. */
            msg_warn("master.cf:%d: fifo service %s: process limit %d changed to 1", e->line,
                     e->service, svc->maxproc);
            svc->maxproc = 1;
        }
        if (e->chroot)
            msg_warn("master.cf:%d: service %s: chroot is not supported, ignored", e->line,
                     e->service);
        svc->listen_fd = svc->status_rd = svc->status_wr = -1;
        svc->tmpl_fd = svc->score_fd = -1;
        throttle_init(&svc->throttle);
        *tail = svc;
        tail = &svc->next;
    }
    master_cf_free(&ents, n);
    if (rc < 0) {
        master_service_free_list(&head);
        return -1;
    }
    *list_r = head;
    return 0;
}

void master_chown_owner(const char *path)
{
    static uid_t uid;
    static gid_t gid;
    static bool looked_up;

    if (geteuid() != 0 || config_bool("sandbox"))
        return;
    if (!looked_up) {
        const char *owner = config_str("mail_owner");
        struct passwd *pw = getpwnam(owner);
        if (pw == NULL)
            msg_fatal("mail_owner %s: unknown user", owner);
        if (pw->pw_uid == 0)
            msg_fatal("mail_owner %s must not be root", owner);
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        looked_up = true;
    }
    if (lchown(path, uid, gid) < 0 && errno != ENOENT)
        msg_warn("chown %s: %s", path, strerror(errno));
}

int master_service_open(struct master_service *svc, struct strbuf *err)
{
    int backlog = (int)config_int("master_listen_backlog");
    int fd;
    int pfd[2];

    if (strcmp(svc->type, "inet") == 0) {
        fd = sock_inet_listen(svc->listen, backlog, err);
    } else if (strcmp(svc->type, "unix") == 0) {
        /* The private/ directory (0700) is what keeps outsiders away. */
        fd = sock_unix_listen(svc->listen, backlog, 0666, err);
        if (fd >= 0)
            master_chown_owner(svc->listen);
    } else {
        fd = sock_fifo_listen(svc->listen, svc->private_ ? 0600 : 0622, err);
        if (fd >= 0) {
            /*
             * Hold the fifo open for writing too: a reader that is also a
             * writer never sees EOF when the last client closes.
             */
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0 && (fl & O_ACCMODE) != O_RDWR) {
                int rw = open(svc->listen, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (rw < 0) {
                    strbuf_printf(err, "open %s: %s", svc->listen, strerror(errno));
                    close(fd);
                    return -1;
                }
                close(fd);
                fd = rw;
            }
            master_chown_owner(svc->listen);
        }
    }
    if (fd < 0)
        return -1;
    /* Shared by every child: the losers of an accept race must get EAGAIN. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);

    if (pipe2(pfd, O_CLOEXEC) < 0) {
        strbuf_printf(err, "pipe: %s", strerror(errno));
        close(fd);
        return -1;
    }
    (void)fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    /* Without a board (no memfd) workers report idle and busy on the pipe. */
    svc->score_fd = scoreboard_create(&svc->score);
    if (svc->score_fd < 0) {
        msg_warn("service %s: scoreboard: %s; its processes report on the status pipe", svc->name,
                 strerror(errno));
        svc->score = NULL;
    }
    svc->listen_fd = fd;
    svc->status_rd = pfd[0];
    svc->status_wr = pfd[1];
    svc->statlen = 0;
    return 0;
}

static void master_service_close(struct master_service *svc)
{
    if (svc->listen_fd >= 0)
        close(svc->listen_fd);
    /* Closing the read end tells remaining children that master let go of them. */
    if (svc->status_rd >= 0)
        close(svc->status_rd);
    if (svc->status_wr >= 0)
        close(svc->status_wr);
    svc->listen_fd = svc->status_rd = svc->status_wr = -1;
    if (svc->score_fd >= 0)
        close(svc->score_fd);
    scoreboard_unmap(svc->score);
    svc->score = NULL;
    svc->score_fd = -1;
}

void master_service_destroy(struct master_service *svc)
{
    master_template_drop(svc);
    master_stop_children(svc, SIGTERM);
    for (struct master_child *c = master_children; c; c = c->next)
        if (c->svc == svc)
            c->svc = NULL;
    master_service_close(svc);
    master_service_free(svc);
}

void master_services_reconcile(struct master_service *fresh)
{
    struct master_service *head = NULL, **tail = &head;

    for (struct master_service *s = master_services; s; s = s->next)
        s->seen = false;

    while (fresh) {
        struct master_service *nsvc = fresh;
        fresh = fresh->next;
        nsvc->next = NULL;

        struct master_service *old;
        for (old = master_services; old; old = old->next)
            if (!old->seen && strcmp(old->key, nsvc->key) == 0)
                break;
        if (old) {
            old->seen = true;
            bool changed = !master_strv_equal(old->argv, nsvc->argv) ||
                           !master_strv_equal(old->overrides, nsvc->overrides) ||
                           old->unpriv != nsvc->unpriv || old->maxproc != nsvc->maxproc;
            if (changed)
                msg_info("service %s/%s: changed, restarting its processes", old->name, old->type);
            /* Take the new settings, keep the open listener and status pipe. */
            master_strv_free(&old->argv);
            master_strv_free(&old->overrides);
            old->argv = nsvc->argv;
            old->overrides = nsvc->overrides;
            nsvc->argv = nsvc->overrides = NULL;
            old->unpriv = nsvc->unpriv;
            old->maxproc = nsvc->maxproc;
            /* A reload is how an administrator says "fixed, try again". */
            throttle_init(&old->throttle);
            old->tmpl_refused = false;
            master_service_free(nsvc);
            continue;
        }
        struct strbuf err = STRBUF_INIT;
        if (master_service_open(nsvc, &err) < 0) {
            msg_warn("service %s/%s: cannot listen on %s: %s; not started", nsvc->name, nsvc->type,
                     nsvc->listen, strbuf_str(&err));
            strbuf_release(&err);
            master_service_free(nsvc);
            continue;
        }
        strbuf_release(&err);
        msg_info("service %s/%s: added, listening on %s", nsvc->name, nsvc->type, nsvc->listen);
        *tail = nsvc;
        tail = &nsvc->next;
    }

    /* Keep the survivors in front (in their old order), then the new ones. */
    struct master_service *kept = NULL, **ktail = &kept, *next;
    for (struct master_service *s = master_services; s; s = next) {
        next = s->next;
        if (s->seen) {
            s->next = NULL;
            *ktail = s;
            ktail = &s->next;
        } else {
            msg_info("service %s/%s: removed", s->name, s->type);
            /* Clients should fail fast instead of talking to a dead socket. */
            if (strcmp(s->type, "inet") != 0)
                (void)unlink(s->listen);
            master_service_destroy(s);
        }
    }
    *ktail = head;
    master_services = kept;
}
