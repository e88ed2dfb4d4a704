/* Token buckets and backoff (limit.c) and the in-process backend
 * (limit_local.c), with a clock the test steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <callout/callout.h>

#include "limit.h"
#include "limit_shadow.h"

#define T0 1000000LL /* ms */

/* 60 a minute: one a second; 10 at once. */
static const co_rate per_second = {60, 10};

static void test_bucket_burst_then_rate(void **state)
{
	(void)state;
	co_bucket b;
	long long wait = 0;

	co_bucket_init(&b, per_second, T0);
	for (int i = 0; i < 10; i++) {
		assert_true(co_bucket_ready(&b, per_second, T0, &wait));
		co_bucket_take(&b, per_second);
	}
	/* The burst is spent: the next token comes in a second. */
	assert_false(co_bucket_ready(&b, per_second, T0, &wait));
	assert_in_range(wait, 999, 1001);
	assert_false(co_bucket_ready(&b, per_second, T0 + 500, &wait));
	assert_in_range(wait, 499, 501); /* the earliest wait wins */
	assert_true(co_bucket_ready(&b, per_second, T0 + 1000, &wait));
	co_bucket_take(&b, per_second);
	assert_false(co_bucket_ready(&b, per_second, T0 + 1000, &wait));
}

static void test_bucket_refills_to_burst_only(void **state)
{
	(void)state;
	co_bucket b;
	long long wait = 0;

	co_bucket_init(&b, per_second, T0);
	co_bucket_take(&b, per_second);
	assert_false(co_bucket_full(&b, per_second, T0));
	/* An hour idle gives back the burst, not 3600 tokens. */
	assert_true(co_bucket_full(&b, per_second, T0 + 3600 * 1000LL));
	for (int i = 0; i < 10; i++) {
		assert_true(co_bucket_ready(&b, per_second, T0 + 3600 * 1000LL, &wait));
		co_bucket_take(&b, per_second);
	}
	assert_false(co_bucket_ready(&b, per_second, T0 + 3600 * 1000LL, &wait));
	/* A clock that steps back takes nothing away and gives nothing. */
	assert_false(co_bucket_ready(&b, per_second, T0, &wait));
}

static void test_bucket_unlimited(void **state)
{
	(void)state;
	const co_rate none = {CALLOUT_UNLIMITED, 0};
	co_bucket b;
	long long wait = 0;

	co_bucket_init(&b, none, T0);
	for (int i = 0; i < 100000; i++) {
		assert_true(co_bucket_ready(&b, none, T0, &wait));
		co_bucket_take(&b, none);
	}
	assert_int_equal(wait, 0);
	assert_true(co_bucket_full(&b, none, T0));
}

static const co_backoff_rule rule = {.failures = 3, .base_ms = 60000, .max_level = 4};

static void test_backoff_after_failures_in_a_row(void **state)
{
	(void)state;
	co_backoff b = {0};

	co_backoff_report(&b, &rule, true, false, T0);
	co_backoff_report(&b, &rule, true, false, T0);
	assert_false(co_backoff_held(&b, &rule, T0));
	/* A success in between starts the count again. */
	co_backoff_report(&b, &rule, false, false, T0);
	co_backoff_report(&b, &rule, true, false, T0);
	co_backoff_report(&b, &rule, true, false, T0);
	assert_false(co_backoff_held(&b, &rule, T0));
	co_backoff_report(&b, &rule, true, false, T0);
	assert_true(co_backoff_held(&b, &rule, T0));
	assert_true(co_backoff_held(&b, &rule, T0 + 59999));
	assert_int_equal(co_backoff_left_s(&b, T0 + 59000), 1);
	assert_int_equal(co_backoff_left_s(&b, T0), 60);
	assert_false(co_backoff_held(&b, &rule, T0 + 60000));
}

/* Half-open: when the wait is over, one trial goes; the others stay held
 * until it ends.  A failed trial doubles the wait, up to 2^max_level; a
 * good one clears everything. */
