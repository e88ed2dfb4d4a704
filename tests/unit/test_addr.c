/* Unit tests for src/lib/addr.c: mailbox parsing and normalisation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "addr.h"

/* Parse input; it must succeed and give mailbox.  The result must also
 * be a fixed point: parsing the mailbox again gives the same mailbox. */
static co_addr ok(const char *input, const char *mailbox)
{
	co_addr a, b;
	char err[128] = "";
	memset(&a, 0x5a, sizeof(a));
	int rc = co_addr_parse(input, &a, err, sizeof(err));
	if (rc != 0)
		print_error("input [%s]: unexpected error: %s\n", input, err);
	assert_int_equal(rc, 0);
	assert_string_equal(a.mailbox, mailbox);
	assert_true(strlen(a.local) <= CO_LOCAL_MAX);
	assert_true(strlen(a.mailbox) + 2 <= CO_PATH_MAX);
	/* mailbox is exactly local@domain */
	char joined[CO_PATH_MAX * 2];
	snprintf(joined, sizeof(joined), "%s@%s", a.local, a.domain);
	assert_string_equal(joined, a.mailbox);
	rc = co_addr_parse(a.mailbox, &b, err, sizeof(err));
	assert_int_equal(rc, 0);
	assert_string_equal(b.mailbox, a.mailbox);
	assert_int_equal(b.kind, a.kind);
	assert_int_equal(b.utf8, a.utf8);
	return a;
}

/* Parse input; it must fail with a non-empty reason that contains
 * want (when not NULL). */
static void bad(const char *input, const char *want)
{
	co_addr a;
	char err[128];
	memset(err, 'x', sizeof(err));
	int rc = co_addr_parse(input, &a, err, sizeof(err));
	if (rc == 0)
		print_error("input [%s]: accepted as [%s]\n", input, a.mailbox);
	assert_int_equal(rc, -1);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	assert_true(strlen(err) > 0);
	if (want != NULL && strstr(err, want) == NULL) {
		print_error("input [%s]: error [%s] lacks [%s]\n", input, err, want);
		fail();
	}
}

/* Parse input; it must be refused as too long to ask (not a syntax
 * error) with a reason that contains want. */
static void too_long(const char *input, const char *want)
{
	co_addr a;
	char err[128] = "";
	int rc = co_addr_parse(input, &a, err, sizeof(err));
	if (rc != CO_ADDR_TOO_LONG)
		print_error("input [%.60s...]: %d (%s), want too long\n", input, rc, err);
	assert_int_equal(rc, CO_ADDR_TOO_LONG);
	assert_non_null(strstr(err, want));
}

/* A domain of exactly n octets: labels of 63 'a' (the last shorter). */
static void make_domain(char *buf, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t left = n - i;
		size_t lab = left > 63 ? 63 : left;
		/* never leave a lone dot or an empty last label */
		if (left > 63 && left - 63 < 2)
			lab = 61;
		memset(buf + i, 'a', lab);
		i += lab;
		if (i < n)
			buf[i++] = '.';
	}
	buf[n] = '\0';
}

static void test_plain(void **state)
{
	(void)state;
	co_addr a = ok("user@example.com", "user@example.com");
	assert_int_equal(a.kind, CO_ADDR_DOMAIN);
	assert_false(a.utf8);
	assert_string_equal(a.local, "user");
	assert_string_equal(a.domain, "example.com");
	assert_string_equal(a.ip, "");
}

static void test_brackets_blanks_case(void **state)
{
	(void)state;
	/* local part case is kept (it may matter to the server), the
	 * domain is folded */
	ok("  <User.Name+tag@EXAMPLE.COM>  ", "User.Name+tag@example.com");
	ok("\tuser@Example.Com\t", "user@example.com");
	ok("<a@b.example>", "a@b.example");
	ok("user@example.com.", "user@example.com");
	ok("root@localhost", "root@localhost");
	ok("!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~@example.com");
	ok("a.b.c@x-y.example", "a.b.c@x-y.example");
	ok("u@123.example", "u@123.example");
}

