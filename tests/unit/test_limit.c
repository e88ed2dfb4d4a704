/* Token buckets and backoff (limit.c), with a clock the test steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <callout/callout.h>

#include "limit.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_burst_then_rate),
	    cmocka_unit_test(test_bucket_refills_to_burst_only),
	    cmocka_unit_test(test_bucket_unlimited),
	    cmocka_unit_test(test_backoff_after_failures_in_a_row),
	    cmocka_unit_test(test_backoff_trial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
