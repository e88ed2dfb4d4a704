/*
 * calloutd.conf: reading, checking and querying the configuration
 * (config.h; every key is described in calloutd.conf(5)).
 *
 * libinih splits "key = value" lines, but the lines reach it through our
 * own reader, which is strict where inih (as Debian builds it) is not:
 *
 *   - a line that does not fit inih's buffer is an error, not two lines;
 *   - control characters (NUL, a lone CR, ...) are errors; CRLF is fine;
 *   - section headers are parsed here (inih keeps 49 characters of a
 *     section name and ignores text after the ']'), so [domain NAME] can
 *     hold any domain;
 *   - an indented line is a continuation of the key line right above it
 *     (inih's multi-line mode, which would also continue after blank
 *     lines and turn an indented "key = value" into part of the previous
 *     value): allowed only for lists, an error anywhere else;
 *   - a key line without '=' is reported here, at its line, so the first
 *     error in the file is the one reported.
 *
 * Parsing stops at the first error; the message is
 * "FILE:LINE: [section] key: what is wrong".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "option_table.h"
#include "proxy.h"
#include "duration.h"
#include "hostport.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define CONFIG_FILE_MAX   (1024 * 1024) /* bytes */
#define FE_CONN_MAX       100000        /* front-end connections: more than any fd limit */
#define FE_TIMEOUT_MAX    3600000       /* ms: a front end's request deadline */
#define DOMAINS_MAX       10000         /* [domain] sections */
#define PROXIES_MAX       100           /* [proxy] sections */
#define ITEM_MAX          300           /* one list item */
#define REPLY_WITHIN_MAX  300000u
#define DEFAULT_STATE_DIR CALLOUT_STATE_DIR /* meson: -Dstatedir */

/* ---- small helpers ---------------------------------------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_print(char c)
{
	return c >= 0x20 && c < 0x7f;
}

static bool all_print(const char *s)
{
	for (; *s; s++)
		if (!is_print(*s))
			return false;
	return true;
}

static bool has_blank(const char *s)
{
	return strpbrk(s, " \t") != NULL;
}

/* An absolute path without blanks (the reader already refused control
 * characters; UTF-8 is fine). */
static bool valid_path(const char *s)
{
	return s[0] == '/' && !has_blank(s);
}

/* Digits only (no sign, no blanks), within [min, max]. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!is_digit(*s))
		return false;
	for (; *s; s++) {
		if (!is_digit(*s))
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (ULONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_port(const char *s, unsigned *port)
{
	unsigned long v;

	if (!parse_uint(s, 1, 65535, &v))
		return false;
	*port = (unsigned)v;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Letters, digits and hyphens in dot-separated labels of 1 to 63
 * characters, at most 253 in all (no trailing dot). */
static bool valid_hostname(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
		} else if (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '-') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

static bool is_ip(int family, const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(family, s, buf) == 1;
}

static bool is_any_ip(const char *s)
{
	return is_ip(AF_INET, s) || is_ip(AF_INET6, s);
}

/* A domain as written in the file: ASCII, lower-cased in place, one
 * trailing dot dropped.  A dotted-quad is not a domain. */
static const char *normalise_domain(char *d)
{
	size_t n = strlen(d);

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)d[i] >= 0x80)
			return "not ASCII: write an internationalised domain as its A-label "
			       "(xn--...)";
		d[i] = lower(d[i]);
	}
	if (n > 1 && d[n - 1] == '.')
		d[--n] = '\0';
	if (!valid_hostname(d) || is_ip(AF_INET, d))
		return "expected a domain name (letters, digits, hyphens and dots)";
	return NULL;
}

/* local@domain, ASCII; the domain is lower-cased in place.  NULL or why not. */
static const char *normalise_address(char *a)
{
	char *at = strrchr(a, '@');
	size_t local;

	if (!at)
		return "expected an address local@domain";
	local = (size_t)(at - a);
	if (local == 0 || local > 64)
		return "the local part must have 1 to 64 characters";
	for (size_t i = 0; i < local; i++) {
		char c = a[i];
		if (!is_print(c) || c == ' ' || c == '"' || c == ',' || c == '<' || c == '>' ||
		    c == '@' || c == '\\')
			return "the local part must be printable ASCII without blanks, quotes, "
			       "commas, '<', '>', '\\' or '@'";
	}
	if (a[0] == '.' || at[-1] == '.' || strstr(a, ".."))
		return "misplaced '.' in the local part";
	return normalise_domain(at + 1);
}

/* ---- parsing state ---------------------------------------------------- */

enum sect {
	S_NONE = 0,
	S_DAEMON,
	S_ENGINE,
	S_CACHE,
	S_VERIFY,
	S_POLICY,
	S_MILTER,
	S_HTTP,
	S_DOMAIN,
	S_DOCTOR,
	S_PROXY
};

static const char *const sect_names[] = {
    [S_NONE] = "",         [S_DAEMON] = "daemon", [S_ENGINE] = "engine", [S_CACHE] = "cache",
    [S_VERIFY] = "verify", [S_POLICY] = "policy", [S_MILTER] = "milter", [S_HTTP] = "http",
    [S_DOMAIN] = "domain", [S_DOCTOR] = "doctor", [S_PROXY] = "proxy",
};

struct pst;
struct keydef;
typedef bool (*setter)(struct pst *st, const struct keydef *k, char *v, bool more);

struct keydef {
	enum sect sect;
	const char *name;
	setter set;
	size_t off;             /* in cd_config, cd_domain (S_DOMAIN) or cd_proxy (S_PROXY) */
	size_t size;            /* strings: the field's size */
	unsigned long min, max; /* numbers: limits (durations: in ms) */
	bool list;              /* may continue on indented lines */
};

struct pst {
	cd_config *c;
	const char *name;    /* for messages */
	const char *p, *end; /* what is left of the input */
	unsigned line;
	enum sect sect;
	char sect_label[300]; /* "daemon", "domain example.org" */
	cd_domain *dom, **dom_tail;
	size_t ndomains;
	cd_proxy *px, **px_tail;
	size_t nproxies;
	unsigned sect_line[ARRAY_LEN(sect_names)];
	unsigned *key_line; /* per key: where it was set in this section */
	const struct keydef *cur_key;
	const co_optdef *cur_opt;      /* or the option table's key */
	unsigned opt_line[CO_OPT_MAX]; /* per table key: where it was set */
	bool can_continue;             /* the line above is a key or continuation line */
	bool cont;                     /* this line is a continuation */
	bool listen_none;              /* listen = none, no continuation then */
	bool failed;
	bool nomem; /* failed for want of memory, not for the file */
	char *err;
	size_t errlen;
	/* resolved at the end */
	unsigned state_dir_line;
	bool cache_set;
	unsigned socket_mode;
};

/* snprintf() that may truncate (error messages). */
static void errorf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errorf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static bool fail(struct pst *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct pst *st, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (st->failed)
		return false;
	st->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (st->err && st->errlen)
		errorf(st->err, st->errlen, "%s:%u: %s", st->name, st->line, msg);
	return false;
}

#define KFAIL(st, k, fmt, ...) fail(st, "[%s] %s: " fmt, (st)->sect_label, (k)->name, __VA_ARGS__)

static void *field(struct pst *st, const struct keydef *k)
{
	return (k->sect == S_DOMAIN  ? (char *)st->dom
	        : k->sect == S_PROXY ? (char *)st->px
	                             : (char *)st->c) +
	       k->off;
}

/* ---- value setters ---------------------------------------------------- */

static bool copy_str(struct pst *st, const struct keydef *k, char *dst, size_t size, const char *v)
{
	size_t n = strlen(v);

	if (n >= size)
		return KFAIL(st, k, "too long (at most %zu characters)", size - 1);
	memcpy(dst, v, n + 1);
	return true;
}

