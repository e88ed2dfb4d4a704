/* Unit tests for src/lib/cache_lmdb.c: the LMDB cache backend, its use by
 * several processes at once, and the faults that must not become results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <callout/callout.h>

#include "cache.h"
#include "cache_lmdb.h"

#define T0     1700000000
#define NOBODY 65534

typedef struct fixture {
	char dir[64];   /* mkdtemp */
	char path[128]; /* dir/db/sub/cache.mdb: the parents do not exist yet */
	int64_t now;
	int logs;
	char last[512];
	co_cache_conf conf;
} fixture;

static int64_t fake_now(void *arg)
{
	return ((fixture *)arg)->now;
}

static void count_log(void *arg, const char *msg)
{
	fixture *f = arg;
	f->logs++;
	snprintf(f->last, sizeof(f->last), "%s", msg);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/co-lmdb-test-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/db/sub/cache.mdb", f->dir);
	f->now = T0;
	f->conf.log = count_log;
	f->conf.log_arg = f;
	f->conf.now = fake_now;
	f->conf.now_arg = f;
	*state = f;
	return 0;
}

static int remove_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int teardown(void **state)
{
	fixture *f = *state;
	nftw(f->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static co_cache *open_ok(fixture *f)
{
	char err[256] = "";
	co_cache *c = co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err));
	if (!c)
		print_error("open %s: %s\n", f->path, err);
	assert_non_null(c);
	return c;
}

/* An address record with every field set. */
static co_rec make_rec(const char *domain, const char *local, int64_t expires)
{
	co_rec r;
	memset(&r, 0, sizeof(r));
	r.kind = CO_REC_ADDRESS;
	r.verdict = CALLOUT_VALID;
	r.reason = CALLOUT_R_ACCEPTED;
	r.stage = CALLOUT_STAGE_RCPT;
	r.flags = CO_REC_F_CATCH_ALL | CO_REC_F_TLS;
	r.code = 250;
	r.probed = expires - 3600;
	r.expires = expires;
	snprintf(r.domain, sizeof(r.domain), "%s", domain);
	snprintf(r.address, sizeof(r.address), "%s@%s", local, domain);
	snprintf(r.sender, sizeof(r.sender), "bounce@sender.example");
	snprintf(r.enhanced, sizeof(r.enhanced), "2.1.5");
	snprintf(r.text, sizeof(r.text), "Recipient <%s@%s> OK", local, domain);
	snprintf(r.mx, sizeof(r.mx), "mx1.%s", domain);
	snprintf(r.ip, sizeof(r.ip), "2001:db8::25");
	return r;
}

static void key_of(const co_rec *r, char *key, size_t len)
{
	/* keyed as verified with <> so the prefix tests read simply */
	size_t n = co_rec_key(r->kind, r->domain, r->address, NULL, key, len);
	assert_true(n > 0);
}

static void assert_rec_equal(const co_rec *a, const co_rec *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->verdict, b->verdict);
	assert_int_equal(a->reason, b->reason);
	assert_int_equal(a->stage, b->stage);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->code, b->code);
	assert_true(a->probed == b->probed);
	assert_true(a->expires == b->expires);
	assert_string_equal(a->domain, b->domain);
	assert_string_equal(a->address, b->address);
	assert_string_equal(a->sender, b->sender);
	assert_string_equal(a->enhanced, b->enhanced);
	assert_string_equal(a->text, b->text);
	assert_string_equal(a->mx, b->mx);
	assert_string_equal(a->ip, b->ip);
}

/* Put a record under "a:DOMAIN:LOCAL@DOMAIN"; the key goes to key. */
static int put_rec(co_cache *c, const char *domain, const char *local, int64_t expires)
{
	char key[CO_REC_KEY_MAX];
	co_rec r = make_rec(domain, local, expires);
	key_of(&r, key, sizeof(key));
	return c->ops->put(c, key, &r, 3600);
}

