/*
 * The engine's public face: the context (the options resolved into
 * settings, the cache and the pool it opens; callout_ctx_new, _free,
 * _stats, _health, _run) and the requests (callout_verify, _cancel,
 * callout_verify_sync).
 *
 * A request is what the caller holds: its address, its settings, its
 * callback and its own deadline.  It waits on a probe (probe.c), owned by
 * the engine and shared by identical requests in flight (single flight);
 * a probe whose requests all went away still finishes into the cache.
 * Routes are in route.c, shared MX lookups in mx_flight.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include <callout/callout.h>

#include "addr.h"
#include "cache.h"
#include "cache_open.h"
#include "ctx.h"
#include "dns.h"
#include "netcheck.h"
#include "pool.h"
#include "probe.h"
#include "proxy_pool.h"
#include "recheck.h"
#include "redis_spec.h"
#include "route.h"

#define INPUT_SHOWN_MAX 160 /* of an input that is not an address */

struct callout_query {
	callout_ctx *ctx;
	LIST_ENTRY(callout_query) link; /* in the context's requests */
	callout_cb cb;
	void *arg;
	settings set;
	co_addr addr;
	struct timespec start;
	struct event *timer;  /* its deadline; or delivers its syntax error from the loop */
	co_waiter wait;       /* on its probe; wait.probe NULL: a syntax error */
	co_recheck_hold hold; /* CALLOUT_F_RECHECK_WAIT: on a greylisting re-check */
	bool done;            /* its callback is running */
	bool telling;         /* ... its first of two (CALLOUT_F_RECHECK_WAIT) */
	bool cancel_asked;    /* ... and callout_cancel() was called in it */
	/* A syntax error: what is wrong, and the input, made printable. */
	callout_verdict bad_verdict;
	callout_reason bad_reason;
	char bad_why[128];
	char bad_input[INPUT_SHOWN_MAX];
};

/* ---- settings ---------------------------------------------------------- */

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
		co_default_helo(set->helo, sizeof(set->helo));
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
	return co_ctx_now(arg);
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
	    .fleet_nodes = or_default(o->fleet_nodes, def.fleet_nodes),
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

/* A slot freed: the probes at the gate that may go now. */
static void on_gate(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	co_probe_gate_admit(arg);
}

/* The proxy pools, with the default one (options.proxy) if any: EINVAL
 * for a spec that does not parse or a host that does not resolve. */
static callout_status open_proxies(callout_ctx *ctx, const callout_options *o)
{
	callout_options def;

	callout_options_init(&def);
	ctx->proxies =
	    co_proxies_new(ctx->base, or_default(o->backoff_failures, def.backoff_failures),
	                   or_default(o->proxy_check_ms, def.proxy_check_ms),
	                   ctx->defaults.connect_ms, o->log, o->log_arg);
	if (!ctx->proxies)
		return CALLOUT_ENOMEM;
	ctx->proxy_sessions = or_default(o->proxy_sessions, def.proxy_sessions);
	if (!o->proxy || !*o->proxy)
		return CALLOUT_OK;
	return co_proxies_add(ctx->proxies, "default", o->proxy, ctx->proxy_sessions,
	                      &ctx->defaults.proxy);
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
	TAILQ_INIT(&ctx->gate);
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
	if ((st = open_proxies(ctx, &o)) != CALLOUT_OK)
		goto fail;
	bool enomem;
	ctx->probe_answered = co_recheck_answer;
	ctx->probe_pending = co_recheck_pending;
	ctx->rechecks = co_rechecks_new(ctx, o.greylist_recheck,
	                                or_default(o.greylist_recheck_max, 10000), &enomem);
	if (enomem) {
		st = CALLOUT_ENOMEM;
		goto fail;
	}
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
	callout_query *q;
	co_probe *p;
	while ((q = LIST_FIRST(&ctx->requests))) {
		callout_cb cb = q->cb;
		void *arg = q->arg;
		query_free(q);
		cb(arg, CALLOUT_ECANCELLED, NULL);
	}
	/* Probes nobody waits for, finishing into the cache. */
	while ((p = LIST_FIRST(&ctx->probes)))
		co_probe_free(p);
	co_rechecks_free(ctx->rechecks); /* their timers, before the loop runs down */
	co_dns_free(ctx->dns);
	/* Before the loop runs down: a Redis connection or an idle session
	 * would keep it busy. */
	co_cache_free(ctx->cache);
	co_pool_free(ctx->pool);
	co_proxies_free(ctx->proxies);
	if (ctx->gate_ev)
		event_free(ctx->gate_ev);
	if (ctx->own_base && ctx->base) {
		/* Let closing connections flush their QUIT and free themselves. */
		event_base_dispatch(ctx->base);
		event_base_free(ctx->base);
	}
	SSL_CTX_free(ctx->tls);
	co_netcheck_free(ctx->net);
	co_routes_free(ctx);
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
	co_rechecks_stats(ctx->rechecks, &st);
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
	return co_redis_spec_redact(spec, out, len);
}

