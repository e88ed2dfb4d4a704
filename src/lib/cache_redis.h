/* The Redis backend's constructor, for co_cache_open (cache_open.h). */
#ifndef CO_CACHE_REDIS_H
#define CO_CACHE_REDIS_H

#include <stddef.h>

#include "cache.h"

/* Redis credentials: AUTH [user] password (Redis 6 ACL users); both
 * NULL for none. */
typedef struct co_redis_auth {
	const char *user;
	const char *password;
} co_redis_auth;

/* NULL only when out of memory, or when conf->strict and the store
 * cannot be opened: then err says why. */
co_cache *co_cache_redis_new(const char *host, unsigned port, unsigned db,
                             const co_redis_auth *auth, const char *prefix,
                             const co_cache_conf *conf, char *err, size_t errlen);

#endif
