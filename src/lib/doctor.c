/*
 * The doctor (callout_doctor_start() in callout.h): checks of our own side
 * of a callout, asynchronous on the caller's loop, for the CLI (`callout
 * doctor`) and calloutd (GET /v1/doctor) alike.
 *
 * A run gathers facts, then judges them in one place (judge()):
 *   the target's addresses (dns.c: MX, or one host) -> a TCP connection to
 *   the first that answers (each with the connect timeout) -> its local
 *   address is our egress (unless a source address is configured) -> the
 *   banner (its Date, if any), EHLO, STARTTLS and the handshake, QUIT;
 *   from the egress address: PTR -> the PTR name's A/AAAA, and one A
 *   lookup per blocklist zone; from the start: the HELO name's A/AAAA.
 * The run's deadline ends whatever is left; the report says what could
 * not be checked.  Nothing here blocks the loop.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <callout/callout.h>

#include "addr.h"
#include "dns.h"
#include "doctor.h"
#include "hostport.h"
#include "netcheck.h"
#include "reply.h"
#include "sockaddr.h"

#define DOC_TARGETS  (CO_DNS_HOSTS_MAX * CO_DNS_ADDRS_MAX)
#define DOC_ZONES    8
#define DOC_ADDRS    16
#define DOC_DETAIL   320
#define SKEW_WARN_S  300 /* clock skew worth a warning */
#define DEF_PORT     25
#define DEF_DNS_MS   5000
#define DEF_CONN_MS  10000
#define DEF_CMD_MS   10000
#define DEF_DEADLINE 60000
#define DEF_MAX_MX   5

enum { C_CONNECT, C_EGRESS, C_PTR, C_FCRDNS, C_HELO, C_DNSBL, C_STARTTLS, C_CLOCK, C_COUNT };

static const char *const check_names[C_COUNT] = {"connect", "egress", "ptr",      "fcrdns",
                                                 "helo",    "dnsbl",  "starttls", "clock"};

enum phase { P_IDLE, P_CONNECT, P_BANNER, P_EHLO, P_STARTTLS, P_TLS, P_QUIT, P_DONE };

struct target {
	char name[256];
	struct sockaddr_storage ss;
	socklen_t len;
};

/* A/AAAA of one name. */
struct fwd {
	callout_doctor *d;
	char name[256];
	bool asked;
	unsigned left; /* queries outstanding */
	bool temp, exists;
	char why[64];
	unsigned n;
	char addrs[DOC_ADDRS][INET6_ADDRSTRLEN];
};

struct zone {
	callout_doctor *d;
	char name[256];
	bool asked, answered;
	int listed;
	char detail[160];
};

struct callout_doctor {
	struct event_base *base;
	callout_doctor_cb cb;
	void *arg;
	struct timespec t0;
	/* options */
	char target[256];
	bool by_mx;
	co_hostport hp;
	unsigned port;
	char helo[256];
	bool has_source;
	struct sockaddr_storage source;
	socklen_t source_len;
	unsigned conn_ms, cmd_ms, max_mx;
	bool allow_private;
	long long (*clock)(void *arg);
	void *clock_arg;
	/* machinery */
	co_dns *dns;
	co_dns_req *dns_req;
	co_rdns *rdns;
	co_netcheck *nc;
	SSL_CTX *tls;
	struct event *deadline, *done;
	unsigned pending; /* lookups outstanding */
	bool smtp_active, timed_out, finishing;
	/* the target */
	bool resolved;
	char resolve_err[512];
	struct target targets[DOC_TARGETS];
	unsigned ntargets, next, tried, refused_private;
	char private_why[64];
	/* the SMTP session */
	enum phase phase;
	struct bufferevent *bev;
	struct timespec tconn;
	co_reply reply;
	co_caps caps;
	bool ehlo_first;
	char conn_err[400];
	bool connected;
	unsigned connect_ms;
	char mx[256], ip[INET6_ADDRSTRLEN];
	int banner_code;
	char banner[160];
	bool have_date;
	long long banner_date, banner_now;
	char smtp_err[192];
	int ehlo_code;
	char ehlo_text[128];
	enum { TLS_NONE, TLS_OK, TLS_FAILED, TLS_REFUSED } tls_state;
	char tls_detail[192];
	/* our side */
	bool have_egress, egress_configured;
	struct sockaddr_storage egress;
	char egress_text[INET6_ADDRSTRLEN];
	bool ptr_asked, ptr_answered;
	co_rdns_status ptr_status;
	char ptr_name[256], ptr_why[64];
	struct fwd helo_fwd, ptr_fwd;
	struct zone zones[DOC_ZONES];
	unsigned nzones;
	/* the report */
	char details[C_COUNT][DOC_DETAIL];
	callout_doctor_check checks[C_COUNT];
	callout_doctor_listing listings[DOC_ZONES];
};

