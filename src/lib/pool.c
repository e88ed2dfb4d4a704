/*
 * Sessions, limits and session reuse (see pool.h).
 *
 *   submit -> join a session of the same kind with room (idle: send now)
 *          -> or open one, if the domain and the host have a free slot
 *             and a token, and the host is not backing off
 *          -> or wait in the domain's queue (or fail at once: no_wait)
 *   idle   -> the outcomes of the batch to their jobs, then the next
 *             batch from the session's own list and the queue, or keep
 *             the session idle a while, or QUIT
 *   gone   -> outcomes, the host's failure count, requeue what waited
 *
 * The slots, tokens and backoff per domain and host are kept by a limits
 * backend (limit.h); pool_admit.c asks it before a session opens and
 * tells it when one ends.  What only the pool needs (queues, sessions to
 * join, how many RCPTs a host takes) stays here.
 *
 * The queue is pumped from the loop, never from inside a caller, so no
 * callback runs while the engine is in the middle of something.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <callout/callout.h>

#include "pool_int.h"

#define REQUEUES_MAX 3  /* "too many recipients" and lost sessions */
#define SKIP_MAX     64 /* queued jobs looked past per domain and pump */

static const co_session_events session_events;

static long long now_ms(const co_pool *pool)
{
	return co_clock_ms(pool->lim.clock, pool->lim.clock_arg);
}

/* ---- jobs ---------------------------------------------------------------- */

/* Pump again when a token will be there (the earliest one wins). */
static void arm_wake(co_pool *pool, long long wait)
{
	struct timeval when, now, tv = {wait / 1000, (wait % 1000) * 1000};
	if (wait <= 0)
		return;
	if (evtimer_pending(pool->wake, &when)) {
		/* libevent's clock, not ours: "when" is an absolute time of it */
		event_base_gettimeofday_cached(pool->base, &now);
		timeradd(&now, &tv, &now);
		if (timercmp(&when, &now, <))
			return;
	}
	evtimer_add(pool->wake, &tv);
}

static void dequeue(co_pool *pool, co_pool_job *j)
{
	co_pdom *d = j->dom;
	TAILQ_REMOVE(&d->queue, j, link);
	pool->nqueued--;
	j->state = CO_JOB_NEW;
}

static void enqueue(co_pool *pool, co_pool_job *j)
{
	co_pdom *d = j->dom;
	TAILQ_INSERT_TAIL(&d->queue, j, link);
	pool->nqueued++;
	j->state = CO_JOB_QUEUED;
	if (!d->waiting) {
		d->waiting = true;
		LIST_INSERT_HEAD(&pool->waiting, d, wlink);
	}
}

static void unwait(co_pdom *d)
{
	if (!d->waiting)
		return;
	LIST_REMOVE(d, wlink);
	d->waiting = false;
}

/* ---- sessions ------------------------------------------------------------ */

static unsigned ps_cap(const co_psess *ps)
{
	unsigned cap = ps->pool->lim.session_rcpts;
	if (ps->host->rcpt_cap && ps->host->rcpt_cap < cap)
		cap = ps->host->rcpt_cap;
	return cap;
}

/* Whether one more job fits on the session. */
static bool ps_room(const co_psess *ps)
{
	if (!ps->shared)
		return false;
	unsigned planned = ps->used + ps->npend + (ps->random && ps->npend ? 1 : 0);
	unsigned need = 1 + (ps->random && !ps->npend ? 1 : 0);
	return planned + need <= ps_cap(ps);
}

static bool same_kind(const co_psess *ps, const co_pool_job *j)
{
	const co_session_params *a = &ps->params, *b = &j->params;
	const char *fb = b->fallback_from ? b->fallback_from : "";
	return ps->dom == j->dom && ps->exempt == j->exempt &&
	       ps->random == (j->random_rcpt != NULL) && strcmp(ps->helo, b->helo) == 0 &&
	       strcmp(ps->from, b->mail_from) == 0 &&
	       ps->has_fallback == (b->fallback_from != NULL) && strcmp(ps->fallback, fb) == 0 &&
	       a->smtputf8 == b->smtputf8 && a->pipelining == b->pipelining && a->tls == b->tls &&
	       ps->proxies == j->proxies && a->connect_timeout_ms == b->connect_timeout_ms &&
	       a->command_timeout_ms == b->command_timeout_ms && a->sourcelen == b->sourcelen &&
	       (!b->sourcelen || memcmp(&ps->source, b->source, b->sourcelen) == 0);
}

