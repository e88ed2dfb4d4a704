/*
 * Limits per destination as plain state and rules, with the time passed
 * in (milliseconds of a monotonic clock), so that every rule is tested
 * with a clock the test steps: token buckets for the rate of new
 * sessions, and the backoff from a destination that keeps failing.
 * Who keeps the state (pool.c, per domain and per MX address) and how
 * many sessions are open is not this file's business.
 */
#ifndef CO_LIMIT_H
#define CO_LIMIT_H

#include <stdbool.h>

/* The clock of the limits: monotonic milliseconds.  NULL: the real one. */
typedef long long (*co_clock_fn)(void *arg);
long long co_clock_ms(co_clock_fn clock, void *arg);

/* A rate of RATE a minute, BURST at once; CALLOUT_UNLIMITED lifts it. */
typedef struct co_rate {
	unsigned rate, burst;
} co_rate;

typedef struct co_bucket {
	double tokens;
	long long stamp; /* when tokens was last brought up to date */
} co_bucket;

/* A bucket full at now. */
void co_bucket_init(co_bucket *b, co_rate r, long long now);
/* Whether a token is there at now; if not, *wait (when 0 or later) is
 * lowered to the milliseconds until one is. */
bool co_bucket_ready(co_bucket *b, co_rate r, long long now, long long *wait);
/* Use a token (after co_bucket_ready said yes). */
void co_bucket_take(co_bucket *b, co_rate r);
/* Full to the brim at now: a fresh bucket would be the same. */
bool co_bucket_full(co_bucket *b, co_rate r, long long now);

/*
 * Backoff: after `failures` failures in a row, hold sessions back for
 * base_ms, doubled after each failed trial up to 2^max_level times; when
 * the wait is over, one trial session goes while the rest stay held.  A
 * success clears it all.
 */
typedef struct co_backoff_rule {
	unsigned failures, base_ms, max_level;
} co_backoff_rule;

typedef struct co_backoff {
	unsigned failures, level;
	long long open_until; /* held until then, once failures reached the rule's */
	bool trial;           /* a trial session is out */
} co_backoff;

/* Whether sessions are held back at now (a trial out counts). */
bool co_backoff_held(const co_backoff *b, const co_backoff_rule *rule, long long now);
/* Whether the next session is the trial after a wait (and mark it out). */
bool co_backoff_start_trial(co_backoff *b, const co_backoff_rule *rule);
/* A session ended: failed or not; trial says whether it was the trial. */
void co_backoff_report(co_backoff *b, const co_backoff_rule *rule, bool failed, bool trial,
                       long long now);
/* Whole seconds left of the wait (at least 1 while held). */
long long co_backoff_left_s(const co_backoff *b, long long now);

#endif
