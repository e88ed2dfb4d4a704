/* SOCKS5 proxy pools by name, the domains' choices, and the health of
 * every proxy (proxy_pool.h). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "proxy.h"
#include "proxy_pool.h"

#define CAP_DEFAULT 100
#define SPECS_MAX   32

co_proxies *co_proxies_new(struct event_base *base, unsigned failures, unsigned check_ms,
                           unsigned timeout_ms, void (*log)(void *, const char *), void *log_arg)
{
	co_proxies *px = calloc(1, sizeof(*px));
	if (!px)
		return NULL;
	px->base = base;
	LIST_INIT(&px->groups);
	LIST_INIT(&px->domains);
	px->failures = failures ? failures : 1;
	px->check_ms = check_ms ? check_ms : 5000;
	px->timeout_ms = timeout_ms ? timeout_ms : 5000;
	px->log = log;
	px->log_arg = log_arg;
	return px;
}

static void check_end(co_proxy_member *m)
{
	if (m->check) {
		bufferevent_free(m->check);
		m->check = NULL;
	}
}

static void group_free(co_proxy_group *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		check_end(&g->members[i]);
		if (g->members[i].timer)
			event_free(g->members[i].timer);
	}
	free(g);
}

void co_proxies_free(co_proxies *px)
{
	co_proxy_group *g;
	co_proxy_domain *d;

	if (!px)
		return;
	while ((g = LIST_FIRST(&px->groups))) {
		LIST_REMOVE(g, link);
		group_free(g);
	}
	while ((d = LIST_FIRST(&px->domains))) {
		LIST_REMOVE(d, link);
		free(d);
	}
	free(px);
}

/* ---- pools ----------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* One spec of a list, parsed and resolved into m. */
static bool member_init(co_proxies *px, co_proxy_member *m, const char *spec)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
	char port[16];

	if (co_proxy_parse(spec, &m->conn.spec))
		return false;
	snprintf(port, sizeof(port), "%u", m->conn.spec.port);
	if (getaddrinfo(m->conn.spec.host, port, &hints, &ai) != 0)
		return false;
	memcpy(&m->conn.addr, ai->ai_addr, ai->ai_addrlen);
	m->conn.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	co_proxy_label(&m->conn.spec, m->conn.label, sizeof(m->conn.label));
	m->timer = evtimer_new(px->base, on_timer, m);
	return m->timer != NULL;
}

co_proxy_group *co_proxies_find(co_proxies *px, const char *name)
{
	co_proxy_group *g;
	LIST_FOREACH(g, &px->groups, link)
	if (strcmp(g->name, name) == 0)
		return g;
	return NULL;
}

callout_status co_proxies_add(co_proxies *px, const char *name, const char *specs, unsigned cap,
                              co_proxy_group **out)
{
	char one[CO_PROXY_SPEC_MAX];
	const char *cur = specs;
	unsigned n;

	if (!name || !*name || strlen(name) >= sizeof(((co_proxy_group *)0)->name) ||
	    strcmp(name, "direct") == 0 || co_proxies_find(px, name) || !specs ||
	    co_proxy_parse_list(specs, &n) || n > SPECS_MAX)
		return CALLOUT_EINVAL;
	co_proxy_group *g = calloc(1, sizeof(*g) + n * sizeof(g->members[0]));
	if (!g)
		return CALLOUT_ENOMEM;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->owner = px;
	g->cap = cap ? cap : CAP_DEFAULT;
	for (unsigned i = 0; i < n && co_proxy_next(&cur, one, sizeof(one)); i++, g->n++) {
		g->members[i].group = g;
		if (!member_init(px, &g->members[i], one)) {
			group_free(g);
			return CALLOUT_EINVAL;
		}
	}
	LIST_INSERT_HEAD(&px->groups, g, link);
	if (out)
		*out = g;
	return CALLOUT_OK;
}

callout_status co_proxies_set_domain(co_proxies *px, const char *domain, co_proxy_group *group)
{
	co_proxy_domain *d;

	if (!domain || !*domain || strlen(domain) > CO_DOMAIN_MAX)
		return CALLOUT_EINVAL;
	LIST_FOREACH(d, &px->domains, link)
	if (strcasecmp(d->domain, domain) == 0) {
		d->group = group;
		return CALLOUT_OK;
	}
	if (!(d = calloc(1, sizeof(*d))))
		return CALLOUT_ENOMEM;
	snprintf(d->domain, sizeof(d->domain), "%s", domain);
	d->group = group;
	LIST_INSERT_HEAD(&px->domains, d, link);
	return CALLOUT_OK;
}

bool co_proxies_domain(const co_proxies *px, const char *domain, co_proxy_group **group)
{
	const co_proxy_domain *d;
	LIST_FOREACH(d, &px->domains, link)
	if (strcasecmp(d->domain, domain) == 0) {
		*group = d->group;
		return true;
	}
	return false;
}

/* ---- choosing one ---------------------------------------------------------- */

bool co_proxy_group_down(const co_proxy_group *g, char *why, size_t len)
{
	const co_proxy_member *last = NULL;
	for (unsigned i = 0; i < g->n; i++) {
		if (!g->members[i].down)
			return false;
		last = &g->members[i];
	}
	if (g->n == 1)
		snprintf(why, len, "proxy %s is down: %s", last->conn.label, last->error);
	else
		snprintf(why, len, "every proxy of pool %s is down (%s: %s)", g->name,
		         last->conn.label, last->error);
	return true;
}

