/*
 * The engine: the public API and the data flow of one verification.
 *
 *   request: parse address -> wait on a probe -> result
 *   probe:   cache lookup (address record, domain facts) -> [claim across
 *            processes] -> a slot under the global cap -> route, literal or
 *            DNS (MX -> hosts -> addresses) -> a job per address tried on
 *            the pool's sessions (limits, reuse, backoff: pool.c), next host
 *            while the answer is not about the mailbox -> cache store ->
 *            every waiter
 *
 * A request is what the caller holds; a probe is owned by the engine and
 * shared by identical requests in flight (single flight).  A probe whose
 * requests all went away still finishes into the cache.
 *
 * Each arrow is a module (addr.c, cache*.c, dns.c, pool.c, verdict.c);
 * this file orchestrates them and keeps the bounds: hosts, connections
 * and deadlines.  It also holds the context (the options resolved into
 * settings, the cache and the pool it opens, the configured routes) and
 * single flight, of probes and of MX lookups.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <callout/callout.h>

#include "addr.h"
#include "cache.h"
#include "cache_open.h"
#include "cache_rules.h"
#include "dns.h"
#include "hash.h"
#include "netcheck.h"
#include "pool.h"
#include "session.h"
#include "sockaddr.h"

#define ROUTE_HOSTS_MAX CO_DNS_HOSTS_MAX
#define FLIGHT_BUCKETS  1024
#define MX_BUCKETS      256
#define CLAIM_MARGIN_MS 5000
#define REFUSED_WHY_MAX (256 + INET6_ADDRSTRLEN + 64) /* "name [ip]: why" */

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
} settings;

typedef struct route {
	struct route *next;
	char domain[CO_DOMAIN_MAX + 1];
	unsigned n;
	char *names[ROUTE_HOSTS_MAX];
	unsigned ports[ROUTE_HOSTS_MAX];
} route;

struct callout_ctx {
	struct event_base *base;
	bool own_base;
	co_dns *dns;
	SSL_CTX *tls;
	settings defaults;
	route *routes;
	callout_query *queries; /* requests and probes, for ctx_free */
	unsigned inflight;
	co_netcheck *net; /* where probes may go */
	co_cache *cache;  /* NULL: none */
	co_ttls ttls;
	unsigned cache_wait_ms;
	long long (*clock)(void *arg);
	void *clock_arg;
	void (*trace)(void *arg, const char *line); /* the probes' states; NULL: none */
	void *trace_arg;
	callout_query *flights[FLIGHT_BUCKETS];   /* probes that requests may join */
	co_pool *pool;                            /* sessions and their limits */
	struct mx_flight *mx_flights[MX_BUCKETS]; /* MX lookups probes may join */
	/* The global cap: probes past the cache hold a slot; others wait at
	 * the gate, started from the loop as slots free up. */
	unsigned max_probes, max_queued, probing, ngated;
	callout_query *gate_head, *gate_tail;
	struct event *gate_ev;
	/* DNS health: the outcome of the last lookup (callout_ctx_health) */
	bool dns_failing;
	unsigned long long dns_errors;
	char dns_error[128];
};

/* What a probe looks up, alive while the lookup is pending. */
typedef struct lookup {
	char keys[CO_LOOKUP_KEYS][CO_REC_KEY_MAX];
	const char *kp[CO_LOOKUP_KEYS];
	co_rec recs[CO_LOOKUP_KEYS];
	bool found[CO_LOOKUP_KEYS];
} lookup;

/*
 * Where a probe is.  Every change goes through probe_enter(), which also
 * arms the deadline when the probe leaves PROBE_NEW and tells the trace.
 *
 *   new -> cache -> [claim] -> [gate] -> dns -> session <-> next -> [store] -> done
 *            \-> done (answered from the cache; a refresh goes on to claim)
 *   any state -> done by a conclusion (deadline, DNS answer, limit, fault)
 */
typedef enum probe_state {
	PROBE_NEW,     /* made; started from the loop (its timer at 0) */
	PROBE_CACHE,   /* reading the cache */
	PROBE_CLAIM,   /* waiting for another node's probe of the address */
	PROBE_GATE,    /* waiting for one of max_probes slots */
	PROBE_DNS,     /* finding the hosts: MX, route or address literal */
	PROBE_SESSION, /* a job with the pool: a limit, connecting, the dialogue */
	PROBE_NEXT,    /* between sessions: another address, another sender */
	PROBE_STORE,   /* its records being committed with the loop's others */
	PROBE_DONE,    /* its waiters have their result */
	PROBE_STATES
} probe_state;

static const char *const probe_state_names[PROBE_STATES] = {
    [PROBE_NEW] = "new",   [PROBE_CACHE] = "cache", [PROBE_CLAIM] = "claim",
    [PROBE_GATE] = "gate", [PROBE_DNS] = "dns",     [PROBE_SESSION] = "session",
    [PROBE_NEXT] = "next", [PROBE_STORE] = "store", [PROBE_DONE] = "done",
};

struct callout_query {
	callout_ctx *ctx;
	callout_query *prev, *next;
	callout_cb cb;
	void *arg;
	settings set;
	co_addr addr;
	char random_rcpt[CO_LOCAL_MAX + CO_DOMAIN_MAX + 2];
	struct timespec start;
	struct event *timer; /* the deadline; also delivers syntax errors and
	                        starts probes from the loop */
	/* Requests wait on a probe; probes do the work. */
	bool is_probe;
	probe_state state;            /* probe: where it is (probe_enter) */
	callout_query *probe;         /* request: the probe it waits on */
	callout_query *waiters;       /* probe: its requests */
	callout_query *wnext, *wprev; /* request: in the probe's waiters */
	callout_query *fnext;         /* probe: in the flight table */
	bool in_flights;
	char key[CO_REC_KEY_MAX]; /* probe: cache key; "" when not cached */
	bool read_cache;
	bool refresh;                     /* probe: re-probing a valid entry */
	bool fallback_first, skip_random; /* probe: what domain facts said */
	bool saw_block;                   /* probe: its lookup found a "blocks us" fact */
	bool claimed;
	co_cache_req *cache_req;
	lookup *lk;
	bool ready; /* request: out holds its result */
	co_dns_req *dns_req;
	struct mx_flight *mxf; /* probe: the MX lookup it waits on */
	callout_query *mxnext, *mxprev;
	co_pool_job job;              /* probe: with the pool in PROBE_SESSION */
	bool probing;                 /* probe: holds one of max_probes slots */
	callout_query *gnext, *gprev; /* probe: at the gate */
	char limit_why[160];          /* probe: the limit it waits for */
	co_dns_host *hosts;
	unsigned nhosts;
	unsigned host_i, addr_i; /* the next address to try */
	unsigned connections;
	const co_dns_host *cur_host;
	const struct sockaddr_storage *cur_addr;
	bool via_route;
	bool done;
	/* Retries on the same address change these. */
	bool use_fallback_now, no_tls_now;
	unsigned refused; /* addresses not contacted (netcheck.h) */
	char refused_why[REFUSED_WHY_MAX];
	unsigned held; /* addresses skipped: backing off (pool.h) */
	char held_why[160 + CO_DOMAIN_MAX + 4];
	struct evbuffer *transcript;
	/* The outcome so far. */
	co_session_outcome out;
	bool have_out;
	char detail[160];
};

/* ---- settings ---------------------------------------------------------- */

