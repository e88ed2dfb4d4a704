/* Strict parsing of option values: no signs, no spaces, no trailing junk. */
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"
#include "duration.h"
#include "hostport.h"

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

bool cli_parse_ms(const char *s, unsigned long long min_ms, unsigned long long max_ms,
                  bool whole_seconds, unsigned long long *out_ms)
{
	unsigned long long ms;

	if (!co_duration_parse(s, &ms) || ms < min_ms || ms > max_ms ||
	    (whole_seconds && ms % 1000 != 0))
		return false;
	*out_ms = ms;
	return true;
}

bool cli_valid_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (!s)
		return false;
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool cli_valid_dns_server(const char *s)
{
	co_hostport hp;

	return co_hostport_parse(s, CO_HP_NUMERIC | CO_HP_BARE_V6, &hp) == NULL;
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
