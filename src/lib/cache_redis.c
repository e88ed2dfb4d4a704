/*
 * The Redis backend: records shared by every node of a fleet.
 *
 * With a loop (engine use) one asynchronous hiredis connection carries
 * everything: MGET for lookups, SET EX for writes, and a flight marker
 * set with NX PX for single flight across processes.  Without a loop,
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
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cache.h"
#include "cache_redis.h"
#include "cache_redis_int.h"
#include "clock.h"

#define CONNECT_TIMEOUT_MS 1000 /* connect and handshake */
#define REPLY_TIMEOUT_MS   2000 /* nothing answered for this long: the server is gone */
#define WATCH_MS           250  /* how often the watchdog looks */
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     30000
#define POLL_MS            75    /* a waiting claim looks for the holder's record */
#define MAX_PENDING        10000 /* commands in flight, and live requests */
#define DRAIN_MS           200   /* free: time for queued writes to reach the server */
#define GET_MAX            16    /* keys of one get (the interface says 8) */

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

/* ---- the asynchronous connection ---- */

static void connect_start(redis_cache *r);

static void retry_later(redis_cache *r)
{
	struct timeval tv = ms_tv(r->backoff_ms);

	evtimer_add(r->retry_ev, &tv);
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_start(arg);
}

/*
 * The connection is gone (hiredis is freeing it, or the caller frees it
 * right after): forget it, report, retry later.  Requests hiredis holds
 * are finished by their NULL replies.
 */
static void conn_lost(redis_cache *r, const char *why)
{
	r->ac = NULL;
	r->ready = false;
	r->inflight = 0;
	event_del(r->watch_ev);
	co_redis_fault(r, why);
	retry_later(r);
}

/* Drop the current connection ourselves. */
static void drop(redis_cache *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	conn_lost(r, why);
	redisAsyncFree(ac); /* inside a reply callback hiredis defers this */
}

static void watch(redis_cache *r)
{
	struct timeval tv = ms_tv(WATCH_MS);

	if (!event_pending(r->watch_ev, EV_TIMEOUT, NULL))
		event_add(r->watch_ev, &tv);
}

/* hiredis 0.14 has no timeouts for asynchronous connections. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	redis_cache *r = arg;
	int64_t t = co_clock_ms(NULL, NULL);

	if (!r->ac || (r->ready && r->inflight == 0)) {
		event_del(r->watch_ev); /* nothing to wait for: let an idle loop end */
	} else if (!r->ready) {
		if (t - r->conn_start_ms >= CONNECT_TIMEOUT_MS)
			drop(r, "connect timed out");
	} else if (t - r->progress_ms >= REPLY_TIMEOUT_MS) {
		drop(r, "no reply in time");
	}
}

/*
 * Account for a reply on ac.  False when there is nothing to read: a
 * NULL reply means the connection is gone.
 */
static bool got_reply(redis_cache *r, redisAsyncContext *ac, const redisReply *rep)
{
	if (ac != r->ac)
		return rep != NULL; /* a connection already forgotten */
	if (!rep) {
		conn_lost(r, ac->err ? ac->errstr : "connection closed");
		return false;
	}
	r->inflight--;
	r->progress_ms = co_clock_ms(NULL, NULL);
	return true;
}

/* Commands are taken while connected, and while the first connection is
 * being made (so the first lookups of a program can use the cache), but
 * not while a fault lasts: then callers go on uncached at once. */
static bool connected(const redis_cache *r)
{
	return r->ac && (r->ready || !r->base.faulty);
}

static bool can_send(const redis_cache *r)
{
	return connected(r) && r->inflight < MAX_PENDING && r->nreqs < MAX_PENDING;
}

static int send_cmd(redis_cache *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                    const size_t *lens)
{
	if (redisAsyncCommandArgv(r->ac, fn, priv, argc, argv, lens) != REDIS_OK)
		return -1;
	if (r->inflight++ == 0)
		r->progress_ms = co_clock_ms(NULL, NULL);
	watch(r);
	return 0;
}