CALLOUT_API void callout_doctor_options_init(callout_doctor_options *o)
{
	memset(o, 0, sizeof(*o));
	o->struct_size = sizeof(*o);
	o->port = DEF_PORT;
	o->dns_timeout_ms = DEF_DNS_MS;
	o->connect_timeout_ms = DEF_CONN_MS;
	o->command_timeout_ms = DEF_CMD_MS;
	o->deadline_ms = DEF_DEADLINE;
	o->max_mx = DEF_MAX_MX;
}

CALLOUT_API const char *callout_doctor_level_name(callout_doctor_level l)
{
	static const char *const names[] = {"pass", "warn", "fail", "skip"};
	return (unsigned)l < 4 ? names[l] : "?";
}

static unsigned ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (unsigned)((now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000);
}

static long long now_s(const callout_doctor *d)
{
	return d->clock ? d->clock(d->clock_arg) : (long long)time(NULL);
}

/* Append s to buf (size bytes, holding pos), cut at the end; the new pos. */
static size_t append(char *buf, size_t size, size_t pos, const char *s)
{
	size_t n = strlen(s);

	if (pos >= size)
		return pos;
	if (n > size - 1 - pos)
		n = size - 1 - pos;
	memcpy(buf + pos, s, n);
	buf[pos + n] = '\0';
	return pos + n;
}

static void maybe_finish(callout_doctor *d)
{
	if (d->pending == 0 && !d->smtp_active && !d->finishing) {
		d->finishing = true;
		event_active(d->done, 0, 0);
	}
}

/* ---- DNS ------------------------------------------------------------------- */

static void on_fwd(void *arg, co_rdns_status st, const char *const *answers, unsigned n,
                   const char *why)
{
	struct fwd *f = arg;

	f->left--;
	f->d->pending--;
	if (st == CO_RDNS_OK || st == CO_RDNS_NODATA)
		f->exists = true;
	if (st == CO_RDNS_TEMPFAIL) {
		f->temp = true;
		snprintf(f->why, sizeof(f->why), "%s", why);
	}
	for (unsigned i = 0; i < n && f->n < DOC_ADDRS; i++)
		snprintf(f->addrs[f->n++], sizeof(f->addrs[0]), "%s", answers[i]);
	maybe_finish(f->d);
}

