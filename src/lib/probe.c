/*
 * The probe: one address with one sender, verified once for every request
 * that waits on it (single flight), and finished into the cache even when
 * its requests went away.
 *
 *   cache lookup (address record, domain facts) -> [claim across
 *   processes] -> a slot under the global cap (the gate) -> route, literal
 *   or DNS (MX -> hosts -> addresses) -> a job per address tried on the
 *   pool's sessions (limits, reuse, backoff: pool.c), next host while the
 *   answer is not about the mailbox -> cache store -> every waiter
 *
 * Its states are below; probe_enter() is the one place that changes them.
 * It also holds the flight table (probes identical requests join) and the
 * gate of max_probes.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "hash.h"
#include "mx_flight.h"
#include "probe.h"
#include "proxy_pool.h"
#include "route.h"
#include "session.h"
#include "sockaddr.h"

#define CLAIM_MARGIN_MS 5000
#define LIMIT_WHY_MAX   160                           /* + 64 fits co_late.why */
#define REFUSED_WHY_MAX (256 + INET6_ADDRSTRLEN + 64) /* "name [ip]: why" */

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

struct co_probe {
	callout_ctx *ctx;
	LIST_ENTRY(co_probe) link; /* in the context's probes */
	settings set;
	co_addr addr;
	char random_rcpt[CO_LOCAL_MAX + CO_DOMAIN_MAX + 2];
	char postmaster_rcpt[sizeof("postmaster@") + CO_DOMAIN_MAX];
	callout_postmaster postmaster_known; /* a live fact of the cache */
	struct timespec start;
	struct event *timer; /* in PROBE_NEW: starts it from the loop; then its deadline */
	probe_state state;   /* where it is (probe_enter) */
	LIST_HEAD(, co_waiter) waiters;
	LIST_ENTRY(co_probe) flink; /* in the flight table */
	bool in_flights;
	char key[CO_REC_KEY_MAX]; /* cache key; "" when not cached */
	bool read_cache;
	bool refresh;                     /* re-probing a valid entry */
	bool fallback_first, skip_random; /* what domain facts said */
	bool saw_block;                   /* its lookup found a "blocks us" fact */
	bool claimed;
	co_cache_req *cache_req;
	lookup *lk;
	co_dns_req *dns_req;           /* a route's or a literal's lookup */
	co_mx_waiter mx;               /* the MX lookup it waits on */
	co_pool_job job;               /* with the pool in PROBE_SESSION */
	bool probing;                  /* holds one of max_probes slots */
	TAILQ_ENTRY(co_probe) glink;   /* at the gate */
	char limit_why[LIMIT_WHY_MAX]; /* the limit it waits for */
	co_dns_host *hosts;
	unsigned nhosts;
	unsigned host_i, addr_i; /* the next address to try */
	unsigned connections;
	const co_dns_host *cur_host;
	const struct sockaddr_storage *cur_addr;
	bool via_route;
	co_proxy_group *proxy;  /* the pool its sessions go through; NULL: direct */
	unsigned proxy_retries; /* the same host again, through another proxy */
	bool proxy_trouble;     /* a proxy failed: no host may be judged unreachable */
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
};

_Static_assert(LIMIT_WHY_MAX + 64 <= sizeof(((co_late *)0)->why), "a deadline's why fits");

/* Out of the list of probes waiting for a slot. */
static void gate_unlink(co_probe *p)
{
	callout_ctx *ctx = p->ctx;

	TAILQ_REMOVE(&ctx->gate, p, glink);
	ctx->ngated--;
}

/* The one way a probe changes state; detail (printf) says why or where,
 * for the trace. */
__attribute__((format(printf, 3, 4))) static void probe_enter(co_probe *p, probe_state s,
                                                              const char *detail, ...)
{
	callout_ctx *ctx = p->ctx;
	probe_state from = p->state;
	char line[1024], more[400] = "";
	va_list ap;

	p->state = s;
	if (from == PROBE_NEW && s != PROBE_NEW) /* the timer that started it is the deadline now */
		co_arm_deadline(p->timer, p->set.deadline_ms);
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
	snprintf(line, sizeof(line), "%5u ms <%s> %s -> %s%s%s", co_elapsed_ms(&p->start),
	         p->addr.mailbox, probe_state_names[from], probe_state_names[s],
	         more[0] ? ": " : "", more);
	ctx->trace(ctx->trace_arg, line);
}

