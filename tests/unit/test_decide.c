/* Unit tests for src/daemon/decide.c: what calloutd checks for a mail
 * transaction, and what it answers for each verdict and mode. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "decide.h"

static cd_config *parse(const char *text)
{
	char err[512];
	cd_config *c = cd_config_parse(text, "test.conf", err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	return c;
}

static cd_request req(const char *sender, const char *recipient)
{
	return (cd_request){.fe = CD_FE_POLICY,
	                    .client_address = "192.0.2.10",
	                    .client_name = "",
	                    .helo = "client.example",
	                    .sender = sender,
	                    .recipient = recipient,
	                    .sasl_username = "",
	                    .queue_id = ""};
}

static void test_what_is_skipped(void **state)
{
	(void)state;
	cd_config *c = parse("[engine]\nsender = probe@us.example\n"
	                     "[verify]\nskip_senders = boss@partner.example\n"
	                     "skip_domains = trusted.example\n"
	                     "[domain skipme.example]\naction = skip\n"
	                     "[domain always.example]\naction = verify\n");
	cd_plan p;
	cd_request r = req("", "x@gateway.test");

	cd_decide_plan(c, &r, &p);
	assert_int_equal(p.n, 0);
	assert_string_equal(p.skip_reason, "null sender");

	r = req("alice@example.org", "x@gateway.test");
	r.sasl_username = "alice";
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.skip_reason, "authenticated client");

	r = req("probe@us.example", "x@gateway.test");
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.skip_reason, "our own callout sender");

	r = req("alice@example.org", "x@gateway.test");
	r.client_address = "127.0.0.1"; /* skip_networks default */
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.skip_reason, "client network skipped");
	/* ... unless the domain is always verified */
	r.sender = "bob@always.example";
	cd_decide_plan(c, &r, &p);
	assert_int_equal(p.n, 1);

	r = req("boss@partner.example", "");
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.skip_reason, "sender allow-listed");
	r = req("anyone@trusted.example", "");
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.skip_reason, "sender allow-listed");
	r = req("anyone@SkipMe.Example", "");
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.skip_reason, "domain skipped");

	r = req("alice@example.org", "x@gateway.test");
	cd_decide_plan(c, &r, &p);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.checks[0].what, "sender");
	assert_string_equal(p.checks[0].address, "alice@example.org");
	cd_config_free(c);
}

static void test_call_forward_first(void **state)
{
	(void)state;
	cd_config *c = parse("[domain forward.test]\nroute = 127.0.0.33:25\n");
	cd_plan p;
	cd_request r = req("alice@example.org", "bob@Forward.Test");

	cd_decide_plan(c, &r, &p);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.checks[0].what, "recipient");
	assert_string_equal(p.checks[1].what, "sender");
	assert_int_equal(p.checks[0].reject.code, 550);
	assert_string_equal(p.checks[0].reject.enhanced, "5.1.1");
	/* The null sender still gets its recipient checked. */
	r = req("", "bob@forward.test");
	cd_decide_plan(c, &r, &p);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.checks[0].what, "recipient");
	cd_config_free(c);
}

static callout_result result(callout_verdict v, callout_reason why)
{
	return (callout_result){.verdict = v,
	                        .reason = why,
	                        .code = 550,
	                        .enhanced = "5.1.1",
	                        .text = "User unknown\r\nX",
	                        .address = "a@b",
	                        .mx = "",
	                        .ip = ""};
}