static void test_quoted(void **state)
{
	(void)state;
	co_addr a = ok("\"john doe\"@example.com", "\"john doe\"@example.com");
	assert_string_equal(a.local, "\"john doe\"");
	/* quotes that are not needed are dropped */
	ok("\"john.doe\"@example.com", "john.doe@example.com");
	ok("<\"john.doe\"@example.com>", "john.doe@example.com");
	/* an @ inside quotes is part of the local part */
	ok("\"a@b\"@example.com", "\"a@b\"@example.com");
	/* only " and \ are escaped on output */
	ok("\"a\\\"b\"@x.org", "\"a\\\"b\"@x.org");
	ok("\"a\\\\b\"@x.org", "\"a\\\\b\"@x.org");
	ok("\"\\a\\b\"@x.org", "ab@x.org");
	ok("\"a\\ b\"@x.org", "\"a b\"@x.org");
	/* not dot-atoms: stay quoted */
	ok("\"a..b\"@x.org", "\"a..b\"@x.org");
	ok("\".a\"@x.org", "\".a\"@x.org");
	ok("\"a.\"@x.org", "\"a.\"@x.org");
	ok("\"a,b;c<d>(e)[f]:g\"@x.org", "\"a,b;c<d>(e)[f]:g\"@x.org");
	ok("\" \"@x.org", "\" \"@x.org");
}

static void test_idn(void **state)
{
	(void)state;
	co_addr a = ok("user@bücher.example", "user@xn--bcher-kva.example");
	assert_false(a.utf8); /* the domain becomes ASCII: no SMTPUTF8 needed */
	ok("user@BÜCHER.Example", "user@xn--bcher-kva.example");
	ok("user@XN--BCHER-KVA.EXAMPLE", "user@xn--bcher-kva.example");
	ok("user@bücher.example.", "user@xn--bcher-kva.example");
	/* IDNA 2008 non-transitional: sharp s is kept */
	ok("u@faß.de", "u@xn--fa-hia.de");
	/* full-width letters map to ASCII (UTS #46) */
	ok("u@ａｂｃ.com", "u@abc.com");
	bad("u@xn--zz.example", "A-label");
	bad("u@ä-.example", NULL);
}

static void test_utf8_local(void **state)
{
	(void)state;
	co_addr a = ok("josé@example.com", "josé@example.com");
	assert_true(a.utf8);
	a = ok("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v");
	assert_true(a.utf8);
	assert_string_equal(a.local, "用户");
	a = ok("\"jo sé\"@example.com", "\"jo sé\"@example.com");
	assert_true(a.utf8);

	bad("\xc3@x.com", "UTF-8");             /* truncated sequence */
	bad("a\xc3(@x.com", "UTF-8");           /* bad continuation */
	bad("\xc0\xaf@x.com", "UTF-8");         /* overlong '/' */
	bad("\xe0\x80\xaf@x.com", "UTF-8");     /* overlong, 3 octets */
	bad("\xed\xa0\x80@x.com", "UTF-8");     /* surrogate U+D800 */
	bad("\xf4\x90\x80\x80@x.com", "UTF-8"); /* above U+10FFFF */
	bad("\xff@x.com", "UTF-8");
	bad("\x80@x.com", "UTF-8");      /* lone continuation */
	bad("\"a\xc3\"@x.com", "UTF-8"); /* inside quotes too */
	bad("a@\xc3.com", "UTF-8");      /* in the domain */
}

static void test_literals(void **state)
{
	(void)state;
	co_addr a = ok("user@[192.0.2.1]", "user@[192.0.2.1]");
	assert_int_equal(a.kind, CO_ADDR_IPV4);
	assert_string_equal(a.ip, "192.0.2.1");
	assert_string_equal(a.domain, "[192.0.2.1]");

	a = ok("user@[IPv6:2001:db8::1]", "user@[IPv6:2001:db8::1]");
	assert_int_equal(a.kind, CO_ADDR_IPV6);
	assert_string_equal(a.ip, "2001:db8::1");
	assert_string_equal(a.domain, "[IPv6:2001:db8::1]");

	/* the literal is kept as sent; ip is canonical */
	a = ok("<u@[ipv6:2001:DB8:0:0:0:0:0:1]>", "u@[ipv6:2001:DB8:0:0:0:0:0:1]");
	assert_int_equal(a.kind, CO_ADDR_IPV6);
	assert_string_equal(a.ip, "2001:db8::1");
	a = ok("u@[IPv6:::ffff:192.0.2.1]", "u@[IPv6:::ffff:192.0.2.1]");
	assert_int_equal(a.kind, CO_ADDR_IPV6);

	bad("u@[192.0.2.256]", "IPv4");
	bad("u@[192.0.2]", "IPv4");
	bad("u@[192.0.2.01]", "IPv4");
	bad("u@[IPv6:2001:db8::g]", "IPv6");
	bad("u@[IPv6:fe80::1%eth0]", "IPv6");
	bad("u@[IPv6:192.0.2.1]", "IPv6");
	bad("u@[2001:db8::1]", "literal");     /* IPv6 needs its tag */
	bad("u@[x-tag:something]", "literal"); /* General-address-literal */
	bad("u@[]", "literal");
	bad("u@[192.0.2.1", "literal");
	bad("u@[[192.0.2.1]]", "literal");
	bad("u@[192.0.2.1]x", NULL);
	bad("u@192.0.2.1", "literal"); /* bare IP is not a domain */
}

