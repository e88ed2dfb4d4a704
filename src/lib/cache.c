/*
 * Opening a cache by its spec, and what every backend shares: the
 * injectable clock and fault reporting that speaks once per episode.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"

#define REDIS_PORT_DEFAULT 6379
#define REDIS_PREFIX_DEFAULT "callout:"
#define REDIS_PREFIX_MAX 64

int64_t co_cache_now(const co_cache *c)
{
	return c->conf.now ? c->conf.now(c->conf.now_arg) : (int64_t)time(NULL);
}

void co_cache_fault(co_cache *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->faulty)
		return;
	c->faulty = true;
	if (!c->conf.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->conf.log(c->conf.log_arg, msg);
}

void co_cache_ok(co_cache *c)
{
	if (!c->faulty)
		return;
	c->faulty = false;
	if (c->conf.log)
		c->conf.log(c->conf.log_arg, "cache: working again");
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                       ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap); /* truncation is fine for a message */
		va_end(ap);
	}
	return -1;
}

static int nomem(char *err, size_t errlen)
{
	fail(err, errlen, "%s", "out of memory");
	return CO_CACHE_ENOMEM;
}

/* redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=P]; HOST may be [IPv6]. */
static int open_redis(const char *spec, const co_cache_conf *conf, co_cache **out, char *err,
                      size_t errlen)
{
	char buf[512], password[256] = "", prefix[REDIS_PREFIX_MAX + 1] = REDIS_PREFIX_DEFAULT;
	unsigned long port = REDIS_PORT_DEFAULT, db = 0;
	char *p, *host, *q;

	if (strlen(spec) - strlen("redis://") >= sizeof(buf))
		return fail(err, errlen, "cache spec too long: %.40s...", spec);
	strcpy(buf, spec + strlen("redis://"));
	if ((q = strchr(buf, '?'))) {
		*q++ = '\0';
		if (strncmp(q, "prefix=", 7) != 0 || strlen(q + 7) > REDIS_PREFIX_MAX ||
		    strpbrk(q + 7, "&=\t\r\n "))
			return fail(err, errlen, "bad Redis option in %s (only ?prefix=P)", spec);
		strcpy(prefix, q + 7);
	}
	host = buf;
	if ((p = strrchr(host, '@'))) {
		*p = '\0';
		if (host[0] != ':')
			return fail(err, errlen, "bad Redis password in %s (use :PASSWORD@)", spec);
		if (strlen(host + 1) >= sizeof(password))
			return fail(err, errlen, "Redis password too long in %.40s...", spec);
		strcpy(password, host + 1);
		host = p + 1;
	}
	if ((p = strchr(host, '/'))) {
		char *end;
		*p++ = '\0';
		if (*p) {
			db = strtoul(p, &end, 10);
			if (*end || db > 65535 || *p == '-' || *p == '+')
				return fail(err, errlen, "bad Redis database number in %s", spec);
		}
	}
	if (host[0] == '[') {
		char *close = strchr(host, ']');
		if (!close)
			return fail(err, errlen, "bad Redis host in %s", spec);
		*close = '\0';
		p = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !p)
			return fail(err, errlen, "bad Redis host in %s", spec);
		host++;
	} else {
		p = strchr(host, ':');
		if (p)
			*p = '\0';
	}
	if (p) {
		char *end;
		port = strtoul(p + 1, &end, 10);
		if (*end || port == 0 || port > 65535 || p[1] == '-' || p[1] == '+')
			return fail(err, errlen, "bad Redis port in %s", spec);
	}
	if (!host[0])
		return fail(err, errlen, "no Redis host in %s", spec);
	*out = co_cache_redis_new(host, (unsigned)port, (unsigned)db, password[0] ? password : NULL,
	                          prefix, conf, err, errlen);
	if (!*out)
		return conf->strict ? CO_CACHE_EOPEN : nomem(err, errlen);
	return 0;
}

int co_cache_open(const char *spec, const co_cache_conf *conf, co_cache **out, char *err,
                  size_t errlen)
{
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
			return fail(err, errlen, "%s", "lmdb: needs a file name (lmdb:PATH)");
		if (!(*out = co_cache_lmdb_new(spec + 5, conf, err, errlen)))
			return conf->strict ? CO_CACHE_EOPEN : nomem(err, errlen);
		return 0;
	}
	if (strncmp(spec, "redis://", 8) == 0)
		return open_redis(spec, conf, out, err, errlen);
	return fail(err, errlen,
	            "unknown cache '%.80s' (lmdb:PATH, redis://HOST[:PORT][/DB], memory or none)",
	            spec);
}

void co_cache_free(co_cache *c)
{
	if (c)
		c->ops->free(c);
}
