/*
 * MX lookups in flight: probes of one domain share one.
 *
 * A forged-sender run makes thousands of probes of one domain at once;
 * they ask the resolver once.  (c-ares keeps no cache; a local caching
 * resolver does the rest.)
 */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "hash.h"
#include "mx_flight.h"

typedef struct mx_flight {
	LIST_ENTRY(mx_flight) link; /* in its bucket */
	callout_ctx *ctx;
	co_dns_req *req;
	LIST_HEAD(, co_mx_waiter) waiters;
	bool delivering;
	unsigned max_mx;
	char domain[CO_DOMAIN_MAX + 1];
} mx_flight;

static struct mx_bucket *mx_bucket(callout_ctx *ctx, const char *domain)
{
	return &ctx->mx_flights[co_hash(domain, strlen(domain)) % MX_BUCKETS];
}

void co_mx_leave(co_mx_waiter *w)
{
	mx_flight *f = w->f;

	LIST_REMOVE(w, link);
	w->f = NULL;
	if (LIST_EMPTY(&f->waiters) && !f->delivering) {
		co_dns_cancel(f->req);
		LIST_REMOVE(f, link);
		free(f);
	}
}

static void on_mx_flight(void *arg, const co_dns_result *res)
{
	mx_flight *f = arg;
	co_mx_waiter *w;

	co_ctx_dns_health(f->ctx, res);
	f->delivering = true; /* waiters may leave while others are told */
	f->req = NULL;
	LIST_REMOVE(f, link);
	while ((w = LIST_FIRST(&f->waiters))) {
		LIST_REMOVE(w, link);
		w->f = NULL;
		w->cb(w->arg, res);
	}
	free(f);
}

bool co_mx_join(callout_ctx *ctx, const char *domain, unsigned max_mx, co_mx_waiter *w,
                co_dns_cb cb, void *arg)
{
	struct mx_bucket *head = mx_bucket(ctx, domain);
	mx_flight *f;

	LIST_FOREACH(f, head, link)
	if (f->max_mx == max_mx && strcmp(f->domain, domain) == 0)
		break;
	if (!f) {
		if (!(f = calloc(1, sizeof(*f))))
			return false;
		snprintf(f->domain, sizeof(f->domain), "%s", domain);
		f->ctx = ctx;
		f->max_mx = max_mx;
		if (!(f->req =
		          co_dns_resolve_mx(ctx->dns, f->domain, f->max_mx, on_mx_flight, f))) {
			free(f);
			return false;
		}
		LIST_INSERT_HEAD(head, f, link);
	}
	w->f = f;
	w->cb = cb;
	w->arg = arg;
	LIST_INSERT_HEAD(&f->waiters, w, link);
	return true;
}
