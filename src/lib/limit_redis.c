/*
 * The fleet-wide limits backend (see limit.h): the slots, buckets and
 * backoff of every domain and MX address on the Redis server of the
 * cache, shared by every node that uses it.
 *
 *   slots    a sorted set per key, a lease a member (node token:lease)
 *            scored by its expiry; a node writes every slot it holds
 *            again every RENEW_MS (so a Redis that lost them has them
 *            back), and a node killed with kill -9 frees its slots
 *            within LEASE_TTL_MS
 *   rates    a hash per key (tokens, stamp): the token bucket of limit.c
 *   backoff  a hash per host (failures, level, until, trial out)
 *   nodes    a sorted set of node tokens scored by their heartbeat's
 *            expiry, counted at each renewal
 *
 * One script (EVALSHA) admits a session all or nothing: backoff, both
 * slots, both tokens; one round trip per session admitted.  The pool
 * never waits for Redis: admit answers from what it knows (a grant not
 * yet collected, a refusal until its retry time), or sends the script
 * and says PENDING; the reply is kept and kick() tells the pool to ask
 * again.  Release and report are sent without waiting.
 *
 * Redis out of reach: admissions are decided by an in-process backend
 * with this node's share of each limit, floor(limit / live nodes) as last
 * counted; a share of 0 admits nothing.  Back to Redis when it answers,
 * and the slots the fallback gave are written there first (the renewal
 * sent before any admission), so that they count for the fleet.
 *
 * The connection is the cache's (redis_conn.c) when it has one on this
 * loop: the records and these scripts go down one pipe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <callout/callout.h>

#include "cache_redis.h"
#include "limit.h"
#include "limit_redis_lua.h"
#include "limit_shadow.h"
#include "redis_conn.h"

#define LEASE_TTL_MS   10000 /* a slot of a node that stops renewing frees itself */
#define RENEW_MS       2500  /* renewal and heartbeat */
#define NODE_TTL_MS    7500  /* a node is counted this long after its heartbeat */
#define SLOT_POLL_MS   50    /* a full key (another node's slots) is asked again */
#define GRANT_KEEP_MS  2000  /* a grant nobody collected is given back */
#define ERROR_RETRY_MS 100   /* after an error reply */
#define SHARE_RETRY_MS 1000  /* a share of 0: look again */
#define REPLY_MS       1000  /* nothing answered this long: the server is gone */
#define BACKOFF_MAX_MS 5000  /* reconnections at least this often */
#define RENEW_BATCH    200
#define KEY_MAX        1024
#define FB_BIT         (1ull << 63) /* a lease of the fallback */
#define DOUBLINGS_MAX  4

typedef enum ask_state { ASK_PENDING, ASK_GRANTED, ASK_REFUSED } ask_state;

typedef struct rl rl;

/* An admission asked of Redis, per domain, host and exemption: its
 * answer is kept until collected (a grant) or until its retry time. */
typedef struct ask {
	struct ask *next;
	rl *r;
	ask_state st;
	bool exempt;
	bool gone; /* forgotten while hiredis held it */
	co_admit code;
	co_admission a;
	long long until;
	char dkey[KEY_MAX], hkey[KEY_MAX]; /* slot keys: where the leases go */
	size_t dlen, hlen, dklen, hklen;
	unsigned char id[]; /* domain id then host id */
} ask;

/* What Redis said of a host's backoff. */
typedef struct held {
	struct held *next;
	unsigned failures;
	long long until;
	size_t len;
	unsigned char id[];
} held;

struct rl {
	co_limits base;
	char *prefix;
	char token[17];
	char sha[CO_LUA_N][41];
	co_redis_user *conn; /* redis_conn.c: the cache's connection when it has one */
	bool ready;          /* up, and the scripts loaded */
	bool loading, load_failed, freeing;
	struct event *renew_ev;
	co_lease leases;
	co_lease_set held_leases; /* every slot we hold, the fallback's too (FB_BIT) */
	ask *asks;
	held *helds;
	co_limits *fb;      /* the fallback, this node's share */
	unsigned fb_leases; /* slots of fb held, the shadows' too */
	co_shadow *shadows; /* Redis slots held when the fallback began */
	unsigned nodes;     /* live nodes, as last counted (note_nodes) */
	unsigned min_nodes; /* counted at least: the operator's fleet_nodes */
	long long nodes_at; /* when a count of at least nodes was last seen */
	unsigned long long fallbacks, round_trips, admissions;
};