static void test_boundaries(void **state)
{
	(void)state;
	char local[400], dom[300], in[700], want[700];

	/* local parts over RFC 5321's 64 octets are asked (SRS, VERP, BATV):
	 * only the path limit bounds them */
	static const size_t locals[] = {64, 65, 100, 200, 240};
	for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++) {
		memset(local, 'l', locals[i]);
		local[locals[i]] = '\0';
		snprintf(in, sizeof(in), "%s@example.com", local);
		ok(in, in);
	}
	/* the longest local part: 252 octets with a one-label, one-octet domain */
	memset(local, 'l', 252);
	local[252] = '\0';
	snprintf(in, sizeof(in), "%s@x", local);
	co_addr a = ok(in, in);
	assert_int_equal(strlen(a.local), CO_LOCAL_MAX);
	snprintf(in, sizeof(in), "l%s@x", local);
	too_long(in, "longer than 254");

	/* quoted local part: the wire form counts, quotes and escapes too */
	memset(local, ' ', 100);
	local[100] = '\0';
	snprintf(in, sizeof(in), "\"%s\"@example.com", local); /* 102 on the wire */
	ok(in, in);
	memset(local, ' ', 240);
	local[240] = '\0';
	snprintf(in, sizeof(in), "\"%s\"@example.com", local); /* 242 + 12 = 254 */
	ok(in, in);
	memset(local, ' ', 239);
	local[239] = '\0';
	snprintf(in, sizeof(in), "\"%s\\\"\"@example.com", local); /* 239 + \" + 2 = 243 */
	too_long(in, "longer than 254");
	memset(local, ' ', 238);
	local[238] = '\0';
	snprintf(in, sizeof(in), "\"%s\\\"\"@example.com", local); /* 242 */
	ok(in, in);
	/* a dot-atom that was quoted needlessly loses its quotes */
	memset(local, 'q', 100);
	local[100] = '\0';
	snprintf(in, sizeof(in), "\"%s\"@example.com", local);
	snprintf(want, sizeof(want), "%s@example.com", local);
	ok(in, want);

	/* too long and malformed: the syntax error wins */
	memset(local, 'l', 300);
	local[300] = '\0';
	snprintf(in, sizeof(in), "%s@exa..mple.com", local);
	bad(in, "empty label");
	snprintf(in, sizeof(in), "\"%s@example.com", local);
	bad(in, "unterminated");
	snprintf(in, sizeof(in), "%s@example.com", local);
	too_long(in, "too long to ask");

	/* path "<mailbox>" 256 / 257 octets: mailbox 254 / 255 */
	make_domain(dom, 252);
	snprintf(in, sizeof(in), "a@%s", dom); /* 254 */
	ok(in, in);
	snprintf(in, sizeof(in), "<a@%s>", dom);
	snprintf(want, sizeof(want), "a@%s", dom);
	ok(in, want);
	snprintf(in, sizeof(in), "ab@%s", dom); /* 255 */
	too_long(in, "longer than 254");
	/* a trailing dot does not count */
	snprintf(in, sizeof(in), "a@%s.", dom);
	snprintf(want, sizeof(want), "a@%s", dom);
	ok(in, want);

	/* domain 255 / 256 octets (through the address it hits the path
	 * limit first) */
	make_domain(dom, 255);
	snprintf(in, sizeof(in), "a@%s", dom);
	too_long(in, "longer than 254");
	make_domain(dom, 256);
	snprintf(in, sizeof(in), "a@%s", dom);
	bad(in, "domain longer than 255");

	/* label 63 / 64 octets */
	memset(local, 'd', 63);
	local[63] = '\0';
	snprintf(in, sizeof(in), "a@%s.example", local);
	ok(in, in);
	memset(local, 'd', 64);
	local[64] = '\0';
	snprintf(in, sizeof(in), "a@%s.example", local);
	bad(in, "label longer than 63");
}

