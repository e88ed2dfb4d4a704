/* calloutd's bulk job store (src/daemon/jobs_store.c) on a real LMDB
 * file: records, inputs read back past the answered ones, results paged
 * in input order, jobs apart, purging in batches, a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs_store.h"

static const char A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static char dir[64], path[96];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_jobs_store.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/jobs.lmdb", dir);
	return 0;
}

static int teardown(void **state)
{
	char lock[128];
	(void)state;
	snprintf(lock, sizeof(lock), "%s-lock", path);
	unlink(path);
	unlink(lock);
	rmdir(dir);
	return 0;
}

static int count_meta(void *arg, const char *id, const char *json, size_t len)
{
	(void)id;
	(void)json;
	(void)len;
	(*(int *)arg)++;
	return 0;
}

struct seen {
	uint64_t idx[64];
	size_t n;
};

static int collect(void *arg, uint64_t idx, const char *json, size_t len)
{
	struct seen *s = arg;
	(void)json;
	(void)len;
	s->idx[s->n++] = idx;
	return 0;
}

static void put_job(cd_jstore *s, const char *id, unsigned n)
{
	cd_jtxn *t;
	char addr[32];

	assert_int_equal(cd_jstore_begin(s, &t), 0);
	for (unsigned i = 0; i < n; i++) {
		int len = snprintf(addr, sizeof(addr), "u%u@example.org", i);
		assert_int_equal(cd_jstore_put_input(t, id, i, i + 2, addr, (size_t)len), 0);
	}
	assert_int_equal(cd_jstore_put_meta(t, id, "{}", 2), 0);
	assert_int_equal(cd_jstore_commit(t), 0);
}

static void test_store(void **state)
{
	char err[256];
	cd_jstore *s = cd_jstore_open(path, err, sizeof(err));
	cd_jinput in[8];
	cd_jtxn *t;
	size_t n;
	uint64_t next;
	bool more;
	struct seen seen = {{0}, 0};
	int metas = 0;
	(void)state;

	assert_non_null(s);
	put_job(s, A, 20);
	put_job(s, B, 5);
	/* results for 0, 1 and 5 of A; a second one for 1 is refused */
	assert_int_equal(cd_jstore_begin(s, &t), 0);
	assert_int_equal(cd_jstore_put_result(t, A, 0, "{\"r\":0}", 7), 0);
	assert_int_equal(cd_jstore_put_result(t, A, 1, "{\"r\":1}", 7), 0);
	assert_int_equal(cd_jstore_put_result(t, A, 5, "{\"r\":5}", 7), 0);
	assert_int_equal(cd_jstore_put_result(t, A, 1, "{\"r\":9}", 7), EEXIST);
	assert_int_equal(cd_jstore_commit(t), 0);
	cd_jstore_close(s);

	/* reopened: what has no result, in order, from the start */
	assert_non_null(s = cd_jstore_open(path, err, sizeof(err)));
	assert_int_equal(cd_jstore_inputs(s, A, 0, in, 4, &n, &next), 0);
	assert_int_equal(n, 4);
	assert_int_equal(in[0].idx, 2);
	assert_int_equal(in[0].line, 4);
	assert_memory_equal(in[0].addr, "u2@example.org", in[0].len);
	assert_int_equal(in[3].idx, 6); /* 5 skipped */
	assert_int_equal(next, 7);
	assert_int_equal(cd_jstore_inputs(s, A, 18, in, 8, &n, &next), 0);
	assert_int_equal(n, 2); /* not into B's */
	assert_int_equal(cd_jstore_inputs(s, A, 20, in, 8, &n, &next), 0);
	assert_int_equal(n, 0);

	/* results paged */
	assert_int_equal(cd_jstore_results(s, A, 0, 2, collect, &seen, &next, &more), 0);
	assert_int_equal(seen.n, 2);
	assert_true(more);
	assert_int_equal(next, 2);
	assert_int_equal(cd_jstore_results(s, A, next, 2, collect, &seen, &next, &more), 0);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.idx[2], 5);
	assert_false(more);
	seen.n = 0;
	assert_int_equal(cd_jstore_results(s, B, 0, 10, collect, &seen, &next, &more), 0);
	assert_int_equal(seen.n, 0);

	/* purged 2 entries (a chunk of 256 addresses, or a result) at a time;
	 * B stays */
	bool gone = false;
	unsigned rounds = 0;
	while (!gone) {
		assert_int_equal(cd_jstore_begin(s, &t), 0);
		assert_int_equal(cd_jstore_purge(t, A, 2, &gone), 0);
		assert_int_equal(cd_jstore_commit(t), 0);
		rounds++;
	}
	assert_int_equal(rounds, 3); /* 1 chunk and 3 results, then the record */
	assert_int_equal(cd_jstore_each_meta(s, count_meta, &metas), 0);
	assert_int_equal(metas, 1);
	assert_int_equal(cd_jstore_inputs(s, B, 0, in, 8, &n, &next), 0);
	assert_int_equal(n, 5);
	assert_int_equal(cd_jstore_inputs(s, A, 0, in, 8, &n, &next), 0);
	assert_int_equal(n, 0);
	cd_jstore_close(s);
}

/* Across the 256-address chunks: order, lines, resuming mid-chunk. */
static void test_chunks(void **state)
{
	char err[256];
	static const char C[] = "cccccccccccccccccccccccccccccccc";
	cd_jstore *s = cd_jstore_open(path, err, sizeof(err));
	cd_jinput in[32];
	cd_jtxn *t;
	size_t n;
	uint64_t next;
	(void)state;

	assert_non_null(s);
	put_job(s, C, 600);
	assert_int_equal(cd_jstore_begin(s, &t), 0);
	assert_int_equal(cd_jstore_put_result(t, C, 256, "{}", 2), 0);
	assert_int_equal(cd_jstore_commit(t), 0);
	assert_int_equal(cd_jstore_inputs(s, C, 250, in, 20, &n, &next), 0);
	assert_int_equal(n, 20);
	assert_int_equal(in[0].idx, 250);
	assert_int_equal(in[5].idx, 255);
	assert_int_equal(in[6].idx, 257); /* 256 answered */
	assert_int_equal(in[6].line, 259);
	assert_memory_equal(in[6].addr, "u257@example.org", in[6].len);
	assert_int_equal(next, 271);
	assert_int_equal(cd_jstore_inputs(s, C, 590, in, 32, &n, &next), 0);
	assert_int_equal(n, 10);
	assert_int_equal(in[9].idx, 599);
	assert_int_equal(next, 600);
	cd_jstore_close(s);
}

static void test_limits(void **state)
{
	char err[256], big[CD_JOB_ADDR_MAX + 1];
	cd_jstore *s = cd_jstore_open(path, err, sizeof(err));
	cd_jtxn *t;
	(void)state;

	assert_non_null(s);
	memset(big, 'x', sizeof(big));
	assert_int_equal(cd_jstore_begin(s, &t), 0);
	assert_int_equal(cd_jstore_put_input(t, A, 0, 1, big, sizeof(big)), EINVAL);
	cd_jstore_abort(t);
	cd_jstore_close(s);
	/* not a directory: a clear error, no crash */
	assert_null(cd_jstore_open("/nonexistent/dir/jobs.lmdb", err, sizeof(err)));
	assert_non_null(strstr(err, "jobs store /nonexistent/dir/jobs.lmdb"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
