/*
 * DNS for callouts: the requests of dns.h, on a c-ares channel that the
 * libevent loop drives (dns_loop.c), reading raw answers with
 * dns_answer.c.
 *
 * A request is a small pipeline:
 *
 *   MX query        (CNAMEs the server did not resolve are queried again)
 *   -> host list    (null MX, sort by preference, shuffle equal ones,
 *                    implicit MX when there is no MX record)
 *   -> AAAA + A     (every host, both families, all in parallel)
 *   -> result       (hosts in order, IPv6 then IPv4, hosts without any
 *                    address dropped)
 *
 * The user callback never runs inside c-ares: a finished request holds its
 * result and a separate event delivers it, so the callback may cancel other
 * requests or free the whole co_dns.  Requests live until every c-ares
 * query they started has called back (c-ares cannot cancel one query), so
 * a cancelled request only stops listening.
 */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dns_answer.h"
#include "dns_loop.h"

#define CNAME_REQUERY_MAX 8    /* new queries for CNAME targets, per lookup */
#define MX_RECORDS_MAX    1024 /* MX records looked at */
/*
 * Queries in flight per co_dns; more wait in a queue.  c-ares 1.18 uses one
 * UDP socket per server, and answers arriving while the loop is busy pile
 * up in its receive buffer: with the default 208 KiB about 250 small
 * answers fit, the rest are dropped and cost a retry after the timeout (seen
 * with a burst of 400 lookups against a local server).
 */
#define QUERIES_IN_FLIGHT_MAX 128

LIST_HEAD(dns_reqs, co_dns_req);
STAILQ_HEAD(dns_queue, lookup);

struct co_dns {
	co_dns_loop loop;       /* the channel, its sockets and timer */
	struct dns_reqs reqs;   /* every request not yet freed */
	unsigned inflight;      /* c-ares queries started, not answered */
	struct dns_queue queue; /* lookups waiting for a slot */
	bool pumping;
	uint64_t rng;
};

enum outcome {
	OUT_NONE = 0, /* not started or in flight */
	OUT_OK,       /* at least one address */
	OUT_NODATA,   /* the name exists, no record of this type */
	OUT_NXDOMAIN, /* the name does not exist */
	OUT_TEMP      /* no usable answer */
};

struct hstate;

/* One name lookup of one type; at most one c-ares query in flight. */
struct lookup {
	co_dns_req *req;
	struct hstate *host; /* NULL: the MX lookup */
	int type;
	unsigned requeries;         /* CNAME targets queried again */
	STAILQ_ENTRY(lookup) qlink; /* in the co_dns queue */
	enum outcome outcome;
	char qname[256];
};

struct hstate {
	char name[256];
	unsigned pref;
	unsigned port;
	unsigned n6, n4;
	struct in6_addr a6[CO_DNS_ADDRS_MAX];
	struct in_addr a4[CO_DNS_ADDRS_MAX];
	struct lookup lk6, lk4;
};

enum req_state { REQ_RUNNING, REQ_DONE, REQ_CANCELLED };

