/*
 * The target of a doctor's run (doctor_int.h): its addresses (dns.c: its
 * MX, or one host), a TCP connection to the first that answers (each
 * with the connect timeout, none that netcheck.c refuses), whose local
 * address is our egress; then the banner (its Date, if any), EHLO,
 * STARTTLS and the handshake, QUIT.  What happened is kept in the run
 * for the verdicts (doctor_judge.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dns.h"
#include "doctor_int.h"
#include "doctor_parse.h"
#include "netcheck.h"
#include "reply.h"
#include "sockaddr.h"

static void try_next(callout_doctor *d);

static void smtp_end(callout_doctor *d)
{
	if (d->bev) {
		bufferevent_free(d->bev);
		d->bev = NULL;
	}
	d->phase = P_DONE;
	if (d->smtp_active) {
		d->smtp_active = false;
		maybe_finish(d);
	}
}

static void smtp_send(callout_doctor *d, enum phase next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void smtp_send(callout_doctor *d, enum phase next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(d->bev), fmt, ap);
	va_end(ap);
	d->phase = next;
	co_reply_init(&d->reply);
}

static const char *phase_text(enum phase p)
{
	switch (p) {
	case P_BANNER:
		return "waiting for the banner";
	case P_EHLO:
		return "after EHLO";
	case P_STARTTLS:
		return "after STARTTLS";
	case P_TLS:
		return "in the TLS handshake";
	default:
		return "in the dialogue";
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_read(struct bufferevent *bev, void *arg);

static void set_timeouts(callout_doctor *d, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	bufferevent_set_timeouts(d->bev, &tv, &tv);
}

static void start_tls(callout_doctor *d)
{
	SSL *ssl = SSL_new(d->tls);
	struct bufferevent *b;

	if (ssl && d->mx[0] && !strchr(d->mx, ':') && !inet_pton(AF_INET, d->mx, &(char[4]){0}))
		SSL_set_tlsext_host_name(ssl, d->mx);
	b = ssl ? bufferevent_openssl_filter_new(d->base, d->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                         BEV_OPT_CLOSE_ON_FREE)
	        : NULL;
	if (!b) {
		if (ssl)
			SSL_free(ssl);
		d->tls_state = TLS_FAILED;
		snprintf(d->tls_detail, sizeof(d->tls_detail), "out of memory");
		smtp_end(d);
		return;
	}
	d->bev = b;
	d->phase = P_TLS;
	bufferevent_setcb(b, on_read, NULL, on_event, d);
	set_timeouts(d, d->cmd_ms);
	bufferevent_enable(b, EV_READ | EV_WRITE);
}

/* A complete reply arrived; false when the session moved on to TLS (stop
 * reading the old buffer). */
static bool on_reply(callout_doctor *d)
{
	const co_reply *r = &d->reply;

	switch (d->phase) {
	case P_BANNER:
		d->banner_code = r->code;
		snprintf(d->banner, sizeof(d->banner), "%d %.140s", r->code, r->text);
		d->banner_now = now_s(d);
		d->have_date = co_banner_date(r->text, strlen(r->text), &d->banner_date);
		if (r->code != 220)
			smtp_send(d, P_QUIT, "QUIT\r\n");
		else {
			memset(&d->caps, 0, sizeof(d->caps));
			d->ehlo_first = true;
			smtp_send(d, P_EHLO, "EHLO %s\r\n", d->helo);
		}
		return true;
	case P_EHLO:
		d->ehlo_code = r->code;
		snprintf(d->ehlo_text, sizeof(d->ehlo_text), "%d %.100s", r->code, r->text);
		if (r->code == 250 && d->caps.starttls)
			smtp_send(d, P_STARTTLS, "STARTTLS\r\n");
		else
			smtp_send(d, P_QUIT, "QUIT\r\n");
		return true;
	case P_STARTTLS:
		if (r->code == 220) {
			start_tls(d);
			return false;
		}
		d->tls_state = TLS_REFUSED;
		snprintf(d->tls_detail, sizeof(d->tls_detail), "%d %.150s", r->code, r->text);
		smtp_send(d, P_QUIT, "QUIT\r\n");
		return true;
	default:
		smtp_end(d);
		return false;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	callout_doctor *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		co_reply_status st =
		    len > CO_REPLY_LINE_MAX ? CO_REPLY_ERROR : co_reply_feed(&d->reply, line, len);

		if (d->phase == P_EHLO && st != CO_REPLY_ERROR) {
			co_caps_line(&d->caps, line, len, d->ehlo_first);
			d->ehlo_first = false;
		}
		free(line);
		if (st == CO_REPLY_ERROR) {
			snprintf(d->smtp_err, sizeof(d->smtp_err), "a malformed reply %s",
			         phase_text(d->phase));
			smtp_end(d);
			return;
		}
		if (st == CO_REPLY_DONE && !on_reply(d))
			return;
	}
	if (evbuffer_get_length(in) > CO_REPLY_LINE_MAX + 2) {
		snprintf(d->smtp_err, sizeof(d->smtp_err), "an over-long reply line %s",
		         phase_text(d->phase));
		smtp_end(d);
	}
}