static void default_helo(char *out, size_t len)
{
	char host[256] = "";
	struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *ai = NULL;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	if (!strchr(host, '.') && getaddrinfo(host, NULL, &hints, &ai) == 0) {
		if (ai && ai->ai_canonname && strchr(ai->ai_canonname, '.'))
			snprintf(host, sizeof(host), "%s", ai->ai_canonname);
		freeaddrinfo(ai);
	}
	if (!co_helo_valid(host))
		snprintf(host, sizeof(host), "localhost");
	snprintf(out, len, "%s", host);
}

static bool is_null_sender(const char *s)
{
	return !s || !*s || strcmp(s, "<>") == 0;
}

static callout_status parse_sender(const char *in, char *out, bool *utf8)
{
	co_addr a;
	char err[128];

	if (is_null_sender(in)) {
		out[0] = '\0';
		return CALLOUT_OK;
	}
	if (co_addr_parse(in, &a, err, sizeof(err)) < 0)
		return CALLOUT_EINVAL;
	memcpy(out, a.mailbox, sizeof(a.mailbox));
	if (utf8)
		*utf8 = a.utf8;
	return CALLOUT_OK;
}

static callout_status parse_source(const char *src, settings *set)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&set->source;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&set->source;

	set->sourcelen = 0;
	if (!src || !*src)
		return CALLOUT_OK;
	memset(&set->source, 0, sizeof(set->source));
	if (inet_pton(AF_INET, src, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		set->sourcelen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, src, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		set->sourcelen = sizeof(*sin6);
	} else {
		return CALLOUT_EINVAL;
	}
	return CALLOUT_OK;
}

/* Copy a caller's options over the defaults, tolerating older (shorter)
 * structs. */
static callout_status load_options(const callout_options *in, callout_options *out)
{
	callout_options_init(out);
	if (!in)
		return CALLOUT_OK;
	if (in->struct_size < offsetof(callout_options, flags) + sizeof(in->flags))
		return CALLOUT_EINVAL;
	memcpy(out, in, in->struct_size < sizeof(*out) ? in->struct_size : sizeof(*out));
	out->struct_size = sizeof(*out);
	return CALLOUT_OK;
}

static unsigned or_default(unsigned v, unsigned def)
{
	return v ? v : def;
}

/* Resolve options into settings.  base supplies the HELO name when the
 * options leave it out. */
static callout_status make_settings(const callout_options *o, const char *base_helo, settings *set)
{
	callout_options def;
	callout_status st;

	callout_options_init(&def);
	memset(set, 0, sizeof(*set));
	set->flags = o->flags;
	if (o->helo) {
		if (!co_helo_valid(o->helo))
			return CALLOUT_EINVAL;
		snprintf(set->helo, sizeof(set->helo), "%s", o->helo);
	} else if (base_helo) {
		snprintf(set->helo, sizeof(set->helo), "%s", base_helo);
	} else {
		default_helo(set->helo, sizeof(set->helo));
	}
	if ((st = parse_sender(o->sender, set->from, &set->sender_utf8)) != CALLOUT_OK)
		return st;
	if (o->fallback_sender && !is_null_sender(o->fallback_sender)) {
		bool utf8 = false;
		if ((st = parse_sender(o->fallback_sender, set->fallback, &utf8)) != CALLOUT_OK)
			return st;
		set->sender_utf8 |= utf8;
	}
	if ((st = parse_source(o->source_address, set)) != CALLOUT_OK)
		return st;
	if (o->port > 65535)
		return CALLOUT_EINVAL;
	set->port = or_default(o->port, def.port);
	set->connect_ms = or_default(o->connect_timeout_ms, def.connect_timeout_ms);
	set->command_ms = or_default(o->command_timeout_ms, def.command_timeout_ms);
	set->deadline_ms = or_default(o->deadline_ms, def.deadline_ms);
	set->max_mx = or_default(o->max_mx, def.max_mx);
	if (set->max_mx > CO_DNS_HOSTS_MAX)
		set->max_mx = CO_DNS_HOSTS_MAX;
	set->max_connections = or_default(o->max_connections, def.max_connections);
	return CALLOUT_OK;
}

/* ---- context ----------------------------------------------------------- */

static callout_status need_tls(callout_ctx *ctx)
{
	if (ctx->tls)
		return CALLOUT_OK;
	ctx->tls = SSL_CTX_new(TLS_client_method());
	if (!ctx->tls)
		return CALLOUT_ETLS;
	/* Opportunistic TLS, as MTAs do on port 25: encryption without
	 * authentication; a callout has nothing secret to protect. */
	SSL_CTX_set_verify(ctx->tls, SSL_VERIFY_NONE, NULL);
	return CALLOUT_OK;
}

/* The wall clock of the cache: the caller's (tests) or time(). */
static int64_t ctx_now(void *arg)
{
	const callout_ctx *ctx = arg;
	return ctx->clock ? (int64_t)ctx->clock(ctx->clock_arg) : (int64_t)time(NULL);
}

static callout_status open_cache(callout_ctx *ctx, const callout_options *o)
{
	callout_options def;
	char err[256];

	callout_options_init(&def);
	ctx->ttls = (co_ttls){
	    .positive = or_default(o->cache_positive_ttl, def.cache_positive_ttl),
	    .refresh = or_default(o->cache_refresh, def.cache_refresh),
	    .negative = or_default(o->cache_negative_ttl, def.cache_negative_ttl),
	    .tempfail = o->cache_tempfail_ttl, /* 0: not cached */
	    .domain = or_default(o->cache_domain_ttl, def.cache_domain_ttl),
	    .domain_negative =
	        or_default(o->cache_domain_negative_ttl, def.cache_domain_negative_ttl),
	    .unreachable = or_default(o->cache_unreachable_ttl, def.cache_unreachable_ttl),
	};
	ctx->cache_wait_ms = or_default(o->cache_wait_ms, def.cache_wait_ms);
	ctx->clock = o->clock;
	ctx->trace = o->trace;
	ctx->trace_arg = o->trace_arg;
	ctx->clock_arg = o->clock_arg;
	co_cache_conf conf = {
	    .base = ctx->base,
	    .max_bytes = o->cache_max_bytes,
	    .log = o->log,
	    .log_arg = o->log_arg,
	    .now = ctx_now,
	    .now_arg = ctx,
	};
	int r = co_cache_open(o->cache, &conf, &ctx->cache, err, sizeof(err));
	if (r < 0) {
		if (o->log)
			o->log(o->log_arg, err);
		return r == CO_CACHE_ENOMEM ? CALLOUT_ENOMEM : CALLOUT_EINVAL;
	}
	return CALLOUT_OK;
}

static void on_gate(evutil_socket_t fd, short what, void *arg);

/* The limits on sessions and probes, 0 taking the default. */
static callout_status open_pool(callout_ctx *ctx, const callout_options *o)
{
	callout_options def;

	callout_options_init(&def);
	co_pool_limits l = {
	    .domain_sessions = or_default(o->domain_sessions, def.domain_sessions),
	    .host_sessions = or_default(o->host_sessions, def.host_sessions),
	    .domain_rate = or_default(o->domain_rate, def.domain_rate),
	    .domain_burst = or_default(o->domain_burst, def.domain_burst),
	    .host_rate = or_default(o->host_rate, def.host_rate),
	    .host_burst = or_default(o->host_burst, def.host_burst),
	    .session_rcpts = or_default(o->session_rcpts, def.session_rcpts),
	    .session_idle_ms = o->session_idle_ms, /* 0 is a value: not kept */
	    .backoff_failures = or_default(o->backoff_failures, def.backoff_failures),
	    .backoff_ms = or_default(o->backoff_ms, def.backoff_ms),
	    .max_queued = or_default(o->max_queued, def.max_queued),
	    .shared = (o->flags & CALLOUT_F_LOCAL_LIMITS) ? NULL : ctx->cache,
	};
	/* A burst is a count of tokens, and no more than a minute's worth
	 * when the rate is lower. */
	if (l.domain_burst == CALLOUT_UNLIMITED)
		l.domain_burst = l.domain_rate;
	if (l.host_burst == CALLOUT_UNLIMITED)
		l.host_burst = l.host_rate;
	if (l.backoff_ms > 86400000u)
		l.backoff_ms = 86400000u;
	if (l.session_idle_ms > 600000u)
		l.session_idle_ms = 600000u;
	ctx->max_probes = or_default(o->max_probes, def.max_probes);
	ctx->max_queued = l.max_queued;
	ctx->gate_ev = event_new(ctx->base, -1, 0, on_gate, ctx);
	ctx->pool = co_pool_new(ctx->base, &l);
	return ctx->gate_ev && ctx->pool ? CALLOUT_OK : CALLOUT_ENOMEM;
}

