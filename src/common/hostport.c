/*
 * HOST[:PORT] (hostport.h).
 */
#include <arpa/inet.h>
#include <string.h>

#include "hostport.h"

static bool parse_port(const char *s, unsigned *port)
{
	unsigned long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > 65535)
			return false;
	}
	if (v == 0)
		return false;
	*port = (unsigned)v;
	return true;
}

/* A host name: dot-separated labels of 1 to 63 letters, digits, hyphens
 * (not first or last) and underscores (container and /etc/hosts names
 * have them, and resolvers take them), at most 253 octets, not digits
 * and dots only (that is a bad IPv4 address). */
static bool valid_name(const char *s, size_t n)
{
	size_t label = 0;
	bool letter = false;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!alpha && !(c >= '0' && c <= '9') && c != '-' && c != '_')
			return false;
		if (c == '-' && label == 0)
			return false;
		letter |= alpha || c == '-' || c == '_';
		if (++label > 63)
			return false;
	}
	return letter;
}

const char *co_hostport_parse(const char *s, unsigned flags, co_hostport *hp)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *host = s, *end, *port = NULL;
	size_t n;

	if (!s || !*s)
		return "empty";
	memset(hp, 0, sizeof(*hp));
	if (*s == '[') {
		if (!(end = strchr(s, ']')))
			return "no ']' after the IPv6 address";
		host = s + 1;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return "expected ':PORT' after ']'";
		hp->kind = CO_HOST_IPV6;
	} else {
		const char *colon = strchr(s, ':');
		end = s + strlen(s);
		if (colon && strchr(colon + 1, ':')) {
			/* two colons or more: an IPv6 address, bare */
			if (!(flags & CO_HP_BARE_V6))
				return "write an IPv6 address in brackets: [IPv6]:PORT";
			hp->kind = CO_HOST_IPV6;
		} else if (colon) {
			end = colon;
			port = colon + 1;
		}
	}
	n = (size_t)(end - host);
	if (n == 0)
		return "no host";
	if (n >= sizeof(hp->host))
		return "the host is too long";
	memcpy(hp->host, host, n);
	hp->host[n] = '\0';
	if (hp->kind == CO_HOST_IPV6) {
		if (inet_pton(AF_INET6, hp->host, addr) != 1)
			return "not an IPv6 address";
	} else if (inet_pton(AF_INET, hp->host, addr) == 1) {
		hp->kind = CO_HOST_IPV4;
	} else if (flags & CO_HP_NUMERIC) {
		return "not a numeric IPv4 or [IPv6] address";
	} else if (!valid_name(hp->host, n)) {
		return "not a host name or an IP address";
	} else {
		for (char *p = hp->host; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	if (port && !parse_port(port, &hp->port))
		return "expected a port from 1 to 65535";
	if (!port && (flags & CO_HP_NEED_PORT))
		return "no port (expected HOST:PORT)";
	return NULL;
}