struct co_dns_req {
	co_dns *dns;
	LIST_ENTRY(co_dns_req) link; /* in the co_dns */
	enum req_state state;
	unsigned pending; /* lookups queued or in flight */
	unsigned issuing; /* starting queries: do not finish yet */
	bool mx_mode;     /* co_dns_resolve_mx, not co_dns_resolve_hosts */
	bool implicit_mx;
	bool decided; /* status fixed before any host lookup */
	co_dns_status decided_status;
	unsigned max_hosts;
	co_dns_cb cb;
	void *arg;
	struct event *done_ev;
	char domain[256];
	struct lookup mx;
	unsigned nhosts;
	struct hstate *hosts;
	char detail[128];  /* the decided status, or the first temporary failure */
	co_dns_result res; /* filled when done */
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_next(co_dns *dns)
{
	/* splitmix64: good enough to shuffle, seeded from getrandom() */
	uint64_t z = (dns->rng += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static unsigned rng_below(co_dns *dns, unsigned n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t r;

	do
		r = rng_next(dns);
	while (r >= limit);
	return (unsigned)(r % n);
}

static void rng_seed(co_dns *dns)
{
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		       ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)dns;
	}
	dns->rng = seed;
}

static const char *type_name(int type)
{
	switch (type) {
	case DNS_TYPE_A:
		return "A";
	case DNS_TYPE_AAAA:
		return "AAAA";
	case DNS_TYPE_MX:
		return "MX";
	default:
		return "?";
	}
}

static const char *status_text(const co_dns *dns, int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ENOTFOUND:
		return "NXDOMAIN";
	case ARES_ENODATA:
		return "no data";
	case ARES_EFORMERR:
		return "FORMERR";
	case ARES_ENOTIMP:
		return "NOTIMP";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ECONNREFUSED:
		/*
		 * c-ares 1.18 reports ECONNREFUSED both for unreachable servers
		 * and, when it checks rcodes itself (several servers), for
		 * SERVFAIL, REFUSED and NOTIMP from every server.
		 */
		return dns->loop.check_rcode ? "no usable answer from any DNS server"
		                             : "DNS server unreachable";
	case ARES_EBADRESP:
		return "malformed answer";
	case ARES_ENOMEM:
		return "out of memory";
	case ARES_ECANCELLED:
		return dns->loop.giving_up ? "out of memory" : "cancelled";
	case ARES_EBADNAME:
		return "invalid name";
	default:
		return ares_strerror(status);
	}
}

static void set_detail(co_dns_req *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_detail(co_dns_req *req, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->detail, sizeof req->detail, fmt, ap);
	va_end(ap);
}

static void decide(co_dns_req *req, co_dns_status status)
{
	req->decided = true;
	req->decided_status = status;
}

/* ---- requests -------------------------------------------------------------- */