/* get of one key: 1 found, 0 not found, -1 cache failed. */
static int get_one(co_cache *c, const char *key, co_rec *out)
{
	const char *keys[1] = {key};
	bool found = false;
	co_rec tmp;
	co_cache_req *req = NULL;
	int rc = c->ops->get(c, keys, 1, out ? out : &tmp, &found, NULL, NULL, &req);
	if (rc < 0) {
		if (found)
			return -2; /* a failed get must find nothing */
		return -1;
	}
	return rc == 1 ? found : -3;
}

typedef struct scan_log {
	size_t n, damaged, stop_after;
	char keys[300][CO_REC_KEY_MAX];
} scan_log;

static int scan_cb(void *arg, const char *key, size_t keylen, const co_rec *rec)
{
	scan_log *s = arg;
	if (!rec)
		s->damaged++;
	if (s->n < sizeof(s->keys) / sizeof(s->keys[0])) {
		memcpy(s->keys[s->n], key, keylen);
		s->keys[s->n][keylen] = '\0';
	}
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

static scan_log *scan(co_cache *c, const char *prefix, size_t stop_after, int want_rc)
{
	scan_log *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->stop_after = stop_after;
	assert_int_equal(c->ops->scan(c, prefix, scan_cb, s), want_rc);
	return s;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* The whole file into buf; its length. */
static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	size_t n = fread(buf, 1, cap, fp);
	fclose(fp);
	return n;
}

static void make_parents(fixture *f)
{
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/db", f->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/db/sub", f->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
}

/* Store raw bytes under key with LMDB itself (no cache object may have
 * the file open in this process meanwhile). */
static void raw_put(const char *path, const char *key, const void *val, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
	MDB_val v = {.mv_size = len, .mv_data = (void *)val};

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 1 << 20), 0); /* not the file's */
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* ---- working store ------------------------------------------------------ */

static void test_round_trip(void **state)
{
	fixture *f = *state;
	char key[CO_REC_KEY_MAX];
	co_rec r = make_rec("example.com", "alice", T0 + 86400), out;
	co_cache_info info;

	co_cache *c = open_ok(f); /* creates dir/db/sub */
	assert_string_equal(c->ops->name, "lmdb");
	assert_null(c->ops->claim);
	assert_null(c->ops->release);
	key_of(&r, key, sizeof(key));
	assert_int_equal(get_one(c, key, &out), 0);
	assert_int_equal(c->ops->put(c, key, &r, 3600), 0);
	memset(&out, 0x5a, sizeof(out));
	assert_int_equal(get_one(c, key, &out), 1);
	assert_rec_equal(&out, &r);

	/* overwrite */
	r.verdict = CALLOUT_TEMPFAIL;
	r.code = 451;
	snprintf(r.enhanced, sizeof(r.enhanced), "4.7.1");
	assert_int_equal(c->ops->put(c, key, &r, 3600), 0);
	assert_int_equal(get_one(c, key, &out), 1);
	assert_rec_equal(&out, &r);

	/* another kind: a domain fact */
	co_rec d;
	memset(&d, 0, sizeof(d));
	d.kind = CO_REC_CATCH_ALL;
	d.flags = CO_REC_F_YES;
	d.expires = T0 + 10;
	snprintf(d.domain, sizeof(d.domain), "example.com");
	co_rec_key_of(&d, key, sizeof(key));
	assert_int_equal(c->ops->put(c, key, &d, 10), 0);
	assert_int_equal(get_one(c, key, &out), 1);
	assert_rec_equal(&out, &d);

	assert_int_equal(c->ops->info(c, &info), 0);
	assert_string_equal(info.backend, "lmdb");
	assert_true(info.bytes_used >= 3 * 4096);
	assert_true(info.bytes_limit >= (1ull << 30));
	assert_int_equal(f->logs, 0);
	assert_false(c->faulty);
	c->ops->cancel(c, NULL); /* a no-op */
	co_cache_free(c);

	/* durable: a new object reads it back */
	c = open_ok(f);
	assert_int_equal(get_one(c, key, &out), 1);
	assert_rec_equal(&out, &d);
	co_cache_free(c);
	co_cache_free(NULL);
}

