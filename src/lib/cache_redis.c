/*
 * The Redis backend: records shared by every node of a fleet.
 *
 * With a loop (engine use) one asynchronous connection (redis_conn.c,
 * shared with the fleet's limits on the same server) carries everything:
 * MGET for lookups, SET EX for writes, and a flight marker set with NX PX
 * for single flight across processes.  Without a loop,
 * and for scan/del/info always, a blocking connection is opened on first
 * use (cache_redis_admin.c).
 *
 * The server going away is never a result: lookups find nothing, writes
 * are dropped, claims are granted.  The fault is reported once, the
 * connection is retried with exponential backoff, and a watchdog treats
 * a server that stops answering as gone.
 *
 * Keys are PREFIX + record key; flight markers PREFIX + "f:" + record key,
 * holding a random token of this backend so release deletes only its own.
 *
 * User callbacks never run inside hiredis: finished requests are queued
 * and called from an event of their own, so a callback may cancel, start
 * requests or free the cache while hiredis is not on the stack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cache.h"
#include "cache_redis.h"
#include "cache_redis_int.h"
#include "clock.h"
#include "errf.h"

#define REPLY_TIMEOUT_MS 2000  /* nothing answered for this long: the server is gone */
#define BACKOFF_MAX_MS   30000 /* reconnections at least this often */
#define POLL_MS          75    /* a waiting claim looks for the holder's record */
#define MAX_PENDING      10000 /* commands in flight, and live requests */
#define GET_MAX          16    /* keys of one get (the interface says 8) */

/* Delete a flight marker only while it is still ours. */
static const char release_script[] =
    "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) "
    "else return 0 end";

static struct timeval ms_tv(int64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* ---- requests ---- */

static co_cache_req *req_new(redis_cache *r, req_kind kind, size_t extra)
{
	co_cache_req *q = calloc(1, sizeof(*q) + extra);

	if (!q)
		return NULL;
	q->r = r;
	q->kind = kind;
	LIST_INSERT_HEAD(&r->reqs, q, link);
	r->nreqs++;
	return q;
}

static void req_free(co_cache_req *q)
{
	redis_cache *r = q->r;

	LIST_REMOVE(q, link);
	r->nreqs--;
	if (q->timer)
		event_free(q->timer);
	free(q->rec);
	free(q);
}

/* Finished: the callback runs from done_ev, never from inside hiredis. */
static void req_done(co_cache_req *q)
{
	redis_cache *r = q->r;

	if (q->cancelled) {
		req_free(q);
		return;
	}
	q->queued = true;
	STAILQ_INSERT_TAIL(&r->done, q, done_link);
	event_active(r->done_ev, EV_TIMEOUT, 1);
}

static void destroy(redis_cache *r);

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	redis_cache *r = arg;

	r->in_done = true;
	while (!r->dead && !STAILQ_EMPTY(&r->done)) {
		co_cache_req *q = STAILQ_FIRST(&r->done);
		void *cb_arg = q->arg;

		STAILQ_REMOVE_HEAD(&r->done, done_link);
		if (q->cancelled) {
			req_free(q);
		} else if (q->kind == REQ_GET) {
			co_cache_get_cb cb = q->get_cb;
			req_free(q); /* first: the callback may do anything */
			cb(cb_arg);
		} else {
			co_cache_claim_cb cb = q->claim_cb;
			co_claim_result res = q->rec ? CO_CLAIM_ANSWERED : CO_CLAIM_GRANTED;
			co_rec rec = {0};
			if (q->rec)
				rec = *q->rec;
			req_free(q);
			cb(cb_arg, res, res == CO_CLAIM_ANSWERED ? &rec : NULL);
		}
	}
	r->in_done = false;
	if (r->dead)
		destroy(r);
}

/* ---- the asynchronous connection (redis_conn.c) ---- */

static void on_up(void *arg)
{
	redis_cache *r = arg;

	co_cache_ok(&r->base);
}

