/* One SMTP connection's transport: bufferevent in, complete lines out. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "conn.h"
#include "reply.h"

/* How long a closing connection may take to flush its QUIT and hear the
 * server's answer (or its close). */
#define CLOSE_LINGER_MS 2000

struct co_conn {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *linger;   /* closing: poll the flush, give up after a while */
	long long linger_until; /* co_clock_ms() */
	co_conn_events ev;
	void *arg;
	bool connecting;
	bool proxying; /* connected to the proxy, its handshake under way */
	const co_conn_proxy *proxy;
	co_socks socks;
	bool tls_handshaking;
	bool closing;
	void (*closed)(void *arg); /* closing: told when it is gone */
	void *closed_arg;
	unsigned dispatching; /* inside a callback to the session */
	bool dead;            /* freed while dispatching: free on the way out */
	char line[CO_REPLY_LINE_MAX + 1];
};

static void destroy(co_conn *c)
{
	void (*closed)(void *) = c->closed;
	void *closed_arg = c->closed_arg;

	if (c->bev)
		bufferevent_free(c->bev);
	if (c->linger)
		event_free(c->linger);
	free(c);
	if (closed)
		closed(closed_arg);
}

void co_conn_free(co_conn *c)
{
	if (!c)
		return;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->dispatching) {
		c->dead = true;
		return;
	}
	destroy(c);
}

/* Deliver every complete line; stop when the session says so. */
static void deliver_lines(co_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (!c->dead && !c->closing) {
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > CO_REPLY_LINE_MAX + 1)
				c->ev.error(c->arg, CO_CONN_LINE_TOO_LONG,
				            "reply line longer than 1000 octets");
			return;
		}
		size_t len = (size_t)p.pos;
		if (len > CO_REPLY_LINE_MAX) {
			c->ev.error(c->arg, CO_CONN_LINE_TOO_LONG,
			            "reply line longer than 1000 octets");
			return;
		}
		evbuffer_remove(in, c->line, len);
		evbuffer_drain(in, eol_len);
		c->line[len] = '\0';
		if (!c->ev.line(c->arg, c->line, len))
			return;
	}
}

static const char *tls_error_text(co_conn *c, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(c->bev);
	if (!e)
		return "TLS failure";
	ERR_error_string_n(e, buf, len);
	return buf;
}

/* Feed the proxy's bytes to the handshake; true once it is done and the
 * target's bytes may follow. */
