/*
 * Greylisting re-checks (see recheck.h).
 *
 * A re-check is one address and sender: the greylisted answer's time,
 * the index of the next delay and one timer.  While waiting, the timer is
 * due at that delay after the first answer; then a probe (probe.c, with
 * settings.fresh) asks again, and its answer ends the re-check or, still
 * tempfail, moves it to the next delay.  An answer of another probe for
 * the same address ends it too, from the loop (the timer at 0), so that
 * no holder's callback runs inside another probe's delivery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "hash.h"
#include "probe.h"
#include "recheck.h"

#define RECHECK_BUCKETS 256
#define RECHECK_KEY_MAX (2 * (CO_PATH_MAX + 1))

struct recheck {
	co_rechecks *rs;
	LIST_ENTRY(recheck) link;  /* in its bucket */
	char key[RECHECK_KEY_MAX]; /* "mailbox\tsender" */
	settings set;              /* fresh */
	co_addr addr;
	long long first_ms; /* the greylisted answer, monotonic */
	unsigned next;      /* index of the delay due next (or being probed) */
	bool probing;       /* wait is on a probe */
	struct event *timer;
	co_waiter wait;
	callout_result *last;  /* its last tempfail answer: what holders get on giving up */
	callout_result *final; /* another probe's answer: ends it from the loop */
	LIST_HEAD(, co_recheck_hold) holders;
};

struct co_rechecks {
	callout_ctx *ctx;
	unsigned delays[CALLOUT_RECHECK_MAX], n;
	unsigned max, pending;
	unsigned long long scheduled, dropped, done[4];
	LIST_HEAD(rc_bucket, recheck) buckets[RECHECK_BUCKETS];
};

co_rechecks *co_rechecks_new(callout_ctx *ctx, const unsigned delays[CALLOUT_RECHECK_MAX],
                             unsigned max, bool *enomem)
{
	co_rechecks *rs;

	*enomem = false;
	if (!delays[0])
		return NULL;
	if (!(rs = calloc(1, sizeof(*rs)))) {
		*enomem = true;
		return NULL;
	}
	rs->ctx = ctx;
	/* increasing, as the option table checks; a caller's array too */
	for (unsigned i = 0; i < CALLOUT_RECHECK_MAX && delays[i]; i++)
		if (!rs->n || delays[i] > rs->delays[rs->n - 1])
			rs->delays[rs->n++] = delays[i];
	rs->max = max;
	for (size_t i = 0; i < RECHECK_BUCKETS; i++)
		LIST_INIT(&rs->buckets[i]);
	return rs;
}

static void key_of(const settings *set, const co_addr *addr, char *key)
{
	snprintf(key, RECHECK_KEY_MAX, "%s\t%s", addr->mailbox, set->from);
}

static struct rc_bucket *bucket(co_rechecks *rs, const char *key)
{
	return &rs->buckets[co_hash(key, strlen(key)) % RECHECK_BUCKETS];
}

static struct recheck *find(co_rechecks *rs, const settings *set, const co_addr *addr)
{
	char key[RECHECK_KEY_MAX];
	struct recheck *e;

	key_of(set, addr, key);
	LIST_FOREACH(e, bucket(rs, key), link)
	if (strcmp(e->key, key) == 0)
		return e;
	return NULL;
}

/* Milliseconds until delay i of e is due (0: it is). */
static unsigned left_ms(const struct recheck *e, unsigned i)
{
	long long due = e->first_ms + 1000LL * e->rs->delays[i];
	long long now = co_clock_ms(NULL, NULL);

	return due > now ? (unsigned)(due - now) : 0;
}

/* As result.recheck_in: whole seconds, at least 1. */
static unsigned secs_up(unsigned ms)
{
	return ms ? (ms + 999) / 1000 : 1;
}

static void free_entry(struct recheck *e)
{
	co_recheck_hold *h;

	while ((h = LIST_FIRST(&e->holders))) {
		LIST_REMOVE(h, link);
		h->rc = NULL;
	}
	if (e->wait.probe)
		co_probe_leave(&e->wait);
	if (e->timer)
		event_free(e->timer);
	free(e->last);
	free(e->final);
	free(e);
}

/* The end: out of the table, res to every holder, freed. */
static void end(struct recheck *e, const callout_result *res)
{
	co_rechecks *rs = e->rs;
	callout_result r = *res;
	co_recheck_hold *h;

	LIST_REMOVE(e, link);
	rs->pending--;
	if ((unsigned)res->verdict < 4)
		rs->done[res->verdict]++;
	if (e->wait.probe)
		co_probe_leave(&e->wait); /* it goes on into the cache if it is probing */
	r.recheck_in = 0;
	while ((h = LIST_FIRST(&e->holders))) {
		LIST_REMOVE(h, link);
		h->rc = NULL;
		h->cb(h->arg, &r);
	}
	free_entry(e); /* res may be e's own: after the holders */
}

