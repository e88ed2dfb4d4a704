/*
 * The parsers shared by the configuration file and the command line
 * (src/common): HOST[:PORT], durations, addresses as text and Redis
 * specs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "duration.h"
#include "hostport.h"
#include "redis_spec.h"
#include "sockaddr.h"

static void ok_hp(const char *s, unsigned flags, const char *host, enum co_host_kind kind,
                  unsigned port)
{
	co_hostport hp;
	const char *why = co_hostport_parse(s, flags, &hp);

	if (why)
		print_message("%s: %s\n", s, why);
	assert_null(why);
	assert_string_equal(hp.host, host);
	assert_int_equal(hp.kind, kind);
	assert_int_equal(hp.port, port);
}

static void bad_hp(const char *s, unsigned flags, const char *why_prefix)
{
	co_hostport hp;
	const char *why = co_hostport_parse(s, flags, &hp);

	if (!why)
		print_message("%s: accepted\n", s);
	assert_non_null(why);
	assert_memory_equal(why, why_prefix, strlen(why_prefix));
}

static void test_hostport_forms(void **state)
{
	(void)state;
	ok_hp("127.0.0.1", 0, "127.0.0.1", CO_HOST_IPV4, 0);
	ok_hp("127.0.0.1:25", 0, "127.0.0.1", CO_HOST_IPV4, 25);
	ok_hp("[::1]", 0, "::1", CO_HOST_IPV6, 0);
	ok_hp("[2001:db8::5]:2525", 0, "2001:db8::5", CO_HOST_IPV6, 2525);
	ok_hp("Mail.Example.ORG", 0, "mail.example.org", CO_HOST_NAME, 0);
	ok_hp("mx-1.example.org:65535", 0, "mx-1.example.org", CO_HOST_NAME, 65535);
	ok_hp("localhost", 0, "localhost", CO_HOST_NAME, 0);
	ok_hp("redis_1:6380", 0, "redis_1", CO_HOST_NAME, 6380); /* a container's name */
	/* c-ares' syntax for DNS servers: a bare IPv6 address */
	ok_hp("::1", CO_HP_BARE_V6, "::1", CO_HOST_IPV6, 0);
	ok_hp("[::1]:53", CO_HP_NUMERIC | CO_HP_BARE_V6, "::1", CO_HOST_IPV6, 53);
	ok_hp("10.0.0.1:8025", CO_HP_NUMERIC | CO_HP_NEED_PORT, "10.0.0.1", CO_HOST_IPV4, 8025);
}

static void test_hostport_refusals(void **state)
{
	(void)state;
	bad_hp("", 0, "empty");
	bad_hp("::1", 0, "write an IPv6 address in brackets");
	bad_hp("::1:25", CO_HP_NUMERIC, "write an IPv6 address in brackets");
	bad_hp("[::1", 0, "no ']'");
	bad_hp("[::1]25", 0, "expected ':PORT' after ']'");
	bad_hp("[example.org]:25", 0, "not an IPv6 address");
	bad_hp("[]:25", 0, "no host");
	bad_hp(":25", 0, "no host");
	bad_hp("host:0", 0, "expected a port from 1 to 65535");
	bad_hp("host:65536", 0, "expected a port from 1 to 65535");
	bad_hp("host:+25", 0, "expected a port");
	bad_hp("host:", 0, "expected a port");
	bad_hp("host: 25", 0, "expected a port");
	bad_hp("localhost:25", CO_HP_NUMERIC, "not a numeric IPv4 or [IPv6] address");
	bad_hp("127.0.0.1", CO_HP_NEED_PORT, "no port");
	bad_hp("::1", CO_HP_BARE_V6 | CO_HP_NEED_PORT, "no port");
	/* not host names */
	bad_hp("999.1.1.1", 0, "not a host name");
	bad_hp("-mx.example.org", 0, "not a host name");
	bad_hp("mx-.example.org", 0, "not a host name");
	bad_hp("mx..example.org", 0, "not a host name");
	bad_hp("mx.example.org.", 0, "not a host name");
	bad_hp("mx/1.example.org", 0, "not a host name");
	bad_hp("mx example.org", 0, "not a host name");
	char label[80];
	memset(label, 'a', 64);
	strcpy(label + 64, ".org");
	bad_hp(label, 0, "not a host name");
	label[63] = '\0';
	ok_hp(label, 0, label, CO_HOST_NAME, 0);
}

static void ok_ms(const char *s, unsigned long long want)
{
	unsigned long long ms = 0;
	char buf[32], *canon;

	if (!co_duration_parse(s, &ms))
		print_message("%s: refused\n", s);
	assert_true(co_duration_parse(s, &ms));
	assert_int_equal(ms, want);
	/* the canonical form means the same */
	canon = (char *)co_duration_format(ms, buf, sizeof(buf));
	assert_true(co_duration_parse(canon, &ms));
	assert_int_equal(ms, want);
}

