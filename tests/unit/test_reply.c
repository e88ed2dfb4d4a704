/* Unit tests for src/lib/reply.c: SMTP replies, enhanced codes, EHLO. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "reply.h"

static co_reply_status feed(co_reply *r, const char *line)
{
	return co_reply_feed(r, line, strlen(line));
}

/* Feed lines (NULL-terminated) that must form one complete reply. */
static void reply_of(co_reply *r, const char *const *lines)
{
	co_reply_init(r);
	for (size_t i = 0; lines[i] != NULL; i++) {
		co_reply_status st = feed(r, lines[i]);
		assert_int_equal(st, lines[i + 1] == NULL ? CO_REPLY_DONE : CO_REPLY_MORE);
	}
	assert_true(r->done);
}

static void test_single(void **state)
{
	(void)state;
	co_reply r;
	reply_of(&r, (const char *const[]){"250 OK", NULL});
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text, "OK");
	assert_string_equal(r.enhanced, "");
	assert_int_equal(r.nlines, 1);

	/* a bare code is a final line */
	reply_of(&r, (const char *const[]){"250", NULL});
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text, "");
	reply_of(&r, (const char *const[]){"354 ", NULL});
	assert_int_equal(r.code, 354);
	assert_string_equal(r.text, "");
	/* a CR left by the transport is not text */
	reply_of(&r, (const char *const[]){"220 mx.example ESMTP\r", NULL});
	assert_string_equal(r.text, "mx.example ESMTP");
	/* extra spaces around the text are dropped */
	reply_of(&r, (const char *const[]){"221   bye  ", NULL});
	assert_string_equal(r.text, "bye");
}

static void test_multi(void **state)
{
	(void)state;
	co_reply r;
	reply_of(&r, (const char *const[]){"250-mx.example.com Hello", "250-PIPELINING",
	                                   "250 SIZE 1000", NULL});
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.text, "mx.example.com Hello PIPELINING SIZE 1000");
	/* empty continuation lines add nothing */
	reply_of(&r, (const char *const[]){"220-", "220-a", "220-", "220 b", NULL});
	assert_string_equal(r.text, "a b");
	assert_int_equal(r.nlines, 4);
}

static void test_bad_lines(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",      "2",     "25",     "25 x",   "abc",   "2a0 x", " 250 x",
	    "250x",  "250_x", "250\tx", "2500 x", "150 x", "650 x", "050 x",
	    "260 x", "199 x", "600",    "-250 x", "250:x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		co_reply r;
		co_reply_init(&r);
		if (feed(&r, bad[i]) != CO_REPLY_ERROR) {
			print_error("line [%s] accepted\n", bad[i]);
			fail();
		}
	}
	/* NUL as the first octet with an explicit length */
	co_reply r;
	co_reply_init(&r);
	assert_int_equal(co_reply_feed(&r,
	                               "\0"
	                               "50 x",
	                               5),
	                 CO_REPLY_ERROR);
	/* NULL line */
	co_reply_init(&r);
	assert_int_equal(co_reply_feed(&r, NULL, 3), CO_REPLY_ERROR);
	assert_int_equal(co_reply_feed(&r, NULL, 0), CO_REPLY_ERROR);
	/* boundaries of the digits: 2..5, 0..5 */
	co_reply_init(&r);
	assert_int_equal(feed(&r, "200 x"), CO_REPLY_DONE);
	co_reply_init(&r);
	assert_int_equal(feed(&r, "559 x"), CO_REPLY_DONE);
	co_reply_init(&r);
	assert_int_equal(feed(&r, "569 x"), CO_REPLY_ERROR);
}

static void test_mismatch(void **state)
{
	(void)state;
	co_reply r;
	co_reply_init(&r);
	assert_int_equal(feed(&r, "250-a"), CO_REPLY_MORE);
	assert_int_equal(feed(&r, "251 b"), CO_REPLY_ERROR);
	co_reply_init(&r);
	assert_int_equal(feed(&r, "550-a"), CO_REPLY_MORE);
	assert_int_equal(feed(&r, "450 b"), CO_REPLY_ERROR);
	/* nothing may follow the last line */
	co_reply_init(&r);
	assert_int_equal(feed(&r, "250 a"), CO_REPLY_DONE);
	assert_int_equal(feed(&r, "250 b"), CO_REPLY_ERROR);
	assert_string_equal(r.text, "a");
	assert_int_equal(co_reply_feed(NULL, "250 a", 5), CO_REPLY_ERROR);
}

static void test_junk_bytes(void **state)
{
	(void)state;
	co_reply r;
	co_reply_init(&r);
	static const char line[] = "550 caf\xc3\xa9 \x01\x7f\tx\0y\x1b[1m\xff";
	assert_int_equal(co_reply_feed(&r, line, sizeof(line) - 1), CO_REPLY_DONE);
	assert_string_equal(r.text, "caf?? ???x?y?[1m?");
	for (const char *p = r.text; *p; p++)
		assert_true(*p >= 0x20 && *p <= 0x7e);
	/* a CR inside the line is junk too; only a final one is stripped */
	co_reply_init(&r);
	assert_int_equal(feed(&r, "250 a\rb\r"), CO_REPLY_DONE);
	assert_string_equal(r.text, "a?b");
}