static void fwd_start(callout_doctor *d, struct fwd *f, const char *name)
{
	f->d = d;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->asked = true;
	f->left = 2;
	d->pending += 2;
	if (co_rdns_query(d->rdns, name, ns_t_a, on_fwd, f) < 0)
		on_fwd(f, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
	if (co_rdns_query(d->rdns, name, ns_t_aaaa, on_fwd, f) < 0)
		on_fwd(f, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
}

static bool fwd_has(const struct fwd *f, const char *addr)
{
	for (unsigned i = 0; i < f->n; i++)
		if (strcmp(f->addrs[i], addr) == 0)
			return true;
	return false;
}

static void fwd_list(const struct fwd *f, char *out, size_t len)
{
	size_t pos = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < f->n; i++)
		pos = append(out, len, append(out, len, pos, i ? ", " : ""), f->addrs[i]);
}

static void on_ptr(void *arg, co_rdns_status st, const char *const *answers, unsigned n,
                   const char *why)
{
	callout_doctor *d = arg;

	d->pending--;
	d->ptr_answered = true;
	d->ptr_status = st;
	snprintf(d->ptr_why, sizeof(d->ptr_why), "%s", why);
	if (st == CO_RDNS_OK && n > 0) {
		char *p = d->ptr_name;
		size_t len;

		snprintf(d->ptr_name, sizeof(d->ptr_name), "%s", answers[0]);
		for (; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		len = strlen(d->ptr_name);
		if (len > 0 && d->ptr_name[len - 1] == '.')
			d->ptr_name[len - 1] = '\0';
		if (!d->timed_out)
			fwd_start(d, &d->ptr_fwd, d->ptr_name);
	}
	maybe_finish(d);
}

static void on_zone(void *arg, co_rdns_status st, const char *const *answers, unsigned n,
                    const char *why)
{
	struct zone *z = arg;
	unsigned char a[4];

	z->d->pending--;
	z->answered = true;
	if (st == CO_RDNS_NXDOMAIN || st == CO_RDNS_NODATA) {
		z->listed = 0;
		snprintf(z->detail, sizeof(z->detail), "not listed");
	} else if (st == CO_RDNS_TEMPFAIL) {
		z->listed = -1;
		snprintf(z->detail, sizeof(z->detail), "could not check: %s", why);
	} else {
		z->listed = -1;
		snprintf(z->detail, sizeof(z->detail), "unexpected answer %s", answers[0]);
		for (unsigned i = 0; i < n; i++) {
			if (inet_pton(AF_INET, answers[i], a) != 1 || a[0] != 127)
				continue;
			if (a[1] == 255 && a[2] == 255) {
				/* Spamhaus-style error codes: the list refuses the query */
				snprintf(z->detail, sizeof(z->detail),
				         "could not check: the list answers %s (an error code: "
				         "it refuses queries from this resolver)",
				         answers[i]);
				continue;
			}
			z->listed = 1;
			snprintf(z->detail, sizeof(z->detail), "listed (%s)", answers[i]);
			break;
		}
	}
	maybe_finish(z->d);
}

static bool is_v4(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ||
	       IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
}

static void egress_known(callout_doctor *d, const struct sockaddr_storage *ss, bool configured)
{
	char name[320];

	if (d->have_egress)
		return;
	d->have_egress = true;
	d->egress_configured = configured;
	d->egress = *ss;
	co_sockaddr_text((const struct sockaddr *)ss, 0, CO_SA_UNMAP, d->egress_text,
	                 sizeof(d->egress_text));
	if (co_dnsbl_name((const struct sockaddr *)ss, is_v4(ss) ? "in-addr.arpa" : "ip6.arpa",
	                  name, sizeof(name))) {
		d->ptr_asked = true;
		d->pending++;
		if (co_rdns_query(d->rdns, name, ns_t_ptr, on_ptr, d) < 0)
			on_ptr(d, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
	}
	for (unsigned i = 0; i < d->nzones; i++) {
		struct zone *z = &d->zones[i];

		if (!co_dnsbl_name((const struct sockaddr *)ss, z->name, name, sizeof(name)))
			continue;
		z->asked = true;
		d->pending++;
		if (co_rdns_query(d->rdns, name, ns_t_a, on_zone, z) < 0)
			on_zone(z, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
	}
}

/* ---- SMTP ------------------------------------------------------------------ */

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
			d->connect_ms = ms_since(&d->tconn);
			if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &llen) ==
			    0)
				egress_known(d, &local, false);
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
		clock_gettime(CLOCK_MONOTONIC, &d->tconn);
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

/* ---- the verdicts ------------------------------------------------------------ */

static void set(callout_doctor *d, int c, callout_doctor_level l, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set(callout_doctor *d, int c, callout_doctor_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->details[c], sizeof(d->details[c]), fmt, ap);
	va_end(ap);
	d->checks[c] = (callout_doctor_check){check_names[c], l, d->details[c]};
}

static const char *timeout_note(const callout_doctor *d)
{
	return d->timed_out ? "the run's deadline passed first" : "no answer";
}

static void judge_connect(callout_doctor *d)
{
	if (d->connected) {
		if (d->banner_code == 220 || (d->banner_code == 0 && !d->smtp_err[0]))
			set(d, C_CONNECT, CALLOUT_DOCTOR_PASS, "connected to %s [%s]:%u in %u ms",
			    d->mx, d->ip, d->port, d->connect_ms);
		else if (d->banner_code)
			set(d, C_CONNECT, CALLOUT_DOCTOR_WARN,
			    "connected to %s [%s]:%u, but it greets us with \"%s\": it refuses "
			    "this "
			    "client; see the PTR, HELO and blocklist checks",
			    d->mx, d->ip, d->port, d->banner);
		else
			set(d, C_CONNECT, CALLOUT_DOCTOR_WARN,
			    "connected to %s [%s]:%u, but got %s: a firewall or proxy may "
			    "intercept "
			    "port %u",
			    d->mx, d->ip, d->port, d->smtp_err, d->port);
	} else if (d->resolve_err[0]) {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL, "%s: check the name, or the DNS servers",
		    d->resolve_err);
	} else if (!d->resolved && d->timed_out) {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL, "%s: %s while resolving it", d->target,
		    timeout_note(d));
	} else if (d->tried == 0 && d->refused_private) {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL,
		    "every address of %s is %s: not contacted unless private targets are allowed "
		    "(--allow-private, allow_private)",
		    d->target, d->private_why);
	} else {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL,
		    "no connection to %s on port %u (%u address%s tried; last: %s): outbound port "
		    "%u "
		    "is blocked (ask your provider, open the firewall) or the server is down",
		    d->target, d->port, d->tried, d->tried == 1 ? "" : "es",
		    d->conn_err[0] ? d->conn_err : timeout_note(d), d->port);
	}
}