static void req_free(co_dns_req *req)
{
	LIST_REMOVE(req, link);
	if (req->done_ev != NULL)
		event_free(req->done_ev);
	free(req->hosts);
	free(req->res.hosts);
	free(req);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	co_dns_req *req = arg;
	co_dns_result res = req->res;
	co_dns_cb cb = req->cb;
	void *cbarg = req->arg;

	/* Free the request first: the callback may free the whole co_dns. */
	req->res.hosts = NULL;
	req_free(req);
	cb(cbarg, &res);
	free(res.hosts);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* Start queued lookups while there is room; answers may come before this returns. */
static void dns_pump(co_dns *dns)
{
	if (dns->pumping || dns->loop.destroying)
		return;
	dns->pumping = true;
	while (!STAILQ_EMPTY(&dns->queue) && dns->inflight < QUERIES_IN_FLIGHT_MAX) {
		struct lookup *lk = STAILQ_FIRST(&dns->queue);

		STAILQ_REMOVE_HEAD(&dns->queue, qlink);
		dns->inflight++;
		ares_query(dns->loop.channel, lk->qname, DNS_CLASS_IN, lk->type, on_answer, lk);
	}
	dns->pumping = false;
}

/* Drop the queued lookups of req (cancelled); returns how many. */
static unsigned dns_unqueue(co_dns *dns, const co_dns_req *req)
{
	struct dns_queue keep = STAILQ_HEAD_INITIALIZER(keep);
	struct lookup *lk;
	unsigned n = 0;

	/* One pass, the others keep their order: glibc has no STAILQ_REMOVE_AFTER. */
	while ((lk = STAILQ_FIRST(&dns->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&dns->queue, qlink);
		if (lk->req == req)
			n++;
		else
			STAILQ_INSERT_TAIL(&keep, lk, qlink);
	}
	STAILQ_CONCAT(&dns->queue, &keep);
	return n;
}

/* Queue a query of lk->type for name; the answer may come before this returns. */
static void lookup_start(struct lookup *lk, const char *name)
{
	co_dns_req *req = lk->req;
	co_dns *dns = req->dns;

	if (name != lk->qname)
		snprintf(lk->qname, sizeof lk->qname, "%s", name);
	lk->outcome = OUT_NONE;
	req->pending++;
	STAILQ_INSERT_TAIL(&dns->queue, lk, qlink);
	dns_pump(dns);
}

static void lookup_temp(struct lookup *lk, const char *what)
{
	co_dns_req *req = lk->req;

	lk->outcome = OUT_TEMP;
	if (req->detail[0] == '\0')
		set_detail(req, "%s looking up %s for %s", what, type_name(lk->type), lk->qname);
}

/* Follow a CNAME target the server did not resolve; false if too deep. */
static bool lookup_requery(struct lookup *lk, const char *target)
{
	if (lk->requeries >= CNAME_REQUERY_MAX)
		return false;
	lk->requeries++;
	lookup_start(lk, target);
	return true;
}

static void hosts_start(co_dns_req *req)
{
	req->issuing++;
	for (unsigned i = 0; i < req->nhosts; i++) {
		struct hstate *h = &req->hosts[i];

		if (h->lk6.outcome != OUT_NONE) /* an IP literal */
			continue;
		lookup_start(&h->lk6, h->name);
		lookup_start(&h->lk4, h->name);
	}
	req->issuing--;
}

static void hosts_init(co_dns_req *req, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct hstate *h = &req->hosts[i];

		h->lk6.req = req;
		h->lk6.host = h;
		h->lk6.type = DNS_TYPE_AAAA;
		h->lk4.req = req;
		h->lk4.host = h;
		h->lk4.type = DNS_TYPE_A;
	}
	req->nhosts = n;
}

static bool is_null_mx(const char *host)
{
	return host[0] == '\0' || strcmp(host, ".") == 0;
}

struct mxent {
	const char *host;
	unsigned pref;
};

/* MX records to the host list: null MX, shuffle, stable sort, dedupe, limit. */
static void mx_to_hosts(co_dns_req *req, struct ares_mx_reply *mx)
{
	co_dns *dns = req->dns;
	struct mxent *v = NULL;
	unsigned n = 0, nnull = 0, k, limit;

	for (struct ares_mx_reply *m = mx; m != NULL && n < MX_RECORDS_MAX; m = m->next)
		n++;
	v = calloc(n > 0 ? n : 1, sizeof *v);
	if (v == NULL) {
		set_detail(req, "out of memory");
		decide(req, CO_DNS_TEMPFAIL);
		return;
	}
	k = 0;
	for (struct ares_mx_reply *m = mx; m != NULL && k + nnull < n; m = m->next) {
		if (is_null_mx(m->host)) {
			nnull++;
			continue;
		}
		v[k].host = m->host;
		v[k].pref = m->priority;
		k++;
	}
	if (k == 0) {
		/* RFC 7505: "MX 0 ." (a null MX mixed with real ones is ignored) */
		free(v);
		set_detail(req, "null MX for %s", req->domain);
		decide(req, CO_DNS_NULL_MX);
		return;
	}

	/* Shuffle, then a stable sort by preference: equal ones stay shuffled. */
	for (unsigned i = k - 1; i > 0; i--) {
		unsigned j = rng_below(dns, i + 1);
		struct mxent t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
	for (unsigned i = 1; i < k; i++) {
		struct mxent t = v[i];
		unsigned j = i;

		for (; j > 0 && v[j - 1].pref > t.pref; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}

	limit = req->max_hosts;
	if (limit == 0 || limit > CO_DNS_HOSTS_MAX)
		limit = CO_DNS_HOSTS_MAX;
	if (limit > k)
		limit = k;
	req->hosts = calloc(limit, sizeof *req->hosts);
	if (req->hosts == NULL) {
		free(v);
		set_detail(req, "out of memory");
		decide(req, CO_DNS_TEMPFAIL);
		return;
	}
	n = 0;
	for (unsigned i = 0; i < k && n < limit; i++) {
		struct hstate *h = &req->hosts[n];
		bool dup = false;

		if (!co_dns_name_copy(h->name, v[i].host))
			continue; /* cannot come from a valid answer */
		for (unsigned j = 0; j < n && !dup; j++)
			dup = strcasecmp(req->hosts[j].name, h->name) == 0;
		if (dup)
			continue;
		h->pref = v[i].pref;
		n++;
	}
	free(v);
	hosts_init(req, n);
	hosts_start(req);
}

static void mx_implicit(co_dns_req *req)
{
	req->hosts = calloc(1, sizeof *req->hosts);
	if (req->hosts == NULL) {
		set_detail(req, "out of memory");
		decide(req, CO_DNS_TEMPFAIL);
		return;
	}
	req->implicit_mx = true;
	snprintf(req->hosts[0].name, sizeof req->hosts[0].name, "%s", req->domain);
	hosts_init(req, 1);
	hosts_start(req);
}

static void mx_answer(co_dns_req *req, int status, const unsigned char *abuf, int alen)
{
	struct lookup *lk = &req->mx;
	struct ares_mx_reply *mx = NULL;
	co_dns_answer a = {0, NULL};
	char final[256];
	co_dns_chase ch;
	int rc;

	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA: /* NOERROR, empty answer: no MX record */
		mx_implicit(req);
		return;
	case ARES_ENOTFOUND:
		/* NXDOMAIN for the end of a CNAME chain: the domain itself exists. */
		ch = CHASE_OK;
		final[0] = '\0';
		if (lk->requeries == 0 && co_dns_answer_parse(abuf, alen, &a) == ARES_SUCCESS)
			ch = co_dns_answer_chase(abuf, alen, &a, lk->qname, final);
		co_dns_answer_free(&a);
		if (lk->requeries > 0 || (ch == CHASE_OK && strcasecmp(final, lk->qname) != 0)) {
			set_detail(req, "%s is an alias of a name that does not exist",
			           req->domain);
			decide(req, CO_DNS_NO_HOST);
		} else {
			set_detail(req, "NXDOMAIN looking up MX for %s", req->domain);
			decide(req, CO_DNS_NXDOMAIN);
		}
		return;
	case ARES_EBADNAME:
		set_detail(req, "invalid domain name %s", req->domain);
		decide(req, CO_DNS_NXDOMAIN);
		return;
	default:
		lookup_temp(lk, status_text(req->dns, status));
		decide(req, CO_DNS_TEMPFAIL);
		return;
	}

	rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc == ARES_SUCCESS && mx == NULL)
		rc = ARES_ENODATA; /* c-ares 1.18: records, none of them MX */
	if (rc == ARES_SUCCESS) {
		mx_to_hosts(req, mx);
		ares_free_data(mx);
		return;
	}
	if (rc != ARES_ENODATA) {
		/* EBADNAME here is a name in the answer that does not expand:
		 * the answer is malformed, not the domain invalid. */
		lookup_temp(lk, status_text(req->dns, rc == ARES_EBADNAME ? ARES_EBADRESP : rc));
		decide(req, CO_DNS_TEMPFAIL);
		return;
	}

	/* Records, but no MX: a CNAME whose target the server did not resolve. */
	rc = co_dns_answer_parse(abuf, alen, &a);
	ch = rc == ARES_SUCCESS  ? co_dns_answer_chase(abuf, alen, &a, lk->qname, final)
	     : rc == ARES_ENOMEM ? CHASE_NOMEM
	                         : CHASE_BAD;
	co_dns_answer_free(&a);
	switch (ch) {
	case CHASE_OK:
		if (strcasecmp(final, lk->qname) == 0) {
			lookup_temp(lk, "answer without MX or CNAME");
			decide(req, CO_DNS_TEMPFAIL);
		} else if (!lookup_requery(lk, final)) {
			lookup_temp(lk, "CNAME chain too long");
			decide(req, CO_DNS_TEMPFAIL);
		}
		return;
	case CHASE_LOOP:
		lookup_temp(lk, "CNAME loop");
		break;
	case CHASE_NOMEM:
		lookup_temp(lk, "out of memory");
		break;
	case CHASE_BAD:
		lookup_temp(lk, "malformed answer");
		break;
	}
	decide(req, CO_DNS_TEMPFAIL);
}

static void addr_answer(struct lookup *lk, int status, const unsigned char *abuf, int alen)
{
	struct hstate *h = lk->host;
	co_dns_req *req = lk->req;
	co_dns_answer a;
	char final[256];
	co_dns_chase ch;
	unsigned found = 0;
	int rc;

	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
		lk->outcome = OUT_NODATA;
		return;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME: /* cannot exist */
		lk->outcome = OUT_NXDOMAIN;
		return;
	default:
		lookup_temp(lk, status_text(req->dns, status));
		return;
	}

	rc = co_dns_answer_parse(abuf, alen, &a);
	if (rc != ARES_SUCCESS) {
		co_dns_answer_free(&a);
		lookup_temp(lk, status_text(req->dns, rc));
		return;
	}
	ch = co_dns_answer_chase(abuf, alen, &a, lk->qname, final);
	if (ch != CHASE_OK) {
		co_dns_answer_free(&a);
		lookup_temp(lk, ch == CHASE_LOOP ? "CNAME loop" : "malformed answer");
		return;
	}
	for (unsigned i = 0; i < a.n; i++) {
		const co_dns_rr *rr = &a.rr[i];

		if (rr->type != (unsigned)lk->type || rr->klass != DNS_CLASS_IN ||
		    strcasecmp(rr->owner, final) != 0)
			continue;
		if (lk->type == DNS_TYPE_AAAA && rr->rdlen == 16) {
			found++;
			if (h->n6 < CO_DNS_ADDRS_MAX)
				memcpy(&h->a6[h->n6++], rr->rdata, 16);
		} else if (lk->type == DNS_TYPE_A && rr->rdlen == 4) {
			found++;
			if (h->n4 < CO_DNS_ADDRS_MAX)
				memcpy(&h->a4[h->n4++], rr->rdata, 4);
		}
	}
	co_dns_answer_free(&a);
	if (found > 0)
		lk->outcome = OUT_OK;
	else if (strcasecmp(final, lk->qname) == 0)
		lk->outcome = OUT_NODATA; /* records of other types only */
	else if (!lookup_requery(lk, final))
		lookup_temp(lk, "CNAME chain too long");
}

