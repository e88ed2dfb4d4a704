/*
 * libFuzzer target: the body of POST /v1/jobs (src/daemon/jobs_body.c).
 * The first byte picks the kind (JSON, JSON lines, CSV with and without
 * ?column, plain lines); the rest is the body.  Checked: reading ends;
 * every address is handed over with its length and no NUL byte; lines
 * go forward (never backwards, from 1); a refusal has a status, a code and
 * a message; a JSON object's options are an object.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "jobs_body.h"

struct seen {
	unsigned long last_line, n;
};

static bool add(void *arg, unsigned long line, const char *addr, size_t len, cd_body_error *e)
{
	struct seen *s = arg;

	CHECK(e->status == 0);
	CHECK(len == 0 || addr != NULL);
	CHECK(memchr(addr, '\0', len) == NULL);
	CHECK(line >= 1 && line >= s->last_line);
	s->last_line = line;
	/* a small cap, as max_job_addresses is: the refusal path runs too */
	if (++s->n > 1000)
		return cd_body_fail(e, 413, "too_many_addresses", "more than %d", 1000);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const cd_body_kind kinds[] = {CD_BODY_JSON, CD_BODY_NDJSON, CD_BODY_CSV, CD_BODY_CSV,
	                                     CD_BODY_TEXT};
	struct seen s = {0, 0};
	cd_body_error e = {0};
	json_t *opts = json_object();
	cd_body_kind kind;
	bool ok;

	if (size < 1 || !opts) {
		json_decref(opts);
		return 0;
	}
	kind = kinds[data[0] % 5];
	ok = cd_body_read(kind, (const char *)data + 1, size - 1, data[0] % 5 == 3 ? "email" : NULL,
	                  opts, add, &s, &e);
	CHECK(ok == (e.status == 0));
	if (!ok) {
		CHECK(e.status >= 400 && e.status < 600);
		CHECK(e.error != NULL && e.msg[0] != '\0');
	}
	CHECK(json_is_object(opts));
	json_decref(opts);
	return 0;
}