CALLOUT_API callout_status callout_ctx_run(callout_ctx *ctx)
{
	while (ctx->inflight > 0)
		if (event_base_loop(ctx->base, EVLOOP_ONCE) < 0)
			return CALLOUT_EEVENT;
	return CALLOUT_OK;
}

/* ---- requests ----------------------------------------------------------- */

static void query_free(callout_query *q)
{
	callout_ctx *ctx = q->ctx;

	LIST_REMOVE(q, link);
	ctx->inflight--;
	if (q->wait.probe)
		co_probe_leave(&q->wait);
	co_recheck_unhold(&q->hold);
	if (q->timer)
		event_free(q->timer);
	free(q);
}

/* Give a request its result and free it. */
static void finish_request(callout_query *w, const callout_result *res)
{
	callout_result r = *res;
	callout_cb cb = w->cb;
	void *arg = w->arg;

	r.ms = co_elapsed_ms(&w->start);
	if (!r.mx_hosts)
		r.mx_hosts = "";
	w->done = true;
	/* Free after the callback: res may point into w. */
	cb(arg, CALLOUT_OK, &r);
	query_free(w);
}

/* Its probe's result, the request having left it; or a re-check's. */
static void on_probe_result(void *arg, const callout_result *res)
{
	callout_query *q = arg;

	/* A greylisted answer with a re-check pending: told now, and again
	 * with the re-check's answer; the deadline moves past the last
	 * re-check. */
	if ((q->set.flags & CALLOUT_F_RECHECK_WAIT) && res->recheck_in &&
	    co_recheck_hold_on(q->ctx, &q->set, &q->addr, res, &q->hold, on_probe_result, q)) {
		callout_result r = *res;

		co_arm_deadline(q->timer, co_recheck_hold_ms(&q->hold) + q->set.deadline_ms);
		r.ms = co_elapsed_ms(&q->start);
		q->telling = true; /* a cancel in the callback waits for its end */
		q->cb(q->arg, CALLOUT_OK, &r);
		q->telling = false;
		if (q->cancel_asked)
			query_free(q);
		return;
	}
	if (q->set.flags & CALLOUT_F_RECHECK_WAIT) { /* recheck_in > 0 promises a second call */
		callout_result r = *res;

		r.recheck_in = 0;
		finish_request(q, &r);
		return;
	}
	finish_request(q, res);
}

/* A request's own result: a syntax error or its deadline. */
static void finish_request_own(callout_query *w, callout_verdict v, callout_reason r,
                               callout_stage stage, const char *text)
{
	callout_result res = {
	    .verdict = v,
	    .reason = r,
	    .stage = stage,
	    .enhanced = "",
	    .text = text,
	    .address = w->addr.mailbox[0] ? w->addr.mailbox : w->bad_input,
	    .mx = "",
	    .ip = "",
	    .transcript = (w->set.flags & CALLOUT_F_TRANSCRIPT) ? "" : NULL,
	};
	finish_request(w, &res);
}

/* A request's one timer: its deadline, or its syntax error delivered from
 * the loop as promised. */
static void on_request_timer(evutil_socket_t fd, short what, void *arg)
{
	callout_query *q = arg;
	co_late late;
	(void)fd;
	(void)what;

	if (q->hold.rc) { /* the re-checks took too long: the greylisted answer */
		callout_result r = *q->hold.last;
		r.recheck_in = 0; /* the last call */
		finish_request(q, &r);
		return;
	}
	if (!q->wait.probe) {
		finish_request_own(q, q->bad_verdict, q->bad_reason, CALLOUT_STAGE_SYNTAX,
		                   q->bad_why);
		return;
	}
	co_probe_deadline(q->wait.probe, &late);
	finish_request_own(q, CALLOUT_TEMPFAIL, late.reason, late.stage, late.why);
}
CALLOUT_API callout_status callout_options_check(const callout_options *opts)
{
	callout_options o;
	settings set;
	callout_status st;

	if ((st = load_options(opts, &o)) != CALLOUT_OK)
		return st;
	return make_settings(&o, "localhost", &set);
}

