/* Unit tests for src/lib/netcheck.c: where a callout may go. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "netcheck.h"

/* This host's own addresses in these tests (public ones: only the
 * "own" rule can refuse them). */
#define OWN4 "1.2.3.4"
#define OWN6 "2a00:1450::25"

static struct sockaddr_storage sockaddr_of(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static co_netcheck *netcheck(void)
{
	co_netcheck *nc = co_netcheck_new();
	assert_non_null(nc);
	struct sockaddr_storage a = sockaddr_of(OWN4), b = sockaddr_of(OWN6);
	assert_int_equal(co_netcheck_add(nc, (struct sockaddr *)&a), 0);
	assert_int_equal(co_netcheck_add(nc, (struct sockaddr *)&b), 0);
	return nc;
}

typedef struct expect {
	const char *ip;
	co_net_verdict v;
	const char *why; /* a word the reason must contain; NULL for OK */
} expect;

#define OK(ip)                                                                                     \
	{                                                                                          \
		ip, CO_NET_OK, NULL                                                                \
	}
#define PRIV(ip, why)                                                                              \
	{                                                                                          \
		ip, CO_NET_PRIVATE, why                                                            \
	}
#define NEVER(ip, why)                                                                             \
	{                                                                                          \
		ip, CO_NET_NEVER, why                                                              \
	}

/* Each address: its verdict unless allowed, and allowed (PRIVATE turns
 * OK, NEVER stays). */
static void check_all(const expect *e, size_t n)
{
	co_netcheck *nc = netcheck();
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ss = sockaddr_of(e[i].ip);
		const char *why = NULL;
		co_net_verdict v = co_netcheck_addr(nc, &ss, false, &why);
		assert_non_null(why);
		if (v != e[i].v || (e[i].why && !strstr(why, e[i].why))) {
			print_error("%s: verdict %d (%s), want %d (%s)\n", e[i].ip, v, why, e[i].v,
			            e[i].why ? e[i].why : "");
			fail();
		}
		co_net_verdict allowed = co_netcheck_addr(nc, &ss, true, NULL);
		assert_int_equal(allowed, e[i].v == CO_NET_NEVER ? CO_NET_NEVER : CO_NET_OK);
	}
	co_netcheck_free(nc);
}

#define CHECK_ALL(table) check_all(table, sizeof(table) / sizeof(table[0]))

static void test_ipv4_ranges(void **state)
{
	(void)state;
	static const expect t[] = {
	    OK("8.8.8.8"),
	    OK("192.0.3.1"),
	    OK("172.32.0.1"),
	    OK("100.128.0.1"),
	    OK("223.255.255.255"),
	    NEVER("0.0.0.0", "unspecified"),
	    NEVER("0.1.2.3", "unspecified"),
	    PRIV("127.0.0.1", "loopback"),
	    PRIV("127.255.255.254", "loopback"),
	    PRIV("10.1.2.3", "private"),
	    PRIV("172.16.0.1", "private"),
	    PRIV("172.31.255.255", "private"),
	    PRIV("192.168.1.1", "private"),
	    PRIV("100.64.0.1", "shared"),
	    PRIV("100.127.255.255", "shared"),
	    PRIV("169.254.1.1", "link-local"),
	    PRIV("192.0.2.1", "documentation"),
	    PRIV("198.51.100.1", "documentation"),
	    PRIV("203.0.113.1", "documentation"),
	    PRIV("198.18.0.1", "benchmarking"),
	    PRIV("198.19.255.255", "benchmarking"),
	    PRIV(OWN4, "own"),
	    NEVER("224.0.0.1", "multicast"),
	    NEVER("239.255.255.255", "multicast"),
	    NEVER("240.0.0.1", "reserved"),
	    NEVER("255.255.255.255", "broadcast"),
	};
	CHECK_ALL(t);
}

static void test_ipv6_ranges(void **state)
{
	(void)state;
	static const expect t[] = {
	    OK("2a00:1450:4001:80b::200e"),
	    OK("2001:4860::8888"),
	    OK("2001:db9::1"),
	    OK("2001:1::1"),
	    OK("3ffe::1"),
	    OK("fbff::1"),
	    OK("fe7f::1"),
	    NEVER("::", "unspecified"),
	    PRIV("::1", "loopback"),
	    PRIV("fe80::1", "link-local"),
	    PRIV("febf:ffff::1", "link-local"),
	    PRIV("fec0::1", "site-local"),
	    PRIV("feff::1", "site-local"),
	    PRIV("fc00::1", "unique local"),
	    PRIV("fd12:3456::1", "unique local"),
	    PRIV("2001:db8::1", "documentation"),
	    PRIV("3fff:fff::1", "documentation"),
	    PRIV("2001:2::1", "benchmarking"),
	    PRIV(OWN6, "own"),
	    NEVER("ff02::1", "multicast"),
	    NEVER("ff0e::101", "multicast"),
	    NEVER("100::1", "discard"),
	    NEVER("2001:20::1", "ORCHID"),
	};
	CHECK_ALL(t);
}

/* Every form that carries an IPv4 address: private, loopback, own and
 * never-addresses are caught; public ones pass. */
