/*
 * cache-bench: the cache's own numbers, for bench/run.
 *
 *   cache-bench fill SPEC N      store N address records (as the engine
 *                                would after N probes); prints the write
 *                                rate and, for LMDB, the bytes per entry
 *   cache-bench bulk PATH N      the same N records written straight into an
 *                                LMDB file in large transactions (a million
 *                                single-record commits, each synced, would
 *                                take minutes), in scattered order as
 *                                probes would write them; prints the bytes
 *                                per entry
 *   cache-bench lookup SPEC N C  N verifications of those addresses through
 *                                the public API at concurrency C, every one
 *                                answered from the cache; prints the rate
 *
 * One JSON object on stdout.  The addresses are userI@[127.0.0.50].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <lmdb.h>

#include <callout/callout.h>

#include "cache.h"
#include "cache_open.h"
#include "record.h"

#define DOMAIN "[127.0.0.50]"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void log_stderr(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "cache-bench: %s\n", msg);
}

static void make_rec(co_rec *r, unsigned long i)
{
	memset(r, 0, sizeof(*r));
	r->kind = CO_REC_ADDRESS;
	r->verdict = CALLOUT_VALID;
	r->reason = CALLOUT_R_ACCEPTED;
	r->stage = CALLOUT_STAGE_RCPT;
	r->code = 250;
	strcpy(r->domain, DOMAIN);
	strcpy(r->enhanced, "2.1.5");
	strcpy(r->text, "Ok");
	strcpy(r->mx, "127.0.0.50");
	strcpy(r->ip, "127.0.0.50");
	r->probed = (int64_t)time(NULL);
	r->expires = r->probed + 7 * 86400;
	snprintf(r->address, sizeof(r->address), "user%lu@" DOMAIN, i);
}

static int fill(const char *spec, unsigned long n)
{
	co_cache_conf conf = {.strict = true, .log = log_stderr};
	co_cache *c;
	char err[256], key[CO_REC_KEY_MAX];
	co_rec r;
	unsigned long failed = 0;

	if (co_cache_open(spec, &conf, &c, err, sizeof(err)) < 0 || !c) {
		fprintf(stderr, "cache-bench: %s\n", err);
		return 1;
	}
	double t0 = now_s();
	for (unsigned long i = 0; i < n; i++) {
		make_rec(&r, i);
		co_rec_key_of(&r, key, sizeof(key));
		if (c->ops->put(c, key, &r, 7 * 86400) < 0)
			failed++;
	}
	double secs = now_s() - t0;
	co_cache_info info = {0};
	c->ops->info(c, &info);
	printf("{\"mode\":\"fill\",\"backend\":\"%s\",\"n\":%lu,\"failed\":%lu,\"seconds\":%.3f,"
	       "\"per_second\":%.0f,\"bytes_used\":%llu,\"bytes_per_entry\":%.1f}\n",
	       info.backend, n, failed, secs, (double)n / secs, info.bytes_used,
	       n ? (double)info.bytes_used / (double)n : 0.0);
	co_cache_free(c);
	return failed ? 1 : 0;
}

static int bulk(const char *path, unsigned long n)
{
	MDB_env *env;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_stat st;
	MDB_envinfo info;
	co_rec r;
	char key[CO_REC_KEY_MAX];
	uint8_t val[CO_REC_ENCODED_MAX];
	/* A stride coprime with n scatters the keys like real traffic. */
	unsigned long stride = 1000003ul % (n ? n : 1), batch = 10000;
	int rc;

	while (n > 1 && (stride == 0 || n % stride == 0 || stride % 2 == 0))
		stride++;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, 4ul << 30)) ||
	    (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOSYNC, 0644))) {
		fprintf(stderr, "cache-bench: %s: %s\n", path, mdb_strerror(rc));
		return 1;
	}
	double t0 = now_s();
	for (unsigned long i = 0; i < n && !rc; i++) {
		if (i % batch == 0) {
			if (txn && (rc = mdb_txn_commit(txn)))
				break;
			if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) ||
			    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)))
				break;
		}
		make_rec(&r, (i * stride) % n);
		MDB_val k = {co_rec_key_of(&r, key, sizeof(key)), key};
		MDB_val v = {co_rec_encode(&r, val), val};
		rc = mdb_put(txn, dbi, &k, &v, 0);
	}
	if (!rc && txn)
		rc = mdb_txn_commit(txn);
	if (rc) {
		fprintf(stderr, "cache-bench: %s\n", mdb_strerror(rc));
		mdb_env_close(env);
		return 1;
	}
	mdb_env_sync(env, 1);
	double secs = now_s() - t0;
	mdb_env_stat(env, &st);
	mdb_env_info(env, &info);
	unsigned long long used = (unsigned long long)(info.me_last_pgno + 1) * st.ms_psize;
	printf(
	    "{\"mode\":\"bulk\",\"backend\":\"lmdb\",\"n\":%lu,\"seconds\":%.3f,"
	    "\"bytes_used\":%llu,\"bytes_per_entry\":%.1f,\"value_bytes\":%zu,\"key_bytes\":%zu}\n",
	    n, secs, used, n ? (double)used / (double)n : 0.0, co_rec_encode(&r, val),
	    co_rec_key_of(&r, key, sizeof(key)));
	mdb_env_close(env);
	return 0;
}

