/*
 * The public cache API for tools (`callout cache`): list, get, delete,
 * purge and stats over any backend, synchronously.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <callout/callout.h>

#include "addr.h"
#include "cache.h"
#include "cache_open.h"

#define DEL_BATCH 512

static const co_rec_kind domain_facts[] = {CO_REC_CATCH_ALL, CO_REC_NULL_SENDER, CO_REC_NO_MAIL,
                                           CO_REC_BLOCKS_US, CO_REC_UNREACHABLE, CO_REC_POSTMASTER};
#define NFACTS (sizeof(domain_facts) / sizeof(domain_facts[0]))

struct callout_cache {
	co_cache *c;
};

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen) {
		size_t n = strnlen(msg, errlen - 1);
		memcpy(err, msg, n);
		err[n] = '\0';
	}
}

CALLOUT_API callout_status callout_cache_open(const char *spec, callout_cache **out, char *err,
                                              size_t errlen)
{
	co_cache_conf conf = {.strict = true};
	char why[256] = "";

	if (!out || !spec) {
		set_err(err, errlen, "no cache given");
		return CALLOUT_EINVAL;
	}
	*out = NULL;
	if (strcmp(spec, "none") == 0) {
		set_err(err, errlen, "the cache is 'none': nothing to inspect");
		return CALLOUT_EINVAL;
	}
	callout_cache *cc = calloc(1, sizeof(*cc));
	if (!cc) {
		set_err(err, errlen, "out of memory");
		return CALLOUT_ENOMEM;
	}
	int rc = co_cache_open(spec, &conf, &cc->c, why, sizeof(why));
	if (rc < 0) {
		set_err(err, errlen, why);
		free(cc);
		return rc == CO_CACHE_EOPEN    ? CALLOUT_ECACHE
		       : rc == CO_CACHE_ENOMEM ? CALLOUT_ENOMEM
		                               : CALLOUT_EINVAL;
	}
	*out = cc;
	return CALLOUT_OK;
}

CALLOUT_API void callout_cache_close(callout_cache *cc)
{
	if (!cc)
		return;
	co_cache_free(cc->c);
	free(cc);
}

static void to_entry(const co_rec *r, callout_cache_entry *e)
{
	*e = (callout_cache_entry){
	    .kind = co_rec_kind_name(r->kind),
	    .domain = r->domain,
	    .address = r->address,
	    .sender = r->sender,
	    .verdict = (callout_verdict)r->verdict,
	    .reason = (callout_reason)r->reason,
	    .stage = (callout_stage)r->stage,
	    .code = r->code,
	    .enhanced = r->enhanced,
	    .text = r->text,
	    .mx = r->mx,
	    .ip = r->ip,
	    .catch_all = r->flags & (CO_REC_F_YES | CO_REC_F_CATCH_ALL),
	    .tls = r->flags & CO_REC_F_TLS,
	    .probed = r->probed,
	    .expires = r->expires,
	};
}

/* ---- scans ------------------------------------------------------------- */

/* A failed administrative operation: out of memory is ours, not the
 * cache's. */
static callout_status admin_failure(int rc)
{
	return rc == CO_CACHE_ENOMEM ? CALLOUT_ENOMEM : CALLOUT_ECACHE;
}

typedef struct scan_state {
	callout_cache_fn fn;
	void *arg;
	unsigned long damaged;
	const char *mailbox; /* only this address's records */
	size_t prefixlen;
	bool stopped;
} scan_state;

/* Whether a key found by a scan of the prefix "a:DOMAIN:MAILBOX" is that
 * address's ("...MAILBOX" or "...MAILBOX\tSENDER"), not a longer mailbox's. */
static bool key_is_mailbox(const char *key, size_t keylen, size_t prefixlen)
{
	return keylen == prefixlen || key[prefixlen] == '\t';
}