/* ---- the flight table: probes that identical requests join ------------- */

static struct flight_bucket *key_bucket(callout_ctx *ctx, const char *key)
{
	return &ctx->flights[co_hash(key, strlen(key)) % FLIGHT_BUCKETS];
}

static co_probe *flight_find(callout_ctx *ctx, const char *key, bool refresh)
{
	co_probe *p;

	LIST_FOREACH(p, key_bucket(ctx, key), flink)
	if (p->refresh == refresh && strcmp(p->key, key) == 0)
		return p;
	return NULL;
}

static void flight_add(callout_ctx *ctx, co_probe *p)
{
	LIST_INSERT_HEAD(key_bucket(ctx, p->key), p, flink);
	p->in_flights = true;
}

static void flight_remove(co_probe *p)
{
	if (!p->in_flights)
		return;
	LIST_REMOVE(p, flink);
	p->in_flights = false;
}

/* ---- waiters ------------------------------------------------------------ */

static void detach(co_waiter *w)
{
	LIST_REMOVE(w, link);
	w->probe = NULL;
}

void co_probe_wait(co_probe *p, co_waiter *w, void (*cb)(void *arg, const callout_result *res),
                   void *arg)
{
	w->probe = p;
	w->cb = cb;
	w->arg = arg;
	LIST_INSERT_HEAD(&p->waiters, w, link);
}

/* A probe nobody waits for is worth finishing only when it is already
 * probing and its answer will be cached. */
static bool probe_unwanted(const co_probe *p)
{
	return LIST_EMPTY(&p->waiters) && !p->done &&
	       (!p->key[0] || p->state == PROBE_NEW || p->lk || p->cache_req);
}

void co_probe_leave(co_waiter *w)
{
	co_probe *p = w->probe;

	detach(w);
	if (probe_unwanted(p))
		co_probe_free(p);
}

static void hand_to_waiters(co_probe *p, const callout_result *res)
{
	co_waiter *w;

	p->done = true; /* callbacks that cancel other waiters must not free p */
	while ((w = LIST_FIRST(&p->waiters))) {
		detach(w);
		w->cb(w->arg, res);
	}
}

/* ---- the global cap ------------------------------------------------------ */

static void start_dns(co_probe *p);
static void conclude(co_probe *p, callout_verdict v, callout_reason r, callout_stage stage,
                     const char *text);

/* Past the cache, a probe needs one of max_probes slots. */
static void gate_then_dns(co_probe *p)
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
	TAILQ_INSERT_TAIL(&ctx->gate, p, glink);
	ctx->ngated++;
}

/* A probe ends: its slot goes to the next at the gate, from the loop. */
static void leave_gate(co_probe *p)
{
	callout_ctx *ctx = p->ctx;

	if (p->state == PROBE_GATE)
		gate_unlink(p);
	if (p->probing) {
		p->probing = false;
		ctx->probing--;
		if (!TAILQ_EMPTY(&ctx->gate))
			event_active(ctx->gate_ev, EV_TIMEOUT, 0);
	}
}

void co_probe_gate_admit(callout_ctx *ctx)
{
	co_probe *p;

	while ((p = TAILQ_FIRST(&ctx->gate)) &&
	       (ctx->max_probes == CALLOUT_UNLIMITED || ctx->probing < ctx->max_probes)) {
		p->probing = true;
		ctx->probing++;
		start_dns(p); /* leaves PROBE_GATE, and the gate's list */
	}
}

void co_probe_free(co_probe *p)
{
	callout_ctx *ctx = p->ctx;
	co_waiter *w;

	LIST_REMOVE(p, link);
	ctx->inflight--;
	while ((w = LIST_FIRST(&p->waiters)))
		detach(w);
	flight_remove(p);
	if (p->cache_req)
		ctx->cache->ops->cancel(ctx->cache, p->cache_req);
	if (p->state == PROBE_STORE)
		ctx->cache->ops->unsync(ctx->cache, p);
	if (p->claimed && ctx->cache->ops->release)
		ctx->cache->ops->release(ctx->cache, p->key);
	free(p->lk);
	if (p->dns_req)
		co_dns_cancel(p->dns_req);
	if (p->mx.f)
		co_mx_leave(&p->mx);
	if (p->state == PROBE_SESSION)
		co_pool_cancel(ctx->pool, &p->job);
	leave_gate(p);
	if (p->timer)
		event_free(p->timer);
	if (p->transcript)
		evbuffer_free(p->transcript);
	free(p->hosts);
	free(p);
}

