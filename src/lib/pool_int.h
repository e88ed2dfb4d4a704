/*
 * Inside the pool: its state, its sessions and the slots they hold, and
 * what pool.c (sessions, reuse, the queue) takes from pool_admit.c (the
 * pool's side of the limits: admission, the slots held until a
 * connection is gone, the backoff accounting).  Not for other files.
 */
#ifndef CO_POOL_INT_H
#define CO_POOL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "limit.h"
#include "pool.h"
#include "pool_dest.h"
#include "proxy_pool.h"

#define PRUNE_MS 60000 /* the destinations and the local limits' keys, swept */

/* A batch in flight and the jobs it answers. */
typedef struct pbatch {
	co_session_batch sb;
	unsigned before; /* RCPTs the session sent before it */
	co_pool_job **jobs;
} pbatch;

typedef enum ps_state { PS_CONNECTING, PS_BUSY, PS_DELIVERING, PS_IDLE } ps_state;

/* What a session holds at the server until its connection is gone, which
 * may be after the session: its slots count until the server answered
 * its QUIT or closed (a session closed to make room for another must not
 * overlap it). */
typedef struct ptail {
	co_pool *pool;          /* NULL: the pool is gone */
	LIST_ENTRY(ptail) link; /* in the pool's tails */
	co_phost *host;
	co_pdom *dom;
	co_lease dlease, hlease;
	co_proxy_member *proxy; /* the proxy its connection went through, or NULL */
	unsigned refs;          /* the session until unlinked, and its connection */
	bool closing;           /* the session is over, its connection not yet gone */
} ptail;

struct co_psess {
	co_pool *pool;
	LIST_ENTRY(co_psess) jlink; /* in the domain's joinable sessions */
	bool joinable;              /* on that list */
	LIST_ENTRY(co_psess) link;  /* in the pool's sessions */
	co_phost *host;
	co_pdom *dom;
	co_session *s;
	ps_state st;
	bool shared, exempt, trial, ready;
	ptail *tail;                 /* its slots, released when the connection is gone */
	co_proxy_group *proxies;     /* the pool its connection is of */
	co_proxy_member *proxy;      /* the proxy it went through, or NULL */
	struct co_pool_jobs pending; /* the next batch */
	unsigned npend;
	unsigned used; /* RCPTs sent */
	pbatch *b;
	struct event *idle_timer;
	/* What the session runs with, copied: jobs come and go. */
	co_session_params params;
	struct sockaddr_storage addr, source;
	const char *helo, *from, *fallback, *tls_name; /* in strs */
	bool has_fallback, random;
	bool postmaster_asked; /* a batch carried the postmaster probe */
	char strs[];
};

struct co_pool {
	struct event_base *base;
	co_pool_limits lim;
	co_limits *limits;            /* slots, rates and backoff per domain and host */
	co_pdests dests;              /* the servers and domains met */
	LIST_HEAD(, co_pdom) waiting; /* domains with queued jobs */
	LIST_HEAD(, co_psess) sessions;
	unsigned nqueued;
	struct event *pump_ev, *wake;
	long long pruned_at;
	LIST_HEAD(, ptail) tails; /* slots held by sessions and closing connections */
};

/* Where a job went, or why not. */
/* PROXY_DOWN: every proxy of the job's pool is down. */
typedef enum place { PLACED, BLOCKED_DOMAIN, BLOCKED_HOST, PENDING, HELD, NOMEM, PROXY_DOWN } place;

/* Place what waits, from the loop (never from inside a caller). */
static inline void schedule_pump(co_pool *pool)
{
	event_active(pool->pump_ev, EV_TIMEOUT, 0);
}

/* ---- pool_admit.c ------------------------------------------------------ */

/* The limits backend of the pool's limits (shared on the cache's Redis
 * server, or this process's), its answers kicking the pump; NULL when out
 * of memory. */
co_limits *co_pool_backend_new(co_pool *pool);

/* A slot of j's domain and of h, and a token of each (routes take none),
 * all or nothing, as the limits backend admits it: PLACED, or why not in
 * why (*wait lowered to when asking again is worth it); *code is the
 * backend's answer. */
place co_pool_take_slots(co_pool *pool, co_pool_job *j, co_phost *h, co_admission *a,
                         co_admit *code, long long *wait, char *why, size_t len);
/* What co_pool_take_slots took, for a session that did not open. */
void co_pool_give_back(co_pool *pool, const co_pool_job *j, co_phost *h, const co_admission *a);

/* t holds the slots a of a new session to h of d, for 2 holders: the
 * session and its connection. */
void co_ptail_hold(co_pool *pool, ptail *t, co_phost *h, co_pdom *d, const co_admission *a);
/* One holder of a tail is done with it; the last one frees the slots. */
void co_ptail_put(ptail *t);
/* The session's connection is gone (co_session_on_closed): t's holder. */
void co_ptail_closed(void *t);
/* The pool is going: the slots held go back now; the tails are freed by
 * their connections. */
void co_ptails_drop(co_pool *pool);

/* The session is over: its tail is closing, a trial it was ends. */
void co_pool_unhold(co_psess *ps);
/* A batch of ps answered: a 421 in it counts a failure of its host. */
void co_pool_account_batch(co_pool *pool, const co_psess *ps, const co_session_batch *done);
/* ps is gone (why), with done in flight: the host's failure count. */
void co_pool_account_gone(co_pool *pool, const co_psess *ps, const co_session_batch *done,
                          const co_session_outcome *why);

#endif
