/* Unit tests for the doctor's pure parts (src/lib/doctor_parse.c): DNSBL
 * query names and dates in SMTP banners. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "doctor_parse.h"

static const char *bl(const char *ip, const char *zone)
{
	static char out[300];
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
	if (!co_dnsbl_name((struct sockaddr *)&ss, zone, out, sizeof(out)))
		return NULL;
	return out;
}

static void test_dnsbl_ipv4(void **state)
{
	(void)state;
	assert_string_equal(bl("192.0.2.1", "zen.example"), "1.2.0.192.zen.example");
	assert_string_equal(bl("127.0.0.121", "bl.test"), "121.0.0.127.bl.test");
	assert_string_equal(bl("10.20.30.40", "in-addr.arpa"), "40.30.20.10.in-addr.arpa");
	/* an IPv4-mapped IPv6 address is its IPv4 address */
	assert_string_equal(bl("::ffff:192.0.2.1", "bl.test"), "1.2.0.192.bl.test");
}

static void test_dnsbl_ipv6(void **state)
{
	(void)state;
	assert_string_equal(
	    bl("2001:db8::1", "bl.test"),
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test");
	assert_string_equal(
	    bl("::1", "ip6.arpa"),
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
	assert_string_equal(bl("2a00:1450:4001:82b::abcd", "x"),
	                    "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.b.2.8.0.1.0.0.4.0.5.4.1.0.0.a.2.x");
}

static void test_dnsbl_too_small(void **state)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	struct sockaddr un = {.sa_family = AF_UNIX};
	char out[80];

	(void)state;
	assert_false(co_dnsbl_name((struct sockaddr *)&s4, "bl.test", out, 10));
	assert_true(co_dnsbl_name((struct sockaddr *)&s4, "bl.test", out, 16));
	assert_string_equal(out, "0.0.0.0.bl.test");
	assert_false(co_dnsbl_name((struct sockaddr *)&s6, "bl.test", out, 64));
	assert_false(co_dnsbl_name((struct sockaddr *)&s6, "bl.test", out, 71));
	assert_true(co_dnsbl_name((struct sockaddr *)&s6, "bl.test", out, 72));
	assert_false(co_dnsbl_name(&un, "bl.test", out, sizeof(out)));
}

static long long date(const char *text)
{
	long long t = -12345;

	if (!co_banner_date(text, strlen(text), &t))
		return -1;
	return t;
}

static void test_banner_dates(void **state)
{
	(void)state;
	/* 2024-06-04 12:34:56 UTC = 1717504496 */
	assert_int_equal(
	    date("mx.example.org ESMTP Sendmail 8.15.2; Tue, 4 Jun 2024 12:34:56 +0000"),
	    1717504496);
	assert_int_equal(date("ESMTP Sendmail; Tue, 4 Jun 2024 05:34:56 -0700 (PDT)"), 1717504496);
	assert_int_equal(
	    date("Microsoft ESMTP MAIL Service ready at Tue, 4 Jun 2024 14:34:56 +0200"),
	    1717504496);
	assert_int_equal(date("ready 04 JUN 2024 12:34:56 GMT"), 1717504496);
	assert_int_equal(date("x 4 jun 2024 12:34 UT"), 1717504440);
	assert_int_equal(date("x 4 Jun 2024 08:34:56 EDT"), 1717504496);
	assert_int_equal(date("epoch 1 Jan 1970 00:00:00 Z"), 0);
	assert_int_equal(date("leap 29 Feb 2024 00:00:00 +0000"), 1709164800);
	/* the first date wins; junk around it does not matter */
	assert_int_equal(date("2020 1 Jan 2000 00:00:00 +0000 and 2 Jan 2000 00:00:00 +0000"),
	                 946684800);
}

static void test_banner_not_dates(void **state)
{
	(void)state;
	assert_int_equal(date(""), -1);
	assert_int_equal(date("mx.example.org ESMTP Postfix"), -1);
	assert_int_equal(date("4 Jun 2024 12:34:56"), -1);       /* no zone */
	assert_int_equal(date("4 Jun 2024 12:34:56 XYZ"), -1);   /* unknown zone */
	assert_int_equal(date("4 Jun 2024 12:34:56 +2500"), -1); /* bad offset */
	assert_int_equal(date("31 Jun 2024 12:34:56 +0000"), -1);
	assert_int_equal(date("29 Feb 2023 12:34:56 +0000"), -1);
	assert_int_equal(date("4 Jun 2024 24:00:00 +0000"), -1);
	assert_int_equal(date("4 Jun 2024 12:60:00 +0000"), -1);
	assert_int_equal(date("4 Jun 1969 12:00:00 +0000"), -1);
	assert_int_equal(date("4 Foo 2024 12:00:00 +0000"), -1);
	assert_int_equal(date("123 Jun 2024 12:00:00 +0000"), -1);
	assert_int_equal(date("4 Jun 20245 12:00:00 +0000"), -1);
	assert_int_equal(date("4 Jun 2024 12:00:00 +00001"), -1);
	assert_int_equal(date("4 Jun 2024 12:00:00 UTCX"), -1);
	/* NUL bytes are bytes: the length counts */
	assert_false(co_banner_date("4 Jun\0 2024 12:00 Z", 19, &(long long){0}));
	assert_false(co_banner_date("4 Jun 2024 12:00 Z", 16, &(long long){0})); /* cut zone */
}

static void test_build_date(void **state)
{
	(void)state;
	assert_int_equal(co_build_date("Jun  4 2024"), 1717459200);
	assert_int_equal(co_build_date("Jan 1 1970"), 0);
	assert_int_equal(co_build_date("Feb 30 2024"), -1);
	assert_int_equal(co_build_date("Jun 4 2024 "), -1);
	assert_int_equal(co_build_date(""), -1);
	assert_true(co_build_date(__DATE__) > 1700000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dnsbl_ipv4),       cmocka_unit_test(test_dnsbl_ipv6),
	    cmocka_unit_test(test_dnsbl_too_small),  cmocka_unit_test(test_banner_dates),
	    cmocka_unit_test(test_banner_not_dates), cmocka_unit_test(test_build_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
