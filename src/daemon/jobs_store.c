/* The job store's front (jobs_store.h): the store a daemon uses, and the
 * calls passed on to it (jobs_store_int.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jobs_store_int.h"

cd_jstore *cd_jstore_open_for(const char *cache_spec, const char *state_dir, char *where,
                              size_t wlen, char *err, size_t errlen)
{
	char path[4200];

	if (cache_spec && strncmp(cache_spec, "redis://", 8) == 0)
		return cd_jstore_redis_open(cache_spec, where, wlen, err, errlen);
	snprintf(path, sizeof(path), "%s/jobs.lmdb", state_dir);
	if (wlen) {
		size_t n = strnlen(path, wlen - 1);

		memcpy(where, path, n);
		where[n] = '\0';
	}
	return cd_jstore_open(path, err, errlen);
}

void cd_jstore_close(cd_jstore *s)
{
	if (s)
		s->ops->close(s);
}

bool cd_jstore_shared(const cd_jstore *s)
{
	return s->ops->shared;
}

int cd_jstore_begin(cd_jstore *s, cd_jtxn **t)
{
	return s->ops->begin(s, t);
}

int cd_jstore_commit(cd_jtxn *t)
{
	return t->s->ops->commit(t);
}

void cd_jstore_abort(cd_jtxn *t)
{
	if (t)
		t->s->ops->abort(t);
}

int cd_jstore_put_meta(cd_jtxn *t, const char *id, const char *json, size_t len)
{
	return t->s->ops->put_meta(t, id, json, len);
}

int cd_jstore_put_input(cd_jtxn *t, const char *id, uint64_t idx, uint32_t line, const char *addr,
                        size_t len)
{
	return t->s->ops->put_input(t, id, idx, line, addr, len);
}

int cd_jstore_put_result(cd_jtxn *t, const char *id, uint64_t idx, const char *json, size_t len)
{
	return t->s->ops->put_result(t, id, idx, json, len);
}

int cd_jstore_purge(cd_jtxn *t, const char *id, size_t max, bool *gone)
{
	return t->s->ops->purge(t, id, max, gone);
}

int cd_jstore_claim(cd_jstore *s, const char *id)
{
	return s->ops->claim ? s->ops->claim(s, id) : 0;
}

int cd_jstore_renew(cd_jstore *s, const char *id)
{
	return s->ops->renew ? s->ops->renew(s, id) : 0;
}

void cd_jstore_release(cd_jstore *s, const char *id)
{
	if (s->ops->release)
		s->ops->release(s, id);
}

int cd_jstore_request_stop(cd_jstore *s, const char *id)
{
	return s->ops->request_stop ? s->ops->request_stop(s, id) : ENOTSUP;
}

int cd_jstore_get_meta(cd_jstore *s, const char *id, cd_jmeta_fn fn, void *arg)
{
	return s->ops->get_meta(s, id, fn, arg);
}

int cd_jstore_each_meta(cd_jstore *s, cd_jmeta_fn fn, void *arg)
{
	return s->ops->each_meta(s, fn, arg);
}

int cd_jstore_inputs(cd_jstore *s, const char *id, uint64_t from, cd_jinput *out, size_t max,
                     size_t *n, uint64_t *next)
{
	return s->ops->inputs(s, id, from, out, max, n, next);
}

int cd_jstore_results(cd_jstore *s, const char *id, uint64_t from, size_t limit, cd_jresult_fn fn,
                      void *arg, uint64_t *next, bool *more)
{
	return s->ops->results(s, id, from, limit, fn, arg, next, more);
}
