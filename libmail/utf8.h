/*
 * utf8 - strict UTF-8 validation (RFC 3629), for SMTPUTF8 addresses and
 * parameters: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
#ifndef TEGAMI_UTF8_H
#define TEGAMI_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if the len bytes at s are well-formed UTF-8 (ASCII included). */
bool utf8_valid(const void *s, size_t len);

#endif
