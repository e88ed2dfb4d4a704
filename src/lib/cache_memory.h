/* The memory backend's constructor, for co_cache_open (cache_open.h). */
#ifndef CO_CACHE_MEMORY_H
#define CO_CACHE_MEMORY_H

#include "cache.h"

/* NULL only when out of memory. */
co_cache *co_cache_memory_new(const co_cache_conf *conf);

#endif
