/* Unit tests for src/lib/verdict.c: evidence -> verdict + reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "verdict.h"

/* Build a reply from its lines, separated by '\n' in one string. */
static co_reply reply(const char *text)
{
	co_reply r;
	co_reply_init(&r);
	const char *p = text;
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		co_reply_status st = co_reply_feed(&r, p, len);
		if (nl == NULL) {
			assert_int_equal(st, CO_REPLY_DONE);
			break;
		}
		assert_int_equal(st, CO_REPLY_MORE);
		p = nl + 1;
	}
	return r;
}

static const char *const vname[] = {"valid", "invalid", "unknown", "tempfail"};

static void check_(callout_stage stage, const char *lines, bool null_sender, callout_verdict v,
                   callout_reason why, bool next_host, int line)
{
	co_reply r = reply(lines);
	co_class c = co_classify(stage, &r, null_sender);
	if (c.verdict != v || c.reason != why || c.next_host != next_host) {
		print_error("line %d: [%s] at stage %d: got %s/%d/%d, want %s/%d/%d\n", line, lines,
		            (int)stage, vname[c.verdict], (int)c.reason, c.next_host, vname[v],
		            (int)why, next_host);
		fail();
	}
}

#define check(stage, lines, v, why, nh) check_((stage), (lines), true, (v), (why), (nh), __LINE__)
#define check_ns(stage, lines, ns, v, why, nh)                                                     \
	check_((stage), (lines), (ns), (v), (why), (nh), __LINE__)

#define RCPT     CALLOUT_STAGE_RCPT
#define VALID    CALLOUT_VALID
#define INVALID  CALLOUT_INVALID
#define UNKNOWN  CALLOUT_UNKNOWN
#define TEMPFAIL CALLOUT_TEMPFAIL

static void test_rcpt_2xx(void **state)
{
	(void)state;
	check(RCPT, "250 2.1.5 Ok", VALID, CALLOUT_R_ACCEPTED, false);
	check(RCPT, "251 User not local; will forward", VALID, CALLOUT_R_ACCEPTED, false);
	check(RCPT, "250 OK", VALID, CALLOUT_R_ACCEPTED, false);
	/* RCPT never answers 3xx: a protocol error, not a verdict */
	check(RCPT, "354 go ahead", TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, true);
}