/* What forwarders and list servers really send: local parts well over
 * RFC 5321's 64 octets, which servers accept and we must ask about. */
static void test_long_real_world_local_parts(void **state)
{
	(void)state;
	static const char *const addrs[] = {
	    /* SRS0 (a forwarder rewriting alice.wonderland-long@...) */
	    "SRS0=Hx4f=2Q=very-long-original-domain.example.com=alice.wonderland-long"
	    ".name@forwarder.example",
	    /* SRS1: forwarded twice */
	    "SRS1=Zq9m=first-forwarder.example.net==Hx4f=2Q=very-long-original-domain"
	    ".example.com=alice.wonderland-long.name@second-forwarder.example",
	    /* VERP with the recipient encoded */
	    "mailing-list-name-bounces+someone.with.a.long.name=subdomain.example.co.uk"
	    "@lists.example.org",
	    /* BATV prvs with a long original local part */
	    "prvs=0123456789=newsletter-notifications-and-service-announcements-dept"
	    "@example.com",
	};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		const char *at = strrchr(addrs[i], '@');
		assert_true(at - addrs[i] > 64);
		ok(addrs[i], addrs[i]);
	}
}

static void test_input_limit(void **state)
{
	(void)state;
	char in[1100];
	/* 1000 octets: parsed (and refused later, as too long a path);
	 * 1001: refused at once */
	memset(in, ' ', 1000);
	memcpy(in, "a@example.com", 13);
	in[1000] = '\0';
	ok(in, "a@example.com");
	memset(in, ' ', 1001);
	memcpy(in, "a@example.com", 13);
	in[1001] = '\0';
	too_long(in, "longer than 1000");
	memset(in, 'a', 1099);
	in[1099] = '\0';
	too_long(in, "longer than 1000");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	bad("", "empty");
	bad("   ", "empty");
	bad("<>", "empty");
	bad("user", "no @");
	bad("user@", "empty domain");
	bad("@example.com", "empty local");
	bad("a@b@c.com", "several @");
	bad("a@@b.com", "several @");
	bad("\"a\"@b@c.com", "@");
	bad("\"\"@x.com", "empty local");
	bad("user@example..com", "empty label");
	bad("user@.example.com", "empty label");
	bad("user@.", "empty domain");
	bad("user@..", NULL);
	bad("user@-example.com", "hyphen");
	bad("user@example-.com", "hyphen");
	bad("user@exa_mple.com", "invalid character");
	bad("user@exa mple.com", "invalid character");
	bad("user@exa!mple.com", "invalid character");
	bad(".user@x.com", "local part");
	bad("user.@x.com", "local part");
	bad("us..er@x.com", "local part");
	bad("us er@x.com", "local part");
	bad("us\"er@x.com", "local part");
	bad("us(er)@x.com", "local part");
	bad("us,er@x.com", "local part");
	bad("<user@x.com", "angle");
	bad("user@x.com>", "angle");
	bad("<<user@x.com>>", NULL);
	bad("< user@x.com>", NULL);
	bad("<@a.example:user@b.example>", "source route");
	bad("\"unterminated@x.com", "unterminated");
	bad("\"abc\\", "unterminated");
	bad("\"a\"b@x.com", "followed by @");
	bad("\"a\"", "followed by @");
}

static void test_controls(void **state)
{
	(void)state;
	/* SMTP command injection */
	bad("a@b.c\r\nRCPT TO:<x@y>", "control");
	bad("a@b.c\nRCPT TO:<x@y>", "control");
	bad("a@b.c\r", "control");
	bad("a\rb@x.com", "control");
	bad("a@x.com\n", "control");
	/* inside quotes too */
	bad("\"a\r\nb\"@x.com", "control");
	bad("\"a\tb\"@x.com", "control");
	bad("\"a\\\x01\"@x.com", "control");
	/* other C0 controls and DEL */
	bad("a\x01@x.com", "control");
	bad("a\x1b[0m@x.com", "control");
	bad("a\x7f@x.com", "control");
	bad("a@x\x7f.com", "control");
	bad("a@x.com\x0b", "control");
	bad("<a@x.com>\x0c", "control");
	bad("\x1f", "control");
}