static void attach(co_psess *ps, co_pool_job *j)
{
	TAILQ_INSERT_TAIL(&ps->pending, j, link);
	ps->npend++;
	j->sess = ps;
	j->state = CO_JOB_PENDING;
}

static void detach_pending(co_psess *ps, co_pool_job *j)
{
	TAILQ_REMOVE(&ps->pending, j, link);
	ps->npend--;
	j->sess = NULL;
	j->state = CO_JOB_NEW;
}

/* Queued jobs this session can carry join its next batch. */
static void fill(co_psess *ps)
{
	co_pool *pool = ps->pool;
	co_pool_job *j = TAILQ_FIRST(&ps->dom->queue), *next;

	for (; j && ps_room(ps); j = next) {
		next = TAILQ_NEXT(j, link);
		if (co_pdest_host(&pool->dests, &j->addr, false) == ps->host && same_kind(ps, j)) {
			dequeue(pool, j);
			attach(ps, j);
		}
	}
	if (TAILQ_EMPTY(&ps->dom->queue))
		unwait(ps->dom);
}

/* Send the pending jobs (as many as fit) as one batch. */
static bool send_batch(co_psess *ps)
{
	unsigned cap = ps_cap(ps);
	unsigned n = ps->npend, room = cap > ps->used ? cap - ps->used : 0;
	if (ps->random && room)
		room--;
	if (n > room)
		n = room ? room : 1; /* a session carries at least one job */
	size_t strs = 0;
	const char *random = NULL, *pm = NULL;
	co_pool_job *j = TAILQ_FIRST(&ps->pending);
	for (unsigned i = 0; i < n; i++, j = TAILQ_NEXT(j, link)) {
		strs += strlen(j->rcpt) + 1;
		if (ps->random && !random)
			random = j->random_rcpt;
		if (!pm)
			pm = j->postmaster_rcpt;
	}
	if (random)
		strs += strlen(random) + 1;
	/* The postmaster probe is asked once a session, where it fits; in
	 * the first transaction also past session_rcpts, but never past
	 * what the host is known to take (learn_cap). */
	if (pm && (ps->postmaster_asked ||
	           ((ps->used || ps->host->rcpt_cap) && ps->used + n + (random ? 1 : 0) >= cap)))
		pm = NULL;
	if (pm)
		strs += strlen(pm) + 1;
	pbatch *b = calloc(
	    1, sizeof(*b) +
	           n * (sizeof(co_pool_job *) + sizeof(char *) + sizeof(co_session_outcome)) +
	           strs);
	if (!b)
		return false;
	/* Pointers first, then the outcomes, then the strings: each part
	 * aligned for what it holds. */
	b->jobs = (co_pool_job **)(b + 1);
	const char **rcpts = (const char **)(b->jobs + n);
	b->sb.outs = (co_session_outcome *)(rcpts + n);
	char *p = (char *)(b->sb.outs + n);
	for (unsigned i = 0; i < n; i++) {
		j = TAILQ_FIRST(&ps->pending);
		detach_pending(ps, j);
		size_t len = strlen(j->rcpt) + 1;
		memcpy(p, j->rcpt, len);
		rcpts[i] = p;
		p += len;
		b->jobs[i] = j;
		j->sess = ps;
		j->slot = i;
		j->state = CO_JOB_SENT;
	}
	if (random) {
		/* One catch-all probe answers for the whole batch. */
		memcpy(p, random, strlen(random) + 1);
		b->sb.random_rcpt = p;
		p += strlen(random) + 1;
	}
	if (pm) {
		/* One postmaster probe answers for the whole session. */
		memcpy(p, pm, strlen(pm) + 1);
		b->sb.postmaster_rcpt = p;
		ps->postmaster_asked = true;
	}
	b->sb.n = n;
	b->sb.rcpts = rcpts;
	b->before = ps->used;
	ps->used += n + (random ? 1 : 0) + (pm ? 1 : 0);
	ps->b = b;
	ps->st = PS_BUSY;
	co_session_send(ps->s, &b->sb);
	return true;
}

