/* A SOCKS5 proxy as the options write it (proxy.h). */
#include <stdio.h>
#include <string.h>

#include "hostport.h"
#include "proxy.h"

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* s[0..n) with %XX decoded into out (size 256); false when malformed,
 * empty, longer than 255 bytes or holding a NUL. */
static bool decode(const char *s, size_t n, char *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
				return false;
			c = hex(s[i + 1]) * 16 + hex(s[i + 2]);
			i += 2;
		}
		if (c == 0 || k >= 255)
			return false;
		out[k++] = (char)c;
	}
	out[k] = '\0';
	return k > 0;
}

const char *co_proxy_parse(const char *spec, co_proxy *out)
{
	static const char scheme[] = "socks5://";
	const char *p, *at, *colon;
	co_hostport hp;
	const char *why;

	memset(out, 0, sizeof(*out));
	if (!spec || strncmp(spec, scheme, sizeof(scheme) - 1) != 0)
		return "expected socks5://[USER:PASSWORD@]HOST:PORT";
	p = spec + sizeof(scheme) - 1;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return "blanks or control characters in the proxy";
	at = strrchr(p, '@');
	if (at) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (!colon)
			return "expected USER:PASSWORD@ before the proxy's host";
		if (!decode(p, (size_t)(colon - p), out->user) ||
		    !decode(colon + 1, (size_t)(at - colon - 1), out->pass))
			return "the user and the password must be 1 to 255 bytes (%XX for ':', "
			       "'@', '/')";
		p = at + 1;
	}
	if (strchr(p, '/') && strcmp(strchr(p, '/'), "/") != 0)
		return "nothing may follow the proxy's port";
	char hostport[300];
	size_t n = strcspn(p, "/");
	if (n >= sizeof(hostport))
		return "the proxy's host is too long";
	memcpy(hostport, p, n);
	hostport[n] = '\0';
	if ((why = co_hostport_parse(hostport, CO_HP_NEED_PORT, &hp)))
		return why;
	memcpy(out->host, hp.host, sizeof(out->host));
	out->port = hp.port;
	return NULL;
}

/* Append n bytes of s to out[*k], leaving room for the NUL. */
static void append(char *out, size_t len, size_t *k, const char *s, size_t n)
{
	while (n-- && *k + 1 < len)
		out[(*k)++] = *s++;
}

/* One spec, its password starred, appended at out[*k]. */
static void redact_one(const char *spec, char *out, size_t len, size_t *k)
{
	const char *at = strrchr(spec, '@'), *rest = strstr(spec, "://"), *colon;

	rest = rest ? rest + 3 : spec;
	colon = at && at > rest ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
	if (colon) {
		append(out, len, k, spec, (size_t)(colon + 1 - spec));
		append(out, len, k, "***", 3);
		append(out, len, k, at, strlen(at));
	} else {
		append(out, len, k, spec, strlen(spec));
	}
}

const char *co_proxy_redact(const char *spec, char *out, size_t len)
{
	const char *cur = spec ? spec : "";
	char one[CO_PROXY_SPEC_MAX];
	size_t k = 0;

	if (!len)
		return out;
	for (bool first = true; co_proxy_next(&cur, one, sizeof(one)); first = false) {
		if (!first)
			append(out, len, &k, ", ", 2);
		redact_one(one, out, len, &k);
	}
	out[k] = '\0';
	return out;
}

bool co_proxy_next(const char **cursor, char *one, size_t len)
{
	const char *p = *cursor, *end;
	size_t n;

	p += strspn(p, ", \t");
	if (!*p)
		return false;
	end = p + strcspn(p, ",");
	*cursor = end;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - p);
	if (n >= len) /* too long for any spec: keep it too long to parse */
		n = len - 1;
	memcpy(one, p, n);
	one[n] = '\0';
	return true;
}

const char *co_proxy_parse_list(const char *specs, unsigned *n)
{
	const char *cur = specs, *why;
	char one[CO_PROXY_SPEC_MAX];
	co_proxy px;

	*n = 0;
	while (co_proxy_next(&cur, one, sizeof(one))) {
		if ((why = co_proxy_parse(one, &px)))
			return why;
		++*n;
	}
	return *n ? NULL : "expected socks5://[USER:PASSWORD@]HOST:PORT";
}

const char *co_proxy_label(const co_proxy *p, char *out, size_t len)
{
	snprintf(out, len, strchr(p->host, ':') ? "[%s]:%u" : "%s:%u", p->host, p->port);
	return out;
}