static void test_line_limits(void **state)
{
	(void)state;
	char line[CO_REPLY_LINE_MAX + 10];
	co_reply r;

	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	co_reply_init(&r);
	assert_int_equal(co_reply_feed(&r, line, CO_REPLY_LINE_MAX), CO_REPLY_DONE);
	assert_int_equal(strlen(r.text), CO_REPLY_TEXT_MAX);
	co_reply_init(&r);
	assert_int_equal(co_reply_feed(&r, line, CO_REPLY_LINE_MAX + 1), CO_REPLY_ERROR);
	/* the CR does not count */
	line[CO_REPLY_LINE_MAX] = '\r';
	co_reply_init(&r);
	assert_int_equal(co_reply_feed(&r, line, CO_REPLY_LINE_MAX + 1), CO_REPLY_DONE);
}

static void test_line_count(void **state)
{
	(void)state;
	co_reply r;
	co_reply_init(&r);
	for (int i = 0; i < CO_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(feed(&r, "250-x"), CO_REPLY_MORE);
	assert_int_equal(feed(&r, "250 x"), CO_REPLY_DONE);
	assert_int_equal(r.nlines, CO_REPLY_LINES_MAX);

	co_reply_init(&r);
	for (int i = 0; i < CO_REPLY_LINES_MAX; i++)
		assert_int_equal(feed(&r, "250-x"), CO_REPLY_MORE);
	assert_int_equal(feed(&r, "250 x"), CO_REPLY_ERROR);
	assert_false(r.done);
}

static void test_text_truncation(void **state)
{
	(void)state;
	co_reply r;
	char line[120];
	memset(line, 'y', sizeof(line));
	memcpy(line, "550-", 4);
	co_reply_init(&r);
	for (int i = 0; i < 20; i++)
		assert_int_equal(co_reply_feed(&r, line, sizeof(line)), CO_REPLY_MORE);
	assert_int_equal(feed(&r, "550 end"), CO_REPLY_DONE);
	assert_int_equal(strlen(r.text), CO_REPLY_TEXT_MAX);
	/* joined by single spaces: 116 y, space, 116 y ... */
	assert_int_equal(r.text[116], ' ');
	assert_int_equal(r.text[117], 'y');
}

static void test_enhanced(void **state)
{
	(void)state;
	co_reply r;
	reply_of(&r, (const char *const[]){"550 5.1.1 User unknown", NULL});
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "User unknown");

	reply_of(&r, (const char *const[]){"550 5.1.1", NULL});
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "");
	reply_of(&r, (const char *const[]){"550 5.1.10 RESOLVER.ADR.RecipientNotFound", NULL});
	assert_string_equal(r.enhanced, "5.1.10");
	reply_of(&r, (const char *const[]){"451 4.7.500 Server busy", NULL});
	assert_string_equal(r.enhanced, "4.7.500");
	reply_of(&r, (const char *const[]){"250 2.1.5 Ok", NULL});
	assert_string_equal(r.enhanced, "2.1.5");
	assert_string_equal(r.text, "Ok");

	/* class must match the reply: kept as text otherwise */
	reply_of(&r, (const char *const[]){"550 4.1.1 odd", NULL});
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "4.1.1 odd");
	/* malformed codes stay text */
	static const char *const bad[] = {
	    "550 5.1.1x y", "550 5.1234.1 y", "550 5..1 y",   "550 5.1. y",  "550 5.1 y",
	    "550 5.1.1: y", "550 5.1.1234 y", "550 .5.1.1 y", "550 5-1-1 y", "550 5.a.1 y",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		co_reply_init(&r);
		assert_int_equal(feed(&r, bad[i]), CO_REPLY_DONE);
		if (r.enhanced[0] != '\0') {
			print_error("[%s] gave enhanced [%s]\n", bad[i], r.enhanced);
			fail();
		}
		assert_string_equal(r.text, bad[i] + 4);
	}
}