/* ---- the end: store, done ------------------------------------------------ */

/* Remember what a probe found. */
static void store(co_probe *p)
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
	    .proxy_failed = p->proxy_trouble,
	    .postmaster = p->out.postmaster,
	    .postmaster_code = p->out.postmaster_code,
	    .postmaster_enhanced = p->out.postmaster_enhanced,
	};
	unsigned n = co_rules_records(&ctx->ttls, co_ctx_now(ctx), &f, recs, ttl);
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
	co_probe *p = arg;
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
	res.postmaster = p->out.postmaster ? p->out.postmaster : p->postmaster_known;
	if (p->transcript) {
		evbuffer_add(p->transcript, "", 1);
		transcript = (const char *)evbuffer_pullup(p->transcript, -1);
	}
	res.transcript = transcript ? transcript : (p->transcript ? "" : NULL);
	char hosts[CO_DNS_HOSTS_MAX * 256];
	size_t k = 0;
	hosts[0] = '\0';
	for (unsigned i = 0; i < p->nhosts && p->addr.kind == CO_ADDR_DOMAIN; i++) {
		size_t n = strlen(p->hosts[i].name);
		if (k + n + 2 > sizeof(hosts))
			break;
		if (k)
			hosts[k++] = ' ';
		memcpy(hosts + k, p->hosts[i].name, n + 1);
		k += n;
	}
	res.mx_hosts = hosts;
	res.recheck_in = p->ctx->probe_answered
	                     ? p->ctx->probe_answered(p->ctx, &p->set, &p->addr, &res, p->refresh)
	                     : 0;
	hand_to_waiters(p, &res);
	co_probe_free(p); /* releases the claim, after the store */
}

/* A probe's outcome: store it, and once it is written (group commit: with
 * the other answers of this loop iteration), tell every waiter. */
static void deliver(co_probe *p)
{
	co_cache *c = p->ctx->cache;

	if (p->key[0])
		store(p);
	flight_remove(p);
	if (p->timer)
		evtimer_del(p->timer); /* the deadline no longer applies */
	if (p->key[0] && c->ops->sync && c->ops->sync(c, hand_outcome, p) == 1) {
		probe_enter(p, PROBE_STORE, NULL);
		p->done = true; /* nobody joins or drops it now */
		return;
	}
	hand_outcome(p);
}

static void conclude(co_probe *p, callout_verdict v, callout_reason r, callout_stage stage,
                     const char *text)
{
	memset(&p->out, 0, sizeof(p->out));
	p->out.verdict = v;
	p->out.reason = r;
	p->out.stage = stage;
	snprintf(p->out.text, sizeof(p->out.text), "%s", text);
	deliver(p);
}

static void on_session(void *arg, const co_session_outcome *out);

/* ---- sessions: one address after another --------------------------------- */