/* Assemble the result in host order; IPv6 first, both families kept when possible. */
static void req_finish(co_dns_req *req)
{
	co_dns_result *res = &req->res;
	unsigned k = 0;
	bool temp = false, nx = false;

	req->state = REQ_DONE;
	res->implicit_mx = req->implicit_mx;
	if (req->decided) {
		res->status = req->decided_status;
		goto out;
	}
	for (unsigned i = 0; i < req->nhosts; i++) {
		const struct hstate *h = &req->hosts[i];

		if (h->n6 + h->n4 > 0)
			k++;
		if (h->lk6.outcome == OUT_TEMP || h->lk4.outcome == OUT_TEMP)
			temp = true;
		if (h->lk6.outcome == OUT_NXDOMAIN && h->lk4.outcome == OUT_NXDOMAIN)
			nx = true;
	}
	if (k == 0) {
		if (temp) {
			res->status = CO_DNS_TEMPFAIL; /* detail: the first failure */
		} else if (req->implicit_mx && nx) {
			res->status = CO_DNS_NXDOMAIN;
			set_detail(req, "NXDOMAIN looking up A/AAAA for %s", req->domain);
		} else if (req->implicit_mx) {
			res->status = CO_DNS_NO_HOST;
			set_detail(req, "no MX and no A/AAAA for %s", req->domain);
		} else if (req->mx_mode) {
			res->status = CO_DNS_NO_HOST;
			set_detail(req, "no address for any MX host of %s", req->domain);
		} else {
			res->status = CO_DNS_NO_HOST;
			set_detail(req, "no address for %s%s",
			           req->nhosts ? req->hosts[0].name : "any host",
			           req->nhosts > 1 ? " or the other hosts" : "");
		}
		goto out;
	}
	res->hosts = calloc(k, sizeof *res->hosts);
	if (res->hosts == NULL) {
		res->status = CO_DNS_TEMPFAIL;
		set_detail(req, "out of memory");
		goto out;
	}
	res->status = CO_DNS_OK;
	req->detail[0] = '\0';
	for (unsigned i = 0; i < req->nhosts; i++) {
		const struct hstate *h = &req->hosts[i];
		co_dns_host *o = &res->hosts[res->nhosts];
		unsigned n6 = h->n6, n4 = h->n4, keep4;

		if (n6 + n4 == 0)
			continue;
		if (n6 + n4 > CO_DNS_ADDRS_MAX) {
			keep4 = n4 < CO_DNS_ADDRS_MAX / 2 ? n4 : CO_DNS_ADDRS_MAX / 2;
			if (n6 > CO_DNS_ADDRS_MAX - keep4)
				n6 = CO_DNS_ADDRS_MAX - keep4;
			if (n6 + n4 > CO_DNS_ADDRS_MAX)
				n4 = CO_DNS_ADDRS_MAX - n6;
		}
		memcpy(o->name, h->name, sizeof o->name);
		o->pref = h->pref;
		o->port = h->port;
		for (unsigned j = 0; j < n6; j++) {
			struct sockaddr_in6 *sin6 =
			    (struct sockaddr_in6 *)(void *)&o->addr[o->naddr++];

			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = h->a6[j];
		}
		for (unsigned j = 0; j < n4; j++) {
			struct sockaddr_in *sin =
			    (struct sockaddr_in *)(void *)&o->addr[o->naddr++];

			sin->sin_family = AF_INET;
			sin->sin_addr = h->a4[j];
		}
		res->nhosts++;
	}
out:
	memcpy(res->detail, req->detail, sizeof res->detail);
	event_active(req->done_ev, EV_TIMEOUT, 0);
}