static void test_durations(void **state)
{
	(void)state;
	ok_ms("30", 30000);
	ok_ms("30s", 30000);
	ok_ms("0.5", 500);
	ok_ms("500ms", 500);
	ok_ms("1.5m", 90000);
	ok_ms("2h", 7200000);
	ok_ms("7d", 604800000);
	ok_ms("0", 0);
	ok_ms("0.001", 1);
	ok_ms("18446744073709551615ms", 18446744073709551615ull);
	static const char *const bad[] = {
	    "",
	    "s",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1.",
	    ".5",
	    "1e3",
	    "1x",
	    "1S",
	    "1sec",
	    "0.0001",                 /* finer than 1 ms */
	    "0.0000000001s",          /* too many fraction digits */
	    "18446744073709551616ms", /* 2^64 */
	    "213503982334602d",       /* overflows in ms */
	};
	unsigned long long ms;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (co_duration_parse(bad[i], &ms))
			print_message("'%s': accepted\n", bad[i]);
		assert_false(co_duration_parse(bad[i], &ms));
	}
	char buf[32];
	assert_string_equal(co_duration_format(90000, buf, sizeof(buf)), "90s");
	assert_string_equal(co_duration_format(3600000, buf, sizeof(buf)), "1h");
	assert_string_equal(co_duration_format(1500, buf, sizeof(buf)), "1500ms");
}

static void test_sockaddr_text(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(25)};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(8025)};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char out[64], small[8];

	(void)state;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	assert_string_equal(
	    co_sockaddr_text((struct sockaddr *)&sin, sizeof(sin), 0, out, sizeof(out)),
	    "192.0.2.1");
	co_sockaddr_text((struct sockaddr *)&sin, sizeof(sin), CO_SA_PORT, out, sizeof(out));
	assert_string_equal(out, "[192.0.2.1]:25");
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	co_sockaddr_text((struct sockaddr *)&sin6, 0, CO_SA_PORT, out, sizeof(out));
	assert_string_equal(out, "[2001:db8::1]:8025");
	/* a mapped IPv4 address, as it is or as IPv4 */
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6.sin6_addr);
	co_sockaddr_text((struct sockaddr *)&sin6, sizeof(sin6), 0, out, sizeof(out));
	assert_string_equal(out, "::ffff:198.51.100.7");
	co_sockaddr_text((struct sockaddr *)&sin6, sizeof(sin6), CO_SA_UNMAP, out, sizeof(out));
	assert_string_equal(out, "198.51.100.7");
	/* no address to show: a unix socket, a length too short, none */
	assert_string_equal(
	    co_sockaddr_text((struct sockaddr *)&sun, sizeof(sun), 0, out, sizeof(out)), "");
	assert_string_equal(
	    co_sockaddr_text((struct sockaddr *)&sin6, sizeof(sin), 0, out, sizeof(out)), "");
	assert_string_equal(co_sockaddr_text(NULL, 0, 0, out, sizeof(out)), "");
	/* cut to the room given, always terminated */
	co_sockaddr_text((struct sockaddr *)&sin, sizeof(sin), 0, small, sizeof(small));
	assert_string_equal(small, "192.0.2");
}

static void ok_rs(const char *spec, const char *host, unsigned port, unsigned db, const char *user,
                  const char *password, const char *prefix)
{
	co_redis_spec rs;
	char err[256] = "";

	if (co_redis_spec_parse(spec, &rs, err, sizeof(err)) != 0)
		print_message("%s: %s\n", spec, err);
	assert_int_equal(co_redis_spec_parse(spec, &rs, err, sizeof(err)), 0);
	assert_string_equal(rs.host, host);
	assert_int_equal(rs.port, port);
	assert_int_equal(rs.db, db);
	assert_string_equal(rs.user, user);
	assert_string_equal(rs.password, password);
	assert_string_equal(rs.prefix, prefix);
}

static void test_redis_spec_forms(void **state)
{
	(void)state;
	ok_rs("redis://h", "h", 6379, 0, "", "", "callout:");
	ok_rs("redis://Cache.Example:6380/3?prefix=x", "cache.example", 6380, 3, "", "", "x");
	ok_rs("redis://10.0.0.1/", "10.0.0.1", 6379, 0, "", "", "callout:");
	ok_rs("redis://user:pass@h/65535", "h", 6379, 65535, "user", "pass", "callout:");
	ok_rs("redis://:pass@h", "h", 6379, 0, "", "pass", "callout:");
	ok_rs("redis://[::1]:6380", "::1", 6380, 0, "", "", "callout:");
	ok_rs("redis://:pw@[2001:db8::1]/2?prefix=a:b", "2001:db8::1", 6379, 2, "", "pw", "a:b");
	/* %XX in the credentials; the last '@' before the path ends them */
	ok_rs("redis://us%3aer:p%40s%2Fs@h", "h", 6379, 0, "us:er", "p@s/s", "callout:");
	ok_rs("redis://u:a@b@h/1", "h", 6379, 1, "u", "a@b", "callout:");
	ok_rs("redis://h/0?prefix=a@b", "h", 6379, 0, "", "", "a@b");
}

