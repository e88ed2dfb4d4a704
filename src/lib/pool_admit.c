/*
 * The pool's side of the limits (see pool_int.h): the backend it keeps
 * them in (limit.h), admitting a session (a slot and a token of its
 * domain and host, all or nothing, or why not), the slots a session
 * holds until its connection is gone (tails), and what a session's end
 * tells the backoff of its host.  Which job goes on which session is
 * pool.c's.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include <callout/callout.h>

#include "pool_int.h"
#include "sockaddr.h"

#define DOUBLINGS_MAX 4 /* backoff grows to 16 times its first length */

/* The limits backend has an answer for an admission that was pending. */
static void on_kick(void *arg)
{
	schedule_pump(arg);
}

co_limits *co_pool_backend_new(co_pool *pool)
{
	const co_pool_limits *limits = &pool->lim;
	co_limits *l = NULL;
	/* Domains never back off: their hosts do. */
	co_limit_rules rules[CO_LIMIT_KINDS] = {
	    [CO_LIMIT_DOMAIN] = {limits->domain_sessions,
	                         {limits->domain_rate, limits->domain_burst},
	                         {CALLOUT_UNLIMITED, 0, 0}},
	    [CO_LIMIT_HOST] = {limits->host_sessions,
	                       {limits->host_rate, limits->host_burst},
	                       {limits->backoff_failures, limits->backoff_ms, DOUBLINGS_MAX}},
	};
	if (limits->shared)
		l = co_limits_redis_new(rules, limits->clock, limits->clock_arg, pool->base,
		                        limits->shared, limits->fleet_nodes);
	if (!l)
		l = co_limits_local_new(rules, limits->clock, limits->clock_arg, PRUNE_MS);
	if (l) {
		l->kick = on_kick;
		l->kick_arg = pool;
	}
	return l;
}

void co_pool_health(co_pool *pool, callout_health *h)
{
	co_limits_health lh;

	co_limits_health_of(pool->limits, &lh);
	h->limits_shared = lh.shared;
	h->limits_up = lh.up;
	h->limits_leases = lh.leases;
	h->limits_nodes = lh.nodes;
	h->limits_fallbacks = lh.fallbacks;
	h->limits_round_trips = lh.round_trips;
	h->limits_admissions = lh.admissions;
}

/* ---- backoff ---------------------------------------------------------- */

/* A session to h ended: count a failure (refused, timed out, 421) or
 * clear the count (it worked).  Routes are exempt. */
static void host_account(co_pool *pool, co_phost *h, const co_psess *ps, bool failed)
{
	if (!ps->exempt)
		pool->limits->ops->report(pool->limits, &h->key,
		                          failed ? CO_LIMIT_FAILED : CO_LIMIT_WORKED, ps->trial);
}

static bool is_failure(const co_session_outcome *o, bool ready)
{
	/* A server that ends sessions after some recipients works: the
	 * session's cap is what it needs (learn_cut). */
	if (o->cut)
		return false;
	if (o->code == 421)
		return true;
	return !ready && (o->reason == CALLOUT_R_CONNECT_FAILED || o->reason == CALLOUT_R_TIMEOUT ||
	                  o->reason == CALLOUT_R_CONNECTION_LOST);
}

static bool says_421(const co_session_batch *b)
{
	for (unsigned i = 0; b && i < b->n; i++)
		if (b->outs[i].answered && b->outs[i].code == 421)
			return true;
	return false;
}

void co_pool_account_batch(co_pool *pool, const co_psess *ps, const co_session_batch *done)
{
	if (says_421(done))
		host_account(pool, ps->host, ps, true);
}

void co_pool_account_gone(co_pool *pool, const co_psess *ps, const co_session_batch *done,
                          const co_session_outcome *why)
{
	if (ps->proxy && !ps->ready) /* the proxy failed, or let us through */
		co_proxy_report(ps->proxy, why->proxy_failed, why->text);
	if (why->proxy_failed) /* nothing learned about the host */
		pool->limits->ops->report(pool->limits, &ps->host->key, CO_LIMIT_ENDED, ps->trial);
	else
		host_account(pool, ps->host, ps, is_failure(why, ps->ready) || says_421(done));
}

bool co_pool_backing_off(co_pool *pool, const struct sockaddr_storage *addr, char *why, size_t len)
{
	unsigned char id[CO_ADDR_KEY_MAX];
	co_limit_key k = {CO_LIMIT_HOST, id, co_addr_key(addr, id)};
	unsigned failures;
	long long left_s;
	char ip[INET6_ADDRSTRLEN] = "";

	if (!pool->limits->ops->held(pool->limits, &k, &failures, &left_s))
		return false;
	co_sockaddr_text((const struct sockaddr *)addr, sizeof(*addr), 0, ip, sizeof(ip));
	snprintf(why, len, "backing off from %s after %u failures, for %llds more", ip, failures,
	         left_s);
	return true;
}

