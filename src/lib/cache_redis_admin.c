/*
 * The Redis backend's administration (see cache_redis_int.h): a blocking
 * connection of its own, opened on first use, and over it the scan,
 * delete and info operations of the cache tools, and the lookups and
 * writes of a backend without a loop.  The engine's asynchronous side
 * never waits on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_redis_int.h"
#include "errf.h"

#define ADMIN_TIMEOUT_S 2
#define SCAN_COUNT      "1000"
#define DEL_BATCH       256

static bool sync_check(redisContext *rc, redisReply *rep, const char *what, char *why, size_t len)
{
	if (!rep) {
		snprintf(why, len, "%s", rc->errstr);
		return false;
	}
	bool ok = rep->type != REDIS_REPLY_ERROR;
	if (!ok)
		snprintf(why, len, "%s: %s", what, rep->str);
	freeReplyObject(rep);
	return ok;
}

redisContext *co_redis_sync_ctx(redis_cache *r, char *err, size_t errlen)
{
	struct timeval tv = {.tv_sec = ADMIN_TIMEOUT_S};
	char why[256], db[16];
	const char *argv[3];
	size_t lens[3];
	redisContext *rc;

	if (r->sync)
		return r->sync;
	rc = redisConnectWithTimeout(r->addr.host, (int)r->addr.port, tv);
	if (!rc || rc->err) {
		snprintf(why, sizeof(why), "%s", rc ? rc->errstr : "out of memory");
		goto fail;
	}
	if (redisSetTimeout(rc, tv) != REDIS_OK) {
		snprintf(why, sizeof(why), "cannot set timeouts");
		goto fail;
	}
	if (r->addr.password) {
		int argc = co_redis_addr_auth_argv(&r->addr, argv, lens);
		if (!sync_check(rc, redisCommandArgv(rc, argc, argv, lens), "AUTH", why,
		                sizeof(why)))
			goto fail;
	}
	if (r->addr.db) {
		snprintf(db, sizeof(db), "%u", r->addr.db);
		argv[0] = "SELECT", lens[0] = 6;
		argv[1] = db, lens[1] = strlen(db);
		if (!sync_check(rc, redisCommandArgv(rc, 2, argv, lens), "SELECT", why,
		                sizeof(why)))
			goto fail;
	}
	r->sync = rc;
	if (!r->evb)
		co_cache_ok(&r->base); /* engine use: the asynchronous side speaks */
	return rc;
fail:
	if (rc)
		redisFree(rc);
	if (err)
		co_errf(err, errlen, "cache %s: %s", r->name, why);
	else
		co_redis_fault(r, why);
	return NULL;
}

redisReply *co_redis_sync_cmd(redis_cache *r, int argc, const char **argv, const size_t *lens)
{
	redisContext *rc = co_redis_sync_ctx(r, NULL, 0);
	redisReply *rep;

	if (!rc)
		return NULL;
	rep = redisCommandArgv(rc, argc, argv, lens);
	if (!rep) {
		co_redis_fault(r, rc->err ? rc->errstr : "out of memory");
		redisFree(rc); /* a broken connection: make a new one next time */
		r->sync = NULL;
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		co_redis_reply_fault(r, argv[0], rep);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* ---- scan, delete, info ---- */

/* SCAN patterns are globs: match the prefixes literally. */
static char *glob_escape(char *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strchr("*?[]\\", s[i]))
			*p++ = '\\';
		*p++ = s[i];
	}
	return p;
}