static bool proxy_step(co_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t len = evbuffer_get_length(in), used, n;
	const char *why;
	char msg[400];

	for (;;) {
		size_t take = len < CO_SOCKS_MSG_MAX ? len : CO_SOCKS_MSG_MAX;
		const unsigned char *data = take ? evbuffer_pullup(in, (ssize_t)take) : NULL;
		co_socks_step st =
		    co_socks_input(&c->socks, data ? data : out, take, &used, out, &n, &why);
		evbuffer_drain(in, used);
		len -= used;
		switch (st) {
		case CO_SOCKS_MORE:
			return false;
		case CO_SOCKS_SEND:
			if (bufferevent_write(c->bev, out, n) < 0) {
				c->ev.error(c->arg, CO_CONN_IO, "out of memory");
				return false;
			}
			continue;
		case CO_SOCKS_DONE:
			c->proxying = false;
			return true;
		case CO_SOCKS_ERROR:
			snprintf(msg, sizeof(msg), "proxy %s: %s", c->proxy->label, why);
			c->ev.error(c->arg,
			            co_socks_target_failed(&c->socks) ? CO_CONN_REFUSED
			                                              : CO_CONN_PROXY,
			            msg);
			return false;
		}
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	co_conn *c = arg;
	(void)bev;
	c->dispatching++;
	if (c->proxying) {
		if (!proxy_step(c) || c->dead)
			goto out;
		c->connecting = false;
		c->ev.connected(c->arg);
	}
	/* libevent may deliver the first data before the CONNECTED event:
	 * data means we are connected. */
	if (c->connecting && !c->tls_handshaking) {
		c->connecting = false;
		c->ev.connected(c->arg);
	}
	if (!c->dead && !c->closing)
		deliver_lines(c);
out:
	c->dispatching--;
	if (c->dead)
		destroy(c);
}

/* The proxy's connection ended or failed before its handshake did. */
static void proxy_lost(co_conn *c, short what)
{
	char msg[400];
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_EOF)
		snprintf(msg, sizeof(msg), "proxy %s: closed the connection in the handshake",
		         c->proxy->label);
	else
		snprintf(msg, sizeof(msg), "proxy %s: %s", c->proxy->label,
		         err ? strerror(err) : "connect failed");
	c->ev.error(c->arg, CO_CONN_PROXY, msg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	co_conn *c = arg;
	char buf[160];
	(void)bev;

	c->dispatching++;
	if (c->proxying) {
		/* connected to the proxy: the handshake goes on in on_read */
		if (!(what & BEV_EVENT_CONNECTED)) {
			if ((what & BEV_EVENT_EOF) &&
			    evbuffer_get_length(bufferevent_get_input(c->bev)))
				proxy_step(c); /* its last words may say why */
			if (!c->dead && c->proxying)
				proxy_lost(c, what);
		}
		goto out;
	}
	if (c->connecting && !c->tls_handshaking && (what & BEV_EVENT_EOF)) {
		/* Connected, then closed before the CONNECTED event ran. */
		c->connecting = false;
		c->ev.connected(c->arg);
		if (c->dead)
			goto out;
	}
	if (what & BEV_EVENT_CONNECTED) {
		if (c->tls_handshaking) {
			c->tls_handshaking = false;
			c->ev.tls_ready(c->arg);
		} else if (c->connecting) {
			c->connecting = false;
			c->ev.connected(c->arg);
		}
	} else if (c->connecting) {
		int err = EVUTIL_SOCKET_ERROR();
		c->ev.error(c->arg, CO_CONN_REFUSED, err ? strerror(err) : "connect failed");
	} else if (c->tls_handshaking) {
		c->ev.error(c->arg, CO_CONN_TLS, tls_error_text(c, buf, sizeof(buf)));
	} else {
		/* Lines that arrived with the close are still evidence. */
		deliver_lines(c);
		if (!c->dead && !c->closing) {
			if (what & BEV_EVENT_EOF)
				c->ev.error(c->arg, CO_CONN_CLOSED, "connection closed by server");
			else if (bufferevent_get_openssl_error(c->bev))
				c->ev.error(c->arg, CO_CONN_TLS,
				            tls_error_text(c, buf, sizeof(buf)));
			else
				c->ev.error(c->arg, CO_CONN_IO, strerror(EVUTIL_SOCKET_ERROR()));
		}
	}
out:
	c->dispatching--;
	if (c->dead)
		destroy(c);
}

co_conn *co_conn_connect(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
                         const struct sockaddr *source, socklen_t sourcelen,
                         const co_conn_proxy *proxy, const co_conn_events *ev, void *arg)
{
	co_conn *c = calloc(1, sizeof(*c));
	unsigned char greeting[CO_SOCKS_MSG_MAX];
	size_t glen = 0;
	int fd = -1;

	if (!c)
		return NULL;
	c->base = base;
	c->ev = *ev;
	c->arg = arg;
	c->connecting = true;
	if (proxy) {
		c->proxy = proxy;
		c->proxying = true;
		if (!co_socks_begin(&c->socks, &proxy->spec, addr, greeting, &glen)) {
			errno = EAFNOSUPPORT;
			goto fail;
		}
		/* the TCP connection is the proxy's */
		addr = (const struct sockaddr *)&proxy->addr;
		addrlen = proxy->addrlen;
		if (source && source->sa_family != addr->sa_family)
			source = NULL; /* the source address was for the target's family */
	}

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (source && bind(fd, source, sourcelen) < 0)
		goto fail;
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto fail;
	fd = -1; /* owned by the bufferevent now */
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	if (bufferevent_socket_connect(c->bev, addr, (int)addrlen) < 0)
		goto fail;
	/* sent once connected: SOCKS5 lets the greeting go at once */
	if (glen && bufferevent_write(c->bev, greeting, glen) < 0)
		goto fail;
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;

fail : {
	int saved = errno;
	if (fd >= 0)
		close(fd);
	destroy(c);
	errno = saved ? saved : ECONNREFUSED;
	return NULL;
}
}

int co_conn_send(co_conn *c, const char *data, size_t len)
{
	return bufferevent_write(c->bev, data, len);
}

int co_conn_starttls(co_conn *c, SSL_CTX *ssl_ctx, const char *sni)
{
	SSL *ssl = SSL_new(ssl_ctx);
	if (!ssl)
		return -1;
	if (sni && *sni)
		SSL_set_tlsext_host_name(ssl, sni);
	struct bufferevent *tls = bufferevent_openssl_filter_new(
	    c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		return -1;
	}
	/* Servers often close without a TLS close_notify; that is a close,
	 * not an attack on a callout. */
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	c->bev = tls;
	c->tls_handshaking = true;
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

size_t co_conn_pending(const co_conn *c)
{
	return evbuffer_get_length(bufferevent_get_input(c->bev));
}

static bool output_flushed(co_conn *c)
{
	/* With TLS, the filter's buffer drains into the socket's one first. */
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	       (!under || evbuffer_get_length(bufferevent_get_output(under)) == 0);
}

static void linger_poll(evutil_socket_t fd, short what, void *arg)
{
	co_conn *c = arg;
	(void)fd;
	(void)what;
	if (co_clock_ms(NULL, NULL) >= c->linger_until) {
		destroy(c);
		return;
	}
	struct timeval tick = {0, 10 * 1000};
	evtimer_add(c->linger, &tick);
}

/* The server answered the QUIT (or said anything): it is done with us. */
static void closing_read(struct bufferevent *bev, void *arg)
{
	co_conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_input(bev)) && output_flushed(c))
		destroy(c);
}

static void closing_written(struct bufferevent *bev, void *arg)
{
	(void)bev;
	(void)arg; /* flushed: now the answer, or the server's close */
}

static void closing_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	destroy(arg);
}

bool co_conn_proxy_stalled(const co_conn *c)
{
	return c->proxying && !co_socks_asked(&c->socks);
}

void co_conn_close_after_flush(co_conn *c)
{
	co_conn_close_then(c, NULL, NULL);
}

void co_conn_close_then(co_conn *c, void (*closed)(void *arg), void *arg)
{
	c->closing = true;
	c->closed = closed;
	c->closed_arg = arg;
	if (c->connecting) {
		co_conn_free(c);
		return;
	}
	c->linger = evtimer_new(c->base, linger_poll, c);
	if (!c->linger) {
		co_conn_free(c);
		return;
	}
	c->linger_until = co_clock_ms(NULL, NULL) + CLOSE_LINGER_MS;
	/* What came before the QUIT's answer is of no interest. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	struct timeval tick = {0, 10 * 1000};
	evtimer_add(c->linger, &tick);
	bufferevent_setcb(c->bev, closing_read, closing_written, closing_event, c);
	bufferevent_enable(c->bev, EV_READ);
}
