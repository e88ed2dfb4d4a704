/*
 * What both sides of the Redis backend build their commands and read
 * their replies with (see cache_redis_int.h): keys with the prefix,
 * records out of replies, and faults reported once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_redis_int.h"

void co_redis_fault(redis_cache *r, const char *why)
{
	co_cache_fault(&r->base, "cache %s: %s; going on uncached", r->name, why);
}

void co_redis_reply_fault(redis_cache *r, const char *what, const redisReply *rep)
{
	char why[256];

	snprintf(why, sizeof(why), "%s: %s", what,
	         rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	co_redis_fault(r, why);
}

char *co_redis_prefixed(const redis_cache *r, const char *mid, const char *const *keys, size_t n,
                        const char **argv, size_t *lens)
{
	size_t midlen = strlen(mid), total = 1;

	for (size_t i = 0; i < n; i++)
		total += r->prefixlen + midlen + strlen(keys[i]);
	char *buf = malloc(total), *p = buf;
	if (!buf)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);
		argv[i] = p;
		memcpy(p, r->prefix, r->prefixlen);
		p += r->prefixlen;
		memcpy(p, mid, midlen);
		p += midlen;
		memcpy(p, keys[i], kl);
		p += kl;
		lens[i] = (size_t)(p - argv[i]);
	}
	return buf;
}

bool co_redis_decode(const redisReply *v, co_rec *rec)
{
	return v->type == REDIS_REPLY_STRING &&
	       co_rec_decode((const uint8_t *)v->str, v->len, rec) == 0;
}
