/*
 * Where HTTP bulk jobs (jobs.c) are kept: an LMDB file beside the cache
 * (STATE_DIR/jobs.lmdb), three named databases:
 *
 *   meta  ID            -> the job's record, JSON text (jobs.c writes it)
 *   in    ID . be64(c)  -> the addresses c*256 to c*256+255, each as
 *                        index % 256, be32(line), be16(length), its bytes
 *   out   ID . be64(i)  -> the i-th result, JSON text (with "line")
 *
 * Writes go through a transaction (cd_jtxn), so that a batch of results
 * and the record counting them are on disk together.  Every function
 * returns 0 or an errno value (ENOENT: no such key; EIO: LMDB failed).
 */
#ifndef CD_JOBS_STORE_H
#define CD_JOBS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CD_JOB_ID_LEN     32            /* hex characters of a job id (16 random bytes) */
#define CD_JOB_ADDR_MAX   1024          /* bytes of an address kept (CD_ADDRESS_MAX) */
#define CD_JOBS_STORE_MAP (16ULL << 30) /* the map's size: what the file may grow to */

typedef struct cd_jstore cd_jstore;
typedef struct cd_jtxn cd_jtxn;

/* An address read back for the runner. */
typedef struct cd_jinput {
	uint64_t idx;
	uint32_t line;
	size_t len;
	char addr[CD_JOB_ADDR_MAX];
} cd_jinput;

/* Open (create) the file at path; NULL with the reason in err. */
cd_jstore *cd_jstore_open(const char *path, char *err, size_t errlen);
void cd_jstore_close(cd_jstore *s);

int cd_jstore_begin(cd_jstore *s, cd_jtxn **t);
int cd_jstore_commit(cd_jtxn *t); /* frees t, also on failure */
void cd_jstore_abort(cd_jtxn *t);

int cd_jstore_put_meta(cd_jtxn *t, const char *id, const char *json, size_t len);
/* In increasing index order: addresses are kept 256 to an entry, written
 * when the next entry begins or at the commit. */
int cd_jstore_put_input(cd_jtxn *t, const char *id, uint64_t idx, uint32_t line, const char *addr,
                        size_t len);
/* EEXIST when the result is there already (it is kept). */
int cd_jstore_put_result(cd_jtxn *t, const char *id, uint64_t idx, const char *json, size_t len);
/* Delete up to max of the job's entries (a chunk of 256 addresses, or a
 * result); *gone once none is left and the record is deleted too. */
int cd_jstore_purge(cd_jtxn *t, const char *id, size_t max, bool *gone);

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