static void test_rcpt_4xx(void **state)
{
	(void)state;
	check(RCPT, "421 4.3.2 Service shutting down", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	check(RCPT, "421 mx closing connection", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	/* too many recipients (Microsoft 365 on the second RCPT) */
	check(RCPT, "452 4.5.3 Too many recipients", TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS,
	      false);
	check(RCPT, "452 Too many recipients", TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS, false);
	check(RCPT, "452 no reason given", TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS, false);
	check(RCPT, "451 4.5.3 Recipient limit reached", TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS,
	      false);
	check(RCPT, "450 Too many recipients in this session", TEMPFAIL,
	      CALLOUT_R_TOO_MANY_RECIPIENTS, false);
	/* 452 with a code naming storage is not about the recipient count */
	check(RCPT, "452 4.2.2 Mailbox full", TEMPFAIL, CALLOUT_R_TEMP_REJECT, false);
	check(RCPT, "452 4.3.1 Insufficient system storage", TEMPFAIL, CALLOUT_R_TEMP_REJECT,
	      false);

	/* greylisting */
	check(RCPT, "450 4.2.0 <a@b>: Recipient address rejected: Greylisted", TEMPFAIL,
	      CALLOUT_R_GREYLISTED, false);
	check(RCPT,
	      "450 4.2.0 <a@b.example>: Recipient address rejected: Greylisted, see "
	      "http://postgrey.schweikert.ch/help/b.example.html",
	      TEMPFAIL, CALLOUT_R_GREYLISTED, false);
	check(RCPT, "451 4.7.1 Greylisting in action, please come back later", TEMPFAIL,
	      CALLOUT_R_GREYLISTED, false);
	check(RCPT, "451 4.7.1 Please try again later", TEMPFAIL, CALLOUT_R_GREYLISTED, false);
	check(RCPT, "450 4.7.0 Temporarily rejected, try again in 5 minutes", TEMPFAIL,
	      CALLOUT_R_GREYLISTED, false);
	check(RCPT, "457 GRAYLISTED", TEMPFAIL, CALLOUT_R_GREYLISTED, false);
	check(RCPT, "451-This server uses greylisting\n451 come back in 5 minutes", TEMPFAIL,
	      CALLOUT_R_GREYLISTED, false);
	/* "try again later" alone, with other codes, is not greylisting */
	check(RCPT, "451 4.3.0 Temporary lookup failure, try again later", TEMPFAIL,
	      CALLOUT_R_TEMP_REJECT, false);
	check(RCPT, "450 Try again later", TEMPFAIL, CALLOUT_R_TEMP_REJECT, false);
	check(RCPT, "451 4.7.1 Client host rejected: cannot find your hostname", TEMPFAIL,
	      CALLOUT_R_TEMP_REJECT, false);
	/* a temporary "user unknown" is still tempfail, never invalid */
	check(RCPT, "450 4.1.1 <a@b>: Recipient address rejected: User unknown", TEMPFAIL,
	      CALLOUT_R_TEMP_REJECT, false);
	check(RCPT, "450 4.2.1 The user you are trying to contact is receiving mail too fast",
	      TEMPFAIL, CALLOUT_R_TEMP_REJECT, false);
}

static void test_rcpt_5xx_enhanced(void **state)
{
	(void)state;
	/* mailbox does not exist */
	check(RCPT,
	      "550 5.1.1 <x@y>: Recipient address rejected: User unknown in virtual mailbox table",
	      INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT,
	      "550 5.1.1 <x@y>: Recipient address rejected: User unknown in relay recipient table",
	      INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT,
	      "550 5.1.1 <x@y>: Recipient address rejected: User unknown in local recipient table",
	      INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "550 5.1.1 <x@y>... User unknown", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT,
	      "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
	      "550-5.1.1 double-checking the recipient's email address for typos or\n"
	      "550-5.1.1 unnecessary spaces. For more information, go to\n"
	      "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp",
	      INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "550 5.1.0 Address rejected", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "553 5.1.3 Bad recipient address syntax", INVALID, CALLOUT_R_MAILBOX_UNKNOWN,
	      false);
	check(RCPT, "550 5.1.6 Recipient no longer here", INVALID, CALLOUT_R_MAILBOX_UNKNOWN,
	      false);
	/* X.1.2: the domain's own server says the domain part is bad */
	check(RCPT, "550 5.1.2 Bad destination system address", INVALID, CALLOUT_R_MAILBOX_UNKNOWN,
	      false);
	/* X.1.10: Microsoft uses it for "recipient not found"; a live
	 * server is no null MX, so null_mx only when the text says so */
	check(
	    RCPT,
	    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
	    INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "556 5.1.10 Recipient address has null MX", INVALID, CALLOUT_R_NULL_MX, false);
	/* a 554 with 5.1.1 is still a mailbox answer */
	check(RCPT, "554 5.1.1 no such user", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);

	/* disabled / full */
	check(RCPT, "550 5.2.1 The email account that you tried to reach is disabled", INVALID,
	      CALLOUT_R_MAILBOX_DISABLED, false);
	check(RCPT, "552 5.2.2 Mailbox full", UNKNOWN, CALLOUT_R_MAILBOX_FULL, false);
	check(RCPT, "550 5.2.2 over quota", UNKNOWN, CALLOUT_R_MAILBOX_FULL, false);

	/* policy: about us, never invalid */
	check(RCPT,
	      "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using "
	      "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.9",
	      UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 5.7.1 Unknown user", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 5.7.606 Access denied, banned sending IP [192.0.2.9]", UNKNOWN,
	      CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "554 5.7.1 <x@y>: Relay access denied", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* a mailbox code contradicted by text blaming us */
	check(RCPT, "550 5.1.1 Blocked: your IP is listed at bl.example", UNKNOWN,
	      CALLOUT_R_POLICY_BLOCK, false);
	/* the sender, rejected at RCPT time (Postfix smtpd_delay_reject) */
	check_ns(RCPT, "553 5.1.8 <s@x.example>: Sender address rejected: Domain not found", false,
	         UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check_ns(RCPT, "550 5.1.7 bad sender", false, UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check_ns(RCPT,
	         "550 5.1.1 <s@x.example>: Sender address rejected: User unknown in local "
	         "recipient table",
	         false, UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* and the null sender refused at RCPT time */
	check_ns(RCPT, "550 5.7.1 <>: Sender address rejected: Access denied", true, UNKNOWN,
	         CALLOUT_R_NULL_SENDER_REJECTED, false);
	check_ns(RCPT, "550 5.7.1 <>: Sender address rejected: Access denied", false, UNKNOWN,
	         CALLOUT_R_POLICY_BLOCK, false);

	/* too many recipients, even as 5xx */
	check(RCPT, "550 5.5.3 Too many recipients", TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS,
	      false);
	/* SMTPUTF8 */
	check(RCPT, "553 5.6.7 Non-ASCII addresses not supported", UNKNOWN,
	      CALLOUT_R_SMTPUTF8_UNSUPPORTED, false);
	check(RCPT, "555 5.5.4 SMTPUTF8 not supported", UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED,
	      false);
}

static void test_rcpt_5xx_text(void **state)
{
	(void)state;
	/* Microsoft DBEB: X.4.1 is a routing code; "Access denied" is
	 * policy wording, so this is unknown (see docs: not invalid) */
	check(RCPT, "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", UNKNOWN,
	      CALLOUT_R_POLICY_BLOCK, false);
	/* X.4/X.3/X.5 with user-unknown text: the text is the evidence */
	check(RCPT, "550 5.4.1 Recipient address rejected: user unknown", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	/* ... without such text a bare 550 says nothing then */
	check(RCPT, "550 5.4.4 Unable to route", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(RCPT, "550 5.3.0 Mail system error", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(RCPT, "550 5.4.4 Unable to route: host not found", UNKNOWN, CALLOUT_R_REJECTED,
	      false);
	/* X.0.0 and no code: text, then the RFC 5321 meaning of the code */
	check(RCPT, "550 5.0.0 <x@y>... User unknown", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "550 No such user here", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "550 Requested action not taken: mailbox unavailable", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "511 sorry, no mailbox here by that name (#5.1.1)", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "554 delivery error: dd This user doesn't exist here", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "554 delivery error: dd This mailbox is disabled (554.30)", INVALID,
	      CALLOUT_R_MAILBOX_DISABLED, false);
	check(RCPT, "550 Account inactive", INVALID, CALLOUT_R_MAILBOX_DISABLED, false);
	check(RCPT, "550 Unrouteable address", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "550 rejected", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "550", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "551 User not local; please try <x@elsewhere>", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "553 sorry, that domain isn't in my list of allowed rcpthosts", UNKNOWN,
	      CALLOUT_R_POLICY_BLOCK, false); /* qmail's relay refusal */
	/* RFC 5321's own 553 text is about the mailbox; other "not
	 * allowed" is policy */
	check(RCPT, "553 Requested action not taken: mailbox name not allowed", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "553 5.7.1 relaying not allowed", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 Not allowed", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "552 Requested mail action aborted: exceeded storage allocation", UNKNOWN,
	      CALLOUT_R_MAILBOX_FULL, false);
	check(RCPT, "554 Transaction failed", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(RCPT, "501 Syntax error in parameters", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(RCPT, "503 Bad sequence of commands", UNKNOWN, CALLOUT_R_REJECTED, false);
	/* policy words win over user-unknown words */
	check(RCPT, "550 User unknown or blocked by policy", UNKNOWN, CALLOUT_R_POLICY_BLOCK,
	      false);
	check(RCPT, "550 Mailbox unavailable (listed in Spamhaus)", UNKNOWN, CALLOUT_R_POLICY_BLOCK,
	      false);
	check(RCPT, "550 Message rejected due to local policy", UNKNOWN, CALLOUT_R_POLICY_BLOCK,
	      false);
	check(RCPT, "550 Your IP has a poor reputation", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 Rejected by RBL", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 Sender verify failed", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 relaying denied", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 Relay access denied", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 Unable to relay for x@y", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(RCPT, "550 User unknown in relay recipient table", INVALID, CALLOUT_R_MAILBOX_UNKNOWN,
	      false);
	check(RCPT,
	      "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]",
	      INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(RCPT, "554 Barracuda Reputation: blocked", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* "not listed" is about the mailbox, not a blocklist */
	check(RCPT, "550 Recipient not listed in public directory", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
}

static void test_text_predicates(void **state)
{
	(void)state;
	assert_true(co_text_is_policy("Client host [1.2.3.4] BLOCKED using zen.SPAMHAUS.org"));
	assert_true(co_text_is_policy("listed at dnsbl.sorbs.net"));
	assert_true(co_text_is_policy("RBL: bl.example"));
	assert_true(co_text_is_policy("see http://rbl.example/"));
	assert_true(co_text_is_policy("blacklisted"));
	assert_true(co_text_is_policy("ACCESS DENIED"));
	assert_false(co_text_is_policy("User unknown in virtual mailbox table"));
	assert_false(co_text_is_policy("verbless herbl"));
	assert_false(co_text_is_policy("recipient not listed"));
	assert_false(co_text_is_policy("unlisted"));
	assert_false(co_text_is_policy(""));
	assert_false(co_text_is_policy(NULL));

	assert_true(co_text_is_greylist("GREYLISTED"));
	assert_true(co_text_is_greylist("graylisting active"));
	assert_true(co_text_is_greylist("Grey-listed, come back"));
	assert_false(co_text_is_greylist("try again later"));
	assert_false(co_text_is_greylist(NULL));

	assert_true(co_text_is_unknown_user("USER UNKNOWN"));
	assert_true(co_text_is_unknown_user("The email account does not exist"));
	assert_true(co_text_is_unknown_user("mailbox doesn't exist"));
	assert_true(co_text_is_unknown_user("Recipient not found"));
	assert_false(co_text_is_unknown_user("Service unavailable"));
	assert_false(co_text_is_unknown_user("host not found"));
	assert_false(co_text_is_unknown_user(NULL));

	assert_true(co_text_is_disabled("Account DISABLED"));
	assert_false(co_text_is_disabled("ok"));

	/* bounded: a text without NUL within the scan limit is not read
	 * past it (ASan would complain otherwise) -- here it has one */
	char big[8000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + 7000, "spamhaus", 8);
	assert_false(co_text_is_policy(big)); /* beyond the scan limit */
	memcpy(big + 100, "spamhaus", 8);
	assert_true(co_text_is_policy(big));
}

static void test_banner_helo(void **state)
{
	(void)state;
	check(CALLOUT_STAGE_BANNER, "220 mx.example ESMTP", VALID, CALLOUT_R_ACCEPTED, false);
	check(CALLOUT_STAGE_BANNER, "554 No SMTP service here", UNKNOWN, CALLOUT_R_POLICY_BLOCK,
	      false);
	check(CALLOUT_STAGE_BANNER, "554 5.7.1 Client host blocked", UNKNOWN,
	      CALLOUT_R_POLICY_BLOCK, false);
	check(CALLOUT_STAGE_BANNER, "550 5.1.1 user unknown", UNKNOWN, CALLOUT_R_POLICY_BLOCK,
	      false);
	check(CALLOUT_STAGE_BANNER, "421 Too many connections", TEMPFAIL, CALLOUT_R_TEMP_REJECT,
	      true);
	check(CALLOUT_STAGE_BANNER, "450 busy", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);

	check(CALLOUT_STAGE_EHLO, "250-mx.example\n250 PIPELINING", VALID, CALLOUT_R_ACCEPTED,
	      false);
	check(CALLOUT_STAGE_EHLO, "502 5.5.2 Error: command not recognized", UNKNOWN,
	      CALLOUT_R_POLICY_BLOCK, false);
	check(CALLOUT_STAGE_HELO, "550 5.7.1 Go away", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(CALLOUT_STAGE_HELO, "550 no such user", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(CALLOUT_STAGE_HELO, "421 4.3.2 shutting down", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	check(CALLOUT_STAGE_EHLO, "451 try later", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
}

static void test_mail(void **state)
{
	(void)state;
	callout_stage M = CALLOUT_STAGE_MAIL;
	check(M, "250 2.1.0 Ok", VALID, CALLOUT_R_ACCEPTED, false);
	check(M, "451 4.3.0 Try again", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	check(M, "421 closing", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	check(M, "451 4.7.1 Greylisted", TEMPFAIL, CALLOUT_R_GREYLISTED, true);
	check(M, "450 4.7.1 please try again later", TEMPFAIL, CALLOUT_R_GREYLISTED, true);

	/* the client is blocked: a fallback sender would not help */
	check_ns(M, "554 5.7.1 Client host [192.0.2.9] blocked using zen.spamhaus.org", true,
	         UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check_ns(M, "550 5.7.1 Your IP is listed", false, UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* refusing <> */
	check_ns(M, "550 5.7.1 Null sender not allowed", true, UNKNOWN,
	         CALLOUT_R_NULL_SENDER_REJECTED, false);
	check_ns(M, "553 5.1.7 <>: Sender address rejected: empty sender", true, UNKNOWN,
	         CALLOUT_R_NULL_SENDER_REJECTED, false);
	check_ns(M, "550 5.7.1 Go away", true, UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, false);
	check_ns(M, "550 5.1.1 user unknown", true, UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, false);
	check_ns(M, "550 Rejected", true, UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, false);
	/* with a real sender: policy */
	check_ns(M, "550 5.7.1 Go away", false, UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check_ns(M, "550 5.1.1 <s@x>: Sender address rejected: User unknown", false, UNKNOWN,
	         CALLOUT_R_POLICY_BLOCK, false);
	check_ns(M, "553 sender policy", false, UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* SMTPUTF8 */
	check(M, "550 5.6.7 SMTPUTF8 required", UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED, false);
	check(M, "555 5.5.4 Unsupported option: SMTPUTF8", UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED,
	      false);
}

static void test_vrfy(void **state)
{
	(void)state;
	callout_stage V = CALLOUT_STAGE_VRFY;
	check(V, "250 2.1.5 Joe <joe@example.com>", VALID, CALLOUT_R_ACCEPTED, false);
	check(V, "251 User not local; will forward", VALID, CALLOUT_R_ACCEPTED, false);
	/* 252: cannot verify, says nothing */
	check(V, "252 2.0.0 Cannot VRFY user, but will accept message", UNKNOWN, CALLOUT_R_REJECTED,
	      false);
	check(V, "550 5.1.1 <x@y>: Recipient address rejected: User unknown", INVALID,
	      CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(V, "550 No such user", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(V, "551 User not local", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(V, "553 5.1.3 bad syntax", INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	check(V, "550 5.2.1 mailbox disabled", INVALID, CALLOUT_R_MAILBOX_DISABLED, false);
	/* the same guard as RCPT */
	check(V, "550 5.7.1 Access denied", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	check(V, "550 Client host blocked", UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* refusals of the command, not of the mailbox */
	check(V, "550 VRFY disabled", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(V, "550 Administrative prohibition", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(V, "550 5.5.1 command rejected", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(V, "502 5.5.1 VRFY command is disabled", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(V, "500 unrecognised command", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(V, "450 try later", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(V, "554 no", UNKNOWN, CALLOUT_R_REJECTED, false);
}

static void test_other_stages(void **state)
{
	(void)state;
	check(CALLOUT_STAGE_STARTTLS, "220 2.0.0 Ready to start TLS", VALID, CALLOUT_R_ACCEPTED,
	      false);
	check(CALLOUT_STAGE_STARTTLS, "454 4.7.0 TLS not available", TEMPFAIL, CALLOUT_R_TLS_FAILED,
	      true);
	check(CALLOUT_STAGE_STARTTLS, "502 5.5.1 not implemented", TEMPFAIL, CALLOUT_R_TLS_FAILED,
	      true);
	check(CALLOUT_STAGE_STARTTLS, "550 5.1.1 user unknown", TEMPFAIL, CALLOUT_R_TLS_FAILED,
	      true);
	check(CALLOUT_STAGE_RSET, "250 2.0.0 Ok", VALID, CALLOUT_R_ACCEPTED, false);
	check(CALLOUT_STAGE_RSET, "550 5.1.1 user unknown", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(CALLOUT_STAGE_RSET, "451 later", TEMPFAIL, CALLOUT_R_TEMP_REJECT, false);
	check(CALLOUT_STAGE_RSET, "421 bye", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	check(CALLOUT_STAGE_CONNECT, "550 5.1.1 user unknown", UNKNOWN, CALLOUT_R_REJECTED, false);
	check(CALLOUT_STAGE_NONE, "450 x", TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);

	/* no reply at all */
	co_class c = co_classify(CALLOUT_STAGE_RCPT, NULL, true);
	assert_int_equal(c.verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(c.reason, CALLOUT_R_PROTOCOL_ERROR);
	co_reply r;
	co_reply_init(&r);
	c = co_classify(CALLOUT_STAGE_RCPT, &r, true);
	assert_int_equal(c.verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(c.reason, CALLOUT_R_PROTOCOL_ERROR);
	/* a hand-made reply whose enhanced class does not match the code
	 * is treated as having none */
	r = reply("550 x");
	strcpy(r.enhanced, "4.7.1");
	c = co_classify(CALLOUT_STAGE_RCPT, &r, true);
	assert_int_equal(c.verdict, CALLOUT_INVALID);
	strcpy(r.enhanced, "5.7.1.9");
	c = co_classify(CALLOUT_STAGE_RCPT, &r, true);
	assert_int_equal(c.verdict, CALLOUT_INVALID);
}

/* The rule that matters most, exhaustively over codes and stages. */
static void test_never_invalid_outside_rcpt_vrfy(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    "",
	    "5.1.1 user unknown",
	    "5.2.1 disabled",
	    "5.1.10 null mx",
	    "no such user",
	    "does not exist",
	    "5.7.1 blocked",
	};
	for (int stage = 0; stage < CALLOUT_STAGE_COUNT; stage++) {
		for (int code = 200; code <= 559; code++) {
			if (code % 100 > 59)
				continue;
			for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
				for (int ns = 0; ns < 2; ns++) {
					char line[128];
					snprintf(line, sizeof(line), "%d %s", code, texts[t]);
					if (texts[t][0] == '5' && code / 100 != 5)
						line[4] = (char)('0' + code / 100);
					co_reply r;
					co_reply_init(&r);
					assert_int_equal(co_reply_feed(&r, line, strlen(line)),
					                 CO_REPLY_DONE);
					co_class c = co_classify((callout_stage)stage, &r, ns);
					if (stage != CALLOUT_STAGE_RCPT &&
					    stage != CALLOUT_STAGE_VRFY)
						assert_int_not_equal(c.verdict, CALLOUT_INVALID);
					/* and never invalid from a non-5xx */
					if (code < 500)
						assert_int_not_equal(c.verdict, CALLOUT_INVALID);
					/* valid only from 2xx */
					if (code >= 300 && (stage == CALLOUT_STAGE_RCPT ||
					                    stage == CALLOUT_STAGE_VRFY))
						assert_int_not_equal(c.verdict, CALLOUT_VALID);
					assert_true(c.reason < CALLOUT_R_COUNT);
				}
			}
		}
	}
}

/* What postmaster@DOMAIN's reply says of the domain: only an acceptance
 * or a refusal that would make an address invalid is a fact. */
static void test_postmaster_answer(void **state)
{
	(void)state;
	static const struct {
		const char *lines;
		callout_postmaster want;
	} cases[] = {
	    {"250 2.1.5 Ok", CALLOUT_POSTMASTER_ACCEPTED},
	    {"251 2.1.5 will forward", CALLOUT_POSTMASTER_ACCEPTED},
	    {"550 5.1.1 <postmaster@x.example>: Recipient address rejected: User unknown",
	     CALLOUT_POSTMASTER_REFUSED},
	    {"550 No such user here", CALLOUT_POSTMASTER_REFUSED},
	    {"550 5.2.1 mailbox disabled", CALLOUT_POSTMASTER_REFUSED},
	    /* about us, our sender, or nothing: no fact */
	    {"550 5.7.1 Client host [192.0.2.9] blocked using zen.spamhaus.org",
	     CALLOUT_POSTMASTER_UNKNOWN},
	    {"554 5.7.1 Access denied", CALLOUT_POSTMASTER_UNKNOWN},
	    {"550 5.1.8 sender domain has no MX", CALLOUT_POSTMASTER_UNKNOWN},
	    {"552 5.2.2 mailbox full", CALLOUT_POSTMASTER_UNKNOWN},
	    {"450 4.2.0 greylisted, try again later", CALLOUT_POSTMASTER_UNKNOWN},
	    {"452 4.5.3 Too many recipients", CALLOUT_POSTMASTER_UNKNOWN},
	    {"421 4.4.2 closing", CALLOUT_POSTMASTER_UNKNOWN},
	    {"550 5.4.1 Recipient address rejected: Access denied", CALLOUT_POSTMASTER_UNKNOWN},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		co_reply r = reply(cases[i].lines);
		callout_postmaster got = co_postmaster_answer(&r, true);
		if (got != cases[i].want) {
			print_error("[%s]: got %d, want %d\n", cases[i].lines, (int)got,
			            (int)cases[i].want);
			fail();
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rcpt_2xx),
	    cmocka_unit_test(test_rcpt_4xx),
	    cmocka_unit_test(test_rcpt_5xx_enhanced),
	    cmocka_unit_test(test_rcpt_5xx_text),
	    cmocka_unit_test(test_text_predicates),
	    cmocka_unit_test(test_banner_helo),
	    cmocka_unit_test(test_mail),
	    cmocka_unit_test(test_vrfy),
	    cmocka_unit_test(test_other_stages),
	    cmocka_unit_test(test_never_invalid_outside_rcpt_vrfy),
	    cmocka_unit_test(test_postmaster_answer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
