/*
 * The HTTP front end's connections (http_gate.h).
 *
 * evhttp calls no hook of ours when it accepts: it asks for each new
 * connection's bufferevent (evhttp_set_bevcb) before it has given it the
 * socket, then sets it up in the same call.  So we hand it a bufferevent
 * we hold a reference to, and once the accept callback is over an
 * admission pass (an event made active, run before any read of the new
 * sockets) finds the connection behind each new bufferevent (the argument
 * of the callbacks evhttp set on it), counts it per client and in total,
 * and drops it when either is at its cap.  libevent accepts until accept()
 * fails, so after ACCEPT_BURST new sockets the listeners stop until that
 * pass has run: a flood takes descriptors only a burst at a time, never
 * all that the engine and the policy socket need.  Admitted connections are found
 * again by their descriptor: an array indexed by it, as libevent's own
 * maps are.
 *
 * The deadline runs from the admission, and from the end of each reply on
 * a kept-alive connection, until a whole request (headers and body) has
 * been read: a client trickling bytes holds a connection for that long
 * at most, and an idle kept-alive one is closed then too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "clients.h"
#include "frontends.h"
#include "http_gate.h"
#include "listen.h"

#define ACCEPT_BURST 32 /* sockets accepted before an admission pass */

struct cd_http_conn {
	cd_http_gate *g;
	struct evhttp_connection *evcon;
	int fd;
	cd_client_key client;
	struct event *deadline;
	bool kept_alive;          /* a reply has been written on it */
	void (*on_close)(void *); /* the request waiting on it */
	void *arg;
};

struct cd_http_gate {
	cd_daemon *d;
	cd_accept_pause *listeners; /* stopped while a burst waits */
	bool stopped;
	struct event *admit;
	struct bufferevent **fresh; /* accepted, not yet admitted; a reference each */
	size_t nfresh, capfresh;
	cd_http_conn **by_fd;
	size_t nby_fd;
	unsigned nconns;
	cd_clients *clients;
	cd_refusals refused, late;
};

static bool grow(void **array, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 64;
	void *p;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return true;
	if (!(p = realloc(*array, n * size)))
		return false;
	memset((char *)p + *cap * size, 0, (n - *cap) * size);
	*array = p;
	*cap = n;
	return true;
}

static void arm(cd_http_conn *c)
{
	unsigned ms = c->g->d->cfg->http_request_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_add(c->deadline, &tv);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	cd_http_conn *c = arg;
	cd_http_gate *g = c->g;
	char why[96];

	(void)fd;
	(void)what;
	if (c->kept_alive) {
		cd_log(CD_LOG_DEBUG, "http: closing a kept-alive connection: no next request");
	} else {
		snprintf(why, sizeof(why), "no whole request within %u ms (closed)",
		         g->d->cfg->http_request_timeout_ms);
		cd_refused(&g->late, "http", why);
	}
	evhttp_connection_free(c->evcon); /* on_conn_close frees c */
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	cd_http_conn *c = arg;
	cd_http_gate *g = c->g;
	void (*fn)(void *) = c->on_close;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	c->on_close = NULL;
	if (fn)
		fn(c->arg);
	g->by_fd[c->fd] = NULL;
	cd_clients_remove(g->clients, &c->client);
	g->nconns--;
	event_free(c->deadline);
	free(c);
	cd_quiet_check(g->d); /* a flood of connections ending: trim.c may trim */
}

static void refuse(cd_http_gate *g, struct evhttp_connection *evcon, const char *why)
{
	cd_refused(&g->refused, "http", why);
	evhttp_connection_free(evcon);
}