static void on_answer(void *arg, const callout_result *res)
{
	struct recheck *e = arg;
	callout_result *copy;

	e->probing = false;
	if (e->final) { /* another probe answered meanwhile */
		end(e, e->final);
		return;
	}
	if (res->verdict != CALLOUT_TEMPFAIL || e->next + 1 >= e->rs->n) {
		end(e, res);
		return;
	}
	if ((copy = callout_result_dup(res))) {
		free(e->last);
		e->last = copy;
	}
	e->next++;
	co_arm_deadline(e->timer, left_ms(e, e->next));
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct recheck *e = arg;
	co_probe *p;

	(void)fd;
	(void)what;
	if (e->final) {
		end(e, e->final);
		return;
	}
	if (!(p = co_probe_for(e->rs->ctx, &e->set, &e->addr))) {
		end(e, e->last); /* out of memory: give up */
		return;
	}
	e->probing = true;
	co_probe_wait(p, &e->wait, on_answer, e);
}

/* Another probe answered: end e with that answer, from the loop. */
static void supersede(struct recheck *e, const callout_result *res)
{
	struct timeval now = {0, 0};

	if (e->final || !(e->final = callout_result_dup(res)))
		return;
	evtimer_add(e->timer, &now);
}

static unsigned schedule(co_rechecks *rs, const settings *set, const co_addr *addr,
                         const callout_result *res)
{
	struct recheck *e;

	if (rs->pending >= rs->max) {
		rs->dropped++;
		return 0;
	}
	if (!(e = calloc(1, sizeof(*e))))
		return 0;
	e->rs = rs;
	key_of(set, addr, e->key);
	e->set = *set;
	e->set.fresh = true;
	e->addr = *addr;
	e->first_ms = co_clock_ms(NULL, NULL);
	LIST_INIT(&e->holders);
	e->timer = evtimer_new(rs->ctx->base, on_timer, e);
	e->last = callout_result_dup(res);
	if (!e->timer || !e->last) {
		free_entry(e);
		return 0;
	}
	LIST_INSERT_HEAD(bucket(rs, e->key), e, link);
	rs->pending++;
	rs->scheduled++;
	co_arm_deadline(e->timer, left_ms(e, 0));
	return secs_up(left_ms(e, 0));
}

unsigned co_recheck_answer(callout_ctx *ctx, const settings *set, const co_addr *addr,
                           const callout_result *res, bool refresh)
{
	co_rechecks *rs = ctx->rechecks;
	struct recheck *e;

	if (!rs)
		return 0;
	e = find(rs, set, addr);
	if (res->verdict != CALLOUT_TEMPFAIL) {
		/* a re-check's own probe ends it through its waiter */
		if (e && !(set->fresh && e->probing))
			supersede(e, res);
		return 0;
	}
	if (e && e->probing && set->fresh) /* its own answer: the next delay, if any */
		return e->next + 1 < rs->n ? secs_up(left_ms(e, e->next + 1)) : 0;
	if (e)
		return e->probing ? 1 : secs_up(left_ms(e, e->next));
	if (set->fresh || refresh || res->reason != CALLOUT_R_GREYLISTED)
		return 0;
	return schedule(rs, set, addr, res);
}

unsigned co_recheck_pending(callout_ctx *ctx, const settings *set, const co_addr *addr)
{
	struct recheck *e = ctx->rechecks ? find(ctx->rechecks, set, addr) : NULL;

	if (!e)
		return 0;
	return e->probing ? 1 : secs_up(left_ms(e, e->next));
}

bool co_recheck_hold_on(callout_ctx *ctx, const settings *set, const co_addr *addr,
                        const callout_result *res, co_recheck_hold *h,
                        void (*cb)(void *arg, const callout_result *res), void *arg)
{
	struct recheck *e = ctx->rechecks ? find(ctx->rechecks, set, addr) : NULL;

	if (!e || !(h->last = callout_result_dup(res)))
		return false;
	h->rc = e;
	h->cb = cb;
	h->arg = arg;
	LIST_INSERT_HEAD(&e->holders, h, link);
	return true;
}

unsigned co_recheck_hold_ms(const co_recheck_hold *h)
{
	return h->rc ? left_ms(h->rc, h->rc->rs->n - 1) : 0;
}

void co_recheck_unhold(co_recheck_hold *h)
{
	if (h->rc) {
		LIST_REMOVE(h, link);
		h->rc = NULL;
	}
	free(h->last);
	h->last = NULL;
}

void co_rechecks_free(co_rechecks *rs)
{
	struct recheck *e;

	if (!rs)
		return;
	for (size_t i = 0; i < RECHECK_BUCKETS; i++)
		while ((e = LIST_FIRST(&rs->buckets[i]))) {
			LIST_REMOVE(e, link);
			free_entry(e);
		}
	free(rs);
}

void co_rechecks_stats(const co_rechecks *rs, callout_stats *st)
{
	st->rechecks_pending = rs ? rs->pending : 0;
	st->rechecks_scheduled = rs ? rs->scheduled : 0;
	st->rechecks_dropped = rs ? rs->dropped : 0;
	for (size_t i = 0; i < 4; i++)
		st->rechecks_done[i] = rs ? rs->done[i] : 0;
}
