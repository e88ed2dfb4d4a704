/*
 * Where a callout may go.  An MX host or an address literal that
 * resolves to loopback, a private network (RFC 1918, RFC 6598 shared,
 * IPv6 ULA and site-local), link-local, documentation or benchmarking
 * ranges, or one of this host's own addresses is not contacted unless
 * allowed: a verifier reachable by anyone (an HTTP API) must not become a
 * way into the networks behind it.  Addresses that are never a mail
 * server (unspecified, multicast, broadcast, 240.0.0.0/4, discard-only)
 * are refused always.
 *
 * An IPv6 address that carries an IPv4 address (IPv4-mapped, -translated
 * and -compatible, NAT64 64:ff9b::/96, 6to4, Teredo's server and client)
 * gets the IPv4 checks on what it carries: a translator or relay would
 * take the connection there.  The local-use NAT64 prefix 64:ff9b:1::/48
 * is private as a whole (where it carries the IPv4 address depends on
 * its operator's prefix length).
 */
#ifndef CO_NETCHECK_H
#define CO_NETCHECK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct co_netcheck co_netcheck;

/* This host's addresses, read once (getifaddrs); NULL when out of memory. */
co_netcheck *co_netcheck_new(void);
void co_netcheck_free(co_netcheck *nc);

/* Count sa (IPv4 or IPv6) as one of this host's addresses; -1 for another
 * family or when the table is full.  co_netcheck_new() adds the
 * interfaces' addresses with it. */
int co_netcheck_add(co_netcheck *nc, const struct sockaddr *sa);

typedef enum co_net_verdict {
	CO_NET_OK = 0,
	CO_NET_PRIVATE, /* loopback, private, link-local, ours: only when allowed */
	CO_NET_NEVER    /* unspecified, multicast, reserved: never */
} co_net_verdict;

/* What kind of destination ss is; allow_private turns PRIVATE into OK.
 * why (may be NULL) gets a few words for the verdict's text. */
co_net_verdict co_netcheck_addr(const co_netcheck *nc, const struct sockaddr_storage *ss,
                                bool allow_private, const char **why);

/* The IPv4 addresses (host order) that a carries to an IPv4 host: 0, 1,
 * or 2 for Teredo (server, then client). */
unsigned co_netcheck_embedded(const struct in6_addr *a, uint32_t v4[2]);

#endif