CALLOUT_API callout_status callout_ctx_new(struct event_base *base, const callout_options *opts,
                                           callout_ctx **out)
{
	callout_options o;
	callout_status st;
	char err[128];

	if (!out)
		return CALLOUT_EINVAL;
	if ((st = load_options(opts, &o)) != CALLOUT_OK)
		return st;
	callout_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return CALLOUT_ENOMEM;
	if ((st = make_settings(&o, NULL, &ctx->defaults)) != CALLOUT_OK)
		goto fail;
	ctx->base = base;
	if (!base) {
		ctx->base = event_base_new();
		ctx->own_base = true;
		if (!ctx->base) {
			st = CALLOUT_EEVENT;
			goto fail;
		}
	}
	ctx->dns = co_dns_new(ctx->base, o.dns_servers, or_default(o.dns_timeout_ms, 5000), err,
	                      sizeof(err));
	if (!ctx->dns) {
		st = errno == ENOMEM ? CALLOUT_ENOMEM : CALLOUT_EDNS;
		goto fail;
	}
	if ((o.flags & CALLOUT_F_TLS) && (st = need_tls(ctx)) != CALLOUT_OK)
		goto fail;
	if (!(ctx->net = co_netcheck_new())) {
		st = CALLOUT_ENOMEM;
		goto fail;
	}
	if ((st = open_cache(ctx, &o)) != CALLOUT_OK)
		goto fail;
	if ((st = open_pool(ctx, &o)) != CALLOUT_OK)
		goto fail;
	*out = ctx;
	return CALLOUT_OK;
fail:
	callout_ctx_free(ctx);
	return st;
}

CALLOUT_API struct event_base *callout_ctx_base(callout_ctx *ctx)
{
	return ctx->base;
}

static void query_free(callout_query *q);

CALLOUT_API void callout_ctx_free(callout_ctx *ctx)
{
	if (!ctx)
		return;
	while (ctx->queries) {
		callout_query *q = ctx->queries;
		callout_cb cb = q->cb;
		void *arg = q->arg;
		query_free(q);
		if (cb)
			cb(arg, CALLOUT_ECANCELLED, NULL);
	}
	co_dns_free(ctx->dns);
	/* Before the loop runs down: a Redis connection or an idle session
	 * would keep it busy. */
	co_cache_free(ctx->cache);
	co_pool_free(ctx->pool);
	if (ctx->gate_ev)
		event_free(ctx->gate_ev);
	if (ctx->own_base && ctx->base) {
		/* Let closing connections flush their QUIT and free themselves. */
		event_base_dispatch(ctx->base);
		event_base_free(ctx->base);
	}
	SSL_CTX_free(ctx->tls);
	co_netcheck_free(ctx->net);
	while (ctx->routes) {
		route *r = ctx->routes;
		ctx->routes = r->next;
		for (unsigned i = 0; i < r->n; i++)
			free(r->names[i]);
		free(r);
	}
	free(ctx);
}

CALLOUT_API callout_status callout_ctx_stats(callout_ctx *ctx, callout_stats *out, size_t len)
{
	callout_stats st;
	unsigned queued;

	if (!ctx || !out)
		return CALLOUT_EINVAL;
	co_pool_stats(ctx->pool, &st.sessions, &st.idle_sessions, &queued, &st.hosts_backing_off);
	st.probing = ctx->probing;
	st.waiting = ctx->ngated + queued;
	memcpy(out, &st, len < sizeof(st) ? len : sizeof(st));
	return CALLOUT_OK;
}

CALLOUT_API callout_status callout_ctx_health(callout_ctx *ctx, callout_health *out, size_t len)
{
	callout_health h = {.cache_backend = "none", .cache_up = true, .dns_up = true};

	if (!ctx || !out)
		return CALLOUT_EINVAL;
	if (ctx->cache) {
		h.cache_backend = ctx->cache->ops->name;
		h.cache_up = !ctx->cache->faulty;
		h.cache_errors = ctx->cache->errors;
		snprintf(h.cache_error, sizeof(h.cache_error), "%s", ctx->cache->fault_msg);
	}
	co_pool_health(ctx->pool, &h);
	h.dns_up = !ctx->dns_failing;
	h.dns_errors = ctx->dns_errors;
	if (ctx->dns_failing)
		snprintf(h.dns_error, sizeof(h.dns_error), "%s", ctx->dns_error);
	memcpy(out, &h, len < sizeof(h) ? len : sizeof(h));
	return CALLOUT_OK;
}

CALLOUT_API const char *callout_cache_spec_redact(const char *spec, char *out, size_t len)
{
	return co_cache_spec_redact(spec, out, len);
}

CALLOUT_API callout_status callout_ctx_run(callout_ctx *ctx)
{
	while (ctx->inflight > 0)
		if (event_base_loop(ctx->base, EVLOOP_ONCE) < 0)
			return CALLOUT_EEVENT;
	return CALLOUT_OK;
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
	for (route **pp = &ctx->routes; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->domain, r->domain) == 0) {
			route *old = *pp;
			r->next = old->next;
			*pp = r;
			for (unsigned i = 0; i < old->n; i++)
				free(old->names[i]);
			free(old);
			return CALLOUT_OK;
		}
	}
	r->next = ctx->routes;
	ctx->routes = r;
	return CALLOUT_OK;
fail:
	for (unsigned i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r);
	return st;
}

static const route *find_route(const callout_ctx *ctx, const char *domain)
{
	for (const route *r = ctx->routes; r; r = r->next)
		if (strcmp(r->domain, domain) == 0)
			return r;
	return NULL;
}

/* ---- one verification -------------------------------------------------- */

static unsigned elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms =
	    (now.tv_sec - start->tv_sec) * 1000LL + (now.tv_nsec - start->tv_nsec) / 1000000;
	return ms < 0 ? 0 : (unsigned)ms;
}

static void arm_deadline(callout_query *q);

/* Out of the list of probes waiting for a slot. */
static void gate_unlink(callout_query *p)
{
	callout_ctx *ctx = p->ctx;

	if (p->gprev)
		p->gprev->gnext = p->gnext;
	else
		ctx->gate_head = p->gnext;
	if (p->gnext)
		p->gnext->gprev = p->gprev;
	else
		ctx->gate_tail = p->gprev;
	p->gnext = p->gprev = NULL;
	ctx->ngated--;
}

/* The one way a probe changes state; detail (printf) says why or where,
 * for the trace. */