static void test_get_several(void **state)
{
	fixture *f = *state;
	const char *locals[6] = {"a", "b", "c", "d", "e", "f"};
	char keys[6][CO_REC_KEY_MAX];
	const char *kp[6];
	co_rec out[6];
	bool found[6];
	co_cache_req *req = NULL;

	co_cache *c = open_ok(f);
	for (int i = 0; i < 6; i++) {
		co_rec r = make_rec("several.example", locals[i], T0 + 100 + i);
		key_of(&r, keys[i], sizeof(keys[i]));
		kp[i] = keys[i];
		if (i % 2 == 0)
			assert_int_equal(c->ops->put(c, keys[i], &r, 60), 0);
	}
	memset(found, 1, sizeof(found));
	assert_int_equal(c->ops->get(c, kp, 6, out, found, NULL, NULL, &req), 1);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(found[i], i % 2 == 0);
		if (found[i]) {
			co_rec r = make_rec("several.example", locals[i], T0 + 100 + i);
			assert_rec_equal(&out[i], &r);
		}
	}
	/* keys LMDB cannot hold are never found, and not stored */
	char longkey[700];
	memset(longkey, 'x', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	memcpy(longkey, "a:long.example:", 15);
	co_rec r = make_rec("long.example", "x", T0 + 100);
	assert_int_equal(c->ops->put(c, longkey, &r, 60), -1);
	assert_int_equal(get_one(c, longkey, NULL), 0);
	assert_int_equal(c->ops->put(c, "", &r, 60), -1);
	assert_int_equal(get_one(c, "", NULL), 0);
	assert_int_equal(f->logs, 0); /* not a fault of the store */
	co_cache_free(c);
}

static void test_damaged_value(void **state)
{
	fixture *f = *state;
	static const uint8_t junk[] = "CO\x01 not really a record";

	co_cache *c = open_ok(f);
	assert_int_equal(put_rec(c, "damaged.example", "good", T0 + 100), 0);
	co_cache_free(c);
	raw_put(f->path, "a:damaged.example:bad@damaged.example", junk, sizeof(junk));
	raw_put(f->path, "a:damaged.example:empty@damaged.example", "", 0);

	c = open_ok(f);
	assert_int_equal(get_one(c, "a:damaged.example:good@damaged.example", NULL), 1);
	assert_int_equal(get_one(c, "a:damaged.example:bad@damaged.example", NULL), 0);
	assert_int_equal(get_one(c, "a:damaged.example:empty@damaged.example", NULL), 0);
	scan_log *s = scan(c, "a:damaged.example:", 0, 0);
	assert_int_equal(s->n, 3);
	assert_int_equal(s->damaged, 2);
	assert_string_equal(s->keys[0], "a:damaged.example:bad@damaged.example");
	free(s);
	/* a damaged record is simply replaced */
	co_rec r = make_rec("damaged.example", "bad", T0 + 100), out;
	assert_int_equal(c->ops->put(c, "a:damaged.example:bad@damaged.example", &r, 60), 0);
	assert_int_equal(get_one(c, "a:damaged.example:bad@damaged.example", &out), 1);
	assert_rec_equal(&out, &r);
	assert_int_equal(f->logs, 0);
	co_cache_free(c);
}