static void test_ipv4_mapped_and_compatible(void **state)
{
	(void)state;
	static const expect t[] = {
	    OK("::ffff:8.8.8.8"),
	    PRIV("::ffff:127.0.0.1", "loopback address inside an IPv6"),
	    PRIV("::ffff:10.0.0.1", "private"),
	    PRIV("::ffff:192.168.0.1", "private"),
	    PRIV("::ffff:169.254.169.254", "link-local"),
	    PRIV("::ffff:" OWN4, "own"),
	    NEVER("::ffff:0.0.0.0", "unspecified"),
	    NEVER("::ffff:255.255.255.255", "broadcast"),
	    NEVER("::ffff:224.0.0.1", "multicast"),
	    /* IPv4-translated (SIIT, ::ffff:0:0:0/96) */
	    OK("::ffff:0:808:808"),
	    PRIV("::ffff:0:7f00:1", "loopback"),
	    PRIV("::ffff:0:a00:1", "private"),
	    /* IPv4-compatible (::/96, deprecated) */
	    OK("::8.8.8.8"),
	    PRIV("::127.0.0.1", "loopback"),
	    PRIV("::10.0.0.1", "private"),
	    PRIV("::" OWN4, "own"),
	    NEVER("::0.0.0.2", "unspecified"),
	};
	CHECK_ALL(t);
}

