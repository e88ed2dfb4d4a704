/* Unit tests for src/daemon/policy_parse.c: the Postfix policy protocol's
 * "name=value" lines, the empty line ending a request, and its bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy_parse.h"

static cd_policy_status feed(cd_policy_req *r, const char *line)
{
	return cd_policy_feed(r, line, strlen(line));
}

/* A line of exactly len octets: name=, then value octets of c. */
static char *long_line(char *buf, const char *name, size_t len, char c)
{
	size_t n = strlen(name);
	memcpy(buf, name, n);
	buf[n] = '=';
	memset(buf + n + 1, c, len - n - 1);
	buf[len] = '\0';
	return buf;
}

static void test_request(void **state)
{
	(void)state;
	cd_policy_req r;
	cd_policy_req_init(&r);
	assert_null(r.error);
	assert_int_equal(r.nattrs, 0);

	/* a request as Postfix sends it, CRs left by the transport too */
	const char *lines[] = {
	    "request=smtpd_access_policy",
	    "protocol_state=RCPT",
	    "protocol_name=ESMTP",
	    "client_address=192.0.2.10",
	    "client_name=mail.example.org",
	    "helo_name=mail.example.org\r",
	    "sender=alice@example.org",
	    "recipient=bob@example.com",
	    "sasl_username=",
	    "queue_id=4Bx3yZ",
	    "instance=123.456.7",
	    "size=12345",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_int_equal(feed(&r, lines[i]), CD_POLICY_MORE);
	assert_int_equal(feed(&r, ""), CD_POLICY_END);

	assert_null(r.error);
	assert_int_equal(r.nattrs, 12); /* the ignored ones are counted too */
	assert_string_equal(r.request, "smtpd_access_policy");
	assert_string_equal(r.protocol_state, "RCPT");
	assert_string_equal(r.client_address, "192.0.2.10");
	assert_string_equal(r.client_name, "mail.example.org");
	assert_string_equal(r.helo_name, "mail.example.org");
	assert_string_equal(r.sender, "alice@example.org");
	assert_string_equal(r.recipient, "bob@example.com");
	assert_string_equal(r.sasl_username, "");
	assert_string_equal(r.queue_id, "4Bx3yZ");
	assert_string_equal(r.instance, "123.456.7");
}

static void test_end_of_request(void **state)
{
	(void)state;
	cd_policy_req r;

	/* the empty line, with or without its CR, ends a request (even an
	 * empty one: whether that is acceptable is the caller's business) */
	cd_policy_req_init(&r);
	assert_int_equal(cd_policy_feed(&r, "", 0), CD_POLICY_END);
	assert_int_equal(feed(&r, "\r"), CD_POLICY_END);
	assert_int_equal(r.nattrs, 0);
	assert_null(r.error);

	/* only the length counts, not a terminating NUL */
	assert_int_equal(cd_policy_feed(&r, "sender=a@b.example", 0), CD_POLICY_END);
	assert_string_equal(r.sender, "");
}

static void test_values(void **state)
{
	(void)state;
	cd_policy_req r;
	cd_policy_req_init(&r);

	/* the value runs from the first '=' to the end of the line */
	assert_int_equal(feed(&r, "instance=a=b=c"), CD_POLICY_MORE);
	assert_string_equal(r.instance, "a=b=c");
	/* spaces are part of the value, not trimmed */
	assert_int_equal(feed(&r, "helo_name= [192.0.2.1] "), CD_POLICY_MORE);
	assert_string_equal(r.helo_name, " [192.0.2.1] ");
	/* one CR before the LF is removed; anything else stays */
	assert_int_equal(feed(&r, "queue_id=ABC\r\r"), CD_POLICY_MORE);
	assert_string_equal(r.queue_id, "ABC\r");
	assert_int_equal(feed(&r, "client_name=a\rb"), CD_POLICY_MORE);
	assert_string_equal(r.client_name, "a\rb");
	/* the null sender is a value, and a seen one */
	assert_int_equal(feed(&r, "sender="), CD_POLICY_MORE);
	assert_string_equal(r.sender, "");
	assert_int_equal(feed(&r, "sender=x@y.example"), CD_POLICY_ERROR);
	assert_string_equal(r.error, "duplicate attribute");
	assert_string_equal(r.sender, "");

	/* len, not the NUL, bounds the line: the rest of the buffer is not
	 * read into the value */
	cd_policy_req_init(&r);
	const char buf[] = "recipient=bob@example.comXXXX";
	assert_int_equal(cd_policy_feed(&r, buf, strlen(buf) - 4), CD_POLICY_MORE);
	assert_string_equal(r.recipient, "bob@example.com");
	assert_null(r.error);
}

static void test_names(void **state)
{
	(void)state;
	cd_policy_req r;
	cd_policy_req_init(&r);

	/* names are matched exactly: case, prefixes and longer names are
	 * other (ignored) attributes */
	assert_int_equal(feed(&r, "Sender=a@b.example"), CD_POLICY_MORE);
	assert_int_equal(feed(&r, "send=a@b.example"), CD_POLICY_MORE);
	assert_int_equal(feed(&r, "senders=a@b.example"), CD_POLICY_MORE);
	assert_int_equal(feed(&r, "x-sender_2=a@b.example"), CD_POLICY_MORE);
	assert_string_equal(r.sender, "");
	assert_null(r.error);
	assert_int_equal(r.nattrs, 4);
	/* an ignored attribute may come twice */
	assert_int_equal(feed(&r, "Sender=c@d.example"), CD_POLICY_MORE);
	assert_null(r.error);

	struct {
		const char *line, *error;
	} bad[] = {
	    {"sender", "line is not name=value"},
	    {"garbage without equals", "line is not name=value"},
	    {"=value", "empty attribute name"},
	    {"=", "empty attribute name"},
	    {"sen der=a@b.example", "bad attribute name"},
	    {" sender=a@b.example", "bad attribute name"},
	    {"sender =a@b.example", "bad attribute name"},
	    {"client.name=x", "bad attribute name"},
	    {"s\xc3\xa9nder=x", "bad attribute name"},
	    {"sender\r=x", "bad attribute name"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cd_policy_req_init(&r);
		assert_int_equal(feed(&r, bad[i].line), CD_POLICY_ERROR);
		assert_string_equal(r.error, bad[i].error);
		assert_string_equal(r.sender, "");
		assert_int_equal(r.seen, 0);
	}
}

static void test_nul(void **state)
{
	(void)state;
	cd_policy_req r;
	cd_policy_req_init(&r);

	/* a NUL anywhere makes the line bad, so a value is never cut at it */
	const char in_value[] = "sender=alice@example.org\0@evil.example";
	assert_int_equal(cd_policy_feed(&r, in_value, sizeof(in_value) - 1), CD_POLICY_ERROR);
	assert_string_equal(r.error, "NUL in a line");
	assert_string_equal(r.sender, "");
	/* ... and the attribute may still come, once, in a good line */
	assert_int_equal(feed(&r, "sender=bob@example.org"), CD_POLICY_MORE);
	assert_string_equal(r.sender, "bob@example.org");

	cd_policy_req_init(&r);
	const char in_name[] = "send\0er=x";
	assert_int_equal(cd_policy_feed(&r, in_name, sizeof(in_name) - 1), CD_POLICY_ERROR);
	assert_string_equal(r.error, "NUL in a line");
	/* a lone NUL is not the empty line */
	cd_policy_req_init(&r);
	assert_int_equal(cd_policy_feed(&r, "", 1), CD_POLICY_ERROR);
	assert_string_equal(r.error, "NUL in a line");
}

static void test_duplicates(void **state)
{
	(void)state;
	cd_policy_req r;
	cd_policy_req_init(&r);

	/* every known attribute, twice: the second is an error, and the
	 * first value stands */
	const char *names[] = {"request",   "protocol_state", "client_address", "client_name",
	                       "helo_name", "sender",         "recipient",      "sasl_username",
	                       "queue_id",  "instance"};
	char line[64];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "%s=first", names[i]);
		assert_int_equal(feed(&r, line), CD_POLICY_MORE);
	}
	assert_null(r.error);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "%s=second", names[i]);
		assert_int_equal(feed(&r, line), CD_POLICY_ERROR);
		assert_string_equal(r.error, "duplicate attribute");
	}
	assert_string_equal(r.request, "first");
	assert_string_equal(r.protocol_state, "first");
	assert_string_equal(r.client_address, "first");
	assert_string_equal(r.client_name, "first");
	assert_string_equal(r.helo_name, "first");
	assert_string_equal(r.sender, "first");
	assert_string_equal(r.recipient, "first");
	assert_string_equal(r.sasl_username, "first");
	assert_string_equal(r.queue_id, "first");
	assert_string_equal(r.instance, "first");

	/* a refused (too long) value does not count as seen */
	cd_policy_req_init(&r);
	char v[80];
	assert_int_equal(feed(&r, long_line(v, "queue_id", 9 + 64, 'Q')), CD_POLICY_ERROR);
	assert_int_equal(feed(&r, "queue_id=ABC"), CD_POLICY_MORE);
	assert_string_equal(r.queue_id, "ABC");
	assert_string_equal(r.error, "attribute value too long");
}