static void test_scan_prefix(void **state)
{
	fixture *f = *state;
	char key[CO_REC_KEY_MAX];

	co_cache *c = open_ok(f);
	assert_int_equal(put_rec(c, "example.com", "bob", T0 + 100), 0);
	assert_int_equal(put_rec(c, "example.com", "alice", T0 + 100), 0);
	assert_int_equal(put_rec(c, "example.com.au", "carol", T0 + 100), 0);
	assert_int_equal(put_rec(c, "example.co", "dave", T0 + 100), 0);
	assert_int_equal(put_rec(c, "axample.com", "erin", T0 + 100), 0);
	co_rec r = make_rec("example.com", "alice", T0 + 100);
	co_rec_key_of(&r, key, sizeof(key)); /* with the sender */
	assert_int_equal(c->ops->put(c, key, &r, 60), 0);
	co_rec d;
	memset(&d, 0, sizeof(d));
	d.kind = CO_REC_NO_MAIL;
	snprintf(d.domain, sizeof(d.domain), "example.com");
	co_rec_key_of(&d, key, sizeof(key));
	assert_int_equal(c->ops->put(c, key, &d, 60), 0);

	scan_log *s = scan(c, "a:example.com:", 0, 0);
	assert_int_equal(s->n, 3);
	assert_string_equal(s->keys[0], "a:example.com:alice@example.com");
	assert_string_equal(s->keys[1], "a:example.com:alice@example.com\tbounce@sender.example");
	assert_string_equal(s->keys[2], "a:example.com:bob@example.com");
	assert_int_equal(s->damaged, 0);
	free(s);

	s = scan(c, "a:example.com.au:", 0, 0);
	assert_int_equal(s->n, 1);
	free(s);
	s = scan(c, "a:example.co:", 0, 0);
	assert_int_equal(s->n, 1);
	assert_string_equal(s->keys[0], "a:example.co:dave@example.co");
	free(s);
	s = scan(c, "a:nothing.example:", 0, 0);
	assert_int_equal(s->n, 0);
	free(s);
	s = scan(c, "x:", 0, 0);
	assert_int_equal(s->n, 1);
	free(s);
	s = scan(c, "", 0, 0);
	assert_int_equal(s->n, 7);
	assert_string_equal(s->keys[0], "a:axample.com:erin@axample.com");
	assert_string_equal(s->keys[6], "x:example.com");
	free(s);
	s = scan(c, "", 2, 0); /* fn stops it */
	assert_int_equal(s->n, 2);
	free(s);
	co_cache_free(c);
}

/* Scans go in batches of transactions: nothing lost or repeated at the
 * seams, also when the records delivered are deleted meanwhile. */
static int delete_each(void *arg, const char *key, size_t keylen, const co_rec *rec)
{
	co_cache *c = arg;
	const char *keys[1] = {key};
	unsigned long n = 0;
	assert_non_null(rec);
	assert_int_equal(strlen(key), keylen);
	assert_int_equal(c->ops->del(c, keys, 1, &n), 0);
	assert_int_equal(n, 1);
	return 0;
}

static void test_scan_batches(void **state)
{
	fixture *f = *state;
	char local[32];

	co_cache *c = open_ok(f);
	for (int i = 0; i < 250; i++) {
		snprintf(local, sizeof(local), "user%03d", i);
		assert_int_equal(put_rec(c, "many.example", local, T0 + 100), 0);
	}
	assert_int_equal(put_rec(c, "many.example.net", "zz", T0 + 100), 0);
	scan_log *s = scan(c, "a:many.example:", 0, 0);
	assert_int_equal(s->n, 250);
	for (int i = 0; i < 250; i++) {
		snprintf(local, sizeof(local), "user%03d", i);
		char want[CO_REC_KEY_MAX];
		snprintf(want, sizeof(want), "a:many.example:%s@many.example", local);
		assert_string_equal(s->keys[i], want);
	}
	free(s);
	s = scan(c, "", 130, 0);
	assert_int_equal(s->n, 130);
	free(s);
	assert_int_equal(c->ops->scan(c, "a:many.example:", delete_each, c), 0);
	s = scan(c, "", 0, 0);
	assert_int_equal(s->n, 1);
	free(s);
	co_cache_free(c);
}

