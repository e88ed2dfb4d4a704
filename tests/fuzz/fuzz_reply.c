/*
 * libFuzzer target: SMTP reply parsing and classification.  The input
 * is split on LF into reply lines (a CR before the LF is left for the
 * parser, as a lenient transport would); each complete reply is then
 * classified at every stage, checking the verdict rules.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reply.h"
#include "verdict.h"
#include "fuzz.h"

static void check_reply(const co_reply *r)
{
	size_t tl = strnlen(r->text, sizeof(r->text));
	CHECK(tl <= CO_REPLY_TEXT_MAX);
	for (size_t i = 0; i < tl; i++)
		CHECK(r->text[i] >= 0x20 && r->text[i] <= 0x7e);
	CHECK(r->nlines <= CO_REPLY_LINES_MAX);
	if (r->nlines > 0)
		CHECK(r->code >= 200 && r->code <= 559);
	size_t el = strnlen(r->enhanced, sizeof(r->enhanced));
	CHECK(el < sizeof(r->enhanced));
	if (el > 0) {
		char again[16];
		CHECK(r->enhanced[0] == '0' + r->code / 100);
		CHECK(co_enhanced_parse(r->code, r->enhanced, el, again) == el);
		CHECK(strcmp(again, r->enhanced) == 0);
	}
}

static void classify_all(const co_reply *r)
{
	(void)co_text_is_policy(r->text);
	(void)co_text_is_greylist(r->text);
	(void)co_text_is_unknown_user(r->text);
	(void)co_text_is_disabled(r->text);
	for (int st = 0; st < CALLOUT_STAGE_COUNT; st++) {
		for (int ns = 0; ns < 2; ns++) {
			co_class c = co_classify((callout_stage)st, r, ns != 0);
			CHECK(c.verdict <= CALLOUT_TEMPFAIL);
			CHECK(c.reason < CALLOUT_R_COUNT);
			/* never invalid without asking about the mailbox */
			if (c.verdict == CALLOUT_INVALID)
				CHECK((st == CALLOUT_STAGE_RCPT || st == CALLOUT_STAGE_VRFY) &&
				      r->code >= 500);
			if (c.verdict == CALLOUT_VALID &&
			    (st == CALLOUT_STAGE_RCPT || st == CALLOUT_STAGE_VRFY))
				CHECK(r->code < 300);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *end = p + size;
	co_reply r;
	co_reply_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		co_reply_status st = co_reply_feed(&r, p, len);
		check_reply(&r);
		if (st == CO_REPLY_DONE) {
			CHECK(r.done);
			classify_all(&r);
			co_reply_init(&r);
		} else if (st == CO_REPLY_ERROR) {
			co_reply_init(&r);
		}
		p += len + (nl ? 1 : 0);
	}
	/* an incomplete reply may be classified too (connection lost) */
	classify_all(&r);

	/* co_enhanced_parse on raw bytes, with the code the data starts with */
	if (size >= 3) {
		char out[16];
		int code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
		size_t n = co_enhanced_parse(code, (const char *)data + (size > 4 ? 4 : 3),
		                             size > 4 ? size - 4 : size - 3, out);
		CHECK(n < sizeof(out) && strlen(out) == n);
	}
	return 0;
}