static void on_hello(redisAsyncContext *ac, void *reply, void *priv)
{
	redis_cache *r = ac->data;
	redisReply *rep = reply;

	if (r->freeing || !got_reply(r, ac, rep) || ac != r->ac)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		char why[256];
		snprintf(why, sizeof(why), "%s", rep->str); /* e.g. a wrong password */
		drop(r, why);
		return;
	}
	if (priv) { /* the PING after AUTH and SELECT */
		r->ready = true;
		r->backoff_ms = BACKOFF_MIN_MS;
		co_cache_ok(&r->base);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	redis_cache *r = ac->data;

	if (r->freeing || ac != r->ac || status == REDIS_OK)
		return;
	conn_lost(r, ac->errstr); /* hiredis frees ac when this returns */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	redis_cache *r = ac->data;

	if (r->freeing || ac != r->ac)
		return;
	conn_lost(r, status == REDIS_OK || !ac->errstr[0] ? "connection closed" : ac->errstr);
}

/* AUTH [USER] PASSWORD into argv (3 slots); returns argc. */
static void connect_start(redis_cache *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->host, (int)r->port);

	if (!ac || ac->err) {
		char why[256];
		snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		co_redis_fault(r, why);
		retry_later(r);
		return;
	}
	ac->data = r;
	if (redisLibeventAttach(ac, r->evb) != REDIS_OK) {
		redisAsyncFree(ac);
		co_redis_fault(r, "cannot attach to the loop");
		retry_later(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	r->ready = false;
	r->inflight = 0;
	r->conn_start_ms = co_clock_ms(NULL, NULL);

	/* Pipelined ahead of everything else; PING marks the end. */
	char db[16];
	const char *argv[3];
	size_t lens[3];
	int rc = 0;
	if (r->password) {
		int argc = co_redis_auth_argv(r, argv, lens);
		rc |= send_cmd(r, on_hello, NULL, argc, argv, lens);
	}
	if (r->db) {
		snprintf(db, sizeof(db), "%u", r->db);
		argv[0] = "SELECT", lens[0] = 6;
		argv[1] = db, lens[1] = strlen(db);
		rc |= send_cmd(r, on_hello, NULL, 2, argv, lens);
	}
	argv[0] = "PING", lens[0] = 4;
	rc |= send_cmd(r, on_hello, r, 1, argv, lens);
	if (rc)
		drop(r, "out of memory");
	else
		watch(r);
}

/* ---- operations ---- */

static void on_get_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	redis_cache *r = ac->data;
	co_cache_req *q = priv;
	redisReply *rep = reply;

	if (r->freeing)
		return;
	q->waiting = false;
	if (got_reply(r, ac, rep) && !q->cancelled) {
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

static void on_write_reply(redisAsyncContext *ac, void *reply, const char *what)
{
	redis_cache *r = ac->data;
	redisReply *rep = reply;

	if (r->freeing || !got_reply(r, ac, rep))
		return;
	if (rep->type == REDIS_REPLY_ERROR)
		co_redis_reply_fault(r, what, rep); /* e.g. maxmemory with noeviction */
	else if (strcmp(what, "SET") == 0)
		co_cache_ok(&r->base);
}

static void on_put_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	on_write_reply(ac, reply, "SET");
}

static void on_release_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	on_write_reply(ac, reply, "EVAL");
}

/* A write whose reply only matters for faults: on the loop when there
 * is one (cb hears the reply), else at once.  0 or -1. */
