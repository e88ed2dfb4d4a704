/*
 * One asynchronous connection to a Redis server on the loop, shared by
 * whoever uses that server in one context (the cache's records, the
 * fleet's limits), so that their commands go down one pipe in order:
 * connect, AUTH, SELECT, a PING that says it is up, a reconnection with
 * backoff when it is lost, and a watchdog for a server that stops
 * answering (hiredis 0.14 has no timeouts of its own for it).
 *
 * Each user is told when the connection goes up and down; each command's
 * reply goes to the function it was sent with, or NULL when the
 * connection is gone.  The connection lives while it has users.
 */
#ifndef CO_REDIS_CONN_H
#define CO_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

struct event_base;

/* Where a Redis server is and how to log in (AUTH [user] password);
 * owned copies.  No password: user and password NULL. */
typedef struct co_redis_addr {
	char *host, *user, *password;
	unsigned port, db;
} co_redis_addr;

/* Copies into a; a password of "" is none, a user only goes with a
 * password.  0, or -1 when out of memory (a cleared). */
int co_redis_addr_set(co_redis_addr *a, const char *host, unsigned port, unsigned db,
                      const char *user, const char *password);
/* Frees the copies (the password wiped first). */
void co_redis_addr_clear(co_redis_addr *a);
/* The AUTH command for a's user and password into argv (3 slots); its
 * argc. */
int co_redis_addr_auth_argv(const co_redis_addr *a, const char **argv, size_t *lens);

/* nbytes (up to 64) random bytes in hex, NUL-terminated, into out
 * (2 * nbytes + 1 chars): a process's token on a shared server. */
void co_redis_make_token(char *out, size_t nbytes);

typedef struct co_redis_conn co_redis_conn;
typedef struct co_redis_user co_redis_user;

/* What a user is told; none may free the user or send a command. */
typedef struct co_redis_events {
	void (*up)(void *arg);                    /* the handshake was answered */
	void (*down)(void *arg, const char *why); /* lost or not made; a retry is due */
	unsigned reply_ms;                        /* a server silent this long is gone (0: 2 s) */
	unsigned backoff_max_ms;                  /* reconnections at least this often (0: 30 s) */
} co_redis_events;

/* A reply to a command: NULL when the connection is gone or the user
 * left (then priv is the callee's to free).  It may send commands, not
 * leave: it runs inside hiredis. */
typedef void co_redis_reply_fn(void *arg, redisReply *reply, void *priv);

/* A new connection to addr (copied), being made at once, and its first
 * user; NULL when out of memory.  The tightest reply_ms and
 * backoff_max_ms of its users hold. */
co_redis_user *co_redis_connect(struct event_base *base, const co_redis_addr *addr,
                                const co_redis_events *ev, void *arg);
/* Another user of the connection of u. */
co_redis_user *co_redis_join(co_redis_user *u, const co_redis_events *ev, void *arg);
/* Commands of u still unanswered get their NULL reply now (and nothing
 * later); the last user closes the connection after a moment for the
 * commands queued to reach the server. */
void co_redis_leave(co_redis_user *u);

/* 0, or -1 when there is no connection or no memory.  Commands sent
 * while it is being made follow the handshake. */
int co_redis_send(co_redis_user *u, co_redis_reply_fn *fn, void *priv, int argc, const char **argv,
                  const size_t *lens);

/* A connection is there (being made, or up). */
bool co_redis_open(const co_redis_user *u);
/* Its handshake was answered. */
bool co_redis_up(const co_redis_user *u);
/* Commands sent on it and not answered. */
size_t co_redis_inflight(const co_redis_user *u);
const co_redis_addr *co_redis_where_of(const co_redis_user *u);
struct event_base *co_redis_base_of(const co_redis_user *u);

#endif
