/* Unit tests for src/lib/dns.c: mail host resolution through c-ares
 * against a DNS server in the test, on the same loop, that answers from a
 * table of records (packets built here, as a recorded zone would give
 * them): MX order, null MX, implicit MX, CNAMEs, failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "loopback.h"

enum { T_A = 1, T_CNAME = 5, T_MX = 15, T_AAAA = 28 };
enum { NOERROR = 0, SERVFAIL = 2, NXDOMAIN = 3 };

/* One record of an answer: MX and CNAME name a host ("" is the root),
 * A and AAAA give an address in text. */
typedef struct rec {
	const char *owner;
	int type;
	const char *data;
	unsigned pref;
} rec;

/* The answer to one question; a question not in the zone gets NOERROR
 * and no records. */
typedef struct entry {
	const char *name;
	int type;
	int rcode;
	bool silent;       /* never answered */
	unsigned extra_an; /* claims more records than it holds: malformed */
	rec rrs[4];
	unsigned queries; /* how often it was asked */
} entry;

/* Records, and the zone's entries: an answer of records, a bare rcode. */
/* clang-format off */
#define MX(o, host, pref) {o, T_MX, host, pref}
#define CNAME(o, target)  {o, T_CNAME, target, 0}
#define A(o, addr)        {o, T_A, addr, 0}
#define AAAA(o, addr)     {o, T_AAAA, addr, 0}
#define ANSWER(n, t, ...) {.name = n, .type = t, .rrs = {__VA_ARGS__}}
#define RCODE(n, t, r)    {.name = n, .type = t, .rcode = r}
#define END               {.name = NULL}
/* clang-format on */

typedef struct dnsd {
	int fd;
	struct sockaddr_in addr;
	struct event *ev;
	entry *zone;
} dnsd;

/* A name in wire form, uncompressed. */
static size_t put_name(unsigned char *p, const char *name)
{
	size_t n = 0;
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t len = dot ? (size_t)(dot - name) : strlen(name);
		p[n++] = (unsigned char)len;
		memcpy(p + n, name, len);
		n += len;
		name += len + (dot ? 1 : 0);
	}
	p[n++] = 0;
	return n;
}

static size_t put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return 2;
}

static size_t put_rr(unsigned char *p, const rec *r)
{
	size_t n = put_name(p, r->owner);
	n += put16(p + n, (unsigned)r->type);
	n += put16(p + n, 1); /* IN */
	n += put16(p + n, 0);
	n += put16(p + n, 300); /* TTL */
	unsigned char *rdlen = p + n, *rd = p + n + 2;
	size_t len = 0;
	switch (r->type) {
	case T_MX:
		len = put16(rd, r->pref);
		len += put_name(rd + len, r->data);
		break;
	case T_CNAME:
		len = put_name(rd, r->data);
		break;
	case T_A:
		assert_int_equal(inet_pton(AF_INET, r->data, rd), 1);
		len = 4;
		break;
	case T_AAAA:
		assert_int_equal(inet_pton(AF_INET6, r->data, rd), 1);
		len = 16;
		break;
	}
	put16(rdlen, (unsigned)len);
	return n + 2 + len;
}

static void dnsd_read(evutil_socket_t fd, short what, void *arg)
{
	dnsd *d = arg;
	unsigned char q[512], a[2048];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	(void)what;

	ssize_t qlen = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
	if (qlen < 12 + 5)
		return;
	/* the question: name, type, class */
	char name[256];
	size_t i = 12, n = 0;
	while (i < (size_t)qlen && q[i] != 0 && n < sizeof(name) - 64) {
		size_t len = q[i++];
		if (n)
			name[n++] = '.';
		memcpy(name + n, q + i, len);
		n += len;
		i += len;
	}
	name[n] = '\0';
	size_t qend = i + 1 + 4;
	if (qend > (size_t)qlen)
		return;
	int type = q[i + 1] << 8 | q[i + 2];

	entry *e = NULL;
	for (entry *z = d->zone; z && z->name; z++)
		if (z->type == type && strcasecmp(z->name, name) == 0)
			e = z;
	if (e) {
		e->queries++;
		if (e->silent)
			return;
	}

	memcpy(a, q, qend); /* id and question as asked */
	unsigned nrr = 0;
	size_t len = qend;
	for (unsigned k = 0; e && k < 4 && e->rrs[k].owner; k++, nrr++)
		len += put_rr(a + len, &e->rrs[k]);
	put16(a + 2, 0x8000 | 0x0400 | (q[2] & 0x01) << 8 | 0x0080 | (e ? (unsigned)e->rcode : 0));
	put16(a + 4, 1);
	put16(a + 6, nrr + (e ? e->extra_an : 0));
	put16(a + 8, 0);
	put16(a + 10, 0);
	sendto(fd, a, len, 0, (struct sockaddr *)&from, fromlen);
}

