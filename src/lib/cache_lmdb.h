/* The LMDB backend's constructor, for co_cache_open (cache_open.h). */
#ifndef CO_CACHE_LMDB_H
#define CO_CACHE_LMDB_H

#include <stddef.h>

#include "cache.h"

/* NULL only when out of memory, or when conf->strict and the store
 * cannot be opened: then err says why. */
co_cache *co_cache_lmdb_new(const char *path, const co_cache_conf *conf, char *err, size_t errlen);

#endif