static void test_del(void **state)
{
	fixture *f = *state;
	const char *keys[5] = {
	    "a:del.example:a@del.example",
	    "a:del.example:b@del.example",
	    "a:del.example:missing@del.example",
	    "a:del.example:c@del.example",
	    "",
	};
	unsigned long n = 99;

	co_cache *c = open_ok(f);
	assert_int_equal(put_rec(c, "del.example", "a", T0 + 100), 0);
	assert_int_equal(put_rec(c, "del.example", "b", T0 + 100), 0);
	assert_int_equal(put_rec(c, "del.example", "c", T0 + 100), 0);
	assert_int_equal(put_rec(c, "del.example", "d", T0 + 100), 0);
	assert_int_equal(c->ops->del(c, keys, 5, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(c->ops->del(c, keys, 5, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(c->ops->del(c, keys, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(get_one(c, keys[0], NULL), 0);
	assert_int_equal(get_one(c, "a:del.example:d@del.example", NULL), 1);
	/* forget deletes a key, as a write; a missing one is no error. */
	assert_int_equal(c->ops->forget(c, "a:del.example:d@del.example"), 0);
	assert_int_equal(get_one(c, "a:del.example:d@del.example", NULL), 0);
	assert_int_equal(c->ops->forget(c, "a:del.example:d@del.example"), 0);
	co_cache_free(c);
}

/* Two objects of one process share the environment (LMDB allows one per
 * file and process); either may go first. */
static void test_two_objects(void **state)
{
	fixture *f = *state;

	co_cache *a = open_ok(f);
	co_cache *b = open_ok(f);
	assert_int_equal(put_rec(a, "two.example", "from-a", T0 + 100), 0);
	assert_int_equal(get_one(b, "a:two.example:from-a@two.example", NULL), 1);
	assert_int_equal(put_rec(b, "two.example", "from-b", T0 + 100), 0);
	assert_int_equal(get_one(a, "a:two.example:from-b@two.example", NULL), 1);
	co_cache_free(a);
	assert_int_equal(put_rec(b, "two.example", "after", T0 + 100), 0);
	a = open_ok(f);
	assert_int_equal(get_one(a, "a:two.example:after@two.example", NULL), 1);
	co_cache_free(b);
	co_cache_free(a);
}

/* Exit codes of children: 0 all went well, else the failed check. */
#define CHILD_CHECK(n, cond)                                                                       \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child: check %d failed: %s\n", n, #cond);                 \
			_exit(n);                                                                  \
		}                                                                                  \
	} while (0)

static int child_status(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		print_error("child killed by signal %d\n", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Another process (its own environment: the child does not use ours)
 * sees our writes and we see its writes, also once its writes went past
 * the size of our map. */
static void test_two_processes(void **state)
{
	fixture *f = *state;

	f->conf.max_bytes = 64 << 10;
	co_cache *c = open_ok(f);
	assert_int_equal(put_rec(c, "proc.example", "parent", T0 + 100), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		co_cache_conf conf = f->conf;
		char err[256], local[32];
		conf.max_bytes = 4 << 20; /* bigger than the parent's map */
		co_cache *k = co_cache_lmdb_new(f->path, &conf, err, sizeof(err));
		CHILD_CHECK(1, k != NULL);
		CHILD_CHECK(2, get_one(k, "a:proc.example:parent@proc.example", NULL) == 1);
		for (int i = 0; i < 1000; i++) {
			snprintf(local, sizeof(local), "child%04d", i);
			CHILD_CHECK(3, put_rec(k, "proc.example", local, T0 + 100) == 0);
		}
		CHILD_CHECK(4, !k->faulty);
		co_cache_free(k);
		co_cache_free(c); /* the parent's: left to the parent */
		_exit(0);
	}
	assert_int_equal(child_status(pid), 0);
	/* the map grew in the child: adopted here */
	assert_int_equal(get_one(c, "a:proc.example:child0999@proc.example", NULL), 1);
	assert_int_equal(put_rec(c, "proc.example", "parent2", T0 + 100), 0);
	co_cache_info info;
	assert_int_equal(c->ops->info(c, &info), 0);
	assert_true(info.bytes_limit >= 4 << 20);
	assert_true(info.bytes_used > 64 << 10);
	scan_log *s = scan(c, "a:proc.example:", 0, 0);
	assert_int_equal(s->n, 1002);
	free(s);
	assert_int_equal(f->logs, 0);
	co_cache_free(c);
}

/* ---- faults ------------------------------------------------------------- */

/* Every operation of a degraded object fails, finding nothing. */
static void assert_degraded(co_cache *c)
{
	const char *keys[2] = {"a:x.example:a@x.example", "c:x.example"};
	co_rec out[2];
	bool found[2] = {true, true};
	co_cache_req *req = NULL;
	unsigned long n = 7;
	co_cache_info info;

	assert_int_equal(c->ops->get(c, keys, 2, out, found, NULL, NULL, &req), -1);
	assert_false(found[0]);
	assert_false(found[1]);
	assert_int_equal(put_rec(c, "x.example", "a", T0 + 100), -1);
	assert_int_equal(c->ops->del(c, keys, 2, &n), -1);
	assert_int_equal(n, 0);
	scan_log *s = scan(c, "", 0, -1);
	assert_int_equal(s->n, 0);
	free(s);
	assert_int_equal(c->ops->info(c, &info), -1);
	assert_true(c->faulty);
}

static void test_junk_file(void **state)
{
	fixture *f = *state;
	uint8_t junk[20000], back[30000];
	char err[256] = "";

	srand(42);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	make_parents(f);
	write_file(f->path, junk, sizeof(junk));

	co_cache *c = co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(f->logs, 1);
	assert_non_null(strstr(f->last, "cache lmdb:"));
	assert_non_null(strstr(f->last, f->path));
	assert_non_null(strstr(f->last, "going on uncached"));
	assert_degraded(c);
	f->now += 11; /* tried again: the same fault, not reported again */
	assert_degraded(c);
	f->now += 3600;
	assert_degraded(c);
	assert_int_equal(f->logs, 1);
	co_cache_free(c);
	assert_int_equal(read_file(f->path, back, sizeof(back)), sizeof(junk));
	assert_memory_equal(back, junk, sizeof(junk));

	f->conf.strict = true;
	c = co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, f->path));
	assert_true(strlen(err) > strlen(f->path) + 8);
	assert_int_equal(f->logs, 1); /* strict: said in err, not logged */
	assert_int_equal(read_file(f->path, back, sizeof(back)), sizeof(junk));
	assert_memory_equal(back, junk, sizeof(junk));

	/* a short file of junk too (shorter than LMDB's header) */
	write_file(f->path, "hello\n", 6);
	c = co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err));
	assert_null(c);
	assert_int_equal(read_file(f->path, back, sizeof(back)), 6);
	assert_memory_equal(back, "hello\n", 6);
}

/* Degraded, then the cause goes away: back after the retry interval. */
static void test_recovers(void **state)
{
	fixture *f = *state;

	make_parents(f);
	write_file(f->path, "junk junk junk junk", 19);
	co_cache *c = open_ok(f);
	assert_int_equal(f->logs, 1);
	assert_degraded(c);
	assert_int_equal(unlink(f->path), 0); /* the administrator removes it */
	f->now += 5;
	assert_int_equal(put_rec(c, "back.example", "a", T0 + 100), -1); /* not yet */
	f->now += 5;
	assert_int_equal(put_rec(c, "back.example", "a", T0 + 100), 0);
	assert_false(c->faulty);
	assert_int_equal(f->logs, 2); /* "working again" */
	assert_int_equal(get_one(c, "a:back.example:a@back.example", NULL), 1);
	co_cache_free(c);
}

static void test_missing_dir(void **state)
{
	fixture *f = *state;
	char err[256] = "";

	/* a parent that is a file: the directory cannot be made */
	snprintf(f->path, sizeof(f->path), "%s/file/sub/cache.mdb", f->dir);
	char file[128];
	snprintf(file, sizeof(file), "%s/file", f->dir);
	write_file(file, "x", 1);
	co_cache *c = open_ok(f);
	assert_int_equal(f->logs, 1);
	assert_non_null(strstr(f->last, "directory"));
	assert_degraded(c);
	co_cache_free(c);
	f->conf.strict = true;
	assert_null(co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err)));
	assert_non_null(strstr(err, "directory"));
	/* the path is a directory */
	snprintf(f->path, sizeof(f->path), "%s", f->dir);
	assert_null(co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err)));
}