static int list_one(void *arg, const char *key, size_t keylen, const co_rec *rec)
{
	scan_state *s = arg;
	callout_cache_entry e;

	if (s->mailbox && !key_is_mailbox(key, keylen, s->prefixlen))
		return 0;
	if (!rec) {
		s->damaged++;
		return 0;
	}
	to_entry(rec, &e);
	if (s->fn(s->arg, &e)) {
		s->stopped = true;
		return 1;
	}
	return 0;
}

/* The facts about a domain, through the lookup path. */
static callout_status list_facts(co_cache *c, const char *domain, scan_state *s)
{
	char keys[NFACTS][CO_REC_KEY_MAX];
	const char *kp[NFACTS];
	co_rec recs[NFACTS];
	bool found[NFACTS];

	for (size_t i = 0; i < NFACTS; i++) {
		co_rec_key(domain_facts[i], domain, NULL, NULL, keys[i], sizeof(keys[i]));
		kp[i] = keys[i];
	}
	if (c->ops->get(c, kp, NFACTS, recs, found, NULL, NULL, NULL) < 0)
		return CALLOUT_ECACHE;
	for (size_t i = 0; i < NFACTS && !s->stopped; i++) {
		callout_cache_entry e;
		if (!found[i])
			continue;
		to_entry(&recs[i], &e);
		if (s->fn(s->arg, &e))
			s->stopped = true;
	}
	return CALLOUT_OK;
}

/* The normalised domain of "DOMAIN", "@DOMAIN" or "[literal]". */
static int parse_domain(const char *in, char *out)
{
	char probe[CO_DOMAIN_MAX + 8], err[128];
	co_addr a;

	if (*in == '@')
		in++;
	if (snprintf(probe, sizeof(probe), "x@%s", in) >= (int)sizeof(probe) ||
	    co_addr_parse(probe, &a, err, sizeof(err)) < 0)
		return -1;
	memcpy(out, a.domain, sizeof(a.domain));
	return 0;
}

CALLOUT_API callout_status callout_cache_list(callout_cache *cc, const char *domain,
                                              callout_cache_fn fn, void *arg,
                                              unsigned long *damaged)
{
	scan_state s = {.fn = fn, .arg = arg};
	char dom[CO_DOMAIN_MAX + 1], prefix[CO_REC_KEY_MAX];
	callout_status st = CALLOUT_OK;
	int rc;

	if (!cc || !fn)
		return CALLOUT_EINVAL;
	if (domain) {
		if (parse_domain(domain, dom) < 0)
			return CALLOUT_EINVAL;
		snprintf(prefix, sizeof(prefix), "a:%s:", dom);
		st = list_facts(cc->c, dom, &s);
	} else {
		prefix[0] = '\0';
	}
	if (st == CALLOUT_OK && !s.stopped &&
	    (rc = cc->c->ops->scan(cc->c, prefix, list_one, &s)) < 0)
		st = admin_failure(rc);
	if (damaged)
		*damaged = s.damaged;
	return st;
}

CALLOUT_API callout_status callout_cache_get(callout_cache *cc, const char *address,
                                             callout_cache_fn fn, void *arg)
{
	char err[128], prefix[CO_REC_KEY_MAX];
	co_addr a;

	if (!cc || !address || !fn || co_addr_parse(address, &a, err, sizeof(err)) < 0)
		return CALLOUT_EINVAL;
	scan_state s = {.fn = fn, .arg = arg, .mailbox = a.mailbox};
	s.prefixlen = co_rec_key(CO_REC_ADDRESS, a.domain, a.mailbox, NULL, prefix, sizeof(prefix));
	int rc = cc->c->ops->scan(cc->c, prefix, list_one, &s);
	if (rc < 0)
		return admin_failure(rc);
	return s.stopped ? CALLOUT_OK : list_facts(cc->c, a.domain, &s);
}

/* ---- deletion ---------------------------------------------------------- */

typedef struct key_list {
	char **keys;
	size_t n, cap;
	bool nomem;
	/* selection */
	const char *mailbox;
	size_t prefixlen;
	bool expired_only;
	int64_t now;
} key_list;

