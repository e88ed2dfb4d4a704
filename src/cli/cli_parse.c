/* Strict parsing of option values: no signs, no spaces, no trailing junk. */
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

void cli_errorf(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_try_help(const char *cmd)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", cmd);
	return CLI_EXIT_USAGE;
}

const char *cli_opt_name(const struct option *opts, int val)
{
	for (const struct option *o = opts; o->name; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

int cli_bad_value(const char *cmd, const struct option *opts, int opt, const char *value,
                  const char *expected)
{
	fprintf(stderr, "%s: invalid value '", cmd);
	cli_fput_escaped(stderr, value, strlen(value), false);
	fprintf(stderr, "' for --%s: %s\n", cli_opt_name(opts, opt), expected);
	return cli_try_help(cmd);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!s || !is_digit(*s))
		return false;
	for (; *s; s++) {
		unsigned d;

		if (!is_digit(*s))
			return false;
		d = (unsigned)(*s - '0');
		if (v > (ULONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_duration(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
	static const struct {
		char suffix;
		unsigned long mult;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	char digits[24];
	unsigned long v, mult = 1;
	size_t n;

	if (!s || !(n = strlen(s)) || n >= sizeof(digits))
		return false;
	memcpy(digits, s, n + 1);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (digits[n - 1] == units[i].suffix) {
			mult = units[i].mult;
			digits[--n] = '\0';
			break;
		}
	}
	if (!cli_parse_uint(digits, 0, ULONG_MAX / mult, &v))
		return false;
	v *= mult;
	if (v < min || v > max || v > UINT_MAX)
		return false;
	*out = (unsigned)v;
	return true;
}

bool cli_parse_seconds(const char *s, unsigned min_ms, unsigned max_ms, unsigned *out_ms)
{
	unsigned long long ms = 0;
	unsigned frac = 0, fdigits = 0;
	bool any = false, round_up = false;

	if (!s)
		return false;
	for (; is_digit(*s); s++) {
		ms = ms * 10 + (unsigned)(*s - '0');
		if (ms > max_ms) /* still seconds here: ms > max_ms implies s*1000 > max */
			return false;
		any = true;
	}
	if (*s == '.') {
		for (s++; is_digit(*s); s++) {
			if (fdigits < 3)
				frac = frac * 10 + (unsigned)(*s - '0');
			else if (fdigits == 3)
				round_up = *s >= '5';
			fdigits++;
			any = true;
		}
	}
	if (!any || *s)
		return false;
	for (; fdigits < 3; fdigits++)
		frac *= 10;
	ms = ms * 1000 + frac + (round_up ? 1 : 0);
	if (ms < min_ms || ms > max_ms)
		return false;
	*out_ms = (unsigned)ms;
	return true;
}

bool cli_valid_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (!s)
		return false;
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool valid_port(const char *s)
{
	unsigned long p;

	return cli_parse_uint(s, 1, 65535, &p);
}

bool cli_valid_dns_server(const char *s)
{
	char buf[INET6_ADDRSTRLEN + 16];
	unsigned char addr[sizeof(struct in6_addr)];
	const char *colon;
	size_t len;

	if (!s || strlen(s) >= sizeof(buf))
		return false;
	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (!end)
			return false;
		len = (size_t)(end - s - 1);
		memcpy(buf, s + 1, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return false;
		if (end[1] == '\0')
			return true;
		return end[1] == ':' && valid_port(end + 2);
	}
	colon = strchr(s, ':');
	if (!colon)
		return inet_pton(AF_INET, s, addr) == 1;
	if (strchr(colon + 1, ':')) /* more than one colon: a bare IPv6 address */
		return inet_pton(AF_INET6, s, addr) == 1;
	len = (size_t)(colon - s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 && valid_port(colon + 1);
}

char *cli_trim(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Remove the blanks around each comma-separated item of s in place; false
 * when an item is empty or has a blank inside. */
static bool tidy_list(char *s)
{
	char *w = s, *item = s;

	for (;;) {
		char *comma = strchr(item, ',');
		char *t;
		size_t n;

		if (comma)
			*comma = '\0';
		t = cli_trim(item);
		n = strlen(t);
		if (n == 0 || strpbrk(t, " \t\r\n"))
			return false;
		memmove(w, t, n);
		w += n;
		if (!comma)
			break;
		*w++ = ',';
		item = comma + 1;
	}
	*w = '\0';
	return true;
}

bool cli_split_route(char *line, bool allow_space, char **domain, char **hosts)
{
	char *sep = strchr(line, '=');
	char *d, *h;

	if (!sep && allow_space)
		sep = strpbrk(line, " \t");
	if (!sep)
		return false;
	*sep = '\0';
	d = cli_trim(line);
	h = sep + 1;
	if (!*d || strpbrk(d, " \t") || !tidy_list(h))
		return false;
	*domain = d;
	*hosts = h;
	return true;
}