/* One SCAN batch: read the records, leave the flight markers out. */
static int scan_batch(redis_cache *r, const redisReply *keys, co_cache_scan_fn fn, void *arg,
                      bool *stop)
{
	const char **argv = malloc((keys->elements + 1) * sizeof(*argv));
	size_t *lens = malloc((keys->elements + 1) * sizeof(*lens));
	redisReply *rep = NULL;
	size_t n = 0;
	int rc = -1;
	co_rec rec;

	if (!argv || !lens)
		goto out;
	argv[0] = "MGET", lens[0] = 4;
	for (size_t i = 0; i < keys->elements; i++) {
		const redisReply *k = keys->element[i];
		/* Flight markers and the fleet's limits (limit_redis.c) are
		 * not records. */
		if (k->type != REDIS_REPLY_STRING || k->len < r->prefixlen ||
		    (k->len >= r->prefixlen + 2 && memcmp(k->str + r->prefixlen, "f:", 2) == 0) ||
		    (k->len >= r->prefixlen + 4 && memcmp(k->str + r->prefixlen, "lim:", 4) == 0))
			continue;
		n++;
		argv[n] = k->str, lens[n] = k->len;
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if (!(rep = co_redis_sync_cmd(r, (int)n + 1, argv, lens)))
		goto out;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
		co_redis_reply_fault(r, "MGET", rep);
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		const redisReply *v = rep->element[i];
		if (v->type == REDIS_REPLY_NIL)
			continue; /* expired since the SCAN */
		bool ok = co_redis_decode(v, &rec);
		if (fn(arg, argv[i + 1] + r->prefixlen, lens[i + 1] - r->prefixlen,
		       ok ? &rec : NULL)) {
			*stop = true;
			break;
		}
	}
out:
	if (rep)
		freeReplyObject(rep);
	free(argv);
	free(lens);
	return rc;
}

int co_redis_scan(co_cache *c, const char *prefix, co_cache_scan_fn fn, void *arg)
{
	redis_cache *r = (redis_cache *)c;
	size_t plen = strlen(prefix);
	char *pat = malloc(2 * (r->prefixlen + plen) + 2), *p;
	char cursor[32] = "0";
	bool stop = false;
	int rc = 0;

	if (!pat)
		return CO_CACHE_ENOMEM;
	p = glob_escape(pat, r->prefix, r->prefixlen);
	p = glob_escape(p, prefix, plen);
	*p++ = '*';
	*p = '\0';
	do {
		const char *argv[6] = {"SCAN", cursor, "MATCH", pat, "COUNT", SCAN_COUNT};
		size_t lens[6] = {4, strlen(cursor), 5, strlen(pat), 5, strlen(SCAN_COUNT)};
		redisReply *rep = co_redis_sync_cmd(r, 6, argv, lens);

		if (!rep) {
			rc = -1;
			break;
		}
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING ||
		    rep->element[0]->len >= sizeof(cursor) ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			co_redis_reply_fault(r, "SCAN", rep);
			rc = -1;
		} else {
			memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
			rc = scan_batch(r, rep->element[1], fn, arg, &stop);
		}
		freeReplyObject(rep);
	} while (rc == 0 && !stop && strcmp(cursor, "0") != 0);
	free(pat);
	return rc;
}

int co_redis_del(co_cache *c, const char *const *keys, size_t n, unsigned long *deleted)
{
	redis_cache *r = (redis_cache *)c;
	const char *argv[DEL_BATCH + 1];
	size_t lens[DEL_BATCH + 1];
	unsigned long count = 0;
	int rc = 0;

	argv[0] = "DEL", lens[0] = 3;
	for (size_t i = 0; i < n && rc == 0; i += DEL_BATCH) {
		size_t m = n - i < DEL_BATCH ? n - i : DEL_BATCH;
		char *buf = co_redis_prefixed(r, "", keys + i, m, argv + 1, lens + 1);
		redisReply *rep = buf ? co_redis_sync_cmd(r, (int)m + 1, argv, lens) : NULL;

		if (!buf)
			rc = CO_CACHE_ENOMEM;
		else if (!rep)
			rc = -1;
		else if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
			count += (unsigned long)rep->integer;
		if (rep)
			freeReplyObject(rep);
		free(buf);
	}
	if (deleted)
		*deleted = count;
	return rc;
}

/* A "name:number" line of INFO; 0 when missing. */
static unsigned long long info_field(const char *text, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = text; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, name, len) == 0 && p[len] == ':')
			return strtoull(p + len + 1, NULL, 10);
	}
	return 0;
}

int co_redis_info(co_cache *c, co_cache_info *info)
{
	redis_cache *r = (redis_cache *)c;
	const char *argv[2] = {"INFO", "memory"};
	size_t lens[2] = {4, 6};
	redisReply *rep = co_redis_sync_cmd(r, 2, argv, lens);

	info->backend = "redis";
	info->bytes_used = info->bytes_limit = 0;
	if (!rep)
		return -1;
	if (rep->type == REDIS_REPLY_STRING) {
		info->bytes_used = info_field(rep->str, "used_memory");
		info->bytes_limit = info_field(rep->str, "maxmemory");
	}
	freeReplyObject(rep);
	return 0;
}
