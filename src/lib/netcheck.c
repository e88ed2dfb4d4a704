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
	unsigned n4, n6;
	uint32_t own4[OWN_MAX]; /* host order */
	struct in6_addr own6[OWN_MAX];
};

int co_netcheck_add(co_netcheck *nc, const struct sockaddr *sa)
{
	/* copied out: a struct sockaddr promises less alignment */
	if (sa->sa_family == AF_INET && nc->n4 < OWN_MAX) {
		struct sockaddr_in s4;
		memcpy(&s4, sa, sizeof(s4));
		nc->own4[nc->n4++] = ntohl(s4.sin_addr.s_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && nc->n6 < OWN_MAX) {
		struct sockaddr_in6 s6;
		memcpy(&s6, sa, sizeof(s6));
		nc->own6[nc->n6++] = s6.sin6_addr;
		return 0;
	}
	return -1;
}

co_netcheck *co_netcheck_new(void)
{
	co_netcheck *nc = calloc(1, sizeof(*nc));
	struct ifaddrs *ifa = NULL;

	if (!nc)
		return NULL;
	/* No interface list: the ranges below still catch the usual cases. */
	if (getifaddrs(&ifa) < 0)
		return nc;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr)
			(void)co_netcheck_add(nc, i->ifa_addr); /* full: the ranges still apply */
	freeifaddrs(ifa);
	return nc;
}

void co_netcheck_free(co_netcheck *nc)
{
	free(nc);
}

/* ---- IPv4 ---------------------------------------------------------------- */

typedef struct range4 {
	uint32_t net;
	unsigned bits;
	co_net_verdict v;
	const char *why;
	const char *why6; /* the same, found inside an IPv6 address */
} range4;

#define INSIDE " inside an IPv6 address"
#define R4(net, bits, v, why)                                                                      \
	{                                                                                          \
		net, bits, v, why, why INSIDE                                                      \
	}

/* IPv4 ranges we do not probe (RFC 6890 and its updates). */
static const range4 v4[] = {
    R4(0xffffffff, 32, CO_NET_NEVER, "broadcast address"),
    R4(0x00000000, 8, CO_NET_NEVER, "unspecified address"),
    R4(0x7f000000, 8, CO_NET_PRIVATE, "loopback address"),
    R4(0x0a000000, 8, CO_NET_PRIVATE, "private address"),
    R4(0xac100000, 12, CO_NET_PRIVATE, "private address"),
    R4(0xc0a80000, 16, CO_NET_PRIVATE, "private address"),
    R4(0x64400000, 10, CO_NET_PRIVATE, "shared (CGNAT) address"),
    R4(0xa9fe0000, 16, CO_NET_PRIVATE, "link-local address"),
    R4(0xc0000200, 24, CO_NET_PRIVATE, "documentation address"),
    R4(0xc6336400, 24, CO_NET_PRIVATE, "documentation address"),
    R4(0xcb007100, 24, CO_NET_PRIVATE, "documentation address"),
    R4(0xc6120000, 15, CO_NET_PRIVATE, "benchmarking address"),
    R4(0xe0000000, 4, CO_NET_NEVER, "multicast address"),
    R4(0xf0000000, 4, CO_NET_NEVER, "reserved address"),
};

static const range4 own4 = R4(0, 0, CO_NET_PRIVATE, "this host's own address");

static const range4 *find4(const co_netcheck *nc, uint32_t a)
{
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		uint32_t mask = v4[i].bits ? 0xffffffffu << (32 - v4[i].bits) : 0;
		if ((a & mask) == v4[i].net)
			return &v4[i];
	}
	for (unsigned i = 0; nc && i < nc->n4; i++)
		if (nc->own4[i] == a)
			return &own4;
	return NULL;
}

/* ---- IPv6 ---------------------------------------------------------------- */

typedef struct range6 {
	uint8_t net[16];
	unsigned bits;
	co_net_verdict v;
	const char *why;
} range6;

/* IPv6 ranges we do not probe, whatever they might embed (RFC 6890 and
 * the IANA special-purpose registry).  The local-use NAT64 prefix
 * 64:ff9b:1::/48 (RFC 8215) places the IPv4 address where its operator's
 * prefix length says, which we cannot know: all of it is private. */
