/*
 * The servers and domains the pool has met (see pool_dest.h): two hash
 * tables, and their keys in the limits backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "hash.h"
#include "pool_dest.h"

static size_t hash_bytes(const void *p, size_t n)
{
	return co_hash(p, n) % CO_PDEST_BUCKETS;
}

size_t co_addr_key(const struct sockaddr_storage *ss, unsigned char out[CO_ADDR_KEY_MAX])
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		out[0] = 6;
		memcpy(out + 1, &a->sin6_addr, 16);
		memcpy(out + 17, &a->sin6_port, 2);
		return 19;
	}
	const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
	out[0] = 4;
	memcpy(out + 1, &a->sin_addr, 4);
	memcpy(out + 5, &a->sin_port, 2);
	return 7;
}

co_phost *co_pdest_host(co_pdests *t, const struct sockaddr_storage *ss, bool create)
{
	unsigned char k[CO_ADDR_KEY_MAX];
	size_t n = co_addr_key(ss, k);
	size_t b = hash_bytes(k, n);
	co_phost *h;
	SLIST_FOREACH(h, &t->hosts[b], hlink)
	if (h->key.len == n && memcmp(k, h->id, n) == 0)
		return h;
	if (!create)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->addr = *ss;
	memcpy(h->id, k, n);
	h->key = (co_limit_key){CO_LIMIT_HOST, h->id, n};
	SLIST_INSERT_HEAD(&t->hosts[b], h, hlink);
	return h;
}

co_pdom *co_pdest_domain(co_pdests *t, const char *name)
{
	size_t b = hash_bytes(name, strlen(name));
	co_pdom *d;
	SLIST_FOREACH(d, &t->doms[b], hlink)
	if (strcmp(d->name, name) == 0)
		return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	snprintf(d->name, sizeof(d->name), "%s", name);
	TAILQ_INIT(&d->queue);
	LIST_INIT(&d->joinable);
	d->key = (co_limit_key){CO_LIMIT_DOMAIN, d->name, strlen(d->name)};
	SLIST_INSERT_HEAD(&t->doms[b], d, hlink);
	return d;
}

void co_pdests_prune(co_pdests *t)
{
	/* Each bucket taken apart and the kept ones put back: glibc's
	 * sys/queue.h has no SLIST_REMOVE_AFTER, and order does not matter. */
	for (size_t i = 0; i < CO_PDEST_BUCKETS; i++) {
		struct co_phost_list hosts = SLIST_HEAD_INITIALIZER(hosts);
		struct co_pdom_list doms = SLIST_HEAD_INITIALIZER(doms);
		co_phost *h;
		co_pdom *d;

		while ((h = SLIST_FIRST(&t->hosts[i])) != NULL) {
			SLIST_REMOVE_HEAD(&t->hosts[i], hlink);
			if (!h->refs && !h->rcpt_cap)
				free(h);
			else
				SLIST_INSERT_HEAD(&hosts, h, hlink);
		}
		t->hosts[i] = hosts;
		while ((d = SLIST_FIRST(&t->doms[i])) != NULL) {
			SLIST_REMOVE_HEAD(&t->doms[i], hlink);
			if (!d->refs && TAILQ_EMPTY(&d->queue))
				free(d);
			else
				SLIST_INSERT_HEAD(&doms, d, hlink);
		}
		t->doms[i] = doms;
	}
}

void co_pdests_clear(co_pdests *t)
{
	for (size_t i = 0; i < CO_PDEST_BUCKETS; i++) {
		co_phost *h;
		co_pdom *d;

		while ((h = SLIST_FIRST(&t->hosts[i])) != NULL) {
			SLIST_REMOVE_HEAD(&t->hosts[i], hlink);
			free(h);
		}
		while ((d = SLIST_FIRST(&t->doms[i])) != NULL) {
			SLIST_REMOVE_HEAD(&t->doms[i], hlink);
			free(d);
		}
	}
}
