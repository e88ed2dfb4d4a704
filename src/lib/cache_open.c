/*
 * Opening a cache by its spec (cache_open.h).  The one file that knows
 * every backend: the backends know only their base (cache.c), so the
 * arrows run one way, cache_open.c -> cache_{lmdb,redis,memory}.c ->
 * cache.c.  The redaction of a spec's password, for messages, lives here
 * too: it reads specs as the parser does.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cache_lmdb.h"
#include "cache_memory.h"
#include "cache_open.h"
#include "cache_redis.h"
#include "errf.h"
#include "hostport.h"

#define REDIS_PORT_DEFAULT   6379
#define REDIS_PREFIX_DEFAULT "callout:"
#define REDIS_PREFIX_MAX     64

static int nomem(char *err, size_t errlen)
{
	co_errf(err, errlen, "%s", "out of memory");
	return CO_CACHE_ENOMEM;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* Decode %XX in place (RFC 3986); false for a bad escape or %00, which
 * no password or user name can hold. */
static bool percent_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return false;
		*o++ = (char)(hi * 16 + lo);
		s += 2;
	}
	*o = '\0';
	return true;
}

/* Where a spec's credentials end ('@' of redis://...@), or NULL. */
static const char *userinfo_end(const char *spec)
{
	const char *rest = strstr(spec, "://");
	if (!rest)
		return NULL;
	rest += 3;
	size_t hostpart = strcspn(rest, "/?");
	const char *at = NULL;
	for (const char *p = rest; p < rest + hostpart; p++)
		if (*p == '@')
			at = p;
	return at;
}

/* Append n bytes of s to out[*used..len), truncating; out stays a string. */
static void append(char *out, size_t len, size_t *used, const char *s, size_t n)
{
	if (*used + n >= len)
		n = len - 1 - *used;
	memcpy(out + *used, s, n);
	*used += n;
	out[*used] = '\0';
}

const char *co_cache_spec_redact(const char *spec, char *out, size_t len)
{
	const char *at = spec ? userinfo_end(spec) : NULL;
	size_t used = 0;

	if (!len)
		return out;
	out[0] = '\0';
	if (!spec)
		spec = "none";
	if (!at) {
		append(out, len, &used, spec, strlen(spec));
		return out;
	}
	/* keep the user name: it is not a secret, and says who we are */
	const char *user = strstr(spec, "://") + 3;
	const char *colon = memchr(user, ':', (size_t)(at - user));
	append(out, len, &used, spec, (size_t)((colon ? colon : at) - spec));
	if (colon)
		append(out, len, &used, ":***", 4);
	append(out, len, &used, at, strlen(at));
	return out;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P]; HOST may be
 * [IPv6]; USER and PASSWORD may be percent-encoded.  Messages name the
 * spec without its password. */
static int open_redis(const char *spec, const co_cache_conf *conf, co_cache **out, char *err,
                      size_t errlen)
{
	char buf[512], user[128] = "", password[256] = "",
	               prefix[REDIS_PREFIX_MAX + 1] = REDIS_PREFIX_DEFAULT;
	char shown[512];
	unsigned long port = REDIS_PORT_DEFAULT, db = 0;
	char *p, *host, *q;

	co_cache_spec_redact(spec, shown, sizeof(shown));
	if (strlen(spec) - strlen("redis://") >= sizeof(buf))
		return co_errf(err, errlen, "cache spec too long: %.40s...", shown);
	strcpy(buf, spec + strlen("redis://"));
	if ((q = strchr(buf, '?'))) {
		*q++ = '\0';
		if (strncmp(q, "prefix=", 7) != 0 || strlen(q + 7) > REDIS_PREFIX_MAX ||
		    strpbrk(q + 7, "&=\t\r\n "))
			return co_errf(err, errlen, "bad Redis option in %s (only ?prefix=P)",
			               shown);
		strcpy(prefix, q + 7);
	}
	host = buf;
	if ((p = strchr(host, '/')))
		*p = '\0'; /* the credentials end before the path */
	char *at = strrchr(host, '@');
	if (p)
		*p = '/';
	if (at) {
		*at = '\0';
		char *colon = strchr(host, ':');
		if (!colon)
			return co_errf(
			    err, errlen,
			    "bad Redis credentials in %s (use :PASSWORD@ or USER:PASSWORD@)",
			    shown);
		*colon = '\0';
		if (strlen(host) >= sizeof(user) || strlen(colon + 1) >= sizeof(password))
			return co_errf(err, errlen, "Redis user or password too long in %s", shown);
		strcpy(user, host);
		strcpy(password, colon + 1);
		if (!percent_decode(user) || !percent_decode(password))
			return co_errf(err, errlen, "bad %%-escape in the Redis credentials of %s",
			               shown);
		if (user[0] && !password[0])
			return co_errf(err, errlen, "Redis user without a password in %s", shown);
		host = at + 1;
	}
	if ((p = strchr(host, '/'))) {
		char *end;
		*p++ = '\0';
		if (*p) {
			db = strtoul(p, &end, 10);
			if (*end || db > 65535 || *p == '-' || *p == '+')
				return co_errf(err, errlen, "bad Redis database number in %s",
				               shown);
		}
	}
	co_hostport hp;
	const char *why = co_hostport_parse(host, 0, &hp);
	if (why && (!host[0] || strcmp(why, "no host") == 0))
		return co_errf(err, errlen, "no Redis host in %s", shown);
	if (why)
		return co_errf(err, errlen, "bad Redis %s in %s: %s",
		               strstr(why, "port") ? "port" : "host", shown, why);
	if (hp.port)
		port = hp.port;
	co_redis_auth auth = {.user = user[0] ? user : NULL,
	                      .password = password[0] ? password : NULL};
	*out = co_cache_redis_new(hp.host, (unsigned)port, (unsigned)db, &auth, prefix, conf, err,
	                          errlen);
	explicit_bzero(password, sizeof(password));
	explicit_bzero(buf, sizeof(buf));
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
	if (strncmp(spec, "redis://", 8) == 0)
		return open_redis(spec, conf, out, err, errlen);
	if (strncmp(spec, "rediss://", 9) == 0)
		return co_errf(
		    err, errlen, "%s",
		    "rediss:// (Redis over TLS) is not supported: this build's hiredis has "
		    "no TLS; use redis:// over a TLS tunnel (e.g. stunnel) or a trusted "
		    "network");
	return co_errf(
	    err, errlen,
	    "unknown cache '%.80s' (lmdb:PATH, redis://HOST[:PORT][/DB], memory or none)",
	    co_cache_spec_redact(spec, shown, sizeof(shown)));
}
