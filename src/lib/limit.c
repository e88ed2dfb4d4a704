/* Token buckets and backoff, the rules every limits backend applies (see
 * limit.h). */
#include <stdlib.h>
#include <string.h>

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

/* ---- admission --------------------------------------------------------- */

/* The calls of the ops table, all or nothing. */
static co_admit composed_admit(co_limits *l, const co_limit_key *d, const co_limit_key *h,
                               bool exempt, co_admission *a)
{
	const co_limits_ops *ops = l->ops;
	unsigned failures;
	long long left_s;

	if (!exempt && ops->held(l, h, &failures, &left_s)) {
		a->wait = left_s * 1000;
		return CO_ADMIT_HELD;
	}
	if (!ops->acquire(l, d, &a->dlease, &a->out))
		return a->out ? CO_ADMIT_DOMAIN_FULL : CO_ADMIT_NOMEM;
	if (!ops->acquire(l, h, &a->hlease, &a->out)) {
		ops->release(l, d, a->dlease);
		return a->out ? CO_ADMIT_HOST_FULL : CO_ADMIT_NOMEM;
	}
	if (!exempt) {
		/* Both asked, so that the wait is for the earlier token. */
		bool dom_ok = ops->take(l, d, &a->wait);
		bool host_ok = ops->take(l, h, &a->wait);
		if (!dom_ok || !host_ok) {
			if (dom_ok)
				ops->refund(l, d, a->dlease);
			if (host_ok)
				ops->refund(l, h, a->hlease);
			ops->release(l, h, a->hlease);
			ops->release(l, d, a->dlease);
			return dom_ok ? CO_ADMIT_HOST_RATE : CO_ADMIT_DOMAIN_RATE;
		}
		a->trial = ops->trial(l, h);
	}
	return CO_ADMIT_OK;
}

co_admit co_limits_admit(co_limits *l, const co_limit_key *d, const co_limit_key *h, bool exempt,
                         co_admission *a)
{
	*a = (co_admission){0};
	if (l->ops->admit)
		return l->ops->admit(l, d, h, exempt, a);
	return composed_admit(l, d, h, exempt, a);
}

void co_limits_health_of(co_limits *l, co_limits_health *out)
{
	*out = (co_limits_health){.up = true, .nodes = 1};
	if (l->ops->health)
		l->ops->health(l, out);
}

/* ---- a fleet's share --------------------------------------------------- */

unsigned co_limit_share(unsigned limit, unsigned nodes)
{
	if (limit == CALLOUT_UNLIMITED)
		return limit;
	return limit / (nodes ? nodes : 1);
}

bool co_limit_rules_share(const co_limit_rules *in, unsigned nodes, co_limit_rules *out)
{
	*out = *in;
	out->sessions = co_limit_share(in->sessions, nodes);
	out->rate.rate = co_limit_share(in->rate.rate, nodes);
	out->rate.burst = co_limit_share(in->rate.burst, nodes);
	/* The backoff is a node's own judgement: no share of it. */
	return out->sessions &&
	       (in->rate.rate == CALLOUT_UNLIMITED || (out->rate.rate && out->rate.burst));
}

int co_lease_set_add(co_lease_set *s, co_lease lease, const char *key, size_t keylen)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		co_lease_rec *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	char *k = malloc(keylen + 1);
	if (!k)
		return -1;
	memcpy(k, key, keylen);
	k[keylen] = '\0';
	s->v[s->n++] = (co_lease_rec){lease, k, keylen};
	return 0;
}

bool co_lease_set_remove(co_lease_set *s, co_lease lease)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].lease == lease) {
			free(s->v[i].key);
			s->v[i] = s->v[--s->n];
			return true;
		}
	}
	return false;
}

void co_lease_set_clear(co_lease_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].key);
	free(s->v);
	*s = (co_lease_set){0};
}
