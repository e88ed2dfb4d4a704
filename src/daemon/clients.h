/*
 * Connections per client, for the front ends' per-client caps: a table
 * keyed by the client's address (an inet peer), or by its user id (a
 * unix-socket peer: every local process of one user is one client).
 */
#ifndef CD_CLIENTS_H
#define CD_CLIENTS_H

#include <stdbool.h>
#include <sys/socket.h>

/* Who a connection comes from: family and address, or 'u' and a uid. */
typedef struct cd_client_key {
	unsigned char len;
	unsigned char b[1 + 16];
} cd_client_key;

typedef struct cd_clients cd_clients;

cd_clients *cd_clients_new(void);
void cd_clients_free(cd_clients *t);

/* The key of the peer of fd (sa as accept() gave it).  A peer we cannot
 * tell apart shares the one key of "unknown". */
void cd_client_key_of(cd_client_key *k, int fd, const struct sockaddr *sa, socklen_t salen);

/* Count one more connection of k, unless it has max already (or we are
 * out of memory): false then, and nothing is counted. */
bool cd_clients_add(cd_clients *t, const cd_client_key *k, unsigned max);

/* One connection of k has ended. */
void cd_clients_remove(cd_clients *t, const cd_client_key *k);

/* Connections of k counted now. */
unsigned cd_clients_count(const cd_clients *t, const cd_client_key *k);

/* Refused connections, logged at most once a second with their count,
 * so that a flood does not flood the log too. */
typedef struct cd_refusals {
	long long second; /* of the last line logged */
	unsigned n;       /* refused since */
} cd_refusals;

void cd_refused(cd_refusals *r, const char *frontend, const char *why);

#endif
