/* The Redis backend's constructor, for co_cache_open (cache_open.h). */
#ifndef CO_CACHE_REDIS_H
#define CO_CACHE_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "cache.h"

/* Redis credentials: AUTH [user] password (Redis 6 ACL users); both
 * NULL for none. */
typedef struct co_redis_auth {
	const char *user;
	const char *password;
} co_redis_auth;

/* Where a Redis cache's server is (its strings, valid while it lives),
 * for a fleet's shared limits to use the same server; false if c is not
 * a Redis cache. */
typedef struct co_redis_where {
	const char *host, *user, *password, *prefix;
	unsigned port, db;
} co_redis_where;
bool co_cache_redis_where(const co_cache *c, co_redis_where *out);

/* The asynchronous connection of a Redis cache with a loop, for the
 * fleet's limits to join (co_redis_join); NULL if there is none. */
struct co_redis_user;
struct co_redis_user *co_cache_redis_conn(const co_cache *c);

/* NULL only when out of memory, or when conf->strict and the store
 * cannot be opened: then err says why. */
co_cache *co_cache_redis_new(const char *host, unsigned port, unsigned db,
                             const co_redis_auth *auth, const char *prefix,
                             const co_cache_conf *conf, char *err, size_t errlen);

#endif