static void judge_egress(callout_doctor *d)
{
	const char *why = NULL;

	if (!d->have_egress) {
		set(d, C_EGRESS, CALLOUT_DOCTOR_SKIP,
		    "unknown: no connection was made and no source address is configured "
		    "(--source, source_address)");
		return;
	}
	if (!d->allow_private && co_netcheck_addr(d->nc, &d->egress, false, &why) != CO_NET_OK &&
	    why && strcmp(why, "this host's own address") != 0) {
		set(d, C_EGRESS, CALLOUT_DOCTOR_WARN,
		    "%s is %s: a NAT in front of this host changes it, and the checks below are of "
		    "the private address; give the public one with --source (source_address)",
		    d->egress_text, why);
		return;
	}
	set(d, C_EGRESS, CALLOUT_DOCTOR_PASS, "%s (%s)", d->egress_text,
	    d->egress_configured ? "the configured source address"
	                         : "the local end of the connection");
}

static void judge_ptr(callout_doctor *d)
{
	if (!d->have_egress) {
		set(d, C_PTR, CALLOUT_DOCTOR_SKIP, "no egress address to look up");
		set(d, C_FCRDNS, CALLOUT_DOCTOR_SKIP, "no egress address");
		return;
	}
	if (!d->ptr_answered || d->ptr_status == CO_RDNS_TEMPFAIL) {
		set(d, C_PTR, CALLOUT_DOCTOR_WARN, "could not check the PTR of %s: %s",
		    d->egress_text, d->ptr_answered ? d->ptr_why : timeout_note(d));
		set(d, C_FCRDNS, CALLOUT_DOCTOR_SKIP, "no PTR name to check");
		return;
	}
	if (d->ptr_status != CO_RDNS_OK) {
		set(d, C_PTR, CALLOUT_DOCTOR_FAIL,
		    "%s has no PTR record: many servers refuse such clients; ask whoever "
		    "controls the address (your provider) for a PTR naming this host, e.g. %s",
		    d->egress_text, d->helo);
		set(d, C_FCRDNS, CALLOUT_DOCTOR_SKIP, "no PTR name to check");
		return;
	}
	if (strcasecmp(d->ptr_name, d->helo) == 0)
		set(d, C_PTR, CALLOUT_DOCTOR_PASS, "%s has PTR %s, the HELO name", d->egress_text,
		    d->ptr_name);
	else
		set(d, C_PTR, CALLOUT_DOCTOR_WARN,
		    "%s has PTR %s, but the HELO name is %s: make them the same (set helo to "
		    "%s, or change the PTR)",
		    d->egress_text, d->ptr_name, d->helo, d->ptr_name);

	const struct fwd *f = &d->ptr_fwd;
	char list[DOC_DETAIL / 2];

	fwd_list(f, list, sizeof(list));
	if (fwd_has(f, d->egress_text))
		set(d, C_FCRDNS, CALLOUT_DOCTOR_PASS, "%s resolves back to %s", f->name,
		    d->egress_text);
	else if (f->n > 0)
		set(d, C_FCRDNS, CALLOUT_DOCTOR_FAIL,
		    "%s resolves to %s, not to %s: add an A/AAAA record of %s for %s, or fix "
		    "the PTR",
		    f->name, list, d->egress_text, f->name, d->egress_text);
	else if (f->temp || f->left)
		set(d, C_FCRDNS, CALLOUT_DOCTOR_WARN, "could not resolve %s: %s", f->name,
		    f->temp ? f->why : timeout_note(d));
	else
		set(d, C_FCRDNS, CALLOUT_DOCTOR_FAIL,
		    "%s (the PTR name) %s: add an A/AAAA record of it for %s", f->name,
		    f->exists ? "has no address" : "does not exist", d->egress_text);
}