static void test_answers(void **state)
{
	(void)state;
	cd_config *c = parse("[verify]\nunknown_reject = null_sender_rejected\n");
	cd_plan p;
	cd_request r = req("alice@example.org", "");
	cd_answer a;

	cd_decide_plan(c, &r, &p);
	callout_result res = result(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_REJECT);
	assert_int_equal(a.code, 550);
	assert_string_equal(a.enhanced, "5.1.7");
	assert_string_equal(a.text,
	                    "<alice@example.org>: Sender address rejected: undeliverable address "
	                    "(mailbox_unknown)");

	res = result(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_DEFER);
	assert_int_equal(a.code, 450);
	assert_string_equal(a.enhanced, "4.1.7");

	res = result(CALLOUT_UNKNOWN, CALLOUT_R_CATCH_ALL);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	res = result(CALLOUT_UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_REJECT);

	res = result(CALLOUT_VALID, CALLOUT_R_ACCEPTED);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_string_equal(a.header, "");

	cd_decide_in_progress(&p.checks[0], &a);
	assert_int_equal(a.action, CD_ACT_DEFER);
	assert_int_equal(a.code, 450);
	cd_config_free(c);

	c = parse("[verify]\ndefer_ok = yes\n");
	cd_decide_plan(c, &r, &p);
	res = result(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	cd_decide_in_progress(&p.checks[0], &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	cd_config_free(c);
}

static void test_modes(void **state)
{
	(void)state;
	cd_config *c = parse("[daemon]\nmode = tag\n[domain dry.example]\nmode = dry-run\n");
	cd_plan p;
	cd_request r = req("alice@example.org", "");
	cd_answer a;
	callout_result res = result(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN);

	cd_decide_plan(c, &r, &p);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_int_equal(a.code, 0);
	assert_string_equal(a.header,
	                    "verdict=invalid; reason=mailbox_unknown; sender=alice@example.org");

	r = req("bob@dry.example", "");
	cd_decide_plan(c, &r, &p);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_string_equal(a.header, "");
	cd_config_free(c);
}

/* no_postmaster = tag: a sender domain known to refuse postmaster is a
 * tag on mail that passes, never a reason to refuse, and only the
 * sender's domain counts. */
static void test_no_postmaster(void **state)
{
	(void)state;
	cd_config *c = parse("[daemon]\nno_postmaster = tag\n"
	                     "[domain forward.test]\nroute = 192.0.2.25\n"
	                     "[domain dry.example]\nmode = dry-run\n"
	                     "[domain tagged.example]\nmode = tag\n");
	cd_plan p;
	cd_request r = req("alice@example.org", "");
	cd_answer a;
	callout_result res = result(CALLOUT_VALID, CALLOUT_R_ACCEPTED);

	assert_true(c->tag_no_postmaster);
	cd_decide_plan(c, &r, &p);
	res.postmaster = CALLOUT_POSTMASTER_REFUSED;
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_int_equal(a.code, 0);
	assert_string_equal(
	    a.header,
	    "verdict=valid; reason=accepted; postmaster=refused; sender=alice@example.org");

	/* accepted, or not known: nothing */
	res.postmaster = CALLOUT_POSTMASTER_ACCEPTED;
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_string_equal(a.header, "");
	res.postmaster = CALLOUT_POSTMASTER_UNKNOWN;
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_string_equal(a.header, "");

	/* the verdict decides as before: invalid is refused, untagged */
	res = result(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN);
	res.postmaster = CALLOUT_POSTMASTER_REFUSED;
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_REJECT);
	assert_int_equal(a.code, 550);
	assert_string_equal(a.header, "");
	res = result(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED);
	res.postmaster = CALLOUT_POSTMASTER_REFUSED;
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_DEFER);

	/* tag mode says it in its own header */
	r = req("bob@tagged.example", "");
	cd_decide_plan(c, &r, &p);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_string_equal(a.header, "verdict=tempfail; reason=greylisted; postmaster=refused; "
	                              "sender=bob@tagged.example");

	/* dry-run changes nothing */
	r = req("carol@dry.example", "");
	cd_decide_plan(c, &r, &p);
	res = result(CALLOUT_VALID, CALLOUT_R_ACCEPTED);
	res.postmaster = CALLOUT_POSTMASTER_REFUSED;
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_string_equal(a.header, "");

	/* a recipient's domain (call forward) is not the sender's */
	r = req("", "dave@forward.test");
	cd_decide_plan(c, &r, &p);
	assert_string_equal(p.checks[0].what, "recipient");
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_string_equal(a.header, "");
	cd_config_free(c);

	/* the default ignores it */
	c = parse("");
	r = req("alice@example.org", "");
	cd_decide_plan(c, &r, &p);
	cd_decide_answer(&p.checks[0], &res, &a);
	assert_int_equal(a.action, CD_ACT_PASS);
	assert_string_equal(a.header, "");
	cd_config_free(c);
}

static void test_expand(void **state)
{
	(void)state;
	char out[64];
	callout_result res = result(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN);

	cd_expand("<$address> $verdict/$reason $code: $text $$x $nope", "a@b", &res, out,
	          sizeof(out));
	/* CR/LF from the remote text never reach the reply. */
	assert_string_equal(out, "<a@b> invalid/mailbox_unknown 550: User unknown??X $$x $nope");
	cd_expand("$text$text$text$text$text$text$text$text$text", "a@b", &res, out, 20);
	assert_int_equal(strlen(out), 19);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_what_is_skipped), cmocka_unit_test(test_call_forward_first),
	    cmocka_unit_test(test_answers),         cmocka_unit_test(test_modes),
	    cmocka_unit_test(test_expand),          cmocka_unit_test(test_no_postmaster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
