/*
 * mailctl - the administration tool. One function per command group; each
 * returns the process exit code: 0 ok, 1 error (message on stderr),
 * 2 usage, 3 "not running" (status).
 */
#ifndef TEGAMI_MAILCTL_H
#define TEGAMI_MAILCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define MAILCTL_OK 0
#define MAILCTL_ERROR 1
#define MAILCTL_USAGE 2
#define MAILCTL_NOT_RUNNING 3

/* main.c */
_Noreturn void mailctl_usage(void);
/* Load main.cf; print the errors and return -1 when it is broken. */
int mailctl_load_config(void);
/* Print each line of text on stderr prefixed with "mailctl: ". */
void mailctl_print_lines(const char *text);
/* Write a whole file atomically-enough for init (O_EXCL when excl). 0 or -1 (message printed). */
int mailctl_write_file(const char *path, const char *text, int mode, bool excl);

/* init.c */
int mailctl_init(int argc, char **argv);

/* life.c */
int mailctl_start(int argc, char **argv);
int mailctl_stop(int argc, char **argv);
int mailctl_status(int argc, char **argv);
int mailctl_reload(int argc, char **argv);
int mailctl_check(int argc, char **argv);
int mailctl_flush(int argc, char **argv);

/* admin.c */
int mailctl_user(int argc, char **argv);
int mailctl_queue(int argc, char **argv);
int mailctl_map(int argc, char **argv);
int mailctl_newaliases(int argc, char **argv);
/* config.c: print parameters like postconf ([-d] [--markdown] [name...]) */
int mailctl_config(int argc, char **argv);

#endif