static void dnsd_start(dnsd *d, struct event_base *base, entry *zone, char *servers, size_t size)
{
	memset(d, 0, sizeof(*d));
	d->zone = zone;
	d->fd = loopback_socket(SOCK_DGRAM, &d->addr);
	assert_true(d->fd >= 0);
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, dnsd_read, d);
	event_add(d->ev, NULL);
	snprintf(servers, size, "127.0.0.1:%u", ntohs(d->addr.sin_port));
}

/* What a callback got, copied (the result is borrowed). */
typedef struct got {
	unsigned calls;
	co_dns_status status;
	bool implicit_mx;
	unsigned nhosts;
	co_dns_host hosts[CO_DNS_HOSTS_MAX];
	char detail[128];
} got;

static void on_result(void *arg, const co_dns_result *res)
{
	got *g = arg;
	g->calls++;
	g->status = res->status;
	g->implicit_mx = res->implicit_mx;
	g->nhosts = res->nhosts;
	for (unsigned i = 0; i < res->nhosts && i < CO_DNS_HOSTS_MAX; i++)
		g->hosts[i] = res->hosts[i];
	memcpy(g->detail, res->detail, sizeof(g->detail));
}

typedef struct world {
	struct event_base *base;
	dnsd d;
	co_dns *dns;
	struct event *timer;
	bool expired;
} world;

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

static void world_start(world *w, entry *zone, unsigned timeout_ms)
{
	char servers[64], err[256];
	memset(w, 0, sizeof(*w));
	w->base = event_base_new();
	assert_non_null(w->base);
	dnsd_start(&w->d, w->base, zone, servers, sizeof(servers));
	w->dns = co_dns_new(w->base, servers, timeout_ms, err, sizeof(err));
	if (!w->dns)
		fail_msg("co_dns_new: %s", err);
	w->timer = evtimer_new(w->base, on_timer, &w->expired);
}

/* Run the loop until g has its answer, or for ms when g is NULL. */
static void world_run(world *w, got *g, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	w->expired = false;
	evtimer_add(w->timer, &tv);
	while (!w->expired && !(g && g->calls))
		event_base_loop(w->base, EVLOOP_ONCE);
	evtimer_del(w->timer);
	if (g)
		assert_int_equal(g->calls, 1);
}

static void world_end(world *w)
{
	co_dns_free(w->dns);
	event_free(w->timer);
	event_free(w->d.ev);
	close(w->d.fd);
	event_base_free(w->base);
}

/* Resolve the MX hosts of domain against zone. */
static void mx_of(got *g, entry *zone, const char *domain, unsigned max_hosts)
{
	world w;
	memset(g, 0, sizeof(*g));
	world_start(&w, zone, 1000);
	assert_non_null(co_dns_resolve_mx(w.dns, domain, max_hosts, on_result, g));
	world_run(&w, g, 5000);
	world_end(&w);
}

/* Resolve the MX hosts of domain; check the status and its detail. */
static void expect(got *g, entry *zone, const char *domain, co_dns_status status,
                   const char *detail)
{
	mx_of(g, zone, domain, 0);
	assert_int_equal(g->status, status);
	assert_string_equal(g->detail, detail);
}

static const char *addr_text(const co_dns_host *h, unsigned i, char *buf, size_t size)
{
	const struct sockaddr_storage *ss = &h->addr[i];
	if (ss->ss_family == AF_INET6)
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf,
		                 (socklen_t)size);
	return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf,
	                 (socklen_t)size);
}