static void test_backoff_trial(void **state)
{
	(void)state;
	co_backoff b = {0};
	long long now = T0;

	for (int i = 0; i < 3; i++)
		co_backoff_report(&b, &rule, true, false, now);
	long long wait = 60000;
	for (int round = 0; round < 6; round++) {
		now += wait;
		assert_false(co_backoff_held(&b, &rule, now));
		assert_true(co_backoff_start_trial(&b, &rule));
		assert_true(co_backoff_held(&b, &rule, now)); /* the trial is out */
		co_backoff_report(&b, &rule, true, true, now);
		if (wait < 60000LL << 4)
			wait *= 2;
		assert_true(co_backoff_held(&b, &rule, now + wait - 1));
		assert_false(co_backoff_held(&b, &rule, now + wait));
	}
	assert_int_equal(b.level, 4);
	now += wait;
	assert_true(co_backoff_start_trial(&b, &rule));
	co_backoff_report(&b, &rule, false, true, now);
	assert_false(co_backoff_held(&b, &rule, now));
	assert_int_equal(b.failures, 0);
	assert_int_equal(b.level, 0);
	/* No trial while the count is below the rule's. */
	assert_false(co_backoff_start_trial(&b, &rule));
}

/* ---- the in-process backend --------------------------------------------- */

static long long clock_now;

static long long stepped(void *arg)
{
	(void)arg;
	return clock_now;
}

/* Two at once per domain, one per host; 60 a minute (one a second) with a
 * burst of 3 per domain; the host backs off after 3 failures. */
static const co_limit_rules rules[CO_LIMIT_KINDS] = {
    [CO_LIMIT_DOMAIN] = {2, {60, 3}, {CALLOUT_UNLIMITED, 0, 0}},
    [CO_LIMIT_HOST] = {1, {CALLOUT_UNLIMITED, 0}, {3, 60000, 4}},
};

static const co_limit_key dom_a = {CO_LIMIT_DOMAIN, "a.example", 9};
static const co_limit_key dom_b = {CO_LIMIT_DOMAIN, "b.example", 9};
static const co_limit_key host_1 = {CO_LIMIT_HOST, "\4\1\2\3\4\0\31", 7};

static int setup_local(void **state)
{
	clock_now = T0;
	*state = co_limits_local_new(rules, stepped, NULL, 60000);
	return *state ? 0 : -1;
}

static int teardown_local(void **state)
{
	co_limits_free(*state);
	return 0;
}

static void test_local_concurrency_cap(void **state)
{
	co_limits *l = *state;
	co_lease a1, a2, a3, b1, h1, h2;
	unsigned out = 0;

	assert_true(l->ops->acquire(l, &dom_a, &a1, &out));
	assert_true(l->ops->acquire(l, &dom_a, &a2, &out));
	assert_true(a1 != 0 && a2 != 0 && a1 != a2);
	assert_false(l->ops->acquire(l, &dom_a, &a3, &out));
	assert_int_equal(out, 2);
	/* Another domain has slots of its own. */
	assert_true(l->ops->acquire(l, &dom_b, &b1, &out));
	/* One released, one more. */
	l->ops->release(l, &dom_a, a1);
	assert_true(l->ops->acquire(l, &dom_a, &a3, &out));
	assert_false(l->ops->acquire(l, &dom_a, &a1, &out));
	/* The cap is the kind's: one per host. */
	assert_true(l->ops->acquire(l, &host_1, &h1, &out));
	assert_false(l->ops->acquire(l, &host_1, &h2, &out));
	assert_int_equal(out, 1);
	l->ops->release(l, &host_1, h1);
	assert_true(l->ops->acquire(l, &host_1, &h2, &out));
}

static void test_local_unlimited(void **state)
{
	(void)state;
	const co_limit_rules none[CO_LIMIT_KINDS] = {
	    [CO_LIMIT_DOMAIN] = {CALLOUT_UNLIMITED, {CALLOUT_UNLIMITED, 0}, {CALLOUT_UNLIMITED}},
	    [CO_LIMIT_HOST] = {CALLOUT_UNLIMITED, {CALLOUT_UNLIMITED, 0}, {CALLOUT_UNLIMITED}},
	};
	co_limits *l = co_limits_local_new(none, stepped, NULL, 0);
	co_lease lease;
	unsigned out;
	long long wait = 0;

	assert_non_null(l);
	for (int i = 0; i < 10000; i++) {
		assert_true(l->ops->acquire(l, &dom_a, &lease, &out));
		assert_true(l->ops->take(l, &dom_a, &wait));
	}
	assert_int_equal(wait, 0);
	co_limits_free(l);
}

