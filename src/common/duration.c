/*
 * Durations (duration.h).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"

bool co_duration_parse(const char *s, unsigned long long *ms)
{
	static const struct {
		const char *name;
		unsigned long long ms;
	} units[] = {{"", 1000},   {"ms", 1},      {"s", 1000},
	             {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	unsigned long long ip = 0, fp = 0, scale = 1, unit = 0;
	int idigits = 0, fdigits = 0;

	if (!s)
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (ip > (ULLONG_MAX - d) / 10)
			return false;
		ip = ip * 10 + d;
		idigits++;
	}
	if (!idigits)
		return false;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++) {
			if (++fdigits > 9)
				return false;
			fp = fp * 10 + (unsigned)(*s - '0');
			scale *= 10;
		}
		if (!fdigits)
			return false;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(s, units[i].name) == 0)
			unit = units[i].ms;
	if (!unit || (fp * unit) % scale != 0 || ip > (ULLONG_MAX - fp * unit / scale) / unit)
		return false;
	*ms = ip * unit + fp * unit / scale;
	return true;
}

const char *co_duration_format(unsigned long long ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % 86400000 == 0)
		snprintf(buf, len, "%llud", ms / 86400000);
	else if (ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(buf, len, "%llum", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%llus", ms / 1000);
	else
		snprintf(buf, len, "%llums", ms);
	return buf;
}
