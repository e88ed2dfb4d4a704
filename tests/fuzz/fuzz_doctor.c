/*
 * libFuzzer target: the doctor's banner date parser (src/lib/doctor_parse.c)
 * on any bytes.  A date it finds is a real one: after 1970, before 10000,
 * and written back in RFC 5322 form (UTC) it parses to the same second.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "doctor_parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long long t, again;
	char buf[64];
	struct tm tm;
	time_t tt;

	if (!co_banner_date((const char *)data, size, &t))
		return 0;
	/* 1970 minus a day of zone offset, up to 9999-12-31 plus a day */
	CHECK(t >= -86400 && t < 253402387200LL);
	tt = (time_t)t;
	CHECK(gmtime_r(&tt, &tm) != NULL);
	size_t n = strftime(buf, sizeof(buf), "%d %b %Y %H:%M:%S +0000", &tm);
	CHECK(n > 0);
	if (tm.tm_year + 1900 >= 1970 && tm.tm_year + 1900 <= 9999 && tm.tm_sec < 60) {
		CHECK(co_banner_date(buf, n, &again));
		CHECK(again == t);
	}
	return 0;
}