static void test_nat64(void **state)
{
	(void)state;
	static const expect t[] = {
	    OK("64:ff9b::8.8.8.8"),
	    OK("64:ff9b::808:808"),
	    PRIV("64:ff9b::127.0.0.1", "loopback"),
	    PRIV("64:ff9b::7f00:1", "loopback"),
	    PRIV("64:ff9b::10.1.2.3", "private"),
	    PRIV("64:ff9b::172.16.5.4", "private"),
	    PRIV("64:ff9b::100.64.0.1", "shared"),
	    PRIV("64:ff9b::" OWN4, "own"),
	    NEVER("64:ff9b::224.0.0.1", "multicast"),
	    /* 64:ff9b::/96 only: the rest of 64:ff9b::/32 carries nothing */
	    OK("64:ff9b:0:1::7f00:1"),
	    /* the local-use prefix (RFC 8215), whatever its layout */
	    PRIV("64:ff9b:1::8.8.8.8", "local-use NAT64"),
	    PRIV("64:ff9b:1:7f00:1::", "local-use NAT64"),
	    PRIV("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "local-use NAT64"),
	    OK("64:ff9b:2::808:808"),
	};
	CHECK_ALL(t);
}

static void test_6to4(void **state)
{
	(void)state;
	static const expect t[] = {
	    OK("2002:808:808::1"),
	    PRIV("2002:7f00:1::1", "loopback"),
	    PRIV("2002:a00:1::", "private"),
	    PRIV("2002:c0a8:101:1::1", "private"),
	    PRIV("2002:a9fe:a9fe::1", "link-local"),
	    PRIV("2002:102:304::25", "own"),
	    NEVER("2002::1", "unspecified"),
	    NEVER("2002:e000:1::1", "multicast"),
	    NEVER("2002:ffff:ffff::1", "broadcast"),
	};
	CHECK_ALL(t);
}

/* Teredo: 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC with the server's IPv4
 * in bits 32-63 and the client's inverted in the last 32 bits. */
static void test_teredo(void **state)
{
	(void)state;
	static const expect t[] = {
	    /* server 65.54.227.120, client 192.0.3.1 (~ = 3fff:fcfe) */
	    OK("2001:0:4136:e378:8000:63bf:3fff:fcfe"),
	    /* client 127.0.0.1 inverted: 80ff:fffe */
	    PRIV("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
	    /* client 10.0.0.1 inverted: f5ff:fffe */
	    PRIV("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),
	    /* client 1.2.3.4 (own) inverted: fefd:fcfb */
	    PRIV("2001:0:4136:e378:8000:63bf:fefd:fcfb", "own"),
	    /* server 192.168.1.1, client public */
	    PRIV("2001:0:c0a8:101:8000:63bf:3fff:fcfe", "private"),
	    /* server 127.0.0.1 */
	    PRIV("2001:0:7f00:1:8000:63bf:3fff:fcfe", "loopback"),
	    /* client 255.255.255.255 is never; it wins over a private server */
	    NEVER("2001:0:a00:1::", "broadcast"),
	    /* client 0.0.0.0 */
	    NEVER("2001:0:4136:e378:8000:63bf:ffff:ffff", "unspecified"),
	    /* 2001:1::/32 is not Teredo */
	    OK("2001:1:7f00:1::80ff:fffe"),
	};
	CHECK_ALL(t);
}

/* The extraction itself, for every layout. */
static void test_embedded_extraction(void **state)
{
	(void)state;
	static const struct {
		const char *ip;
		unsigned n;
		uint32_t v4[2];
	} t[] = {
	    {"::ffff:1.2.3.4", 1, {0x01020304}},
	    {"::ffff:0:1.2.3.4", 1, {0x01020304}},
	    {"::1.2.3.4", 1, {0x01020304}},
	    {"64:ff9b::1.2.3.4", 1, {0x01020304}},
	    {"2002:102:304:5:6:7:8:9", 1, {0x01020304}},
	    {"2001:0:102:304:8000:63bf:fefd:fcfb", 2, {0x01020304, 0x01020304}},
	    {"2001:0:a0b:c0d:0:0:f0f0:f0f0", 2, {0x0a0b0c0d, 0x0f0f0f0f}},
	    {"2001:db8::1", 0, {0}},
	    {"2003::1", 0, {0}},
	    {"64:ff9b:1::1.2.3.4", 0, {0}},
	    {"::ffff:1:0:0:1.2.3.4", 0, {0}},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct in6_addr a;
		uint32_t v4[2] = {0, 0};
		assert_int_equal(inet_pton(AF_INET6, t[i].ip, &a), 1);
		unsigned n = co_netcheck_embedded(&a, v4);
		if (n != t[i].n) {
			print_error("%s: %u embedded, want %u\n", t[i].ip, n, t[i].n);
			fail();
		}
		for (unsigned k = 0; k < n; k++)
			assert_int_equal(v4[k], t[i].v4[k]);
	}
}

/* Every IPv4 address, mapped into IPv6 each way, gets the same verdict
 * as the bare IPv4 address (a sample of the space, all ranges' edges). */
static void test_embedded_agrees_with_ipv4(void **state)
{
	(void)state;
	co_netcheck *nc = netcheck();
	for (uint64_t x = 0; x <= 0xffffffffu; x += 0x00fff1u) {
		uint32_t a = (uint32_t)x;
		struct sockaddr_storage s4, s6;
		memset(&s4, 0, sizeof(s4));
		((struct sockaddr_in *)&s4)->sin_family = AF_INET;
		((struct sockaddr_in *)&s4)->sin_addr.s_addr = htonl(a);
		co_net_verdict want = co_netcheck_addr(nc, &s4, false, NULL);
		static const uint8_t prefixes[][16] = {
		    {[10] = 0xff, [11] = 0xff}, {[8] = 0xff, [9] = 0xff}, {0x00, 0x64, 0xff, 0x9b}};
		for (size_t p = 0; p < 3; p++) {
			memset(&s6, 0, sizeof(s6));
			struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s6;
			a6->sin6_family = AF_INET6;
			memcpy(a6->sin6_addr.s6_addr, prefixes[p], 12);
			uint32_t n = htonl(a);
			memcpy(a6->sin6_addr.s6_addr + 12, &n, 4);
			assert_int_equal(co_netcheck_addr(nc, &s6, false, NULL), want);
		}
		/* 6to4 */
		memset(&s6, 0, sizeof(s6));
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s6;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr.s6_addr[0] = 0x20;
		a6->sin6_addr.s6_addr[1] = 0x02;
		uint32_t n = htonl(a);
		memcpy(a6->sin6_addr.s6_addr + 2, &n, 4);
		a6->sin6_addr.s6_addr[15] = 1;
		assert_int_equal(co_netcheck_addr(nc, &s6, false, NULL), want);
	}
	co_netcheck_free(nc);
}

static void test_unknown_family_and_full_table(void **state)
{
	(void)state;
	co_netcheck *nc = co_netcheck_new();
	assert_non_null(nc);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	const char *why = NULL;
	assert_int_equal(co_netcheck_addr(nc, &ss, true, &why), CO_NET_NEVER);
	assert_non_null(why);
	assert_int_equal(co_netcheck_add(nc, (struct sockaddr *)&ss), -1);
	/* a full table refuses more, and what it holds still counts */
	struct sockaddr_storage own = sockaddr_of("9.9.9.9");
	int added = 0;
	while (co_netcheck_add(nc, (struct sockaddr *)&own) == 0)
		assert_true(++added <= 64);
	const char *own_why = NULL;
	assert_int_equal(co_netcheck_addr(nc, &own, false, &own_why), CO_NET_PRIVATE);
	assert_non_null(strstr(own_why, "own"));
	/* ... and one table full leaves the other family's room */
	struct sockaddr_storage own6 = sockaddr_of(OWN6);
	assert_int_equal(co_netcheck_add(nc, (struct sockaddr *)&own6), 0);
	assert_int_equal(co_netcheck_addr(nc, &own6, false, NULL), CO_NET_PRIVATE);
	co_netcheck_free(nc);
	/* no table at all: the ranges still apply */
	ss = sockaddr_of("::ffff:127.0.0.1");
	assert_int_equal(co_netcheck_addr(NULL, &ss, false, NULL), CO_NET_PRIVATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_ranges),
	    cmocka_unit_test(test_ipv6_ranges),
	    cmocka_unit_test(test_ipv4_mapped_and_compatible),
	    cmocka_unit_test(test_nat64),
	    cmocka_unit_test(test_6to4),
	    cmocka_unit_test(test_teredo),
	    cmocka_unit_test(test_embedded_extraction),
	    cmocka_unit_test(test_embedded_agrees_with_ipv4),
	    cmocka_unit_test(test_unknown_family_and_full_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
