/*
 * The doctor's pure parts: DNSBL query names and dates in SMTP banners.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "doctor_parse.h"

bool co_dnsbl_name(const struct sockaddr *sa, const char *zone, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b;
	size_t pos = 0;
	int n;

	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (!IN6_IS_ADDR_V4MAPPED(a)) {
			if (len < 64 + 1)
				return false;
			for (int i = 15; i >= 0; i--) {
				out[pos++] = hex[a->s6_addr[i] & 0xf];
				out[pos++] = '.';
				out[pos++] = hex[a->s6_addr[i] >> 4];
				out[pos++] = '.';
			}
			if (strlen(zone) >= len - pos)
				return false;
			memcpy(out + pos, zone, strlen(zone) + 1);
			return true;
		}
		b = a->s6_addr + 12;
	} else if (sa->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)
		        ->sin_addr;
	} else {
		return false;
	}
	n = snprintf(out, len, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
	return n >= 0 && (size_t)n < len;
}

static const char months[12][4] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

static int month_of(const char *p, const char *end)
{
	if (end - p < 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(p, months[i], 3) == 0)
			return i + 1;
	return -1;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1..max digits at *pp into *v. */
static bool digits(const char **pp, const char *end, unsigned min, unsigned max, unsigned *v)
{
	const char *p = *pp;
	unsigned n = 0;

	*v = 0;
	while (p < end && is_digit(*p) && n < max) {
		*v = *v * 10 + (unsigned)(*p - '0');
		p++;
		n++;
	}
	if (n < min || (p < end && is_digit(*p)))
		return false;
	*pp = p;
	return true;
}

static bool skip_blanks(const char **pp, const char *end)
{
	const char *p = *pp;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == *pp)
		return false;
	*pp = p;
	return true;
}

/* The zone at *pp in seconds east of UTC. */
static bool zone_of(const char *p, const char *end, long *off)
{
	static const struct {
		const char *name;
		long hours;
	} names[] = {{"UTC", 0},  {"GMT", 0},  {"UT", 0},   {"Z", 0},    {"EST", -5}, {"EDT", -4},
	             {"CST", -6}, {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};

	if (p < end && (*p == '+' || *p == '-')) {
		unsigned v;
		const char *q = p + 1;

		if (!digits(&q, end, 4, 4, &v) || v % 100 > 59 || v / 100 > 23)
			return false;
		*off = (long)(v / 100 * 3600 + v % 100 * 60) * (*p == '-' ? -1 : 1);
		return true;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i].name);

		if ((size_t)(end - p) >= n && strncasecmp(p, names[i].name, n) == 0 &&
		    ((size_t)(end - p) == n || !((p[n] | 0x20) >= 'a' && (p[n] | 0x20) <= 'z'))) {
			*off = names[i].hours * 3600;
			return true;
		}
	}
	return false;
}

/* "D Mon YYYY HH:MM[:SS] ZONE" at p. */
static bool date_at(const char *p, const char *end, long long *out)
{
	unsigned day, year, hh, mm, ss = 0;
	int mon;
	long off;

	if (!digits(&p, end, 1, 2, &day) || !skip_blanks(&p, end))
		return false;
	if ((mon = month_of(p, end)) < 0)
		return false;
	p += 3;
	if (!skip_blanks(&p, end) || !digits(&p, end, 4, 4, &year) || !skip_blanks(&p, end))
		return false;
	if (!digits(&p, end, 2, 2, &hh) || p >= end || *p++ != ':' || !digits(&p, end, 2, 2, &mm))
		return false;
	if (p < end && *p == ':' && (p++, !digits(&p, end, 2, 2, &ss)))
		return false;
	if (!skip_blanks(&p, end) || !zone_of(p, end, &off))
		return false;
	if (year < 1970 || day < 1 || day > days_in_month(year, (unsigned)mon) || hh > 23 ||
	    mm > 59 || ss > 60)
		return false;
	*out = days_from_civil(year, (unsigned)mon, day) * 86400 + hh * 3600 + mm * 60 + ss - off;
	return true;
}

bool co_banner_date(const char *text, size_t len, long long *out)
{
	const char *end = text + len;

	for (const char *p = text; p < end; p++) {
		/* a date starts with a day number not inside another number */
		if (!is_digit(*p) || (p > text && is_digit(p[-1])))
			continue;
		if (date_at(p, end, out))
			return true;
	}
	return false;
}

long long co_build_date(const char *s)
{
	const char *end = s + strlen(s), *p = s;
	unsigned day, year;
	int mon = month_of(p, end);

	if (mon < 0)
		return -1;
	p += 3;
	if (!skip_blanks(&p, end) || !digits(&p, end, 1, 2, &day) || !skip_blanks(&p, end) ||
	    !digits(&p, end, 4, 4, &year) || p != end || year < 1970 || day < 1 ||
	    day > days_in_month(year, (unsigned)mon))
		return -1;
	return days_from_civil(year, (unsigned)mon, day) * 86400;
}