/* Off the domain's list of sessions to join: full, or ending.  (A full
 * session never has room again, but for a cancelled job: not worth a
 * lookup.) */
static void unjoin(co_psess *ps)
{
	if (!ps->joinable)
		return;
	LIST_REMOVE(ps, jlink);
	ps->joinable = false;
}

static void unlink_session(co_psess *ps)
{
	unjoin(ps);
	LIST_REMOVE(ps, link);
	co_pool_unhold(ps);
	if (ps->idle_timer)
		event_free(ps->idle_timer);
}

/* End a session from our side: QUIT, no callbacks; what it carried
 * goes back to the queue. */
static void ps_close(co_psess *ps)
{
	co_pool *pool = ps->pool;

	co_session_quit(ps->s);
	unlink_session(ps);
	if (ps->b) {
		for (unsigned i = 0; i < ps->b->sb.n; i++)
			if (ps->b->jobs[i]) {
				ps->b->jobs[i]->sess = NULL;
				ps->b->jobs[i]->state = CO_JOB_NEW;
				enqueue(pool, ps->b->jobs[i]);
			}
		free(ps->b);
	}
	co_pool_job *j;
	while ((j = TAILQ_FIRST(&ps->pending)) != NULL) {
		detach_pending(ps, j);
		enqueue(pool, j);
	}
	free(ps);
	schedule_pump(pool);
}

/* A session for j on the slots it holds. */
static co_psess *ps_open(co_pool *pool, co_pool_job *j, co_phost *h, co_pdom *d,
                         const co_admission *a, co_proxy_member *proxy)
{
	const char *fb = j->params.fallback_from ? j->params.fallback_from : "";
	const char *tn = j->params.tls_name ? j->params.tls_name : "";
	const char *src[] = {j->params.helo, j->params.mail_from, fb, tn};
	size_t len[4], total = 0;
	for (int i = 0; i < 4; i++)
		total += (len[i] = strlen(src[i]) + 1);
	co_psess *ps = calloc(1, sizeof(*ps) + total);
	ptail *t = calloc(1, sizeof(*t));
	if (!ps || !t) {
		free(ps);
		free(t);
		return NULL;
	}
	TAILQ_INIT(&ps->pending);
	const char **dst[] = {&ps->helo, &ps->from, &ps->fallback, &ps->tls_name};
	char *p = ps->strs;
	for (int i = 0; i < 4; i++) {
		memcpy(p, src[i], len[i]);
		*dst[i] = p;
		p += len[i];
	}
	ps->pool = pool;
	ps->host = h;
	ps->dom = d;
	ps->shared = j->shared;
	ps->exempt = j->exempt;
	ps->random = j->random_rcpt != NULL;
	ps->addr = j->addr;
	ps->params = j->params;
	ps->has_fallback = j->params.fallback_from != NULL;
	if (j->params.sourcelen)
		memcpy(&ps->source, j->params.source, j->params.sourcelen);
	ps->params.addr = (const struct sockaddr *)&ps->addr;
	ps->params.addrlen = j->addrlen;
	ps->params.source = j->params.sourcelen ? (const struct sockaddr *)&ps->source : NULL;
	ps->params.helo = ps->helo;
	ps->params.mail_from = ps->from;
	ps->params.fallback_from = ps->has_fallback ? ps->fallback : NULL;
	ps->params.tls_name = ps->tls_name[0] ? ps->tls_name : NULL;
	if (ps->shared)
		ps->params.transcript = NULL; /* only a job alone may keep one */
	ps->proxies = j->proxies;
	ps->proxy = proxy;
	ps->params.proxy = proxy ? &proxy->conn : NULL;
	ps->st = PS_CONNECTING;
	if (!(ps->s = co_session_start(pool->base, &ps->params, &session_events, ps))) {
		free(ps);
		free(t);
		return NULL;
	}
	co_ptail_hold(pool, t, h, d, a);
	if (proxy) {
		co_proxy_hold(proxy);
		t->proxy = proxy;
	}
	ps->tail = t;
	co_session_on_closed(ps->s, co_ptail_closed, t);
	if (ps->shared) {
		ps->joinable = true;
		LIST_INSERT_HEAD(&d->joinable, ps, jlink);
	}
	LIST_INSERT_HEAD(&pool->sessions, ps, link);
	h->refs++;
	d->refs++;
	ps->trial = a->trial;
	return ps;
}

