/*
 * Limits per destination as plain state and rules, with the time passed
 * in (milliseconds of a monotonic clock), so that every rule is tested
 * with a clock the test steps: token buckets for the rate of new
 * sessions, and the backoff from a destination that keeps failing.
 * Below them, the backend that keeps that state per destination for
 * pool.c (co_limits): session slots, buckets and backoff per key, behind
 * an ops table so that a fleet-wide backend can take the in-process one's
 * place (limit_local.c).
 */
#ifndef CO_LIMIT_H
#define CO_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The clock of the limits: monotonic milliseconds (clock.h). */
#include "clock.h"

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

/* ---- the backend ------------------------------------------------------- */

/*
 * The limits on sessions to one destination, kept per key: how many at
 * once (slots), how many new ones a minute (a bucket), and the backoff
 * from a destination that keeps failing.  The pool asks before it opens
 * a session and tells when it ends; routes (exempt) skip the rates and
 * the backoff but still take slots.  Every call reads the backend's
 * clock.  A backend shared by a fleet keeps a slot as a lease with a TTL
 * (hence the lease handed back to release), a bucket and the backoff
 * per key on the shared store, and falls back to state of its own, never
 * looser than one node's share, when the store is out of reach.
 */
typedef enum co_limit_kind { CO_LIMIT_DOMAIN, CO_LIMIT_HOST, CO_LIMIT_KINDS } co_limit_kind;

/* A destination: a domain name, or the bytes of a server's address
 * (family, address, port).  Not NUL-terminated; the caller's memory. */
typedef struct co_limit_key {
	co_limit_kind kind;
	const void *id;
	size_t len;
} co_limit_key;

/* The rules of one kind of key. */
typedef struct co_limit_rules {
	unsigned sessions; /* slots at once; CALLOUT_UNLIMITED: no cap */
	co_rate rate;      /* new sessions */
	co_backoff_rule backoff;
} co_limit_rules;

/* A slot held, for release; 0 is never one. */
typedef uint64_t co_lease;

/* How a session ended, for the backoff. */
typedef enum co_limit_outcome {
	CO_LIMIT_WORKED, /* clears the failures */
	CO_LIMIT_FAILED, /* refused, timed out, 421: one more failure */
	CO_LIMIT_ENDED   /* closed from our side: says nothing, ends a trial */
} co_limit_outcome;

typedef struct co_limits co_limits;

/* What admit answers: a session may open (both slots, both tokens and
 * the backoff allow), or why not, or that the store was asked. */
typedef enum co_admit {
	CO_ADMIT_OK,
	CO_ADMIT_DOMAIN_FULL, /* out: the domain's slots out */
	CO_ADMIT_HOST_FULL,   /* out: the host's */
	CO_ADMIT_DOMAIN_RATE,
	CO_ADMIT_HOST_RATE,
	CO_ADMIT_HELD,    /* the host backs off */
	CO_ADMIT_PENDING, /* the store was asked: kick() comes with the answer */
	CO_ADMIT_SHARE,   /* the store is out of reach and this node's share is 0 */
	CO_ADMIT_NOMEM
} co_admit;

typedef struct co_admission {
	co_lease dlease, hlease; /* OK: the slots, for release */
	bool trial;              /* OK: the session is the trial after a backoff */
	unsigned out;            /* *_FULL: slots out (0: no count kept) */
	long long wait;          /* not OK: ms after which asking again is worth it (0: when a
	                            session of ours ends or kick() says so) */
} co_admission;

/* Health of a backend, for /healthz and the metrics. */
typedef struct co_limits_health {
	bool shared;                    /* a fleet-wide backend */
	bool up;                        /* its store answers */
	unsigned leases;                /* slots this node holds */
	unsigned nodes;                 /* live nodes, last counted */
	unsigned long long fallbacks;   /* admissions decided locally, store out of reach */
	unsigned long long round_trips; /* scripts and commands sent to the store */
	unsigned long long admissions;  /* sessions admitted */
} co_limits_health;

