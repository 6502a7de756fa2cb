#include "mymalloc.h"
#include "msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *mymalloc(size_t len)
{
    void *p = malloc(len ? len : 1);
    if (p == NULL)
        msg_fatal("out of memory allocating %zu bytes", len);
    return p;
}

void *mycalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        msg_fatal("out of memory allocating %zu*%zu bytes", nmemb, size);
    return p;
}

void *myrealloc(void *ptr, size_t len)
{
    void *p = realloc(ptr, len ? len : 1);
    if (p == NULL)
        msg_fatal("out of memory reallocating %zu bytes", len);
    return p;
}

void *myreallocarray(void *ptr, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        msg_fatal("allocation overflow: %zu*%zu", nmemb, size);
    return myrealloc(ptr, nmemb * size);
}

char *mystrdup(const char *s)
{
    return mymemdup(s, strlen(s));
}

char *mystrndup(const char *s, size_t len)
{
    const char *end = memchr(s, 0, len);
    return mymemdup(s, end ? (size_t)(end - s) : len);
}

char *mymemdup(const void *s, size_t len)
{
    if (len == SIZE_MAX)
        msg_fatal("allocation overflow");
    char *p = mymalloc(len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

void myfree(void *ptr)
{
    free(ptr);
}