static void test_field_sizes(void **state)
{
	(void)state;
	cd_policy_req r;
	char line[CD_POLICY_LINE_MAX + 2];

	/* request[32]: 31 octets fit, 32 do not, and the field is never
	 * left with part of a value */
	cd_policy_req_init(&r);
	assert_int_equal(feed(&r, long_line(line, "request", 8 + 31, 'r')), CD_POLICY_MORE);
	assert_int_equal(strlen(r.request), 31);
	cd_policy_req_init(&r);
	assert_int_equal(feed(&r, long_line(line, "request", 8 + 32, 'r')), CD_POLICY_ERROR);
	assert_string_equal(r.error, "attribute value too long");
	assert_string_equal(r.request, "");

	/* client_address[64] */
	cd_policy_req_init(&r);
	assert_int_equal(feed(&r, long_line(line, "client_address", 15 + 63, '1')), CD_POLICY_MORE);
	assert_int_equal(strlen(r.client_address), 63);
	cd_policy_req_init(&r);
	assert_int_equal(feed(&r, long_line(line, "client_address", 15 + 64, '1')),
	                 CD_POLICY_ERROR);
	assert_string_equal(r.client_address, "");

	/* the addresses hold whatever a line can carry: an over-long
	 * address is stored whole, for the verification to refuse */
	cd_policy_req_init(&r);
	assert_int_equal(feed(&r, long_line(line, "recipient", CD_POLICY_LINE_MAX, 'a')),
	                 CD_POLICY_MORE);
	assert_int_equal(strlen(r.recipient), CD_POLICY_LINE_MAX - 10);
	assert_int_equal(feed(&r, long_line(line, "sender", CD_POLICY_LINE_MAX, 's')),
	                 CD_POLICY_MORE);
	assert_int_equal(strlen(r.sender), CD_POLICY_LINE_MAX - 7);
	assert_int_equal(feed(&r, long_line(line, "helo_name", CD_POLICY_LINE_MAX, 'h')),
	                 CD_POLICY_MORE);
	assert_int_equal(strlen(r.helo_name), CD_POLICY_LINE_MAX - 10);
	assert_null(r.error);
}