static void tls_error(callout_doctor *d, struct bufferevent *bev, short what)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	char buf[128];

	d->tls_state = TLS_FAILED;
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(d->tls_detail, sizeof(d->tls_detail), "the handshake timed out");
	else if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(d->tls_detail, sizeof(d->tls_detail), "%s", buf);
	} else
		snprintf(d->tls_detail, sizeof(d->tls_detail), "the server closed the connection");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	callout_doctor *d = arg;

	if (d->phase == P_CONNECT) {
		if (what & BEV_EVENT_CONNECTED) {
			struct sockaddr_storage local;
			socklen_t llen = sizeof(local);

			d->connected = true;
			d->connect_ms = ms_since(d->tconn);
			if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &llen) ==
			    0)
				co_doctor_egress_known(d, &local, false);
			set_timeouts(d, d->cmd_ms);
			bufferevent_enable(bev, EV_READ | EV_WRITE);
			d->phase = P_BANNER;
			co_reply_init(&d->reply);
			return;
		}
		const struct target *t = &d->targets[d->next - 1];
		char a[INET6_ADDRSTRLEN + 8];
		co_sockaddr_text((const struct sockaddr *)&t->ss, t->len, CO_SA_PORT, a, sizeof(a));
		snprintf(d->conn_err, sizeof(d->conn_err), "%s %s: %s", t->name, a,
		         (what & BEV_EVENT_TIMEOUT)
		             ? "timed out"
		             : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(bev);
		d->bev = NULL;
		try_next(d);
		return;
	}
	if (d->phase == P_TLS) {
		if (what & BEV_EVENT_CONNECTED) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			d->tls_state = TLS_OK;
			snprintf(d->tls_detail, sizeof(d->tls_detail), "%s, %s",
			         SSL_get_version(ssl), SSL_get_cipher_name(ssl));
			smtp_send(d, P_QUIT, "QUIT\r\n");
			return;
		}
		tls_error(d, bev, what);
	} else if (d->phase != P_QUIT) {
		snprintf(d->smtp_err, sizeof(d->smtp_err), "%s %s",
		         (what & BEV_EVENT_TIMEOUT) ? "no reply in time"
		                                    : "the server closed the connection",
		         phase_text(d->phase));
	}
	smtp_end(d);
}