static void on_down(void *arg, const char *why)
{
	co_redis_fault(arg, why);
}

/* Commands are taken while connected, and while the first connection is
 * being made (so the first lookups of a program can use the cache), but
 * not while a fault lasts: then callers go on uncached at once. */
static const co_redis_events conn_events = {on_up, on_down, REPLY_TIMEOUT_MS, BACKOFF_MAX_MS};

static bool connected(const redis_cache *r)
{
	return r->conn && co_redis_open(r->conn) && (co_redis_up(r->conn) || !r->base.faulty);
}

static bool can_send(const redis_cache *r)
{
	return connected(r) && co_redis_inflight(r->conn) < MAX_PENDING && r->nreqs < MAX_PENDING;
}

static int send_cmd(redis_cache *r, co_redis_reply_fn *fn, void *priv, int argc, const char **argv,
                    const size_t *lens)
{
	return co_redis_send(r->conn, fn, priv, argc, argv, lens);
}

/* ---- operations ---- */

static void on_get_reply(void *arg, redisReply *rep, void *priv)
{
	redis_cache *r = arg;
	co_cache_req *q = priv;

	if (r->freeing)
		return; /* destroy frees the requests */
	q->waiting = false;
	if (rep && !q->cancelled) {
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == q->n) {
			for (size_t i = 0; i < q->n; i++)
				q->found[i] = co_redis_decode(rep->element[i], &q->out[i]);
		} else {
			co_redis_reply_fault(r, "MGET", rep);
		}
	}
	req_done(q);
}

static int redis_get(co_cache *c, const char *const *keys, size_t n, co_rec *out, bool *found,
                     co_cache_get_cb cb, void *arg, co_cache_req **req)
{
	redis_cache *r = (redis_cache *)c;
	const char *argv[GET_MAX + 1];
	size_t lens[GET_MAX + 1];
	co_cache_req *q = NULL;
	char *buf;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		found[i] = false;
	if (n == 0)
		return 1;
	if (n > GET_MAX || (r->evb && !can_send(r)))
		return -1;
	argv[0] = "MGET", lens[0] = 4;
	if (!(buf = co_redis_prefixed(r, "", keys, n, argv + 1, lens + 1)))
		return -1;
	if (!r->evb) {
		redisReply *rep = co_redis_sync_cmd(r, (int)n + 1, argv, lens);
		if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == n) {
			for (size_t i = 0; i < n; i++)
				found[i] = co_redis_decode(rep->element[i], &out[i]);
			rc = 1;
		} else if (rep) {
			co_redis_reply_fault(r, "MGET", rep);
		}
		if (rep)
			freeReplyObject(rep);
	} else if ((q = req_new(r, REQ_GET, 0))) {
		q->n = n;
		q->out = out;
		q->found = found;
		q->get_cb = cb;
		q->arg = arg;
		if (send_cmd(r, on_get_reply, q, (int)n + 1, argv, lens) == 0) {
			q->waiting = true;
			*req = q;
			rc = 0;
		} else {
			req_free(q);
		}
	}
	free(buf);
	return rc;
}

static void on_write_reply(redis_cache *r, const redisReply *rep, const char *what)
{
	if (r->freeing || !rep)
		return;
	if (rep->type == REDIS_REPLY_ERROR)
		co_redis_reply_fault(r, what, rep); /* e.g. maxmemory with noeviction */
	else if (strcmp(what, "SET") == 0)
		co_cache_ok(&r->base);
}

static void on_put_reply(void *arg, redisReply *reply, void *priv)
{
	(void)priv;
	on_write_reply(arg, reply, "SET");
}

static void on_release_reply(void *arg, redisReply *reply, void *priv)
{
	(void)priv;
	on_write_reply(arg, reply, "EVAL");
}

/* A write whose reply only matters for faults: on the loop when there
 * is one (cb hears the reply), else at once.  0 or -1. */