static void test_mx_hosts(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("example.test", T_MX, MX("example.test", "mx2.example.test", 20),
	           MX("example.test", "MX1.Example.Test", 10)),
	    ANSWER("mx1.example.test", T_A, A("mx1.example.test", "192.0.2.1")),
	    ANSWER("mx1.example.test", T_AAAA, AAAA("mx1.example.test", "2001:db8::1")),
	    ANSWER("mx2.example.test", T_A, A("mx2.example.test", "192.0.2.2"),
	           A("mx2.example.test", "192.0.2.3")),
	    END,
	};
	got g;
	char buf[64];
	mx_of(&g, zone, "Example.Test.", 0);

	assert_int_equal(g.status, CO_DNS_OK);
	assert_false(g.implicit_mx);
	assert_string_equal(g.detail, "");
	assert_int_equal(g.nhosts, 2);
	/* by preference; names in lower case */
	assert_string_equal(g.hosts[0].name, "mx1.example.test");
	assert_int_equal(g.hosts[0].pref, 10);
	assert_int_equal(g.hosts[0].port, 0);
	/* IPv6 first, port 0 */
	assert_int_equal(g.hosts[0].naddr, 2);
	assert_int_equal(g.hosts[0].addr[0].ss_family, AF_INET6);
	assert_string_equal(addr_text(&g.hosts[0], 0, buf, sizeof(buf)), "2001:db8::1");
	assert_int_equal(((struct sockaddr_in6 *)&g.hosts[0].addr[0])->sin6_port, 0);
	assert_string_equal(addr_text(&g.hosts[0], 1, buf, sizeof(buf)), "192.0.2.1");
	assert_string_equal(g.hosts[1].name, "mx2.example.test");
	assert_int_equal(g.hosts[1].pref, 20);
	assert_int_equal(g.hosts[1].naddr, 2);
	assert_string_equal(addr_text(&g.hosts[1], 0, buf, sizeof(buf)), "192.0.2.2");
	assert_string_equal(addr_text(&g.hosts[1], 1, buf, sizeof(buf)), "192.0.2.3");
	/* each host asked once per family */
	assert_int_equal(zone[0].queries, 1);
	assert_int_equal(zone[1].queries, 1);
	assert_int_equal(zone[2].queries, 1);
}

static void test_max_hosts_and_duplicates(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("example.test", T_MX, MX("example.test", "c.example.test", 30),
	           MX("example.test", "a.example.test", 10),
	           MX("example.test", "A.example.test", 15),
	           MX("example.test", "b.example.test", 20)),
	    ANSWER("a.example.test", T_A, A("a.example.test", "192.0.2.1")),
	    ANSWER("b.example.test", T_A, A("b.example.test", "192.0.2.2")),
	    ANSWER("c.example.test", T_A, A("c.example.test", "192.0.2.3")),
	    END,
	};
	got g;
	/* a host named twice is one host, at its best preference */
	mx_of(&g, zone, "example.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	assert_int_equal(g.nhosts, 3);
	assert_string_equal(g.hosts[0].name, "a.example.test");
	assert_int_equal(g.hosts[0].pref, 10);
	assert_string_equal(g.hosts[1].name, "b.example.test");
	assert_string_equal(g.hosts[2].name, "c.example.test");

	/* only the first max_hosts are looked up */
	for (entry *e = zone; e->name; e++)
		e->queries = 0;
	mx_of(&g, zone, "example.test", 2);
	assert_int_equal(g.nhosts, 2);
	assert_string_equal(g.hosts[1].name, "b.example.test");
	assert_int_equal(zone[3].queries, 0);
}

static void test_nxdomain(void **state)
{
	(void)state;
	entry zone[] = {
	    RCODE("nx.test", T_MX, NXDOMAIN),
	    END,
	};
	got g;
	mx_of(&g, zone, "nx.test", 0);
	assert_int_equal(g.status, CO_DNS_NXDOMAIN);
	assert_int_equal(g.nhosts, 0);
	assert_string_equal(g.detail, "NXDOMAIN looking up MX for nx.test");

	/* a name that cannot be one is not asked about */
	expect(&g, zone, "", CO_DNS_NXDOMAIN, "invalid domain name");
	assert_int_equal(zone[0].queries, 1);
}

static void test_null_mx(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("nullmx.test", T_MX, MX("nullmx.test", "", 0)),
	    /* a null MX beside a real one is ignored */
	    ANSWER("mixed.test", T_MX, MX("mixed.test", "", 0),
	           MX("mixed.test", "mx.mixed.test", 10)),
	    ANSWER("mx.mixed.test", T_A, A("mx.mixed.test", "192.0.2.5")),
	    END,
	};
	got g;
	expect(&g, zone, "nullmx.test", CO_DNS_NULL_MX, "null MX for nullmx.test");
	mx_of(&g, zone, "mixed.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.hosts[0].name, "mx.mixed.test");
}