/* The server to connect to: an address of a host, with its port. */
static socklen_t dest_addr(const co_probe *p, const co_dns_host *h,
                           const struct sockaddr_storage *a, struct sockaddr_storage *ss)
{
	unsigned port = h->port ? h->port : p->set.port;

	*ss = *a;
	if (ss->ss_family == AF_INET6) {
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		return sizeof(struct sockaddr_in6);
	}
	((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	return sizeof(struct sockaddr_in);
}

/* Ask the current address, on a session of the pool. */
static void start_session(co_probe *p)
{
	callout_ctx *ctx = p->ctx;
	char ip[INET6_ADDRSTRLEN], why[160];
	bool fallback_now = p->use_fallback_now;
	bool random = (p->set.flags & CALLOUT_F_CATCH_ALL) && !p->skip_random;
	bool postmaster = p->postmaster_rcpt[0] && !p->postmaster_known;

	p->connections++;
	memset(&p->job, 0, sizeof(p->job));
	p->job.addrlen = dest_addr(p, p->cur_host, p->cur_addr, &p->job.addr);
	if (p->transcript) {
		co_sockaddr_text((const struct sockaddr *)p->cur_addr, sizeof(*p->cur_addr), 0, ip,
		                 sizeof(ip));
		evbuffer_add_printf(p->transcript, "-- connecting to %s [%s]:%u%s%s\n",
		                    p->cur_host->name, ip,
		                    p->cur_host->port ? p->cur_host->port : p->set.port,
		                    fallback_now ? " (fallback sender)" : "",
		                    p->no_tls_now ? " (without TLS)" : "");
	}
	p->job.params = (co_session_params){
	    .source = p->set.sourcelen ? (const struct sockaddr *)&p->set.source : NULL,
	    .sourcelen = p->set.sourcelen,
	    .helo = p->set.helo,
	    .mail_from = fallback_now ? p->set.fallback : p->set.from,
	    .fallback_from = !fallback_now && p->set.fallback[0] ? p->set.fallback : NULL,
	    .smtputf8 = p->addr.utf8 || p->set.sender_utf8,
	    .vrfy = (p->set.flags & CALLOUT_F_VRFY) != 0,
	    .pipelining = !(p->set.flags & CALLOUT_F_NO_PIPELINING),
	    .tls = (p->set.flags & CALLOUT_F_TLS) && !p->no_tls_now ? ctx->tls : NULL,
	    .tls_name = p->cur_host->name,
	    .connect_timeout_ms = p->set.connect_ms,
	    .command_timeout_ms = p->set.command_ms,
	    .transcript = p->transcript,
	};
	p->job.domain = p->addr.domain;
	p->job.rcpt = p->addr.mailbox;
	p->job.random_rcpt = random ? p->random_rcpt : NULL;
	p->job.postmaster_rcpt = postmaster ? p->postmaster_rcpt : NULL;
	/* A transcript shows one verification's dialogue; VRFY asks one. */
	p->job.shared = !(p->set.flags & (CALLOUT_F_TRANSCRIPT | CALLOUT_F_VRFY));
	p->job.exempt = p->via_route;
	p->job.no_wait = (p->set.flags & CALLOUT_F_NO_LIMIT_WAIT) != 0;
	p->job.proxies = p->proxy;
	p->job.cb = on_session;
	p->job.arg = p;
	if (ctx->trace)
		co_sockaddr_text((const struct sockaddr *)&p->job.addr, p->job.addrlen, CO_SA_PORT,
		                 ip, sizeof(ip));
	probe_enter(p, PROBE_SESSION, "%s %s%s%s", p->cur_host->name, ctx->trace ? ip : "",
	            fallback_now ? " (fallback sender)" : "",
	            p->no_tls_now ? " (without TLS)" : "");
	why[0] = '\0';
	int r = co_pool_submit(ctx->pool, &p->job, why, sizeof(why));
	if (r < 0) {
		p->proxy_trouble |= r == -3;
		probe_enter(p, PROBE_NEXT, "%s", why);
		conclude(p, CALLOUT_TEMPFAIL,
		         r == -2   ? CALLOUT_R_INTERNAL
		         : r == -3 ? CALLOUT_R_CONNECT_FAILED
		                   : CALLOUT_R_LOCAL_LIMIT,
		         CALLOUT_STAGE_CONNECT, why);
		return;
	}
	if (why[0])
		snprintf(p->limit_why, sizeof(p->limit_why), "%s", why);
}

/* Whether a probe may go to this address; routes are the operator's
 * choice and always may. */
static bool may_contact(co_probe *p, const co_dns_host *h, const struct sockaddr_storage *a)
{
	const char *why = "";
	char ip[INET6_ADDRSTRLEN];
	bool allow = p->via_route || (p->set.flags & CALLOUT_F_ALLOW_PRIVATE);

	if (co_netcheck_addr(p->ctx->net, a, allow, &why) == CO_NET_OK)
		return true;
	if (!p->refused++) {
		co_sockaddr_text((const struct sockaddr *)a, sizeof(*a), 0, ip, sizeof(ip));
		snprintf(p->refused_why, sizeof(p->refused_why), "%s [%s]: %s, not contacted",
		         h->name, ip, why);
	}
	if (p->transcript) {
		co_sockaddr_text((const struct sockaddr *)a, sizeof(*a), 0, ip, sizeof(ip));
		evbuffer_add_printf(p->transcript, "-- not connecting to %s [%s]: %s\n", h->name,
		                    ip, why);
	}
	return false;
}

/* Whether the pool holds sessions to this server back after failures;
 * routes are exempt. */
static bool backing_off(co_probe *p, const co_dns_host *h, const struct sockaddr_storage *a)
{
	struct sockaddr_storage ss;
	char why[160];

	if (p->via_route)
		return false;
	dest_addr(p, h, a, &ss);
	if (!co_pool_backing_off(p->ctx->pool, &ss, why, sizeof(why)))
		return false;
	if (!p->held++)
		snprintf(p->held_why, sizeof(p->held_why), "%s (%s)", why, h->name);
	if (p->transcript)
		evbuffer_add_printf(p->transcript, "-- not connecting to %s: %s\n", h->name, why);
	return true;
}

/* Try the next address of the next host, or give the last answer. */
static void try_next(co_probe *p)
{
	/* A domain known to refuse <> gets the fallback sender at once. */
	p->use_fallback_now = p->fallback_first && p->set.fallback[0];
	p->no_tls_now = false;
	while (p->host_i < p->nhosts && p->connections < p->set.max_connections) {
		const co_dns_host *h = &p->hosts[p->host_i];
		if (p->addr_i < h->naddr) {
			const struct sockaddr_storage *a = &h->addr[p->addr_i++];
			if (!may_contact(p, h, a) || backing_off(p, h, a))
				continue;
			p->cur_host = h;
			p->cur_addr = a;
			start_session(p);
			return;
		}
		p->host_i++;
		p->addr_i = 0;
	}
	if (!p->have_out && p->held) {
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_LOCAL_LIMIT, CALLOUT_STAGE_CONNECT,
		         p->held_why);
		return;
	}
	if (!p->have_out && p->refused) {
		conclude(p, CALLOUT_UNKNOWN, CALLOUT_R_PRIVATE_ADDRESS, CALLOUT_STAGE_CONNECT,
		         p->refused_why);
		return;
	}
	if (!p->have_out) {
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, CALLOUT_STAGE_CONNECT,
		         "no host could be tried");
		return;
	}
	deliver(p);
}