static void req_maybe_finish(co_dns_req *req)
{
	if (req->state == REQ_RUNNING && !req->issuing && req->pending == 0)
		req_finish(req);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *lk = arg;
	co_dns_req *req = lk->req;
	co_dns *dns = req->dns;

	dns->inflight--;
	req->pending--;
	if (dns->loop.destroying || status == ARES_EDESTRUCTION)
		return; /* co_dns_free() frees the requests */
	if (req->state == REQ_CANCELLED) {
		if (req->pending == 0)
			req_free(req);
	} else {
		if (lk->host == NULL)
			mx_answer(req, status, abuf, alen);
		else
			addr_answer(lk, status, abuf, alen);
		req_maybe_finish(req);
	}
	dns_pump(dns);
}

static co_dns_req *req_new(co_dns *dns, co_dns_cb cb, void *arg)
{
	co_dns_req *req = calloc(1, sizeof *req);

	if (req == NULL)
		return NULL;
	req->done_ev = event_new(dns->loop.base, -1, 0, done_cb, req);
	if (req->done_ev == NULL) {
		free(req);
		return NULL;
	}
	req->dns = dns;
	req->cb = cb;
	req->arg = arg;
	req->state = REQ_RUNNING;
	req->mx.req = req;
	req->mx.type = DNS_TYPE_MX;
	LIST_INSERT_HEAD(&dns->reqs, req, link);
	return req;
}

