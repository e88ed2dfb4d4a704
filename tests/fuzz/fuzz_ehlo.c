/*
 * libFuzzer target: EHLO replies.  Lines (split on LF) go through the
 * reply parser and, as the session would do, into co_caps_line with the
 * first line flagged as the greeting.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reply.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *end = p + size;
	co_reply r;
	co_caps caps;
	co_reply_init(&r);
	memset(&caps, 0, sizeof(caps));
	bool first = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		co_reply_status st = co_reply_feed(&r, p, len);
		if (st != CO_REPLY_ERROR) {
			co_caps_line(&caps, p, len, first);
			first = false;
		}
		if (st != CO_REPLY_MORE) {
			co_reply_init(&r);
			first = true;
		}
		CHECK(strnlen(r.text, sizeof(r.text)) <= CO_REPLY_TEXT_MAX);
		p += len + (nl ? 1 : 0);
	}
	/* the whole input as one line, too */
	co_caps whole;
	memset(&whole, 0, sizeof(whole));
	co_caps_line(&whole, (const char *)data, size, false);
	co_caps_line(&whole, (const char *)data, size, true);
	return 0;
}