static void test_line_limit(void **state)
{
	(void)state;
	cd_policy_req r;
	char line[CD_POLICY_LINE_MAX + 3];

	/* CD_POLICY_LINE_MAX octets are a line; one more is not, whatever
	 * the attribute (an ignored one too) */
	cd_policy_req_init(&r);
	assert_int_equal(feed(&r, long_line(line, "x_other", CD_POLICY_LINE_MAX, 'x')),
	                 CD_POLICY_MORE);
	assert_null(r.error);
	assert_int_equal(feed(&r, long_line(line, "x_other", CD_POLICY_LINE_MAX + 1, 'x')),
	                 CD_POLICY_ERROR);
	assert_string_equal(r.error, "line too long");
	assert_int_equal(feed(&r, long_line(line, "sender", CD_POLICY_LINE_MAX + 1, 's')),
	                 CD_POLICY_ERROR);
	assert_string_equal(r.sender, "");

	/* the CR before the LF is not part of the line */
	cd_policy_req_init(&r);
	long_line(line, "sender", CD_POLICY_LINE_MAX, 's');
	strcat(line, "\r");
	assert_int_equal(feed(&r, line), CD_POLICY_MORE);
	assert_int_equal(strlen(r.sender), CD_POLICY_LINE_MAX - 7);
	assert_null(r.error);
}

