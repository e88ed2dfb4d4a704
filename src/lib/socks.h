/*
 * The client side of a SOCKS5 handshake (RFC 1928, with RFC 1929
 * username/password), as bytes in and bytes out: no sockets here, so
 * that every reply a proxy can send is tested and fuzzed on its own.
 * conn.c runs it on a connection to the proxy before the SMTP dialogue.
 */
#ifndef CO_SOCKS_H
#define CO_SOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "proxy.h"

/* The longest message either side sends in the handshake. */
#define CO_SOCKS_MSG_MAX 515

typedef enum co_socks_step {
	CO_SOCKS_MORE = 0, /* need more bytes from the proxy */
	CO_SOCKS_SEND,     /* send the bytes in out, then read again */
	CO_SOCKS_DONE,     /* connected: later bytes are the target's */
	CO_SOCKS_ERROR     /* failed; *why says how */
} co_socks_step;

typedef struct co_socks {
	int state;
	int rep; /* the proxy's CONNECT reply code when it failed, else 0 */
	const co_proxy *proxy;
	unsigned char target[262]; /* the CONNECT request's ATYP, address, port */
	size_t target_len;
} co_socks;

/* Begin a handshake to reach addr (IPv4 or IPv6 with its port) through
 * proxy (kept by reference): the greeting to send goes to out (at least
 * CO_SOCKS_MSG_MAX bytes), its length to *outlen.  false for an address
 * family SOCKS5 cannot carry. */
bool co_socks_begin(co_socks *s, const co_proxy *proxy, const struct sockaddr *addr,
                    unsigned char *out, size_t *outlen);

/* The same to a host name (the proxy resolves it); false for a name
 * longer than 255 bytes. */
bool co_socks_begin_name(co_socks *s, const co_proxy *proxy, const char *name, unsigned port,
                         unsigned char *out, size_t *outlen);

/* A health check of the proxy: the greeting and, if the proxy wants it,
 * the password, but no CONNECT; DONE once the proxy has let us in. */
bool co_socks_begin_check(co_socks *s, const co_proxy *proxy, unsigned char *out, size_t *outlen);

/* Whether the proxy has let us in and been asked to CONNECT (from then on
 * a wait is the target's). */
bool co_socks_asked(const co_socks *s);

/* Whether a failed handshake says the target, not the proxy, was out of
 * reach (network or host unreachable, connection refused, TTL expired):
 * what a direct connection would have met. */
bool co_socks_target_failed(const co_socks *s);

/* Feed what the proxy sent.  *used is how many bytes of in were consumed
 * (on DONE, the rest is the target's); on SEND, out holds *outlen bytes
 * to send.  On ERROR, *why is a fixed phrase ("the proxy refused the
 * username or password", "the proxy could not reach the host: connection
 * refused", ...). */
co_socks_step co_socks_input(co_socks *s, const unsigned char *in, size_t len, size_t *used,
                             unsigned char *out, size_t *outlen, const char **why);

#endif