__attribute__((format(printf, 3, 4))) static void probe_enter(callout_query *p, probe_state s,
                                                              const char *detail, ...)
{
	callout_ctx *ctx = p->ctx;
	probe_state from = p->state;
	char line[1024], more[400] = "";
	va_list ap;

	p->state = s;
	if (from == PROBE_NEW && s != PROBE_NEW)
		arm_deadline(p); /* the timer that started it is the deadline now */
	if (from == PROBE_GATE && s != PROBE_GATE)
		gate_unlink(p);
	if (from == PROBE_SESSION && s != PROBE_NEXT && s != PROBE_SESSION)
		co_pool_cancel(ctx->pool, &p->job); /* concluded while the pool had it */
	if (!ctx->trace)
		return;
	if (detail) {
		va_start(ap, detail);
		vsnprintf(more, sizeof(more), detail, ap);
		va_end(ap);
	}
	snprintf(line, sizeof(line), "%5u ms <%s> %s -> %s%s%s", elapsed_ms(&p->start),
	         p->addr.mailbox, probe_state_names[from], probe_state_names[s],
	         more[0] ? ": " : "", more);
	ctx->trace(ctx->trace_arg, line);
}

/* ---- the flight table: probes that identical requests join ------------- */

static size_t key_bucket(const char *key)
{
	return co_hash(key, strlen(key)) % FLIGHT_BUCKETS;
}

static callout_query *flight_find(callout_ctx *ctx, const char *key, bool refresh)
{
	for (callout_query *p = ctx->flights[key_bucket(key)]; p; p = p->fnext)
		if (p->refresh == refresh && strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

static void flight_add(callout_ctx *ctx, callout_query *p)
{
	callout_query **head = &ctx->flights[key_bucket(p->key)];
	p->fnext = *head;
	*head = p;
	p->in_flights = true;
}

static void flight_remove(callout_ctx *ctx, callout_query *p)
{
	if (!p->in_flights)
		return;
	for (callout_query **pp = &ctx->flights[key_bucket(p->key)]; *pp; pp = &(*pp)->fnext) {
		if (*pp == p) {
			*pp = p->fnext;
			break;
		}
	}
	p->in_flights = false;
}

/* ---- requests and probes ------------------------------------------------ */

static void detach(callout_query *w)
{
	callout_query *p = w->probe;
	if (w->wprev)
		w->wprev->wnext = w->wnext;
	else
		p->waiters = w->wnext;
	if (w->wnext)
		w->wnext->wprev = w->wprev;
	w->probe = w->wnext = w->wprev = NULL;
}

/* A probe nobody waits for is worth finishing only when it is already
 * probing and its answer will be cached. */
static bool probe_unwanted(const callout_query *p)
{
	return !p->waiters && !p->done &&
	       (!p->key[0] || p->state == PROBE_NEW || p->lk || p->cache_req);
}

/* ---- MX lookups in flight: probes of one domain share one ------------------ */

/* A forged-sender run makes thousands of probes of one domain at once;
 * they ask the resolver once.  (c-ares keeps no cache; a local caching
 * resolver does the rest.) */
typedef struct mx_flight {
	struct mx_flight *next;
	callout_ctx *ctx;
	co_dns_req *req;
	callout_query *waiters;
	bool delivering;
	unsigned max_mx;
	char domain[CO_DOMAIN_MAX + 1];
} mx_flight;

static mx_flight **mx_bucket(callout_ctx *ctx, const char *domain)
{
	return &ctx->mx_flights[co_hash(domain, strlen(domain)) % MX_BUCKETS];
}

static void mx_unlink(callout_ctx *ctx, mx_flight *f)
{
	for (mx_flight **pp = mx_bucket(ctx, f->domain); *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			return;
		}
	}
}

/* A probe leaves its lookup; the last one out cancels it. */
static void mx_leave(callout_query *q)
{
	mx_flight *f = q->mxf;

	if (q->mxprev)
		q->mxprev->mxnext = q->mxnext;
	else
		f->waiters = q->mxnext;
	if (q->mxnext)
		q->mxnext->mxprev = q->mxprev;
	q->mxf = NULL;
	q->mxnext = q->mxprev = NULL;
	if (!f->waiters && !f->delivering) {
		co_dns_cancel(f->req);
		mx_unlink(q->ctx, f);
		free(f);
	}
}

static void on_dns(void *arg, const co_dns_result *res);

/* Remember how the last lookup went, for callout_ctx_health. */
static void dns_health(callout_ctx *ctx, const co_dns_result *res)
{
	if (res->status != CO_DNS_TEMPFAIL) {
		ctx->dns_failing = false;
		return;
	}
	ctx->dns_failing = true;
	ctx->dns_errors++;
	snprintf(ctx->dns_error, sizeof(ctx->dns_error), "%s", res->detail);
}

static void on_mx_flight(void *arg, const co_dns_result *res)
{
	mx_flight *f = arg;
	callout_query *q;

	dns_health(f->ctx, res);
	f->delivering = true; /* waiters may leave while others are told */
	f->req = NULL;
	mx_unlink(f->ctx, f);
	while ((q = f->waiters)) {
		f->waiters = q->mxnext;
		if (f->waiters)
			f->waiters->mxprev = NULL;
		q->mxf = NULL;
		q->mxnext = q->mxprev = NULL;
		on_dns(q, res);
	}
	free(f);
}

/* Join the MX lookup of this domain in flight, or start one.  Returns
 * false when out of memory. */
static bool mx_join(callout_query *p)
{
	callout_ctx *ctx = p->ctx;
	mx_flight **head = mx_bucket(ctx, p->addr.domain), *f;

	for (f = *head; f; f = f->next)
		if (f->max_mx == p->set.max_mx && strcmp(f->domain, p->addr.domain) == 0)
			break;
	if (!f) {
		if (!(f = calloc(1, sizeof(*f))))
			return false;
		snprintf(f->domain, sizeof(f->domain), "%s", p->addr.domain);
		f->ctx = ctx;
		f->max_mx = p->set.max_mx;
		if (!(f->req =
		          co_dns_resolve_mx(ctx->dns, f->domain, f->max_mx, on_mx_flight, f))) {
			free(f);
			return false;
		}
		f->next = *head;
		*head = f;
	}
	p->mxf = f;
	p->mxprev = NULL;
	p->mxnext = f->waiters;
	if (f->waiters)
		f->waiters->mxprev = p;
	f->waiters = p;
	return true;
}

/* ---- the global cap ------------------------------------------------------ */

static void start_dns(callout_query *p);
static void conclude(callout_query *q, callout_verdict v, callout_reason r, callout_stage stage,
                     const char *text);

/* Past the cache, a probe needs one of max_probes slots. */
static void gate_then_dns(callout_query *p)
{
	callout_ctx *ctx = p->ctx;

	if (ctx->max_probes == CALLOUT_UNLIMITED || ctx->probing < ctx->max_probes) {
		p->probing = true;
		ctx->probing++;
		start_dns(p);
		return;
	}
	snprintf(p->limit_why, sizeof(p->limit_why), "%u verifications in flight at once",
	         ctx->probing);
	if ((p->set.flags & CALLOUT_F_NO_LIMIT_WAIT) || ctx->ngated >= ctx->max_queued) {
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_LOCAL_LIMIT, CALLOUT_STAGE_NONE,
		         p->limit_why);
		return;
	}
	probe_enter(p, PROBE_GATE, "%s", p->limit_why);
	p->gnext = NULL;
	p->gprev = ctx->gate_tail;
	if (ctx->gate_tail)
		ctx->gate_tail->gnext = p;
	else
		ctx->gate_head = p;
	ctx->gate_tail = p;
	ctx->ngated++;
}

/* A probe ends: its slot goes to the next at the gate, from the loop. */
static void leave_gate(callout_query *p)
{
	callout_ctx *ctx = p->ctx;

	if (p->state == PROBE_GATE)
		gate_unlink(p);
	if (p->probing) {
		p->probing = false;
		ctx->probing--;
		if (ctx->gate_head)
			event_active(ctx->gate_ev, EV_TIMEOUT, 0);
	}
}