static int write_cmd(redis_cache *r, redisCallbackFn *cb, int argc, const char **argv,
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

static void on_forget_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	on_write_reply(ac, reply, "DEL");
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

static void on_claim_set_reply(redisAsyncContext *ac, void *reply, void *priv);
static void on_claim_poll_reply(redisAsyncContext *ac, void *reply, void *priv);

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

static void on_claim_set_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	redis_cache *r = ac->data;
	co_cache_req *q = priv;
	redisReply *rep = reply;

	if (r->freeing)
		return;
	q->waiting = false;
	bool ok = got_reply(r, ac, rep);
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

static void on_claim_poll_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	redis_cache *r = ac->data;
	co_cache_req *q = priv;
	redisReply *rep = reply;
	co_rec rec;

	if (r->freeing)
		return;
	q->waiting = false;
	bool ok = got_reply(r, ac, rep);
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

/*
 * Freeing: give writes still queued (the last puts of a short-lived
 * program) a moment to reach the server, and read the replies so the
 * socket closes cleanly (unread data would turn the close into a reset).
 */
static void drain(redis_cache *r)
{
	redisContext *rc = &r->ac->c;
	bool up = rc->flags & REDIS_CONNECTED;
	size_t want = r->inflight;
	int64_t end = co_clock_ms(NULL, NULL) + DRAIN_MS;
	int done = 0;

	for (;;) {
		if (up && !done && redisBufferWrite(rc, &done) != REDIS_OK)
			return;
		if (up && done && want == 0)
			return;
		int64_t left = end - co_clock_ms(NULL, NULL);
		struct pollfd pfd = {.fd = rc->fd,
		                     .events = up && done ? POLLIN : POLLIN | POLLOUT};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 || (pfd.revents & POLLNVAL))
			return;
		if (!up) { /* still connecting (a program that never ran its loop) */
			int e = 0;
			socklen_t elen = sizeof(e);
			if (getsockopt(rc->fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0 || e != 0)
				return;
			up = pfd.revents & POLLOUT;
		} else if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			void *rep;
			if (redisBufferRead(rc) != REDIS_OK)
				return;
			while (want > 0 && redisReaderGetReply(rc->reader, &rep) == REDIS_OK &&
			       rep) {
				freeReplyObject(rep);
				want--;
			}
		}
	}
}

static void destroy(redis_cache *r)
{
	r->freeing = true; /* hiredis calls back with NULL replies: ignore them */
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		drain(r);
		r->ac = NULL;
		redisAsyncFree(ac);
	}
	while (!LIST_EMPTY(&r->reqs))
		req_free(LIST_FIRST(&r->reqs));
	if (r->retry_ev)
		event_free(r->retry_ev);
	if (r->watch_ev)
		event_free(r->watch_ev);
	if (r->done_ev)
		event_free(r->done_ev);
	if (r->sync)
		redisFree(r->sync);
	free(r->host);
	free(r->user);
	if (r->password)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
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
	*out = (co_redis_where){r->host, r->user, r->password, r->prefix, r->port, r->db};
	return true;
}

/* The flight marker's value: unguessable, so release deletes only ours. */
void co_redis_make_token(char *out, size_t nbytes)
{
	uint8_t raw[64];

	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	if (getrandom(raw, nbytes, GRND_NONBLOCK) != (ssize_t)nbytes) {
		uint64_t x = (uint64_t)co_clock_ms(NULL, NULL) ^ ((uint64_t)getpid() << 32) ^
		             (uint64_t)(uintptr_t)out;
		for (size_t i = 0; i < nbytes; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			raw[i] = (uint8_t)(x >> 56);
		}
	}
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
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
	r->port = port;
	r->db = db;
	r->host = strdup(host);
	r->password = password && *password ? strdup(password) : NULL;
	r->user = r->password && user && *user ? strdup(user) : NULL;
	r->prefix = strdup(prefix ? prefix : "");
	r->name = malloc(namelen);
	if (!r->host || !r->prefix || !r->name || (password && *password && !r->password) ||
	    (r->password && user && *user && !r->user))
		goto oom;
	r->prefixlen = strlen(r->prefix);
	snprintf(r->name, namelen, strchr(host, ':') ? "redis://[%s]:%u" : "redis://%s:%u", host,
	         port);
	LIST_INIT(&r->reqs);
	STAILQ_INIT(&r->done);
	r->backoff_ms = BACKOFF_MIN_MS;
	co_redis_make_token(r->token, TOKEN_LEN / 2);

	if (conf->strict && !co_redis_sync_ctx(r, err, errlen)) {
		destroy(r);
		return NULL;
	}
	if (conf->base) {
		r->evb = conf->base;
		r->retry_ev = evtimer_new(r->evb, on_retry, r);
		r->watch_ev = event_new(r->evb, -1, EV_PERSIST, on_watch, r);
		r->done_ev = event_new(r->evb, -1, 0, on_done, r);
		if (!r->retry_ev || !r->watch_ev || !r->done_ev)
			goto oom;
		connect_start(r);
	}
	return &r->base;
oom:
	if (r)
		destroy(r);
	co_redis_say(err, errlen, "cache redis://%s:%u: out of memory", host, port);
	return NULL;
}