static long long now_of(const rl *r)
{
	return co_clock_ms(r->base.clock, r->base.clock_arg);
}

static struct timeval ms_tv(long long ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

static void kick(rl *r)
{
	if (r->base.kick)
		r->base.kick(r->base.kick_arg);
}

/* ---- keys ---- */

/* A limit as the scripts take it: 0 is none. */
static unsigned cap_arg(unsigned v)
{
	return v == CALLOUT_UNLIMITED ? 0 : v;
}

static void r_release(co_limits *l, const co_limit_key *k, co_lease lease);

/* prefix "lim:" what ":" kind ":" id (domains as they are, addresses in
 * hex); its length, 0 if too long. */
static size_t key_of(const rl *r, char *out, const char *what, const co_limit_key *k)
{
	int n = snprintf(out, KEY_MAX, "%slim:%s:%c:", r->prefix, what,
	                 k->kind == CO_LIMIT_DOMAIN ? 'd' : 'h');
	if (n < 0 || (size_t)n >= KEY_MAX)
		return 0;
	size_t len = (size_t)n;
	const unsigned char *id = k->id;
	for (size_t i = 0; i < k->len; i++) {
		if (len + 3 >= KEY_MAX)
			return 0;
		if (k->kind == CO_LIMIT_DOMAIN) {
			out[len++] = (char)id[i];
		} else {
			snprintf(out + len, 3, "%02x", id[i]);
			len += 2;
		}
	}
	out[len] = '\0';
	return len;
}

static size_t member_of(const rl *r, char *out, size_t size, co_lease lease)
{
	int n = snprintf(out, size, "%s:%llu", r->token, (unsigned long long)lease);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* ---- the connection (redis_conn.c) ---- */

static int send_cmd(rl *r, co_redis_reply_fn *fn, void *priv, int argc, const char **argv,
                    const size_t *lens)
{
	if (co_redis_send(r->conn, fn, priv, argc, argv, lens))
		return -1;
	r->round_trips++;
	return 0;
}

/* Whether there is a reply to read: NULL means the connection is gone
 * (on_down said so) or we are being freed. */
static bool got_reply(const rl *r, const redisReply *rep)
{
	return rep && !r->freeing;
}

static void renew(rl *r);

static void on_loaded(void *arg, redisReply *rep, void *priv)
{
	rl *r = arg;

	if (!got_reply(r, rep)) {
		r->loading = false;
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR)
		r->load_failed = true; /* e.g. scripting refused: the fallback decides */
	if (priv) {                    /* the last script */
		r->loading = false;
		if (!r->load_failed) {
			r->ready = true;
			renew(r); /* count the nodes, register our slots, before any admission */
			kick(r);
		}
	}
}

/* The scripts on the server; ready when the last is answered. */
static void load(rl *r)
{
	r->loading = true;
	r->load_failed = false;
	for (int i = 0; i < CO_LUA_N; i++) {
		const char *argv[3] = {"SCRIPT", "LOAD", co_limit_lua[i]};
		size_t lens[3] = {6, 4, strlen(co_limit_lua[i])};
		if (send_cmd(r, on_loaded, i == CO_LUA_N - 1 ? r : NULL, 3, argv, lens)) {
			r->loading = false;
			return;
		}
	}
}

static void on_up(void *arg)
{
	load(arg);
}

static void on_down(void *arg, const char *why)
{
	rl *r = arg;
	(void)why;
	r->ready = false;
	kick(r); /* pending admissions are decided by the fallback now */
}

static const co_redis_events conn_events = {on_up, on_down, REPLY_MS, BACKOFF_MAX_MS};

static void on_nothing(void *arg, redisReply *rep, void *priv)
{
	(void)arg;
	(void)rep;
	(void)priv;
}

/* A NOSCRIPT (a SCRIPT FLUSH on the server): load them again. */
static void reload(rl *r)
{
	for (int i = 0; i < CO_LUA_N; i++) {
		const char *argv[3] = {"SCRIPT", "LOAD", co_limit_lua[i]};
		size_t lens[3] = {6, 4, strlen(co_limit_lua[i])};
		send_cmd(r, on_nothing, NULL, 3, argv, lens);
	}
}

static bool noscript(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

/* ---- renewal ---- */

/*
 * A count of live nodes: taken at once when it grows, but when it falls
 * only once it has stayed lower for NODE_TTL_MS.  A Redis that lost the
 * heartbeats (a restart, a FLUSHALL) counts the nodes again one renewal
 * at a time; meanwhile a fallback's share must not grow.
 */
static void note_nodes(rl *r, unsigned n)
{
	long long now = now_of(r);

	if (n < r->min_nodes)
		n = r->min_nodes;
	if (n >= r->nodes || now - r->nodes_at >= NODE_TTL_MS) {
		r->nodes = n;
		r->nodes_at = now;
	}
}

static void on_renew_reply(void *arg, redisReply *rep, void *priv)
{
	rl *r = arg;
	(void)priv;

	if (!got_reply(r, rep))
		return;
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
		note_nodes(r, (unsigned)rep->integer);
	else if (noscript(rep))
		reload(r);
}

/*
 * Heartbeat, and every slot we hold written with a fresh expiry: renewed,
 * or written again if Redis lost it (a restart, a FLUSHALL) or never had
 * it (a slot of the fallback, Redis back).  In batches of RENEW_BATCH.
 */
static void renew(rl *r)
{
	const co_lease_set *set = &r->held_leases;
	size_t i = 0;
	char nodes[KEY_MAX], ttl[16], nttl[16];

	if (!r->ready)
		return;
	snprintf(nodes, sizeof(nodes), "%slim:nodes", r->prefix);
	snprintf(ttl, sizeof(ttl), "%d", LEASE_TTL_MS);
	snprintf(nttl, sizeof(nttl), "%d", NODE_TTL_MS);
	do {
		size_t idx[RENEW_BATCH], m = 0;
		for (; i < set->n && m < RENEW_BATCH; i++)
			if (set->v[i].keylen) /* a kind with a cap */
				idx[m++] = i;
		size_t argc = 3 + 1 + m + 3 + m;
		const char **argv = malloc(argc * sizeof(*argv));
		size_t *lens = malloc(argc * sizeof(*lens));
		char(*members)[64] = malloc((m ? m : 1) * sizeof(*members));
		char nk[16];
		if (!argv || !lens || !members) {
			free(argv);
			free(lens);
			free(members);
			return;
		}
		snprintf(nk, sizeof(nk), "%zu", m + 1);
		size_t a = 0;
		argv[a] = "EVALSHA", lens[a++] = 7;
		argv[a] = r->sha[CO_LUA_RENEW], lens[a++] = 40;
		argv[a] = nk, lens[a++] = strlen(nk);
		argv[a] = nodes, lens[a++] = strlen(nodes);
		for (size_t j = 0; j < m; j++)
			argv[a] = set->v[idx[j]].key, lens[a++] = set->v[idx[j]].keylen;
		argv[a] = r->token, lens[a++] = strlen(r->token);
		argv[a] = ttl, lens[a++] = strlen(ttl);
		argv[a] = nttl, lens[a++] = strlen(nttl);
		for (size_t j = 0; j < m; j++) {
			argv[a] = members[j];
			lens[a++] =
			    member_of(r, members[j], sizeof(members[j]), set->v[idx[j]].lease);
		}
		send_cmd(r, on_renew_reply, NULL, (int)a, argv, lens);
		free(argv);
		free(lens);
		free(members);
	} while (i < set->n);
}

static void on_renew_timer(evutil_socket_t fd, short what, void *arg)
{
	rl *r = arg;
	(void)fd;
	(void)what;
	if (!r->ready && !r->loading && co_redis_up(r->conn))
		load(r); /* the scripts were refused last time */
	else
		renew(r);
}

/* ---- fire and forget ---- */

static void on_ignored_reply(void *arg, redisReply *reply, void *priv)
{
	rl *r = arg;
	(void)priv;
	if (got_reply(r, reply) && noscript(reply))
		reload(r);
}

static void zrem(rl *r, const char *key, size_t keylen, co_lease lease)
{
	char member[64];
	const char *argv[3] = {"ZREM", key, member};
	size_t lens[3] = {4, keylen, member_of(r, member, sizeof(member), lease)};
	if (r->ready)
		send_cmd(r, on_ignored_reply, NULL, 3, argv, lens);
}

/* A token back in k's bucket on Redis (a session that did not open). */
static void refund(rl *r, const co_limit_key *k)
{
	const co_rate *rate = &r->base.rules[k->kind].rate;
	char key[KEY_MAX], burst[16];
	size_t len;

	if (!r->ready || !cap_arg(rate->rate) || !(len = key_of(r, key, "b", k)))
		return;
	snprintf(burst, sizeof(burst), "%u", rate->burst);
	const char *argv[5] = {"EVALSHA", r->sha[CO_LUA_REFUND], "1", key, burst};
	size_t lens[5] = {7, 40, 1, len, strlen(burst)};
	send_cmd(r, on_ignored_reply, NULL, 5, argv, lens);
}

/*
 * A slot we hold, to renew (and to write again should Redis have lost
 * it: a restart, or a slot of the fallback when Redis returns).  Kinds
 * without a cap keep no set on Redis: no key to write.
 */
static int hold(rl *r, co_lease lease, co_limit_kind kind, const char *key, size_t len)
{
	bool capped = cap_arg(r->base.rules[kind].sessions) != 0;
	return co_lease_set_add(&r->held_leases, lease, key, capped ? len : 0);
}

/* The fallback's slots of a session, held on Redis too (kept there once
 * it answers again); false when out of memory. */
static bool hold_fallback(rl *r, const co_limit_key *d, const co_limit_key *h,
                          const co_admission *a)
{
	char key[KEY_MAX];

	if (hold(r, a->dlease, CO_LIMIT_DOMAIN, key, key_of(r, key, "s", d)))
		return false;
	if (hold(r, a->hlease, CO_LIMIT_HOST, key, key_of(r, key, "s", h))) {
		co_lease_set_remove(&r->held_leases, a->dlease);
		return false;
	}
	return true;
}

/* ---- what Redis said ---- */

static ask *ask_find(rl *r, const co_limit_key *d, const co_limit_key *h, bool exempt)
{
	for (ask *q = r->asks; q; q = q->next)
		if (q->exempt == exempt && q->dlen == d->len && q->hlen == h->len &&
		    memcmp(q->id, d->id, d->len) == 0 && memcmp(q->id + d->len, h->id, h->len) == 0)
			return q;
	return NULL;
}

static void ask_unlink(rl *r, ask *q)
{
	for (ask **pp = &r->asks; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			return;
		}
	}
}

/* Answers past their time: refusals expire, grants nobody took go back
 * (slots and tokens). */
static void asks_sweep(rl *r, long long now)
{
	for (ask **pp = &r->asks; *pp;) {
		ask *q = *pp;
		if (q->st != ASK_PENDING && now >= q->until) {
			*pp = q->next;
			if (q->st == ASK_GRANTED) {
				zrem(r, q->dkey, q->dklen, q->a.dlease);
				zrem(r, q->hkey, q->hklen, q->a.hlease);
				if (!q->exempt) {
					refund(r, &(co_limit_key){CO_LIMIT_DOMAIN, q->id, q->dlen});
					refund(r, &(co_limit_key){CO_LIMIT_HOST, q->id + q->dlen,
					                          q->hlen});
				}
			}
			free(q);
		} else {
			pp = &q->next;
		}
	}
}

static held *held_find(rl *r, const co_limit_key *k)
{
	for (held *e = r->helds; e; e = e->next)
		if (e->len == k->len && memcmp(e->id, k->id, k->len) == 0)
			return e;
	return NULL;
}

static void held_note(rl *r, const co_limit_key *k, unsigned failures, long long left)
{
	long long now = now_of(r);
	held *e = held_find(r, k);

	/* Drop what is over, now and then. */
	for (held **pp = &r->helds; *pp;) {
		if ((*pp)->until <= now && *pp != e) {
			held *x = *pp;
			*pp = x->next;
			free(x);
		} else {
			pp = &(*pp)->next;
		}
	}
	if (!e) {
		if (left <= 0 || !(e = calloc(1, sizeof(*e) + k->len)))
			return;
		e->len = k->len;
		memcpy(e->id, k->id, k->len);
		e->next = r->helds;
		r->helds = e;
	}
	e->failures = failures;
	e->until = now + left;
}

static long long int_of(const redisReply *v)
{
	return v->type == REDIS_REPLY_INTEGER ? v->integer : 0;
}

static void on_admit_reply(void *arg, redisReply *rep, void *priv)
{
	rl *r = arg;
	ask *q = priv;

	if (q->gone || r->freeing) {
		free(q);
		return;
	}
	if (!got_reply(r, rep)) {
		ask_unlink(r, q); /* the fallback decides */
		free(q);
		return;
	}
	long long now = now_of(r);
	q->st = ASK_REFUSED;
	q->code = CO_ADMIT_PENDING;
	q->until = now + ERROR_RETRY_MS;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
		long long code = int_of(rep->element[0]), a = int_of(rep->element[1]);
		long long b = rep->elements > 2 ? int_of(rep->element[2]) : 0;
		switch (code) {
		case 0:
			q->st = ASK_GRANTED;
			q->code = CO_ADMIT_OK;
			q->a.trial = a != 0;
			q->until = now + GRANT_KEEP_MS;
			break;
		case 1:
			q->code = CO_ADMIT_HELD;
			q->until = now + (b > 0 ? b : 1000);
			held_note(r, &(co_limit_key){CO_LIMIT_HOST, q->id + q->dlen, q->hlen},
			          (unsigned)a, b);
			break;
		case 2:
		case 3:
			q->code = code == 2 ? CO_ADMIT_DOMAIN_FULL : CO_ADMIT_HOST_FULL;
			q->a.out = a > 0 ? (unsigned)a : 1;
			q->until = now + SLOT_POLL_MS;
			break;
		case 4:
		case 5:
			q->code = code == 4 ? CO_ADMIT_DOMAIN_RATE : CO_ADMIT_HOST_RATE;
			q->until = now + (b > 0 ? b : 1);
			break;
		}
	} else if (noscript(rep)) {
		reload(r);
	}
	kick(r);
}

/* ---- the ops ---- */

/* The fallback, with this node's share of every limit; NULL with the
 * share 0. */
static co_limits *fallback(rl *r)
{
	co_limit_rules rules[CO_LIMIT_KINDS];

	if (r->fb)
		return r->fb;
	for (int k = 0; k < CO_LIMIT_KINDS; k++)
		if (!co_limit_rules_share(&r->base.rules[k], r->nodes, &rules[k]))
			return NULL;
	r->fb = co_limits_local_new(rules, r->base.clock, r->base.clock_arg, 0);
	/* the sessions already open count against the share */
	if (r->fb)
		r->fb_leases += co_shadows_take(&r->shadows, r->fb, &r->held_leases, FB_BIT);
	return r->fb;
}

static co_admit fallback_admit(rl *r, const co_limit_key *d, const co_limit_key *h, bool exempt,
                               co_admission *a)
{
	co_limits *fb = fallback(r);

	r->fallbacks++;
	if (!fb) {
		a->wait = SHARE_RETRY_MS;
		return CO_ADMIT_SHARE;
	}
	co_admit res = co_limits_admit(fb, d, h, exempt, a);
	if (res == CO_ADMIT_OK) {
		a->dlease |= FB_BIT;
		a->hlease |= FB_BIT;
		r->fb_leases += 2;
		if (!hold_fallback(r, d, h, a)) {
			r_release(&r->base, h, a->hlease);
			r_release(&r->base, d, a->dlease);
			return CO_ADMIT_NOMEM;
		}
		r->admissions++;
	} else if (res == CO_ADMIT_DOMAIN_FULL || res == CO_ADMIT_HOST_FULL) {
		/* Slots of the fallback free when our sessions end; Redis may
		 * be back before: look again. */
		a->wait = SHARE_RETRY_MS;
	}
	return res;
}

static co_admit r_admit(co_limits *l, const co_limit_key *d, const co_limit_key *h, bool exempt,
                        co_admission *a)
{
	rl *r = (rl *)l;
	long long now = now_of(r);

	asks_sweep(r, now);
	ask *q = ask_find(r, d, h, exempt);
	if (q && q->st == ASK_GRANTED) {
		*a = q->a;
		ask_unlink(r, q);
		if (hold(r, a->dlease, CO_LIMIT_DOMAIN, q->dkey, q->dklen) ||
		    hold(r, a->hlease, CO_LIMIT_HOST, q->hkey, q->hklen)) {
			co_lease_set_remove(&r->held_leases, a->dlease);
			zrem(r, q->dkey, q->dklen, a->dlease);
			zrem(r, q->hkey, q->hklen, a->hlease);
			free(q);
			return CO_ADMIT_NOMEM;
		}
		free(q);
		r->admissions++;
		return CO_ADMIT_OK;
	}
	if (q && q->st == ASK_REFUSED) {
		a->out = q->a.out;
		a->wait = q->until - now;
		return q->code;
	}
	if (q)
		return CO_ADMIT_PENDING;
	if (!r->ready)
		return fallback_admit(r, d, h, exempt, a);

	if (!(q = calloc(1, sizeof(*q) + d->len + h->len)))
		return CO_ADMIT_NOMEM;
	q->r = r;
	q->exempt = exempt;
	q->dlen = d->len;
	q->hlen = h->len;
	memcpy(q->id, d->id, d->len);
	memcpy(q->id + d->len, h->id, h->len);
	q->a.dlease = ++r->leases;
	q->a.hlease = ++r->leases;

	char dbucket[KEY_MAX], hbucket[KEY_MAX], hbackoff[KEY_MAX];
	char dm[64], hm[64], nums[7][16];
	const co_limit_rules *dr = &l->rules[CO_LIMIT_DOMAIN], *hr = &l->rules[CO_LIMIT_HOST];
	unsigned v[7] = {cap_arg(dr->sessions),        cap_arg(hr->sessions),
	                 cap_arg(dr->rate.rate),       cap_arg(dr->rate.burst),
	                 cap_arg(hr->rate.rate),       cap_arg(hr->rate.burst),
	                 cap_arg(hr->backoff.failures)};
	for (int i = 0; i < 7; i++)
		snprintf(nums[i], sizeof(nums[i]), "%u", v[i]);
	q->dklen = key_of(r, q->dkey, "s", d);
	q->hklen = key_of(r, q->hkey, "s", h);
	size_t dbl = key_of(r, dbucket, "b", d), hbl = key_of(r, hbucket, "b", h);
	size_t hol = key_of(r, hbackoff, "o", h);
	if (!q->dklen || !q->hklen || !dbl || !hbl || !hol) {
		free(q);
		return fallback_admit(r, d, h, exempt, a);
	}
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%d", LEASE_TTL_MS);
	const char *argv[] = {"EVALSHA", r->sha[CO_LUA_ADMIT],
	                      "5",       q->dkey,
	                      q->hkey,   dbucket,
	                      hbucket,   hbackoff,
	                      dm,        hm,
	                      ttl,       nums[0],
	                      nums[1],   exempt ? "1" : "0",
	                      nums[2],   nums[3],
	                      nums[4],   nums[5],
	                      nums[6]};
	size_t lens[sizeof(argv) / sizeof(argv[0])];
	for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
		lens[i] = argv[i] ? strlen(argv[i]) : 0;
	lens[8] = member_of(r, dm, sizeof(dm), q->a.dlease);
	lens[9] = member_of(r, hm, sizeof(hm), q->a.hlease);
	lens[3] = q->dklen;
	lens[4] = q->hklen;
	if (send_cmd(r, on_admit_reply, q, (int)(sizeof(argv) / sizeof(argv[0])), argv, lens)) {
		free(q);
		return fallback_admit(r, d, h, exempt, a);
	}
	q->st = ASK_PENDING;
	q->next = r->asks;
	r->asks = q;
	return CO_ADMIT_PENDING;
}

static void r_release(co_limits *l, const co_limit_key *k, co_lease lease)
{
	rl *r = (rl *)l;
	bool capped = cap_arg(l->rules[k->kind].sessions) != 0;
	bool ours = co_lease_set_remove(&r->held_leases, lease);
	char key[KEY_MAX];
	size_t len;

	if ((lease & FB_BIT) && r->fb) {
		r->fb->ops->release(r->fb, k, lease & ~FB_BIT);
		r->fb_leases--;
	} else if (r->fb && co_shadows_release(&r->shadows, r->fb, lease)) {
		r->fb_leases--;
	}
	if (r->fb && !r->fb_leases && r->ready) {
		co_shadows_clear(&r->shadows);
		co_shadows_clear(&r->shadows);
		co_limits_free(r->fb); /* a new count of nodes next time */
		r->fb = NULL;
	}
	if (!ours)
		return;
	/* A slot of the fallback is on Redis too once Redis came back. */
	if (capped && (len = key_of(r, key, "s", k)))
		zrem(r, key, len, lease);
	/* A slot of ours is free: refusals for this key are out of date. */
	for (ask *q = r->asks; q; q = q->next)
		if (q->st == ASK_REFUSED &&
		    (q->code == CO_ADMIT_DOMAIN_FULL || q->code == CO_ADMIT_HOST_FULL))
			q->until = 0;
}

static bool r_acquire(co_limits *l, const co_limit_key *k, co_lease *lease, unsigned *out)
{
	rl *r = (rl *)l;
	co_limits *fb = fallback(r);
	char key[KEY_MAX];

	*out = 1;
	if (!fb || !fb->ops->acquire(fb, k, lease, out))
		return false;
	*lease |= FB_BIT;
	r->fb_leases++;
	if (hold(r, *lease, k->kind, key, key_of(r, key, "s", k))) {
		r_release(l, k, *lease);
		*out = 0; /* out of memory */
		return false;
	}
	return true;
}

static bool r_take(co_limits *l, const co_limit_key *k, long long *wait)
{
	co_limits *fb = fallback((rl *)l);
	return fb && fb->ops->take(fb, k, wait);
}

static void r_refund(co_limits *l, const co_limit_key *k, co_lease lease)
{
	rl *r = (rl *)l;

	if (!(lease & FB_BIT))
		refund(r, k);
	else if (r->fb)
		r->fb->ops->refund(r->fb, k, lease & ~FB_BIT);
}

static bool r_held(co_limits *l, const co_limit_key *k, unsigned *failures, long long *left_s)
{
	rl *r = (rl *)l;
	long long now = now_of(r);

	if (!r->ready)
		return r->fb && r->fb->ops->held(r->fb, k, failures, left_s);
	held *e = held_find(r, k);
	if (!e || e->until <= now)
		return false;
	*failures = e->failures;
	*left_s = (e->until - now + 999) / 1000;
	return true;
}

static bool r_trial(co_limits *l, const co_limit_key *k)
{
	(void)l;
	(void)k;
	return false; /* admit says */
}

static void on_report_reply(void *arg, redisReply *rep, void *priv)
{
	rl *r = arg;
	held *k = priv; /* the host's id, to note what Redis says */

	if (got_reply(r, rep)) {
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
			long long f = int_of(rep->element[0]), left = int_of(rep->element[1]);
			co_limit_key key = {CO_LIMIT_HOST, k->id, k->len};
			held *e = held_find(r, &key);
			if (left > 0)
				held_note(r, &key, (unsigned)f, left);
			else if (e && f == 0)
				e->until = 0;
		} else if (noscript(rep)) {
			reload(r);
		}
	}
	free(k);
}

