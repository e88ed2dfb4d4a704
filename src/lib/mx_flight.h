/*
 * MX lookups in flight: probes of one domain share one lookup.
 */
#ifndef CO_MX_FLIGHT_H
#define CO_MX_FLIGHT_H

#include <stdbool.h>
#include <sys/queue.h>

#include <callout/callout.h>

#include "dns.h"

/* One waiter of a lookup, kept by whoever waits (a probe). */
typedef struct co_mx_waiter {
	LIST_ENTRY(co_mx_waiter) link;
	struct mx_flight *f; /* NULL: not waiting */
	co_dns_cb cb;
	void *arg;
} co_mx_waiter;

/* Join the MX lookup of the domain in flight, or start one; cb(arg, res)
 * gets its answer.  Returns false when out of memory. */
bool co_mx_join(callout_ctx *ctx, const char *domain, unsigned max_mx, co_mx_waiter *w,
                co_dns_cb cb, void *arg);
/* Leave the lookup w waits on; the last one out cancels it. */
void co_mx_leave(co_mx_waiter *w);

#endif