/* Close an idle session of this domain (or host) to free its slot,
 * unless one is closing for it already. */
static bool yield_idle(co_pool *pool, const co_pdom *d, const co_phost *h)
{
	for (const ptail *t = LIST_FIRST(&pool->tails); t; t = LIST_NEXT(t, link))
		if (t->closing && (t->dom == d || t->host == h))
			return false;
	for (co_psess *ps = LIST_FIRST(&pool->sessions); ps; ps = LIST_NEXT(ps, link)) {
		if (ps->st == PS_IDLE && (ps->dom == d || ps->host == h)) {
			ps_close(ps);
			return true;
		}
	}
	return false;
}

/* Put a job on a session: join one, or open one. */
static place try_place(co_pool *pool, co_pool_job *j, bool may_open, long long *wait, char *why,
                       size_t len)
{
	co_pdom *d = j->dom;
	co_phost *h = co_pdest_host(&pool->dests, &j->addr, true);

	if (!h)
		return NOMEM;
	if (!j->exempt && co_pool_backing_off(pool, &j->addr, why, len))
		return HELD;
	if (j->shared) {
		for (co_psess *ps = LIST_FIRST(&d->joinable), *next; ps; ps = next) {
			next = LIST_NEXT(ps, jlink);
			if (!ps_room(ps)) {
				unjoin(ps);
				continue;
			}
			if (ps->host == h && same_kind(ps, j)) {
				attach(ps, j);
				if (ps->st == PS_IDLE) {
					evtimer_del(ps->idle_timer);
					if (!send_batch(ps))
						ps_close(ps);
				}
				return PLACED;
			}
		}
	}
	if (!may_open) {
		snprintf(why, len, "others wait for %s", d->name);
		return BLOCKED_DOMAIN;
	}
	co_proxy_member *proxy = NULL;
	if (j->proxies) {
		co_proxy_choice c = co_proxy_pick(j->proxies, &proxy, why, len);
		if (c != CO_PROXY_PICKED)
			return c == CO_PROXY_FULL ? BLOCKED_HOST : PROXY_DOWN;
	}
	co_admission a;
	co_admit code;
	place r = co_pool_take_slots(pool, j, h, &a, &code, wait, why, len);
	/* A full domain or host closes an idle session of it: its slot comes
	 * back once the server has let the connection go (the pump runs
	 * again then). */
	if (code == CO_ADMIT_DOMAIN_FULL)
		yield_idle(pool, d, NULL);
	else if (code == CO_ADMIT_HOST_FULL)
		yield_idle(pool, NULL, h);
	if (r != PLACED)
		return r;
	co_psess *ps = ps_open(pool, j, h, d, &a, proxy);
	if (!ps) {
		co_pool_give_back(pool, j, h, &a);
		return NOMEM;
	}
	attach(ps, j);
	if (ps->shared)
		fill(ps);
	return PLACED;
}

/* A job's answer; "too many recipients" sends it to another session. */
static void job_outcome(co_pool *pool, co_pool_job *j, const co_session_outcome *out)
{
	j->sess = NULL;
	if (out->requeue && j->requeues < REQUEUES_MAX) {
		j->requeues++;
		enqueue(pool, j);
		schedule_pump(pool);
		return;
	}
	j->state = CO_JOB_DONE;
	j->cb(j->arg, out);
}

static void learn_cap(co_phost *h, unsigned cap)
{
	if (!cap)
		cap = 1;
	if (!h->rcpt_cap || cap < h->rcpt_cap)
		h->rcpt_cap = cap;
}

/* The server ended a session in the middle of a transaction: later
 * sessions to it carry only what it answered, or one address when it
 * hangs up after a refusal (anti-harvesting). */
