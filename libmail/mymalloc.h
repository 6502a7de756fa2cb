/*
 * mymalloc - allocation wrappers that never return NULL.
 *
 * Every allocation in tegami goes through these. Out of memory is an
 * environment we cannot work in, so it is fatal (msg_fatal) rather than an
 * error each caller would have to handle. Sizes are checked for overflow.
 */
#ifndef TEGAMI_MYMALLOC_H
#define TEGAMI_MYMALLOC_H

#include <stddef.h>

/* Allocate len bytes (len 0 allowed); never NULL. */
void *mymalloc(size_t len);
/* Allocate nmemb*size zeroed bytes, fatal on overflow; never NULL. */
void *mycalloc(size_t nmemb, size_t size);
/* Resize ptr (may be NULL); never NULL. */
void *myrealloc(void *ptr, size_t len);
/* Resize an array to nmemb elements of size bytes, fatal on overflow. */
void *myreallocarray(void *ptr, size_t nmemb, size_t size);
/* Copy a NUL-terminated string. */
char *mystrdup(const char *s);
/* Copy at most len bytes of s and terminate. */
char *mystrndup(const char *s, size_t len);
/* Copy exactly len bytes (may contain NUL) and terminate. */
char *mymemdup(const void *s, size_t len);
/* free() that accepts NULL. Module free functions take T ** instead. */
void myfree(void *ptr);

#endif