/* ---- the slots a session holds ------------------------------------------ */

void co_ptail_hold(co_pool *pool, ptail *t, co_phost *h, co_pdom *d, const co_admission *a)
{
	*t = (ptail){.pool = pool,
	             .host = h,
	             .dom = d,
	             .dlease = a->dlease,
	             .hlease = a->hlease,
	             .refs = 2,
	             .closing = false};
	LIST_INSERT_HEAD(&pool->tails, t, link);
}

void co_ptail_put(ptail *t)
{
	if (--t->refs)
		return;
	co_pool *pool = t->pool;
	if (pool) {
		co_limits *l = pool->limits;
		l->ops->release(l, &t->host->key, t->hlease);
		l->ops->release(l, &t->dom->key, t->dlease);
		t->host->refs--;
		t->dom->refs--;
		if (t->proxy)
			co_proxy_release(t->proxy);
		LIST_REMOVE(t, link);
		schedule_pump(pool);
	}
	free(t);
}

void co_ptail_closed(void *t)
{
	co_ptail_put(t);
}

void co_ptails_drop(co_pool *pool)
{
	ptail *t;

	while ((t = LIST_FIRST(&pool->tails)) != NULL) {
		LIST_REMOVE(t, link);
		co_limits *l = pool->limits;
		if (l) {
			l->ops->release(l, &t->host->key, t->hlease);
			l->ops->release(l, &t->dom->key, t->dlease);
		}
		t->pool = NULL;
	}
}

void co_pool_unhold(co_psess *ps)
{
	co_limits *l = ps->pool->limits;
	ps->tail->closing = true;
	co_ptail_put(ps->tail);
	ps->tail = NULL;
	if (ps->trial)
		l->ops->report(l, &ps->host->key, CO_LIMIT_ENDED, true);
}

/* ---- admission ----------------------------------------------------------- */

place co_pool_take_slots(co_pool *pool, co_pool_job *j, co_phost *h, co_admission *a,
                         co_admit *code, long long *wait, char *why, size_t len)
{
	co_pdom *d = j->dom;
	co_admit r = co_limits_admit(pool->limits, &d->key, &h->key, j->exempt, a);

	*code = r;
	if (r != CO_ADMIT_OK && a->wait > 0 && (*wait == 0 || a->wait < *wait))
		*wait = a->wait;
	switch (r) {
	case CO_ADMIT_OK:
		return PLACED;
	case CO_ADMIT_NOMEM:
		return NOMEM;
	case CO_ADMIT_DOMAIN_FULL:
		snprintf(why, len, "%u sessions to %s at once", a->out, d->name);
		return BLOCKED_DOMAIN;
	case CO_ADMIT_HOST_FULL:
		snprintf(why, len, "%u sessions to one of its hosts at once", a->out);
		return BLOCKED_HOST;
	case CO_ADMIT_DOMAIN_RATE:
		snprintf(why, len, "%u new sessions a minute to %s", pool->lim.domain_rate,
		         d->name);
		return BLOCKED_DOMAIN;
	case CO_ADMIT_HOST_RATE:
		snprintf(why, len, "%u new sessions a minute to one of its hosts",
		         pool->lim.host_rate);
		return BLOCKED_HOST;
	case CO_ADMIT_HELD:
		if (co_pool_backing_off(pool, &j->addr, why, len))
			return HELD;
		snprintf(why, len, "backing off from one of its hosts");
		return HELD;
	case CO_ADMIT_PENDING:
		snprintf(why, len, "asking the fleet's limits for %s", d->name);
		return PENDING;
	case CO_ADMIT_SHARE:
		snprintf(why, len,
		         "the fleet's limits are out of reach; this node's share of %s is 0",
		         d->name);
		return BLOCKED_DOMAIN;
	}
	return NOMEM;
}

void co_pool_give_back(co_pool *pool, const co_pool_job *j, co_phost *h, const co_admission *a)
{
	co_limits *l = pool->limits;

	if (!j->exempt) {
		l->ops->refund(l, &j->dom->key, a->dlease);
		l->ops->refund(l, &h->key, a->hlease);
		if (a->trial)
			l->ops->report(l, &h->key, CO_LIMIT_ENDED, true);
	}
	l->ops->release(l, &h->key, a->hlease);
	l->ops->release(l, &j->dom->key, a->dlease);
}
