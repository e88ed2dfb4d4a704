/*
 * libFuzzer target: the cache record decoder.  Records come from a file
 * or a Redis server others can write to, so any bytes must decode to a
 * sane record or be refused; a decoded record must encode back to the
 * same bytes (nothing is guessed at).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <callout/callout.h>

#include "record.h"
#include "fuzz.h"

static void check_str(const char *s, size_t field)
{
	size_t n = strnlen(s, field);
	CHECK(n < field);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	co_rec r;
	uint8_t again[CO_REC_ENCODED_MAX];
	char key[CO_REC_KEY_MAX];

	if (co_rec_decode(data, size, &r) < 0)
		return 0;
	CHECK(r.kind > 0 && r.kind < CO_REC_KIND_COUNT);
	CHECK(r.verdict <= CALLOUT_TEMPFAIL && r.reason < CALLOUT_R_COUNT &&
	      r.stage < CALLOUT_STAGE_COUNT);
	CHECK(r.code == 0 || (r.code >= 200 && r.code <= 599));
	check_str(r.domain, sizeof(r.domain));
	check_str(r.address, sizeof(r.address));
	check_str(r.sender, sizeof(r.sender));
	check_str(r.enhanced, sizeof(r.enhanced));
	check_str(r.text, sizeof(r.text));
	check_str(r.mx, sizeof(r.mx));
	check_str(r.ip, sizeof(r.ip));
	size_t n = co_rec_encode(&r, again);
	CHECK(n == size && memcmp(again, data, size) == 0);
	co_rec_key_of(&r, key, sizeof(key));
	return 0;
}