static void test_local_burst_and_refill(void **state)
{
	co_limits *l = *state;
	long long wait = 0;

	for (int i = 0; i < 3; i++)
		assert_true(l->ops->take(l, &dom_a, &wait));
	assert_false(l->ops->take(l, &dom_a, &wait));
	assert_in_range(wait, 999, 1001);
	/* Each domain has a bucket of its own. */
	assert_true(l->ops->take(l, &dom_b, &wait));
	/* One a second comes back. */
	clock_now += 1000;
	assert_true(l->ops->take(l, &dom_a, &wait));
	assert_false(l->ops->take(l, &dom_a, &wait));
	/* A token given back (the session did not open) is there again. */
	clock_now += 1000;
	assert_true(l->ops->take(l, &dom_a, &wait));
	l->ops->refund(l, &dom_a, 0);
	assert_true(l->ops->take(l, &dom_a, &wait));
	assert_false(l->ops->take(l, &dom_a, &wait));
	/* A long while refills to the burst, no more. */
	clock_now += 3600 * 1000LL;
	l->ops->refund(l, &dom_a, 0); /* never past the burst either */
	for (int i = 0; i < 3; i++)
		assert_true(l->ops->take(l, &dom_a, &wait));
	assert_false(l->ops->take(l, &dom_a, &wait));
	/* An unlimited rate (the hosts' here) always has a token. */
	for (int i = 0; i < 100; i++)
		assert_true(l->ops->take(l, &host_1, &wait));
}

static void report_failure(co_limits *l, const co_limit_key *k, bool trial)
{
	l->ops->report(l, k, CO_LIMIT_FAILED, trial);
}

static void test_local_backoff_half_open(void **state)
{
	co_limits *l = *state;
	unsigned failures = 0;
	long long left = 0;

	/* Nothing known: not held, no trial. */
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	report_failure(l, &host_1, false);
	report_failure(l, &host_1, false);
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	assert_false(l->ops->trial(l, &host_1));
	report_failure(l, &host_1, false);
	assert_true(l->ops->held(l, &host_1, &failures, &left));
	assert_int_equal(failures, 3);
	assert_int_equal(left, 60);
	assert_int_equal(l->ops->held_count(l, CO_LIMIT_HOST), 1);
	assert_int_equal(l->ops->held_count(l, CO_LIMIT_DOMAIN), 0);
	/* The wait over: one trial, the others held while it is out. */
	clock_now += 60000;
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	assert_true(l->ops->trial(l, &host_1));
	assert_true(l->ops->held(l, &host_1, &failures, &left));
	/* It failed: twice the wait. */
	report_failure(l, &host_1, true);
	assert_true(l->ops->held(l, &host_1, &failures, &left));
	assert_int_equal(left, 120);
	clock_now += 120000;
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	/* A trial closed from our side says nothing: the next one goes. */
	assert_true(l->ops->trial(l, &host_1));
	l->ops->report(l, &host_1, CO_LIMIT_ENDED, true);
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	/* A good trial clears it all. */
	assert_true(l->ops->trial(l, &host_1));
	l->ops->report(l, &host_1, CO_LIMIT_WORKED, true);
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	assert_false(l->ops->trial(l, &host_1));
	assert_int_equal(l->ops->held_count(l, CO_LIMIT_HOST), 0);
	/* The count starts again from nothing. */
	report_failure(l, &host_1, false);
	report_failure(l, &host_1, false);
	assert_false(l->ops->held(l, &host_1, &failures, &left));
}

