/* Where a callout may go (see netcheck.h). */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netcheck.h"

#define OWN_MAX 64

struct co_netcheck {
	unsigned n;
	struct sockaddr_storage own[OWN_MAX];
};

co_netcheck *co_netcheck_new(void)
{
	co_netcheck *nc = calloc(1, sizeof(*nc));
	struct ifaddrs *ifa = NULL;

	if (!nc)
		return NULL;
	/* No interface list: the ranges below still catch the usual cases. */
	if (getifaddrs(&ifa) < 0)
		return nc;
	for (struct ifaddrs *i = ifa; i && nc->n < OWN_MAX; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			memcpy(&nc->own[nc->n++], i->ifa_addr, sizeof(struct sockaddr_in));
		else if (i->ifa_addr->sa_family == AF_INET6)
			memcpy(&nc->own[nc->n++], i->ifa_addr, sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
	return nc;
}

void co_netcheck_free(co_netcheck *nc)
{
	free(nc);
}

typedef struct range {
	uint32_t net;
	unsigned bits;
	co_net_verdict v;
	const char *why;
} range;

/* IPv4 ranges we do not probe. */
static const range v4[] = {
	{0x00000000, 8, CO_NET_NEVER, "unspecified address"},
	{0x7f000000, 8, CO_NET_PRIVATE, "loopback address"},
	{0x0a000000, 8, CO_NET_PRIVATE, "private address"},
	{0xac100000, 12, CO_NET_PRIVATE, "private address"},
	{0xc0a80000, 16, CO_NET_PRIVATE, "private address"},
	{0x64400000, 10, CO_NET_PRIVATE, "shared (CGNAT) address"},
	{0xa9fe0000, 16, CO_NET_PRIVATE, "link-local address"},
	{0xe0000000, 4, CO_NET_NEVER, "multicast address"},
	{0xf0000000, 4, CO_NET_NEVER, "reserved address"},
};

static co_net_verdict check_v4(uint32_t a, const char **why)
{
	if (a == 0xffffffffu) {
		*why = "broadcast address";
		return CO_NET_NEVER;
	}
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		uint32_t mask = v4[i].bits ? 0xffffffffu << (32 - v4[i].bits) : 0;
		if ((a & mask) == v4[i].net) {
			*why = v4[i].why;
			return v4[i].v;
		}
	}
	return CO_NET_OK;
}

static co_net_verdict check_v6(const struct in6_addr *a, const char **why)
{
	const uint8_t *b = a->s6_addr;

	if (IN6_IS_ADDR_UNSPECIFIED(a)) {
		*why = "unspecified address";
		return CO_NET_NEVER;
	}
	if (IN6_IS_ADDR_LOOPBACK(a)) {
		*why = "loopback address";
		return CO_NET_PRIVATE;
	}
	if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
		uint32_t v;
		memcpy(&v, b + 12, 4);
		return check_v4(ntohl(v), why);
	}
	if (IN6_IS_ADDR_MULTICAST(a)) {
		*why = "multicast address";
		return CO_NET_NEVER;
	}
	if (IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a)) {
		*why = "link-local address";
		return CO_NET_PRIVATE;
	}
	if ((b[0] & 0xfe) == 0xfc) {
		*why = "unique local address";
		return CO_NET_PRIVATE;
	}
	return CO_NET_OK;
}

static bool is_own(const co_netcheck *nc, const struct sockaddr_storage *ss)
{
	for (unsigned i = 0; nc && i < nc->n; i++) {
		const struct sockaddr_storage *o = &nc->own[i];
		if (o->ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET &&
		    ((const struct sockaddr_in *)o)->sin_addr.s_addr ==
		        ((const struct sockaddr_in *)ss)->sin_addr.s_addr)
			return true;
		if (ss->ss_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)o)->sin6_addr,
		           &((const struct sockaddr_in6 *)ss)->sin6_addr, sizeof(struct in6_addr)) == 0)
			return true;
	}
	return false;
}

co_net_verdict co_netcheck_addr(const co_netcheck *nc, const struct sockaddr_storage *ss,
                                bool allow_private, const char **why)
{
	const char *w = "";
	co_net_verdict v;

	if (ss->ss_family == AF_INET)
		v = check_v4(ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr), &w);
	else if (ss->ss_family == AF_INET6)
		v = check_v6(&((const struct sockaddr_in6 *)ss)->sin6_addr, &w);
	else
		v = CO_NET_NEVER, w = "unknown address family";
	if (v == CO_NET_OK && is_own(nc, ss))
		v = CO_NET_PRIVATE, w = "this host's own address";
	if (v == CO_NET_PRIVATE && allow_private)
		v = CO_NET_OK;
	if (why)
		*why = w;
	return v;
}