static void judge_helo(callout_doctor *d)
{
	const struct fwd *f = &d->helo_fwd;
	char list[DOC_DETAIL / 2];

	if (!f->asked) { /* an address literal */
		char ip[INET6_ADDRSTRLEN];
		size_t n = strlen(d->helo);
		const char *v = strncasecmp(d->helo, "[IPv6:", 6) == 0 ? d->helo + 6 : d->helo + 1;

		size_t k = (size_t)(d->helo + n - 1 - v);

		if (k >= sizeof(ip))
			k = 0;
		memcpy(ip, v, k);
		ip[k] = '\0';
		if (d->have_egress && strcmp(ip, d->egress_text) == 0)
			set(d, C_HELO, CALLOUT_DOCTOR_WARN,
			    "the HELO name is the address literal %s: many servers want a name "
			    "that resolves to %s",
			    d->helo, d->egress_text);
		else
			set(d, C_HELO, CALLOUT_DOCTOR_FAIL,
			    "the HELO name is the address literal %s, not our address %s: use a "
			    "name "
			    "that resolves to it",
			    d->helo, d->have_egress ? d->egress_text : "(unknown)");
		return;
	}
	fwd_list(f, list, sizeof(list));
	if (f->n > 0 && !d->have_egress)
		set(d, C_HELO, CALLOUT_DOCTOR_SKIP,
		    "%s resolves to %s; the egress address is unknown, not compared", f->name,
		    list);
	else if (f->n > 0 && fwd_has(f, d->egress_text))
		set(d, C_HELO, CALLOUT_DOCTOR_PASS, "%s resolves to %s", f->name, d->egress_text);
	else if (f->n > 0)
		set(d, C_HELO, CALLOUT_DOCTOR_FAIL,
		    "%s resolves to %s, not to the egress address %s: add an A/AAAA record of "
		    "it for %s, or set helo to a name that has one",
		    f->name, list, d->egress_text, d->egress_text);
	else if (f->temp || f->left)
		set(d, C_HELO, CALLOUT_DOCTOR_WARN, "could not resolve the HELO name %s: %s",
		    f->name, f->temp ? f->why : timeout_note(d));
	else
		set(d, C_HELO, CALLOUT_DOCTOR_FAIL,
		    "the HELO name %s %s: many servers refuse it; give it an A/AAAA record%s%s, or "
		    "set helo (--helo) to a name that has one",
		    f->name, f->exists ? "has no address" : "does not exist",
		    d->have_egress ? " for " : "", d->egress_text);
}

static void judge_dnsbl(callout_doctor *d)
{
	char listed[DOC_DETAIL / 2] = "", unknown[DOC_DETAIL / 2] = "";
	size_t nl = 0, nu = 0;

	for (unsigned i = 0; i < d->nzones; i++) {
		struct zone *z = &d->zones[i];

		if (!z->answered) {
			z->listed = -1;
			snprintf(z->detail, sizeof(z->detail), "could not check: %s",
			         z->asked ? timeout_note(d) : "no egress address");
		}
		d->listings[i] = (callout_doctor_listing){z->name, z->listed, z->detail};
		if (z->listed == 1) {
			nl = append(listed, sizeof(listed), nl, nl ? ", " : "");
			nl = append(listed, sizeof(listed), nl, z->name);
			nl = append(listed, sizeof(listed), nl, z->detail + 6);
		} else if (z->listed < 0) {
			nu = append(unknown, sizeof(unknown), nu, nu ? ", " : "");
			nu = append(unknown, sizeof(unknown), nu, z->name);
		}
	}
	if (d->nzones == 0)
		set(d, C_DNSBL, CALLOUT_DOCTOR_SKIP,
		    "no blocklists configured (--dnsbl ZONE,..., [doctor] dnsbl)");
	else if (!d->have_egress)
		set(d, C_DNSBL, CALLOUT_DOCTOR_SKIP, "no egress address to look up");
	else if (nl)
		set(d, C_DNSBL, CALLOUT_DOCTOR_FAIL,
		    "%s is listed on %s: servers using these lists refuse us; ask each list for "
		    "delisting once the cause is fixed",
		    d->egress_text, listed);
	else if (nu)
		set(d, C_DNSBL, CALLOUT_DOCTOR_WARN, "could not check %s on %s (see dnsbl details)",
		    d->egress_text, unknown);
	else
		set(d, C_DNSBL, CALLOUT_DOCTOR_PASS, "%s is on none of %u list%s", d->egress_text,
		    d->nzones, d->nzones == 1 ? "" : "s");
}