static void admit(cd_http_gate *g, struct bufferevent *bev)
{
	const cd_config *cfg = g->d->cfg;
	bufferevent_data_cb readcb = NULL;
	void *cbarg = NULL;
	int fd = bufferevent_getfd(bev);
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	cd_client_key client;
	cd_http_conn *c;

	bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
	bufferevent_decref(bev); /* evhttp's reference keeps it, if it lives */
	if (!readcb || !cbarg || fd < 0)
		return; /* evhttp has let it go already (freeing clears the callbacks) */
	struct evhttp_connection *evcon = cbarg;
	if (g->nconns >= cd_fe_cap(cfg->http_max_connections, g->d->http_fds)) {
		refuse(g, evcon, "max_connections reached");
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0)
		peerlen = 0;
	cd_client_key_of(&client, fd, (struct sockaddr *)&peer, peerlen);
	if (cd_clients_count(g->clients, &client) >= cfg->http_max_client_connections) {
		refuse(g, evcon, "max_client_connections reached by a client");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !grow((void **)&g->by_fd, &g->nby_fd, (size_t)fd + 1, sizeof(*g->by_fd)) ||
	    !(c->deadline = evtimer_new(g->d->base, deadline_cb, c)) ||
	    !cd_clients_add(g->clients, &client, cfg->http_max_client_connections)) {
		/* out of memory: left unrecorded, so that its requests are
		 * answered "out of memory" (http.c) rather than dropped */
		if (c && c->deadline)
			event_free(c->deadline);
		free(c);
		return;
	}
	c->g = g;
	c->evcon = evcon;
	c->fd = fd;
	c->client = client;
	g->by_fd[fd] = c;
	g->nconns++;
	evhttp_connection_set_closecb(evcon, on_conn_close, c);
	arm(c);
}

static void admit_cb(evutil_socket_t fd, short what, void *arg)
{
	cd_http_gate *g = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < g->nfresh; i++)
		admit(g, g->fresh[i]);
	g->nfresh = 0;
	if (g->stopped) {
		g->stopped = false;
		/* unless an accept error has paused them: resume_cb will */
		if (!event_pending(g->listeners->resume, EV_TIMEOUT, NULL))
			cd_accept_resume_cb(-1, 0, g->listeners);
	}
}

static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	cd_http_gate *g = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (!bev || !grow((void **)&g->fresh, &g->capfresh, g->nfresh + 1, sizeof(*g->fresh)))
		return bev; /* out of memory: not recorded, so not served (on_request) */
	bufferevent_incref(bev);
	g->fresh[g->nfresh++] = bev;
	event_active(g->admit, EV_TIMEOUT, 1);
	if (g->nfresh >= ACCEPT_BURST && !g->stopped) {
		/* libevent's accept loop sees it and returns */
		g->stopped = true;
		for (size_t i = 0; i < g->listeners->n; i++)
			if (g->listeners->levs[i])
				evconnlistener_disable(g->listeners->levs[i]);
	}
	return bev;
}

cd_http_gate *cd_http_gate_new(cd_daemon *d, struct evhttp *http, cd_accept_pause *listeners)
{
	cd_http_gate *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->d = d;
	g->listeners = listeners;
	g->admit = event_new(d->base, -1, 0, admit_cb, g);
	g->clients = cd_clients_new();
	if (!g->admit || !g->clients) {
		cd_http_gate_free(g);
		return NULL;
	}
	evhttp_set_bevcb(http, new_bev, g);
	return g;
}

void cd_http_gate_free(cd_http_gate *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nfresh; i++)
		bufferevent_decref(g->fresh[i]);
	/* evhttp_free has closed every admitted connection: by_fd is empty */
	free(g->fresh);
	free(g->by_fd);
	if (g->admit)
		event_free(g->admit);
	cd_clients_free(g->clients);
	free(g);
}

cd_http_conn *cd_http_gate_conn(cd_http_gate *g, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	int fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd < 0 || (size_t)fd >= g->nby_fd || !g->by_fd[fd] || g->by_fd[fd]->evcon != evcon)
		return NULL;
	return g->by_fd[fd];
}

static void on_complete(struct evhttp_request *req, void *arg)
{
	cd_http_conn *c = arg;

	(void)req;
	c->kept_alive = true;
	arm(c);
}

void cd_http_conn_busy(cd_http_conn *c, struct evhttp_request *req)
{
	event_del(c->deadline);
	evhttp_request_set_on_complete_cb(req, on_complete, c);
}

void cd_http_conn_on_close(cd_http_conn *c, void (*fn)(void *), void *arg)
{
	if (!c)
		return;
	c->on_close = fn;
	c->arg = arg;
}