static void test_truncated(void **state)
{
	fixture *f = *state;
	char local[32], err[256] = "";
	struct stat st;

	co_cache *c = open_ok(f);
	for (int i = 0; i < 100; i++) {
		snprintf(local, sizeof(local), "user%03d", i);
		assert_int_equal(put_rec(c, "trunc.example", local, T0 + 100), 0);
	}
	co_cache_free(c);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size >= 6 * 4096);
	off_t half = st.st_size / 2;
	assert_int_equal(truncate(f->path, half), 0);

	c = open_ok(f);
	assert_int_equal(f->logs, 1);
	assert_non_null(strstr(f->last, "damaged"));
	assert_degraded(c);
	f->now += 60;
	assert_degraded(c);
	assert_int_equal(f->logs, 1);
	co_cache_free(c);
	f->conf.strict = true;
	assert_null(co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err)));
	assert_non_null(strstr(err, "damaged"));
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, half); /* left as it was */

	/* an empty file is a new database */
	assert_int_equal(truncate(f->path, 0), 0);
	c = co_cache_lmdb_new(f->path, &f->conf, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(put_rec(c, "trunc.example", "new", T0 + 100), 0);
	co_cache_free(c);
}

/* As nobody, in a child: the file and its lock are root's and 0644. */
static void readonly_child(fixture *f, bool strict)
{
	co_cache_conf conf = f->conf;
	char err[256] = "";
	unsigned long n = 0;
	const char *keys[1] = {"a:ro.example:r0@ro.example"};

	conf.strict = strict;
	f->logs = 0;
	CHILD_CHECK(10, setgid(NOBODY) == 0 && setuid(NOBODY) == 0);
	CHILD_CHECK(11, access(f->path, W_OK) < 0);
	co_cache *c = co_cache_lmdb_new(f->path, &conf, err, sizeof(err));
	CHILD_CHECK(12, c != NULL);
	CHILD_CHECK(13, get_one(c, "a:ro.example:r0@ro.example", NULL) == 1);
	CHILD_CHECK(14, get_one(c, "a:ro.example:r9@ro.example", NULL) == 1);
	CHILD_CHECK(15, get_one(c, "a:ro.example:zz@ro.example", NULL) == 0);
	CHILD_CHECK(16, f->logs == 0);
	CHILD_CHECK(17, put_rec(c, "ro.example", "new", T0 + 100) == -1);
	CHILD_CHECK(18, f->logs == 1 && strstr(f->last, "read-only") != NULL);
	CHILD_CHECK(19, put_rec(c, "ro.example", "new2", T0 + 100) == -1);
	CHILD_CHECK(20, c->ops->del(c, keys, 1, &n) == -1 && n == 0);
	f->now += 20; /* tries read-write again: still read-only, said once */
	CHILD_CHECK(21, put_rec(c, "ro.example", "new3", T0 + 100) == -1);
	CHILD_CHECK(22, get_one(c, "a:ro.example:r5@ro.example", NULL) == 1);
	CHILD_CHECK(23, f->logs == 1);
	scan_log s = {0};
	CHILD_CHECK(24, c->ops->scan(c, "a:ro.example:", scan_cb, &s) == 0 && s.n == 10);
	co_cache_info info;
	CHILD_CHECK(25, c->ops->info(c, &info) == 0 && info.bytes_used > 0);
	co_cache_free(c);
	_exit(0);
}

