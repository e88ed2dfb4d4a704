/*
 * The jobs in Redis (jobs_store.h): the fleet's, beside the verdict cache
 * (its server, database and key prefix P).
 *
 *   P jobs:ids         set of the job ids
 *   P jobs:ID:meta     the record
 *   P jobs:ID:in       hash: be64(chunk) -> 256 addresses (jobs_chunk.h)
 *   P jobs:ID:out      sorted set: score the index, member "INDEX RESULT"
 *   P jobs:ID:lease    the token of the node that runs the job (expires)
 *   P jobs:ID:stop     a node asked for the job to be cancelled
 *
 * Calls are synchronous, on the event loop, and bounded: CONNECT_MS to
 * connect, IO_MS a round trip; after a failure the store answers EIO at
 * once for DOWN_MS, so a Redis away costs the loop one timeout now and
 * then, not one a call.  A job's record and results are written by one
 * script that first checks the node's lease.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "daemon.h"
#include "jobs_chunk.h"
#include "jobs_store_int.h"
#include "redis_spec.h"

#define CONNECT_MS 200
#define IO_MS      250
#define DOWN_MS    2000
#define PIPE       64  /* commands sent before their replies are read */
#define MGET_BATCH 100 /* records read by one MGET */
#define STOP_TTL_S "86400"
#define NEW_TTL_S  "3600" /* addresses of a job whose record is not written yet */
#define KEY_MAX    (CO_REDIS_PREFIX_MAX + CD_JOB_ID_LEN + 16)

/* Write a job's results and record, if the lease is ours.  KEYS: lease,
 * meta, out, ids, in; ARGV: token, id, then "r" INDEX RESULT or "m"
 * RECORD.  With its record the addresses are kept (they expire until
 * then: a POST cut short leaves nothing for long). */
static const char WRITE_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "local i = 3\n"
    "while i <= #ARGV do\n"
    "  if ARGV[i] == 'r' then\n"
    "    local n = tonumber(ARGV[i + 1])\n"
    "    if redis.call('ZCOUNT', KEYS[3], n, n) == 0 then\n"
    "      redis.call('ZADD', KEYS[3], n, ARGV[i + 1] .. ' ' .. ARGV[i + 2])\n"
    "    end\n"
    "    i = i + 3\n"
    "  else\n"
    "    redis.call('SET', KEYS[2], ARGV[i + 1])\n"
    "    redis.call('SADD', KEYS[4], ARGV[2])\n"
    "    redis.call('PERSIST', KEYS[5])\n"
    "    i = i + 2\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* KEYS: lease; ARGV: token, ms.  1: ours (now or already), 0: another's. */
static const char CLAIM_LUA[] = "local v = redis.call('GET', KEYS[1])\n"
                                "if v == ARGV[1] then\n"
                                "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "  return 1\n"
                                "end\n"
                                "if v then return 0 end\n"
                                "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                "return 1\n";

/* KEYS: lease, stop; ARGV: token, ms.  0: lost, 1: kept, 2: kept, and
 * a cancel is asked for. */
