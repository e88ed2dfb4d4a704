/*
 * Routes: the hosts configured for a domain (callout_ctx_add_route), each
 * "HOST[:PORT]", parsed once and looked up by every probe of the domain.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "route.h"

static void route_free(route *r)
{
	for (unsigned i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r);
}

/* One "HOST[:PORT]" of a route: host name, IPv4, or [IPv6]. */
static callout_status parse_route_host(const char *s, size_t len, route *r)
{
	char host[CO_DOMAIN_MAX + 1], err[128];
	unsigned port = 0;
	const char *end = s + len, *colon;

	if (len == 0 || r->n >= ROUTE_HOSTS_MAX)
		return CALLOUT_EINVAL;
	if (*s == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || (size_t)(close - s - 1) >= sizeof(host))
			return CALLOUT_EINVAL;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon && *colon != ':')
			return CALLOUT_EINVAL;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return CALLOUT_EINVAL;
	} else {
		colon = memchr(s, ':', len);
		size_t hl = colon ? (size_t)(colon - s) : len;
		if (hl == 0 || hl >= sizeof(host))
			return CALLOUT_EINVAL;
		memcpy(host, s, hl);
		host[hl] = '\0';
		struct in_addr a4;
		if (inet_pton(AF_INET, host, &a4) != 1) {
			char norm[CO_DOMAIN_MAX + 1];
			if (co_domain_normalise(host, norm, err, sizeof(err)) < 0)
				return CALLOUT_EINVAL;
			snprintf(host, sizeof(host), "%s", norm);
		}
	}
	if (colon) {
		char *pend;
		unsigned long p = strtoul(colon + 1, &pend, 10);
		if (pend != end || colon + 1 == end || p == 0 || p > 65535)
			return CALLOUT_EINVAL;
		port = (unsigned)p;
	}
	if (!(r->names[r->n] = strdup(host)))
		return CALLOUT_ENOMEM;
	r->ports[r->n++] = port;
	return CALLOUT_OK;
}

CALLOUT_API callout_status callout_ctx_add_route(callout_ctx *ctx, const char *domain,
                                                 const char *hosts)
{
	char err[128];
	callout_status st = CALLOUT_OK;

	if (!ctx || !domain || !hosts)
		return CALLOUT_EINVAL;
	route *r = calloc(1, sizeof(*r));
	if (!r)
		return CALLOUT_ENOMEM;
	if (co_domain_normalise(domain, r->domain, err, sizeof(err)) < 0) {
		st = CALLOUT_EINVAL;
		goto fail;
	}
	for (const char *p = hosts;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if ((st = parse_route_host(p, len, r)) != CALLOUT_OK)
			goto fail;
		if (!comma)
			break;
		p = comma + 1;
	}
	/* A later route for the same domain replaces the earlier one. */
	route *old;
	LIST_FOREACH(old, &ctx->routes, link)
	{
		if (strcmp(old->domain, r->domain) == 0) {
			LIST_INSERT_BEFORE(old, r, link);
			LIST_REMOVE(old, link);
			route_free(old);
			return CALLOUT_OK;
		}
	}
	LIST_INSERT_HEAD(&ctx->routes, r, link);
	return CALLOUT_OK;
fail:
	route_free(r);
	return st;
}

const route *co_route_find(const callout_ctx *ctx, const char *domain)
{
	const route *r;

	LIST_FOREACH(r, &ctx->routes, link)
	if (strcmp(r->domain, domain) == 0)
		return r;
	return NULL;
}

void co_routes_free(callout_ctx *ctx)
{
	route *r;

	while ((r = LIST_FIRST(&ctx->routes))) {
		LIST_REMOVE(r, link);
		route_free(r);
	}
}