static void judge_tls(callout_doctor *d)
{
	if (!d->connected || d->banner_code != 220 || d->ehlo_code == 0) {
		set(d, C_STARTTLS, CALLOUT_DOCTOR_SKIP, "no SMTP session got as far as EHLO");
		return;
	}
	if (d->ehlo_code != 250) {
		set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN,
		    "%s answered EHLO %s with \"%s\": it refuses our HELO name", d->mx, d->helo,
		    d->ehlo_text);
		return;
	}
	switch (d->tls_state) {
	case TLS_OK:
		set(d, C_STARTTLS, CALLOUT_DOCTOR_PASS, "offered by %s; handshake OK (%s)", d->mx,
		    d->tls_detail);
		break;
	case TLS_FAILED:
		set(d, C_STARTTLS, CALLOUT_DOCTOR_FAIL,
		    "offered by %s, but the handshake failed: %s; check the TLS library and "
		    "any TLS-intercepting middlebox",
		    d->mx, d->tls_detail);
		break;
	case TLS_REFUSED:
		set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN,
		    "offered by %s, but STARTTLS was answered %s", d->mx, d->tls_detail);
		break;
	default:
		if (d->caps.starttls)
			set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN, "offered by %s; %s", d->mx,
			    d->smtp_err[0] ? d->smtp_err : timeout_note(d));
		else
			set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN,
			    "not offered by %s: callouts to it go in clear text (a firewall that "
			    "strips STARTTLS does this too)",
			    d->mx);
	}
}

static void judge_clock(callout_doctor *d)
{
	long long now = now_s(d), built = co_build_date(__DATE__);

	/* __DATE__ is the local date: a day's slack for time zones */
	if (built > 0 && now < built - 86400) {
		set(d, C_CLOCK, CALLOUT_DOCTOR_FAIL,
		    "the clock (%lld) is before this program was built (%s): set the time (NTP); "
		    "TLS and caches go wrong with it",
		    now, __DATE__);
	} else if (d->have_date) {
		long long skew = d->banner_now - d->banner_date;
		long long mag = skew < 0 ? -skew : skew;

		if (mag > SKEW_WARN_S)
			set(d, C_CLOCK, CALLOUT_DOCTOR_WARN,
			    "%lld s %s the Date in %s's banner: one of the clocks is wrong; check "
			    "NTP here",
			    mag, skew > 0 ? "ahead of" : "behind", d->mx);
		else
			set(d, C_CLOCK, CALLOUT_DOCTOR_PASS,
			    "within %lld s of the Date in %s's banner", mag, d->mx);
	} else {
		set(d, C_CLOCK, CALLOUT_DOCTOR_SKIP,
		    "could not be checked: no banner with a date (the clock is after the build "
		    "date)");
	}
}

static void doctor_free(callout_doctor *d)
{
	if (d->bev)
		bufferevent_free(d->bev);
	if (d->dns_req)
		co_dns_cancel(d->dns_req);
	co_dns_free(d->dns);
	co_rdns_free(d->rdns);
	co_netcheck_free(d->nc);
	if (d->tls)
		SSL_CTX_free(d->tls);
	if (d->deadline)
		event_free(d->deadline);
	if (d->done)
		event_free(d->done);
	free(d);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	callout_doctor *d = arg;
	callout_doctor_report rep;

	judge_connect(d);
	judge_egress(d);
	judge_ptr(d);
	judge_helo(d);
	judge_dnsbl(d);
	judge_tls(d);
	judge_clock(d);
	memset(&rep, 0, sizeof(rep));
	rep.target = d->target;
	rep.mx = d->connected ? d->mx : "";
	rep.ip = d->connected ? d->ip : "";
	rep.port = d->port;
	rep.egress = d->egress_text;
	rep.helo = d->helo;
	rep.ptr = d->ptr_name;
	rep.worst = CALLOUT_DOCTOR_PASS;
	for (int i = 0; i < C_COUNT; i++)
		if (d->checks[i].level != CALLOUT_DOCTOR_SKIP && d->checks[i].level > rep.worst)
			rep.worst = d->checks[i].level;
	rep.ms = ms_since(&d->t0);
	rep.nchecks = C_COUNT;
	rep.checks = d->checks;
	rep.nlistings = d->nzones;
	rep.listings = d->listings;
	d->cb(d->arg, &rep);
	doctor_free(d);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	callout_doctor *d = arg;

	d->timed_out = true;
	if (d->smtp_active && d->phase != P_DONE) {
		if (d->phase == P_TLS) {
			d->tls_state = TLS_FAILED;
			snprintf(d->tls_detail, sizeof(d->tls_detail), "the run's deadline passed");
		} else if (d->phase != P_CONNECT && d->phase != P_QUIT && !d->smtp_err[0]) {
			snprintf(d->smtp_err, sizeof(d->smtp_err), "the run's deadline passed %s",
			         phase_text(d->phase));
		}
	}
	d->pending = 0;
	d->smtp_active = false;
	maybe_finish(d);
}