static void on_gate(evutil_socket_t fd, short what, void *arg)
{
	callout_ctx *ctx = arg;
	(void)fd;
	(void)what;

	while (ctx->gate_head &&
	       (ctx->max_probes == CALLOUT_UNLIMITED || ctx->probing < ctx->max_probes)) {
		callout_query *p = ctx->gate_head;
		p->probing = true;
		ctx->probing++;
		start_dns(p); /* leaves PROBE_GATE, and the gate's list */
	}
}

static void query_free(callout_query *q)
{
	callout_ctx *ctx = q->ctx;

	if (q->prev)
		q->prev->next = q->next;
	else
		ctx->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	ctx->inflight--;
	if (q->is_probe) {
		while (q->waiters)
			detach(q->waiters);
		flight_remove(ctx, q);
		if (q->cache_req)
			ctx->cache->ops->cancel(ctx->cache, q->cache_req);
		if (q->state == PROBE_STORE)
			ctx->cache->ops->unsync(ctx->cache, q);
		if (q->claimed && ctx->cache->ops->release)
			ctx->cache->ops->release(ctx->cache, q->key);
		free(q->lk);
	} else if (q->probe) {
		callout_query *p = q->probe;
		detach(q);
		if (probe_unwanted(p))
			query_free(p);
	}
	if (q->dns_req)
		co_dns_cancel(q->dns_req);
	if (q->mxf)
		mx_leave(q);
	if (q->is_probe && q->state == PROBE_SESSION)
		co_pool_cancel(ctx->pool, &q->job);
	if (q->is_probe)
		leave_gate(q);
	if (q->timer)
		event_free(q->timer);
	if (q->transcript)
		evbuffer_free(q->transcript);
	free(q->hosts);
	free(q);
}

/* Give a request its result and free it. */
static void finish_request(callout_query *w, const callout_result *res)
{
	callout_result r = *res;
	callout_cb cb = w->cb;
	void *arg = w->arg;

	r.ms = elapsed_ms(&w->start);
	w->done = true;
	/* Free after the callback: res may point into w. */
	cb(arg, CALLOUT_OK, &r);
	query_free(w);
}

/* A request's own result: a syntax error or its deadline. */
static void finish_request_own(callout_query *w)
{
	callout_result res = {
	    .verdict = w->out.verdict,
	    .reason = w->out.reason,
	    .stage = w->out.stage,
	    .code = w->out.code,
	    .enhanced = w->out.enhanced,
	    .text = w->out.text,
	    .address = w->addr.mailbox[0] ? w->addr.mailbox : w->detail,
	    .mx = "",
	    .ip = "",
	    .transcript = (w->set.flags & CALLOUT_F_TRANSCRIPT) ? "" : NULL,
	};
	finish_request(w, &res);
}

static void hand_to_waiters(callout_query *p, const callout_result *res)
{
	callout_query *w;

	p->done = true; /* callbacks that cancel other waiters must not free p */
	while ((w = p->waiters)) {
		detach(w);
		finish_request(w, res);
	}
}

/* Remember what a probe found. */
static void store(callout_query *p)
{
	callout_ctx *ctx = p->ctx;
	char ip[INET6_ADDRSTRLEN] = "";
	co_rec recs[CO_RULES_RECORDS_MAX];
	unsigned ttl[CO_RULES_RECORDS_MAX];
	char key[CO_REC_KEY_MAX];
	if (p->cur_addr)
		co_sockaddr_text((const struct sockaddr *)p->cur_addr, sizeof(*p->cur_addr), 0, ip,
		                 sizeof(ip));
	co_probe_facts f = {
	    .domain = p->addr.domain,
	    .mailbox = p->addr.mailbox,
	    .sender = p->set.from,
	    .fallback = p->set.fallback[0] ? p->set.fallback : NULL,
	    .verdict = p->out.verdict,
	    .reason = p->out.reason,
	    .stage = p->out.stage,
	    .code = p->out.code,
	    .enhanced = p->out.enhanced,
	    .text = p->out.text,
	    .mx = p->cur_host ? p->cur_host->name : "",
	    .ip = ip,
	    .tls = p->out.tls,
	    .catch_all = p->out.catch_all,
	    .random_rejected = p->out.random_rejected,
	    .session_blocked = p->out.session_blocked,
	    .block_seen = p->saw_block,
	    .fallback_used = p->out.fallback_used || p->use_fallback_now,
	    .refresh = p->refresh,
	    .no_negative = (p->set.flags & CALLOUT_F_NO_NEGATIVE_CACHE) != 0,
	};
	unsigned n = co_rules_records(&ctx->ttls, ctx_now(ctx), &f, recs, ttl);
	for (unsigned i = 0; i < n; i++) {
		if (!co_rec_key_of(&recs[i], key, sizeof(key)))
			continue;
		if (ttl[i])
			ctx->cache->ops->put(ctx->cache, key, &recs[i], ttl[i]);
		else
			ctx->cache->ops->forget(ctx->cache, key);
	}
}

/* Tell every waiter the probe's outcome and free the probe. */
static void hand_outcome(void *arg)
{
	callout_query *p = arg;
	callout_result res;
	char ip[INET6_ADDRSTRLEN] = "";
	const char *transcript = NULL;

	probe_enter(p, PROBE_DONE, "%s/%s", callout_verdict_name(p->out.verdict),
	            callout_reason_name(p->out.reason));
	memset(&res, 0, sizeof(res));
	res.verdict = p->out.verdict;
	res.reason = p->out.reason;
	res.stage = p->out.stage;
	res.code = p->out.code;
	res.enhanced = p->out.enhanced;
	res.text = p->out.text;
	res.address = p->addr.mailbox;
	res.mx = p->cur_host ? p->cur_host->name : "";
	if (p->cur_addr)
		co_sockaddr_text((const struct sockaddr *)p->cur_addr, sizeof(*p->cur_addr), 0, ip,
		                 sizeof(ip));
	res.ip = ip;
	res.catch_all = p->out.catch_all;
	res.tls = p->out.tls;
	if (p->transcript) {
		evbuffer_add(p->transcript, "", 1);
		transcript = (const char *)evbuffer_pullup(p->transcript, -1);
	}
	res.transcript = transcript ? transcript : (p->transcript ? "" : NULL);
	hand_to_waiters(p, &res);
	query_free(p); /* releases the claim, after the store */
}

/* A probe's outcome: store it, and once it is written (group commit: with
 * the other answers of this loop iteration), tell every waiter. */
static void deliver(callout_query *p)
{
	co_cache *c = p->ctx->cache;

	if (p->key[0])
		store(p);
	flight_remove(p->ctx, p);
	if (p->timer)
		evtimer_del(p->timer); /* the deadline no longer applies */
	if (p->key[0] && c->ops->sync && c->ops->sync(c, hand_outcome, p) == 1) {
		probe_enter(p, PROBE_STORE, NULL);
		p->done = true; /* nobody joins or drops it now */
		return;
	}
	hand_outcome(p);
}

static void conclude(callout_query *q, callout_verdict v, callout_reason r, callout_stage stage,
                     const char *text)
{
	memset(&q->out, 0, sizeof(q->out));
	q->out.verdict = v;
	q->out.reason = r;
	q->out.stage = stage;
	snprintf(q->out.text, sizeof(q->out.text), "%s", text);
	if (q->is_probe)
		deliver(q);
	else
		finish_request_own(q);
}

static void on_session(void *arg, const co_session_outcome *out);

