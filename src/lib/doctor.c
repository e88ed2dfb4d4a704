/*
 * The doctor (callout_doctor_start() in callout.h): checks of our own side
 * of a callout, asynchronous on the caller's loop, for the CLI (`callout
 * doctor`) and calloutd (GET /v1/doctor) alike.
 *
 * A run gathers facts, then judges them in one place (doctor_judge.c):
 *   the target's addresses -> a TCP connection to the first that answers
 *   -> its local address is our egress (unless a source address is
 *   configured) -> the banner, EHLO, STARTTLS and the handshake, QUIT
 *   (doctor_smtp.c); from the egress address: PTR -> the PTR name's
 *   A/AAAA, and one A lookup per blocklist zone; from the start: the HELO
 *   name's A/AAAA (doctor_dns.c).
 * This file holds the run itself: its options, the start, the deadline
 * that ends whatever is left, and the report; the report says what could
 * not be checked.  Nothing here blocks the loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <callout/callout.h>

#include "addr.h"
#include "dns.h"
#include "doctor_int.h"
#include "hostport.h"
#include "netcheck.h"

#define DEF_PORT     25
#define DEF_DNS_MS   5000
#define DEF_CONN_MS  10000
#define DEF_CMD_MS   10000
#define DEF_DEADLINE 60000
#define DEF_MAX_MX   5

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

	co_doctor_judge(d);
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
	rep.ms = ms_since(d->t0);
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
	co_doctor_smtp_deadline(d);
	d->pending = 0;
	d->smtp_active = false;
	maybe_finish(d);
}

/* ---- the start -------------------------------------------------------------- */

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
		co_default_helo(d->helo, sizeof(d->helo));
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
	d->t0 = co_clock_ms(NULL, NULL);
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
		co_doctor_egress_known(d, &d->source, true);
	if (d->helo[0] != '[')
		co_doctor_fwd_start(d, &d->helo_fwd, d->helo);
	if (!co_doctor_smtp_start(d)) {
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
