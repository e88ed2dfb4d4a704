/*
 * Where HTTP bulk jobs (jobs.c) are kept.  Two stores, one interface:
 *
 *   LMDB   STATE_DIR/jobs.lmdb (jobs_store_lmdb.c): one node's jobs.
 *   Redis  the verdict cache's Redis when [cache] cache is redis://
 *          (jobs_store_redis.c): the fleet's jobs, shared.
 *
 * Each job has a record (JSON text, jobs.c writes it), its addresses
 * (256 to an entry, jobs_chunk.h) and its results (JSON text, with
 * "line"), by index.  Writes go through a transaction (cd_jtxn), so that
 * a batch of results and the record counting them are stored together.
 *
 * In a shared store a node writes a job only while it holds the job's
 * lease (cd_jstore_claim, renewed by cd_jstore_renew): two nodes never
 * run one job, and a node that was paused past its lease writes nothing
 * more of it.  A store of one node has no leases: claims always succeed.
 *
 * Every function returns 0 or an errno value (ENOENT: no such key;
 * EBUSY: another node holds the lease; EIO: the store failed).
 */
#ifndef CD_JOBS_STORE_H
#define CD_JOBS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CD_JOB_ID_LEN     32            /* hex characters of a job id (16 random bytes) */
#define CD_JOB_ADDR_MAX   1024          /* bytes of an address kept (CD_ADDRESS_MAX) */
#define CD_JOBS_STORE_MAP (16ULL << 30) /* the map's size: what the file may grow to */
#define CD_JOB_LEASE_MS   5000          /* a shared store's lease: renewed every second */

typedef struct cd_jstore cd_jstore;
typedef struct cd_jtxn cd_jtxn;

/* An address read back for the runner. */
typedef struct cd_jinput {
	uint64_t idx;
	uint32_t line;
	size_t len;
	char addr[CD_JOB_ADDR_MAX];
} cd_jinput;

/* The store for a daemon whose verdict cache is cache_spec: Redis for
 * redis://, else the LMDB file STATE_DIR/jobs.lmdb.  where: what to log
 * (no password).  NULL with the reason in err. */
cd_jstore *cd_jstore_open_for(const char *cache_spec, const char *state_dir, char *where,
                              size_t wlen, char *err, size_t errlen);
/* Open (create) the LMDB file at path; NULL with the reason in err. */
cd_jstore *cd_jstore_open(const char *path, char *err, size_t errlen);
void cd_jstore_close(cd_jstore *s);
/* Whether other nodes share the store (their jobs appear in it). */
bool cd_jstore_shared(const cd_jstore *s);

int cd_jstore_begin(cd_jstore *s, cd_jtxn **t);
int cd_jstore_commit(cd_jtxn *t); /* frees t, also on failure */
void cd_jstore_abort(cd_jtxn *t);

int cd_jstore_put_meta(cd_jtxn *t, const char *id, const char *json, size_t len);
/* In increasing index order: addresses are kept 256 to an entry, written
 * when the next entry begins or at the commit. */
int cd_jstore_put_input(cd_jtxn *t, const char *id, uint64_t idx, uint32_t line, const char *addr,
                        size_t len);
/* A result already there is kept (LMDB says EEXIST, Redis does not). */
int cd_jstore_put_result(cd_jtxn *t, const char *id, uint64_t idx, const char *json, size_t len);
/* Delete up to max of the job's entries (a chunk of 256 addresses, or a
 * result); *gone once none is left and the record is deleted too. */
int cd_jstore_purge(cd_jtxn *t, const char *id, size_t max, bool *gone);

/* Lease of job id for this node: 0 (held now, or already), EBUSY. */
int cd_jstore_claim(cd_jstore *s, const char *id);
/* Keep the lease: 0, EBUSY (lost: another node has the job), or
 * ECANCELED (held, and a node asked for the job to be cancelled). */
int cd_jstore_renew(cd_jstore *s, const char *id);
/* Give the lease up (the job ended, or the node stops). */
void cd_jstore_release(cd_jstore *s, const char *id);
/* Ask the node that holds the lease to cancel the job. */
int cd_jstore_request_stop(cd_jstore *s, const char *id);

/* One record: fn(arg, id, json, len); ENOENT when there is none. */
int cd_jstore_get_meta(cd_jstore *s, const char *id,
                       int (*fn)(void *arg, const char *id, const char *json, size_t len),
                       void *arg);
/* Every record: fn(arg, id, json, len); a non-zero return stops. */
int cd_jstore_each_meta(cd_jstore *s,
                        int (*fn)(void *arg, const char *id, const char *json, size_t len),
                        void *arg);

/* Up to max inputs of the job from index from on that have no result yet,
 * in order, into out (*n of them); *next: where to go on from. */
int cd_jstore_inputs(cd_jstore *s, const char *id, uint64_t from, cd_jinput *out, size_t max,
                     size_t *n, uint64_t *next);

/* The results of index from on, in order, at most limit:
 * fn(arg, idx, json, len); *next: the index after the last given, *more:
 * whether another result follows. */
int cd_jstore_results(cd_jstore *s, const char *id, uint64_t from, size_t limit,
                      int (*fn)(void *arg, uint64_t idx, const char *json, size_t len), void *arg,
                      uint64_t *next, bool *more);

#endif