static void r_report(co_limits *l, const co_limit_key *k, co_limit_outcome o, bool trial)
{
	rl *r = (rl *)l;
	const co_backoff_rule *rule = &l->rules[k->kind].backoff;
	char key[KEY_MAX], nums[3][16];
	size_t len;
	held *id;

	if (r->fb)
		r->fb->ops->report(r->fb, k, o, trial);
	if (!r->ready || k->kind != CO_LIMIT_HOST || rule->failures == CALLOUT_UNLIMITED ||
	    !(len = key_of(r, key, "o", k)) || !(id = calloc(1, sizeof(*id) + k->len)))
		return;
	id->len = k->len;
	memcpy(id->id, k->id, k->len);
	snprintf(nums[0], sizeof(nums[0]), "%u", rule->failures);
	snprintf(nums[1], sizeof(nums[1]), "%u", rule->base_ms);
	snprintf(nums[2], sizeof(nums[2]), "%u", rule->max_level);
	const char *argv[] = {"EVALSHA",
	                      r->sha[CO_LUA_REPORT],
	                      "1",
	                      key,
	                      o == CO_LIMIT_WORKED   ? "0"
	                      : o == CO_LIMIT_FAILED ? "1"
	                                             : "2",
	                      trial ? "1" : "0",
	                      nums[0],
	                      nums[1],
	                      nums[2]};
	size_t lens[9];
	for (int i = 0; i < 9; i++)
		lens[i] = strlen(argv[i]);
	lens[3] = len;
	if (send_cmd(r, on_report_reply, id, 9, argv, lens))
		free(id);
}

