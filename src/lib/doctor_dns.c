/*
 * The lookups of a doctor's run about our own side (doctor_int.h): the
 * HELO name's A/AAAA from the start; once the egress address is known,
 * its PTR, then the PTR name's A/AAAA, and one A lookup per blocklist
 * zone.  Each answer is kept in the run for the verdicts.
 *
 * They go on a small c-ares channel of their own (co_rdns), which
 * dns_loop.c runs in the loop as it runs dns.c's: PTR, and A/AAAA with
 * their exact status (NXDOMAIN apart from SERVFAIL), which dns.c (MX
 * resolution for callouts) does not offer.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns_loop.h"
#include "doctor_int.h"
#include "doctor_parse.h"
#include "sockaddr.h"

#define RDNS_ANSWERS 16

/* ---- the channel ----------------------------------------------------------- */

/* answers: names (PTR) or numeric addresses (A, AAAA); why: the failure
 * ("SERVFAIL", "timeout") for TEMPFAIL, else "".  Called once from the
 * loop, never after co_rdns_free(). */
typedef void (*co_rdns_cb)(void *arg, co_rdns_status st, const char *const *answers, unsigned n,
                           const char *why);

struct co_rdns {
	co_dns_loop loop; /* its sockets and timer; stays where it is while open */
};

struct rq {
	co_rdns *r;
	int type;
	co_rdns_cb cb;
	void *arg;
};

co_rdns *co_rdns_new(struct event_base *base, const char *servers, unsigned timeout_ms, char *err,
                     size_t errlen)
{
	co_rdns *r = calloc(1, sizeof(*r));

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* exact rcodes: a SERVFAIL is an answer to report, not a server to
	 * skip (which c-ares reports as "connection refused") */
	if (!co_dns_loop_open(&r->loop, base, servers, timeout_ms, true, err, errlen)) {
		co_dns_loop_close(&r->loop);
		free(r);
		return NULL;
	}
	return r;
}

void co_rdns_free(co_rdns *r)
{
	if (!r)
		return;
	co_dns_loop_close(&r->loop); /* callbacks: ARES_EDESTRUCTION, ignored */
	free(r);
}

static const char *why_of(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ECONNREFUSED:
		return "no DNS server answers";
	case ARES_ECANCELLED: /* dns_loop.c could not watch a socket */
		return "out of memory";
	default:
		return ares_strerror(status);
	}
}

static void answer_addrs(struct rq *q, const unsigned char *abuf, int alen)
{
	char text[RDNS_ANSWERS][INET6_ADDRSTRLEN];
	const char *ptrs[RDNS_ANSWERS];
	int n = RDNS_ANSWERS, rc;

	if (q->type == ns_t_a) {
		struct ares_addrttl a[RDNS_ANSWERS];
		rc = ares_parse_a_reply(abuf, alen, NULL, a, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++)
			inet_ntop(AF_INET, &a[i].ipaddr, text[i], sizeof(text[i]));
	} else {
		struct ares_addr6ttl a[RDNS_ANSWERS];
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++)
			inet_ntop(AF_INET6, &a[i].ip6addr, text[i], sizeof(text[i]));
	}
	if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && n == 0)) {
		q->cb(q->arg, CO_RDNS_NODATA, NULL, 0, "");
		return;
	}
	if (rc != ARES_SUCCESS) {
		q->cb(q->arg, CO_RDNS_TEMPFAIL, NULL, 0, "malformed answer");
		return;
	}
	for (int i = 0; i < n; i++)
		ptrs[i] = text[i];
	q->cb(q->arg, CO_RDNS_OK, ptrs, (unsigned)n, "");
}

static void answer_ptr(struct rq *q, const unsigned char *abuf, int alen)
{
	struct hostent *he = NULL;
	const char *names[RDNS_ANSWERS];
	unsigned n = 0;
	/* ares_parse_ptr_reply wants the address; any will do for the names */
	unsigned char zero[16] = {0};
	int rc = ares_parse_ptr_reply(abuf, alen, zero, 4, AF_INET, &he);

	if (rc == ARES_ENODATA) {
		q->cb(q->arg, CO_RDNS_NODATA, NULL, 0, "");
		return;
	}
	if (rc != ARES_SUCCESS || !he) {
		q->cb(q->arg, CO_RDNS_TEMPFAIL, NULL, 0, "malformed answer");
		return;
	}
	if (he->h_name)
		names[n++] = he->h_name;
	for (char **a = he->h_aliases; a && *a && n < RDNS_ANSWERS; a++)
		names[n++] = *a;
	q->cb(q->arg, n ? CO_RDNS_OK : CO_RDNS_NODATA, names, n, "");
	ares_free_hostent(he);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct rq *q = arg;

	(void)timeouts;
	if (q->r->loop.destroying || status == ARES_EDESTRUCTION) {
		free(q);
		return;
	}
	if (status == ARES_ENOTFOUND)
		q->cb(q->arg, CO_RDNS_NXDOMAIN, NULL, 0, "");
	else if (status == ARES_ENODATA)
		q->cb(q->arg, CO_RDNS_NODATA, NULL, 0, "");
	else if (status != ARES_SUCCESS)
		q->cb(q->arg, CO_RDNS_TEMPFAIL, NULL, 0, why_of(status));
	else if (q->type == ns_t_ptr)
		answer_ptr(q, abuf, alen);
	else
		answer_addrs(q, abuf, alen);
	free(q);
}

/* type: 1 (A), 28 (AAAA) or 12 (PTR).  -1 when out of memory. */
static int rdns_query(co_rdns *r, const char *name, int type, co_rdns_cb cb, void *arg)
{
	struct rq *q = malloc(sizeof(*q));

	if (!q)
		return -1;
	*q = (struct rq){r, type, cb, arg};
	ares_query(r->loop.channel, name, ns_c_in, type, on_answer, q);
	co_dns_loop_rearm(&r->loop);
	return 0;
}

/* ---- the lookups about our side ------------------------------------------ */

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

void co_doctor_fwd_start(callout_doctor *d, struct fwd *f, const char *name)
{
	f->d = d;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->asked = true;
	f->left = 2;
	d->pending += 2;
	if (rdns_query(d->rdns, name, ns_t_a, on_fwd, f) < 0)
		on_fwd(f, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
	if (rdns_query(d->rdns, name, ns_t_aaaa, on_fwd, f) < 0)
		on_fwd(f, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
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
			co_doctor_fwd_start(d, &d->ptr_fwd, d->ptr_name);
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

void co_doctor_egress_known(callout_doctor *d, const struct sockaddr_storage *ss, bool configured)
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
		if (rdns_query(d->rdns, name, ns_t_ptr, on_ptr, d) < 0)
			on_ptr(d, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
	}
	for (unsigned i = 0; i < d->nzones; i++) {
		struct zone *z = &d->zones[i];

		if (!co_dnsbl_name((const struct sockaddr *)ss, z->name, name, sizeof(name)))
			continue;
		z->asked = true;
		d->pending++;
		if (rdns_query(d->rdns, name, ns_t_a, on_zone, z) < 0)
			on_zone(z, CO_RDNS_TEMPFAIL, NULL, 0, "out of memory");
	}
}