/* A proxy failed: nothing was learned about the host, so it is asked
 * again through another proxy of the pool, if one is up. */
static bool proxy_again(co_probe *p)
{
	char why[8];
	return p->proxy && p->proxy_retries + 1 < p->proxy->n &&
	       p->connections < p->set.max_connections &&
	       !co_proxy_group_down(p->proxy, why, sizeof(why)) && ++p->proxy_retries;
}

/* Verifying postmaster@DOMAIN itself: its own answer is the fact (no
 * second RCPT was sent for it). */
static void self_postmaster(co_probe *p)
{
	co_session_outcome *o = &p->out;

	if (!(p->set.flags & CALLOUT_F_POSTMASTER) || p->postmaster_rcpt[0] || o->postmaster ||
	    o->stage != CALLOUT_STAGE_RCPT || !o->answered)
		return;
	if (o->code / 100 == 2)
		o->postmaster = CALLOUT_POSTMASTER_ACCEPTED;
	else if (o->verdict == CALLOUT_INVALID)
		o->postmaster = CALLOUT_POSTMASTER_REFUSED;
	else
		return;
	o->postmaster_code = o->code;
	memcpy(o->postmaster_enhanced, o->enhanced, sizeof(o->postmaster_enhanced));
}

static void on_session(void *arg, const co_session_outcome *out)
{
	co_probe *p = arg;

	if (out->code)
		probe_enter(p, PROBE_NEXT, "%s/%s %d %s", callout_verdict_name(out->verdict),
		            callout_reason_name(out->reason), out->code, out->enhanced);
	else
		probe_enter(p, PROBE_NEXT, "%s/%s (%s)", callout_verdict_name(out->verdict),
		            callout_reason_name(out->reason), out->text);
	p->out = *out;
	p->have_out = true;
	p->proxy_trouble |= out->proxy_failed;
	self_postmaster(p);
	if (out->retry_fallback && !p->use_fallback_now &&
	    p->connections < p->set.max_connections) {
		p->use_fallback_now = true;
		start_session(p);
		return;
	}
	if (out->retry_plain && !p->no_tls_now && p->connections < p->set.max_connections) {
		p->no_tls_now = true;
		start_session(p);
		return;
	}
	if (out->proxy_failed && proxy_again(p)) {
		start_session(p);
		return;
	}
	if (out->next_host) {
		try_next(p);
		return;
	}
	deliver(p);
}

static void on_dns(void *arg, const co_dns_result *res);

/* A route's or an address literal's lookup (no MX flight): note how it
 * went, then go on. */
static void on_route_dns(void *arg, const co_dns_result *res)
{
	co_probe *p = arg;

	co_ctx_dns_health(p->ctx, res);
	on_dns(p, res);
}

