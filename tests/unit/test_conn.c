/* Unit tests for src/lib/conn.c: one SMTP connection's transport, over
 * TCP on loopback against a peer on the same event loop: connect and
 * refusal, lines out of the byte stream, the line limit, closing, and a
 * STARTTLS handshake that fails. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "loopback.h"
#include "reply.h"

/* The server end: sends greeting on accept, answer to the first bytes it
 * gets; hangs up after either when told. */
typedef struct peer {
	int lfd;
	struct sockaddr_in addr;
	struct event *accept_ev;
	struct bufferevent *bev;
	const char *greeting;
	bool close_after_greeting;
	const char *answer;
	bool close_after_answer;
	bool hangup;
	char got[256]; /* what the client sent */
	bool eof;      /* the client's side closed */
} peer;

/* What the transport told us, in order: "connected", "tls",
 * "line:<text>", "error:<code>" joined by '|'. */
typedef struct client {
	co_conn *c;
	char log[4096];
	size_t lens[8];
	unsigned nlines;
	unsigned stop_after; /* line() returns false from this line on (0: never) */
	bool free_in_line;   /* co_conn_free() inside the first line */
	SSL_CTX *tls;        /* STARTTLS after the first line */
	bool ended;
	char detail[160];
} client;

typedef struct ctx {
	struct event_base *base;
	struct event *watchdog;
	bool expired;
	peer pe;
	client cl;
} ctx;

static void logf_(client *cl, const char *what)
{
	size_t used = strlen(cl->log);
	snprintf(cl->log + used, sizeof(cl->log) - used, "%s%s", used ? "|" : "", what);
}

static void on_connected(void *arg)
{
	logf_(arg, "connected");
}

static void on_tls_ready(void *arg)
{
	logf_(arg, "tls");
}

static bool on_line(void *arg, const char *line, size_t len)
{
	client *cl = arg;
	char buf[CO_REPLY_LINE_MAX + 8];
	/* long lines by length only */
	if (len > 40)
		snprintf(buf, sizeof(buf), "line:%zu octets", len);
	else
		snprintf(buf, sizeof(buf), "line:%.*s", (int)len, line);
	logf_(cl, buf);
	if (cl->nlines < 8)
		cl->lens[cl->nlines] = len;
	cl->nlines++;
	if (cl->free_in_line) {
		co_conn_free(cl->c);
		cl->c = NULL;
		return false;
	}
	if (cl->tls) {
		if (co_conn_starttls(cl->c, cl->tls, "mx.test") < 0)
			logf_(cl, "starttls failed");
		return false;
	}
	return !(cl->stop_after && cl->nlines >= cl->stop_after);
}

static void on_error(void *arg, co_conn_error err, const char *detail)
{
	client *cl = arg;
	static const char *const names[] = {"?", "REFUSED", "CLOSED", "IO", "LINE_TOO_LONG", "TLS"};
	char buf[64];
	snprintf(buf, sizeof(buf), "error:%s", (unsigned)err < 6 ? names[err] : "?");
	logf_(cl, buf);
	snprintf(cl->detail, sizeof(cl->detail), "%s", detail ? detail : "(null)");
	cl->ended = true;
}

static const co_conn_events events = {
    .connected = on_connected, .tls_ready = on_tls_ready, .line = on_line, .error = on_error};

static void pe_close(peer *pe)
{
	if (pe->bev)
		bufferevent_free(pe->bev);
	pe->bev = NULL;
}

static void pe_send(peer *pe, const char *text, bool close)
{
	if (text)
		bufferevent_write(pe->bev, text, strlen(text));
	pe->hangup |= close;
	if (pe->hangup && evbuffer_get_length(bufferevent_get_output(pe->bev)) == 0)
		pe_close(pe);
}

static void pe_written(struct bufferevent *bev, void *arg)
{
	peer *pe = arg;
	(void)bev;
	if (pe->hangup)
		pe_close(pe);
}

static void pe_read(struct bufferevent *bev, void *arg)
{
	peer *pe = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t used = strlen(pe->got), n = evbuffer_get_length(in);
	bool first = used == 0;
	if (n > sizeof(pe->got) - 1 - used)
		n = sizeof(pe->got) - 1 - used;
	evbuffer_remove(in, pe->got + used, n);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (first && (pe->answer || pe->close_after_answer))
		pe_send(pe, pe->answer, pe->close_after_answer);
}

static void pe_event(struct bufferevent *bev, short what, void *arg)
{
	peer *pe = arg;
	(void)bev;
	(void)what;
	pe->eof = true;
	pe_close(pe);
}