/* The pool a request asks for by name: the context's when it names none. */
static callout_status choose_proxy(const callout_ctx *ctx, const char *name, settings *set)
{
	set->proxy = ctx->defaults.proxy;
	if (!name)
		return CALLOUT_OK;
	if (strcmp(name, "direct") == 0)
		set->proxy = NULL;
	else if (!(set->proxy = co_proxies_find(ctx->proxies, name)))
		return CALLOUT_EINVAL;
	return CALLOUT_OK;
}

CALLOUT_API callout_status callout_ctx_add_proxy(callout_ctx *ctx, const char *name,
                                                 const char *proxies, unsigned sessions)
{
	if (!ctx || !name || strcmp(name, "default") == 0)
		return CALLOUT_EINVAL;
	return co_proxies_add(ctx->proxies, name, proxies,
	                      or_default(sessions, ctx->proxy_sessions), NULL);
}

CALLOUT_API callout_status callout_ctx_set_domain_proxy(callout_ctx *ctx, const char *domain,
                                                        const char *name)
{
	settings set;
	char norm[CO_DOMAIN_MAX + 1], err[128];

	if (!ctx || !domain || !name || choose_proxy(ctx, name, &set) != CALLOUT_OK ||
	    co_domain_normalise(domain, norm, err, sizeof(err)) < 0)
		return CALLOUT_EINVAL;
	return co_proxies_set_domain(ctx->proxies, norm, set.proxy);
}

CALLOUT_API size_t callout_ctx_proxies(callout_ctx *ctx, callout_proxy_health *out, size_t n)
{
	return ctx && ctx->proxies ? co_proxies_health(ctx->proxies, out, n) : 0;
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
		    (st = make_settings(&o, ctx->defaults.helo, &q->set)) != CALLOUT_OK ||
		    (st = choose_proxy(ctx, o.proxy_name, &q->set)) != CALLOUT_OK) {
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
	if (!(q->timer = evtimer_new(ctx->base, on_request_timer, q))) {
		free(q);
		return CALLOUT_ENOMEM;
	}
	q->ctx = ctx;
	q->cb = cb;
	q->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &q->start);
	LIST_INSERT_HEAD(&ctx->requests, q, link);
	ctx->inflight++;
	if (out)
		*out = q;

	int parsed = co_addr_parse(address, &q->addr, err, sizeof(err));
	if (parsed < 0) {
		/* Report the input (made printable) as the address. */
		size_t i = 0;
		for (const char *p = address; *p && i < sizeof(q->bad_input) - 1; p++)
			q->bad_input[i++] = (unsigned char)*p >= 0x20 && *p != 0x7f ? *p : '?';
		q->bad_input[i] = '\0';
		q->addr.mailbox[0] = '\0';
		/* Too long for us is our limit, not evidence about the mailbox. */
		q->bad_verdict = parsed == CO_ADDR_TOO_LONG ? CALLOUT_TEMPFAIL : CALLOUT_INVALID;
		q->bad_reason =
		    parsed == CO_ADDR_TOO_LONG ? CALLOUT_R_LOCAL_LIMIT : CALLOUT_R_SYNTAX;
		snprintf(q->bad_why, sizeof(q->bad_why), "%s", err);
		struct timeval now = {0, 0};
		evtimer_add(q->timer, &now);
		return CALLOUT_OK;
	}
	co_probe *p = co_probe_for(ctx, &q->set, &q->addr);
	if (!p) {
		if (out)
			*out = NULL;
		query_free(q);
		return CALLOUT_ENOMEM;
	}
	co_probe_wait(p, &q->wait, on_probe_result, q);
	co_arm_deadline(q->timer, q->set.deadline_ms);
	return CALLOUT_OK;
}

CALLOUT_API void callout_cancel(callout_query *q)
{
	if (!q || q->done)
		return;
	if (q->telling)
		q->cancel_asked = true;
	else
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