/* The server to connect to: an address of a host, with its port. */
static socklen_t dest_addr(const callout_query *q, const co_dns_host *h,
                           const struct sockaddr_storage *a, struct sockaddr_storage *ss)
{
	unsigned port = h->port ? h->port : q->set.port;

	*ss = *a;
	if (ss->ss_family == AF_INET6) {
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		return sizeof(struct sockaddr_in6);
	}
	((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	return sizeof(struct sockaddr_in);
}

/* Ask the current address, on a session of the pool. */
static void start_session(callout_query *q)
{
	callout_ctx *ctx = q->ctx;
	char ip[INET6_ADDRSTRLEN], why[160];
	bool fallback_now = q->use_fallback_now;
	bool random = (q->set.flags & CALLOUT_F_CATCH_ALL) && !q->skip_random;

	q->connections++;
	memset(&q->job, 0, sizeof(q->job));
	q->job.addrlen = dest_addr(q, q->cur_host, q->cur_addr, &q->job.addr);
	if (q->transcript) {
		co_sockaddr_text((const struct sockaddr *)q->cur_addr, sizeof(*q->cur_addr), 0, ip,
		                 sizeof(ip));
		evbuffer_add_printf(q->transcript, "-- connecting to %s [%s]:%u%s%s\n",
		                    q->cur_host->name, ip,
		                    q->cur_host->port ? q->cur_host->port : q->set.port,
		                    fallback_now ? " (fallback sender)" : "",
		                    q->no_tls_now ? " (without TLS)" : "");
	}
	q->job.params = (co_session_params){
	    .source = q->set.sourcelen ? (const struct sockaddr *)&q->set.source : NULL,
	    .sourcelen = q->set.sourcelen,
	    .helo = q->set.helo,
	    .mail_from = fallback_now ? q->set.fallback : q->set.from,
	    .fallback_from = !fallback_now && q->set.fallback[0] ? q->set.fallback : NULL,
	    .smtputf8 = q->addr.utf8 || q->set.sender_utf8,
	    .vrfy = (q->set.flags & CALLOUT_F_VRFY) != 0,
	    .pipelining = !(q->set.flags & CALLOUT_F_NO_PIPELINING),
	    .tls = (q->set.flags & CALLOUT_F_TLS) && !q->no_tls_now ? ctx->tls : NULL,
	    .tls_name = q->cur_host->name,
	    .connect_timeout_ms = q->set.connect_ms,
	    .command_timeout_ms = q->set.command_ms,
	    .transcript = q->transcript,
	};
	q->job.domain = q->addr.domain;
	q->job.rcpt = q->addr.mailbox;
	q->job.random_rcpt = random ? q->random_rcpt : NULL;
	/* A transcript shows one verification's dialogue; VRFY asks one. */
	q->job.shared = !(q->set.flags & (CALLOUT_F_TRANSCRIPT | CALLOUT_F_VRFY));
	q->job.exempt = q->via_route;
	q->job.no_wait = (q->set.flags & CALLOUT_F_NO_LIMIT_WAIT) != 0;
	q->job.cb = on_session;
	q->job.arg = q;
	if (ctx->trace)
		co_sockaddr_text((const struct sockaddr *)&q->job.addr, q->job.addrlen, CO_SA_PORT,
		                 ip, sizeof(ip));
	probe_enter(q, PROBE_SESSION, "%s %s%s%s", q->cur_host->name, ctx->trace ? ip : "",
	            fallback_now ? " (fallback sender)" : "",
	            q->no_tls_now ? " (without TLS)" : "");
	why[0] = '\0';
	int r = co_pool_submit(ctx->pool, &q->job, why, sizeof(why));
	if (r < 0) {
		probe_enter(q, PROBE_NEXT, "%s", why);
		conclude(q, CALLOUT_TEMPFAIL, r == -2 ? CALLOUT_R_INTERNAL : CALLOUT_R_LOCAL_LIMIT,
		         CALLOUT_STAGE_CONNECT, why);
		return;
	}
	if (why[0])
		snprintf(q->limit_why, sizeof(q->limit_why), "%s", why);
}

/* Whether a probe may go to this address; routes are the operator's
 * choice and always may. */
static bool may_contact(callout_query *q, const co_dns_host *h, const struct sockaddr_storage *a)
{
	const char *why = "";
	char ip[INET6_ADDRSTRLEN];
	bool allow = q->via_route || (q->set.flags & CALLOUT_F_ALLOW_PRIVATE);

	if (co_netcheck_addr(q->ctx->net, a, allow, &why) == CO_NET_OK)
		return true;
	if (!q->refused++) {
		co_sockaddr_text((const struct sockaddr *)a, sizeof(*a), 0, ip, sizeof(ip));
		snprintf(q->refused_why, sizeof(q->refused_why), "%s [%s]: %s, not contacted",
		         h->name, ip, why);
	}
	if (q->transcript) {
		co_sockaddr_text((const struct sockaddr *)a, sizeof(*a), 0, ip, sizeof(ip));
		evbuffer_add_printf(q->transcript, "-- not connecting to %s [%s]: %s\n", h->name,
		                    ip, why);
	}
	return false;
}

/* Whether the pool holds sessions to this server back after failures;
 * routes are exempt. */
static bool backing_off(callout_query *q, const co_dns_host *h, const struct sockaddr_storage *a)
{
	struct sockaddr_storage ss;
	char why[160];

	if (q->via_route)
		return false;
	dest_addr(q, h, a, &ss);
	if (!co_pool_backing_off(q->ctx->pool, &ss, why, sizeof(why)))
		return false;
	if (!q->held++)
		snprintf(q->held_why, sizeof(q->held_why), "%s (%s)", why, h->name);
	if (q->transcript)
		evbuffer_add_printf(q->transcript, "-- not connecting to %s: %s\n", h->name, why);
	return true;
}

/* Try the next address of the next host, or give the last answer. */
static void try_next(callout_query *q)
{
	/* A domain known to refuse <> gets the fallback sender at once. */
	q->use_fallback_now = q->fallback_first && q->set.fallback[0];
	q->no_tls_now = false;
	while (q->host_i < q->nhosts && q->connections < q->set.max_connections) {
		const co_dns_host *h = &q->hosts[q->host_i];
		if (q->addr_i < h->naddr) {
			const struct sockaddr_storage *a = &h->addr[q->addr_i++];
			if (!may_contact(q, h, a) || backing_off(q, h, a))
				continue;
			q->cur_host = h;
			q->cur_addr = a;
			start_session(q);
			return;
		}
		q->host_i++;
		q->addr_i = 0;
	}
	if (!q->have_out && q->held) {
		conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_LOCAL_LIMIT, CALLOUT_STAGE_CONNECT,
		         q->held_why);
		return;
	}
	if (!q->have_out && q->refused) {
		conclude(q, CALLOUT_UNKNOWN, CALLOUT_R_PRIVATE_ADDRESS, CALLOUT_STAGE_CONNECT,
		         q->refused_why);
		return;
	}
	if (!q->have_out) {
		conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, CALLOUT_STAGE_CONNECT,
		         "no host could be tried");
		return;
	}
	deliver(q);
}

static void on_session(void *arg, const co_session_outcome *out)
{
	callout_query *q = arg;

	if (out->code)
		probe_enter(q, PROBE_NEXT, "%s/%s %d %s", callout_verdict_name(out->verdict),
		            callout_reason_name(out->reason), out->code, out->enhanced);
	else
		probe_enter(q, PROBE_NEXT, "%s/%s (%s)", callout_verdict_name(out->verdict),
		            callout_reason_name(out->reason), out->text);
	q->out = *out;
	q->have_out = true;
	if (out->retry_fallback && !q->use_fallback_now &&
	    q->connections < q->set.max_connections) {
		q->use_fallback_now = true;
		start_session(q);
		return;
	}
	if (out->retry_plain && !q->no_tls_now && q->connections < q->set.max_connections) {
		q->no_tls_now = true;
		start_session(q);
		return;
	}
	if (out->next_host) {
		try_next(q);
		return;
	}
	deliver(q);
}