static void learn_cut(co_phost *h, const co_session_outcome *why)
{
	if (why->cut)
		learn_cap(h, why->refused_last ? 1 : why->rcpts_answered);
}

/* Hand a finished batch's outcomes to its jobs; frees the batch. */
static void deliver_batch(co_pool *pool, co_phost *h, pbatch *b)
{
	for (unsigned i = 0; i < b->sb.n; i++) {
		if (b->sb.outs[i].requeue && !b->sb.outs[i].cut) {
			learn_cap(h, b->before + i);
			break;
		}
	}
	for (unsigned i = 0; i < b->sb.n; i++) {
		co_pool_job *j = b->jobs[i];
		if (!j)
			continue; /* cancelled meanwhile */
		b->jobs[i] = NULL;
		job_outcome(pool, j, &b->sb.outs[i]);
	}
	free(b);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	co_psess *ps = arg;
	(void)fd;
	(void)what;
	ps_close(ps);
}

/* The session waits for work: its next batch, a while idle, or QUIT. */
static void next_batch(co_psess *ps)
{
	co_pool *pool = ps->pool;

	if (ps->shared && !ps->npend)
		fill(ps);
	if (ps->npend) {
		/* Unless the host has since said it takes fewer: then the
		 * pending jobs go back to the queue, for other sessions. */
		if ((!ps->used || ps->used + 1 + ps->random <= ps_cap(ps)) && send_batch(ps))
			return;
	} else if (ps->shared && ps_room(ps) && pool->lim.session_idle_ms > 1) {
		if (!ps->idle_timer &&
		    !(ps->idle_timer = evtimer_new(pool->base, on_idle_timeout, ps)))
			goto quit;
		struct timeval tv = {pool->lim.session_idle_ms / 1000,
		                     (pool->lim.session_idle_ms % 1000) * 1000};
		ps->st = PS_IDLE;
		evtimer_add(ps->idle_timer, &tv);
		schedule_pump(pool); /* its slot may serve another kind */
		return;
	}
quit:
	ps_close(ps);
}

static void on_session_idle(void *arg, co_session *s, co_session_batch *done)
{
	co_psess *ps = arg;

	(void)s;
	if (!done) {
		ps->ready = true;
		if (ps->proxy) /* it let us through */
			co_proxy_report(ps->proxy, false, NULL);
	} else if (!ps->shared) {
		/* Alone on it: QUIT before the answer, so a transcript ends
		 * with it. */
		co_pool *pool = ps->pool;
		ps->st = PS_DELIVERING;
		co_session_quit(ps->s);
		unlink_session(ps);
		deliver_batch(pool, ps->host, ps->b);
		free(ps);
		schedule_pump(pool);
		return;
	} else {
		ps->st = PS_DELIVERING;
		co_pool_account_batch(ps->pool, ps, done);
		deliver_batch(ps->pool, ps->host, ps->b);
		ps->b = NULL;
	}
	next_batch(ps);
}

static void on_session_gone(void *arg, co_session_batch *done, const co_session_outcome *why)
{
	co_psess *ps = arg;
	co_pool *pool = ps->pool;
	pbatch *b = ps->b;

	ps->st = PS_DELIVERING;
	co_pool_account_gone(pool, ps, done, why);
	learn_cut(ps->host, why);
	unlink_session(ps);
	if (b)
		deliver_batch(pool, ps->host, b);
	ps->b = NULL;
	co_pool_job *j;
	while ((j = TAILQ_FIRST(&ps->pending)) != NULL) {
		detach_pending(ps, j);
		if (ps->ready) {
			/* It worked, then ended: the job asks another session. */
			co_session_outcome again = *why;
			again.requeue = true;
			job_outcome(pool, j, &again);
		} else {
			job_outcome(pool, j, why);
		}
	}
	free(ps);
	schedule_pump(pool);
}

static const co_session_events session_events = {
    .idle = on_session_idle,
    .gone = on_session_gone,
};

/* ---- the queue ----------------------------------------------------------- */

static void prune(co_pool *pool, long long now)
{
	if (now - pool->pruned_at < PRUNE_MS)
		return;
	pool->pruned_at = now;
	co_pdests_prune(&pool->dests);
}