static void run_readonly(fixture *f, bool strict)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		readonly_child(f, strict);
	assert_int_equal(child_status(pid), 0);
}

static void test_read_only(void **state)
{
	fixture *f = *state;
	char local[32], dir[160], lock[160];

	if (geteuid() != 0) {
		skip(); /* needs to become another user */
		return;
	}
	co_cache *c = open_ok(f);
	for (int i = 0; i < 10; i++) {
		snprintf(local, sizeof(local), "r%d", i);
		assert_int_equal(put_rec(c, "ro.example", local, T0 + 100), 0);
	}
	co_cache_free(c);
	snprintf(lock, sizeof(lock), "%s-lock", f->path);
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(chmod(lock, 0644), 0);
	assert_int_equal(chmod(f->dir, 0755), 0); /* mkdtemp made it 0700 */
	snprintf(dir, sizeof(dir), "%s/db", f->dir);
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/db/sub", f->dir);
	assert_int_equal(chmod(dir, 0755), 0);

	run_readonly(f, false); /* the lock file is there but not writable */
	run_readonly(f, true);  /* strict: a readable store is an open store */
	assert_int_equal(unlink(lock), 0);
	run_readonly(f, false); /* and no lock file can be made */

	/* root still writes it */
	c = open_ok(f);
	assert_int_equal(put_rec(c, "ro.example", "root", T0 + 100), 0);
	co_cache_free(c);
}