static unsigned r_held_count(co_limits *l, co_limit_kind kind)
{
	rl *r = (rl *)l;
	long long now = now_of(r);
	unsigned n = 0;

	if (!r->ready)
		return r->fb ? r->fb->ops->held_count(r->fb, kind) : 0;
	if (kind == CO_LIMIT_HOST)
		for (held *e = r->helds; e; e = e->next)
			n += e->until > now;
	return n;
}

static void r_health(co_limits *l, co_limits_health *out)
{
	rl *r = (rl *)l;

	*out = (co_limits_health){.shared = true,
	                          .up = r->ready,
	                          .leases = (unsigned)r->held_leases.n,
	                          .nodes = r->nodes,
	                          .fallbacks = r->fallbacks,
	                          .round_trips = r->round_trips,
	                          .admissions = r->admissions};
}

static void r_free(co_limits *l)
{
	rl *r = (rl *)l;

	/* Our slots go back now rather than at their TTL. */
	for (size_t i = 0; r->ready && i < r->held_leases.n; i++)
		if (r->held_leases.v[i].keylen)
			zrem(r, r->held_leases.v[i].key, r->held_leases.v[i].keylen,
			     r->held_leases.v[i].lease);
	for (ask *q = r->asks; q; q = q->next)
		if (q->st == ASK_GRANTED) {
			zrem(r, q->dkey, q->dklen, q->a.dlease);
			zrem(r, q->hkey, q->hklen, q->a.hlease);
		}
	r->freeing = true;
	while (r->asks) {
		ask *q = r->asks;
		r->asks = q->next;
		if (q->st == ASK_PENDING)
			q->gone = true; /* its reply function frees it */
		else
			free(q);
	}
	/* Our unanswered commands are answered NULL now; the last user of
	 * the connection sends the ZREMs before it closes. */
	if (r->conn)
		co_redis_leave(r->conn);
	while (r->helds) {
		held *e = r->helds;
		r->helds = e->next;
		free(e);
	}
	co_lease_set_clear(&r->held_leases);
	co_limits_free(r->fb);
	if (r->renew_ev)
		event_free(r->renew_ev);
	free(r->prefix);
	free(r);
}

