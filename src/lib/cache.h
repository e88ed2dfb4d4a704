/*
 * The cache interface: one table of functions per backend (LMDB, Redis,
 * memory).  The engine decides what to keep and for how long; a backend
 * only stores encoded records (record.h) under their keys.  This is the
 * base the backends build on; opening one by its spec is cache_open.h's.
 *
 * Faults are never results: a backend that cannot read answers "not
 * found", one that cannot write drops the write, and both report the
 * fault once through co_cache_fault() until co_cache_ok() sees it work
 * again.
 */
#ifndef CO_CACHE_H
#define CO_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct event_base;

typedef struct co_cache co_cache;
typedef struct co_cache_req co_cache_req;

typedef void (*co_cache_log_fn)(void *arg, const char *msg);
typedef int64_t (*co_cache_clock_fn)(void *arg);

typedef struct co_cache_conf {
	/* The loop for asynchronous backends.  NULL: administrative use, every
	 * operation synchronous (get returns 1, claim is always granted). */
	struct event_base *base;
	/* Administrative use: fail co_cache_open() when the store cannot be
	 * opened, with the reason, instead of running degraded. */
	bool strict;
	size_t max_bytes;    /* LMDB map size / memory budget; 0: default */
	co_cache_log_fn log; /* NULL: faults are not reported */
	void *log_arg;
	co_cache_clock_fn now; /* Unix seconds; NULL: time() */
	void *now_arg;
} co_cache_conf;

/* A lookup finished: found[] and out[] are filled. */
typedef void (*co_cache_get_cb)(void *arg);

typedef enum co_claim_result {
	CO_CLAIM_GRANTED = 0, /* probe it yourself (also after a bounded wait) */
	CO_CLAIM_ANSWERED     /* another node probed it: rec is its record */
} co_claim_result;
typedef void (*co_cache_claim_cb)(void *arg, co_claim_result res, const co_rec *rec);

/* Called for each record of a scan; rec NULL when the stored bytes are
 * damaged.  Return non-zero to stop the scan. */
typedef int (*co_cache_scan_fn)(void *arg, const char *key, size_t keylen, const co_rec *rec);

typedef struct co_cache_info {
	const char *backend;            /* "lmdb", "redis", "memory" */
	unsigned long long bytes_used;  /* by the data (LMDB pages, Redis used_memory) */
	unsigned long long bytes_limit; /* LMDB map size, Redis maxmemory, 0: none */
} co_cache_info;

/* Out of memory, from administration or opening: not the store's fault,
 * and not the user's. */
#define CO_CACHE_ENOMEM (-3)

typedef struct co_cache_ops {
	const char *name;
	/*
	 * Look up n keys (n <= 8).  found[i] tells whether out[i] holds the
	 * record of keys[i]; a missing, damaged or unreadable record is not
	 * found.  Expiry is the caller's business.  Returns 1 when done now
	 * (cb is not called), 0 when pending (*req set; cb later from the
	 * loop, unless cancelled), -1 when the cache failed (nothing found).
	 * keys, out and found must stay valid until cb or cancel.
	 */
	int (*get)(co_cache *c, const char *const *keys, size_t n, co_rec *out, bool *found,
	           co_cache_get_cb cb, void *arg, co_cache_req **req);
	/* Store rec under key for ttl_s seconds (> 0).  0, or -1 when the
	 * write failed or was dropped. */
	int (*put)(co_cache *c, const char *key, const co_rec *rec, unsigned ttl_s);
	/* Delete key, as a write like put (in the same group commit, in order
	 * with the writes before it): how a fact is forgotten.  0 or -1. */
	int (*forget)(co_cache *c, const char *key);
	/*
	 * Single flight across processes: claim the right to probe key for
	 * hold_ms.  If another holder has it, wait up to wait_ms for its
	 * record.  Returns 1 when granted now, 0 when pending (*req set; cb
	 * later), -1 on failure (the caller probes).  NULL in backends shared
	 * by one process only.
	 */
	int (*claim)(co_cache *c, const char *key, unsigned hold_ms, unsigned wait_ms,
	             co_cache_claim_cb cb, void *arg, co_cache_req **req);
	/*
	 * Group commit: call cb(arg) from the loop once every write queued so
	 * far is committed (or failed: the answer goes out either way).
	 * Returns 1 when it will, 0 when nothing waits to be written (cb is
	 * not called).  NULL in backends whose writes are done at once.
	 * unsync forgets the calls waiting with arg.
	 */
	int (*sync)(co_cache *c, void (*cb)(void *arg), void *arg);
	void (*unsync)(co_cache *c, void *arg);
	/* Give up a granted claim (after put).  May be NULL with claim. */
	void (*release)(co_cache *c, const char *key);
	/* Forget a pending get or claim: its callback will not be called and
	 * its storage is not touched again. */
	void (*cancel)(co_cache *c, co_cache_req *req);

	/* Administration, synchronous (may block).  0, -1, or CO_CACHE_ENOMEM
	 * (above) when out of memory: not the store's fault. */
	int (*scan)(co_cache *c, const char *prefix, co_cache_scan_fn fn, void *arg);
	int (*del)(co_cache *c, const char *const *keys, size_t n, unsigned long *deleted);
	int (*info)(co_cache *c, co_cache_info *info);

	/* Free; pending callbacks are not called. */
	void (*free)(co_cache *c);
} co_cache_ops;

/* The part every backend begins with. */
struct co_cache {
	const co_cache_ops *ops;
	co_cache_conf conf;
	bool faulty;               /* a fault was reported and has not cleared */
	unsigned long long errors; /* faults reported (co_cache_fault calls) */
	char fault_msg[256];       /* the last one, while faulty */
};

/* Free c through its backend's table (NULL: nothing). */
void co_cache_free(co_cache *c);

/* For backends: the clock, and fault reporting (once per episode). */
int64_t co_cache_now(const co_cache *c);
void co_cache_fault(co_cache *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void co_cache_ok(co_cache *c);

#endif
