/*
 * config_lines - the logical-line reader shared by main.cf and master.cf
 * parsing (internal to config.c and master_cf.c).
 *
 * A logical line starts with a non-white-space character; following lines
 * that start with white space continue it (joined with one space). Lines
 * whose first non-white-space character is '#', and blank lines, are
 * ignored and do not end a logical line. Errors are appended to errors as
 * "NAME:LINE: reason\n" and counted in nerrors.
 */
#ifndef TEGAMI_CONFIG_LINES_H
#define TEGAMI_CONFIG_LINES_H

#include <stddef.h>

#include "msg.h"
#include "strbuf.h"

#define CONFIG_LINES_MAX 65536      /* bytes in one logical line */
#define CONFIG_LINES_MAX_ERRORS 100 /* reported error lines */

struct config_lines {
    const char *name; /* file name for errors */
    const char *p;
    const char *end;
    int lineno;
    struct strbuf *errors; /* may be NULL */
    int nerrors;
};

void config_lines_init(struct config_lines *r, const char *name, const char *text, size_t len,
                       struct strbuf *errors);
/* Next logical line into out (trailing white space removed). 1, or 0 at the end. */
int config_lines_next(struct config_lines *r, struct strbuf *out, int *line_r);
/* Report an error at line (0: no line number). */
void config_lines_error(struct config_lines *r, int line, const char *fmt, ...) MSG_PRINTF(3, 4);
/* Split at white space only (master.cf columns); free with config_list_free. */
char **config_lines_split(const char *text, size_t *count_r);
/* Read a whole file of at most max bytes into text. 0, or -1 with "PATH: reason\n". */
int config_read_file(const char *path, size_t max, struct strbuf *text, struct strbuf *errors);

#endif
