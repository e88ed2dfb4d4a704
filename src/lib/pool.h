/*
 * The sessions of a context and the limits on them: how many per domain
 * and per MX address at once, how many new ones a minute (token buckets),
 * backoff from hosts that keep failing, and session reuse: addresses of
 * one domain waiting at the same time share a session, several RCPTs to a
 * transaction.  Work past a limit waits here, in its domain's queue.
 *
 * The engine hands the pool jobs (one address to ask one server) and
 * gets back one outcome per job; it never sees a session.
 */
#ifndef CO_POOL_H
#define CO_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "session.h"

struct event_base;
typedef struct co_pool co_pool;
typedef struct co_psess co_psess;

/* The limits; CALLOUT_UNLIMITED lifts one.  Rates are per minute. */
typedef struct co_pool_limits {
	unsigned domain_sessions, host_sessions;
	unsigned domain_rate, domain_burst;
	unsigned host_rate, host_burst;
	unsigned session_rcpts;   /* RCPTs a session carries, random ones included */
	unsigned session_idle_ms; /* an idle session waits this long for work */
	unsigned backoff_failures, backoff_ms;
	unsigned max_queued;           /* jobs waiting, all domains together */
	long long (*clock)(void *arg); /* monotonic ms for the limits; NULL: the real one */
	void *clock_arg;
	struct co_cache *shared; /* a Redis cache: the limits hold across the fleet
	                            on its server (limit_redis.c); NULL: this process */
	unsigned fleet_nodes;    /* shared: the nodes counted at least */
} co_pool_limits;

typedef enum co_job_state {
	CO_JOB_NEW = 0,
	CO_JOB_QUEUED,  /* waiting for a slot */
	CO_JOB_PENDING, /* on a session, for its next batch */
	CO_JOB_SENT,    /* in the batch in flight */
	CO_JOB_DONE
} co_job_state;

/* One address to ask one server.  The caller fills the first part and
 * keeps the job alive until its callback or co_pool_cancel(). */
typedef struct co_pool_job {
	const char *domain;           /* whose limits apply */
	struct sockaddr_storage addr; /* the server, port set */
	socklen_t addrlen;
	co_session_params params; /* addr is ignored; strings are copied,
	                             except the transcript */
	const char *rcpt;
	const char *random_rcpt;        /* catch-all probe, NULL: none */
	bool shared;                    /* may share a session with other jobs */
	bool exempt;                    /* a route: no rates, no backoff */
	bool no_wait;                   /* past a limit: fail instead of waiting */
	struct co_proxy_group *proxies; /* the proxy pool to go through; NULL: direct */
	void (*cb)(void *arg, const co_session_outcome *out);
	void *arg;
	/* postmaster@DOMAIN to ask too, NULL: none.  Asked once a session,
	 * when the transaction has room (always in its first); the answer
	 * goes on the outcome of every job of the session after it. */
	const char *postmaster_rcpt;

	/* The pool's. */
	co_job_state state;
	unsigned requeues;
	TAILQ_ENTRY(co_pool_job) link; /* in a queue or a session's list */
	co_psess *sess;
	unsigned slot; /* in the batch in flight */
	struct co_pdom *dom;
	char why[160]; /* answered by the pump: the limit met, the backoff, the proxies down */
} co_pool_job;

/* Jobs in line, oldest first. */
TAILQ_HEAD(co_pool_jobs, co_pool_job);

co_pool *co_pool_new(struct event_base *base, const co_pool_limits *limits);

/* Quit every session; no callbacks. */
void co_pool_free(co_pool *pool);

/* Place a job on a session, or queue it.  Returns 0 (its callback comes
 * later, from the loop or from a session's event; why says what it waits
 * for, if it waits), -1 with why filled when it is past a limit and may
 * not wait or the queue is full, -2 when out of memory, or -3 with why
 * filled when every proxy of its pool is down. */
int co_pool_submit(co_pool *pool, co_pool_job *job, char *why, size_t len);

/* Forget a job; its callback never comes.  A session it was alone on
 * is ended. */
void co_pool_cancel(co_pool *pool, co_pool_job *job);

/* Where a job is, for a deadline: CALLOUT_STAGE_NONE while it waits for
 * a slot (*waiting set). */
callout_stage co_pool_job_stage(const co_pool_job *job, bool *waiting);

/* Sessions open (idle ones included), idle, jobs queued, hosts backing
 * off. */
void co_pool_stats(co_pool *pool, unsigned *sessions, unsigned *idle, unsigned *queued,
                   unsigned *backing_off);

/* How the limits are kept (the limits_* fields): shared or not, the
 * store's reachability, the slots held. */
void co_pool_health(co_pool *pool, callout_health *h);

/* Whether sessions to this server are held back after failures; why
 * says so and for how long. */
bool co_pool_backing_off(co_pool *pool, const struct sockaddr_storage *addr, char *why, size_t len);

#endif
