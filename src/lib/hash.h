/* FNV-1a over bytes: the hash of every in-memory table of the library. */
#ifndef CO_HASH_H
#define CO_HASH_H

#include <stddef.h>

static inline size_t co_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t h = 1469598103934665603ull;
	while (n--)
		h = (h ^ *b++) * 1099511628211ull;
	return h;
}

#endif