/* A route's or an address literal's lookup (no MX flight): note how it
 * went, then go on. */
static void on_route_dns(void *arg, const co_dns_result *res)
{
	callout_query *q = arg;

	dns_health(q->ctx, res);
	on_dns(q, res);
}

static void on_dns(void *arg, const co_dns_result *res)
{
	callout_query *q = arg;

	q->dns_req = NULL;
	switch (res->status) {
	case CO_DNS_OK:
		break;
	case CO_DNS_NXDOMAIN:
		conclude(q, CALLOUT_INVALID, CALLOUT_R_NXDOMAIN, CALLOUT_STAGE_DNS, res->detail);
		return;
	case CO_DNS_NULL_MX:
		conclude(q, CALLOUT_INVALID, CALLOUT_R_NULL_MX, CALLOUT_STAGE_DNS, res->detail);
		return;
	case CO_DNS_NO_HOST:
		/* A route that does not resolve is our configuration, not
		 * evidence about the address. */
		if (q->via_route)
			conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, CALLOUT_STAGE_DNS,
			         res->detail);
		else
			conclude(q, CALLOUT_INVALID, CALLOUT_R_NO_MAIL_HOST, CALLOUT_STAGE_DNS,
			         res->detail);
		return;
	case CO_DNS_TEMPFAIL:
	default:
		conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_DNS_TEMPFAIL, CALLOUT_STAGE_DNS,
		         res->detail);
		return;
	}
	q->hosts = malloc(res->nhosts * sizeof(*q->hosts));
	if (!q->hosts) {
		conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_INTERNAL, CALLOUT_STAGE_DNS,
		         "out of memory");
		return;
	}
	memcpy(q->hosts, res->hosts, res->nhosts * sizeof(*q->hosts));
	q->nhosts = res->nhosts;
	try_next(q);
}

/* Route, literal or MX: find the hosts to ask. */
static void start_dns(callout_query *p)
{
	callout_ctx *ctx = p->ctx;
	const route *r = p->addr.kind == CO_ADDR_DOMAIN ? find_route(ctx, p->addr.domain) : NULL;

	probe_enter(p, PROBE_DNS, "%s %s",
	            r                                ? "route of"
	            : p->addr.kind != CO_ADDR_DOMAIN ? "literal"
	                                             : "MX of",
	            p->addr.kind != CO_ADDR_DOMAIN ? p->addr.ip : p->addr.domain);
	if (r) {
		p->via_route = true;
		p->dns_req = co_dns_resolve_hosts(ctx->dns, (const char *const *)r->names, r->ports,
		                                  r->n, on_route_dns, p);
	} else if (p->addr.kind != CO_ADDR_DOMAIN) {
		const char *ip = p->addr.ip;
		unsigned port = 0;
		p->dns_req = co_dns_resolve_hosts(ctx->dns, &ip, &port, 1, on_route_dns, p);
	} else {
		if (!mx_join(p))
			conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_INTERNAL, CALLOUT_STAGE_DNS,
			         "out of memory");
		return;
	}
	if (!p->dns_req)
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_INTERNAL, CALLOUT_STAGE_DNS,
		         "out of memory");
}

static void claim_then_probe(callout_query *p);

/* Answer a probe's waiters from a record; go on refreshing it if due. */
static void answer_cached(callout_query *p, const co_rec *rec, bool refresh)
{
	callout_ctx *ctx = p->ctx;
	co_rec copy = *rec; /* rec may live in p->lk */
	callout_result res = {0};

	free(p->lk);
	p->lk = NULL;
	co_rules_result(&copy, ctx_now(ctx), &res);
	res.address = p->addr.mailbox;
	flight_remove(ctx, p); /* later requests read the cache themselves */
	hand_to_waiters(p, &res);
	if (refresh && !p->refresh && !flight_find(ctx, p->key, true)) {
		p->done = false;
		p->refresh = true;
		flight_add(ctx, p);
		if (ctx->trace)
			ctx->trace(ctx->trace_arg, "answered from the cache; refreshing it");
		claim_then_probe(p);
		return;
	}
	probe_enter(p, PROBE_DONE, "%s/%s from the cache", callout_verdict_name(res.verdict),
	            callout_reason_name(res.reason));
	query_free(p);
}

static void on_claim(void *arg, co_claim_result r, const co_rec *rec)
{
	callout_query *p = arg;

	p->cache_req = NULL;
	if (r == CO_CLAIM_ANSWERED && rec) {
		answer_cached(p, rec, false);
		return;
	}
	p->claimed = true;
	gate_then_dns(p);
}

/* With a shared cache, one node probes and the others wait for it. */
static void claim_then_probe(callout_query *p)
{
	callout_ctx *ctx = p->ctx;

	if (p->key[0] && ctx->cache->ops->claim) {
		int r =
		    ctx->cache->ops->claim(ctx->cache, p->key, p->set.deadline_ms + CLAIM_MARGIN_MS,
		                           ctx->cache_wait_ms, on_claim, p, &p->cache_req);
		if (r == 0) {
			probe_enter(p, PROBE_CLAIM, "another node is probing it");
			return;
		}
		p->claimed = r == 1;
	}
	gate_then_dns(p);
}

static void on_lookup(void *arg)
{
	callout_query *p = arg;
	lookup *lk = p->lk;

	p->cache_req = NULL;
	co_decision d = co_rules_decide(&p->ctx->ttls, ctx_now(p->ctx), lk->recs, lk->found,
	                                p->addr.mailbox, p->set.from, p->set.fallback[0] != '\0');
	/* A refresh of a valid answer goes on from here too. */
	p->saw_block = co_rules_has_fact(lk->recs, lk->found, CO_REC_BLOCKS_US);
	if (d.answer >= 0) {
		answer_cached(p, &lk->recs[d.answer], d.refresh);
		return;
	}
	p->fallback_first = d.fallback_first;
	p->skip_random = d.skip_random;
	free(p->lk);
	p->lk = NULL;
	claim_then_probe(p);
}

/* A probe's first step, from the loop: the cache, or straight to DNS. */
static void probe_begin(callout_query *p)
{
	co_cache *c = p->ctx->cache;

	if (!p->read_cache) {
		gate_then_dns(p);
		return;
	}
	if (!(p->lk = malloc(sizeof(*p->lk)))) {
		claim_then_probe(p);
		return;
	}
	probe_enter(p, PROBE_CACHE, NULL);
	co_rules_keys(p->addr.domain, p->addr.mailbox, p->set.from, p->lk->keys);
	for (int i = 0; i < CO_LOOKUP_KEYS; i++)
		p->lk->kp[i] = p->lk->keys[i];
	int r = c->ops->get(c, p->lk->kp, CO_LOOKUP_KEYS, p->lk->recs, p->lk->found, on_lookup, p,
	                    &p->cache_req);
	if (r == 1) {
		on_lookup(p);
	} else if (r < 0) {
		free(p->lk);
		p->lk = NULL;
		claim_then_probe(p);
	}
}

