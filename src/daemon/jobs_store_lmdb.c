/*
 * The jobs' LMDB file (jobs_store.h), one node's: three named databases,
 *
 *   meta  ID            -> the job's record
 *   in    ID . be64(c)  -> the addresses c*256 to c*256+255 (jobs_chunk.h)
 *   out   ID . be64(i)  -> the i-th result
 *  Keys of "in" and "out" are the
 * job's id followed by the index, big-endian, so a job's entries lie
 * together and in input order: paging is a cursor walk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "jobs_chunk.h"
#include "jobs_store_int.h"

/* A commit is on disk when it returns (no MDB_NOSYNC): the runner
 * commits a batch of results at a time, so this costs one sync a batch. */
#define ENV_FLAGS (MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD)
#define FILE_MODE 0640
#define KEY_LEN   (CD_JOB_ID_LEN + 8)

typedef struct lstore {
	cd_jstore base;
	MDB_env *env;
	MDB_dbi meta, in, out;
} lstore;

typedef struct ltxn {
	cd_jtxn base;
	lstore *s;
	MDB_txn *txn;
	cd_jchunk_fill fill;
} ltxn;

static const cd_jstore_ops lmdb_ops;

static int err_of(int rc)
{
	return rc == 0              ? 0
	       : rc == MDB_NOTFOUND ? ENOENT
	       : rc == MDB_KEYEXIST ? EEXIST
	       : rc > 0             ? rc
	                            : EIO;
}

static void key_of(unsigned char *k, const char *id, uint64_t idx)
{
	memcpy(k, id, CD_JOB_ID_LEN);
	for (int i = 0; i < 8; i++)
		k[CD_JOB_ID_LEN + i] = (unsigned char)(idx >> (56 - 8 * i));
}

static uint64_t idx_of(const MDB_val *k)
{
	const unsigned char *p = (const unsigned char *)k->mv_data + CD_JOB_ID_LEN;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static bool same_job(const MDB_val *k, const char *id)
{
	return k->mv_size == KEY_LEN && memcmp(k->mv_data, id, CD_JOB_ID_LEN) == 0;
}

static void lmdb_close(cd_jstore *base)
{
	lstore *s = (lstore *)base;

	if (s->env)
		mdb_env_close(s->env);
	free(s);
}

cd_jstore *cd_jstore_open(const char *path, char *err, size_t errlen)
{
	lstore *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc;

	if (!s) {
		snprintf(err, errlen, "jobs store %s: out of memory", path);
		return NULL;
	}
	s->base.ops = &lmdb_ops;
	if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 3)) ||
	    (rc = mdb_env_set_mapsize(s->env, CD_JOBS_STORE_MAP)) ||
	    (rc = mdb_env_open(s->env, path, ENV_FLAGS, FILE_MODE)) ||
	    (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) ||
	    (rc = mdb_dbi_open(txn, "in", MDB_CREATE, &s->in)) ||
	    (rc = mdb_dbi_open(txn, "out", MDB_CREATE, &s->out))) {
		snprintf(err, errlen, "jobs store %s: %s", path, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		lmdb_close(&s->base);
		return NULL;
	}
	if ((rc = mdb_txn_commit(txn))) {
		snprintf(err, errlen, "jobs store %s: %s", path, mdb_strerror(rc));
		lmdb_close(&s->base);
		return NULL;
	}
	return &s->base;
}

static int lmdb_begin(cd_jstore *base, cd_jtxn **t)
{
	ltxn *x = calloc(1, sizeof(*x));
	int rc;

	if (!x)
		return ENOMEM;
	x->base.s = base;
	x->s = (lstore *)base;
	if ((rc = mdb_txn_begin(x->s->env, NULL, 0, &x->txn))) {
		free(x);
		return err_of(rc);
	}
	*t = &x->base;
	return 0;
}

