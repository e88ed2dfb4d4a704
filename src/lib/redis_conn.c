/*
 * The shared asynchronous Redis connection (see redis_conn.h).
 *
 * The handshake (AUTH, SELECT, PING) is pipelined ahead of anything a
 * user sends; the PING's answer says the server is up.  Every user
 * command goes through one trampoline that accounts for the reply (the
 * watchdog's progress) before the user's function hears it, so that a
 * user that leaves is never called again: its unanswered commands are
 * answered NULL at once and their replies later dropped.
 */
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "redis_conn.h"

#define CONNECT_MS     1000 /* connect and handshake */
#define REPLY_MS       2000 /* a user's default */
#define WATCH_MS       100  /* how often the watchdog looks while commands are out */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000 /* a user's default */
#define DRAIN_MS       200   /* closing: time for queued commands to reach the server */
#define PING_MARK      ((void *)1)

typedef struct user_cmd {
	LIST_ENTRY(user_cmd) link;
	co_redis_user *u; /* NULL: its user left */
	co_redis_reply_fn *fn;
	void *priv;
} user_cmd;

struct co_redis_user {
	LIST_ENTRY(co_redis_user) link;
	co_redis_conn *c;
	co_redis_events ev;
	void *arg;
	bool leaving;
	LIST_HEAD(, user_cmd) cmds;
};

struct co_redis_conn {
	struct event_base *evb;
	co_redis_addr addr;
	redisAsyncContext *ac; /* NULL: down, a retry is scheduled */
	bool up;               /* the handshake was answered */
	bool freeing;
	long long conn_start, progress;
	size_t inflight;
	unsigned backoff_ms, backoff_max_ms, reply_ms;
	struct event *retry_ev, *watch_ev;
	LIST_HEAD(, co_redis_user) users;
};

/* ---- addresses ---- */

int co_redis_addr_set(co_redis_addr *a, const char *host, unsigned port, unsigned db,
                      const char *user, const char *password)
{
	*a = (co_redis_addr){.port = port, .db = db};
	a->host = strdup(host);
	if (password && *password) {
		a->password = strdup(password);
		if (user && *user)
			a->user = strdup(user);
	}
	if (!a->host || (password && *password && !a->password) ||
	    (a->password && user && *user && !a->user)) {
		co_redis_addr_clear(a);
		return -1;
	}
	return 0;
}

void co_redis_addr_clear(co_redis_addr *a)
{
	free(a->host);
	free(a->user);
	if (a->password)
		explicit_bzero(a->password, strlen(a->password));
	free(a->password);
	*a = (co_redis_addr){0};
}

int co_redis_addr_auth_argv(const co_redis_addr *a, const char **argv, size_t *lens)
{
	int argc = 0;

	argv[argc] = "AUTH", lens[argc++] = 4;
	if (a->user)
		argv[argc] = a->user, lens[argc++] = strlen(a->user);
	argv[argc] = a->password, lens[argc++] = strlen(a->password);
	return argc;
}

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

/* ---- the connection ---- */

static struct timeval ms_tv(long long ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

static void connect_start(co_redis_conn *c);

static void retry_later(co_redis_conn *c)
{
	if (c->backoff_ms > c->backoff_max_ms)
		c->backoff_ms = c->backoff_max_ms;
	struct timeval tv = ms_tv(c->backoff_ms);
	evtimer_add(c->retry_ev, &tv);
	c->backoff_ms =
	    c->backoff_ms * 2 > c->backoff_max_ms ? c->backoff_max_ms : c->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connect_start(arg);
}

/*
 * The connection is gone (hiredis is freeing it, or the caller frees it
 * right after): forget it, tell the users, retry later.  Commands hiredis
 * holds are answered by their NULL replies.
 */
static void conn_lost(co_redis_conn *c, const char *why)
{
	c->ac = NULL;
	c->up = false;
	c->inflight = 0;
	event_del(c->watch_ev);
	retry_later(c);
	for (co_redis_user *u = LIST_FIRST(&c->users); u; u = LIST_NEXT(u, link))
		if (u->ev.down)
			u->ev.down(u->arg, why);
}

/* Drop the current connection ourselves. */
static void drop(co_redis_conn *c, const char *why)
{
	redisAsyncContext *ac = c->ac;

	conn_lost(c, why);
	redisAsyncFree(ac); /* inside a reply callback hiredis defers this */
}

static void watch(co_redis_conn *c)
{
	struct timeval tv = ms_tv(WATCH_MS);

	if (!event_pending(c->watch_ev, EV_TIMEOUT, NULL))
		event_add(c->watch_ev, &tv);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	co_redis_conn *c = arg;
	long long t = co_clock_ms(NULL, NULL);
	(void)fd;
	(void)what;

	if (!c->ac || (c->up && c->inflight == 0))
		event_del(c->watch_ev); /* nothing to wait for: let an idle loop end */
	else if (!c->up && t - c->conn_start >= CONNECT_MS)
		drop(c, "connect timed out");
	else if (c->up && t - c->progress >= c->reply_ms)
		drop(c, "no reply in time");
}

/* Account for a reply on ac; false when there is nothing to read. */
static bool got_reply(co_redis_conn *c, redisAsyncContext *ac, const redisReply *rep)
{
	if (c->freeing || ac != c->ac)
		return rep != NULL; /* a connection already forgotten */
	if (!rep) {
		conn_lost(c, ac->err ? ac->errstr : "connection closed");
		return false;
	}
	c->inflight--;
	c->progress = co_clock_ms(NULL, NULL);
	return true;
}

static int raw_send(co_redis_conn *c, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                    const size_t *lens)
{
	if (!c->ac || redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, lens) != REDIS_OK)
		return -1;
	if (c->inflight++ == 0)
		c->progress = co_clock_ms(NULL, NULL);
	watch(c);
	return 0;
}