/* ---- public API ------------------------------------------------------------ */

co_dns *co_dns_new(struct event_base *base, const char *servers, unsigned timeout_ms, char *err,
                   size_t errlen)
{
	co_dns *dns;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (base == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "no event base");
		return NULL;
	}
	dns = calloc(1, sizeof *dns);
	if (dns == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	LIST_INIT(&dns->reqs);
	STAILQ_INIT(&dns->queue);
	rng_seed(dns);
	if (!co_dns_loop_open(&dns->loop, base, servers, timeout_ms, false, err, errlen)) {
		rc = errno; /* the caller tells out of memory from a bad setup */
		co_dns_free(dns);
		errno = rc;
		return NULL;
	}
	return dns;
}

void co_dns_free(co_dns *dns)
{
	if (dns == NULL)
		return;
	co_dns_loop_close(&dns->loop); /* the queries call back: ARES_EDESTRUCTION */
	while (!LIST_EMPTY(&dns->reqs))
		req_free(LIST_FIRST(&dns->reqs));
	free(dns);
}

co_dns_req *co_dns_resolve_mx(co_dns *dns, const char *domain, unsigned max_hosts, co_dns_cb cb,
                              void *arg)
{
	co_dns_req *req;

	if (dns == NULL || cb == NULL)
		return NULL;
	req = req_new(dns, cb, arg);
	if (req == NULL)
		return NULL;
	req->mx_mode = true;
	req->max_hosts = max_hosts;
	req->issuing++;
	if (!co_dns_name_copy(req->domain, domain)) {
		snprintf(req->domain, sizeof req->domain, "%.200s", domain ? domain : "");
		set_detail(req, "invalid domain name");
		decide(req, CO_DNS_NXDOMAIN);
	} else {
		lookup_start(&req->mx, req->domain);
	}
	req->issuing--;
	req_maybe_finish(req);
	co_dns_loop_rearm(&dns->loop);
	return req;
}