/* A full map loses its expired and damaged records first. */
static void test_map_full(void **state)
{
	fixture *f = *state;
	char local[32];
	int i, stored;

	f->conf.max_bytes = 64 << 10;
	co_cache *c = open_ok(f);
	co_cache_info info;
	assert_int_equal(c->ops->info(c, &info), 0);
	assert_int_equal(info.bytes_limit, 64 << 10);

	/* Alternate short-lived and long-lived records until it is full. */
	for (i = 0; i < 100000; i++) {
		snprintf(local, sizeof(local), "user%05d", i);
		if (put_rec(c, "full.example", local, i % 2 ? T0 + 10 : T0 + 100000) < 0)
			break;
	}
	stored = i;
	assert_true(stored > 20 && stored < 100000);
	assert_int_equal(f->logs, 1);
	assert_non_null(strstr(f->last, "full"));
	assert_true(c->faulty);
	/* nothing expired yet: still full, said once (the same key: another
	 * one may go to a page with room) */
	snprintf(local, sizeof(local), "user%05d", stored);
	for (int j = 0; j < 5; j++)
		assert_int_equal(put_rec(c, "full.example", local, T0 + 100000), -1);
	assert_int_equal(f->logs, 1);
	/* reads still work and do not end the write fault */
	assert_int_equal(get_one(c, "a:full.example:user00000@full.example", NULL), 1);
	assert_true(c->faulty);

	f->now = T0 + 11; /* half of them have expired */
	assert_int_equal(put_rec(c, "full.example", local, T0 + 100000), -1);
	assert_int_equal(f->logs, 1);
	f->now = T0 + 60; /* and a minute since the last purge */
	assert_int_equal(put_rec(c, "full.example", local, T0 + 100000), 0);
	assert_false(c->faulty);
	assert_int_equal(f->logs, 2);
	char key[CO_REC_KEY_MAX];
	snprintf(key, sizeof(key), "a:full.example:%s@full.example", local);
	assert_int_equal(get_one(c, key, NULL), 1);
	for (i = 0; i < stored; i++) {
		snprintf(key, sizeof(key), "a:full.example:user%05d@full.example", i);
		assert_int_equal(get_one(c, key, NULL), i % 2 ? 0 : 1);
	}
	/* and room for more (what fits where depends on the pages: LMDB does
	 * not compact half-empty ones) */
	for (i = 0; i < 5; i++) {
		snprintf(local, sizeof(local), "again%05d", i);
		assert_int_equal(put_rec(c, "full.example", local, T0 + 100000), 0);
	}
	co_cache_free(c);
}

/* Damaged records go too, and with one more put than the map holds. */
static void test_map_full_damaged(void **state)
{
	fixture *f = *state;
	char local[32], key[CO_REC_KEY_MAX];
	static const uint8_t junk[300] = {'C', 'O'};
	int i;

	f->conf.max_bytes = 64 << 10;
	co_cache *c = open_ok(f);
	for (i = 0; i < 40; i++) {
		snprintf(local, sizeof(local), "keep%03d", i);
		assert_int_equal(put_rec(c, "dmg.example", local, T0 + 100000), 0);
	}
	co_cache_free(c);
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "a:dmg.example:junk%03d", i);
		raw_put(f->path, key, junk, sizeof(junk));
	}
	c = open_ok(f);
	for (i = 0; i < 100000; i++) {
		snprintf(local, sizeof(local), "new%05d", i);
		if (put_rec(c, "dmg.example", local, T0 + 100000) < 0)
			break;
	}
	/* the junk made room before it was full */
	scan_log *s = scan(c, "a:dmg.example:junk", 0, 0);
	assert_int_equal(s->n, 0);
	free(s);
	assert_int_equal(f->logs, 1);
	assert_int_equal(get_one(c, "a:dmg.example:keep039@dmg.example", NULL), 1);
	co_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_several, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_objects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_junk_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recovers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_full_damaged, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
