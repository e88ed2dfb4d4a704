/*
 * Transport for one SMTP connection: a libevent bufferevent (and, after
 * STARTTLS, an OpenSSL filter on top of it) that hands the session
 * complete reply lines.  The session never reads or writes sockets.
 */
#ifndef CO_CONN_H
#define CO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "socks.h"

struct event_base;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct co_conn co_conn;

typedef enum co_conn_error {
	CO_CONN_REFUSED = 1, /* connect failed */
	CO_CONN_CLOSED,      /* the peer closed the connection */
	CO_CONN_IO,          /* read or write error */
	CO_CONN_LINE_TOO_LONG,
	CO_CONN_TLS,  /* TLS handshake or record failure */
	CO_CONN_PROXY /* the proxy is down, refused us or broke the handshake:
	                 says nothing about the host behind it */
} co_conn_error;

/* A SOCKS5 proxy to connect through: its address, resolved, and its
 * spec (for the handshake's credentials). */
typedef struct co_conn_proxy {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	co_proxy spec;
	char label[300]; /* "HOST:PORT" for messages, without the password */
} co_conn_proxy;

typedef struct co_conn_events {
	void (*connected)(void *arg); /* TCP connection up */
	void (*tls_ready)(void *arg); /* TLS handshake done */
	/* One line without its CRLF/LF; len <= CO_REPLY_LINE_MAX.  Return
	 * false when the connection was freed or must not deliver more. */
	bool (*line)(void *arg, const char *line, size_t len);
	void (*error)(void *arg, co_conn_error err, const char *detail);
} co_conn_events;

/*
 * Start connecting; events arrive on the loop.  source may be NULL.  With
 * proxy (kept by reference), the TCP connection goes to the proxy and
 * connected() comes once the proxy has connected to addr; the target's
 * refusals come as CO_CONN_REFUSED, the proxy's own trouble as
 * CO_CONN_PROXY.  Returns NULL with errno set when the socket cannot even
 * be created or the connect fails at once.
 */
co_conn *co_conn_connect(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
                         const struct sockaddr *source, socklen_t sourcelen,
                         const co_conn_proxy *proxy, const co_conn_events *ev, void *arg);

/* Queue bytes for sending.  Returns 0 or -1. */
int co_conn_send(co_conn *c, const char *data, size_t len);

/* Start a TLS handshake on the open connection (after "220" to
 * STARTTLS); sni may be NULL.  Returns 0 or -1. */
int co_conn_starttls(co_conn *c, SSL_CTX *ssl_ctx, const char *sni);

/* Bytes received and not yet delivered as lines. */
size_t co_conn_pending(const co_conn *c);

/* Stop delivering events, flush what was queued (QUIT), wait for the
 * server's answer or close (at most a couple of seconds), then close in
 * the background; the connection frees itself.  Safe inside a callback. */
void co_conn_close_after_flush(co_conn *c);
/* The same, and closed(arg) once it is gone (at once when it never
 * connected): what it held at the server is free then. */
void co_conn_close_then(co_conn *c, void (*closed)(void *arg), void *arg);

/* Close at once and free.  Safe inside a callback. */
void co_conn_free(co_conn *c);

/* Whether the connection waits on its proxy itself: its TCP connection,
 * greeting or password (not the CONNECT to the target). */
bool co_conn_proxy_stalled(const co_conn *c);

#endif
