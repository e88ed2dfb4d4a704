/*
 * SOCKS5 proxies by name: pools of one or more proxies (the context's
 * default from callout_options.proxy, and those callout_ctx_add_proxy()
 * names), the pool each domain must use (callout_ctx_set_domain_proxy),
 * and the health of every proxy.  A session takes the least busy proxy
 * of its pool that is up and below the pool's cap; a proxy that fails
 * `failures` times in a row is down and left alone, checked (greeting
 * and password, no CONNECT) every check_ms until it lets us in again.
 */
#ifndef CO_PROXY_POOL_H
#define CO_PROXY_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include <event2/event.h>

#include <callout/callout.h>

#include "addr.h"
#include "conn.h"
#include "socks.h"

typedef struct co_proxy_group co_proxy_group;

/* One proxy of a pool. */
typedef struct co_proxy_member {
	co_conn_proxy conn; /* where it is, its credentials, its label */
	co_proxy_group *group;
	unsigned sessions; /* connections through it now */
	unsigned failures; /* its own failures in a row */
	bool down;
	unsigned long long connections, failed; /* since the start */
	char error[160];                        /* its last failure */
	struct event *timer;                    /* down: the next check, or its deadline */
	struct bufferevent *check;              /* a check under way */
	co_socks socks;
} co_proxy_member;

struct co_proxy_group {
	LIST_ENTRY(co_proxy_group) link;
	struct co_proxies *owner;
	char name[64];
	unsigned cap;  /* connections through one proxy at once */
	unsigned next; /* where the search for the least busy starts */
	unsigned n;
	co_proxy_member members[];
};

/* A domain's own pool, or none (direct). */
typedef struct co_proxy_domain {
	LIST_ENTRY(co_proxy_domain) link;
	co_proxy_group *group; /* NULL: direct */
	char domain[CO_DOMAIN_MAX + 1];
} co_proxy_domain;

typedef struct co_proxies {
	struct event_base *base;
	LIST_HEAD(, co_proxy_group) groups;
	LIST_HEAD(, co_proxy_domain) domains;
	unsigned failures;             /* in a row that put a proxy down */
	unsigned check_ms, timeout_ms; /* between checks of a proxy down; a check's deadline */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
} co_proxies;

co_proxies *co_proxies_new(struct event_base *base, unsigned failures, unsigned check_ms,
                           unsigned timeout_ms, void (*log)(void *, const char *), void *log_arg);
/* Every pool and its checks; connections through them must be gone. */
void co_proxies_free(co_proxies *px);

/* Add a pool: specs is "socks5://...[,socks5://...]" (each resolved
 * now), cap the connections at once through each (0: 100).  EINVAL for
 * a name that is taken, "default" (unless for_default) or "direct", a
 * spec that does not parse or a host that does not resolve. */
callout_status co_proxies_add(co_proxies *px, const char *name, const char *specs, unsigned cap,
                              co_proxy_group **out);
/* A pool by name ("default" included); NULL if none. */
co_proxy_group *co_proxies_find(co_proxies *px, const char *name);
/* Make domain use group (NULL: direct). */
callout_status co_proxies_set_domain(co_proxies *px, const char *domain, co_proxy_group *group);
/* Whether domain has its own choice; then *group is it (NULL: direct). */
bool co_proxies_domain(const co_proxies *px, const char *domain, co_proxy_group **group);

typedef enum co_proxy_choice {
	CO_PROXY_PICKED,
	CO_PROXY_FULL, /* every proxy up is at the cap: wait */
	CO_PROXY_DOWN  /* every proxy of the pool is down */
} co_proxy_choice;

/* The proxy a new connection goes through (not yet counted: hold it). */
co_proxy_choice co_proxy_pick(co_proxy_group *g, co_proxy_member **out, char *why, size_t len);
/* Whether every proxy of the pool is down (then why says so). */
bool co_proxy_group_down(const co_proxy_group *g, char *why, size_t len);
/* A connection through m opens; and is gone. */
void co_proxy_hold(co_proxy_member *m);
void co_proxy_release(co_proxy_member *m);
/* What a connection through m says of it: it failed (the proxy's own
 * fault, text says how) or it let us through. */
void co_proxy_report(co_proxy_member *m, bool failed, const char *text);

/* The health of every proxy, as callout_ctx_proxies() gives it. */
size_t co_proxies_health(const co_proxies *px, callout_proxy_health *out, size_t n);

#endif