static void on_hello(redisAsyncContext *ac, void *reply, void *priv)
{
	co_redis_conn *c = ac->data;
	redisReply *rep = reply;

	if (c->freeing || !got_reply(c, ac, rep) || ac != c->ac)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		char why[256];
		snprintf(why, sizeof(why), "%s", rep->str); /* e.g. a wrong password */
		drop(c, why);
		return;
	}
	if (priv == PING_MARK) {
		c->up = true;
		c->backoff_ms = BACKOFF_MIN_MS;
		for (co_redis_user *u = LIST_FIRST(&c->users); u; u = LIST_NEXT(u, link))
			if (u->ev.up)
				u->ev.up(u->arg);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	co_redis_conn *c = ac->data;

	if (c->freeing || ac != c->ac || status == REDIS_OK)
		return;
	conn_lost(c, ac->errstr); /* hiredis frees ac when this returns */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	co_redis_conn *c = ac->data;

	if (c->freeing || ac != c->ac)
		return;
	conn_lost(c, status == REDIS_OK || !ac->errstr[0] ? "connection closed" : ac->errstr);
}

static void connect_start(co_redis_conn *c)
{
	redisAsyncContext *ac = redisAsyncConnect(c->addr.host, (int)c->addr.port);

	if (!ac || ac->err) {
		char why[256];
		snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		conn_lost(c, why);
		return;
	}
	ac->data = c;
	if (redisLibeventAttach(ac, c->evb) != REDIS_OK) {
		redisAsyncFree(ac);
		conn_lost(c, "cannot attach to the loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	c->ac = ac;
	c->up = false;
	c->inflight = 0;
	c->conn_start = co_clock_ms(NULL, NULL);

	char db[16];
	const char *argv[3];
	size_t lens[3];
	int rc = 0;
	if (c->addr.password) {
		int argc = co_redis_addr_auth_argv(&c->addr, argv, lens);
		rc |= raw_send(c, on_hello, NULL, argc, argv, lens);
	}
	if (c->addr.db) {
		snprintf(db, sizeof(db), "%u", c->addr.db);
		argv[0] = "SELECT", lens[0] = 6;
		argv[1] = db, lens[1] = strlen(db);
		rc |= raw_send(c, on_hello, NULL, 2, argv, lens);
	}
	argv[0] = "PING", lens[0] = 4;
	rc |= raw_send(c, on_hello, PING_MARK, 1, argv, lens);
	if (rc)
		drop(c, "out of memory");
}

/*
 * Closing: give commands still queued (a cache's last writes, the
 * limits' releases) a moment to reach the server, and read the replies
 * so the socket closes cleanly (unread data would turn the close into a
 * reset).
 */
static void drain(co_redis_conn *c)
{
	redisContext *rc = &c->ac->c;
	bool up = rc->flags & REDIS_CONNECTED;
	size_t want = c->inflight;
	long long end = co_clock_ms(NULL, NULL) + DRAIN_MS;
	int done = 0;

	for (;;) {
		if (up && !done && redisBufferWrite(rc, &done) != REDIS_OK)
			return;
		if (up && done && want == 0)
			return;
		long long left = end - co_clock_ms(NULL, NULL);
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

static void conn_free(co_redis_conn *c)
{
	c->freeing = true; /* hiredis calls back with NULL replies: nobody hears them */
	if (c->ac) {
		redisAsyncContext *ac = c->ac;
		drain(c);
		c->ac = NULL;
		redisAsyncFree(ac);
	}
	if (c->retry_ev)
		event_free(c->retry_ev);
	if (c->watch_ev)
		event_free(c->watch_ev);
	co_redis_addr_clear(&c->addr);
	free(c);
}

/* ---- users ---- */

static co_redis_user *user_add(co_redis_conn *c, const co_redis_events *ev, void *arg)
{
	co_redis_user *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->c = c;
	u->ev = *ev;
	u->arg = arg;
	LIST_INIT(&u->cmds);
	LIST_INSERT_HEAD(&c->users, u, link);
	unsigned reply = ev->reply_ms ? ev->reply_ms : REPLY_MS;
	unsigned backoff = ev->backoff_max_ms ? ev->backoff_max_ms : BACKOFF_MAX_MS;
	if (reply < c->reply_ms)
		c->reply_ms = reply;
	if (backoff < c->backoff_max_ms)
		c->backoff_max_ms = backoff;
	return u;
}

co_redis_user *co_redis_connect(struct event_base *base, const co_redis_addr *addr,
                                const co_redis_events *ev, void *arg)
{
	co_redis_conn *c = calloc(1, sizeof(*c));
	co_redis_user *u = NULL;

	if (!c)
		return NULL;
	c->evb = base;
	c->backoff_ms = BACKOFF_MIN_MS;
	c->backoff_max_ms = UINT_MAX; /* the users' tightest */
	c->reply_ms = UINT_MAX;
	LIST_INIT(&c->users);
	c->retry_ev = evtimer_new(base, on_retry, c);
	c->watch_ev = event_new(base, -1, EV_PERSIST, on_watch, c);
	if (!c->retry_ev || !c->watch_ev ||
	    co_redis_addr_set(&c->addr, addr->host, addr->port, addr->db, addr->user,
	                      addr->password) ||
	    !(u = user_add(c, ev, arg))) {
		conn_free(c);
		return NULL;
	}
	connect_start(c);
	return u;
}

co_redis_user *co_redis_join(co_redis_user *u, const co_redis_events *ev, void *arg)
{
	return user_add(u->c, ev, arg);
}

void co_redis_leave(co_redis_user *u)
{
	co_redis_conn *c = u->c;
	user_cmd *m;

	u->leaving = true;
	while ((m = LIST_FIRST(&u->cmds)) != NULL) {
		LIST_REMOVE(m, link);
		m->u = NULL; /* its reply, when it comes, is dropped */
		m->fn(u->arg, NULL, m->priv);
	}
	LIST_REMOVE(u, link);
	free(u);
	if (LIST_EMPTY(&c->users))
		conn_free(c);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	co_redis_conn *c = ac->data;
	user_cmd *m = priv;
	co_redis_user *u = m->u;
	co_redis_reply_fn *fn = m->fn;
	void *upriv = m->priv;

	got_reply(c, ac, reply);
	if (u)
		LIST_REMOVE(m, link);
	free(m);
	if (u)
		fn(u->arg, reply, upriv);
}

int co_redis_send(co_redis_user *u, co_redis_reply_fn *fn, void *priv, int argc, const char **argv,
                  const size_t *lens)
{
	user_cmd *m;

	if (u->leaving || !u->c->ac || !(m = malloc(sizeof(*m))))
		return -1;
	*m = (user_cmd){.u = u, .fn = fn, .priv = priv};
	if (raw_send(u->c, on_reply, m, argc, argv, lens) != 0) {
		free(m);
		return -1;
	}
	LIST_INSERT_HEAD(&u->cmds, m, link);
	return 0;
}

bool co_redis_open(const co_redis_user *u)
{
	return u->c->ac != NULL;
}

bool co_redis_up(const co_redis_user *u)
{
	return u->c->ac && u->c->up;
}

size_t co_redis_inflight(const co_redis_user *u)
{
	return u->c->inflight;
}

const co_redis_addr *co_redis_where_of(const co_redis_user *u)
{
	return &u->c->addr;
}

struct event_base *co_redis_base_of(const co_redis_user *u)
{
	return u->c->evb;
}