/* An IP literal: "192.0.2.1", "2001:db8::1" or "[2001:db8::1]"; h->name without brackets. */
static bool parse_literal(struct hstate *h, const char *name)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(name);

	if (inet_pton(AF_INET, name, &h->a4[0]) == 1) {
		h->n4 = 1;
		snprintf(h->name, sizeof h->name, "%s", name);
		return true;
	}
	if (len >= 2 && name[0] == '[' && name[len - 1] == ']' && len - 2 < sizeof buf) {
		memcpy(buf, name + 1, len - 2);
		buf[len - 2] = '\0';
		name = buf;
	}
	if (inet_pton(AF_INET6, name, &h->a6[0]) == 1) {
		h->n6 = 1;
		snprintf(h->name, sizeof h->name, "%s", name);
		return true;
	}
	return false;
}

co_dns_req *co_dns_resolve_hosts(co_dns *dns, const char *const *names, const unsigned *ports,
                                 unsigned n, co_dns_cb cb, void *arg)
{
	co_dns_req *req;

	if (dns == NULL || cb == NULL || (names == NULL && n > 0))
		return NULL;
	req = req_new(dns, cb, arg);
	if (req == NULL)
		return NULL;
	if (n > CO_DNS_HOSTS_MAX)
		n = CO_DNS_HOSTS_MAX;
	if (n > 0) {
		req->hosts = calloc(n, sizeof *req->hosts);
		if (req->hosts == NULL) {
			req_free(req);
			return NULL;
		}
	}
	hosts_init(req, n);
	for (unsigned i = 0; i < n; i++) {
		struct hstate *h = &req->hosts[i];
		const char *name = names[i] != NULL ? names[i] : "";

		h->pref = i;
		h->port = ports != NULL ? ports[i] : 0;
		if (parse_literal(h, name)) {
			h->lk6.outcome = h->n6 ? OUT_OK : OUT_NODATA;
			h->lk4.outcome = h->n4 ? OUT_OK : OUT_NODATA;
		} else if (!co_dns_name_copy(h->name, name)) {
			snprintf(h->name, sizeof h->name, "%.200s", name);
			h->lk6.outcome = OUT_NXDOMAIN;
			h->lk4.outcome = OUT_NXDOMAIN;
		}
	}
	hosts_start(req);
	req_maybe_finish(req);
	co_dns_loop_rearm(&dns->loop);
	return req;
}

void co_dns_cancel(co_dns_req *req)
{
	if (req == NULL)
		return;
	switch (req->state) {
	case REQ_RUNNING:
		req->pending -= dns_unqueue(req->dns, req);
		if (req->pending == 0)
			req_free(req);
		else
			req->state = REQ_CANCELLED; /* freed by its last c-ares callback */
		break;
	case REQ_DONE:
		req_free(req); /* the delivery event goes with it */
		break;
	case REQ_CANCELLED:
		break;
	}
}
