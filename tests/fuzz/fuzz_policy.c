/*
 * libFuzzer target: Postfix policy delegation requests (policy_parse.c).
 * The input is split on LF into lines (a CR before the LF is left for the
 * parser) and fed to cd_policy_feed; an empty line ends a request and
 * starts the next.  Checked after every line: fields stay NUL-terminated
 * within their size, a valid attribute line stores exactly its value, a
 * bad line changes no field and marks the request, the empty line (and
 * only it) ends a request, and the attribute count stays bounded.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy_parse.h"
#include "fuzz.h"

static const struct {
	const char *name;
	size_t off, size;
} fields[] = {
#define F(n)                                                                                       \
	{                                                                                          \
#n, offsetof(cd_policy_req, n), sizeof(((cd_policy_req *)0)->n)                    \
	}
    F(request), F(protocol_state), F(client_address), F(client_name), F(helo_name),
    F(sender),  F(recipient),      F(sasl_username),  F(queue_id),    F(instance),
#undef F
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const char *field(const cd_policy_req *r, size_t i)
{
	return (const char *)r + fields[i].off;
}

static void check_bounded(const cd_policy_req *r)
{
	for (size_t i = 0; i < NFIELDS; i++)
		CHECK(strnlen(field(r, i), fields[i].size) < fields[i].size);
	CHECK(r->nattrs <= CD_POLICY_ATTRS_MAX);
}

/* Which known field the line names, or -1. */
static int named(const char *line, size_t len)
{
	const char *eq = memchr(line, '=', len);
	if (!eq)
		return -1;
	for (size_t i = 0; i < NFIELDS; i++)
		if (strlen(fields[i].name) == (size_t)(eq - line) &&
		    memcmp(fields[i].name, line, (size_t)(eq - line)) == 0)
			return (int)i;
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cd_policy_req r, before;
	const char *p = (const char *)data;
	const char *end = p + size;
	bool failed = false;

	cd_policy_req_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t bare = len > 0 && p[len - 1] == '\r' ? len - 1 : len;

		before = r;
		cd_policy_status st = cd_policy_feed(&r, p, len);
		check_bounded(&r);
		CHECK(st == CD_POLICY_MORE || st == CD_POLICY_END || st == CD_POLICY_ERROR);
		CHECK((st == CD_POLICY_END) == (bare == 0));
		if (st == CD_POLICY_ERROR) {
			failed = true;
			CHECK(r.error && r.error[0]);
			/* nothing stored from a bad line */
			for (size_t i = 0; i < NFIELDS; i++)
				CHECK(strcmp(field(&r, i), field(&before, i)) == 0);
		} else if (st == CD_POLICY_MORE) {
			CHECK(r.nattrs == before.nattrs + 1);
			int i = named(p, bare);
			if (i >= 0) {
				const char *value = (const char *)memchr(p, '=', bare) + 1;
				size_t vlen = bare - (size_t)(value - p);
				CHECK(strlen(field(&r, (size_t)i)) == vlen);
				CHECK(memcmp(field(&r, (size_t)i), value, vlen) == 0);
			}
		}
		CHECK(failed == (r.error != NULL));
		if (st == CD_POLICY_END) {
			cd_policy_req_init(&r);
			failed = false;
		}
		p += len + (nl ? 1 : 0);
	}
	return 0;
}
