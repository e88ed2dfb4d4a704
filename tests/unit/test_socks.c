/* The SOCKS5 handshake (src/lib/socks.c): what we send, byte by byte, and
 * every answer a proxy may give, good or bad; the proxy spec. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "socks.h"

static struct sockaddr_in v4(const char *ip, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static void test_spec(void **state)
{
	co_proxy p;

	(void)state;
	assert_null(co_proxy_parse("socks5://127.0.0.1:1080", &p));
	assert_string_equal(p.host, "127.0.0.1");
	assert_int_equal(p.port, 1080);
	assert_string_equal(p.user, "");
	assert_null(co_proxy_parse("socks5://u%40x:p%3Aw%2F@[::1]:1080/", &p));
	assert_string_equal(p.host, "::1");
	assert_string_equal(p.user, "u@x");
	assert_string_equal(p.pass, "p:w/");
	assert_null(co_proxy_parse("socks5://alice:s3cret@proxy.example:9050", &p));
	assert_string_equal(p.host, "proxy.example");
	assert_string_equal(p.pass, "s3cret");
	/* refusals */
	const char *bad[] = {
	    NULL,
	    "",
	    "socks4://127.0.0.1:1080",
	    "http://127.0.0.1:8080",
	    "socks5://127.0.0.1",         /* a port is needed */
	    "socks5://127.0.0.1:0",       /* and not 0 */
	    "socks5://127.0.0.1:65536",   /* nor too large */
	    "socks5://user@127.0.0.1:1",  /* no password */
	    "socks5://:pw@127.0.0.1:1",   /* empty user */
	    "socks5://u:@127.0.0.1:1",    /* empty password */
	    "socks5://u:p%4@127.0.0.1:1", /* a broken escape */
	    "socks5://u:p%00@127.0.0.1:1",
	    "socks5://127.0.0.1:1080/path",
	    "socks5://127.0.0.1:1080\r\nX",
	    "socks5://exa mple:1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_non_null(co_proxy_parse(bad[i], &p));
	/* shown without the password */
	char shown[64];
	assert_string_equal(co_proxy_redact("socks5://bob:s3cret@127.0.0.1:1080", shown, 64),
	                    "socks5://bob:***@127.0.0.1:1080");
	assert_string_equal(co_proxy_redact("socks5://127.0.0.1:1080", shown, 64),
	                    "socks5://127.0.0.1:1080");
	assert_string_equal(co_proxy_redact("socks5://bob:s3cret@127.0.0.1:1080", shown, 12),
	                    "socks5://bo");
	assert_string_equal(co_proxy_redact(NULL, shown, 64), "");
	co_proxy_parse("socks5://[::1]:1080", &p);
	assert_string_equal(co_proxy_label(&p, shown, 64), "[::1]:1080");
	co_proxy_parse("socks5://u:p@127.0.0.1:9", &p);
	assert_string_equal(co_proxy_label(&p, shown, 64), "127.0.0.1:9");
	char longuser[400] = "socks5://";
	memset(longuser + 9, 'u', 256);
	strcpy(longuser + 9 + 256, ":p@127.0.0.1:1");
	assert_non_null(co_proxy_parse(longuser, &p));
}