typedef struct lookup_run {
	callout_ctx *ctx;
	unsigned long n, started, done, cached, fill_n;
	int failed;
} lookup_run;

static void start_one(lookup_run *lr);

static void on_result(void *arg, callout_status st, const callout_result *res)
{
	lookup_run *lr = arg;
	lr->done++;
	if (st == CALLOUT_OK && res->cached && res->verdict == CALLOUT_VALID)
		lr->cached++;
	if (lr->started < lr->n)
		start_one(lr);
}

static void start_one(lookup_run *lr)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "user%lu@" DOMAIN, lr->started % lr->fill_n);
	lr->started++;
	if (callout_verify(lr->ctx, addr, NULL, on_result, lr, NULL) != CALLOUT_OK)
		lr->failed = 1;
}

static int lookup(const char *spec, unsigned long n, unsigned long conc, unsigned long fill_n)
{
	callout_options o;
	lookup_run lr = {.n = n, .fill_n = fill_n ? fill_n : n};

	callout_options_init(&o);
	o.cache = spec;
	o.helo = "bench.test";
	o.flags |= CALLOUT_F_ALLOW_PRIVATE; /* the addresses are on loopback */
	o.log = log_stderr;
	if (callout_ctx_new(NULL, &o, &lr.ctx) != CALLOUT_OK) {
		fprintf(stderr, "cache-bench: cannot open %s\n", spec);
		return 1;
	}
	double t0 = now_s();
	while (lr.started < conc && lr.started < n)
		start_one(&lr);
	callout_ctx_run(lr.ctx);
	double secs = now_s() - t0;
	printf("{\"mode\":\"lookup\",\"spec\":\"%s\",\"n\":%lu,\"concurrency\":%lu,\"cached\":%lu,"
	       "\"seconds\":%.3f,\"per_second\":%.0f}\n",
	       strncmp(spec, "lmdb:", 5) == 0 ? "lmdb" : spec, n, conc, lr.cached, secs,
	       (double)n / secs);
	callout_ctx_free(lr.ctx);
	return lr.failed || lr.cached != n;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "bulk") == 0)
		return bulk(argv[2], strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], strtoul(argv[3], NULL, 10));
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "lookup") == 0)
		return lookup(argv[2], strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10),
		              argc == 6 ? strtoul(argv[5], NULL, 10) : 0);
	fprintf(stderr, "usage: cache-bench fill SPEC N | bulk PATH N | lookup SPEC N CONCURRENCY "
	                "[FILLED]\n");
	return 2;
}
