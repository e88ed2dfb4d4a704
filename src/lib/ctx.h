/*
 * The inside of a context (callout_ctx), shared by the files that make up
 * the engine: engine.c (the context, requests, the public API), probe.c
 * (the probes), route.c (configured routes), mx_flight.c (shared MX
 * lookups).  Also the settings a verification runs with.
 */
#ifndef CO_CTX_H
#define CO_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include <callout/callout.h>

#include "addr.h"
#include "cache.h"
#include "cache_rules.h"
#include "conn.h"
#include "dns.h"
#include "netcheck.h"
#include "pool.h"

#define FLIGHT_BUCKETS 1024
#define MX_BUCKETS     256

/* Options resolved and copied: what a verification runs with. */
typedef struct settings {
	unsigned flags;
	char helo[CO_DOMAIN_MAX + 1];
	char from[CO_PATH_MAX + 1];     /* "" for the null sender */
	char fallback[CO_PATH_MAX + 1]; /* "" for none */
	bool sender_utf8;
	struct sockaddr_storage source;
	socklen_t sourcelen; /* 0: any */
	unsigned port;
	unsigned connect_ms, command_ms, deadline_ms;
	unsigned max_mx, max_connections;
	struct co_proxy_group *proxy; /* the pool to go through; NULL: direct */
	/* A greylisting re-check's probe (recheck.c): joins no probe in
	 * flight and is not answered by a tempfail record of the cache. */
	bool fresh;
} settings;

struct route;
struct co_probe;
struct mx_flight;
typedef struct co_rechecks co_rechecks;

struct callout_ctx {
	struct event_base *base;
	bool own_base;
	co_dns *dns;
	SSL_CTX *tls;
	struct co_proxies *proxies; /* SOCKS5 proxy pools and the domains' choices */
	unsigned proxy_sessions;    /* a pool's default cap per proxy */
	settings defaults;
	LIST_HEAD(route_list, route) routes;
	LIST_HEAD(request_list, callout_query) requests; /* for ctx_free */
	LIST_HEAD(probe_list, co_probe) probes;          /* for ctx_free */
	unsigned inflight;                               /* requests and probes */
	co_netcheck *net;                                /* where probes may go */
	co_cache *cache;                                 /* NULL: none */
	co_ttls ttls;
	unsigned cache_wait_ms;
	long long (*clock)(void *arg);
	void *clock_arg;
	void (*trace)(void *arg, const char *line); /* the probes' states; NULL: none */
	void *trace_arg;
	LIST_HEAD(flight_bucket, co_probe) flights[FLIGHT_BUCKETS]; /* probes requests may join */
	co_pool *pool;                                              /* sessions and their limits */
	LIST_HEAD(mx_bucket, mx_flight) mx_flights[MX_BUCKETS];     /* MX lookups probes may join */
	/* The global cap: probes past the cache hold a slot; others wait at
	 * the gate, started from the loop as slots free up. */
	unsigned max_probes, max_queued, probing, ngated;
	TAILQ_HEAD(gate_list, co_probe) gate;
	struct event *gate_ev;
	/* DNS health: the outcome of the last lookup (callout_ctx_health) */
	bool dns_failing;
	unsigned long long dns_errors;
	char dns_error[128];
	co_rechecks *rechecks; /* greylisting re-checks (recheck.c); NULL: none */
	/* Told of the probes' answers, so that probe.c need not know who
	 * listens (recheck.c, which runs probes of its own): a probed answer
	 * (refresh: a background re-probe), and a cached tempfail.  Each
	 * returns the seconds until the address's re-check, 0: none. */
	unsigned (*probe_answered)(callout_ctx *ctx, const settings *set, const co_addr *addr,
	                           const callout_result *res, bool refresh);
	unsigned (*probe_pending)(callout_ctx *ctx, const settings *set, const co_addr *addr);
};

/* The wall clock of the cache: the caller's (tests) or time(). */
static inline int64_t co_ctx_now(const callout_ctx *ctx)
{
	return ctx->clock ? (int64_t)ctx->clock(ctx->clock_arg) : (int64_t)time(NULL);
}

/* Remember how the last lookup went, for callout_ctx_health. */
static inline void co_ctx_dns_health(callout_ctx *ctx, const co_dns_result *res)
{
	if (res->status != CO_DNS_TEMPFAIL) {
		ctx->dns_failing = false;
		return;
	}
	ctx->dns_failing = true;
	ctx->dns_errors++;
	snprintf(ctx->dns_error, sizeof(ctx->dns_error), "%s", res->detail);
}

/* Milliseconds since start, of the monotonic clock. */
static inline unsigned co_elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms =
	    (now.tv_sec - start->tv_sec) * 1000LL + (now.tv_nsec - start->tv_nsec) / 1000000;
	return ms < 0 ? 0 : (unsigned)ms;
}

/* A request's or a probe's deadline, from now. */
static inline void co_arm_deadline(struct event *timer, unsigned deadline_ms)
{
	struct timeval dl = {deadline_ms / 1000, (deadline_ms % 1000) * 1000};
	evtimer_add(timer, &dl);
}

#endif
