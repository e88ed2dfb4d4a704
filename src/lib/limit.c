/* Token buckets and backoff, the rules every limits backend applies (see
 * limit.h). */
#include <callout/callout.h>

#include "limit.h"

void co_bucket_init(co_bucket *b, co_rate r, long long now)
{
	b->tokens = r.burst;
	b->stamp = now;
}

bool co_bucket_ready(co_bucket *b, co_rate r, long long now, long long *wait)
{
	if (r.rate == CALLOUT_UNLIMITED)
		return true;
	double per_ms = r.rate / 60000.0;
	if (now > b->stamp) {
		b->tokens += (double)(now - b->stamp) * per_ms;
		b->stamp = now;
	}
	if (b->tokens > r.burst)
		b->tokens = r.burst;
	if (b->tokens >= 1.0)
		return true;
	long long w = (long long)((1.0 - b->tokens) / per_ms) + 1;
	if (*wait == 0 || w < *wait)
		*wait = w;
	return false;
}

void co_bucket_take(co_bucket *b, co_rate r)
{
	if (r.rate != CALLOUT_UNLIMITED)
		b->tokens -= 1.0;
}

bool co_bucket_full(co_bucket *b, co_rate r, long long now)
{
	long long wait = 0;
	return co_bucket_ready(b, r, now, &wait) &&
	       (r.rate == CALLOUT_UNLIMITED || b->tokens >= r.burst);
}

bool co_backoff_held(const co_backoff *b, const co_backoff_rule *rule, long long now)
{
	if (b->failures < rule->failures)
		return false;
	return now < b->open_until || b->trial;
}

bool co_backoff_start_trial(co_backoff *b, const co_backoff_rule *rule)
{
	if (b->failures < rule->failures)
		return false;
	b->trial = true;
	return true;
}

void co_backoff_report(co_backoff *b, const co_backoff_rule *rule, bool failed, bool trial,
                       long long now)
{
	if (trial)
		b->trial = false;
	if (!failed) {
		b->failures = b->level = 0;
		b->open_until = 0;
		return;
	}
	b->failures++;
	if (b->failures < rule->failures)
		return;
	if (trial && b->level < rule->max_level)
		b->level++;
	b->open_until = now + ((long long)rule->base_ms << b->level);
}

long long co_backoff_left_s(const co_backoff *b, long long now)
{
	return b->open_until > now ? (b->open_until - now + 999) / 1000 : 1;
}

void co_limits_free(co_limits *l)
{
	if (l)
		l->ops->free(l);
}