/* spec refused with the message want, which never holds "hunter2". */
static void bad_rs(const char *spec, const char *want)
{
	co_redis_spec rs;
	char err[256] = "";

	assert_int_equal(co_redis_spec_parse(spec, &rs, err, sizeof(err)), -1);
	if (strcmp(err, want) != 0)
		print_message("%s: %s\n", spec, err);
	assert_string_equal(err, want);
	assert_null(strstr(err, "hunter2"));
	assert_string_equal(rs.password, ""); /* cleared */
}

static void test_redis_spec_refusals(void **state)
{
	char long_spec[600], long_user[200], msg[sizeof(long_spec) + 40];

	(void)state;
	bad_rs("redis://:hunter2@h/x", "bad Redis database number in redis://:***@h/x");
	bad_rs("redis://h/65536", "bad Redis database number in redis://h/65536");
	bad_rs("redis://h/-1", "bad Redis database number in redis://h/-1");
	bad_rs("redis://h/+1", "bad Redis database number in redis://h/+1");
	bad_rs("redis://", "no Redis host in redis://");
	bad_rs("redis://:hunter2@/1", "no Redis host in redis://:***@/1");
	bad_rs("redis://:6380", "no Redis host in redis://:6380");
	bad_rs("redis://u:@h", "Redis user without a password in redis://u:***@h");
	bad_rs("redis://someone@h",
	       "bad Redis credentials in redis://someone@h (use :PASSWORD@ or USER:PASSWORD@)");
	bad_rs("redis://:hunter2@h?x=1", "bad Redis option in redis://:***@h?x=1 (only ?prefix=P)");
	bad_rs("redis://h?prefix=a&b", "bad Redis option in redis://h?prefix=a&b (only ?prefix=P)");
	bad_rs("redis://:hunter2%zz@h", "bad %-escape in the Redis credentials of redis://:***@h");
	bad_rs("redis://:hunter2%00@h", "bad %-escape in the Redis credentials of redis://:***@h");
	bad_rs("redis://h:0", "bad Redis port in redis://h:0: expected a port from 1 to 65535");
	bad_rs("redis://h_!", "bad Redis host in redis://h_!: not a host name or an IP address");
	bad_rs("redis://::1", "bad Redis host in redis://::1: write an IPv6 address in brackets: "
	                      "[IPv6]:PORT");
	bad_rs("rediss://:hunter2@h",
	       "rediss:// (Redis over TLS) is not supported: this build's hiredis has no TLS; use "
	       "redis:// over a TLS tunnel (e.g. stunnel) or a trusted network");
	bad_rs("lmdb:/x", "not a Redis spec: lmdb:/x (expected "
	                  "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P])");
	/* too long: the spec, the prefix, the user */
	snprintf(long_spec, sizeof(long_spec), "redis://:hunter2@%0580d", 0);
	bad_rs(long_spec, "cache spec too long: redis://:***@000000000000000000000000000...");
	snprintf(long_spec, sizeof(long_spec), "redis://h?prefix=%065d", 0);
	snprintf(msg, sizeof(msg), "bad Redis option in %s (only ?prefix=P)", long_spec);
	bad_rs(long_spec, msg);
	long_spec[strlen(long_spec) - 1] = '\0'; /* 64 bytes: the most */
	ok_rs(long_spec, "h", 6379, 0, "", "", long_spec + strlen("redis://h?prefix="));
	memset(long_user, 'u', 128);
	snprintf(long_spec, sizeof(long_spec), "redis://%.128s:hunter2@h", long_user);
	snprintf(msg, sizeof(msg), "Redis user or password too long in redis://%.128s:***@h",
	         long_user);
	bad_rs(long_spec, msg);
	/* no room for a message: refused all the same */
	co_redis_spec rs;
	assert_int_equal(co_redis_spec_parse("redis://h/x", &rs, NULL, 0), -1);
	assert_int_equal(co_redis_spec_parse(NULL, &rs, NULL, 0), -1);
}

static void test_redis_spec_redact(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"redis://:pw@h:1/2", "redis://:***@h:1/2"},
	    {"redis://user:p%40w@[::1]:6379/0?prefix=x:",
	     "redis://user:***@[::1]:6379/0?prefix=x:"},
	    {"redis://u:a@b@h", "redis://u:***@h"}, /* the last @ before the path */
	    {"redis://h:6379/0?prefix=a@b", "redis://h:6379/0?prefix=a@b"},
	    {"lmdb:/var/lib/callout/cache.lmdb", "lmdb:/var/lib/callout/cache.lmdb"},
	    {"memory", "memory"},
	};
	char out[128], tiny[10];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(co_redis_spec_redact(cases[i][0], out, sizeof(out)),
		                    cases[i][1]);
	assert_string_equal(co_redis_spec_redact(NULL, out, sizeof(out)), "none");
	/* truncated, still a string, never the password */
	assert_string_equal(co_redis_spec_redact("redis://:pw@host", tiny, sizeof(tiny)),
	                    "redis://:");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostport_forms),    cmocka_unit_test(test_hostport_refusals),
	    cmocka_unit_test(test_durations),         cmocka_unit_test(test_sockaddr_text),
	    cmocka_unit_test(test_redis_spec_forms),  cmocka_unit_test(test_redis_spec_refusals),
	    cmocka_unit_test(test_redis_spec_redact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
