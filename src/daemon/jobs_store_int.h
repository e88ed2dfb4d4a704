/*
 * What a job store implements (jobs_store.h): jobs_store.c calls through
 * this table; jobs_store_lmdb.c and jobs_store_redis.c fill it.  Each
 * store's structures begin with cd_jstore / cd_jtxn.
 */
#ifndef CD_JOBS_STORE_INT_H
#define CD_JOBS_STORE_INT_H

#include "jobs_store.h"

typedef int (*cd_jmeta_fn)(void *arg, const char *id, const char *json, size_t len);
typedef int (*cd_jresult_fn)(void *arg, uint64_t idx, const char *json, size_t len);

typedef struct cd_jstore_ops {
	bool shared;
	void (*close)(cd_jstore *s);
	int (*begin)(cd_jstore *s, cd_jtxn **t);
	int (*commit)(cd_jtxn *t);
	void (*abort)(cd_jtxn *t);
	int (*put_meta)(cd_jtxn *t, const char *id, const char *json, size_t len);
	int (*put_input)(cd_jtxn *t, const char *id, uint64_t idx, uint32_t line, const char *addr,
	                 size_t len);
	int (*put_result)(cd_jtxn *t, const char *id, uint64_t idx, const char *json, size_t len);
	int (*purge)(cd_jtxn *t, const char *id, size_t max, bool *gone);
	/* the lease; NULL in a store of one node */
	int (*claim)(cd_jstore *s, const char *id);
	int (*renew)(cd_jstore *s, const char *id);
	void (*release)(cd_jstore *s, const char *id);
	int (*request_stop)(cd_jstore *s, const char *id);
	int (*get_meta)(cd_jstore *s, const char *id, cd_jmeta_fn fn, void *arg);
	int (*each_meta)(cd_jstore *s, cd_jmeta_fn fn, void *arg);
	int (*inputs)(cd_jstore *s, const char *id, uint64_t from, cd_jinput *out, size_t max,
	              size_t *n, uint64_t *next);
	int (*results)(cd_jstore *s, const char *id, uint64_t from, size_t limit, cd_jresult_fn fn,
	               void *arg, uint64_t *next, bool *more);
} cd_jstore_ops;

struct cd_jstore {
	const cd_jstore_ops *ops;
};

struct cd_jtxn {
	cd_jstore *s;
};

/* Redis at spec (redis://...); NULL with the reason in err. */
cd_jstore *cd_jstore_redis_open(const char *spec, char *where, size_t wlen, char *err,
                                size_t errlen);

#endif