static bool set_bool(struct pst *st, const struct keydef *k, char *v, bool more)
{
	if (!parse_bool(v, field(st, k)))
		return KFAIL(st, k, "expected yes or no, got '%s'", v);
	return true;
}

static bool set_uint(struct pst *st, const struct keydef *k, char *v, bool more)
{
	unsigned long n;

	if (!parse_uint(v, k->min, k->max, &n))
		return KFAIL(st, k, "expected a whole number from %lu to %lu, got '%s'", k->min,
		             k->max, v);
	*(unsigned *)field(st, k) = (unsigned)n;
	return true;
}

/* A duration stored in milliseconds. */
static bool set_ms(struct pst *st, const struct keydef *k, char *v, bool more)
{
	unsigned long long ms;
	char lo[24], hi[24];

	if (!co_duration_parse(v, &ms) || ms < k->min || ms > k->max)
		return KFAIL(st, k,
		             "expected a duration from %s to %s (e.g. 30s, 1.5s, 500ms), got '%s'",
		             co_duration_format(k->min, lo, sizeof(lo)),
		             co_duration_format(k->max, hi, sizeof(hi)), v);
	*(unsigned *)field(st, k) = (unsigned)ms;
	return true;
}

/* One of a few words (case-insensitive) -> an int field. */
struct word {
	const char *name;
	int value;
};

static bool set_word(struct pst *st, const struct keydef *k, const char *v,
                     const struct word *words, size_t n, int *out)
{
	char expected[160] = "";
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(v, words[i].name) == 0) {
			*out = words[i].value;
			return true;
		}
		int w = snprintf(expected + len, sizeof(expected) - len, "%s%s",
		                 i == 0       ? ""
		                 : i + 1 == n ? " or "
		                              : ", ",
		                 words[i].name);
		if (w > 0 && (size_t)w < sizeof(expected) - len)
			len += (size_t)w;
	}
	return KFAIL(st, k, "expected %s, got '%s'", expected, v);
}

static const struct word mode_words[] = {
    {"enforce", CD_MODE_ENFORCE}, {"tag", CD_MODE_TAG}, {"dry-run", CD_MODE_DRY_RUN}};

static bool set_mode(struct pst *st, const struct keydef *k, char *v, bool more)
{
	int m;

	if (!set_word(st, k, v, mode_words, ARRAY_LEN(mode_words), &m))
		return false;
	if (k->sect == S_DOMAIN) {
		st->dom->mode = (cd_mode)m;
		st->dom->has_mode = true;
	} else {
		st->c->mode = (cd_mode)m;
	}
	return true;
}

static bool set_log(struct pst *st, const struct keydef *k, char *v, bool more)
{
	static const struct word w[] = {{"syslog", 0}, {"stderr", 1}};
	int x;

	if (!set_word(st, k, v, w, ARRAY_LEN(w), &x))
		return false;
	st->c->log_stderr = x;
	return true;
}

static bool set_log_level(struct pst *st, const struct keydef *k, char *v, bool more)
{
	static const struct word w[] = {{"info", 0}, {"debug", 1}};
	int x;

	if (!set_word(st, k, v, w, ARRAY_LEN(w), &x))
		return false;
	st->c->debug = x;
	return true;
}

/* The names log.c knows. */
static bool set_facility(struct pst *st, const struct keydef *k, char *v, bool more)
{
	static const struct word w[] = {{"mail", 0},   {"daemon", 0}, {"user", 0},   {"local0", 0},
	                                {"local1", 0}, {"local2", 0}, {"local3", 0}, {"local4", 0},
	                                {"local5", 0}, {"local6", 0}, {"local7", 0}};
	int x;

	if (!set_word(st, k, v, w, ARRAY_LEN(w), &x))
		return false;
	for (char *p = v; *p; p++)
		*p = lower(*p);
	return copy_str(st, k, st->c->syslog_facility, sizeof(st->c->syslog_facility), v);
}

static bool set_sender_at(struct pst *st, const struct keydef *k, char *v, bool more)
{
	static const struct word w[] = {
	    {"mail", CD_AT_MAIL}, {"rcpt", CD_AT_RCPT}, {"data", CD_AT_DATA}};
	int x;

	if (!set_word(st, k, v, w, ARRAY_LEN(w), &x))
		return false;
	st->c->milter_sender_at = x;
	return true;
}

static bool set_action(struct pst *st, const struct keydef *k, char *v, bool more)
{
	static const struct word w[] = {
	    {"default", CD_DOM_DEFAULT}, {"skip", CD_DOM_SKIP}, {"verify", CD_DOM_VERIFY}};
	int x;

	if (!set_word(st, k, v, w, ARRAY_LEN(w), &x))
		return false;
	st->dom->action = (cd_domain_action)x;
	return true;
}

static bool set_user(struct pst *st, const struct keydef *k, char *v, bool more)
{
	for (const char *p = v; *p; p++)
		if (!is_alpha(*p) && !is_digit(*p) && *p != '_' && *p != '.' && *p != '-')
			return KFAIL(
			    st, k,
			    "expected a user name (letters, digits, '_', '.', '-'), got '%s'", v);
	if (v[0] == '-')
		return KFAIL(st, k, "a user name cannot start with '-', got '%s'", v);
	return copy_str(st, k, field(st, k), k->size, v);
}

static bool set_state_dir(struct pst *st, const struct keydef *k, char *v, bool more)
{
	size_t n = strlen(v);

	if (!valid_path(v))
		return KFAIL(st, k, "expected an absolute path without blanks, got '%s'", v);
	while (n > 1 && v[n - 1] == '/')
		v[--n] = '\0';
	st->state_dir_line = st->line;
	return copy_str(st, k, st->c->state_dir, sizeof(st->c->state_dir), v);
}

static bool set_helo(struct pst *st, const struct keydef *k, char *v, bool more)
{
	size_t n = strlen(v);
	bool ok = !*v || valid_hostname(v);

	if (!ok && n > 2 && v[0] == '[' && v[n - 1] == ']') {
		char lit[64];
		if (n - 2 < sizeof(lit)) {
			memcpy(lit, v + 1, n - 2);
			lit[n - 2] = '\0';
			ok = is_ip(AF_INET, lit) ||
			     (strncasecmp(lit, "IPv6:", 5) == 0 && is_ip(AF_INET6, lit + 5));
		}
	}
	if (!ok)
		return KFAIL(st, k,
		             "expected a host name or an address literal [192.0.2.1], got '%s'", v);
	if (v[0] != '[')
		for (char *p = v; *p; p++)
			*p = lower(*p);
	return copy_str(st, k, st->c->helo, sizeof(st->c->helo), v);
}