typedef struct co_limits_ops {
	/* A slot for k if fewer than the cap are out: true with *lease
	 * set; false with *out set to the slots out, which is 0 only when
	 * the backend could not keep count (out of memory): nothing frees
	 * a slot then, so the caller must not wait for one. */
	bool (*acquire)(co_limits *l, const co_limit_key *k, co_lease *lease, unsigned *out);
	void (*release)(co_limits *l, const co_limit_key *k, co_lease lease);
	/* A token of k's bucket; if none, *wait (when 0 or later) is lowered
	 * to the milliseconds until one is. */
	bool (*take)(co_limits *l, const co_limit_key *k, long long *wait);
	/* Give back a token taken for a session that did not open; lease:
	 * the slot admitted with it (a fleet-wide backend took the token
	 * where it took the slot). */
	void (*refund)(co_limits *l, const co_limit_key *k, co_lease lease);
	/* Whether sessions to k are held back (a trial out counts); if so,
	 * *failures and *left_s (whole seconds, at least 1) say why. */
	bool (*held)(co_limits *l, const co_limit_key *k, unsigned *failures, long long *left_s);
	/* Whether a session opening to k is the trial after a wait (then
	 * marked out until reported). */
	bool (*trial)(co_limits *l, const co_limit_key *k);
	/* A session to k ended; trial: it was the trial. */
	void (*report)(co_limits *l, const co_limit_key *k, co_limit_outcome o, bool trial);
	/* Keys of a kind held back now (for the stats). */
	unsigned (*held_count)(co_limits *l, co_limit_kind kind);
	void (*free)(co_limits *l);
	/*
	 * Everything a session to host h of domain d needs, all or nothing:
	 * no backoff (unless exempt), a slot of each, a token of each
	 * (unless exempt).  Never blocks: a backend with a remote store
	 * answers from what it knows or says PENDING, asks, and calls kick
	 * when the answer is there (asking again then finds it).  NULL:
	 * co_limits_admit composes the calls above.
	 */
	co_admit (*admit)(co_limits *l, const co_limit_key *d, const co_limit_key *h, bool exempt,
	                  co_admission *a);
	/* NULL: co_limits_health says a local backend. */
	void (*health)(co_limits *l, co_limits_health *out);
} co_limits_ops;

/* What every backend starts with. */
struct co_limits {
	const co_limits_ops *ops;
	co_limit_rules rules[CO_LIMIT_KINDS];
	co_clock_fn clock; /* NULL: the real one */
	void *clock_arg;
	void (*kick)(void *arg); /* the caller's: admit again, an answer came */
	void *kick_arg;
};

/* The backend's admit, or the composed one. */
co_admit co_limits_admit(co_limits *l, const co_limit_key *d, const co_limit_key *h, bool exempt,
                         co_admission *a);
void co_limits_health_of(co_limits *l, co_limits_health *out);

/* ---- a fleet's share --------------------------------------------------- */

/* One node's share of a limit among nodes (at least 1 node counted):
 * floor(limit / nodes); CALLOUT_UNLIMITED stays so. */
unsigned co_limit_share(unsigned limit, unsigned nodes);
/* Rules with every limit a node's share; false if some share is 0 (no
 * session may open on this node's own authority). */
bool co_limit_rules_share(const co_limit_rules *in, unsigned nodes, co_limit_rules *out);

/* The slots a node holds on a shared store, to renew and to count: a
 * store key and a lease each.  Plain memory, no store. */
typedef struct co_lease_rec {
	co_lease lease;
	char *key; /* the store's key of the slot */
	size_t keylen;
} co_lease_rec;

typedef struct co_lease_set {
	co_lease_rec *v;
	size_t n, cap;
} co_lease_set;

/* 0, or -1 when out of memory. */
int co_lease_set_add(co_lease_set *s, co_lease lease, const char *key, size_t keylen);
/* Whether it was there (then forgotten). */
bool co_lease_set_remove(co_lease_set *s, co_lease lease);
void co_lease_set_clear(co_lease_set *s);

/* The fleet-wide backend (limit_redis.c) on the Redis server of a
 * cache (cache_redis.c), with keys under its prefix + "lim:"; NULL when
 * the cache is not Redis or out of memory.  min_nodes: the nodes it
 * counts at least, for its share while Redis is out of reach. */
struct co_cache;
struct event_base;
co_limits *co_limits_redis_new(const co_limit_rules rules[CO_LIMIT_KINDS], co_clock_fn clock,
                               void *clock_arg, struct event_base *base, struct co_cache *cache,
                               unsigned min_nodes);

/* The in-process backend (limit_local.c): a table under the keyed hash;
 * a key back to what a fresh one would be is dropped, looked for at most
 * every sweep_ms (0: a minute).  NULL when out of memory. */
co_limits *co_limits_local_new(const co_limit_rules rules[CO_LIMIT_KINDS], co_clock_fn clock,
                               void *clock_arg, unsigned sweep_ms);
/* Keys it holds now (for the tests). */
size_t co_limits_local_size(const co_limits *l);

void co_limits_free(co_limits *l);

#endif
