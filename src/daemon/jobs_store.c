/*
 * The jobs' LMDB file (jobs_store.h).  Keys of "in" and "out" are the
 * job's id followed by the index, big-endian, so a job's entries lie
 * together and in input order: paging is a cursor walk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "jobs_store.h"

/* A commit is on disk when it returns (no MDB_NOSYNC): the runner
 * commits a batch of results at a time, so this costs one sync a batch. */
#define ENV_FLAGS (MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD)
#define FILE_MODE 0640
#define KEY_LEN   (CD_JOB_ID_LEN + 8)

struct cd_jstore {
	MDB_env *env;
	MDB_dbi meta, in, out;
};

/* Addresses are kept CHUNK to a value (one B-tree entry for 256 of
 * them: a million addresses store in a fraction of the time and space),
 * each record: slot (index % CHUNK), be32 line, be16 length, the bytes. */
#define CHUNK     256
#define REC_HEAD  7
#define CHUNK_MAX (CHUNK * (REC_HEAD + CD_JOB_ADDR_MAX))

struct cd_jtxn {
	cd_jstore *s;
	MDB_txn *txn;
	/* the chunk being filled */
	char cid[CD_JOB_ID_LEN];
	uint64_t chunk;
	unsigned char *cbuf;
	size_t clen;
};

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

cd_jstore *cd_jstore_open(const char *path, char *err, size_t errlen)
{
	cd_jstore *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc;

	if (!s) {
		snprintf(err, errlen, "jobs store %s: out of memory", path);
		return NULL;
	}
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
		cd_jstore_close(s);
		return NULL;
	}
	if ((rc = mdb_txn_commit(txn))) {
		snprintf(err, errlen, "jobs store %s: %s", path, mdb_strerror(rc));
		cd_jstore_close(s);
		return NULL;
	}
	return s;
}

void cd_jstore_close(cd_jstore *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	free(s);
}

int cd_jstore_begin(cd_jstore *s, cd_jtxn **t)
{
	cd_jtxn *x = calloc(1, sizeof(*x));
	int rc;

	if (!x)
		return ENOMEM;
	x->s = s;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &x->txn))) {
		free(x);
		return err_of(rc);
	}
	*t = x;
	return 0;
}

/* Write the chunk being filled, if any. */
static int put_chunk(cd_jtxn *t)
{
	unsigned char key[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v = {t->clen, t->cbuf};

	if (!t->clen)
		return 0;
	key_of(key, t->cid, t->chunk);
	t->clen = 0;
	return err_of(mdb_put(t->txn, t->s->in, &k, &v, 0));
}

int cd_jstore_commit(cd_jtxn *t)
{
	int rc = put_chunk(t);

	if (rc)
		mdb_txn_abort(t->txn);
	else
		rc = err_of(mdb_txn_commit(t->txn));
	free(t->cbuf);
	free(t);
	return rc;
}

void cd_jstore_abort(cd_jtxn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t->cbuf);
	free(t);
}

int cd_jstore_put_meta(cd_jtxn *t, const char *id, const char *json, size_t len)
{
	MDB_val k = {CD_JOB_ID_LEN, (void *)id}, v = {len, (void *)json};

	return err_of(mdb_put(t->txn, t->s->meta, &k, &v, 0));
}

int cd_jstore_put_input(cd_jtxn *t, const char *id, uint64_t idx, uint32_t line, const char *addr,
                        size_t len)
{
	int rc;

	if (len > CD_JOB_ADDR_MAX)
		return EINVAL;
	if (!t->cbuf && !(t->cbuf = malloc(CHUNK_MAX)))
		return ENOMEM;
	if (t->clen && (idx / CHUNK != t->chunk || memcmp(t->cid, id, CD_JOB_ID_LEN) != 0) &&
	    (rc = put_chunk(t)))
		return rc;
	memcpy(t->cid, id, CD_JOB_ID_LEN);
	t->chunk = idx / CHUNK;
	unsigned char *p = t->cbuf + t->clen;
	p[0] = (unsigned char)(idx % CHUNK);
	p[1] = (unsigned char)(line >> 24);
	p[2] = (unsigned char)(line >> 16);
	p[3] = (unsigned char)(line >> 8);
	p[4] = (unsigned char)line;
	p[5] = (unsigned char)(len >> 8);
	p[6] = (unsigned char)len;
	if (len)
		memcpy(p + REC_HEAD, addr, len);
	t->clen += REC_HEAD + len;
	return 0;
}

int cd_jstore_put_result(cd_jtxn *t, const char *id, uint64_t idx, const char *json, size_t len)
{
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

int cd_jstore_purge(cd_jtxn *t, const char *id, size_t max, bool *gone)
{
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
static int read_cursor(cd_jstore *s, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **c)
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

int cd_jstore_each_meta(cd_jstore *s,
                        int (*fn)(void *arg, const char *id, const char *json, size_t len),
                        void *arg)
{
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

int cd_jstore_inputs(cd_jstore *s, const char *id, uint64_t from, cd_jinput *out, size_t max,
                     size_t *n, uint64_t *next)
{
	unsigned char key[KEY_LEN], rkey[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v, r, rk = {KEY_LEN, rkey};
	MDB_txn *txn;
	MDB_cursor *c;
	int rc;

	*n = 0;
	*next = from;
	if ((rc = read_cursor(s, s->in, &txn, &c)))
		return rc;
	key_of(key, id, from / CHUNK);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max && same_job(&k, id);
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *p = v.mv_data, *end = p + v.mv_size;
		uint64_t base = idx_of(&k) * CHUNK;

		while (end - p >= REC_HEAD && *n < max) {
			uint64_t idx = base + p[0];
			size_t len = (size_t)p[5] << 8 | p[6];
			cd_jinput *in = &out[*n];

			if ((size_t)(end - p) - REC_HEAD < len || len > CD_JOB_ADDR_MAX)
				break; /* not ours: the rest of the chunk is skipped */
			if (idx >= from) {
				*next = idx + 1;
				key_of(rkey, id, idx);
				/* answered before a restart: not again */
				if (mdb_get(txn, s->out, &rk, &r) != 0) {
					in->idx = idx;
					in->line = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
					           (uint32_t)p[3] << 8 | p[4];
					in->len = len;
					memcpy(in->addr, p + REC_HEAD, len);
					(*n)++;
				}
			}
			p += REC_HEAD + len;
		}
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : err_of(rc);
}

int cd_jstore_results(cd_jstore *s, const char *id, uint64_t from, size_t limit,
                      int (*fn)(void *arg, uint64_t idx, const char *json, size_t len), void *arg,
                      uint64_t *next, bool *more)
{
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