static void test_local_success_clears_failures(void **state)
{
	co_limits *l = *state;
	unsigned failures;
	long long left;

	report_failure(l, &host_1, false);
	report_failure(l, &host_1, false);
	l->ops->report(l, &host_1, CO_LIMIT_WORKED, false);
	report_failure(l, &host_1, false);
	report_failure(l, &host_1, false);
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	report_failure(l, &host_1, false);
	assert_true(l->ops->held(l, &host_1, &failures, &left));
	/* Even while held (a session that was already open). */
	l->ops->report(l, &host_1, CO_LIMIT_WORKED, false);
	assert_false(l->ops->held(l, &host_1, &failures, &left));
	/* A success on a key never seen adds none. */
	size_t n = co_limits_local_size(l);
	l->ops->report(l, &dom_b, CO_LIMIT_WORKED, false);
	assert_int_equal(co_limits_local_size(l), n);
}

/* A key back to what a fresh one would be is dropped at the next sweep;
 * one with a slot out, a token spent or failures stays. */
static void test_local_expiry(void **state)
{
	co_limits *l = *state;
	co_lease lease, a;
	unsigned out;
	long long wait = 0;

	assert_true(l->ops->acquire(l, &dom_a, &a, &out)); /* a slot out */
	assert_true(l->ops->take(l, &dom_b, &wait));       /* a token spent */
	report_failure(l, &host_1, false);                 /* a failure */
	assert_int_equal(co_limits_local_size(l), 3);
	/* Not before the sweep's time. */
	clock_now += 59999;
	const co_limit_key other = {CO_LIMIT_DOMAIN, "c.example", 9};
	assert_true(l->ops->acquire(l, &other, &lease, &out));
	l->ops->release(l, &other, lease);
	assert_int_equal(co_limits_local_size(l), 4);
	/* A minute on: c.example (idle) and b.example (refilled) go. */
	clock_now += 1;
	assert_true(l->ops->take(l, &dom_a, &wait));
	assert_int_equal(co_limits_local_size(l), 2);
	/* a.example's slot keeps it, and what it holds. */
	assert_false(l->ops->acquire(l, &dom_a, &lease, &out) &&
	             l->ops->acquire(l, &dom_a, &lease, &out));
	assert_int_equal(out, 2);
	l->ops->release(l, &dom_a, lease);
	l->ops->release(l, &dom_a, a);
	l->ops->report(l, &host_1, CO_LIMIT_WORKED, false);
	/* All idle and refilled: the next sweep leaves nothing but the key
	 * it was called for. */
	clock_now += 60000;
	assert_true(l->ops->take(l, &dom_b, &wait));
	assert_int_equal(co_limits_local_size(l), 1);
	/* Dropped keys start afresh: the full burst. */
	assert_true(l->ops->take(l, &dom_a, &wait));
	assert_true(l->ops->take(l, &dom_a, &wait));
	assert_true(l->ops->take(l, &dom_a, &wait));
	assert_false(l->ops->take(l, &dom_a, &wait));
}

/* Many keys, each with state of its own; the same bytes of another kind
 * are another key. */
static void test_local_many_keys(void **state)
{
	co_limits *l = *state;
	enum { N = 20000 };
	static char name[N][24];
	co_lease lease;
	unsigned out;
	long long wait = 0;

	for (int i = 0; i < N; i++) {
		int n = snprintf(name[i], sizeof(name[i]), "d%d.example", i);
		co_limit_key k = {CO_LIMIT_DOMAIN, name[i], (size_t)n};
		assert_true(l->ops->acquire(l, &k, &lease, &out));
		assert_true(l->ops->acquire(l, &k, &lease, &out));
		assert_true(l->ops->take(l, &k, &wait));
	}
	assert_int_equal(co_limits_local_size(l), N);
	for (int i = 0; i < N; i++) {
		co_limit_key k = {CO_LIMIT_DOMAIN, name[i], strlen(name[i])};
		assert_false(l->ops->acquire(l, &k, &lease, &out));
		assert_int_equal(out, 2);
		co_limit_key h = {CO_LIMIT_HOST, name[i], strlen(name[i])};
		assert_true(l->ops->acquire(l, &h, &lease, &out));
	}
	assert_int_equal(co_limits_local_size(l), 2 * N);
}

/* ---- admission, a fleet's share, leases ------------------------------- */