/* Answer every job of a list: tempfail at the connection, for reason,
 * each with its why. */
static void answer_all(struct co_pool_jobs *list, callout_reason reason, bool next_host,
                       bool proxy_failed)
{
	co_pool_job *j;

	while ((j = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, j, link);
		co_session_outcome out = {.verdict = CALLOUT_TEMPFAIL,
		                          .reason = reason,
		                          .stage = CALLOUT_STAGE_CONNECT,
		                          .next_host = next_host,
		                          .proxy_failed = proxy_failed};
		snprintf(out.text, sizeof(out.text), "%s", j->why);
		j->state = CO_JOB_DONE;
		j->cb(j->arg, &out);
	}
}

/* Place what waits, as far as the limits allow. */
static void pump(evutil_socket_t fd, short what, void *arg)
{
	co_pool *pool = arg;
	struct co_pool_jobs held = TAILQ_HEAD_INITIALIZER(held);
	struct co_pool_jobs nomem = TAILQ_HEAD_INITIALIZER(nomem);
	struct co_pool_jobs refused = TAILQ_HEAD_INITIALIZER(refused);
	struct co_pool_jobs down = TAILQ_HEAD_INITIALIZER(down);
	co_pool_job *j;
	long long wait = 0;
	char why[160];

	(void)fd;
	(void)what;
	for (co_pdom *d = LIST_FIRST(&pool->waiting), *dnext; d; d = dnext) {
		dnext = LIST_NEXT(d, wlink);
		unsigned skipped = 0;
		co_pool_job *next;
		for (j = TAILQ_FIRST(&d->queue); j && skipped < SKIP_MAX; j = next) {
			next = TAILQ_NEXT(j, link);
			dequeue(pool, j);
			place r = try_place(pool, j, true, &wait, why, sizeof(why));
			if (r == PLACED) {
				/* A new session may have taken others. */
				next = TAILQ_FIRST(&d->queue);
				continue;
			}
			if (r == PROXY_DOWN) {
				TAILQ_INSERT_TAIL(&down, j, link);
				snprintf(j->why, sizeof(j->why), "%s", why);
				continue;
			}
			if (r == HELD || r == NOMEM) {
				TAILQ_INSERT_TAIL(r == HELD ? &held : &nomem, j, link);
				if (r == NOMEM ||
				    !co_pool_backing_off(pool, &j->addr, j->why, sizeof(j->why)))
					snprintf(j->why, sizeof(j->why), "%s",
					         r == NOMEM ? "out of memory" : why);
				continue;
			}
			if (j->no_wait && r != PENDING) {
				/* It waited only for the fleet's answer: past a limit. */
				TAILQ_INSERT_TAIL(&refused, j, link);
				snprintf(j->why, sizeof(j->why), "%s", why);
				continue;
			}
			/* Put it back where it was. */
			j->state = CO_JOB_QUEUED;
			pool->nqueued++;
			if (next)
				TAILQ_INSERT_BEFORE(next, j, link);
			else
				TAILQ_INSERT_TAIL(&d->queue, j, link);
			if (r == BLOCKED_DOMAIN || r == PENDING)
				break;
			skipped++;
		}
		if (TAILQ_EMPTY(&d->queue))
			unwait(d);
	}
	arm_wake(pool, wait);
	prune(pool, now_ms(pool));
	/* Callbacks last: they may submit and cancel.  A host backing off
	 * sends the job to the next one; our own shortage does not. */
	answer_all(&held, CALLOUT_R_LOCAL_LIMIT, true, false);
	answer_all(&refused, CALLOUT_R_LOCAL_LIMIT, false, false);
	answer_all(&down, CALLOUT_R_CONNECT_FAILED, false, true);
	answer_all(&nomem, CALLOUT_R_INTERNAL, false, false);
}

/* ---- the interface ------------------------------------------------------- */