static void try_next(callout_doctor *d)
{
	while (!d->timed_out && d->next < d->ntargets) {
		const struct target *t = &d->targets[d->next++];
		const char *why = NULL;
		char a[INET6_ADDRSTRLEN + 8];
		int fd;

		co_sockaddr_text((const struct sockaddr *)&t->ss, t->len, CO_SA_PORT, a, sizeof(a));
		if (co_netcheck_addr(d->nc, &t->ss, d->allow_private, &why) != CO_NET_OK) {
			d->refused_private++;
			snprintf(d->private_why, sizeof(d->private_why), "%s",
			         why ? why : "private");
			continue;
		}
		if (d->has_source && d->source.ss_family != t->ss.ss_family) {
			snprintf(d->conn_err, sizeof(d->conn_err),
			         "%s %s: not of the source address's family", t->name, a);
			continue;
		}
		d->tried++;
		fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(d->conn_err, sizeof(d->conn_err), "socket: %s", strerror(errno));
			continue;
		}
		if (d->has_source && bind(fd, (struct sockaddr *)&d->source, d->source_len) < 0) {
			snprintf(d->conn_err, sizeof(d->conn_err),
			         "cannot use the source address: %s", strerror(errno));
			close(fd);
			continue;
		}
		d->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!d->bev) {
			close(fd);
			snprintf(d->conn_err, sizeof(d->conn_err), "out of memory");
			continue;
		}
		snprintf(d->mx, sizeof(d->mx), "%s", t->name);
		co_sockaddr_text((const struct sockaddr *)&t->ss, t->len, CO_SA_UNMAP, d->ip,
		                 sizeof(d->ip));
		bufferevent_setcb(d->bev, on_read, NULL, on_event, d);
		set_timeouts(d, d->conn_ms);
		d->phase = P_CONNECT;
		d->tconn = co_clock_ms(NULL, NULL);
		if (bufferevent_socket_connect(d->bev, (const struct sockaddr *)&t->ss, t->len) <
		    0) {
			snprintf(d->conn_err, sizeof(d->conn_err), "%s %s: %s", t->name, a,
			         strerror(errno));
			bufferevent_free(d->bev);
			d->bev = NULL;
			continue;
		}
		return;
	}
	d->mx[0] = d->ip[0] = '\0';
	smtp_end(d);
}

static void add_target(callout_doctor *d, const char *name, const struct sockaddr_storage *ss,
                       unsigned port)
{
	struct target *t;

	if (d->ntargets >= DOC_TARGETS)
		return;
	t = &d->targets[d->ntargets++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ss = *ss;
	if (ss->ss_family == AF_INET) {
		((struct sockaddr_in *)(void *)&t->ss)->sin_port = htons((uint16_t)port);
		t->len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)(void *)&t->ss)->sin6_port = htons((uint16_t)port);
		t->len = sizeof(struct sockaddr_in6);
	}
}

static void on_target(void *arg, const co_dns_result *res)
{
	callout_doctor *d = arg;

	d->dns_req = NULL;
	if (res->status != CO_DNS_OK) {
		static const char *const what[] = {[CO_DNS_NXDOMAIN] = "does not exist",
		                                   [CO_DNS_NULL_MX] = "accepts no mail (null MX)",
		                                   [CO_DNS_NO_HOST] =
		                                       "has no mail host with an address",
		                                   [CO_DNS_TEMPFAIL] = "could not be resolved"};
		snprintf(d->resolve_err, sizeof(d->resolve_err), "%s %s%s%s", d->target,
		         what[res->status], res->detail[0] ? ": " : "", res->detail);
		smtp_end(d);
		return;
	}
	d->resolved = true;
	for (unsigned i = 0; i < res->nhosts; i++)
		for (unsigned j = 0; j < res->hosts[i].naddr; j++)
			add_target(d, res->hosts[i].name, &res->hosts[i].addr[j],
			           res->hosts[i].port ? res->hosts[i].port : d->port);
	try_next(d);
}

bool co_doctor_smtp_start(callout_doctor *d)
{
	d->smtp_active = true;
	if (d->by_mx) {
		d->dns_req = co_dns_resolve_mx(d->dns, d->target, d->max_mx, on_target, d);
	} else {
		const char *name = d->hp.host;
		unsigned port = d->port;
		d->dns_req = co_dns_resolve_hosts(d->dns, &name, &port, 1, on_target, d);
	}
	return d->dns_req != NULL;
}

void co_doctor_smtp_deadline(callout_doctor *d)
{
	if (d->smtp_active && d->phase != P_DONE) {
		if (d->phase == P_TLS) {
			d->tls_state = TLS_FAILED;
			snprintf(d->tls_detail, sizeof(d->tls_detail), "the run's deadline passed");
		} else if (d->phase != P_CONNECT && d->phase != P_QUIT && !d->smtp_err[0]) {
			snprintf(d->smtp_err, sizeof(d->smtp_err), "the run's deadline passed %s",
			         phase_text(d->phase));
		}
	}
}
