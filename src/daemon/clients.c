/*
 * Connections per client (clients.h): a chained hash table whose entries
 * live while their client has a connection open, so its size is bounded
 * by the front end's connection cap.  The keys are chosen by whoever
 * connects: co_hash (a keyed hash) spreads them.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "../lib/hash.h"
#include "clients.h"
#include "clock.h"
#include "daemon.h"

#define BUCKETS 1024

typedef struct entry {
	LIST_ENTRY(entry) link; /* in its bucket */
	cd_client_key key;
	unsigned count;
} entry;

struct cd_clients {
	LIST_HEAD(bucket, entry) buckets[BUCKETS];
};

cd_clients *cd_clients_new(void)
{
	return calloc(1, sizeof(cd_clients));
}

void cd_clients_free(cd_clients *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < BUCKETS; i++) {
		entry *e;

		while ((e = LIST_FIRST(&t->buckets[i])) != NULL) {
			LIST_REMOVE(e, link);
			free(e);
		}
	}
	free(t);
}

void cd_client_key_of(cd_client_key *k, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct sockaddr_storage ss = {0}; /* aligned, unlike what sa may be */

	memset(k, 0, sizeof(*k));
	if (sa && salen > 0 && (size_t)salen <= sizeof(ss))
		memcpy(&ss, sa, (size_t)salen);
	k->b[0] = (unsigned char)ss.ss_family;
	k->len = 1;
	if (ss.ss_family == AF_INET) {
		memcpy(k->b + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		k->len += 4;
	} else if (ss.ss_family == AF_INET6) {
		memcpy(k->b + 1, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		k->len += 16;
	} else if (ss.ss_family == AF_UNIX) {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			memcpy(k->b + 1, &cred.uid, sizeof(cred.uid));
			k->len += sizeof(cred.uid);
		}
	}
}

static struct bucket *bucket_of(const cd_clients *t, const cd_client_key *k)
{
	return (struct bucket *)&t->buckets[co_hash(k->b, k->len) % BUCKETS];
}

static entry *find(const cd_clients *t, const cd_client_key *k)
{
	entry *e;

	LIST_FOREACH(e, bucket_of(t, k), link)
	if (e->key.len == k->len && memcmp(e->key.b, k->b, k->len) == 0)
		return e;
	return NULL;
}

bool cd_clients_add(cd_clients *t, const cd_client_key *k, unsigned max)
{
	entry *e = find(t, k);

	if (!e) {
		if (max == 0 || !(e = calloc(1, sizeof(entry))))
			return false;
		e->key = *k;
		LIST_INSERT_HEAD(bucket_of(t, k), e, link);
	}
	if (e->count >= max)
		return false;
	e->count++;
	return true;
}

void cd_clients_remove(cd_clients *t, const cd_client_key *k)
{
	entry *e = find(t, k);

	if (!e)
		return;
	if (--e->count == 0) {
		LIST_REMOVE(e, link);
		free(e);
	}
}

unsigned cd_clients_count(const cd_clients *t, const cd_client_key *k)
{
	entry *e = find(t, k);

	return e ? e->count : 0;
}

void cd_refused(cd_refusals *r, const char *frontend, const char *why)
{
	long long second = co_clock_ms(NULL, NULL) / 1000;

	r->n++;
	if (second == r->second)
		return;
	cd_log(CD_LOG_WARNING, "%s: refused %u connection(s): %s", frontend, r->n, why);
	r->second = second;
	r->n = 0;
}