co_proxy_choice co_proxy_pick(co_proxy_group *g, co_proxy_member **out, char *why, size_t len)
{
	co_proxy_member *best = NULL;
	bool up = false;

	for (unsigned i = 0; i < g->n; i++) {
		co_proxy_member *m = &g->members[(g->next + i) % g->n];
		if (m->down)
			continue;
		up = true;
		if (m->sessions < g->cap && (!best || m->sessions < best->sessions))
			best = m;
	}
	if (best) {
		/* The next search starts past it: equals take turns. */
		g->next = (unsigned)(best - g->members + 1) % g->n;
		*out = best;
		return CO_PROXY_PICKED;
	}
	if (up) {
		snprintf(why, len, "%u connections through each proxy of pool %s at once", g->cap,
		         g->name);
		return CO_PROXY_FULL;
	}
	co_proxy_group_down(g, why, len);
	return CO_PROXY_DOWN;
}

void co_proxy_hold(co_proxy_member *m)
{
	m->sessions++;
	m->connections++;
}

void co_proxy_release(co_proxy_member *m)
{
	if (m->sessions)
		m->sessions--;
}

/* ---- health ---------------------------------------------------------------- */

/* Tell the operator: "proxy HOST:PORT (pool NAME) " what. */
static void say(const co_proxy_member *m, const char *what, const char *why)
{
	co_proxies *px = m->group->owner;
	char msg[600];
	if (!px->log)
		return;
	snprintf(msg, sizeof(msg), "proxy %s (pool %s) %s%s", m->conn.label, m->group->name, what,
	         why);
	px->log(px->log_arg, msg);
}

static void arm(co_proxy_member *m, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(m->timer, &tv);
}

static void set_up(co_proxy_member *m)
{
	m->failures = 0;
	if (!m->down)
		return;
	m->down = false;
	check_end(m);
	evtimer_del(m->timer);
	say(m, "is up again", "");
}

void co_proxy_report(co_proxy_member *m, bool failed, const char *text)
{
	if (!failed) {
		set_up(m);
		return;
	}
	m->failed++;
	snprintf(m->error, sizeof(m->error), "%s", text ? text : "failed");
	if (m->down || ++m->failures < m->group->owner->failures)
		return;
	m->down = true;
	say(m, "is down, checked until it answers: ", m->error);
	arm(m, m->group->owner->check_ms);
}

/* A check ended: up, or down until the next one. */
static void check_done(co_proxy_member *m, const char *why)
{
	check_end(m);
	evtimer_del(m->timer);
	if (!why) {
		set_up(m);
		return;
	}
	snprintf(m->error, sizeof(m->error), "%s", why);
	arm(m, m->group->owner->check_ms);
}

static void on_check_read(struct bufferevent *bev, void *arg)
{
	co_proxy_member *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t used, outlen;
	const char *why;

	for (;;) {
		size_t len = evbuffer_get_length(in);
		co_socks_step st = co_socks_input(&m->socks, evbuffer_pullup(in, -1), len, &used,
		                                  out, &outlen, &why);
		evbuffer_drain(in, used);
		switch (st) {
		case CO_SOCKS_MORE:
			return;
		case CO_SOCKS_SEND:
			bufferevent_write(bev, out, outlen);
			continue;
		case CO_SOCKS_DONE:
			check_done(m, NULL);
			return;
		case CO_SOCKS_ERROR:
			check_done(m, why);
			return;
		}
	}
}

static void on_check_event(struct bufferevent *bev, short what, void *arg)
{
	co_proxy_member *m = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	check_done(m, (what & BEV_EVENT_EOF) ? "closed the connection in the handshake"
	                                     : "connection refused or lost");
}

static void check_start(co_proxy_member *m)
{
	co_proxies *px = m->group->owner;
	unsigned char greet[CO_SOCKS_MSG_MAX];
	size_t glen;

	m->check = bufferevent_socket_new(px->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!m->check) {
		arm(m, px->check_ms);
		return;
	}
	bufferevent_setcb(m->check, on_check_read, NULL, on_check_event, m);
	co_socks_begin_check(&m->socks, &m->conn.spec, greet, &glen);
	if (bufferevent_socket_connect(m->check, (const struct sockaddr *)&m->conn.addr,
	                               (int)m->conn.addrlen) < 0) {
		check_done(m, "connection refused");
		return;
	}
	bufferevent_write(m->check, greet, glen);
	bufferevent_enable(m->check, EV_READ);
	arm(m, px->timeout_ms); /* the check's deadline */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	co_proxy_member *m = arg;
	(void)fd;
	(void)what;
	if (m->check)
		check_done(m, "the health check timed out");
	else if (m->down)
		check_start(m);
}

size_t co_proxies_health(const co_proxies *px, callout_proxy_health *out, size_t n)
{
	const co_proxy_group *g;
	size_t k = 0;

	LIST_FOREACH(g, &px->groups, link)
	for (unsigned i = 0; i < g->n; i++, k++) {
		const co_proxy_member *m = &g->members[i];
		if (k < n)
			out[k] = (callout_proxy_health){.pool = g->name,
			                                .proxy = m->conn.label,
			                                .up = !m->down,
			                                .sessions = m->sessions,
			                                .connections = m->connections,
			                                .failures = m->failed,
			                                .error = m->error};
	}
	return k;
}