co_pool *co_pool_new(struct event_base *base, const co_pool_limits *limits)
{
	co_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->base = base;
	pool->lim = *limits;
	LIST_INIT(&pool->waiting);
	LIST_INIT(&pool->sessions);
	LIST_INIT(&pool->tails);
	pool->limits = co_pool_backend_new(pool);
	if (!pool->lim.session_rcpts)
		pool->lim.session_rcpts = 1;
	pool->pump_ev = event_new(base, -1, 0, pump, pool);
	pool->wake = evtimer_new(base, pump, pool);
	pool->pruned_at = now_ms(pool);
	if (!pool->limits || !pool->pump_ev || !pool->wake) {
		co_pool_free(pool);
		return NULL;
	}
	return pool;
}

void co_pool_free(co_pool *pool)
{
	if (!pool)
		return;
	co_psess *ps;

	while ((ps = LIST_FIRST(&pool->sessions)) != NULL) {
		co_session_quit(ps->s);
		unlink_session(ps);
		free(ps->b);
		free(ps);
	}
	/* Connections still closing: their slots go back now, and they
	 * free their tails when gone. */
	co_ptails_drop(pool);
	co_pdests_clear(&pool->dests);
	co_limits_free(pool->limits);
	if (pool->pump_ev)
		event_free(pool->pump_ev);
	if (pool->wake)
		event_free(pool->wake);
	free(pool);
}

int co_pool_submit(co_pool *pool, co_pool_job *j, char *why, size_t len)
{
	long long wait = 0;

	j->state = CO_JOB_NEW;
	j->sess = NULL;
	if (!(j->dom = co_pdest_domain(&pool->dests, j->domain))) {
		snprintf(why, len, "out of memory");
		return -2;
	}
	/* Behind others of its domain, it only joins a session. */
	place r = try_place(pool, j, TAILQ_EMPTY(&j->dom->queue), &wait, why, len);
	switch (r) {
	case PLACED:
		return 0;
	case NOMEM:
		snprintf(why, len, "out of memory");
		return -2;
	case HELD:
		return -1;
	case PROXY_DOWN:
		return -3;
	case BLOCKED_DOMAIN:
	case BLOCKED_HOST:
		if (j->no_wait)
			return -1;
		break;
	case PENDING: /* even no_wait: the answer decides */
		break;
	}
	if (pool->nqueued >= pool->lim.max_queued) {
		snprintf(why, len, "%u verifications wait for a free slot already", pool->nqueued);
		return -1;
	}
	enqueue(pool, j);
	arm_wake(pool, wait);
	return 0;
}

void co_pool_cancel(co_pool *pool, co_pool_job *j)
{
	co_psess *ps = j->sess;

	switch (j->state) {
	case CO_JOB_QUEUED:
		dequeue(pool, j);
		if (TAILQ_EMPTY(&j->dom->queue))
			unwait(j->dom);
		break;
	case CO_JOB_PENDING:
		detach_pending(ps, j);
		if (ps->st != PS_DELIVERING &&
		    (!ps->shared || (ps->st == PS_CONNECTING && !ps->npend)))
			ps_close(ps);
		break;
	case CO_JOB_SENT:
		ps->b->jobs[j->slot] = NULL;
		if (!ps->shared && ps->st != PS_DELIVERING)
			ps_close(ps);
		break;
	case CO_JOB_NEW:
	case CO_JOB_DONE:
		break;
	}
	j->state = CO_JOB_DONE;
	j->sess = NULL;
}

void co_pool_stats(co_pool *pool, unsigned *sessions, unsigned *idle, unsigned *queued,
                   unsigned *backing_off)
{
	*sessions = *idle = 0;
	*queued = pool->nqueued;
	for (const co_psess *ps = LIST_FIRST(&pool->sessions); ps; ps = LIST_NEXT(ps, link)) {
		(*sessions)++;
		*idle += ps->st == PS_IDLE;
	}
	*backing_off = pool->limits->ops->held_count(pool->limits, CO_LIMIT_HOST);
}

callout_stage co_pool_job_stage(const co_pool_job *j, bool *waiting)
{
	*waiting = j->state == CO_JOB_QUEUED;
	if ((j->state == CO_JOB_PENDING || j->state == CO_JOB_SENT) && j->sess && j->sess->s)
		return co_session_stage(j->sess->s);
	return CALLOUT_STAGE_NONE;
}
