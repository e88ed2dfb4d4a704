/* calloutd.conf's value syntax: pure checks of strings (config_syntax.h). */
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_syntax.h"
#include "hostport.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- small helpers ---------------------------------------------------- */

bool cfg_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool cfg_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool cfg_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

char cfg_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool cfg_is_print(char c)
{
	return c >= 0x20 && c < 0x7f;
}

bool cfg_all_print(const char *s)
{
	for (; *s; s++)
		if (!cfg_is_print(*s))
			return false;
	return true;
}

bool cfg_has_blank(const char *s)
{
	return strpbrk(s, " \t") != NULL;
}

/* An absolute path without blanks (the reader already refused control
 * characters; UTF-8 is fine). */
bool cfg_valid_path(const char *s)
{
	return s[0] == '/' && !cfg_has_blank(s);
}

/* Digits only (no sign, no blanks), within [min, max]. */
bool cfg_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!cfg_is_digit(*s))
		return false;
	for (; *s; s++) {
		if (!cfg_is_digit(*s))
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (ULONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cfg_parse_port(const char *s, unsigned *port)
{
	unsigned long v;

	if (!cfg_parse_uint(s, 1, 65535, &v))
		return false;
	*port = (unsigned)v;
	return true;
}

bool cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Letters, digits and hyphens in dot-separated labels of 1 to 63
 * characters, at most 253 in all (no trailing dot). */
bool cfg_valid_hostname(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
		} else if (cfg_is_alpha(s[i]) || cfg_is_digit(s[i]) || s[i] == '-') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

bool cfg_is_ip(int family, const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(family, s, buf) == 1;
}

bool cfg_is_any_ip(const char *s)
{
	return cfg_is_ip(AF_INET, s) || cfg_is_ip(AF_INET6, s);
}

/* A domain as written in the file: ASCII, lower-cased in place, one
 * trailing dot dropped.  A dotted-quad is not a domain. */
const char *cfg_normalise_domain(char *d)
{
	size_t n = strlen(d);

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)d[i] >= 0x80)
			return "not ASCII: write an internationalised domain as its A-label "
			       "(xn--...)";
		d[i] = cfg_lower(d[i]);
	}
	if (n > 1 && d[n - 1] == '.')
		d[--n] = '\0';
	if (!cfg_valid_hostname(d) || cfg_is_ip(AF_INET, d))
		return "expected a domain name (letters, digits, hyphens and dots)";
	return NULL;
}

/* local@domain, ASCII; the domain is lower-cased in place.  NULL or why not. */
const char *cfg_normalise_address(char *a)
{
	char *at = strrchr(a, '@');
	size_t local;

	if (!at)
		return "expected an address local@domain";
	local = (size_t)(at - a);
	if (local == 0 || local > 64)
		return "the local part must have 1 to 64 characters";
	for (size_t i = 0; i < local; i++) {
		char c = a[i];
		if (!cfg_is_print(c) || c == ' ' || c == '"' || c == ',' || c == '<' || c == '>' ||
		    c == '@' || c == '\\')
			return "the local part must be printable ASCII without blanks, quotes, "
			       "commas, '<', '>', '\\' or '@'";
	}
	if (a[0] == '.' || at[-1] == '.' || strstr(a, ".."))
		return "misplaced '.' in the local part";
	return cfg_normalise_domain(at + 1);
}

/* "<a@b>" -> "a@b". */
char *cfg_strip_angles(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

/* "IP[:PORT]", "[IPv6]:PORT" or a bare IPv6 address (c-ares' syntax). */
bool cfg_valid_dns_server(const char *s)
{
	co_hostport hp;

	return co_hostport_parse(s, CO_HP_NUMERIC | CO_HP_BARE_V6, &hp) == NULL;
}

/* HOST[:PORT]: a host name (put in lower case), an IPv4 address or
 * [IPv6]. */
bool cfg_valid_route_host(char *s)
{
	co_hostport hp;

	if (co_hostport_parse(s, 0, &hp))
		return false;
	if (hp.kind == CO_HOST_NAME)
		memcpy(s, hp.host, strlen(hp.host));
	return true;
}

/* What a proxy pool's name may be: a word the HTTP API and the logs
 * show as it is. */
const char *cfg_bad_proxy_name(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 63)
		return "expected a name of 1 to 63 letters, digits, '-', '_' or '.'";
	if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
		return "expected a name of letters, digits, '-', '_' or '.'";
	return NULL;
}