/* The composed admit: all or nothing, both slots, both tokens. */
static void test_admit_all_or_nothing(void **state)
{
	co_limits *l = *state;
	co_admission a1, a2, a3;

	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a1), CO_ADMIT_OK);
	assert_true(a1.dlease && a1.hlease && !a1.trial);
	/* The host's one slot is out: the domain's slot goes back. */
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a2), CO_ADMIT_HOST_FULL);
	assert_int_equal(a2.out, 1);
	l->ops->release(l, &host_1, a1.hlease);
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a2), CO_ADMIT_OK);
	/* Two domain slots out now. */
	l->ops->release(l, &host_1, a2.hlease);
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a3), CO_ADMIT_DOMAIN_FULL);
	assert_int_equal(a3.out, 2);
	l->ops->release(l, &dom_a, a1.dlease);
	/* The third token of the burst, then none for a second. */
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a3), CO_ADMIT_OK);
	l->ops->release(l, &host_1, a3.hlease);
	l->ops->release(l, &dom_a, a3.dlease);
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a1), CO_ADMIT_DOMAIN_RATE);
	assert_true(a1.wait > 0 && a1.wait <= 1001);
	/* A route takes no token. */
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, true, &a1), CO_ADMIT_OK);
	co_limits_health_of(l, &(co_limits_health){0});
}

static void test_admit_held_and_trial(void **state)
{
	co_limits *l = *state;
	co_admission a;

	for (int i = 0; i < 3; i++)
		l->ops->report(l, &host_1, CO_LIMIT_FAILED, false);
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a), CO_ADMIT_HELD);
	assert_true(a.wait >= 1000);
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, true, &a), CO_ADMIT_OK);
	l->ops->release(l, &host_1, a.hlease);
	l->ops->release(l, &dom_a, a.dlease);
	clock_now += 60000;
	assert_int_equal(co_limits_admit(l, &dom_a, &host_1, false, &a), CO_ADMIT_OK);
	assert_true(a.trial);
}

static void test_share(void **state)
{
	co_limit_rules out;
	(void)state;

	assert_int_equal(co_limit_share(2, 3), 0);
	assert_int_equal(co_limit_share(3, 3), 1);
	assert_int_equal(co_limit_share(7, 3), 2);
	assert_int_equal(co_limit_share(7, 0), 7);
	assert_int_equal(co_limit_share(CALLOUT_UNLIMITED, 3), CALLOUT_UNLIMITED);
	/* Domains: 2 at once over 2 nodes is 1 each; 3 tokens is 1 each. */
	assert_true(co_limit_rules_share(&rules[CO_LIMIT_DOMAIN], 2, &out));
	assert_int_equal(out.sessions, 1);
	assert_int_equal(out.rate.rate, 30);
	assert_int_equal(out.rate.burst, 1);
	/* Over 3 nodes the share of 2 sessions is 0: nothing may open. */
	assert_false(co_limit_rules_share(&rules[CO_LIMIT_DOMAIN], 3, &out));
	/* Unlimited stays so; the backoff is not shared out. */
	assert_true(co_limit_rules_share(&rules[CO_LIMIT_HOST], 1, &out));
	assert_int_equal(out.sessions, 1);
	assert_int_equal(out.rate.rate, CALLOUT_UNLIMITED);
	assert_int_equal(out.backoff.failures, 3);
	assert_false(co_limit_rules_share(&rules[CO_LIMIT_HOST], 2, &out));
}

static void test_lease_set(void **state)
{
	co_lease_set s = {0};
	(void)state;

	for (co_lease i = 1; i <= 100; i++)
		assert_int_equal(co_lease_set_add(&s, i, "p:lim:s:d:a.example", 19), 0);
	assert_int_equal(s.n, 100);
	assert_true(co_lease_set_remove(&s, 50));
	assert_false(co_lease_set_remove(&s, 50));
	assert_false(co_lease_set_remove(&s, 1000));
	assert_int_equal(s.n, 99);
	for (size_t i = 0; i < s.n; i++) {
		assert_true(s.v[i].lease != 50);
		assert_string_equal(s.v[i].key, "p:lim:s:d:a.example");
		assert_int_equal(s.v[i].keylen, 19);
	}
	co_lease_set_clear(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.v);
}

/* The store's slots held when the fallback begins count in it: a node
 * holding three of a domain whose share is two (rules: 2 per domain, 1
 * per host) has none to give until two of them ended. */