static void pe_accept(evutil_socket_t lfd, short what, void *arg)
{
	ctx *x = arg;
	peer *pe = &x->pe;
	(void)what;
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return;
	evutil_make_socket_nonblocking(fd);
	pe->bev = bufferevent_socket_new(x->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(pe->bev, pe_read, pe_written, pe_event, pe);
	bufferevent_enable(pe->bev, EV_READ | EV_WRITE);
	pe_send(pe, pe->greeting, pe->close_after_greeting);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	ctx *x = arg;
	(void)fd;
	(void)what;
	x->expired = true;
}

/* A loop, and a peer listening on 127.0.0.1 (listen false: the port is
 * bound, so nobody else takes it, but refuses connections). */
static void ctx_init(ctx *x, bool listening)
{
	memset(x, 0, sizeof(*x));
	x->base = event_base_new();
	assert_non_null(x->base);
	x->watchdog = evtimer_new(x->base, on_watchdog, x);
	struct timeval tv = {10, 0};
	evtimer_add(x->watchdog, &tv);

	peer *pe = &x->pe;
	pe->lfd = loopback_socket(SOCK_STREAM, &pe->addr);
	assert_true(pe->lfd >= 0);
	if (listening) {
		assert_int_equal(listen(pe->lfd, 4), 0);
		pe->accept_ev = event_new(x->base, pe->lfd, EV_READ, pe_accept, x);
		event_add(pe->accept_ev, NULL);
	}
}

static void ctx_connect(ctx *x)
{
	x->cl.c = co_conn_connect(x->base, (struct sockaddr *)&x->pe.addr, sizeof(x->pe.addr), NULL,
	                          0, NULL, &events, &x->cl);
	assert_non_null(x->cl.c);
}

#define SPIN(x, cond)                                                                              \
	do {                                                                                       \
		while (!(cond) && !(x)->expired)                                                   \
			event_base_loop((x)->base, EVLOOP_ONCE);                                   \
		assert_false((x)->expired);                                                        \
	} while (0)

static void ctx_free(ctx *x)
{
	event_free(x->watchdog);
	if (x->pe.accept_ev)
		event_free(x->pe.accept_ev);
	co_conn_free(x->cl.c);
	pe_close(&x->pe);
	event_base_dispatch(x->base); /* whatever still closes */
	close(x->pe.lfd);
	event_base_free(x->base);
}

static void test_lines(void **state)
{
	(void)state;
	ctx x;
	ctx_init(&x, true);
	/* CRLF or bare LF end a line; a CR inside it is part of it; lines
	 * that come with the close are delivered before it */
	x.pe.greeting = "220-mx.test\r\n220 ready\nplain\r\nx\ry\r\n\r\nlast";
	x.pe.close_after_greeting = true;
	ctx_connect(&x);
	SPIN(&x, x.cl.ended);
	assert_string_equal(x.cl.log, "connected|line:220-mx.test|line:220 ready|line:plain|"
	                              "line:x\ry|line:|error:CLOSED");
	assert_int_equal(x.cl.lens[0], 11);
	assert_int_equal(x.cl.lens[3], 3);
	assert_int_equal(x.cl.lens[4], 0);
	/* an unterminated tail is not a line */
	assert_int_equal(x.cl.nlines, 5);
	assert_string_equal(x.cl.detail, "connection closed by server");
	ctx_free(&x);
}

static void test_refused(void **state)
{
	(void)state;
	ctx x;
	ctx_init(&x, false);
	ctx_connect(&x);
	SPIN(&x, x.cl.ended);
	assert_string_equal(x.cl.log, "error:REFUSED");
	assert_string_equal(x.cl.detail, strerror(ECONNREFUSED));
	ctx_free(&x);
}

static void test_fails_at_once(void **state)
{
	(void)state;
	ctx x;
	ctx_init(&x, true);

	/* the source cannot be bound: our listener has it */
	errno = 0;
	co_conn *c =
	    co_conn_connect(x.base, (struct sockaddr *)&x.pe.addr, sizeof(x.pe.addr),
	                    (struct sockaddr *)&x.pe.addr, sizeof(x.pe.addr), NULL, &events, &x.cl);
	assert_null(c);
	assert_int_equal(errno, EADDRINUSE);

	/* no socket for the family */
	struct sockaddr sa = {.sa_family = AF_MAX};
	errno = 0;
	c = co_conn_connect(x.base, &sa, sizeof(sa), NULL, 0, NULL, &events, &x.cl);
	assert_null(c);
	assert_int_equal(errno, EAFNOSUPPORT);
	assert_string_equal(x.cl.log, ""); /* and no event, now or later */
	event_base_loop(x.base, EVLOOP_NONBLOCK);
	assert_string_equal(x.cl.log, "");
	ctx_free(&x);
}

/* A greeting of one line, len octets before its end. */
static char *line_of(char *buf, size_t len, const char *end)
{
	memcpy(buf, "220 ", 4);
	memset(buf + 4, 'x', len - 4);
	strcpy(buf + len, end);
	return buf;
}

static void test_line_limit(void **state)
{
	(void)state;
	char buf[CO_REPLY_LINE_MAX + 200];
	ctx x;

	/* CO_REPLY_LINE_MAX octets are a line */
	ctx_init(&x, true);
	x.pe.greeting = line_of(buf, CO_REPLY_LINE_MAX, "\r\n");
	ctx_connect(&x);
	SPIN(&x, x.cl.nlines == 1);
	assert_string_equal(x.cl.log, "connected|line:1000 octets");
	assert_int_equal(x.cl.lens[0], CO_REPLY_LINE_MAX);
	ctx_free(&x);

	/* one more is an error, and nothing of it is delivered */
	ctx_init(&x, true);
	x.pe.greeting = line_of(buf, CO_REPLY_LINE_MAX + 1, "\r\n220 next\r\n");
	ctx_connect(&x);
	SPIN(&x, x.cl.ended);
	assert_string_equal(x.cl.log, "connected|error:LINE_TOO_LONG");
	ctx_free(&x);

	/* seen before the line ends: a server that never ends it cannot
	 * make us buffer more */
	ctx_init(&x, true);
	x.pe.greeting = line_of(buf, CO_REPLY_LINE_MAX + 100, "");
	ctx_connect(&x);
	SPIN(&x, x.cl.ended);
	assert_string_equal(x.cl.log, "connected|error:LINE_TOO_LONG");
	assert_false(x.pe.eof); /* the server did not end it */
	ctx_free(&x);
}

static void test_stop_delivery(void **state)
{
	(void)state;
	ctx x;
	ctx_init(&x, true);
	x.pe.greeting = "220 one\r\n220 two\r\n220 three\r\n";
	x.cl.stop_after = 1;
	ctx_connect(&x);
	SPIN(&x, x.cl.nlines == 1 && co_conn_pending(x.cl.c) > 0);
	/* false from line(): the rest waits, undelivered */
	assert_string_equal(x.cl.log, "connected|line:220 one");
	assert_int_equal(co_conn_pending(x.cl.c), strlen("220 two\r\n220 three\r\n"));
	ctx_free(&x);
}

static void test_free_in_callback(void **state)
{
	(void)state;
	ctx x;
	ctx_init(&x, true);
	x.pe.greeting = "220 one\r\n220 two\r\n";
	x.cl.free_in_line = true;
	ctx_connect(&x);
	/* the free closes the socket at once */
	SPIN(&x, x.cl.nlines == 1 && x.pe.eof);
	/* nothing after the free: no second line, no error */
	event_base_loop(x.base, EVLOOP_NONBLOCK);
	assert_string_equal(x.cl.log, "connected|line:220 one");
	ctx_free(&x);
}

static void test_close_after_flush(void **state)
{
	(void)state;
	ctx x;
	ctx_init(&x, true);
	x.pe.greeting = "220 ready\r\n";
	x.cl.stop_after = 1;
	ctx_connect(&x);
	SPIN(&x, x.cl.nlines == 1);
	assert_int_equal(co_conn_send(x.cl.c, "EHLO a\r\n", 8), 0);
	assert_int_equal(co_conn_send(x.cl.c, "QUIT\r\n", 6), 0);
	co_conn_close_after_flush(x.cl.c);
	x.cl.c = NULL;
	/* what was queued arrives, then the close; no event reaches us */
	SPIN(&x, x.pe.eof);
	assert_string_equal(x.pe.got, "EHLO a\r\nQUIT\r\n");
	assert_string_equal(x.cl.log, "connected|line:220 ready");
	ctx_free(&x);
}

static void tls_fails(const char *answer, bool close)
{
	ctx x;
	ctx_init(&x, true);
	x.pe.greeting = "220 go ahead\r\n";
	x.pe.answer = answer;
	x.pe.close_after_answer = close;
	x.cl.tls = SSL_CTX_new(TLS_client_method());
	assert_non_null(x.cl.tls);
	ctx_connect(&x);
	SPIN(&x, x.cl.ended);
	/* the handshake began (the peer got a ClientHello: a TLS record of
	 * type 22), and failed as TLS, not as a plain read */
	assert_int_equal((unsigned char)x.pe.got[0], 22);
	assert_string_equal(x.cl.log, "connected|line:220 go ahead|error:TLS");
	ctx_free(&x);
	SSL_CTX_free(x.cl.tls);
}

static void test_tls_failure(void **state)
{
	(void)state;
	/* plain text where a ServerHello should be */
	tls_fails("500 this is not TLS\r\n", false);
	/* a hang-up in the handshake */
	tls_fails(NULL, true);
}

int main(void)
{
	/* a write to a peer that hung up must be an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_fails_at_once),
	    cmocka_unit_test(test_line_limit),
	    cmocka_unit_test(test_stop_delivery),
	    cmocka_unit_test(test_free_in_callback),
	    cmocka_unit_test(test_close_after_flush),
	    cmocka_unit_test(test_tls_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
