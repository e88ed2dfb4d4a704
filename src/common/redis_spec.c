/* A Redis server as a spec writes it (redis_spec.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "errf.h"
#include "hostport.h"
#include "redis_spec.h"

#define SCHEME "redis://"

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

/* The parse of co_redis_spec_parse, its pieces cut in buf (len bytes),
 * which the caller clears; shown: the spec for messages. */
static int parse(const char *spec, const char *shown, char *buf, size_t len, co_redis_spec *out,
                 char *err, size_t errlen)
{
	unsigned long db = 0;
	char *p, *host, *q;

	if (spec && strncmp(spec, "rediss://", 9) == 0)
		return co_errf(
		    err, errlen, "%s",
		    "rediss:// (Redis over TLS) is not supported: this build's hiredis has "
		    "no TLS; use redis:// over a TLS tunnel (e.g. stunnel) or a trusted "
		    "network");
	if (!spec || strncmp(spec, SCHEME, strlen(SCHEME)) != 0)
		return co_errf(err, errlen,
		               "not a Redis spec: %s (expected "
		               "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P])",
		               shown);
	if (strlen(spec) - strlen(SCHEME) >= len)
		return co_errf(err, errlen, "cache spec too long: %.40s...", shown);
	strcpy(buf, spec + strlen(SCHEME));
	if ((q = strchr(buf, '?'))) {
		*q++ = '\0';
		if (strncmp(q, "prefix=", 7) != 0 || strlen(q + 7) > CO_REDIS_PREFIX_MAX ||
		    strpbrk(q + 7, "&=\t\r\n "))
			return co_errf(err, errlen, "bad Redis option in %s (only ?prefix=P)",
			               shown);
		strcpy(out->prefix, q + 7);
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
		if (strlen(host) >= sizeof(out->user) || strlen(colon + 1) >= sizeof(out->password))
			return co_errf(err, errlen, "Redis user or password too long in %s", shown);
		strcpy(out->user, host);
		strcpy(out->password, colon + 1);
		if (!percent_decode(out->user) || !percent_decode(out->password))
			return co_errf(err, errlen, "bad %%-escape in the Redis credentials of %s",
			               shown);
		if (out->user[0] && !out->password[0])
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
	memcpy(out->host, hp.host, sizeof(out->host));
	if (hp.port)
		out->port = hp.port;
	out->db = (unsigned)db;
	return 0;
}

int co_redis_spec_parse(const char *spec, co_redis_spec *out, char *err, size_t errlen)
{
	char buf[512], shown[512];

	*out = (co_redis_spec){.port = CO_REDIS_PORT_DEFAULT, .prefix = CO_REDIS_PREFIX_DEFAULT};
	co_redis_spec_redact(spec, shown, sizeof(shown));
	int rc = parse(spec, shown, buf, sizeof(buf), out, err, errlen);
	explicit_bzero(buf, sizeof(buf));
	if (rc)
		explicit_bzero(out, sizeof(*out));
	return rc;
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

const char *co_redis_spec_redact(const char *spec, char *out, size_t len)
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