static void test_shadows(void **state)
{
	co_limits *fb = *state;
	co_lease_set held = {0};
	co_shadow *shadows = NULL;
	co_lease l;
	unsigned out;
	const co_lease FB = 1ull << 63;

	for (co_lease i = 1; i <= 3; i++)
		assert_int_equal(co_lease_set_add(&held, i, "p:x:lim:s:d:a.example", 21), 0);
	assert_int_equal(co_lease_set_add(&held, 4, "p:x:lim:s:h:04010203040019", 26), 0);
	assert_int_equal(co_lease_set_add(&held, 5 | FB, "p:x:lim:s:d:a.example", 21), 0);
	assert_int_equal(co_lease_set_add(&held, 6, "p:x:lim:s:d:b.example", 0), 0); /* no cap */
	/* two slots of a.example, host_1's one: the fallback's own (5) is not the store's */
	assert_int_equal(co_shadows_take(&shadows, fb, &held, FB), 3);
	assert_false(fb->ops->acquire(fb, &dom_a, &l, &out));
	assert_false(fb->ops->acquire(fb, &host_1, &l, &out));
	/* the first two to end hand their slot on to the one over the share */
	assert_false(co_shadows_release(&shadows, fb, 1));
	assert_false(fb->ops->acquire(fb, &dom_a, &l, &out));
	assert_true(co_shadows_release(&shadows, fb, 2));
	assert_true(fb->ops->acquire(fb, &dom_a, &l, &out));
	assert_false(fb->ops->acquire(fb, &dom_a, &l, &out));
	assert_true(co_shadows_release(&shadows, fb, 4));
	assert_true(fb->ops->acquire(fb, &host_1, &l, &out));
	assert_false(co_shadows_release(&shadows, fb, 99)); /* not a shadow */
	co_shadows_clear(&shadows);
	co_lease_set_clear(&held);

	/* store keys back to limit keys */
	unsigned char buf[64];
	co_limit_key k;
	assert_true(co_shadow_key("a:lim:s:h:7f000001", 18, &k, buf));
	assert_int_equal(k.kind, CO_LIMIT_HOST);
	assert_int_equal(k.len, 4);
	assert_memory_equal(k.id, "\x7f\0\0\1", 4);
	assert_true(co_shadow_key("a:b:lim:s:d:x.example", 21, &k, buf));
	assert_int_equal(k.kind, CO_LIMIT_DOMAIN);
	assert_memory_equal(k.id, "x.example", 9);
	const char *bad[] = {"", "x", "lim:s:q:a", "lim:s:h:7f0", "lim:s:h:zz", "lim:s:d:", ":d:"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(co_shadow_key(bad[i], strlen(bad[i]), &k, buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_burst_then_rate),
	    cmocka_unit_test(test_bucket_refills_to_burst_only),
	    cmocka_unit_test(test_bucket_unlimited),
	    cmocka_unit_test(test_backoff_after_failures_in_a_row),
	    cmocka_unit_test(test_backoff_trial),
	    cmocka_unit_test_setup_teardown(test_local_concurrency_cap, setup_local,
	                                    teardown_local),
	    cmocka_unit_test(test_local_unlimited),
	    cmocka_unit_test_setup_teardown(test_local_burst_and_refill, setup_local,
	                                    teardown_local),
	    cmocka_unit_test_setup_teardown(test_local_backoff_half_open, setup_local,
	                                    teardown_local),
	    cmocka_unit_test_setup_teardown(test_local_success_clears_failures, setup_local,
	                                    teardown_local),
	    cmocka_unit_test_setup_teardown(test_local_expiry, setup_local, teardown_local),
	    cmocka_unit_test_setup_teardown(test_local_many_keys, setup_local, teardown_local),
	    cmocka_unit_test_setup_teardown(test_admit_all_or_nothing, setup_local, teardown_local),
	    cmocka_unit_test_setup_teardown(test_admit_held_and_trial, setup_local, teardown_local),
	    cmocka_unit_test(test_share),
	    cmocka_unit_test(test_lease_set),
	    cmocka_unit_test_setup_teardown(test_shadows, setup_local, teardown_local),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
