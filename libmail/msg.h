/*
 * msg - logging for every tegami program.
 *
 * Lines look like Postfix's, so the log tools people already use read them:
 *     Nov 22 10:00:01 host tegami/smtpd[1234]: 4Xb7k2Q9: client=..., size=...
 * The caller passes the queue ID at the start of the text when there is one.
 * Output goes to syslog (facility mail), or, when msg_open_file() was called
 * (sandboxes), to a log file opened O_APPEND and written with one write(2)
 * per line, so lines from many processes never interleave.
 *
 * Three tiers (see CONVENTIONS.md): msg_panic for our own bugs (abort),
 * msg_fatal for an environment we cannot work in (exit 1), and
 * msg_warn/msg_info for everything else, including anything a peer sent.
 */
#ifndef TEGAMI_MSG_H
#define TEGAMI_MSG_H

#include <stdarg.h>
#include <sys/types.h>
#include <stdbool.h>

#define MSG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Set the program name ("smtpd"); logs as "tegami/smtpd" by default. */
void msg_init(const char *progname);
/* Log to this file instead of syslog (NULL or "" = syslog). Fatal if it can't open. */
void msg_open_file(const char *path);
/* Also copy every line to stderr (tools run by a person). */
void msg_set_stderr(bool on);
/* Enable msg_debug output. */
void msg_set_verbose(int level);
extern int msg_verbose;
/* getpid(), without a system call after the first (reset in fork()ed children). */
pid_t msg_pid(void);
/* The program name given to msg_init. */
const char *msg_progname(void);

void msg_debug(const char *fmt, ...) MSG_PRINTF(1, 2);
void msg_info(const char *fmt, ...) MSG_PRINTF(1, 2);
void msg_warn(const char *fmt, ...) MSG_PRINTF(1, 2);
void msg_error(const char *fmt, ...) MSG_PRINTF(1, 2);
_Noreturn void msg_fatal(const char *fmt, ...) MSG_PRINTF(1, 2);
_Noreturn void msg_panic(const char *fmt, ...) MSG_PRINTF(1, 2);
void msg_vlog(int priority, const char *fmt, va_list ap);

/*
 * msg_hold(true): with a log file, keep informational and debug lines in
 * memory until msg_flush() (an event loop calls it before it waits), a
 * warning or worse, 8 KiB, or exit: one write() for a loop's lines. A
 * crash loses at most the lines of one loop iteration. No effect on syslog.
 */
void msg_hold(bool on);
void msg_flush(void);
/* Run before exiting on msg_fatal (e.g. master removes its pid file). */
void msg_set_fatal_hook(void (*hook)(void));

#endif