static void test_attribute_limit(void **state)
{
	(void)state;
	cd_policy_req r;
	char line[32];

	cd_policy_req_init(&r);
	for (unsigned i = 0; i < CD_POLICY_ATTRS_MAX; i++) {
		snprintf(line, sizeof(line), "x%u=%u", i, i);
		assert_int_equal(feed(&r, line), CD_POLICY_MORE);
	}
	assert_null(r.error);
	assert_int_equal(r.nattrs, CD_POLICY_ATTRS_MAX);
	/* one more is too many, even a known attribute not seen yet */
	assert_int_equal(feed(&r, "sender=a@b.example"), CD_POLICY_ERROR);
	assert_string_equal(r.error, "too many attributes");
	assert_string_equal(r.sender, "");
	assert_int_equal(r.nattrs, CD_POLICY_ATTRS_MAX);
	/* the empty line still ends the request */
	assert_int_equal(feed(&r, ""), CD_POLICY_END);

	/* bad lines use up the budget too */
	cd_policy_req_init(&r);
	for (unsigned i = 0; i < CD_POLICY_ATTRS_MAX; i++)
		assert_int_equal(feed(&r, "garbage"), CD_POLICY_ERROR);
	assert_int_equal(feed(&r, "sender=a@b.example"), CD_POLICY_ERROR);
	assert_string_equal(r.error, "line is not name=value"); /* the first problem */
	assert_string_equal(r.sender, "");
}

static void test_error_does_not_end_request(void **state)
{
	(void)state;
	cd_policy_req r;
	cd_policy_req_init(&r);

	/* the caller reads on to the empty line; the first problem is kept
	 * and later valid lines are still stored */
	assert_int_equal(feed(&r, "request=smtpd_access_policy"), CD_POLICY_MORE);
	assert_int_equal(feed(&r, "no equals sign"), CD_POLICY_ERROR);
	assert_string_equal(r.error, "line is not name=value");
	assert_int_equal(feed(&r, "=x"), CD_POLICY_ERROR);
	assert_string_equal(r.error, "line is not name=value");
	assert_int_equal(feed(&r, "recipient=bob@example.com"), CD_POLICY_MORE);
	assert_int_equal(feed(&r, "\r"), CD_POLICY_END);
	assert_string_equal(r.error, "line is not name=value");
	assert_string_equal(r.request, "smtpd_access_policy");
	assert_string_equal(r.recipient, "bob@example.com");
	assert_int_equal(r.nattrs, 4);

	/* init starts the next request clean */
	cd_policy_req_init(&r);
	assert_null(r.error);
	assert_int_equal(r.seen, 0);
	assert_string_equal(r.recipient, "");
	assert_int_equal(feed(&r, "recipient=carol@example.com"), CD_POLICY_MORE);
	assert_null(r.error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request),
	    cmocka_unit_test(test_end_of_request),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_nul),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_field_sizes),
	    cmocka_unit_test(test_line_limit),
	    cmocka_unit_test(test_attribute_limit),
	    cmocka_unit_test(test_error_does_not_end_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