/* ---- the start -------------------------------------------------------------- */

/* This host's FQDN, as the library uses for HELO (gethostname, then the
 * canonical name when it has no dot; "localhost" when unusable). */
static void own_fqdn(char *out, size_t len)
{
	char host[256] = "";
	struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *ai = NULL;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	if (!strchr(host, '.') && getaddrinfo(host, NULL, &hints, &ai) == 0) {
		if (ai && ai->ai_canonname && strchr(ai->ai_canonname, '.'))
			snprintf(host, sizeof(host), "%s", ai->ai_canonname);
		freeaddrinfo(ai);
	}
	snprintf(out, len, "%s", co_helo_valid(host) ? host : "localhost");
}

static callout_status bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static callout_status bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return CALLOUT_EINVAL;
}

static callout_status parse_zones(callout_doctor *d, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	while (p && *p) {
		size_t n = strcspn(p, ",");
		char item[CO_DOMAIN_MAX + 2], why[96];
		const char *s = p, *e = p + n;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s)
			return bad(err, errlen, "dnsbl: an empty zone in the list");
		if ((size_t)(e - s) > CO_DOMAIN_MAX)
			return bad(err, errlen, "dnsbl: zone too long");
		if (d->nzones >= DOC_ZONES)
			return bad(err, errlen, "dnsbl: more than %d zones", DOC_ZONES);
		memcpy(item, s, (size_t)(e - s));
		item[e - s] = '\0';
		if (co_domain_normalise(item, d->zones[d->nzones].name, why, sizeof(why)) < 0 ||
		    strlen(d->zones[d->nzones].name) > 253 - 64)
			return bad(err, errlen, "dnsbl: invalid zone: %s",
			           co_domain_normalise(item, item, why, sizeof(why)) < 0
			               ? why
			               : "too long");
		d->zones[d->nzones].d = d;
		d->nzones++;
		p += n + (p[n] == ',');
	}
	return CALLOUT_OK;
}