/* "ADDR[/PREFIX]" (IPv6 may be in brackets); host bits are cleared. */
bool cfg_parse_net(char *s, cd_net *net)
{
	char *slash = strchr(s, '/'), *addr = s;
	unsigned long prefix;
	size_t n;

	memset(net, 0, sizeof(*net));
	if (slash)
		*slash = '\0';
	n = strlen(addr);
	if (n > 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr[n - 1] = '\0';
		addr++;
		if (!cfg_is_ip(AF_INET6, addr))
			return false;
	}
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6;
	else
		return false;
	prefix = net->family == AF_INET ? 32 : 128;
	if (slash && !cfg_parse_uint(slash + 1, 0, prefix, &prefix))
		return false;
	net->prefix = (unsigned)prefix;
	for (unsigned bit = net->prefix; bit < 128; bit++)
		net->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	return true;
}

/* "unix:/path", "inet:IPv4:PORT" or "inet:[IPv6]:PORT". */
const char *cfg_parse_listen(const char *s, bool unix_ok, cd_listen *l)
{
	memset(l, 0, sizeof(*l));
	if (strncmp(s, "unix:", 5) == 0) {
		if (!unix_ok)
			return "only inet:HOST:PORT sockets here";
		if (s[5] != '/')
			return "expected unix:/ABSOLUTE/PATH";
		if (strlen(s + 5) >= sizeof(l->path))
			return "socket path too long (at most 107 characters)";
		l->is_unix = true;
		l->mode = 0660;
		strcpy(l->path, s + 5);
		return NULL;
	}
	if (strncmp(s, "inet:", 5) != 0)
		return unix_ok ? "expected unix:/PATH, inet:IPv4:PORT or inet:[IPv6]:PORT"
		               : "expected inet:IPv4:PORT or inet:[IPv6]:PORT";
	co_hostport hp;
	const char *why = co_hostport_parse(s + 5, CO_HP_NUMERIC | CO_HP_NEED_PORT, &hp);
	if (why)
		return why;
	if (strlen(hp.host) >= sizeof(l->host))
		return "the address is too long";
	memcpy(l->host, hp.host, strlen(hp.host) + 1);
	l->port = hp.port;
	return NULL;
}

/* libmilter's socket syntax, checked. */
const char *cfg_check_milter_listen(const char *s)
{
	const char *p;
	int family;

	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		p = strchr(s, ':') + 1;
		if (!cfg_valid_path(p))
			return "expected unix:/ABSOLUTE/PATH";
		if (strlen(p) >= 108)
			return "socket path too long (at most 107 characters)";
		return NULL;
	}
	if (strncmp(s, "inet:", 5) == 0) {
		p = s + 5;
		family = AF_INET;
	} else if (strncmp(s, "inet6:", 6) == 0) {
		p = s + 6;
		family = AF_INET6;
	} else {
		return "expected unix:/PATH, local:/PATH, inet:PORT[@HOST] or inet6:PORT[@HOST]";
	}
	char port[8];
	const char *at = strchr(p, '@');
	size_t n = at ? (size_t)(at - p) : strlen(p);
	unsigned pn;
	if (n >= sizeof(port))
		return "expected a port from 1 to 65535";
	memcpy(port, p, n);
	port[n] = '\0';
	if (!cfg_parse_port(port, &pn))
		return "expected a port from 1 to 65535";
	if (!at)
		return NULL;
	char host[256];
	const char *h = at + 1;
	n = strlen(h);
	if (n >= sizeof(host) || n == 0)
		return "expected a host after '@'";
	if (h[0] == '[' && n > 2 && h[n - 1] == ']') {
		memcpy(host, h + 1, n - 2);
		host[n - 2] = '\0';
		return cfg_is_ip(family, host) ? NULL
		                               : "expected a numeric address in the brackets";
	}
	if (cfg_is_ip(family, h) || (cfg_valid_hostname(h) && !cfg_is_ip(AF_INET, h)))
		return NULL;
	return family == AF_INET ? "expected an IPv4 address or a host name after '@'"
	                         : "expected an IPv6 address or a host name after '@'";
}
