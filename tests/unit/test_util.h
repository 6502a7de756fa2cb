/*
 * test_util - scratch directories for unit tests.
 *
 * Tests that touch the file system get a fresh directory under
 * $TEGAMI_TEST_TMP (set by tests/CMakeLists.txt) or /tmp, and remove the
 * whole tree afterwards without a shell.
 */
#ifndef TEGAMI_TEST_UTIL_H
#define TEGAMI_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Create a fresh directory "<base>/<tag>.XXXXXX" into buf. 0 or -1. */
static inline int test_scratch_dir(char *buf, size_t len, const char *tag)
{
    const char *base = getenv("TEGAMI_TEST_TMP");
    if (base == NULL || *base == 0)
        base = "/tmp";
    mkdir(base, 0700);
    if ((size_t)snprintf(buf, len, "%s/%s.XXXXXX", base, tag) >= len)
        return -1;
    return mkdtemp(buf) ? 0 : -1;
}

static inline int test_remove_one(const char *path, const struct stat *st, int flag,
                                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove dir and everything below it. 0 or -1. */
static inline int test_remove_tree(const char *dir)
{
    return nftw(dir, test_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