static callout_status parse_opts(callout_doctor *d, const callout_doctor_options *o, char *err,
                                 size_t errlen)
{
	char why[96];
	bool has_domain = o->domain && *o->domain, has_host = o->host && *o->host;
	const char *e;

	if (has_domain == has_host)
		return bad(err, errlen, "give either a domain or a host to check against");
	if (o->port > 65535)
		return bad(err, errlen, "port out of range");
	d->port = o->port ? o->port : DEF_PORT;
	if (has_domain) {
		if (co_domain_normalise(o->domain, d->target, why, sizeof(why)) < 0)
			return bad(err, errlen, "invalid domain: %s", why);
		d->by_mx = true;
	} else {
		if (strlen(o->host) > 300)
			return bad(err, errlen, "invalid host: too long");
		if ((e = co_hostport_parse(o->host, 0, &d->hp)) != NULL)
			return bad(err, errlen, "invalid host: %s", e);
		if (d->hp.kind == CO_HOST_NAME &&
		    co_domain_normalise(d->hp.host, d->hp.host, why, sizeof(why)) < 0)
			return bad(err, errlen, "invalid host: %s", why);
		snprintf(d->target, sizeof(d->target), "%s", d->hp.host);
		if (d->hp.port)
			d->port = d->hp.port;
	}
	if (o->helo && *o->helo) {
		if (!co_helo_valid(o->helo) || strlen(o->helo) >= sizeof(d->helo))
			return bad(err, errlen, "invalid HELO name");
		snprintf(d->helo, sizeof(d->helo), "%s", o->helo);
	} else {
		own_fqdn(d->helo, sizeof(d->helo));
	}
	if (o->source_address && *o->source_address) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&d->source;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&d->source;

		if (inet_pton(AF_INET, o->source_address, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			d->source_len = sizeof(*s4);
		} else if (inet_pton(AF_INET6, o->source_address, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			d->source_len = sizeof(*s6);
		} else {
			return bad(err, errlen, "invalid source address: an IPv4 or IPv6 address");
		}
		d->has_source = true;
	}
	d->conn_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEF_CONN_MS;
	d->cmd_ms = o->command_timeout_ms ? o->command_timeout_ms : DEF_CMD_MS;
	d->max_mx = o->max_mx ? o->max_mx : DEF_MAX_MX;
	if (d->max_mx > CO_DNS_HOSTS_MAX)
		d->max_mx = CO_DNS_HOSTS_MAX;
	d->allow_private = o->allow_private;
	d->clock = o->clock;
	d->clock_arg = o->clock_arg;
	return parse_zones(d, o->dnsbl, err, errlen);
}

CALLOUT_API callout_status callout_doctor_start(struct event_base *base,
                                                const callout_doctor_options *opts,
                                                callout_doctor_cb cb, void *arg,
                                                callout_doctor **out, char *err, size_t errlen)
{
	callout_doctor_options o;
	callout_doctor *d;
	callout_status st;
	unsigned dns_ms;
	struct timeval tv;
	char why[192];

	if (err && errlen)
		err[0] = '\0';
	if (!base || !opts || !cb || opts->struct_size < offsetof(callout_doctor_options, port))
		return bad(err, errlen, "bad arguments");
	callout_doctor_options_init(&o);
	memcpy(&o, opts, opts->struct_size < sizeof(o) ? opts->struct_size : sizeof(o));
	if (!(d = calloc(1, sizeof(*d))))
		return CALLOUT_ENOMEM;
	d->base = base;
	d->cb = cb;
	d->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &d->t0);
	if ((st = parse_opts(d, &o, err, errlen)) != CALLOUT_OK) {
		free(d);
		return st;
	}
	dns_ms = o.dns_timeout_ms ? o.dns_timeout_ms : DEF_DNS_MS;
	d->dns = co_dns_new(base, o.dns_servers, dns_ms, why, sizeof(why));
	if (!d->dns) {
		doctor_free(d);
		if (errno == ENOMEM)
			return CALLOUT_ENOMEM;
		return bad(err, errlen, "%s", why);
	}
	d->rdns = co_rdns_new(base, o.dns_servers, dns_ms, why, sizeof(why));
	d->nc = co_netcheck_new();
	d->tls = SSL_CTX_new(TLS_client_method());
	d->deadline = evtimer_new(base, on_deadline, d);
	d->done = event_new(base, -1, 0, on_done, d);
	if (!d->rdns || !d->nc || !d->tls || !d->deadline || !d->done) {
		doctor_free(d);
		return CALLOUT_ENOMEM;
	}
	/* opportunistic TLS, as callouts do: whether the handshake works */
	SSL_CTX_set_verify(d->tls, SSL_VERIFY_NONE, NULL);
	tv.tv_sec = (o.deadline_ms ? o.deadline_ms : DEF_DEADLINE) / 1000;
	tv.tv_usec = (suseconds_t)((o.deadline_ms ? o.deadline_ms : DEF_DEADLINE) % 1000) * 1000;
	evtimer_add(d->deadline, &tv);

	if (d->has_source)
		egress_known(d, &d->source, true);
	if (d->helo[0] != '[')
		fwd_start(d, &d->helo_fwd, d->helo);
	d->smtp_active = true;
	if (d->by_mx) {
		d->dns_req = co_dns_resolve_mx(d->dns, d->target, d->max_mx, on_target, d);
	} else {
		const char *name = d->hp.host;
		unsigned port = d->port;
		d->dns_req = co_dns_resolve_hosts(d->dns, &name, &port, 1, on_target, d);
	}
	if (!d->dns_req) {
		doctor_free(d);
		return CALLOUT_ENOMEM;
	}
	if (out)
		*out = d;
	return CALLOUT_OK;
}

CALLOUT_API void callout_doctor_cancel(callout_doctor *d)
{
	if (d)
		doctor_free(d);
}
