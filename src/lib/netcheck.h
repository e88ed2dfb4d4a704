/*
 * Where a callout may go.  An MX host or an address literal that
 * resolves to loopback, a private network (RFC 1918, RFC 6598 shared,
 * IPv6 ULA), link-local, or one of this host's own addresses is not
 * contacted unless allowed: a verifier reachable by anyone (an HTTP API)
 * must not become a way into the networks behind it.  Addresses that are
 * never a mail server (unspecified, multicast, broadcast, 240.0.0.0/4)
 * are refused always.
 */
#ifndef CO_NETCHECK_H
#define CO_NETCHECK_H

#include <stdbool.h>
#include <sys/socket.h>

typedef struct co_netcheck co_netcheck;

/* This host's addresses, read once (getifaddrs); NULL when out of memory. */
co_netcheck *co_netcheck_new(void);
void co_netcheck_free(co_netcheck *nc);

typedef enum co_net_verdict {
	CO_NET_OK = 0,
	CO_NET_PRIVATE, /* loopback, private, link-local, ours: only when allowed */
	CO_NET_NEVER    /* unspecified, multicast, reserved: never */
} co_net_verdict;

/* What kind of destination ss is; allow_private turns PRIVATE into OK.
 * why (may be NULL) gets a few words for the verdict's text. */
co_net_verdict co_netcheck_addr(const co_netcheck *nc, const struct sockaddr_storage *ss,
                                bool allow_private, const char **why);

#endif
