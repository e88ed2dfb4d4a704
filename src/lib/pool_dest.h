/*
 * The destinations the pool has met (inside pool.c's co_pool): the
 * servers, by address and port, and the domains, each with its key in
 * the limits backend, found by hash and forgotten when nothing refers to
 * them any more.  What is done with them (sessions, queues, slots) is
 * pool.c's.
 */
#ifndef CO_POOL_DEST_H
#define CO_POOL_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "addr.h"
#include "limit.h"
#include "pool.h"

#define CO_PDEST_BUCKETS 4096
#define CO_ADDR_KEY_MAX  19 /* family, IPv6 address, port */

/* A server as the sessions know it; its limits are the pool's limits'. */
typedef struct co_phost {
	SLIST_ENTRY(co_phost) hlink;  /* in its hash bucket */
	struct sockaddr_storage addr; /* port included */
	unsigned refs;                /* our sessions to it */
	unsigned rcpt_cap;            /* learned from "too many recipients"; 0: none */
	co_limit_key key;             /* its key in the limits */
	unsigned char id[CO_ADDR_KEY_MAX];
} co_phost;

typedef struct co_pdom {
	SLIST_ENTRY(co_pdom) hlink; /* in its hash bucket */
	unsigned refs;              /* our sessions to it */
	co_limit_key key;
	struct co_pool_jobs queue;      /* its jobs waiting for a slot */
	LIST_HEAD(, co_psess) joinable; /* its sessions that may take more jobs */
	LIST_ENTRY(co_pdom) wlink;      /* in the pool's domains with jobs waiting */
	bool waiting;                   /* on that list */
	char name[CO_DOMAIN_MAX + 1];
} co_pdom;

typedef struct co_pdests {
	SLIST_HEAD(co_phost_list, co_phost) hosts[CO_PDEST_BUCKETS];
	SLIST_HEAD(co_pdom_list, co_pdom) doms[CO_PDEST_BUCKETS];
} co_pdests;

/* The bytes that name a server (family, address, port) in out; their length. */
size_t co_addr_key(const struct sockaddr_storage *ss, unsigned char out[CO_ADDR_KEY_MAX]);
/* The server at ss; made when create is set.  NULL: none, or out of memory. */
co_phost *co_pdest_host(co_pdests *t, const struct sockaddr_storage *ss, bool create);
/* The domain name, made if new; NULL when out of memory. */
co_pdom *co_pdest_domain(co_pdests *t, const char *name);
/* Forget the servers and domains nothing refers to (no session, no
 * queued job, no learned cap). */
void co_pdests_prune(co_pdests *t);
/* Forget them all. */
void co_pdests_clear(co_pdests *t);

#endif