static void arm_deadline(callout_query *q)
{
	struct timeval dl = {q->set.deadline_ms / 1000, (q->set.deadline_ms % 1000) * 1000};
	evtimer_add(q->timer, &dl);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	callout_query *q = arg;
	(void)fd;
	(void)what;

	if (q->is_probe && q->state == PROBE_NEW) {
		probe_begin(q); /* its first state arms the deadline */
		return;
	}
	if (q->ready) {
		/* A syntax error, delivered from the loop as promised. */
		finish_request_own(q);
		return;
	}
	const callout_query *p = q->is_probe ? q : q->probe;
	bool waiting = p && p->state == PROBE_GATE;
	callout_stage stage = p && p->state == PROBE_SESSION ? co_pool_job_stage(&p->job, &waiting)
	                      : p && (p->lk || waiting)      ? CALLOUT_STAGE_NONE
	                                                     : CALLOUT_STAGE_DNS;
	if (waiting) {
		char why[sizeof(p->limit_why) + 64];
		snprintf(why, sizeof(why), "deadline reached waiting for a free slot: %s",
		         p->limit_why);
		conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_LOCAL_LIMIT, stage, why);
		return;
	}
	conclude(q, CALLOUT_TEMPFAIL, CALLOUT_R_TIMEOUT, stage, "verification deadline reached");
}

/* An unguessable local part for the catch-all probe. */
static void make_random_rcpt(callout_query *q)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[16];
	char local[sizeof(rnd) + 1];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* No entropy: still unguessable enough to the remote side. */
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)((t.tv_nsec >> (i % 24)) ^ (uintptr_t)q >> i);
	}
	local[0] = alnum[rnd[0] % 26]; /* start with a letter */
	for (size_t i = 1; i < sizeof(rnd); i++)
		local[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
	local[sizeof(rnd)] = '\0';
	snprintf(q->random_rcpt, sizeof(q->random_rcpt), "%s@%s", local, q->addr.domain);
}

static void link_query(callout_ctx *ctx, callout_query *q)
{
	q->ctx = ctx;
	clock_gettime(CLOCK_MONOTONIC, &q->start);
	q->next = ctx->queries;
	if (ctx->queries)
		ctx->queries->prev = q;
	ctx->queries = q;
	ctx->inflight++;
}

/* The probe a request waits on: one in flight for the same address and
 * sender, or a new one started from the loop.  NULL: out of memory. */
static callout_query *probe_for(callout_query *u)
{
	callout_ctx *ctx = u->ctx;
	bool write = ctx->cache && !(u->set.flags & CALLOUT_F_NO_CACHE);
	/* A transcript shows a live dialogue, never a cached answer. */
	bool read = write && !(u->set.flags & CALLOUT_F_TRANSCRIPT);
	char key[CO_REC_KEY_MAX] = "";
	callout_query *p;

	if (write)
		co_rec_key(CO_REC_ADDRESS, u->addr.domain, u->addr.mailbox, u->set.from, key,
		           sizeof(key));
	if (read && key[0] && (p = flight_find(ctx, key, false)))
		return p;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->is_probe = true;
	p->set = u->set;
	p->addr = u->addr;
	memcpy(p->key, key, sizeof(key));
	p->read_cache = read && key[0];
	p->timer = evtimer_new(ctx->base, on_timer, p);
	if (!p->timer ||
	    ((p->set.flags & CALLOUT_F_TRANSCRIPT) && !(p->transcript = evbuffer_new()))) {
		if (p->timer)
			event_free(p->timer);
		free(p);
		return NULL;
	}
	if (p->set.flags & CALLOUT_F_CATCH_ALL)
		make_random_rcpt(p);
	link_query(ctx, p);
	if (p->read_cache)
		flight_add(ctx, p);
	struct timeval now = {0, 0};
	evtimer_add(p->timer, &now);
	return p;
}

CALLOUT_API callout_status callout_verify(callout_ctx *ctx, const char *address,
                                          const callout_options *opts, callout_cb cb, void *arg,
                                          callout_query **out)
{
	callout_status st;
	char err[128];

	if (!ctx || !address || !cb)
		return CALLOUT_EINVAL;
	callout_query *q = calloc(1, sizeof(*q));
	if (!q)
		return CALLOUT_ENOMEM;
	if (opts) {
		callout_options o;
		if ((st = load_options(opts, &o)) != CALLOUT_OK ||
		    (st = make_settings(&o, ctx->defaults.helo, &q->set)) != CALLOUT_OK) {
			free(q);
			return st;
		}
	} else {
		q->set = ctx->defaults;
	}
	if ((q->set.flags & CALLOUT_F_TLS) && (st = need_tls(ctx)) != CALLOUT_OK) {
		free(q);
		return st;
	}
	if (!(q->timer = evtimer_new(ctx->base, on_timer, q))) {
		free(q);
		return CALLOUT_ENOMEM;
	}
	q->cb = cb;
	q->arg = arg;
	link_query(ctx, q);
	if (out)
		*out = q;

	int parsed = co_addr_parse(address, &q->addr, err, sizeof(err));
	if (parsed < 0) {
		/* Report the input (made printable) as the address. */
		size_t i = 0;
		for (const char *p = address; *p && i < sizeof(q->detail) - 1; p++)
			q->detail[i++] = (unsigned char)*p >= 0x20 && *p != 0x7f ? *p : '?';
		q->detail[i] = '\0';
		q->addr.mailbox[0] = '\0';
		memset(&q->out, 0, sizeof(q->out));
		/* Too long for us is our limit, not evidence about the mailbox. */
		q->out.verdict = parsed == CO_ADDR_TOO_LONG ? CALLOUT_TEMPFAIL : CALLOUT_INVALID;
		q->out.reason =
		    parsed == CO_ADDR_TOO_LONG ? CALLOUT_R_LOCAL_LIMIT : CALLOUT_R_SYNTAX;
		q->out.stage = CALLOUT_STAGE_SYNTAX;
		snprintf(q->out.text, sizeof(q->out.text), "%s", err);
		q->ready = true;
		struct timeval now = {0, 0};
		evtimer_add(q->timer, &now);
		return CALLOUT_OK;
	}
	callout_query *p = probe_for(q);
	if (!p) {
		if (out)
			*out = NULL;
		query_free(q);
		return CALLOUT_ENOMEM;
	}
	q->probe = p;
	q->wnext = p->waiters;
	if (p->waiters)
		p->waiters->wprev = q;
	p->waiters = q;
	arm_deadline(q);
	return CALLOUT_OK;
}

CALLOUT_API void callout_cancel(callout_query *q)
{
	if (q && !q->done && !q->is_probe)
		query_free(q);
}

/* ---- blocking convenience ---------------------------------------------- */

typedef struct sync_state {
	callout_status status;
	callout_result *res;
} sync_state;

static void sync_done(void *arg, callout_status status, const callout_result *res)
{
	sync_state *s = arg;
	s->status = status;
	if (res && !(s->res = callout_result_dup(res)))
		s->status = CALLOUT_ENOMEM;
}

CALLOUT_API callout_status callout_verify_sync(const char *address, const callout_options *opts,
                                               callout_result **out)
{
	callout_ctx *ctx;
	sync_state s = {CALLOUT_ECANCELLED, NULL};
	callout_status st;

	if (!out)
		return CALLOUT_EINVAL;
	*out = NULL;
	if ((st = callout_ctx_new(NULL, opts, &ctx)) != CALLOUT_OK)
		return st;
	st = callout_verify(ctx, address, NULL, sync_done, &s, NULL);
	if (st == CALLOUT_OK)
		st = callout_ctx_run(ctx);
	callout_ctx_free(ctx);
	if (st != CALLOUT_OK) {
		callout_result_free(s.res);
		return st;
	}
	if (s.status != CALLOUT_OK) {
		callout_result_free(s.res);
		return s.status;
	}
	*out = s.res;
	return CALLOUT_OK;
}
