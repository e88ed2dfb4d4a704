/*
 * Inside the Redis backend: its state and requests, and what
 * cache_redis.c (the engine's asynchronous side: records and single
 * flight, on the connection of redis_conn.c) and cache_redis_admin.c (the blocking connection:
 * scan, delete, info) share, from cache_redis_cmd.c (commands and
 * replies).  Not for other files.
 */
#ifndef CO_CACHE_REDIS_INT_H
#define CO_CACHE_REDIS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cache.h"
#include "redis_conn.h"

#define TOKEN_LEN 32 /* the flight marker's random value, in hex */

typedef struct redis_cache redis_cache;

typedef enum req_kind { REQ_GET, REQ_CLAIM } req_kind;

struct co_cache_req {
	LIST_ENTRY(co_cache_req) link;        /* every live request of the backend */
	STAILQ_ENTRY(co_cache_req) done_link; /* finished, its callback due */
	redis_cache *r;
	req_kind kind;
	bool cancelled;
	bool waiting; /* hiredis holds it as privdata until a reply comes */
	bool queued;  /* on the done list */
	void *arg;
	/* get */
	size_t n;
	co_rec *out;
	bool *found;
	co_cache_get_cb get_cb;
	/* claim */
	co_cache_claim_cb claim_cb;
	co_claim_result res;
	co_rec *rec; /* ANSWERED: the holder's record */
	struct event *timer;
	int64_t deadline_ms, start_s;
	unsigned hold_ms;
	size_t rkeylen, mkeylen;
	char *rkey, *mkey; /* record key and flight marker, in keys[] */
	char keys[];
};

struct redis_cache {
	co_cache base;
	co_redis_addr addr;
	char *prefix, *name;
	size_t prefixlen;
	char token[TOKEN_LEN + 1];

	/* engine use */
	struct event_base *evb;
	co_redis_user *conn; /* the asynchronous connection (redis_conn.h) */
	struct event *done_ev;
	LIST_HEAD(, co_cache_req) reqs;
	STAILQ_HEAD(, co_cache_req) done;
	size_t nreqs;
	bool in_done; /* user callbacks are running */
	bool dead;    /* freed by one of them: finish when they return */
	bool freeing;

	/* administration */
	redisContext *sync;
};

/* Report a fault once: the backend goes on uncached. */
void co_redis_fault(redis_cache *r, const char *why);
void co_redis_reply_fault(redis_cache *r, const char *what, const redisReply *rep);
/*
 * argv[i] = prefix + mid + keys[i] for i < n, in one allocation that the
 * caller frees (hiredis copies the command at once).
 */
char *co_redis_prefixed(const redis_cache *r, const char *mid, const char *const *keys, size_t n,
                        const char **argv, size_t *lens);
/* A record from a reply element; false if it is none or malformed. */
bool co_redis_decode(const redisReply *v, co_rec *rec);

/* The blocking connection, made on first use.  With err: say why there
 * instead of reporting a fault. */
redisContext *co_redis_sync_ctx(redis_cache *r, char *err, size_t errlen);
/* A command on the blocking connection; NULL (fault reported) on failure. */
redisReply *co_redis_sync_cmd(redis_cache *r, int argc, const char **argv, const size_t *lens);

/* The administration operations of co_cache_ops. */
int co_redis_scan(co_cache *c, const char *prefix, co_cache_scan_fn fn, void *arg);
int co_redis_del(co_cache *c, const char *const *keys, size_t n, unsigned long *deleted);
int co_redis_info(co_cache *c, co_cache_info *info);

#endif