static void test_implicit_mx(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("plain.test", T_A, A("plain.test", "192.0.2.7")),
	    END,
	};
	got g;
	char buf[64];
	/* no MX record: the domain's own address */
	mx_of(&g, zone, "plain.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	assert_true(g.implicit_mx);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.hosts[0].name, "plain.test");
	assert_int_equal(g.hosts[0].naddr, 1);
	assert_string_equal(addr_text(&g.hosts[0], 0, buf, sizeof(buf)), "192.0.2.7");

	/* no MX and no address */
	mx_of(&g, zone, "empty.test", 0);
	assert_int_equal(g.status, CO_DNS_NO_HOST);
	assert_true(g.implicit_mx);
	assert_string_equal(g.detail, "no MX and no A/AAAA for empty.test");
}

static void test_hosts_without_address(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("d.test", T_MX, MX("d.test", "gone.d.test", 5), MX("d.test", "mx.d.test", 10)),
	    RCODE("gone.d.test", T_A, NXDOMAIN),
	    RCODE("gone.d.test", T_AAAA, NXDOMAIN),
	    ANSWER("mx.d.test", T_AAAA, AAAA("mx.d.test", "2001:db8::5")),
	    ANSWER("dead.test", T_MX, MX("dead.test", "gone.d.test", 5)),
	    END,
	};
	got g;
	/* a host without an address is dropped */
	mx_of(&g, zone, "d.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.hosts[0].name, "mx.d.test");
	assert_int_equal(g.hosts[0].naddr, 1);
	assert_int_equal(g.hosts[0].addr[0].ss_family, AF_INET6);
	/* ... and when none has one, there is no host */
	expect(&g, zone, "dead.test", CO_DNS_NO_HOST, "no address for any MX host of dead.test");
}

static void test_failures(void **state)
{
	(void)state;
	entry zone[] = {
	    RCODE("broken.test", T_MX, SERVFAIL),
	    ANSWER("h.test", T_MX, MX("h.test", "mx.h.test", 10)),
	    RCODE("mx.h.test", T_A, SERVFAIL),
	    {.name = "bad.test",
	     .type = T_MX,
	     .extra_an = 1,
	     .rrs = {MX("bad.test", "mx.bad.test", 10)}},
	    {.name = "slow.test", .type = T_MX, .silent = true},
	    END,
	};
	got g;
	expect(&g, zone, "broken.test", CO_DNS_TEMPFAIL, "SERVFAIL looking up MX for broken.test");

	/* the only host's address lookup failed: not "no host" */
	expect(&g, zone, "h.test", CO_DNS_TEMPFAIL, "SERVFAIL looking up A for mx.h.test");

	/* an answer that claims a record it does not hold */
	expect(&g, zone, "bad.test", CO_DNS_TEMPFAIL,
	       "malformed answer looking up MX for bad.test");

	/* no answer at all: a timeout after the tries */
	world w;
	memset(&g, 0, sizeof(g));
	world_start(&w, zone, 100);
	assert_non_null(co_dns_resolve_mx(w.dns, "slow.test", 0, on_result, &g));
	world_run(&w, &g, 5000);
	world_end(&w);
	assert_int_equal(g.status, CO_DNS_TEMPFAIL);
	assert_string_equal(g.detail, "timeout looking up MX for slow.test");
	assert_int_equal(zone[4].queries, 2);
}

