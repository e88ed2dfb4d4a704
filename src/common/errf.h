/*
 * A message into a caller's buffer, the err/errlen pair of the parsers
 * and constructors: one writer, so that they all treat a NULL or empty
 * buffer alike and cut a long message the same way.
 */
#ifndef CO_ERRF_H
#define CO_ERRF_H

#include <stddef.h>

/* printf into err (errlen bytes, truncated; nothing when err is NULL or
 * errlen 0); returns -1, for "return co_errf(err, errlen, ...);". */
__attribute__((format(printf, 3, 4))) int co_errf(char *err, size_t errlen, const char *fmt, ...);

#endif