static const char RENEW_LUA[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                                "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end\n"
                                "return 1\n";

static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  redis.call('DEL', KEYS[1])\n"
                                  "end\n"
                                  "return 1\n";

typedef struct rstore {
	cd_jstore base;
	co_redis_spec spec;
	redisContext *c;
	long long down_until; /* monotonic ms: EIO at once until then */
	bool down;            /* said in the log */
	char token[CD_JOB_ID_LEN + 1];
	char where[512]; /* a user (127), a host (255), a prefix (64), the rest */
} rstore;

/* A write waiting for the commit. */
typedef struct rop {
	char kind; /* 'm' record, 'r' result, 'i' chunk of addresses, 'p' purge */
	char id[CD_JOB_ID_LEN + 1];
	char num[24]; /* the result's index, in decimal */
	uint64_t chunk;
	size_t len;
	char *data;
} rop;

typedef struct rtxn {
	cd_jtxn base;
	rstore *s;
	rop *ops;
	size_t nops, cap;
	cd_jchunk_fill fill;
} rtxn;

static const cd_jstore_ops redis_ops;

/* ---- the connection ------------------------------------------------------------- */

static void went_down(rstore *s, const char *why)
{
	if (!s->down)
		cd_log(CD_LOG_WARNING, "jobs: Redis %s: %s; the jobs wait for it", s->where, why);
	s->down = true;
	if (s->c)
		redisFree(s->c);
	s->c = NULL;
	s->down_until = co_clock_ms(NULL, NULL) + DOWN_MS;
}

/* A reply that is not an error, or NULL (freed, logged). */
static redisReply *checked(rstore *s, redisReply *r)
{
	if (!r) {
		went_down(s, s->c && s->c->errstr[0] ? s->c->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		/* a Redis starting or busy is an outage; anything else is wrong */
		bool passing =
		    strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "BUSY", 4) == 0;
		cd_log(passing ? CD_LOG_WARNING : CD_LOG_ERR, "jobs: Redis %s: %s", s->where,
		       r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static redisContext *conn(rstore *s)
{
	struct timeval ct = {0, CONNECT_MS * 1000}, io = {0, IO_MS * 1000};
	redisContext *c;
	redisReply *r = NULL;

	if (s->c)
		return s->c;
	if (co_clock_ms(NULL, NULL) < s->down_until)
		return NULL;
	c = redisConnectWithTimeout(s->spec.host, (int)s->spec.port, ct);
	if (!c || c->err) {
		went_down(s, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	s->c = c;
	if (redisSetTimeout(c, io) != REDIS_OK) {
		went_down(s, "cannot set a timeout");
		return NULL;
	}
	if (s->spec.password[0]) {
		r = s->spec.user[0] ? redisCommand(c, "AUTH %s %s", s->spec.user, s->spec.password)
		                    : redisCommand(c, "AUTH %s", s->spec.password);
		if (!(r = checked(s, r)))
			return NULL;
		freeReplyObject(r);
	}
	if (s->spec.db) {
		if (!(r = checked(s, redisCommand(c, "SELECT %u", s->spec.db))))
			return NULL;
		freeReplyObject(r);
	}
	/* named, so that CLIENT LIST tells it from the cache's */
	if (!(r = checked(s, redisCommand(c, "CLIENT SETNAME calloutd-jobs"))))
		return NULL;
	freeReplyObject(r);
	if (s->down)
		cd_log(CD_LOG_INFO, "jobs: Redis %s answers again", s->where);
	s->down = false;
	return s->c;
}

/* One command's reply, or NULL: EIO (logged). */
static redisReply *call(rstore *s, int argc, const char **argv, const size_t *lens)
{
	redisContext *c = conn(s);

	return c ? checked(s, redisCommandArgv(c, argc, argv, lens)) : NULL;
}

/* The next reply to a command sent with redisAppendCommandArgv, or
 * NULL: an error reply (logged), or the connection failed (dropped). */
static redisReply *next_reply(rstore *s)
{
	void *v = NULL;

	if (!s->c)
		return NULL;
	if (redisGetReply(s->c, &v) != REDIS_OK) {
		went_down(s, s->c->errstr[0] ? s->c->errstr : "no reply");
		return NULL;
	}
	return checked(s, v);
}

/* Replies to n commands sent before: EIO when one failed (all are read
 * while the connection stands). */
static int collect(rstore *s, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		redisReply *r = next_reply(s);

		if (!r) {
			rc = EIO;
			if (!s->c)
				break;
			continue;
		}
		freeReplyObject(r);
	}
	return rc;
}

static void key(const rstore *s, char *k, const char *id, const char *what)
{
	if (id)
		snprintf(k, KEY_MAX, "%sjobs:%s:%s", s->spec.prefix, id, what);
	else
		snprintf(k, KEY_MAX, "%sjobs:%s", s->spec.prefix, what);
}

static void be64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* A script on the job's lease: its integer answer, or -1 (EIO). */
static long long lease_script(rstore *s, const char *script, const char *id, const char *other)
{
	char lease[KEY_MAX], k2[KEY_MAX], ms[16];
	const char *argv[7];
	int argc = 0;
	redisReply *r;
	long long v;

	key(s, lease, id, "lease");
	snprintf(ms, sizeof(ms), "%d", CD_JOB_LEASE_MS);
	argv[argc++] = "EVAL";
	argv[argc++] = script;
	argv[argc++] = other ? "2" : "1";
	argv[argc++] = lease;
	if (other) {
		key(s, k2, id, other);
		argv[argc++] = k2;
	}
	argv[argc++] = s->token;
	argv[argc++] = ms;
	if (!(r = call(s, argc, argv, NULL)))
		return -1;
	v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	freeReplyObject(r);
	return v;
}

/* ---- opening ------------------------------------------------------------------------ */

cd_jstore *cd_jstore_redis_open(const char *spec, char *where, size_t wlen, char *err,
                                size_t errlen)
{
	rstore *s = calloc(1, sizeof(*s));
	unsigned char rnd[CD_JOB_ID_LEN / 2];

	if (!s) {
		snprintf(err, errlen, "jobs store: out of memory");
		return NULL;
	}
	s->base.ops = &redis_ops;
	if (co_redis_spec_parse(spec, &s->spec, err, errlen) != 0) {
		free(s);
		return NULL;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(err, errlen, "jobs store: no random bytes for a node token: %s",
		         strerror(errno));
		explicit_bzero(&s->spec, sizeof(s->spec));
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(s->token + 2 * i, 3, "%02x", rnd[i]);
	/* where it is, as the log says it: no password */
	bool v6 = strchr(s->spec.host, ':') != NULL;
	snprintf(s->where, sizeof(s->where), "redis://%s%s%s%s%s:%u/%u?prefix=%s", s->spec.user,
	         s->spec.user[0] ? "@" : "", v6 ? "[" : "", s->spec.host, v6 ? "]" : "",
	         s->spec.port, s->spec.db, s->spec.prefix);
	snprintf(where, wlen, "%s", s->where);
	conn(s); /* not there yet: said in the log; calls try again */
	return &s->base;
}

static void redis_close(cd_jstore *base)
{
	rstore *s = (rstore *)base;

	if (s->c)
		redisFree(s->c);
	explicit_bzero(&s->spec, sizeof(s->spec));
	free(s);
}

/* ---- writing ------------------------------------------------------------------------ */

static int redis_begin(cd_jstore *base, cd_jtxn **t)
{
	rtxn *x = calloc(1, sizeof(*x));

	if (!x)
		return ENOMEM;
	x->base.s = base;
	x->s = (rstore *)base;
	*t = &x->base;
	return 0;
}

static rop *add_op(rtxn *t, char kind, const char *id, const void *data, size_t len)
{
	rop *o;

	if (t->nops == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		rop *ops = realloc(t->ops, cap * sizeof(*ops));

		if (!ops)
			return NULL;
		t->ops = ops;
		t->cap = cap;
	}
	o = &t->ops[t->nops];
	memset(o, 0, sizeof(*o));
	if (len && !(o->data = malloc(len)))
		return NULL;
	if (len)
		memcpy(o->data, data, len);
	o->kind = kind;
	o->len = len;
	memcpy(o->id, id, CD_JOB_ID_LEN);
	t->nops++;
	return o;
}

static int put_chunk(void *arg)
{
	rtxn *t = arg;
	rop *o;

	if (!t->fill.len)
		return 0;
	if (!(o = add_op(t, 'i', t->fill.id, t->fill.buf, t->fill.len)))
		return ENOMEM;
	o->chunk = t->fill.chunk;
	t->fill.len = 0;
	return 0;
}

static int redis_put_meta(cd_jtxn *base, const char *id, const char *json, size_t len)
{
	return add_op((rtxn *)base, 'm', id, json, len) ? 0 : ENOMEM;
}

static int redis_put_input(cd_jtxn *base, const char *id, uint64_t idx, uint32_t line,
                           const char *addr, size_t len)
{
	rtxn *t = (rtxn *)base;

	return cd_jchunk_add(&t->fill, id, idx, line, addr, len, put_chunk, t);
}

static int redis_put_result(cd_jtxn *base, const char *id, uint64_t idx, const char *json,
                            size_t len)
{
	rop *o = add_op((rtxn *)base, 'r', id, json, len);

	if (!o)
		return ENOMEM;
	snprintf(o->num, sizeof(o->num), "%" PRIu64, idx);
	return 0;
}

static int redis_purge(cd_jtxn *base, const char *id, size_t max, bool *gone)
{
	(void)max; /* UNLINK frees in the background: one step */
	*gone = true;
	return add_op((rtxn *)base, 'p', id, NULL, 0) ? 0 : ENOMEM;
}

static void free_txn(rtxn *t)
{
	for (size_t i = 0; i < t->nops; i++)
		free(t->ops[i].data);
	free(t->ops);
	free(t->fill.buf);
	free(t);
}

static void redis_abort(cd_jtxn *base)
{
	free_txn((rtxn *)base);
}

/* The chunks of addresses, PIPE commands at a time. */
static int write_chunks(rtxn *t)
{
	rstore *s = t->s;
	size_t sent = 0;
	int rc = 0;

	for (size_t i = 0; i < t->nops && !rc; i++) {
		rop *o = &t->ops[i];
		char k[KEY_MAX];
		unsigned char field[8];
		const char *argv[4] = {"HSET", k, (const char *)field, o->data};
		size_t lens[4] = {4, 0, 8, o->len};
		const char *expire[3] = {"EXPIRE", k, NEW_TTL_S};

		if (o->kind != 'i')
			continue;
		if (!conn(s))
			return EIO;
		key(s, k, o->id, "in");
		lens[1] = strlen(k);
		be64(field, o->chunk);
		if (redisAppendCommandArgv(s->c, 4, argv, lens) != REDIS_OK ||
		    redisAppendCommandArgv(s->c, 3, expire, NULL) != REDIS_OK)
			return ENOMEM;
		sent += 2;
		if (sent >= PIPE) {
			rc = collect(s, sent);
			sent = 0;
		}
	}
	return rc ? rc : collect(s, sent);
}

/* One job's results and record, in one script: EBUSY when its lease is
 * not ours (nothing written). */
static int write_job(rtxn *t, const char *id, bool *seen)
{
	rstore *s = t->s;
	char lease[KEY_MAX], meta[KEY_MAX], out[KEY_MAX], ids[KEY_MAX], in[KEY_MAX];
	size_t n = 10, argc = 0;
	const char **argv;
	size_t *lens;
	redisReply *r;
	int rc;

	for (size_t i = 0; i < t->nops; i++)
		if (!seen[i] && (t->ops[i].kind == 'm' || t->ops[i].kind == 'r') &&
		    strcmp(t->ops[i].id, id) == 0)
			n += 3;
	if (!(argv = malloc(n * sizeof(*argv))) || !(lens = malloc(n * sizeof(*lens)))) {
		free(argv);
		return ENOMEM;
	}
	key(s, lease, id, "lease");
	key(s, meta, id, "meta");
	key(s, out, id, "out");
	key(s, ids, NULL, "ids");
	key(s, in, id, "in");
	const char *head[10] = {"EVAL", WRITE_LUA, "5", lease, meta, out, ids, in, s->token, id};
	for (; argc < 10; argc++) {
		argv[argc] = head[argc];
		lens[argc] = strlen(head[argc]);
	}
	for (size_t i = 0; i < t->nops; i++) {
		rop *o = &t->ops[i];

		if (seen[i] || (o->kind != 'm' && o->kind != 'r') || strcmp(o->id, id) != 0)
			continue;
		seen[i] = true;
		argv[argc] = o->kind == 'm' ? "m" : "r";
		lens[argc++] = 1;
		if (o->kind == 'r') {
			argv[argc] = o->num;
			lens[argc++] = strlen(o->num);
		}
		argv[argc] = o->data ? o->data : "";
		lens[argc++] = o->len;
	}
	r = call(s, (int)argc, argv, lens);
	rc = !r ? EIO : r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : EBUSY;
	if (r)
		freeReplyObject(r);
	free(argv);
	free(lens);
	return rc;
}

static int purge_job(rstore *s, const char *id)
{
	char k[5][KEY_MAX], ids[KEY_MAX];
	const char *what[5] = {"in", "out", "meta", "lease", "stop"};
	const char *unlink[6] = {"UNLINK"};
	const char *srem[3] = {"SREM", ids, id};

	for (int i = 0; i < 5; i++) {
		key(s, k[i], id, what[i]);
		unlink[i + 1] = k[i];
	}
	key(s, ids, NULL, "ids");
	if (!conn(s) || redisAppendCommandArgv(s->c, 3, srem, NULL) != REDIS_OK ||
	    redisAppendCommandArgv(s->c, 6, unlink, NULL) != REDIS_OK)
		return EIO;
	return collect(s, 2);
}

/* Addresses first (a job is seen once its record is there), then each
 * job's results and record, then purges.  EBUSY: a job's lease was not
 * ours, its writes dropped (the others' are done). */
static int redis_commit(cd_jtxn *base)
{
	rtxn *t = (rtxn *)base;
	bool *seen = NULL;
	int rc = put_chunk(t), busy = 0;

	if (!rc)
		rc = write_chunks(t);
	if (!rc && t->nops && !(seen = calloc(t->nops, sizeof(*seen))))
		rc = ENOMEM;
	for (size_t i = 0; i < t->nops && !rc; i++) {
		if (seen[i] || (t->ops[i].kind != 'm' && t->ops[i].kind != 'r'))
			continue;
		rc = write_job(t, t->ops[i].id, seen);
		if (rc == EBUSY) {
			busy = EBUSY;
			rc = 0;
		}
	}
	for (size_t i = 0; i < t->nops && !rc; i++)
		if (t->ops[i].kind == 'p')
			rc = purge_job(t->s, t->ops[i].id);
	free(seen);
	free_txn(t);
	return rc ? rc : busy;
}

/* ---- leases --------------------------------------------------------------------------- */

static int redis_claim(cd_jstore *base, const char *id)
{
	long long v = lease_script((rstore *)base, CLAIM_LUA, id, NULL);

	return v < 0 ? EIO : v == 1 ? 0 : EBUSY;
}

static int redis_renew(cd_jstore *base, const char *id)
{
	long long v = lease_script((rstore *)base, RENEW_LUA, id, "stop");

	return v < 0 ? EIO : v == 1 ? 0 : v == 2 ? ECANCELED : EBUSY;
}

static void redis_release(cd_jstore *base, const char *id)
{
	lease_script((rstore *)base, RELEASE_LUA, id, NULL);
}

static int redis_request_stop(cd_jstore *base, const char *id)
{
	rstore *s = (rstore *)base;
	char k[KEY_MAX];
	const char *argv[5] = {"SET", k, "1", "EX", STOP_TTL_S};
	redisReply *r;

	key(s, k, id, "stop");
	if (!(r = call(s, 5, argv, NULL)))
		return EIO;
	freeReplyObject(r);
	return 0;
}

/* ---- reading ------------------------------------------------------------------------ */

static int redis_get_meta(cd_jstore *base, const char *id, cd_jmeta_fn fn, void *arg)
{
	rstore *s = (rstore *)base;
	char k[KEY_MAX];
	const char *argv[2] = {"GET", k};
	redisReply *r;
	int rc = ENOENT;

	key(s, k, id, "meta");
	if (!(r = call(s, 2, argv, NULL)))
		return EIO;
	if (r->type == REDIS_REPLY_STRING) {
		fn(arg, id, r->str, r->len);
		rc = 0;
	}
	freeReplyObject(r);
	return rc;
}

static int redis_each_meta(cd_jstore *base, cd_jmeta_fn fn, void *arg)
{
	rstore *s = (rstore *)base;
	char ids[KEY_MAX];
	const char *argv[2] = {"SMEMBERS", ids};
	redisReply *r, *m;
	size_t next = 0;
	int rc = 0;

	key(s, ids, NULL, "ids");
	if (!(r = call(s, 2, argv, NULL)))
		return EIO;
	while (r->type == REDIS_REPLY_ARRAY && next < r->elements && !rc) {
		/* the records of the next MGET_BATCH ids, in one MGET */
		char keys[MGET_BATCH][KEY_MAX];
		const char *mget[MGET_BATCH + 1] = {"MGET"}, *id[MGET_BATCH];
		size_t n = 0;

		for (; next < r->elements && n < MGET_BATCH; next++) {
			redisReply *e = r->element[next];

			if (e->type != REDIS_REPLY_STRING || e->len != CD_JOB_ID_LEN)
				continue;
			id[n] = e->str;
			key(s, keys[n], e->str, "meta");
			mget[n + 1] = keys[n];
			n++;
		}
		if (!n)
			break;
		if (!(m = call(s, (int)n + 1, mget, NULL))) {
			rc = EIO;
			break;
		}
		for (size_t k = 0; m->type == REDIS_REPLY_ARRAY && k < m->elements && k < n && !rc;
		     k++)
			if (m->element[k]->type == REDIS_REPLY_STRING)
				rc = fn(arg, id[k], m->element[k]->str, m->element[k]->len);
		freeReplyObject(m);
	}
	freeReplyObject(r);
	return rc == EIO ? EIO : 0;
}

/* The index of an "INDEX RESULT" member. */
static uint64_t member_idx(const redisReply *e, const char **json, size_t *len)
{
	const char *sp = memchr(e->str, ' ', e->len);

	*json = sp ? sp + 1 : e->str + e->len;
	*len = (size_t)(e->str + e->len - *json);
	return strtoull(e->str, NULL, 10);
}

static int redis_inputs(cd_jstore *base, const char *id, uint64_t from, cd_jinput *out, size_t max,
                        size_t *n, uint64_t *next)
{
	rstore *s = (rstore *)base;
	char in[KEY_MAX], outk[KEY_MAX], lo[24], hi[24];
	unsigned char field[8];

	*n = 0;
	*next = from;
	key(s, in, id, "in");
	key(s, outk, id, "out");
	for (uint64_t c = from / CD_JCHUNK; *n < max; c++) {
		const char *hget[3] = {"HGET", in, (const char *)field};
		size_t hlens[3] = {4, strlen(in), 8};
		const char *zr[4] = {"ZRANGEBYSCORE", outk, lo, hi};
		unsigned char done[CD_JCHUNK / 8] = {0};
		redisReply *chunk, *res;

		be64(field, c);
		snprintf(lo, sizeof(lo), "%" PRIu64, c * CD_JCHUNK);
		snprintf(hi, sizeof(hi), "%" PRIu64, c * CD_JCHUNK + CD_JCHUNK - 1);
		if (!conn(s) || redisAppendCommandArgv(s->c, 3, hget, hlens) != REDIS_OK ||
		    redisAppendCommandArgv(s->c, 4, zr, NULL) != REDIS_OK)
			return EIO;
		chunk = next_reply(s);
		res = next_reply(s);
		if (!chunk || !res) {
			if (chunk)
				freeReplyObject(chunk);
			if (res)
				freeReplyObject(res);
			return EIO;
		}
		for (size_t i = 0; res->type == REDIS_REPLY_ARRAY && i < res->elements; i++) {
			const char *json;
			size_t len;
			uint64_t idx = member_idx(res->element[i], &json, &len);

			if (idx >= c * CD_JCHUNK && idx < (c + 1) * CD_JCHUNK)
				done[(idx % CD_JCHUNK) / 8] |= (unsigned char)(1u << (idx % 8));
		}
		bool end = chunk->type != REDIS_REPLY_STRING;
		const unsigned char *p = end ? NULL : (const unsigned char *)chunk->str;
		const unsigned char *e = end ? NULL : p + chunk->len;

		while (!end && *n < max && cd_jchunk_next(&p, e, c, &out[*n])) {
			uint64_t idx = out[*n].idx;

			if (idx < from)
				continue;
			*next = idx + 1;
			/* answered before (by this node or another): not again */
			if (!(done[(idx % CD_JCHUNK) / 8] & (1u << (idx % 8))))
				(*n)++;
		}
		freeReplyObject(chunk);
		freeReplyObject(res);
		if (end)
			break;
	}
	return 0;
}

static int redis_results(cd_jstore *base, const char *id, uint64_t from, size_t limit,
                         cd_jresult_fn fn, void *arg, uint64_t *next, bool *more)
{
	rstore *s = (rstore *)base;
	char k[KEY_MAX], lo[24], cnt[24];
	const char *argv[7] = {"ZRANGEBYSCORE", k, lo, "+inf", "LIMIT", "0", cnt};
	redisReply *r;
	int err = 0;

	*next = from;
	*more = false;
	key(s, k, id, "out");
	snprintf(lo, sizeof(lo), "%" PRIu64, from);
	snprintf(cnt, sizeof(cnt), "%zu", limit + 1);
	if (!(r = call(s, 7, argv, NULL)))
		return EIO;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const char *json;
		size_t len;
		uint64_t idx;

		if (i == limit) {
			*more = true;
			break;
		}
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		idx = member_idx(r->element[i], &json, &len);
		if ((err = fn(arg, idx, json, len)))
			break;
		*next = idx + 1;
	}
	freeReplyObject(r);
	return err;
}

static const cd_jstore_ops redis_ops = {
    .shared = true,
    .close = redis_close,
    .begin = redis_begin,
    .commit = redis_commit,
    .abort = redis_abort,
    .put_meta = redis_put_meta,
    .put_input = redis_put_input,
    .put_result = redis_put_result,
    .purge = redis_purge,
    .claim = redis_claim,
    .renew = redis_renew,
    .release = redis_release,
    .request_stop = redis_request_stop,
    .get_meta = redis_get_meta,
    .each_meta = redis_each_meta,
    .inputs = redis_inputs,
    .results = redis_results,
};