static void test_err_buffer(void **state)
{
	(void)state;
	co_addr a;
	char small[8];
	memset(small, 'x', sizeof(small));
	assert_int_equal(co_addr_parse("nope", &a, small, sizeof(small)), -1);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	/* no error buffer at all is fine */
	assert_int_equal(co_addr_parse("nope", &a, NULL, 0), -1);
	assert_int_equal(co_addr_parse(NULL, &a, NULL, 0), -1);
	assert_int_equal(co_addr_parse("a@b.example", &a, NULL, 0), 0);
}

static void test_helo(void **state)
{
	(void)state;
	char name[300];
	assert_true(co_helo_valid("mail.example.com"));
	assert_true(co_helo_valid("MAIL.Example.COM"));
	assert_true(co_helo_valid("localhost"));
	assert_true(co_helo_valid("xn--bcher-kva.example"));
	assert_true(co_helo_valid("[192.0.2.1]"));
	assert_true(co_helo_valid("[IPv6:2001:db8::1]"));
	assert_false(co_helo_valid(NULL));
	assert_false(co_helo_valid(""));
	assert_false(co_helo_valid("bad_name.example"));
	assert_false(co_helo_valid("-a.example"));
	assert_false(co_helo_valid("a-.example"));
	assert_false(co_helo_valid("a..b"));
	assert_false(co_helo_valid(".a"));
	assert_false(co_helo_valid("a.example."));
	assert_false(co_helo_valid("ex ample.com"));
	assert_false(co_helo_valid("mail.example.com\r\nMAIL FROM:<>"));
	assert_false(co_helo_valid("mail\t.example"));
	assert_false(co_helo_valid("bücher.example"));
	assert_false(co_helo_valid("192.0.2.1"));
	assert_false(co_helo_valid("[192.0.2.300]"));
	assert_false(co_helo_valid("[2001:db8::1]"));
	assert_false(co_helo_valid("[x:y]"));
	make_domain(name, 255);
	assert_true(co_helo_valid(name));
	make_domain(name, 256);
	assert_false(co_helo_valid(name));
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_false(co_helo_valid(name));
	name[63] = '\0';
	assert_true(co_helo_valid(name));
}

static void test_domain_normalise(void **state)
{
	(void)state;
	char out[CO_DOMAIN_MAX + 1], err[128], in[300];
	assert_int_equal(co_domain_normalise("Example.COM.", out, err, sizeof(err)), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(co_domain_normalise("bücher.example", out, err, sizeof(err)), 0);
	assert_string_equal(out, "xn--bcher-kva.example");
	assert_int_equal(co_domain_normalise("XN--BCHER-KVA.example", out, err, sizeof(err)), 0);
	assert_string_equal(out, "xn--bcher-kva.example");
	assert_int_equal(co_domain_normalise("localhost", out, err, sizeof(err)), 0);
	assert_string_equal(out, "localhost");

	make_domain(in, 255);
	assert_int_equal(co_domain_normalise(in, out, err, sizeof(err)), 0);
	assert_string_equal(out, in);
	make_domain(in, 255);
	strcat(in, ".");
	assert_int_equal(co_domain_normalise(in, out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out), 255);
	make_domain(in, 256);
	assert_int_equal(co_domain_normalise(in, out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "255"));

	assert_int_equal(co_domain_normalise("", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise(".", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise("a..b", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise("a.b..", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise("a\r\n.b", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise("[192.0.2.1]", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise("a@b", out, err, sizeof(err)), -1);
	assert_int_equal(co_domain_normalise(NULL, out, err, sizeof(err)), -1);
	/* an IDN whose A-label form is too long */
	memset(in, 0, sizeof(in));
	for (int i = 0; i < 30; i++)
		strcat(in, "bücher.");
	strcat(in, "example");
	assert_int_equal(co_domain_normalise(in, out, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),       cmocka_unit_test(test_brackets_blanks_case),
	    cmocka_unit_test(test_quoted),      cmocka_unit_test(test_idn),
	    cmocka_unit_test(test_utf8_local),  cmocka_unit_test(test_literals),
	    cmocka_unit_test(test_boundaries),  cmocka_unit_test(test_long_real_world_local_parts),
	    cmocka_unit_test(test_input_limit), cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_controls),    cmocka_unit_test(test_err_buffer),
	    cmocka_unit_test(test_helo),        cmocka_unit_test(test_domain_normalise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
