/*
 * The in-process limits backend (see limit.h): per key its slots out, its
 * bucket and its backoff, in a table under the keyed hash (the keys are
 * names and addresses others choose).  A key whose state is back to what
 * a fresh one would be (no slot out, a full bucket, no failures) is
 * dropped at the next sweep: dropping it changes no answer.
 */
#include <stdlib.h>
#include <string.h>

#include <callout/callout.h>

#include "hash.h"
#include "limit.h"

#define TABLE_BUCKETS 4096
#define SWEEP_MS      60000

typedef struct entry {
	struct entry *hnext;
	co_limit_kind kind;
	unsigned slots; /* out now */
	co_bucket bucket;
	co_backoff backoff;
	size_t len;
	unsigned char id[];
} entry;

typedef struct local {
	co_limits base;
	unsigned sweep_ms;
	long long swept_at;
	co_lease leases; /* the last one handed out */
	size_t n;
	entry *table[TABLE_BUCKETS];
} local;

static long long now_of(const local *lo)
{
	return co_clock_ms(lo->base.clock, lo->base.clock_arg);
}

static size_t slot_of(const co_limit_key *k)
{
	/* The kind is in the hash too: a domain and an address never meet. */
	return (co_hash(k->id, k->len) ^ (size_t)k->kind) % TABLE_BUCKETS;
}

static bool fresh(const local *lo, entry *e, long long now)
{
	return !e->slots && !e->backoff.failures && !e->backoff.trial &&
	       co_bucket_full(&e->bucket, lo->base.rules[e->kind].rate, now);
}

static void sweep(local *lo, long long now)
{
	if (now - lo->swept_at < lo->sweep_ms)
		return;
	lo->swept_at = now;
	for (size_t i = 0; i < TABLE_BUCKETS; i++) {
		for (entry **pp = &lo->table[i]; *pp;) {
			entry *e = *pp;
			if (fresh(lo, e, now)) {
				*pp = e->hnext;
				free(e);
				lo->n--;
			} else {
				pp = &e->hnext;
			}
		}
	}
}

/* k's state; created (full bucket) when create says so, NULL when it is
 * not there or out of memory. */
static entry *find(local *lo, const co_limit_key *k, bool create, long long now)
{
	if (create)
		sweep(lo, now);
	size_t b = slot_of(k);
	for (entry *e = lo->table[b]; e; e = e->hnext)
		if (e->kind == k->kind && e->len == k->len && memcmp(e->id, k->id, k->len) == 0)
			return e;
	if (!create)
		return NULL;
	entry *e = calloc(1, sizeof(*e) + k->len);
	if (!e)
		return NULL;
	e->kind = k->kind;
	e->len = k->len;
	memcpy(e->id, k->id, k->len);
	co_bucket_init(&e->bucket, lo->base.rules[k->kind].rate, now);
	e->hnext = lo->table[b];
	lo->table[b] = e;
	lo->n++;
	return e;
}

static bool l_acquire(co_limits *l, const co_limit_key *k, co_lease *lease, unsigned *out)
{
	local *lo = (local *)l;
	unsigned cap = l->rules[k->kind].sessions;
	entry *e = find(lo, k, true, now_of(lo));

	if (!e) {
		*out = 0;
		return false;
	}
	if (cap != CALLOUT_UNLIMITED && e->slots >= cap) {
		*out = e->slots;
		return false;
	}
	e->slots++;
	*lease = ++lo->leases;
	return true;
}

static void l_release(co_limits *l, const co_limit_key *k, co_lease lease)
{
	entry *e = find((local *)l, k, false, 0);

	(void)lease; /* here a count is enough */
	if (e && e->slots)
		e->slots--;
}

static bool l_take(co_limits *l, const co_limit_key *k, long long *wait)
{
	local *lo = (local *)l;
	co_rate r = l->rules[k->kind].rate;
	long long now = now_of(lo);
	entry *e;

	if (r.rate == CALLOUT_UNLIMITED)
		return true;
	if (!(e = find(lo, k, true, now)) || !co_bucket_ready(&e->bucket, r, now, wait))
		return false;
	co_bucket_take(&e->bucket, r);
	return true;
}

static void l_refund(co_limits *l, const co_limit_key *k, co_lease lease)
{
	co_rate r = l->rules[k->kind].rate;
	entry *e = find((local *)l, k, false, 0);

	if (r.rate == CALLOUT_UNLIMITED || !e)
		return;
	e->bucket.tokens += 1.0;
	if (e->bucket.tokens > r.burst)
		e->bucket.tokens = r.burst;
}

static bool l_held(co_limits *l, const co_limit_key *k, unsigned *failures, long long *left_s)
{
	local *lo = (local *)l;
	long long now = now_of(lo);
	entry *e = find(lo, k, false, now);

	if (!e || !co_backoff_held(&e->backoff, &l->rules[k->kind].backoff, now))
		return false;
	*failures = e->backoff.failures;
	*left_s = co_backoff_left_s(&e->backoff, now);
	return true;
}

static bool l_trial(co_limits *l, const co_limit_key *k)
{
	local *lo = (local *)l;
	entry *e = find(lo, k, false, 0);

	return e && co_backoff_start_trial(&e->backoff, &l->rules[k->kind].backoff);
}

static void l_report(co_limits *l, const co_limit_key *k, co_limit_outcome o, bool trial)
{
	local *lo = (local *)l;
	long long now = now_of(lo);
	entry *e;

	if (o == CO_LIMIT_ENDED) {
		if (trial && (e = find(lo, k, false, now)))
			e->backoff.trial = false;
		return;
	}
	/* A success on a key never seen has nothing to clear. */
	if ((e = find(lo, k, o == CO_LIMIT_FAILED, now)))
		co_backoff_report(&e->backoff, &l->rules[k->kind].backoff, o == CO_LIMIT_FAILED,
		                  trial, now);
}

static unsigned l_held_count(co_limits *l, co_limit_kind kind)
{
	local *lo = (local *)l;
	long long now = now_of(lo);
	unsigned n = 0;

	for (size_t i = 0; i < TABLE_BUCKETS; i++)
		for (const entry *e = lo->table[i]; e; e = e->hnext)
			n += e->kind == kind &&
			     co_backoff_held(&e->backoff, &l->rules[kind].backoff, now);
	return n;
}

static void l_free(co_limits *l)
{
	local *lo = (local *)l;

	for (size_t i = 0; i < TABLE_BUCKETS; i++) {
		while (lo->table[i]) {
			entry *e = lo->table[i];
			lo->table[i] = e->hnext;
			free(e);
		}
	}
	free(lo);
}

static const co_limits_ops local_ops = {
    .acquire = l_acquire,
    .release = l_release,
    .take = l_take,
    .refund = l_refund,
    .held = l_held,
    .trial = l_trial,
    .report = l_report,
    .held_count = l_held_count,
    .free = l_free,
};

co_limits *co_limits_local_new(const co_limit_rules rules[CO_LIMIT_KINDS], co_clock_fn clock,
                               void *clock_arg, unsigned sweep_ms)
{
	local *lo = calloc(1, sizeof(*lo));

	if (!lo)
		return NULL;
	lo->base.ops = &local_ops;
	memcpy(lo->base.rules, rules, sizeof(lo->base.rules));
	lo->base.clock = clock;
	lo->base.clock_arg = clock_arg;
	lo->sweep_ms = sweep_ms ? sweep_ms : SWEEP_MS;
	lo->swept_at = now_of(lo);
	return &lo->base;
}

size_t co_limits_local_size(const co_limits *l)
{
	return ((const local *)l)->n;
}