/* "<a@b>" -> "a@b". */
static char *strip_angles(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static bool set_sender(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool fallback = strcmp(k->name, "fallback_sender") == 0;
	const char *why;

	if (fallback && strcmp(v, "<>") == 0)
		return KFAIL(st, k, "%s",
		             "<> is not a fallback (the first try already uses the "
		             "null sender); leave it empty for none");
	v = strip_angles(v);
	if (*v && (why = normalise_address(v)))
		return KFAIL(st, k, "%s, got '%s'", why, v);
	return copy_str(st, k, field(st, k), k->size, v);
}

static bool set_proxy(struct pst *st, const struct keydef *k, char *v, bool more)
{
	unsigned n;
	const char *why = *v ? co_proxy_parse_list(v, &n) : NULL;
	char shown[600];

	if (why)
		return KFAIL(st, k, "%s, got '%s'", why, co_proxy_redact(v, shown, sizeof(shown)));
	return copy_str(st, k, st->c->proxy, sizeof(st->c->proxy), v);
}

static bool set_source(struct pst *st, const struct keydef *k, char *v, bool more)
{
	if (*v && !is_any_ip(v))
		return KFAIL(st, k, "expected a local IPv4 or IPv6 address, got '%s'", v);
	return copy_str(st, k, st->c->source_address, sizeof(st->c->source_address), v);
}

static bool set_cache(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool ok;

	if (strcasecmp(v, "none") == 0 || strcasecmp(v, "memory") == 0) {
		for (char *p = v; *p; p++)
			*p = lower(*p);
		ok = true;
	} else if (strncmp(v, "lmdb:", 5) == 0) {
		ok = valid_path(v + 5);
	} else if (strncmp(v, "redis://", 8) == 0) {
		ok = v[8] && !has_blank(v);
	} else if (strncmp(v, "rediss://", 9) == 0) {
		return KFAIL(st, k, "%s",
		             "rediss:// (Redis over TLS) is not supported: this build's hiredis "
		             "has no TLS; use redis:// over a TLS tunnel (e.g. stunnel) or a "
		             "trusted network");
	} else {
		ok = false;
	}
	if (!ok) {
		char shown[256]; /* never echo a password */
		return KFAIL(st, k,
		             "expected lmdb:/PATH, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
		             "[?prefix=P], memory or none, got '%s'",
		             callout_cache_spec_redact(v, shown, sizeof(shown)));
	}
	st->cache_set = true;
	return copy_str(st, k, st->c->cache, sizeof(st->c->cache), v);
}

/* ---- lists ------------------------------------------------------------ */

/*
 * The next item of a list: items are separated by commas and/or blanks.
 * *pp advances; false at the end.  An item longer than the buffer is an
 * error (*bad set).
 */
static bool next_item(char **pp, char *item, size_t size, bool *bad)
{
	char *p = *pp;
	size_t n = 0;

	while (*p == ',' || is_blank(*p))
		p++;
	if (!*p)
		return false;
	while (*p && *p != ',' && !is_blank(*p)) {
		if (n + 1 >= size) {
			*bad = true;
			return false;
		}
		item[n++] = *p++;
	}
	item[n] = '\0';
	*pp = p;
	return true;
}

#define FOR_ITEMS(st, k, v, item)                                                                  \
	for (char *p_ = (v), item[ITEM_MAX]; next_item(&p_, item, sizeof(item), &bad_);)

/* Append an item to a comma-separated string list. */
static bool append_item(struct pst *st, const struct keydef *k, char *list, size_t size,
                        const char *item)
{
	size_t have = strlen(list), n = strlen(item);

	if (have + (have ? 1 : 0) + n >= size)
		return KFAIL(st, k, "the list is too long (at most %zu characters)", size - 1);
	if (have)
		list[have++] = ',';
	memcpy(list + have, item, n + 1);
	return true;
}

static bool item_too_long(struct pst *st, const struct keydef *k)
{
	return KFAIL(st, k, "a list item is longer than %d characters", ITEM_MAX - 1);
}

/* "IP[:PORT]", "[IPv6]:PORT" or a bare IPv6 address (c-ares' syntax). */
static bool valid_dns_server(const char *s)
{
	co_hostport hp;

	return co_hostport_parse(s, CO_HP_NUMERIC | CO_HP_BARE_V6, &hp) == NULL;
}

static bool set_dns_servers(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;

	if (!more)
		st->c->dns_servers[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if (!valid_dns_server(item))
			return KFAIL(st, k, "expected IPv4[:PORT], IPv6 or [IPv6]:PORT, got '%s'",
			             item);
		if (!append_item(st, k, st->c->dns_servers, sizeof(st->c->dns_servers), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

/* HOST[:PORT]: a host name (put in lower case), an IPv4 address or
 * [IPv6]. */
static bool valid_route_host(char *s)
{
	co_hostport hp;

	if (co_hostport_parse(s, 0, &hp))
		return false;
	if (hp.kind == CO_HOST_NAME)
		memcpy(s, hp.host, strlen(hp.host));
	return true;
}

static bool set_route(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;

	if (!more)
		st->dom->route[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if (!valid_route_host(item))
			return KFAIL(st, k,
			             "expected HOST[:PORT] (a host name, an IPv4 address or "
			             "[IPv6]), got '%s'",
			             item);
		if (!append_item(st, k, st->dom->route, sizeof(st->dom->route), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

/* What a proxy pool's name may be: a word the HTTP API and the logs
 * show as it is. */
static const char *bad_proxy_name(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 63)
		return "expected a name of 1 to 63 letters, digits, '-', '_' or '.'";
	if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
		return "expected a name of letters, digits, '-', '_' or '.'";
	return NULL;
}

static bool set_proxy_name(struct pst *st, const struct keydef *k, char *v, bool more)
{
	const char *why = bad_proxy_name(v);

	if (why)
		return KFAIL(st, k, "%s, got '%s'", why, v);
	return copy_str(st, k, field(st, k), k->size, v);
}

static bool set_proxy_url(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;
	char shown[600];
	co_proxy px;
	const char *why;

	if (!more)
		st->px->url[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if ((why = co_proxy_parse(item, &px)))
			return KFAIL(st, k, "%s, got '%s'", why,
			             co_proxy_redact(item, shown, sizeof(shown)));
		if (!append_item(st, k, st->px->url, sizeof(st->px->url), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

static bool set_skip_senders(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;
	const char *why;

	if (!more)
		st->c->skip_senders[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		char *a = strip_angles(item);
		if ((why = normalise_address(a)))
			return KFAIL(st, k, "%s, got '%s'", why, a);
		if (!append_item(st, k, st->c->skip_senders, sizeof(st->c->skip_senders), a))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

static bool set_skip_domains(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;
	const char *why;

	if (!more)
		st->c->skip_domains[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if ((why = normalise_domain(item)))
			return KFAIL(st, k, "%s, got '%s'", why, item);
		if (!append_item(st, k, st->c->skip_domains, sizeof(st->c->skip_domains), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

/* "ADDR[/PREFIX]" (IPv6 may be in brackets); host bits are cleared. */
static bool parse_net(char *s, cd_net *net)
{
	char *slash = strchr(s, '/'), *addr = s;
	unsigned long prefix;
	size_t n;

	memset(net, 0, sizeof(*net));
	if (slash)
		*slash = '\0';
	n = strlen(addr);
	if (n > 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr[n - 1] = '\0';
		addr++;
		if (!is_ip(AF_INET6, addr))
			return false;
	}
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6;
	else
		return false;
	prefix = net->family == AF_INET ? 32 : 128;
	if (slash && !parse_uint(slash + 1, 0, prefix, &prefix))
		return false;
	net->prefix = (unsigned)prefix;
	for (unsigned bit = net->prefix; bit < 128; bit++)
		net->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	return true;
}

static bool set_skip_networks(struct pst *st, const struct keydef *k, char *v, bool more)
{
	cd_config *c = st->c;
	bool bad_ = false;

	if (!more)
		c->nskip_networks = 0;
	FOR_ITEMS(st, k, v, item)
	{
		char copy[ITEM_MAX];
		cd_net net;

		strcpy(copy, item);
		if (!parse_net(item, &net))
			return KFAIL(st, k,
			             "expected ADDRESS or ADDRESS/PREFIX (IPv4 or IPv6), got '%s'",
			             copy);
		if (c->nskip_networks >= ARRAY_LEN(c->skip_networks))
			return KFAIL(st, k, "too many networks (at most %zu)",
			             ARRAY_LEN(c->skip_networks));
		c->skip_networks[c->nskip_networks++] = net;
	}
	return bad_ ? item_too_long(st, k) : true;
}

static bool set_unknown_reject(struct pst *st, const struct keydef *k, char *v, bool more)
{
	cd_config *c = st->c;
	bool bad_ = false;

	if (!more)
		c->nunknown_reject = 0;
	FOR_ITEMS(st, k, v, item)
	{
		int r = -1;
		for (int i = CALLOUT_R_CATCH_ALL; i <= CALLOUT_R_REJECTED; i++)
			if (strcasecmp(item, callout_reason_name((callout_reason)i)) == 0)
				r = i;
		if (strcasecmp(item, callout_reason_name(CALLOUT_R_PRIVATE_ADDRESS)) == 0)
			r = CALLOUT_R_PRIVATE_ADDRESS;
		if (r < 0)
			return KFAIL(
			    st, k,
			    "expected reasons of the unknown verdict (catch_all, policy_block, "
			    "null_sender_rejected, smtputf8_unsupported, mailbox_full, "
			    "rejected, private_address), got '%s'",
			    item);
		bool dup = false;
		for (size_t i = 0; i < c->nunknown_reject; i++)
			dup |= c->unknown_reject[i] == (callout_reason)r;
		if (!dup)
			c->unknown_reject[c->nunknown_reject++] = (callout_reason)r;
	}
	return bad_ ? item_too_long(st, k) : true;
}

/* "unix:/path", "inet:IPv4:PORT" or "inet:[IPv6]:PORT". */
static const char *parse_listen(const char *s, bool unix_ok, cd_listen *l)
{
	memset(l, 0, sizeof(*l));
	if (strncmp(s, "unix:", 5) == 0) {
		if (!unix_ok)
			return "only inet:HOST:PORT sockets here";
		if (s[5] != '/')
			return "expected unix:/ABSOLUTE/PATH";
		if (strlen(s + 5) >= sizeof(l->path))
			return "socket path too long (at most 107 characters)";
		l->is_unix = true;
		l->mode = 0660;
		strcpy(l->path, s + 5);
		return NULL;
	}
	if (strncmp(s, "inet:", 5) != 0)
		return unix_ok ? "expected unix:/PATH, inet:IPv4:PORT or inet:[IPv6]:PORT"
		               : "expected inet:IPv4:PORT or inet:[IPv6]:PORT";
	co_hostport hp;
	const char *why = co_hostport_parse(s + 5, CO_HP_NUMERIC | CO_HP_NEED_PORT, &hp);
	if (why)
		return why;
	if (strlen(hp.host) >= sizeof(l->host))
		return "the address is too long";
	memcpy(l->host, hp.host, strlen(hp.host) + 1);
	l->port = hp.port;
	return NULL;
}

static bool set_listen(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool http = k->sect == S_HTTP, bad_ = false;
	cd_listen *arr = http ? st->c->http_listen : st->c->policy_listen;
	size_t *n = http ? &st->c->nhttp_listen : &st->c->npolicy_listen;

	if (!more) {
		*n = 0;
		memset(arr, 0, sizeof(cd_listen) * CD_LISTEN_MAX);
		st->listen_none = strcasecmp(v, "none") == 0;
		if (st->listen_none)
			return true;
	}
	if (st->listen_none)
		return KFAIL(st, k, "%s", "'none' cannot be combined with sockets");
	FOR_ITEMS(st, k, v, item)
	{
		const char *why;
		if (strcasecmp(item, "none") == 0)
			return KFAIL(st, k, "%s", "'none' cannot be combined with sockets");
		if (*n >= CD_LISTEN_MAX)
			return KFAIL(st, k, "too many sockets (at most %d)", CD_LISTEN_MAX);
		if ((why = parse_listen(item, !http, &arr[*n])))
			return KFAIL(st, k, "%s, got '%s'", why, item);
		(*n)++;
	}
	return bad_ ? item_too_long(st, k) : true;
}

static bool set_socket_mode(struct pst *st, const struct keydef *k, char *v, bool more)
{
	unsigned long m = 0;
	const char *p = v;

	for (; *p >= '0' && *p <= '7'; p++)
		m = m * 8 + (unsigned)(*p - '0');
	if (p == v || *p || p - v > 4 || m > 0777)
		return KFAIL(st, k, "expected an octal mode from 0 to 0777 (e.g. 0660), got '%s'",
		             v);
	st->socket_mode = (unsigned)m;
	return true;
}

/* libmilter's socket syntax, checked. */
static const char *check_milter_listen(const char *s)
{
	const char *p;
	int family;

	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		p = strchr(s, ':') + 1;
		if (!valid_path(p))
			return "expected unix:/ABSOLUTE/PATH";
		if (strlen(p) >= 108)
			return "socket path too long (at most 107 characters)";
		return NULL;
	}
	if (strncmp(s, "inet:", 5) == 0) {
		p = s + 5;
		family = AF_INET;
	} else if (strncmp(s, "inet6:", 6) == 0) {
		p = s + 6;
		family = AF_INET6;
	} else {
		return "expected unix:/PATH, local:/PATH, inet:PORT[@HOST] or inet6:PORT[@HOST]";
	}
	char port[8];
	const char *at = strchr(p, '@');
	size_t n = at ? (size_t)(at - p) : strlen(p);
	unsigned pn;
	if (n >= sizeof(port))
		return "expected a port from 1 to 65535";
	memcpy(port, p, n);
	port[n] = '\0';
	if (!parse_port(port, &pn))
		return "expected a port from 1 to 65535";
	if (!at)
		return NULL;
	char host[256];
	const char *h = at + 1;
	n = strlen(h);
	if (n >= sizeof(host) || n == 0)
		return "expected a host after '@'";
	if (h[0] == '[' && n > 2 && h[n - 1] == ']') {
		memcpy(host, h + 1, n - 2);
		host[n - 2] = '\0';
		return is_ip(family, host) ? NULL : "expected a numeric address in the brackets";
	}
	if (is_ip(family, h) || (valid_hostname(h) && !is_ip(AF_INET, h)))
		return NULL;
	return family == AF_INET ? "expected an IPv4 address or a host name after '@'"
	                         : "expected an IPv6 address or a host name after '@'";
}

static bool set_milter_listen(struct pst *st, const struct keydef *k, char *v, bool more)
{
	const char *why;

	if (strcasecmp(v, "none") == 0)
		v[0] = '\0';
	if (*v && (why = check_milter_listen(v)))
		return KFAIL(st, k, "%s, got '%s'", why, v);
	return copy_str(st, k, st->c->milter_listen, sizeof(st->c->milter_listen), v);
}

/* A secret: printable ASCII without blanks. */
static bool copy_secret(struct pst *st, const struct keydef *k, char *dst, size_t size,
                        const char *v)
{
	for (const char *p = v; *p; p++)
		if (!is_print(*p) || *p == ' ')
			return KFAIL(st, k, "%s", "expected printable ASCII without blanks");
	return copy_str(st, k, dst, size, v);
}

static bool set_token(struct pst *st, const struct keydef *k, char *v, bool more)
{
	(void)more;
	return copy_secret(st, k, st->c->http_token, sizeof(st->c->http_token), v);
}

static bool set_webhook_secret(struct pst *st, const struct keydef *k, char *v, bool more)
{
	(void)more;
	return copy_secret(st, k, st->c->http_webhook_secret, sizeof(st->c->http_webhook_secret),
	                   v);
}

/* [doctor] dnsbl: blocklist zones, normalised. */
static bool set_doctor_dnsbl(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;
	const char *why;

	if (!more)
		st->c->doctor_dnsbl[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if ((why = normalise_domain(item)))
			return KFAIL(st, k, "%s, got '%s'", why, item);
		if (!append_item(st, k, st->c->doctor_dnsbl, sizeof(st->c->doctor_dnsbl), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

/* [doctor] domain: the default target of GET /v1/doctor. */
static bool set_doctor_domain(struct pst *st, const struct keydef *k, char *v, bool more)
{
	const char *why;

	if (*v && (why = normalise_domain(v)))
		return KFAIL(st, k, "%s, got '%s'", why, v);
	return copy_str(st, k, st->c->doctor_domain, sizeof(st->c->doctor_domain), v);
}

/* ---- replies ---------------------------------------------------------- */

static const char *const placeholders[] = {"address", "reason", "verdict", "code", "text"};

/*
 * "CODE [X.Y.Z] text" with CODE klass[0-5][0-9], X == klass, text
 * printable ASCII in which every '$' starts a known placeholder.
 */
static bool parse_reply(struct pst *st, const struct keydef *k, const char *v, int klass,
                        cd_reply *out)
{
	cd_reply r;
	const char *p = v;

	memset(&r, 0, sizeof(r));
	if (!is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2]) || (p[3] && !is_blank(p[3])) ||
	    p[0] - '0' != klass || p[1] > '5')
		return KFAIL(st, k,
		             "expected \"%d.. [%d.X.Y] text\" with a %dxx reply code, got '%s'",
		             klass, klass, klass, v);
	r.code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	p += 3;
	while (is_blank(*p))
		p++;
	if (is_digit(p[0]) && p[1] == '.') {
		size_t n = strcspn(p, " \t"), i = 2, d1 = 0, d2 = 0;
		bool ok;

		for (; i < n && is_digit(p[i]); i++)
			d1++;
		ok = d1 >= 1 && d1 <= 3 && i < n && p[i] == '.';
		if (ok)
			for (i++; i < n && is_digit(p[i]); i++)
				d2++;
		ok = ok && d2 >= 1 && d2 <= 3 && i == n;
		if (!ok)
			return KFAIL(st, k,
			             "bad enhanced status code '%.*s' (expected %d.X.Y, X and Y "
			             "of 1 to 3 digits)",
			             (int)(n < 20 ? n : 20), p, klass);
		if (p[0] - '0' != klass)
			return KFAIL(st, k,
			             "the enhanced status code of a %dxx reply must start with "
			             "%d., got '%.*s'",
			             klass, klass, (int)n, p);
		memcpy(r.enhanced, p, n); /* at most 9 characters */
		r.enhanced[n] = '\0';
		p += n;
		while (is_blank(*p))
			p++;
	}
	if (!*p)
		return KFAIL(st, k, "the reply has no text after the code, got '%s'", v);
	if (!all_print(p))
		return KFAIL(st, k, "%s", "the text must be printable ASCII");
	for (const char *d = strchr(p, '$'); d; d = strchr(d + 1, '$')) {
		size_t n = 0;
		bool known = false;
		while (is_alpha(d[1 + n]) || is_digit(d[1 + n]) || d[1 + n] == '_')
			n++;
		for (size_t i = 0; i < ARRAY_LEN(placeholders); i++)
			known |=
			    strlen(placeholders[i]) == n && strncmp(d + 1, placeholders[i], n) == 0;
		if (!known)
			return KFAIL(
			    st, k,
			    "unknown placeholder '$%.*s' (known: $address, $reason, $verdict, "
			    "$code, $text)",
			    (int)(n < 40 ? n : 40), d + 1);
	}
	if (strlen(p) >= sizeof(r.text))
		return KFAIL(st, k, "the text is too long (at most %zu characters)",
		             sizeof(r.text) - 1);
	strcpy(r.text, p);
	*out = r;
	return true;
}

static bool set_reject(struct pst *st, const struct keydef *k, char *v, bool more)
{
	return parse_reply(st, k, v, 5, field(st, k));
}

static bool set_defer(struct pst *st, const struct keydef *k, char *v, bool more)
{
	return parse_reply(st, k, v, 4, field(st, k));
}

/* ---- the keys --------------------------------------------------------- */

#define C(f) offsetof(cd_config, f)
#define STR(s, n, fn)                                                                              \
	{                                                                                          \
		s, #n, fn, C(n), sizeof(((cd_config *)0)->n), 0, 0, false                          \
	}
#define BOOL(s, n)                                                                                 \
	{                                                                                          \
		s, #n, set_bool, C(n), 0, 0, 0, false                                              \
	}
#define UINT(s, n, f, lo, hi)                                                                      \
	{                                                                                          \
		s, n, set_uint, C(f), 0, lo, hi, false                                             \
	}
#define MS(s, n, f, lo, hi)                                                                        \
	{                                                                                          \
		s, n, set_ms, C(f), 0, lo, hi, false                                               \
	}
#define LIST(s, n, fn)                                                                             \
	{                                                                                          \
		s, n, fn, 0, 0, 0, 0, true                                                         \
	}
#define REPLY(s, n, fn)                                                                            \
	{                                                                                          \
		s, #n, fn, C(n), 0, 0, 0, false                                                    \
	}

static const struct keydef keys[] = {
    STR(S_DAEMON, user, set_user),
    STR(S_DAEMON, state_dir, set_state_dir),
    {S_DAEMON, "log", set_log, 0, 0, 0, 0, false},
    STR(S_DAEMON, syslog_facility, set_facility),
    {S_DAEMON, "log_level", set_log_level, 0, 0, 0, 0, false},
    {S_DAEMON, "mode", set_mode, 0, 0, 0, 0, false},
    MS(S_DAEMON, "reply_within", reply_within_ms, 1, REPLY_WITHIN_MAX),
    UINT(S_DAEMON, "max_inflight", max_inflight, 1, 1000000),

    STR(S_ENGINE, helo, set_helo),
    STR(S_ENGINE, sender, set_sender),
    STR(S_ENGINE, fallback_sender, set_sender),
    STR(S_ENGINE, source_address, set_source),
    STR(S_ENGINE, proxy, set_proxy),
    LIST(S_ENGINE, "dns_servers", set_dns_servers),

    STR(S_CACHE, cache, set_cache),

    BOOL(S_VERIFY, verify_sender),
    BOOL(S_VERIFY, verify_recipient),
    LIST(S_VERIFY, "skip_networks", set_skip_networks),
    LIST(S_VERIFY, "skip_senders", set_skip_senders),
    LIST(S_VERIFY, "skip_domains", set_skip_domains),
    BOOL(S_VERIFY, defer_ok),
    LIST(S_VERIFY, "unknown_reject", set_unknown_reject),
    REPLY(S_VERIFY, sender_reject, set_reject),
    REPLY(S_VERIFY, sender_defer, set_defer),
    REPLY(S_VERIFY, recipient_reject, set_reject),
    REPLY(S_VERIFY, recipient_defer, set_defer),
    REPLY(S_VERIFY, in_progress, set_defer),

    LIST(S_POLICY, "listen", set_listen),
    {S_POLICY, "socket_mode", set_socket_mode, 0, 0, 0, 0, false},
    /* front-end limits */
    UINT(S_POLICY, "max_connections", policy_max_connections, 1, FE_CONN_MAX),
    UINT(S_POLICY, "max_client_connections", policy_max_client_connections, 1, FE_CONN_MAX),
    MS(S_POLICY, "request_timeout", policy_request_timeout_ms, 100, FE_TIMEOUT_MAX),

    {S_MILTER, "listen", set_milter_listen, 0, 0, 0, 0, false},
    {S_MILTER, "sender_at", set_sender_at, 0, 0, 0, 0, false},

    LIST(S_HTTP, "listen", set_listen),
    {S_HTTP, "token", set_token, 0, 0, 0, 0, false},
    UINT(S_HTTP, "max_addresses", http_max_addresses, 1, 10000),
    /* front-end limits */
    UINT(S_HTTP, "max_body", http_max_body, 1024, 16 * 1024 * 1024),
    UINT(S_HTTP, "max_connections", http_max_connections, 1, FE_CONN_MAX),
    UINT(S_HTTP, "max_client_connections", http_max_client_connections, 1, FE_CONN_MAX),
    MS(S_HTTP, "request_timeout", http_request_timeout_ms, 100, FE_TIMEOUT_MAX),
    /* bulk jobs */
    UINT(S_HTTP, "max_job_addresses", http_max_job_addresses, 1, 10000000),
    UINT(S_HTTP, "max_job_body", http_max_job_body, 1024, 1024 * 1024 * 1024),
    UINT(S_HTTP, "job_inflight", http_job_inflight, 1, 10000),
    UINT(S_HTTP, "max_jobs", http_max_jobs, 1, 10000),
    MS(S_HTTP, "job_ttl", http_job_ttl_ms, 1000, 30U * 24 * 3600 * 1000),
    {S_HTTP, "webhooks", set_bool, C(http_webhooks), 0, 0, 0, false},
    {S_HTTP, "webhook_allow_private", set_bool, C(http_webhook_allow_private), 0, 0, 0, false},
    {S_HTTP, "webhook_secret", set_webhook_secret, 0, 0, 0, 0, false},

    LIST(S_DOCTOR, "dnsbl", set_doctor_dnsbl),
    {S_DOCTOR, "domain", set_doctor_domain, 0, 0, 0, 0, false},

    {S_DOMAIN, "action", set_action, 0, 0, 0, 0, false},
    LIST(S_DOMAIN, "route", set_route),
    {S_DOMAIN, "mode", set_mode, 0, 0, 0, 0, false},
    {S_DOMAIN, "proxy", set_proxy_name, offsetof(cd_domain, proxy), sizeof(((cd_domain *)0)->proxy),
     0, 0, false},

    LIST(S_PROXY, "url", set_proxy_url),
    {S_PROXY, "sessions", set_uint, offsetof(cd_proxy, sessions), 0, 1, 1000000, false},
    {S_PROXY, "http", set_bool, offsetof(cd_proxy, http), 0, 0, 0, false},
};

#undef C
#undef STR
#undef BOOL
#undef UINT
#undef MS
#undef LIST
#undef REPLY

/* ---- lines ------------------------------------------------------------ */

/* [proxy NAME]: a new pool. */
static bool open_proxy_section(struct pst *st, char *name)
{
	const char *why;
	cd_proxy *px;

	while (is_blank(*name))
		name++;
	if (!*name)
		return fail(st, "%s", "[proxy] needs a name: [proxy NAME]");
	if ((why = bad_proxy_name(name)))
		return fail(st, "[proxy %s]: %s", name, why);
	if (strcmp(name, "default") == 0 || strcmp(name, "direct") == 0)
		return fail(st,
		            "[proxy %s]: the name is taken (default: [engine] proxy; direct: none)",
		            name);
	if (cd_config_proxy(st->c, name))
		return fail(st, "[proxy %s]: section given twice", name);
	if (st->nproxies >= PROXIES_MAX)
		return fail(st, "too many [proxy] sections (at most %d)", PROXIES_MAX);
	if (!(px = calloc(1, sizeof(*px)))) {
		st->nomem = true;
		return fail(st, "%s", "out of memory");
	}
	strcpy(px->name, name); /* bad_proxy_name: at most 63 */
	px->http = true;
	*st->px_tail = px;
	st->px_tail = &px->next;
	st->nproxies++;
	st->px = px;
	st->dom = NULL;
	st->sect = S_PROXY;
	snprintf(st->sect_label, sizeof(st->sect_label), "proxy %s", name);
	return true;
}

static bool open_section(struct pst *st, const char *s, size_t len)
{
	const char *close = memchr(s, ']', len), *end = s + len;
	char inner[300];
	size_t n;

	if (!close)
		return fail(st, "%s", "section header without ']'");
	for (const char *p = close + 1; p < end && *p != ';' && *p != '#'; p++)
		if (!is_blank(*p))
			return fail(st, "%s", "text after the section header");
	s++;
	while (s < close && is_blank(*s))
		s++;
	n = (size_t)(close - s);
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	if (n >= sizeof(inner))
		return fail(st, "%s", "section name too long");
	memcpy(inner, s, n);
	inner[n] = '\0';

	memset(st->key_line, 0, sizeof(unsigned) * ARRAY_LEN(keys));
	memset(st->opt_line, 0, sizeof(st->opt_line));
	st->cur_key = NULL;
	st->cur_opt = NULL;
	st->px = NULL;
	if (strncmp(inner, "proxy", 5) == 0 && (inner[5] == '\0' || is_blank(inner[5])))
		return open_proxy_section(st, inner + 5);
	if (strncmp(inner, "domain", 6) == 0 && (inner[6] == '\0' || is_blank(inner[6]))) {
		char *name = inner + 6;
		const char *why;
		cd_domain *d;

		while (is_blank(*name))
			name++;
		if (!*name)
			return fail(st, "%s", "[domain] needs a domain name: [domain example.org]");
		if ((why = normalise_domain(name)))
			return fail(st, "[domain %s]: %s", name, why);
		for (d = st->c->domains; d; d = d->next)
			if (strcmp(d->name, name) == 0)
				return fail(st, "[domain %s]: section given twice", name);
		if (st->ndomains >= DOMAINS_MAX)
			return fail(st, "too many [domain] sections (at most %d)", DOMAINS_MAX);
		if (!(d = calloc(1, sizeof(*d)))) {
			st->nomem = true;
			return fail(st, "%s", "out of memory");
		}
		strcpy(d->name, name); /* valid_hostname: at most 253 */
		*st->dom_tail = d;
		st->dom_tail = &d->next;
		st->ndomains++;
		st->dom = d;
		st->sect = S_DOMAIN;
		snprintf(st->sect_label, sizeof(st->sect_label), "domain %s", name);
		return true;
	}
	for (size_t i = 1; i < ARRAY_LEN(sect_names); i++) {
		if (i == S_DOMAIN || i == S_PROXY || strcmp(inner, sect_names[i]) != 0)
			continue;
		if (st->sect_line[i])
			return fail(st, "[%s]: section given twice (first on line %u)", inner,
			            st->sect_line[i]);
		st->sect_line[i] = st->line;
		st->sect = (enum sect)i;
		st->dom = NULL;
		snprintf(st->sect_label, sizeof(st->sect_label), "%s", inner);
		return true;
	}
	return fail(st,
	            "[%s]: unknown section (daemon, engine, cache, verify, policy, milter, "
	            "http, doctor, domain NAME or proxy NAME)",
	            inner);
}

/*
 * inih's line reader: one physical line per call, checked and classified
 * (see the top of the file).  Comments and blank lines reach inih as empty
 * lines and section headers as "[s]": only key and continuation lines are
 * inih's to split.  NULL at the end or after the first error.
 */
static char *read_line(char *buf, int num, void *arg)
{
	struct pst *st = arg;
	const char *s, *e, *nl;
	size_t len, i;

	if (st->failed || st->p >= st->end)
		return NULL;
	s = st->p;
	nl = memchr(s, '\n', (size_t)(st->end - s));
	e = nl ? nl : st->end;
	st->p = nl ? nl + 1 : st->end;
	st->line++;
	st->cont = false;
	if (e > s && e[-1] == '\r')
		e--;
	if (st->line == 1 && e - s >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3; /* a UTF-8 byte order mark */
	len = (size_t)(e - s);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			fail(st, "control character 0x%02x in the line", c);
			return NULL;
		}
	}
	for (i = 0; i < len && is_blank(s[i]); i++)
		;
	if (i == len || s[i] == ';' || s[i] == '#') {
		/* blank line or comment: a blank line ends a continuation */
		if (i == len)
			st->can_continue = false;
		buf[0] = '\0';
		return buf;
	}
	if (i == 0 && s[0] == '[') {
		st->can_continue = false;
		if (!open_section(st, s, len))
			return NULL;
		strcpy(buf, "[s]");
		return buf;
	}
	if (num < 2 || len > (size_t)num - 1) {
		fail(st, "line too long (at most %d characters)", num - 1);
		return NULL;
	}
	if (i > 0) {
		if (!st->can_continue) {
			fail(st, "%s",
			     "indented line: keys and sections start in the first column; "
			     "only a list continues on indented lines, right below its "
			     "key line");
			return NULL;
		}
		st->cont = true;
	} else {
		/* what inih will take for the separator: '=' or ':' before any
		 * " ;" comment */
		bool sep = false;
		for (i = 0; i < len && !sep; i++) {
			if (s[i] == ';' && i > 0 && is_blank(s[i - 1]))
				break;
			sep = s[i] == '=' || s[i] == ':';
		}
		if (!sep) {
			fail(st, "%s", "expected key = value");
			return NULL;
		}
		st->can_continue = true;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

/* A key of the option table: [engine] and [cache] numbers and booleans. */
static int set_option(struct pst *st, const co_optdef *opt, const char *value)
{
	size_t n, i = (size_t)(opt - co_opt_table(&n));
	char why[160];
	const char *bad;

	if (st->opt_line[i])
		return fail(st, "[%s] %s: given twice (first on line %u)", st->sect_label,
		            opt->name, st->opt_line[i]);
	st->opt_line[i] = st->line;
	st->cur_key = NULL;
	st->cur_opt = opt;
	if ((bad = co_opt_parse(opt, value, &st->c->opts, why, sizeof(why))))
		return fail(st, "[%s] %s: %s, got '%s'", st->sect_label, opt->name, bad, value);
	return 1;
}

static int on_value(void *arg, const char *section, const char *name, const char *value)
{
	struct pst *st = arg;
	const struct keydef *k = NULL;
	const co_optdef *opt;
	char v[512];
	size_t n = strlen(value);

	(void)section; /* ours is in st */
	if (st->failed)
		return 0;
	if (st->cont && st->cur_opt)
		return fail(st,
		            "[%s] %s: only a list continues on an indented line (keys start in "
		            "the first column)",
		            st->sect_label, st->cur_opt->name);
	if (!st->cont && (st->sect == S_ENGINE || st->sect == S_CACHE))
		if ((opt = co_opt_find(sect_names[st->sect], name)) && opt->type != CO_OPT_TEXT)
			return set_option(st, opt, value);
	st->cur_opt = NULL;
	if (st->cont) {
		k = st->cur_key;
		if (!k)
			return fail(st, "%s", "continuation of nothing");
		if (!k->list)
			return KFAIL(st, k, "%s",
			             "only a list continues on an indented line (keys "
			             "start in the first column)");
	} else {
		if (st->sect == S_NONE)
			return fail(st, "%s: key outside any section", name);
		if (!*name)
			return fail(st, "[%s]: a key name is missing before '='", st->sect_label);
		for (size_t i = 0; i < ARRAY_LEN(keys) && !k; i++)
			if (keys[i].sect == st->sect && strcmp(keys[i].name, name) == 0)
				k = &keys[i];
		if (!k)
			return fail(st, "[%s] %s: unknown key", st->sect_label, name);
		unsigned *seen = &st->key_line[k - keys];
		if (*seen)
			return KFAIL(st, k, "given twice (first on line %u)", *seen);
		*seen = st->line;
		st->cur_key = k;
	}
	if (n >= sizeof(v)) /* cannot happen with inih's line buffer */
		return KFAIL(st, k, "%s", "value too long");
	memcpy(v, value, n + 1);
	if (st->cont) {
		/* inih strips " ;comment" from key lines, not from continuations */
		for (size_t i = 1; i < n; i++) {
			if (v[i] == ';' && is_blank(v[i - 1])) {
				while (i > 0 && is_blank(v[i - 1]))
					i--;
				v[i] = '\0';
				break;
			}
		}
	}
	return k->set(st, k, v, st->cont);
}

/* ---- defaults and the whole file ------------------------------------ */

static void set_defaults(cd_config *c)
{
	static const char *const nets[] = {"127.0.0.0/8", "::1/128"};

	snprintf(c->state_dir, sizeof(c->state_dir), "%s", DEFAULT_STATE_DIR);
	snprintf(c->syslog_facility, sizeof(c->syslog_facility), "mail");
	c->mode = CD_MODE_ENFORCE;
	c->reply_within_ms = 10000;
	c->max_inflight = 10000;

	callout_options_init(&c->opts);
	co_opt_defaults(&c->opts, true);

	c->verify_sender = true;
	c->verify_recipient = true;
	for (size_t i = 0; i < ARRAY_LEN(nets); i++) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%s", nets[i]);
		parse_net(buf, &c->skip_networks[c->nskip_networks++]);
	}
	c->sender_reject = (cd_reply){
	    550, "5.1.7", "<$address>: Sender address rejected: undeliverable address ($reason)"};
	c->sender_defer = (cd_reply){
	    450, "4.1.7", "<$address>: Sender address rejected: unverified address ($reason)"};
	c->recipient_reject =
	    (cd_reply){550, "5.1.1",
	               "<$address>: Recipient address rejected: undeliverable address ($reason)"};
	c->recipient_defer = (cd_reply){
	    450, "4.1.1", "<$address>: Recipient address rejected: unverified address ($reason)"};
	c->in_progress =
	    (cd_reply){450, "4.7.1", "Address verification in progress, try again later"};

	parse_listen("inet:127.0.0.1:10040", true, &c->policy_listen[0]);
	c->npolicy_listen = 1;
	c->milter_sender_at = CD_AT_RCPT;
	parse_listen("inet:127.0.0.1:8025", false, &c->http_listen[0]);
	c->nhttp_listen = 1;
	c->http_max_addresses = 100;
	/* front-end limits */
	c->policy_max_connections = 1000;
	c->policy_max_client_connections = 200;
	c->policy_request_timeout_ms = 10000;
	c->http_max_body = 64 * 1024;
	c->http_max_connections = 1000;
	c->http_max_client_connections = 200;
	c->http_request_timeout_ms = 10000;
	c->http_max_job_addresses = 1000000;
	c->http_max_job_body = 64 * 1024 * 1024;
	c->http_job_inflight = 20;
	c->http_max_jobs = 100;
	c->http_job_ttl_ms = 7U * 24 * 3600 * 1000;
}

/* What depends on several keys, once the whole file is read. */
static bool finish(struct pst *st)
{
	cd_config *c = st->c;

	for (const cd_proxy *px = c->proxies; px; px = px->next)
		if (!px->url[0])
			return fail(st, "[proxy %s]: url is missing (socks5://HOST:PORT[, ...])",
			            px->name);
	for (const cd_domain *d = c->domains; d; d = d->next) {
		if (!d->proxy[0] || strcmp(d->proxy, "direct") == 0 || cd_config_proxy(c, d->proxy))
			continue;
		if (strcmp(d->proxy, "default") != 0)
			return fail(st, "[domain %s] proxy: no [proxy %s] section", d->name,
			            d->proxy);
		if (!c->proxy[0])
			return fail(st, "[domain %s] proxy: default, but [engine] proxy is not set",
			            d->name);
	}

	for (size_t i = 0; i < c->npolicy_listen; i++)
		if (c->policy_listen[i].is_unix)
			c->policy_listen[i].mode = st->socket_mode;
	if (!st->cache_set) {
		const char *sep = strcmp(c->state_dir, "/") == 0 ? "" : "/";
		size_t need =
		    strlen("lmdb:") + strlen(c->state_dir) + strlen(sep) + strlen("cache.lmdb");
		if (need >= sizeof(c->cache)) {
			st->line = st->state_dir_line;
			return fail(st, "%s",
			            "[daemon] state_dir: too long for the default cache "
			            "lmdb:STATE_DIR/cache.lmdb");
		}
		strcpy(c->cache, "lmdb:");
		strcat(c->cache, c->state_dir);
		strcat(c->cache, sep);
		strcat(c->cache, "cache.lmdb");
	}
	return true;
}

static cd_config *parse_buffer(const char *text, size_t len, const char *name, char *err,
                               size_t errlen)
{
	unsigned key_line[ARRAY_LEN(keys)];
	struct pst st;
	cd_config *c;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	memset(&st, 0, sizeof(st));
	st.name = name ? name : "(config)";
	st.err = err;
	st.errlen = errlen;
	st.key_line = key_line;
	memset(key_line, 0, sizeof(key_line));
	if (!(c = calloc(1, sizeof(*c)))) {
		fail(&st, "%s", "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	st.c = c;
	st.p = text;
	st.end = text + len;
	st.dom_tail = &c->domains;
	st.px_tail = &c->proxies;
	st.socket_mode = 0660;
	set_defaults(c);
	if (strlen(st.name) >= sizeof(c->path)) {
		fail(&st, "%s", "file name too long");
		goto fail;
	}
	strcpy(c->path, st.name);

	rc = ini_parse_stream(read_line, &st, on_value, &st);
	if (st.failed)
		goto fail;
	if (rc != 0) { /* inih found something our reader let through */
		st.line = rc > 0 ? (unsigned)rc : st.line;
		st.nomem = rc == -2; /* inih's own line buffer */
		fail(&st, "%s",
		     rc > 0     ? "syntax error"
		     : rc == -2 ? "out of memory"
		                : "cannot parse");
		goto fail;
	}
	if (!finish(&st))
		goto fail;
	return c;
fail:
	cd_config_free(c);
	errno = st.nomem ? ENOMEM : EINVAL;
	return NULL;
}

cd_config *cd_config_parse(const char *text, const char *name, char *err, size_t errlen)
{
	return parse_buffer(text ? text : "", text ? strlen(text) : 0, name, err, errlen);
}

cd_config *cd_config_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int saved = errno;
		errorf(err, errlen, "%s: %s", path, strerror(errno));
		errno = saved;
		return NULL;
	}
	cd_config *c = cd_config_load_fd(fd, path, err, errlen);
	int saved = errno;
	close(fd);
	errno = saved;
	return c;
}

cd_config *cd_config_load_fd(int fd, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;
	cd_config *c = NULL;
	int saved;

	if (!err)
		errlen = 0; /* snprintf(NULL, 0, ...) is fine */
	if (errlen)
		err[0] = '\0';
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		errorf(err, errlen, "%s: %s", path,
		       S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
		errno = EINVAL;
		goto done;
	}
	if (!(buf = malloc(CONFIG_FILE_MAX + 1))) {
		errorf(err, errlen, "%s: out of memory", path);
		errno = ENOMEM;
		goto done;
	}
	for (;;) {
		/* pread from 0: the same descriptor is read again on reload */
		ssize_t n = pread(fd, buf + len, CONFIG_FILE_MAX + 1 - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errorf(err, errlen, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			errorf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
			errno = EINVAL;
			goto done;
		}
	}
	c = parse_buffer(buf, len, path, err, errlen);
done:
	saved = errno; /* why c is NULL */
	free(buf);
	errno = saved;
	return c;
}

void cd_config_free(cd_config *c)
{
	if (!c)
		return;
	for (cd_domain *d = c->domains, *next; d; d = next) {
		next = d->next;
		free(d);
	}
	for (cd_proxy *px = c->proxies, *next; px; px = next) {
		next = px->next;
		free(px);
	}
	free(c);
}

/* ---- queries ---------------------------------------------------------- */

/* Length of a domain without one trailing dot. */
static size_t domain_len(const char *d)
{
	size_t n = strlen(d);

	return n > 1 && d[n - 1] == '.' ? n - 1 : n;
}

const cd_proxy *cd_config_proxy(const cd_config *c, const char *name)
{
	for (const cd_proxy *px = c ? c->proxies : NULL; px; px = px->next)
		if (strcmp(px->name, name) == 0)
			return px;
	return NULL;
}

const cd_domain *cd_config_domain(const cd_config *c, const char *domain)
{
	size_t n;

	if (!c || !domain)
		return NULL;
	n = domain_len(domain);
	for (const cd_domain *d = c->domains; d; d = d->next)
		if (strlen(d->name) == n && strncasecmp(d->name, domain, n) == 0)
			return d;
	return NULL;
}

void cd_config_options(const cd_config *c, callout_options *o)
{
	*o = c->opts;
	o->helo = c->helo[0] ? c->helo : NULL;
	o->sender = c->sender;
	o->fallback_sender = c->fallback_sender[0] ? c->fallback_sender : NULL;
	o->source_address = c->source_address[0] ? c->source_address : NULL;
	o->dns_servers = c->dns_servers[0] ? c->dns_servers : NULL;
	o->cache = c->cache[0] ? c->cache : NULL;
	o->proxy = c->proxy[0] ? c->proxy : NULL;
}

static bool prefix_match(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;

	if (memcmp(a, net, bytes) != 0)
		return false;
	if (bits) {
		unsigned char mask = (unsigned char)(0xffu << (8 - bits));
		if ((a[bytes] & mask) != (net[bytes] & mask))
			return false;
	}
	return true;
}

bool cd_config_skip_client(const cd_config *c, const char *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	unsigned char v4[4], v6[16];
	bool has4 = false, has6 = false;
	char buf[INET6_ADDRSTRLEN + 8];
	size_t n;

	if (!c || !addr)
		return false;
	/* also "[::1]", "IPv6:::1" and "fe80::1%eth0" */
	if (addr[0] == '[')
		addr++;
	if (strncasecmp(addr, "IPv6:", 5) == 0)
		addr += 5;
	n = strcspn(addr, "]%");
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, addr, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, v4) == 1) {
		has4 = has6 = true;
		memcpy(v6, mapped, 12);
		memcpy(v6 + 12, v4, 4);
	} else if (inet_pton(AF_INET6, buf, v6) == 1) {
		has6 = true;
		if (memcmp(v6, mapped, 12) == 0) {
			memcpy(v4, v6 + 12, 4);
			has4 = true;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < c->nskip_networks && i < ARRAY_LEN(c->skip_networks); i++) {
		const cd_net *net = &c->skip_networks[i];
		if (net->family == AF_INET && has4 && net->prefix <= 32 &&
		    prefix_match(v4, net->addr, net->prefix))
			return true;
		if (net->family == AF_INET6 && has6 && net->prefix <= 128 &&
		    prefix_match(v6, net->addr, net->prefix))
			return true;
	}
	return false;
}

/* Whether the comma-separated list holds an item matching (s, n) by cmp. */
static bool list_has(const char *list, const char *s, size_t n,
                     bool (*match)(const char *item, size_t ilen, const char *s, size_t n))
{
	while (*list) {
		size_t ilen = strcspn(list, ",");
		if (match(list, ilen, s, n))
			return true;
		list += ilen;
		if (*list == ',')
			list++;
	}
	return false;
}

static bool match_domain(const char *item, size_t ilen, const char *d, size_t n)
{
	return ilen == n && strncasecmp(item, d, n) == 0;
}

/* local part exactly, domain case-insensitively */
static bool match_address(const char *item, size_t ilen, const char *a, size_t n)
{
	const char *at = strrchr(a, '@');
	size_t local = (size_t)(at - a);

	if (ilen != n || memcmp(item, a, local + 1) != 0)
		return false;
	return strncasecmp(item + local + 1, at + 1, n - local - 1) == 0;
}

bool cd_config_skip_sender(const cd_config *c, const char *sender)
{
	const char *at;
	size_t n;

	if (!c || !sender || !*sender)
		return false;
	if (!(at = strrchr(sender, '@')) || at == sender || !at[1])
		return false;
	n = domain_len(at + 1);
	if (list_has(c->skip_domains, at + 1, n, match_domain))
		return true;
	return list_has(c->skip_senders, sender, (size_t)(at - sender) + 1 + n, match_address);
}

const char *cd_mode_name(cd_mode m)
{
	switch (m) {
	case CD_MODE_ENFORCE:
		return "enforce";
	case CD_MODE_TAG:
		return "tag";
	case CD_MODE_DRY_RUN:
		return "dry-run";
	}
	return "?";
}
