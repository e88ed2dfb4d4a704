/*
 * Routes: hosts the operator names for a domain (callout_ctx_add_route),
 * asked in place of its MX.
 */
#ifndef CO_ROUTE_H
#define CO_ROUTE_H

#include <sys/queue.h>

#include <callout/callout.h>

#include "addr.h"
#include "dns.h"

#define ROUTE_HOSTS_MAX CO_DNS_HOSTS_MAX

typedef struct route {
	LIST_ENTRY(route) link; /* in the context's routes */
	char domain[CO_DOMAIN_MAX + 1];
	unsigned n;
	char *names[ROUTE_HOSTS_MAX];
	unsigned ports[ROUTE_HOSTS_MAX];
} route;

/* The route of a domain (normalised), or NULL. */
const route *co_route_find(const callout_ctx *ctx, const char *domain);
/* Free every route of the context. */
void co_routes_free(callout_ctx *ctx);

#endif