/* Write the chunk being filled, if any. */
static int put_chunk(void *arg)
{
	ltxn *t = arg;
	unsigned char key[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v = {t->fill.len, t->fill.buf};

	if (!t->fill.len)
		return 0;
	key_of(key, t->fill.id, t->fill.chunk);
	t->fill.len = 0;
	return err_of(mdb_put(t->txn, t->s->in, &k, &v, 0));
}

static void lmdb_abort(cd_jtxn *base)
{
	ltxn *t = (ltxn *)base;

	mdb_txn_abort(t->txn);
	free(t->fill.buf);
	free(t);
}

static int lmdb_commit(cd_jtxn *base)
{
	ltxn *t = (ltxn *)base;
	int rc = put_chunk(t);

	if (rc) {
		lmdb_abort(base);
		return rc;
	}
	rc = err_of(mdb_txn_commit(t->txn));
	free(t->fill.buf);
	free(t);
	return rc;
}

static int lmdb_put_meta(cd_jtxn *base, const char *id, const char *json, size_t len)
{
	ltxn *t = (ltxn *)base;
	MDB_val k = {CD_JOB_ID_LEN, (void *)id}, v = {len, (void *)json};

	return err_of(mdb_put(t->txn, t->s->meta, &k, &v, 0));
}

static int lmdb_put_input(cd_jtxn *base, const char *id, uint64_t idx, uint32_t line,
                          const char *addr, size_t len)
{
	ltxn *t = (ltxn *)base;

	return cd_jchunk_add(&t->fill, id, idx, line, addr, len, put_chunk, t);
}

static int lmdb_put_result(cd_jtxn *base, const char *id, uint64_t idx, const char *json,
                           size_t len)
{
	ltxn *t = (ltxn *)base;
	unsigned char key[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v = {len, (void *)json};

	key_of(key, id, idx);
	return err_of(mdb_put(t->txn, t->s->out, &k, &v, MDB_NOOVERWRITE));
}

/* Delete up to *left of the job's entries in dbi. */
static int purge_dbi(MDB_txn *txn, MDB_dbi dbi, const char *id, size_t *left)
{
	unsigned char key[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v;
	MDB_cursor *c;
	int rc;

	key_of(key, id, 0);
	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return err_of(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && *left && same_job(&k, id)) {
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		(*left)--;
		rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
		if (rc == EINVAL || rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : err_of(rc);
}

static int lmdb_purge(cd_jtxn *base, const char *id, size_t max, bool *gone)
{
	ltxn *t = (ltxn *)base;
	size_t left = max;
	int rc;

	*gone = false;
	if ((rc = purge_dbi(t->txn, t->s->in, id, &left)) ||
	    (rc = purge_dbi(t->txn, t->s->out, id, &left)))
		return rc;
	if (left == 0)
		return 0;
	MDB_val k = {CD_JOB_ID_LEN, (void *)id};
	rc = mdb_del(t->txn, t->s->meta, &k, NULL);
	*gone = true;
	return rc == MDB_NOTFOUND ? 0 : err_of(rc);
}

/* A read transaction and a cursor on dbi. */
static int read_cursor(lstore *s, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **c)
{
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn)))
		return err_of(rc);
	if ((rc = mdb_cursor_open(*txn, dbi, c))) {
		mdb_txn_abort(*txn);
		return err_of(rc);
	}
	return 0;
}

static int lmdb_get_meta(cd_jstore *base, const char *id, cd_jmeta_fn fn, void *arg)
{
	lstore *s = (lstore *)base;
	MDB_val k = {CD_JOB_ID_LEN, (void *)id}, v;
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)))
		return err_of(rc);
	if ((rc = err_of(mdb_get(txn, s->meta, &k, &v))) == 0)
		fn(arg, id, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	return rc;
}

static int lmdb_each_meta(cd_jstore *base, cd_jmeta_fn fn, void *arg)
{
	lstore *s = (lstore *)base;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = read_cursor(s, s->meta, &txn, &c)))
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char id[CD_JOB_ID_LEN + 1];

		if (k.mv_size != CD_JOB_ID_LEN)
			continue;
		memcpy(id, k.mv_data, CD_JOB_ID_LEN);
		id[CD_JOB_ID_LEN] = '\0';
		if (fn(arg, id, v.mv_data, v.mv_size))
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : err_of(rc);
}

static int lmdb_inputs(cd_jstore *base, const char *id, uint64_t from, cd_jinput *out, size_t max,
                       size_t *n, uint64_t *next)
{
	lstore *s = (lstore *)base;
	unsigned char key[KEY_LEN], rkey[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v, r, rk = {KEY_LEN, rkey};
	MDB_txn *txn;
	MDB_cursor *c;
	int rc;

	*n = 0;
	*next = from;
	if ((rc = read_cursor(s, s->in, &txn, &c)))
		return rc;
	key_of(key, id, from / CD_JCHUNK);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max && same_job(&k, id);
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *p = v.mv_data, *end = p + v.mv_size;

		while (*n < max && cd_jchunk_next(&p, end, idx_of(&k), &out[*n])) {
			uint64_t idx = out[*n].idx;

			if (idx < from)
				continue;
			*next = idx + 1;
			key_of(rkey, id, idx);
			/* answered before a restart: not again */
			if (mdb_get(txn, s->out, &rk, &r) != 0)
				(*n)++;
		}
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : err_of(rc);
}

static int lmdb_results(cd_jstore *base, const char *id, uint64_t from, size_t limit,
                        cd_jresult_fn fn, void *arg, uint64_t *next, bool *more)
{
	lstore *s = (lstore *)base;
	unsigned char key[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v;
	MDB_txn *txn;
	MDB_cursor *c;
	size_t n = 0;
	int rc, err = 0;

	*next = from;
	*more = false;
	if ((rc = read_cursor(s, s->out, &txn, &c)))
		return rc;
	key_of(key, id, from);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && same_job(&k, id);
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (n == limit) {
			*more = true;
			break;
		}
		if ((err = fn(arg, idx_of(&k), v.mv_data, v.mv_size)))
			break;
		*next = idx_of(&k) + 1;
		n++;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return err ? err : rc == MDB_NOTFOUND || rc == 0 ? 0 : err_of(rc);
}

static const cd_jstore_ops lmdb_ops = {
    .shared = false,
    .close = lmdb_close,
    .begin = lmdb_begin,
    .commit = lmdb_commit,
    .abort = lmdb_abort,
    .put_meta = lmdb_put_meta,
    .put_input = lmdb_put_input,
    .put_result = lmdb_put_result,
    .purge = lmdb_purge,
    .get_meta = lmdb_get_meta,
    .each_meta = lmdb_each_meta,
    .inputs = lmdb_inputs,
    .results = lmdb_results,
};