static const range6 v6[] = {
    {{0}, 128, CO_NET_NEVER, "unspecified address"},
    {{[15] = 1}, 128, CO_NET_PRIVATE, "loopback address"},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, CO_NET_PRIVATE, "local-use NAT64 address"},
    {{0x01, 0x00}, 64, CO_NET_NEVER, "discard-only address"},
    {{0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48, CO_NET_PRIVATE, "benchmarking address"},
    {{0x20, 0x01, 0x00, 0x20}, 28, CO_NET_NEVER, "overlay identifier (ORCHIDv2)"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, CO_NET_PRIVATE, "documentation address"},
    {{0x3f, 0xff}, 20, CO_NET_PRIVATE, "documentation address"},
    {{0xfc}, 7, CO_NET_PRIVATE, "unique local address"},
    {{0xfe, 0x80}, 10, CO_NET_PRIVATE, "link-local address"},
    {{0xfe, 0xc0}, 10, CO_NET_PRIVATE, "site-local address"},
    {{0xff}, 8, CO_NET_NEVER, "multicast address"},
};

static bool in_prefix(const uint8_t *a, const uint8_t *net, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, net, whole) != 0)
		return false;
	return rest == 0 || ((a[whole] ^ net[whole]) & (0xffu << (8 - rest))) == 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Prefixes that carry an IPv4 address: packets to them end up at that
 * IPv4 host (a translator, a relay or a tunnel takes them there). */
typedef enum embed_at { LAST_32, SIXTOFOUR, TEREDO } embed_at;

static const struct embedding {
	uint8_t net[16];
	unsigned bits;
	embed_at at;
} embeddings[] = {
    {{[10] = 0xff, [11] = 0xff}, 96, LAST_32}, /* ::ffff:0:0/96 IPv4-mapped */
    {{[8] = 0xff, [9] = 0xff}, 96, LAST_32},   /* ::ffff:0:0:0/96 IPv4-translated */
    {{0}, 96, LAST_32},                        /* ::/96 IPv4-compatible */
    {{0x00, 0x64, 0xff, 0x9b}, 96, LAST_32},   /* 64:ff9b::/96 NAT64 */
    {{0x20, 0x02}, 16, SIXTOFOUR},             /* 2002::/16 6to4: bits 16-47 */
    {{0x20, 0x01, 0x00, 0x00}, 32, TEREDO},    /* 2001::/32 Teredo */
};

unsigned co_netcheck_embedded(const struct in6_addr *a, uint32_t v4out[2])
{
	const uint8_t *b = a->s6_addr;

	for (size_t i = 0; i < sizeof(embeddings) / sizeof(embeddings[0]); i++) {
		if (!in_prefix(b, embeddings[i].net, embeddings[i].bits))
			continue;
		switch (embeddings[i].at) {
		case LAST_32:
			v4out[0] = get32(b + 12);
			return 1;
		case SIXTOFOUR:
			v4out[0] = get32(b + 2);
			return 1;
		case TEREDO:
			/* the server (bits 32-63) and the client, whose
			 * address is stored inverted in the last 32 bits */
			v4out[0] = get32(b + 4);
			v4out[1] = ~get32(b + 12);
			return 2;
		}
	}
	return 0;
}

static co_net_verdict check6(const co_netcheck *nc, const struct in6_addr *a, const char **why)
{
	uint32_t inner[2];
	unsigned n;
	co_net_verdict v = CO_NET_OK;

	for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		if (in_prefix(a->s6_addr, v6[i].net, v6[i].bits)) {
			*why = v6[i].why;
			return v6[i].v;
		}
	}
	/* An embedded IPv4 address gets the IPv4 checks; the worst wins. */
	n = co_netcheck_embedded(a, inner);
	for (unsigned i = 0; i < n; i++) {
		const range4 *r = find4(nc, inner[i]);
		if (r && r->v > v) {
			v = r->v;
			*why = r->why6;
		}
	}
	if (v != CO_NET_OK)
		return v;
	for (unsigned i = 0; nc && i < nc->n6; i++) {
		if (memcmp(&nc->own6[i], a, sizeof(*a)) == 0) {
			*why = own4.why;
			return CO_NET_PRIVATE;
		}
	}
	return CO_NET_OK;
}

co_net_verdict co_netcheck_addr(const co_netcheck *nc, const struct sockaddr_storage *ss,
                                bool allow_private, const char **why)
{
	const char *w = "";
	co_net_verdict v;

	if (ss->ss_family == AF_INET) {
		const range4 *r =
		    find4(nc, ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr));
		v = r ? r->v : CO_NET_OK;
		w = r ? r->why : "";
	} else if (ss->ss_family == AF_INET6) {
		v = check6(nc, &((const struct sockaddr_in6 *)ss)->sin6_addr, &w);
	} else {
		v = CO_NET_NEVER, w = "unknown address family";
	}
	if (v == CO_NET_PRIVATE && allow_private)
		v = CO_NET_OK;
	if (why)
		*why = w;
	return v;
}