static int write_cmd(redis_cache *r, co_redis_reply_fn *cb, int argc, const char **argv,
                     const size_t *lens)
{
	if (r->evb)
		return send_cmd(r, cb, NULL, argc, argv, lens);
	redisReply *rep = co_redis_sync_cmd(r, argc, argv, lens);
	if (!rep)
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int redis_put(co_cache *c, const char *key, const co_rec *rec, unsigned ttl_s)
{
	redis_cache *r = (redis_cache *)c;
	uint8_t val[CO_REC_ENCODED_MAX];
	char ttl[16];
	const char *argv[5] = {"SET", NULL, (const char *)val, "EX", ttl};
	size_t lens[5] = {3, 0, co_rec_encode(rec, val), 2, 0};
	char *buf;

	if (r->evb && !can_send(r))
		return -1;
	snprintf(ttl, sizeof(ttl), "%u", ttl_s ? ttl_s : 1);
	lens[4] = strlen(ttl);
	if (!(buf = co_redis_prefixed(r, "", &key, 1, argv + 1, lens + 1)))
		return -1;
	int rc = write_cmd(r, on_put_reply, 5, argv, lens);
	free(buf);
	return rc;
}

static void on_forget_reply(void *arg, redisReply *reply, void *priv)
{
	(void)priv;
	on_write_reply(arg, reply, "DEL");
}

static int redis_forget(co_cache *c, const char *key)
{
	redis_cache *r = (redis_cache *)c;
	const char *argv[2] = {"DEL", NULL};
	size_t lens[2] = {3, 0};
	char *buf;

	if (r->evb && !can_send(r))
		return -1;
	if (!(buf = co_redis_prefixed(r, "", &key, 1, argv + 1, lens + 1)))
		return -1;
	int rc = write_cmd(r, on_forget_reply, 2, argv, lens);
	free(buf);
	return rc;
}

/* ---- single flight ---- */

static void on_claim_set_reply(void *arg, redisReply *rep, void *priv);
static void on_claim_poll_reply(void *arg, redisReply *rep, void *priv);

static int claim_set(co_cache_req *q)
{
	redis_cache *r = q->r;
	char px[16];
	const char *argv[6] = {"SET", q->mkey, r->token, "NX", "PX", px};
	size_t lens[6] = {3, q->mkeylen, TOKEN_LEN, 2, 2, 0};

	snprintf(px, sizeof(px), "%u", q->hold_ms);
	lens[5] = strlen(px);
	if (!connected(r) || send_cmd(r, on_claim_set_reply, q, 6, argv, lens) != 0)
		return -1;
	q->waiting = true;
	return 0;
}

static void claim_granted(co_cache_req *q)
{
	free(q->rec);
	q->rec = NULL;
	req_done(q);
}

/* Look again in a moment, or give up waiting at the deadline. */
static void claim_wait(co_cache_req *q)
{
	int64_t left = q->deadline_ms - co_clock_ms(NULL, NULL);
	struct timeval tv;

	if (left <= 0) {
		claim_granted(q);
		return;
	}
	tv = ms_tv(left < POLL_MS ? left : POLL_MS);
	evtimer_add(q->timer, &tv);
}

static void on_claim_timer(evutil_socket_t fd, short what, void *arg)
{
	co_cache_req *q = arg;
	redis_cache *r = q->r;
	const char *argv[3] = {"MGET", q->rkey, q->mkey};
	size_t lens[3] = {4, q->rkeylen, q->mkeylen};

	if (co_clock_ms(NULL, NULL) >= q->deadline_ms || !connected(r) ||
	    send_cmd(r, on_claim_poll_reply, q, 3, argv, lens) != 0) {
		claim_granted(q);
		return;
	}
	q->waiting = true;
}

static void on_claim_set_reply(void *arg, redisReply *rep, void *priv)
{
	redis_cache *r = arg;
	co_cache_req *q = priv;

	if (r->freeing)
		return;
	q->waiting = false;
	bool ok = rep != NULL;
	if (q->cancelled) {
		req_free(q);
	} else if (ok && rep->type == REDIS_REPLY_NIL) {
		claim_wait(q); /* another holder: wait for its record */
	} else {
		if (ok && rep->type != REDIS_REPLY_STATUS)
			co_redis_reply_fault(r, "SET NX", rep);
		claim_granted(q);
	}
}

/*
 * A record answers a waiting claim when it is not expired and was probed
 * no earlier than the holder can have started: the claim exists because
 * what was there before did not do (an entry due for a refresh).
 */
static bool claim_answers(const co_cache_req *q, const co_rec *rec)
{
	int64_t hold_s = (q->hold_ms + 999) / 1000;

	return rec->expires > co_cache_now(&q->r->base) && rec->probed >= q->start_s - hold_s - 1;
}

static void on_claim_poll_reply(void *arg, redisReply *rep, void *priv)
{
	redis_cache *r = arg;
	co_cache_req *q = priv;
	co_rec rec;

	if (r->freeing)
		return;
	q->waiting = false;
	bool ok = rep != NULL;
	if (q->cancelled) {
		req_free(q);
		return;
	}
	if (!ok || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
		if (ok)
			co_redis_reply_fault(r, "MGET", rep);
		claim_granted(q);
		return;
	}
	if (co_redis_decode(rep->element[0], &rec) && claim_answers(q, &rec)) {
		if ((q->rec = malloc(sizeof(*q->rec))))
			*q->rec = rec;
		req_done(q); /* no memory for the record: granted */
	} else if (rep->element[1]->type == REDIS_REPLY_NIL) {
		/* The holder is gone without an answer: take over (or wait for
		 * whoever was quicker). */
		if (claim_set(q) != 0)
			claim_granted(q);
	} else {
		claim_wait(q);
	}
}

static int redis_claim(co_cache *c, const char *key, unsigned hold_ms, unsigned wait_ms,
                       co_cache_claim_cb cb, void *arg, co_cache_req **req)
{
	redis_cache *r = (redis_cache *)c;
	size_t klen = strlen(key);
	co_cache_req *q;

	if (!r->evb)
		return 1; /* administration: nobody to wait for */
	if (!can_send(r))
		return -1;
	q = req_new(r, REQ_CLAIM, 2 * (r->prefixlen + klen) + 4);
	if (!q)
		return -1;
	q->rkey = q->keys;
	q->rkeylen = r->prefixlen + klen;
	memcpy(q->rkey, r->prefix, r->prefixlen);
	memcpy(q->rkey + r->prefixlen, key, klen + 1);
	q->mkey = q->rkey + q->rkeylen + 1;
	q->mkeylen = q->rkeylen + 2;
	memcpy(q->mkey, r->prefix, r->prefixlen);
	memcpy(q->mkey + r->prefixlen, "f:", 2);
	memcpy(q->mkey + r->prefixlen + 2, key, klen + 1);
	q->claim_cb = cb;
	q->arg = arg;
	q->hold_ms = hold_ms ? hold_ms : 1;
	q->deadline_ms = co_clock_ms(NULL, NULL) + wait_ms;
	q->start_s = co_cache_now(c);
	q->timer = evtimer_new(r->evb, on_claim_timer, q);
	if (!q->timer || claim_set(q) != 0) {
		req_free(q);
		return -1;
	}
	*req = q;
	return 0;
}

static void redis_release(co_cache *c, const char *key)
{
	redis_cache *r = (redis_cache *)c;
	const char *argv[5] = {"EVAL", release_script, "1", NULL, r->token};
	size_t lens[5] = {4, sizeof(release_script) - 1, 1, 0, TOKEN_LEN};
	char *buf;

	if (!r->evb || !can_send(r))
		return; /* no claims made, or the marker expires by itself */
	if (!(buf = co_redis_prefixed(r, "f:", &key, 1, argv + 3, lens + 3)))
		return;
	send_cmd(r, on_release_reply, NULL, 5, argv, lens);
	free(buf);
}

static void redis_cancel(co_cache *c, co_cache_req *q)
{
	q->cancelled = true;
	/* hiredis still holds it, or it waits on the done list: freed there. */
	if (!q->waiting && !q->queued)
		req_free(q);
}

static void destroy(redis_cache *r)
{
	r->freeing = true; /* leaving answers our commands NULL: ignore them */
	if (r->conn)
		co_redis_leave(r->conn); /* the last user drains and closes */
	while (!LIST_EMPTY(&r->reqs))
		req_free(LIST_FIRST(&r->reqs));
	if (r->done_ev)
		event_free(r->done_ev);
	if (r->sync)
		redisFree(r->sync);
	co_redis_addr_clear(&r->addr);
	free(r->prefix);
	free(r->name);
	free(r);
}

static void redis_free(co_cache *c)
{
	redis_cache *r = (redis_cache *)c;

	if (r->in_done)
		r->dead = true; /* a callback frees us: no more callbacks, then destroy */
	else
		destroy(r);
}

static const co_cache_ops redis_ops = {
    .name = "redis",
    .get = redis_get,
    .put = redis_put,
    .forget = redis_forget,
    .claim = redis_claim,
    .release = redis_release,
    .cancel = redis_cancel,
    .scan = co_redis_scan,
    .del = co_redis_del,
    .info = co_redis_info,
    .free = redis_free,
};

bool co_cache_redis_where(const co_cache *c, co_redis_where *out)
{
	const redis_cache *r = (const redis_cache *)c;

	if (!c || c->ops != &redis_ops)
		return false;
	*out = (co_redis_where){r->addr.host, r->addr.user, r->addr.password,
	                        r->prefix,    r->addr.port, r->addr.db};
	return true;
}

co_redis_user *co_cache_redis_conn(const co_cache *c)
{
	const redis_cache *r = (const redis_cache *)c;

	return c && c->ops == &redis_ops ? r->conn : NULL;
}

co_cache *co_cache_redis_new(const char *host, unsigned port, unsigned db,
                             const co_redis_auth *auth, const char *prefix,
                             const co_cache_conf *conf, char *err, size_t errlen)
{
	const char *user = auth ? auth->user : NULL, *password = auth ? auth->password : NULL;
	redis_cache *r = calloc(1, sizeof(*r));
	size_t namelen = strlen(host) + 32;

	if (!r)
		goto oom;
	r->base.ops = &redis_ops;
	r->base.conf = *conf;
	r->prefix = strdup(prefix ? prefix : "");
	r->name = malloc(namelen);
	if (co_redis_addr_set(&r->addr, host, port, db, user, password) || !r->prefix || !r->name)
		goto oom;
	r->prefixlen = strlen(r->prefix);
	snprintf(r->name, namelen, strchr(host, ':') ? "redis://[%s]:%u" : "redis://%s:%u", host,
	         port);
	LIST_INIT(&r->reqs);
	STAILQ_INIT(&r->done);
	co_redis_make_token(r->token, TOKEN_LEN / 2);

	if (conf->strict && !co_redis_sync_ctx(r, err, errlen)) {
		destroy(r);
		return NULL;
	}
	if (conf->base) {
		r->evb = conf->base;
		r->done_ev = event_new(r->evb, -1, 0, on_done, r);
		if (!r->done_ev || !(r->conn = co_redis_connect(r->evb, &r->addr, &conn_events, r)))
			goto oom;
	}
	return &r->base;
oom:
	if (r)
		destroy(r);
	co_errf(err, errlen, "cache redis://%s:%u: out of memory", host, port);
	return NULL;
}