static void on_dns(void *arg, const co_dns_result *res)
{
	co_probe *p = arg;

	p->dns_req = NULL;
	switch (res->status) {
	case CO_DNS_OK:
		break;
	case CO_DNS_NXDOMAIN:
		conclude(p, CALLOUT_INVALID, CALLOUT_R_NXDOMAIN, CALLOUT_STAGE_DNS, res->detail);
		return;
	case CO_DNS_NULL_MX:
		conclude(p, CALLOUT_INVALID, CALLOUT_R_NULL_MX, CALLOUT_STAGE_DNS, res->detail);
		return;
	case CO_DNS_NO_HOST:
		/* A route that does not resolve is our configuration, not
		 * evidence about the address. */
		if (p->via_route)
			conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, CALLOUT_STAGE_DNS,
			         res->detail);
		else
			conclude(p, CALLOUT_INVALID, CALLOUT_R_NO_MAIL_HOST, CALLOUT_STAGE_DNS,
			         res->detail);
		return;
	case CO_DNS_TEMPFAIL:
	default:
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_DNS_TEMPFAIL, CALLOUT_STAGE_DNS,
		         res->detail);
		return;
	}
	p->hosts = malloc(res->nhosts * sizeof(*p->hosts));
	if (!p->hosts) {
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_INTERNAL, CALLOUT_STAGE_DNS,
		         "out of memory");
		return;
	}
	memcpy(p->hosts, res->hosts, res->nhosts * sizeof(*p->hosts));
	p->nhosts = res->nhosts;
	try_next(p);
}

/* Route, literal or MX: find the hosts to ask. */
static void start_dns(co_probe *p)
{
	callout_ctx *ctx = p->ctx;
	const route *r = p->addr.kind == CO_ADDR_DOMAIN ? co_route_find(ctx, p->addr.domain) : NULL;

	probe_enter(p, PROBE_DNS, "%s %s",
	            r                                ? "route of"
	            : p->addr.kind != CO_ADDR_DOMAIN ? "literal"
	                                             : "MX of",
	            p->addr.kind != CO_ADDR_DOMAIN ? p->addr.ip : p->addr.domain);
	p->proxy = p->set.proxy;
	if (p->addr.kind == CO_ADDR_DOMAIN) /* the operator's word for the domain comes first */
		co_proxies_domain(ctx->proxies, p->addr.domain, &p->proxy);
	if (r) {
		p->via_route = true;
		p->dns_req = co_dns_resolve_hosts(ctx->dns, (const char *const *)r->names, r->ports,
		                                  r->n, on_route_dns, p);
	} else if (p->addr.kind != CO_ADDR_DOMAIN) {
		const char *ip = p->addr.ip;
		unsigned port = 0;
		p->dns_req = co_dns_resolve_hosts(ctx->dns, &ip, &port, 1, on_route_dns, p);
	} else {
		if (!co_mx_join(ctx, p->addr.domain, p->set.max_mx, &p->mx, on_dns, p))
			conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_INTERNAL, CALLOUT_STAGE_DNS,
			         "out of memory");
		return;
	}
	if (!p->dns_req)
		conclude(p, CALLOUT_TEMPFAIL, CALLOUT_R_INTERNAL, CALLOUT_STAGE_DNS,
		         "out of memory");
}

static void claim_then_probe(co_probe *p);

/* ---- the cache ------------------------------------------------------------ */

/* Answer a probe's waiters from a record; go on refreshing it if due. */
static void answer_cached(co_probe *p, const co_rec *rec, bool refresh)
{
	callout_ctx *ctx = p->ctx;
	co_rec copy = *rec; /* rec may live in p->lk */
	callout_result res = {0};

	free(p->lk);
	p->lk = NULL;
	co_rules_result(&copy, co_ctx_now(ctx), &res);
	res.address = p->addr.mailbox;
	res.postmaster = p->postmaster_known;
	if (res.verdict == CALLOUT_TEMPFAIL && ctx->probe_pending)
		res.recheck_in = ctx->probe_pending(ctx, &p->set, &p->addr);
	flight_remove(p); /* later requests read the cache themselves */
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
	co_probe_free(p);
}

static void on_claim(void *arg, co_claim_result r, const co_rec *rec)
{
	co_probe *p = arg;

	p->cache_req = NULL;
	if (r == CO_CLAIM_ANSWERED && rec) {
		answer_cached(p, rec, false);
		return;
	}
	p->claimed = true;
	gate_then_dns(p);
}

