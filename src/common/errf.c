/* A message into a caller's buffer (errf.h). */
#include <stdarg.h>
#include <stdio.h>

#include "errf.h"

int co_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap); /* truncation is fine for a message */
		va_end(ap);
	}
	return -1;
}