static void test_no_auth_ipv4(void **state)
{
	co_proxy p;
	co_socks s;
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t n, used;
	const char *why;
	struct sockaddr_in a = v4("192.0.2.25", 25);

	(void)state;
	co_proxy_parse("socks5://127.0.0.1:1080", &p);
	assert_true(co_socks_begin(&s, &p, (struct sockaddr *)&a, out, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(out, "\x05\x01\x00", 3);
	/* the method choice, one byte at a time */
	assert_int_equal(co_socks_input(&s, (const unsigned char *)"\x05", 1, &used, out, &n, &why),
	                 CO_SOCKS_MORE);
	assert_int_equal(
	    co_socks_input(&s, (const unsigned char *)"\x05\x00", 2, &used, out, &n, &why),
	    CO_SOCKS_SEND);
	assert_int_equal(used, 2);
	assert_int_equal(n, 10);
	assert_memory_equal(out, "\x05\x01\x00\x01\xc0\x00\x02\x19\x00\x19", 10);
	/* the reply, then the server's banner in the same read */
	const unsigned char rep[] = "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"
	                            "220 mx ESMTP\r\n";
	assert_int_equal(co_socks_input(&s, rep, 9, &used, out, &n, &why), CO_SOCKS_MORE);
	assert_int_equal(co_socks_input(&s, rep, sizeof(rep) - 1, &used, out, &n, &why),
	                 CO_SOCKS_DONE);
	assert_int_equal(used, 10); /* the rest is the SMTP server's */
}

static void test_password_and_ipv6(void **state)
{
	co_proxy p;
	co_socks s;
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t n, used;
	const char *why;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(2525)};

	(void)state;
	inet_pton(AF_INET6, "2001:db8::1", &a.sin6_addr);
	co_proxy_parse("socks5://bob:pw@127.0.0.1:1080", &p);
	assert_true(co_socks_begin(&s, &p, (struct sockaddr *)&a, out, &n));
	assert_memory_equal(out, "\x05\x02\x00\x02", 4);
	assert_int_equal(
	    co_socks_input(&s, (const unsigned char *)"\x05\x02", 2, &used, out, &n, &why),
	    CO_SOCKS_SEND);
	assert_int_equal(n, 8);
	assert_memory_equal(out,
	                    "\x01\x03"
	                    "bob"
	                    "\x02"
	                    "pw",
	                    8);
	assert_int_equal(
	    co_socks_input(&s, (const unsigned char *)"\x01\x00", 2, &used, out, &n, &why),
	    CO_SOCKS_SEND);
	assert_int_equal(n, 22);
	assert_memory_equal(out, "\x05\x01\x00\x04", 4);
	assert_int_equal(out[20] * 256 + out[21], 2525);
	/* a reply with a domain-name bound address */
	const unsigned char rep[] = "\x05\x00\x00\x03\x04host\x00\x19";
	assert_int_equal(co_socks_input(&s, rep, sizeof(rep) - 1, &used, out, &n, &why),
	                 CO_SOCKS_DONE);
	assert_int_equal(used, 11);
}

static co_socks_step run(const char *spec, const unsigned char *method, const unsigned char *auth,
                         const unsigned char *rep, size_t replen, const char **why)
{
	static co_proxy p;
	co_socks s;
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t n, used;
	struct sockaddr_in a = v4("192.0.2.25", 25);
	co_socks_step st;

	co_proxy_parse(spec, &p);
	co_socks_begin(&s, &p, (struct sockaddr *)&a, out, &n);
	st = co_socks_input(&s, method, 2, &used, out, &n, why);
	if (st != CO_SOCKS_SEND)
		return st;
	if (auth && (st = co_socks_input(&s, auth, 2, &used, out, &n, why)) != CO_SOCKS_SEND)
		return st;
	return co_socks_input(&s, rep, replen, &used, out, &n, why);
}

static void test_refusals_say_why(void **state)
{
	const char *why;
	const unsigned char *ok = (const unsigned char *)"\x05\x00";

	(void)state;
	assert_int_equal(
	    run("socks5://127.0.0.1:1", (const unsigned char *)"\x04\x00", NULL, NULL, 0, &why),
	    CO_SOCKS_ERROR);
	assert_string_equal(why, "the proxy does not speak SOCKS5");
	assert_int_equal(
	    run("socks5://127.0.0.1:1", (const unsigned char *)"\x05\xff", NULL, NULL, 0, &why),
	    CO_SOCKS_ERROR);
	assert_string_equal(why, "the proxy wants authentication (give USER:PASSWORD@)");
	assert_int_equal(
	    run("socks5://127.0.0.1:1", (const unsigned char *)"\x05\x02", NULL, NULL, 0, &why),
	    CO_SOCKS_ERROR); /* asks for a password we do not have */
	assert_int_equal(run("socks5://u:p@127.0.0.1:1", (const unsigned char *)"\x05\x02",
	                     (const unsigned char *)"\x01\x01", NULL, 0, &why),
	                 CO_SOCKS_ERROR);
	assert_string_equal(why, "the proxy refused the username or password");
	for (unsigned char code = 1; code <= 9; code++) {
		unsigned char rep[10] = {5, code, 0, 1, 0, 0, 0, 0, 0, 0};
		assert_int_equal(run("socks5://127.0.0.1:1", ok, NULL, rep, 10, &why),
		                 CO_SOCKS_ERROR);
		assert_non_null(strstr(why, "proxy"));
	}
	assert_int_equal(run("socks5://127.0.0.1:1", ok, NULL,
	                     (const unsigned char *)"\x05\x05\x00\x01\0\0\0\0\0\0", 10, &why),
	                 CO_SOCKS_ERROR);
	assert_string_equal(why, "the proxy could not reach the host: connection refused");
	/* malformed: a bad address type, a non-zero reserved byte */
	assert_int_equal(run("socks5://127.0.0.1:1", ok, NULL,
	                     (const unsigned char *)"\x05\x00\x00\x09\0\0\0\0\0\0", 10, &why),
	                 CO_SOCKS_ERROR);
	assert_int_equal(run("socks5://127.0.0.1:1", ok, NULL,
	                     (const unsigned char *)"\x05\x00\x01\x01\0\0\0\0\0\0", 10, &why),
	                 CO_SOCKS_ERROR);
}

static void test_names(void **state)
{
	co_proxy p;
	co_socks s;
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t n, used;
	const char *why;
	char name[300];

	(void)state;
	co_proxy_parse("socks5://127.0.0.1:1080", &p);
	assert_true(co_socks_begin_name(&s, &p, "mx.example.org", 25, out, &n));
	co_socks_input(&s, (const unsigned char *)"\x05\x00", 2, &used, out, &n, &why);
	assert_int_equal(n, 3 + 1 + 1 + 14 + 2);
	assert_memory_equal(out, "\x05\x01\x00\x03\x0emx.example.org\x00\x19", n);
	memset(name, 'a', 256);
	name[256] = '\0';
	assert_false(co_socks_begin_name(&s, &p, name, 25, out, &n));
	assert_false(co_socks_begin_name(&s, &p, "", 25, out, &n));
}

static void test_check_stops_before_connect(void **state)
{
	co_proxy p;
	co_socks s;
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t n, used;
	const char *why;

	(void)state;
	co_proxy_parse("socks5://127.0.0.1:1080", &p);
	co_socks_begin_check(&s, &p, out, &n);
	assert_memory_equal(out, "\x05\x01\x00", 3);
	assert_false(co_socks_asked(&s));
	assert_int_equal(
	    co_socks_input(&s, (const unsigned char *)"\x05\x00", 2, &used, out, &n, &why),
	    CO_SOCKS_DONE);
	assert_int_equal(n, 0); /* no CONNECT sent */
	/* with a password: done once the password is taken */
	co_proxy_parse("socks5://u:pw@127.0.0.1:1080", &p);
	co_socks_begin_check(&s, &p, out, &n);
	assert_int_equal(
	    co_socks_input(&s, (const unsigned char *)"\x05\x02", 2, &used, out, &n, &why),
	    CO_SOCKS_SEND);
	assert_memory_equal(out, "\x01\x01u\x02pw", 6);
	assert_int_equal(
	    co_socks_input(&s, (const unsigned char *)"\x01\x01", 2, &used, out, &n, &why),
	    CO_SOCKS_ERROR);
	assert_string_equal(why, "the proxy refused the username or password");
}

static void test_lists(void **state)
{
	unsigned n;
	char out[200];

	(void)state;
	assert_null(co_proxy_parse_list("socks5://127.0.0.1:1080", &n));
	assert_int_equal(n, 1);
	assert_null(co_proxy_parse_list(" socks5://a:1 ,socks5://u:p@b:2,, socks5://c:3 ", &n));
	assert_int_equal(n, 3);
	assert_non_null(co_proxy_parse_list("socks5://a:1, http://b:2", &n));
	assert_non_null(co_proxy_parse_list(" , ", &n));
	assert_int_equal(n, 0);
	assert_string_equal(
	    co_proxy_redact("socks5://u:p@b:2,socks5://c:3, socks5://x:yy@d:4", out, sizeof(out)),
	    "socks5://u:***@b:2, socks5://c:3, socks5://x:***@d:4");
	/* truncated, never past the buffer, passwords never shown in part */
	co_proxy_redact("socks5://u:secret@b:2", out, 12);
	assert_true(strlen(out) < 12);
	assert_null(strstr(out, "sec"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec),
	    cmocka_unit_test(test_no_auth_ipv4),
	    cmocka_unit_test(test_password_and_ipv6),
	    cmocka_unit_test(test_refusals_say_why),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_check_stops_before_connect),
	    cmocka_unit_test(test_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