static int collect(void *arg, const char *key, size_t keylen, const co_rec *rec)
{
	key_list *l = arg;

	if (l->mailbox && !key_is_mailbox(key, keylen, l->prefixlen))
		return 0;
	/* Expired as the engine sees it: no longer used at now. */
	if (l->expired_only && rec && rec->expires > l->now)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **k = realloc(l->keys, cap * sizeof(*k));
		if (!k) {
			l->nomem = true;
			return 1;
		}
		l->keys = k;
		l->cap = cap;
	}
	if (!(l->keys[l->n] = strndup(key, keylen))) {
		l->nomem = true;
		return 1;
	}
	l->n++;
	return 0;
}

static void free_keys(key_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
}

/* Delete what a complete scan collected. */
static callout_status delete_collected(co_cache *c, key_list *l, unsigned long *deleted)
{
	callout_status st = l->nomem ? CALLOUT_ENOMEM : CALLOUT_OK;
	unsigned long total = 0;

	for (size_t i = 0; st == CALLOUT_OK && i < l->n; i += DEL_BATCH) {
		unsigned long n = 0;
		size_t batch = l->n - i < DEL_BATCH ? l->n - i : DEL_BATCH;
		int rc = c->ops->del(c, (const char *const *)l->keys + i, batch, &n);
		if (rc < 0)
			st = admin_failure(rc);
		total += n;
	}
	free_keys(l);
	if (deleted)
		*deleted = total;
	return st;
}

CALLOUT_API callout_status callout_cache_delete(callout_cache *cc, const char *what,
                                                unsigned long *deleted)
{
	char prefix[CO_REC_KEY_MAX], err[128];
	key_list l = {0};
	co_addr a;

	if (deleted)
		*deleted = 0;
	if (!cc || !what)
		return CALLOUT_EINVAL;
	if (*what == '@') {
		char dom[CO_DOMAIN_MAX + 1];
		if (parse_domain(what, dom) < 0)
			return CALLOUT_EINVAL;
		snprintf(prefix, sizeof(prefix), "a:%s:", dom);
		for (size_t i = 0; i < NFACTS; i++) {
			char key[CO_REC_KEY_MAX];
			size_t n = co_rec_key(domain_facts[i], dom, NULL, NULL, key, sizeof(key));
			collect(&l, key, n, NULL);
		}
	} else {
		if (co_addr_parse(what, &a, err, sizeof(err)) < 0)
			return CALLOUT_EINVAL;
		l.mailbox = a.mailbox;
		l.prefixlen =
		    co_rec_key(CO_REC_ADDRESS, a.domain, a.mailbox, NULL, prefix, sizeof(prefix));
	}
	int rc = l.nomem ? 0 : cc->c->ops->scan(cc->c, prefix, collect, &l);
	if (rc < 0) {
		free_keys(&l);
		return admin_failure(rc);
	}
	return delete_collected(cc->c, &l, deleted);
}

CALLOUT_API callout_status callout_cache_purge(callout_cache *cc, long long now,
                                               unsigned long *deleted)
{
	key_list l = {.expired_only = true, .now = now ? now : (long long)time(NULL)};

	if (deleted)
		*deleted = 0;
	if (!cc)
		return CALLOUT_EINVAL;
	int rc = cc->c->ops->scan(cc->c, "", collect, &l);
	if (rc < 0) {
		free_keys(&l);
		return admin_failure(rc);
	}
	return delete_collected(cc->c, &l, deleted);
}

CALLOUT_API callout_status callout_cache_stats_get(callout_cache *cc, callout_cache_stats *st)
{
	co_cache_info info = {0};

	if (!cc || !st)
		return CALLOUT_EINVAL;
	if (cc->c->ops->info(cc->c, &info) < 0)
		return CALLOUT_ECACHE;
	st->backend = info.backend;
	st->bytes_used = info.bytes_used;
	st->bytes_limit = info.bytes_limit;
	return CALLOUT_OK;
}
