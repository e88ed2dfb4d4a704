/*
 * Opening a cache by its spec (cache_open.h).  The one file that knows
 * every backend: the backends know only their base (cache.c), so the
 * arrows run one way, cache_open.c -> cache_{lmdb,redis,memory}.c ->
 * cache.c.  A Redis spec is read by src/common/redis_spec.c, which calloutd
 * shares; this file connects.
 */
#include <string.h>

#include "cache.h"
#include "cache_lmdb.h"
#include "cache_memory.h"
#include "cache_open.h"
#include "cache_redis.h"
#include "errf.h"
#include "redis_spec.h"

static int nomem(char *err, size_t errlen)
{
	co_errf(err, errlen, "%s", "out of memory");
	return CO_CACHE_ENOMEM;
}

/* redis://... (redis_spec.h); messages name the spec without its
 * password. */
static int open_redis(const char *spec, const co_cache_conf *conf, co_cache **out, char *err,
                      size_t errlen)
{
	co_redis_spec rs;

	if (co_redis_spec_parse(spec, &rs, err, errlen) < 0)
		return -1;
	co_redis_auth auth = {.user = rs.user[0] ? rs.user : NULL,
	                      .password = rs.password[0] ? rs.password : NULL};
	*out = co_cache_redis_new(rs.host, rs.port, rs.db, &auth, rs.prefix, conf, err, errlen);
	explicit_bzero(rs.password, sizeof(rs.password));
	if (!*out)
		return conf->strict ? CO_CACHE_EOPEN : nomem(err, errlen);
	return 0;
}

int co_cache_open(const char *spec, const co_cache_conf *conf, co_cache **out, char *err,
                  size_t errlen)
{
	char shown[128];

	*out = NULL;
	if (!spec || strcmp(spec, "memory") == 0) {
		if (!(*out = co_cache_memory_new(conf)))
			return nomem(err, errlen);
		return 0;
	}
	if (strcmp(spec, "none") == 0)
		return 0;
	if (strncmp(spec, "lmdb:", 5) == 0) {
		if (!spec[5])
			return co_errf(err, errlen, "%s", "lmdb: needs a file name (lmdb:PATH)");
		if (!(*out = co_cache_lmdb_new(spec + 5, conf, err, errlen)))
			return conf->strict ? CO_CACHE_EOPEN : nomem(err, errlen);
		return 0;
	}
	if (strncmp(spec, "redis://", 8) == 0 || strncmp(spec, "rediss://", 9) == 0)
		return open_redis(spec, conf, out, err, errlen);
	return co_errf(
	    err, errlen,
	    "unknown cache '%.80s' (lmdb:PATH, redis://HOST[:PORT][/DB], memory or none)",
	    co_redis_spec_redact(spec, shown, sizeof(shown)));
}