/* With a shared cache, one node probes and the others wait for it. */
static void claim_then_probe(co_probe *p)
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
	co_probe *p = arg;
	lookup *lk = p->lk;

	p->cache_req = NULL;
	/* A re-check asks again what a tempfail on record says. */
	if (p->set.fresh && lk->found[CO_LOOKUP_ADDRESS] &&
	    lk->recs[CO_LOOKUP_ADDRESS].verdict == CALLOUT_TEMPFAIL)
		lk->found[CO_LOOKUP_ADDRESS] = false;
	co_decision d = co_rules_decide(&p->ctx->ttls, co_ctx_now(p->ctx), lk->recs, lk->found,
	                                p->addr.mailbox, p->set.from, p->set.fallback[0] != '\0');
	/* A refresh of a valid answer goes on from here too. */
	p->saw_block = co_rules_has_fact(lk->recs, lk->found, CO_REC_BLOCKS_US);
	p->postmaster_known = d.postmaster;
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
static void probe_begin(co_probe *p)
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

/* ---- the timer and the start ----------------------------------------------- */

void co_probe_deadline(const co_probe *p, co_late *late)
{
	bool waiting = p->state == PROBE_GATE;

	late->stage = p->state == PROBE_SESSION ? co_pool_job_stage(&p->job, &waiting)
	              : p->lk || waiting        ? CALLOUT_STAGE_NONE
	                                        : CALLOUT_STAGE_DNS;
	late->reason = waiting ? CALLOUT_R_LOCAL_LIMIT : CALLOUT_R_TIMEOUT;
	if (waiting)
		snprintf(late->why, sizeof(late->why),
		         "deadline reached waiting for a free slot: %s", p->limit_why);
	else
		snprintf(late->why, sizeof(late->why), "verification deadline reached");
}

/* The probe's one timer: in PROBE_NEW it starts the probe from the loop;
 * after, it is the deadline. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	co_probe *p = arg;
	co_late late;
	(void)fd;
	(void)what;

	if (p->state == PROBE_NEW) {
		probe_begin(p); /* its first state arms the deadline */
		return;
	}
	co_probe_deadline(p, &late);
	conclude(p, CALLOUT_TEMPFAIL, late.reason, late.stage, late.why);
}

/* An unguessable local part for the catch-all probe. */
static void make_random_rcpt(co_probe *p)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[16];
	char local[sizeof(rnd) + 1];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* No entropy: still unguessable enough to the remote side. */
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)((t.tv_nsec >> (i % 24)) ^ (uintptr_t)p >> i);
	}
	local[0] = alnum[rnd[0] % 26]; /* start with a letter */
	for (size_t i = 1; i < sizeof(rnd); i++)
		local[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
	local[sizeof(rnd)] = '\0';
	snprintf(p->random_rcpt, sizeof(p->random_rcpt), "%s@%s", local, p->addr.domain);
}

co_probe *co_probe_for(callout_ctx *ctx, const settings *set, const co_addr *addr)
{
	/* Another port's answer is not the domain's: neither read nor kept. */
	bool write =
	    ctx->cache && !(set->flags & CALLOUT_F_NO_CACHE) && set->port == ctx->defaults.port;
	/* A transcript shows a live dialogue, never a cached answer. */
	bool read = write && !(set->flags & CALLOUT_F_TRANSCRIPT);
	char key[CO_REC_KEY_MAX] = "";
	co_probe *p;

	if (write)
		co_rec_key(CO_REC_ADDRESS, addr->domain, addr->mailbox, set->from, key,
		           sizeof(key));
	if (read && key[0] && !set->fresh && (p = flight_find(ctx, key, false)))
		return p;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->ctx = ctx;
	p->set = *set;
	p->addr = *addr;
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
	/* Asking postmaster about itself would be the same RCPT twice. */
	if ((p->set.flags & CALLOUT_F_POSTMASTER) && strcasecmp(p->addr.local, "postmaster") != 0)
		snprintf(p->postmaster_rcpt, sizeof(p->postmaster_rcpt), "postmaster@%s",
		         p->addr.domain);
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	LIST_INSERT_HEAD(&ctx->probes, p, link);
	ctx->inflight++;
	if (p->read_cache)
		flight_add(ctx, p);
	struct timeval now = {0, 0};
	evtimer_add(p->timer, &now);
	return p;
}