static void test_cname(void **state)
{
	(void)state;
	entry zone[] = {
	    /* the server gave only the alias: its target is asked again */
	    ANSWER("alias.test", T_MX, CNAME("alias.test", "real.test")),
	    ANSWER("real.test", T_MX, MX("real.test", "mx.real.test", 10)),
	    ANSWER("mx.real.test", T_A, A("mx.real.test", "192.0.2.8")),
	    /* ... or the whole chain */
	    ANSWER("alias2.test", T_MX, CNAME("alias2.test", "real.test"),
	           MX("real.test", "mx.real.test", 10)),
	    /* an alias of nothing */
	    {.name = "dangling.test",
	     .type = T_MX,
	     .rcode = NXDOMAIN,
	     .rrs = {CNAME("dangling.test", "nothing.test")}},
	    ANSWER("loop1.test", T_MX, CNAME("loop1.test", "loop2.test"),
	           CNAME("loop2.test", "loop1.test")),
	    /* an MX host that is an alias, resolved by the server */
	    ANSWER("c.test", T_MX, MX("c.test", "mail.c.test", 10)),
	    ANSWER("mail.c.test", T_A, CNAME("mail.c.test", "mx.real.test"),
	           A("mx.real.test", "192.0.2.8")),
	    END,
	};
	got g;
	mx_of(&g, zone, "alias.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.hosts[0].name, "mx.real.test");
	assert_int_equal(zone[1].queries, 1);

	mx_of(&g, zone, "alias2.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	assert_string_equal(g.hosts[0].name, "mx.real.test");
	assert_int_equal(zone[1].queries, 1); /* not asked again */

	expect(&g, zone, "dangling.test", CO_DNS_NO_HOST,
	       "dangling.test is an alias of a name that does not exist");

	expect(&g, zone, "loop1.test", CO_DNS_TEMPFAIL, "CNAME loop looking up MX for loop1.test");

	mx_of(&g, zone, "c.test", 0);
	assert_int_equal(g.status, CO_DNS_OK);
	/* the host keeps its MX name, with the alias's addresses */
	assert_string_equal(g.hosts[0].name, "mail.c.test");
	assert_int_equal(g.hosts[0].naddr, 1);
}

static void test_resolve_hosts(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("relay.test", T_A, A("relay.test", "192.0.2.20")),
	    END,
	};
	const char *names[] = {"192.0.2.9", "nowhere.test", "[2001:db8::9]", "relay.test"};
	const unsigned ports[] = {25, 26, 2525, 587};
	world w;
	got g = {0};
	char buf[64];

	world_start(&w, zone, 1000);
	assert_non_null(co_dns_resolve_hosts(w.dns, names, ports, 4, on_result, &g));
	world_run(&w, &g, 5000);
	/* in the order given, with their ports; a name without an address
	 * is left out */
	assert_int_equal(g.status, CO_DNS_OK);
	assert_int_equal(g.nhosts, 3);
	assert_string_equal(g.hosts[0].name, "192.0.2.9");
	assert_int_equal(g.hosts[0].port, 25);
	assert_string_equal(addr_text(&g.hosts[0], 0, buf, sizeof(buf)), "192.0.2.9");
	assert_string_equal(g.hosts[1].name, "2001:db8::9");
	assert_int_equal(g.hosts[1].port, 2525);
	assert_int_equal(g.hosts[1].addr[0].ss_family, AF_INET6);
	assert_string_equal(g.hosts[2].name, "relay.test");
	assert_int_equal(g.hosts[2].port, 587);
	assert_string_equal(addr_text(&g.hosts[2], 0, buf, sizeof(buf)), "192.0.2.20");

	/* none resolves */
	memset(&g, 0, sizeof(g));
	assert_non_null(co_dns_resolve_hosts(w.dns, names + 1, ports + 1, 1, on_result, &g));
	world_run(&w, &g, 5000);
	assert_int_equal(g.status, CO_DNS_NO_HOST);
	assert_string_equal(g.detail, "no address for nowhere.test");
	world_end(&w);
}

static void test_cancel(void **state)
{
	(void)state;
	entry zone[] = {
	    ANSWER("example.test", T_MX, MX("example.test", "mx.example.test", 10)),
	    ANSWER("mx.example.test", T_A, A("mx.example.test", "192.0.2.1")),
	    END,
	};
	world w;
	got g = {0}, other = {0};

	world_start(&w, zone, 1000);
	co_dns_req *req = co_dns_resolve_mx(w.dns, "example.test", 0, on_result, &g);
	assert_non_null(co_dns_resolve_mx(w.dns, "example.test", 0, on_result, &other));
	co_dns_cancel(req);
	/* the other request completes; the cancelled one never calls */
	world_run(&w, &other, 5000);
	world_run(&w, NULL, 100);
	assert_int_equal(g.calls, 0);
	assert_int_equal(other.status, CO_DNS_OK);

	/* freeing the resolver cancels what is in flight */
	memset(&g, 0, sizeof(g));
	assert_non_null(co_dns_resolve_mx(w.dns, "example.test", 0, on_result, &g));
	world_end(&w);
	assert_int_equal(g.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_hosts),      cmocka_unit_test(test_max_hosts_and_duplicates),
	    cmocka_unit_test(test_nxdomain),      cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_implicit_mx),   cmocka_unit_test(test_hosts_without_address),
	    cmocka_unit_test(test_failures),      cmocka_unit_test(test_cname),
	    cmocka_unit_test(test_resolve_hosts), cmocka_unit_test(test_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