static void test_enhanced_repeated(void **state)
{
	(void)state;
	co_reply r;
	/* Gmail repeats the code on every line */
	reply_of(
	    &r,
	    (const char *const[]){
	        "550-5.1.1 The email account that you tried to reach does not exist. Please try",
	        "550-5.1.1 double-checking the recipient's email address for typos or",
	        "550-5.1.1 unnecessary spaces. For more information, go to",
	        "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1-2b.3 - gsmtp", NULL});
	assert_string_equal(r.enhanced, "5.1.1");
	assert_null(strstr(r.text, "5.1.1"));
	assert_string_equal(r.text,
	                    "The email account that you tried to reach does not exist. Please try "
	                    "double-checking the recipient's email address for typos or "
	                    "unnecessary spaces. For more information, go to "
	                    "https://support.google.com/mail/?p=NoSuchUser a1-2b.3 - gsmtp");

	/* a different code on a continuation line stays in the text */
	reply_of(&r, (const char *const[]){"550-5.1.1 a", "550 5.7.1 b", NULL});
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "a 5.7.1 b");
	/* only the first line gives the code */
	reply_of(&r, (const char *const[]){"550-User unknown", "550 5.1.1 x", NULL});
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "User unknown 5.1.1 x");
}

static void test_enhanced_parse(void **state)
{
	(void)state;
	char out[16];
	assert_int_equal(co_enhanced_parse(550, "5.1.1 x", 7, out), 5);
	assert_string_equal(out, "5.1.1");
	/* length bounds the text: no NUL needed */
	assert_int_equal(co_enhanced_parse(550, "5.1.1234", 5, out), 5);
	assert_string_equal(out, "5.1.1");
	assert_int_equal(co_enhanced_parse(550, "5.999.999", 9, out), 9);
	assert_string_equal(out, "5.999.999");
	assert_int_equal(co_enhanced_parse(550, "5.1.1", 4, out), 0);
	assert_string_equal(out, "");
	assert_int_equal(co_enhanced_parse(0, "5.1.1", 5, out), 0);
	assert_int_equal(co_enhanced_parse(650, "6.1.1", 5, out), 0);
	assert_int_equal(co_enhanced_parse(450, "5.1.1", 5, out), 0);
	assert_int_equal(co_enhanced_parse(550, NULL, 0, out), 0);
}

static co_caps caps_of(const char *const *lines)
{
	co_caps c;
	memset(&c, 0, sizeof(c));
	for (size_t i = 0; lines[i] != NULL; i++)
		co_caps_line(&c, lines[i], strlen(lines[i]), i == 0);
	return c;
}

static void test_caps(void **state)
{
	(void)state;
	co_caps c = caps_of((const char *const[]){
	    "250-mx.example.com Hello [192.0.2.9]", "250-pipelining", "250-SIZE 35882577",
	    "250-Starttls", "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-SmtpUtf8",
	    "250-AUTH PLAIN LOGIN", "250 CHUNKING", NULL});
	assert_true(c.pipelining);
	assert_true(c.starttls);
	assert_true(c.smtputf8);
	assert_true(c.eightbitmime);
	assert_true(c.enhancedstatuscodes);
	assert_true(c.chunking);
	assert_int_equal(c.size, 35882577UL);

	/* the greeting line is not a keyword, even if it looks like one */
	c = caps_of((const char *const[]){"250 PIPELINING", NULL});
	assert_false(c.pipelining);
	c = caps_of((const char *const[]){"250-STARTTLS", "250 SIZE", NULL});
	assert_false(c.starttls);
	assert_int_equal(c.size, 0);

	/* near misses are not keywords */
	c = caps_of((const char *const[]){"250-hi", "250-PIPELININGX", "250-X-PIPELINING",
	                                  "250-STARTTLSfoo", "250-SIZE1000", "250 XSMTPUTF8",
	                                  NULL});
	assert_false(c.pipelining);
	assert_false(c.starttls);
	assert_false(c.smtputf8);
	assert_int_equal(c.size, 0);

	/* SIZE: saturates, ignores junk, CR stripped, bare keyword lines */
	c = caps_of((const char *const[]){"250-hi", "250-SIZE 99999999999999999999999999",
	                                  "STARTTLS\r", "250 PIPELINING\r", NULL});
	assert_int_equal(c.size, ULONG_MAX);
	assert_true(c.starttls);
	assert_true(c.pipelining);
	c = caps_of((const char *const[]){"250-hi", "250 SIZE abc", NULL});
	assert_int_equal(c.size, 0);
	c = caps_of((const char *const[]){"250-hi", "250 SIZE 0", NULL});
	assert_int_equal(c.size, 0);

	/* odd input does not crash */
	co_caps_line(&c, NULL, 5, false);
	co_caps_line(NULL, "250 X", 5, false);
	co_caps_line(&c, "", 0, false);
	co_caps_line(&c, "250", 3, false);
	co_caps_line(&c, "250-", 4, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single),         cmocka_unit_test(test_multi),
	    cmocka_unit_test(test_bad_lines),      cmocka_unit_test(test_mismatch),
	    cmocka_unit_test(test_junk_bytes),     cmocka_unit_test(test_line_limits),
	    cmocka_unit_test(test_line_count),     cmocka_unit_test(test_text_truncation),
	    cmocka_unit_test(test_enhanced),       cmocka_unit_test(test_enhanced_repeated),
	    cmocka_unit_test(test_enhanced_parse), cmocka_unit_test(test_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