static const co_limits_ops redis_ops = {
    .acquire = r_acquire,
    .release = r_release,
    .take = r_take,
    .refund = r_refund,
    .held = r_held,
    .trial = r_trial,
    .report = r_report,
    .held_count = r_held_count,
    .free = r_free,
    .admit = r_admit,
    .health = r_health,
};

/* The cache's connection when it has one on this loop, else one of our
 * own to the same server. */
static co_redis_user *conn_of(rl *r, struct event_base *base, struct co_cache *cache,
                              const co_redis_where *w)
{
	co_redis_user *cc = co_cache_redis_conn(cache);
	co_redis_addr addr;

	if (cc && co_redis_base_of(cc) == base)
		return co_redis_join(cc, &conn_events, r);
	if (co_redis_addr_set(&addr, w->host, w->port, w->db, w->user, w->password))
		return NULL;
	co_redis_user *u = co_redis_connect(base, &addr, &conn_events, r);
	co_redis_addr_clear(&addr);
	return u;
}

co_limits *co_limits_redis_new(const co_limit_rules rules[CO_LIMIT_KINDS], co_clock_fn clock,
                               void *clock_arg, struct event_base *base, struct co_cache *cache,
                               unsigned min_nodes)
{
	co_redis_where w;

	if (!base || !co_cache_redis_where(cache, &w))
		return NULL;
	rl *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->base.ops = &redis_ops;
	memcpy(r->base.rules, rules, sizeof(r->base.rules));
	r->base.clock = clock;
	r->base.clock_arg = clock_arg;
	r->min_nodes = min_nodes ? min_nodes : 1;
	r->nodes = r->min_nodes;
	r->prefix = strdup(w.prefix ? w.prefix : "");
	co_redis_make_token(r->token, 8);
	bool ok = r->prefix != NULL;
	for (int i = 0; i < CO_LUA_N; i++)
		ok = ok && co_limit_lua_sha(co_limit_lua[i], r->sha[i]);
	r->renew_ev = event_new(base, -1, EV_PERSIST, on_renew_timer, r);
	if (!ok || !r->renew_ev || !(r->conn = conn_of(r, base, cache, &w))) {
		r_free(&r->base);
		return NULL;
	}
	struct timeval tv = ms_tv(RENEW_MS);
	event_add(r->renew_ev, &tv);
	if (co_redis_up(r->conn))
		load(r); /* joined a connection already up: no on_up for it */
	return &r->base;
}
