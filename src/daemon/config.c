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

#include "config_int.h"
#include "option_table.h"
#include "config_syntax.h"
#include "proxy.h"
#include "duration.h"
#include "hostport.h"

/* ---- parsing state ---------------------------------------------------- */

const char *const cfg_sect_names[CFG_NSECTS] = {
    [S_NONE] = "",         [S_DAEMON] = "daemon", [S_ENGINE] = "engine", [S_CACHE] = "cache",
    [S_VERIFY] = "verify", [S_POLICY] = "policy", [S_MILTER] = "milter", [S_HTTP] = "http",
    [S_DOMAIN] = "domain", [S_DOCTOR] = "doctor", [S_PROXY] = "proxy",
};

/* snprintf() that may truncate (error messages). */
void cfg_errorf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

bool cfg_fail(struct pst *st, const char *fmt, ...)
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
		cfg_errorf(st->err, st->errlen, "%s:%u: %s", st->name, st->line, msg);
	return false;
}

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
	if (!cfg_parse_bool(v, field(st, k)))
		return KFAIL(st, k, "expected yes or no, got '%s'", v);
	return true;
}

static bool set_uint(struct pst *st, const struct keydef *k, char *v, bool more)
{
	unsigned long n;

	if (!cfg_parse_uint(v, k->min, k->max, &n))
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

static bool set_no_postmaster(struct pst *st, const struct keydef *k, char *v, bool more)
{
	static const struct word w[] = {{"ignore", 0}, {"tag", 1}};
	int x;

	if (!set_word(st, k, v, w, ARRAY_LEN(w), &x))
		return false;
	st->c->tag_no_postmaster = x;
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
		*p = cfg_lower(*p);
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
		if (!cfg_is_alpha(*p) && !cfg_is_digit(*p) && *p != '_' && *p != '.' && *p != '-')
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

	if (!cfg_valid_path(v))
		return KFAIL(st, k, "expected an absolute path without blanks, got '%s'", v);
	while (n > 1 && v[n - 1] == '/')
		v[--n] = '\0';
	st->state_dir_line = st->line;
	return copy_str(st, k, st->c->state_dir, sizeof(st->c->state_dir), v);
}

static bool set_helo(struct pst *st, const struct keydef *k, char *v, bool more)
{
	size_t n = strlen(v);
	bool ok = !*v || cfg_valid_hostname(v);

	if (!ok && n > 2 && v[0] == '[' && v[n - 1] == ']') {
		char lit[64];
		if (n - 2 < sizeof(lit)) {
			memcpy(lit, v + 1, n - 2);
			lit[n - 2] = '\0';
			ok = cfg_is_ip(AF_INET, lit) ||
			     (strncasecmp(lit, "IPv6:", 5) == 0 && cfg_is_ip(AF_INET6, lit + 5));
		}
	}
	if (!ok)
		return KFAIL(st, k,
		             "expected a host name or an address literal [192.0.2.1], got '%s'", v);
	if (v[0] != '[')
		for (char *p = v; *p; p++)
			*p = cfg_lower(*p);
	return copy_str(st, k, st->c->helo, sizeof(st->c->helo), v);
}

static bool set_sender(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool fallback = strcmp(k->name, "fallback_sender") == 0;
	const char *why;

	if (fallback && strcmp(v, "<>") == 0)
		return KFAIL(st, k, "%s",
		             "<> is not a fallback (the first try already uses the "
		             "null sender); leave it empty for none");
	v = cfg_strip_angles(v);
	if (*v && (why = cfg_normalise_address(v)))
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
	if (*v && !cfg_is_any_ip(v))
		return KFAIL(st, k, "expected a local IPv4 or IPv6 address, got '%s'", v);
	return copy_str(st, k, st->c->source_address, sizeof(st->c->source_address), v);
}

static bool set_cache(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool ok;

	if (strcasecmp(v, "none") == 0 || strcasecmp(v, "memory") == 0) {
		for (char *p = v; *p; p++)
			*p = cfg_lower(*p);
		ok = true;
	} else if (strncmp(v, "lmdb:", 5) == 0) {
		ok = cfg_valid_path(v + 5);
	} else if (strncmp(v, "redis://", 8) == 0) {
		ok = v[8] && !cfg_has_blank(v);
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

	while (*p == ',' || cfg_is_blank(*p))
		p++;
	if (!*p)
		return false;
	while (*p && *p != ',' && !cfg_is_blank(*p)) {
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

static bool set_dns_servers(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;

	if (!more)
		st->c->dns_servers[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if (!cfg_valid_dns_server(item))
			return KFAIL(st, k, "expected IPv4[:PORT], IPv6 or [IPv6]:PORT, got '%s'",
			             item);
		if (!append_item(st, k, st->c->dns_servers, sizeof(st->c->dns_servers), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

static bool set_route(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;

	if (!more)
		st->dom->route[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if (!cfg_valid_route_host(item))
			return KFAIL(st, k,
			             "expected HOST[:PORT] (a host name, an IPv4 address or "
			             "[IPv6]), got '%s'",
			             item);
		if (!append_item(st, k, st->dom->route, sizeof(st->dom->route), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
}

static bool set_proxy_name(struct pst *st, const struct keydef *k, char *v, bool more)
{
	const char *why = cfg_bad_proxy_name(v);

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
		char *a = cfg_strip_angles(item);
		if ((why = cfg_normalise_address(a)))
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
		if ((why = cfg_normalise_domain(item)))
			return KFAIL(st, k, "%s, got '%s'", why, item);
		if (!append_item(st, k, st->c->skip_domains, sizeof(st->c->skip_domains), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
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
		if (!cfg_parse_net(item, &net))
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
		if ((why = cfg_parse_listen(item, !http, &arr[*n])))
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

static bool set_milter_listen(struct pst *st, const struct keydef *k, char *v, bool more)
{
	const char *why;

	if (strcasecmp(v, "none") == 0)
		v[0] = '\0';
	if (*v && (why = cfg_check_milter_listen(v)))
		return KFAIL(st, k, "%s, got '%s'", why, v);
	return copy_str(st, k, st->c->milter_listen, sizeof(st->c->milter_listen), v);
}

/* A secret: printable ASCII without blanks. */
static bool copy_secret(struct pst *st, const struct keydef *k, char *dst, size_t size,
                        const char *v)
{
	for (const char *p = v; *p; p++)
		if (!cfg_is_print(*p) || *p == ' ')
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
		if ((why = cfg_normalise_domain(item)))
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

	if (*v && (why = cfg_normalise_domain(v)))
		return KFAIL(st, k, "%s, got '%s'", why, v);
	return copy_str(st, k, st->c->doctor_domain, sizeof(st->c->doctor_domain), v);
}

/* Options of the table an operator may open to HTTP requests, and
 * "transcript". */
static bool set_request_options(struct pst *st, const struct keydef *k, char *v, bool more)
{
	bool bad_ = false;
	const co_optdef *d;

	if (!more)
		st->c->http_request_options[0] = '\0';
	FOR_ITEMS(st, k, v, item)
	{
		if (strcmp(item, "transcript") != 0 &&
		    (!(d = co_opt_find(NULL, item)) || !(d->where & CO_OPT_REQUEST)))
			return KFAIL(st, k, "'%s' cannot be opened to requests (these can: %s)",
			             item, cd_request_option_names());
		if (!append_item(st, k, st->c->http_request_options,
		                 sizeof(st->c->http_request_options), item))
			return false;
	}
	return bad_ ? item_too_long(st, k) : true;
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
	if (!cfg_is_digit(p[0]) || !cfg_is_digit(p[1]) || !cfg_is_digit(p[2]) ||
	    (p[3] && !cfg_is_blank(p[3])) || p[0] - '0' != klass || p[1] > '5')
		return KFAIL(st, k,
		             "expected \"%d.. [%d.X.Y] text\" with a %dxx reply code, got '%s'",
		             klass, klass, klass, v);
	r.code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	p += 3;
	while (cfg_is_blank(*p))
		p++;
	if (cfg_is_digit(p[0]) && p[1] == '.') {
		size_t n = strcspn(p, " \t"), i = 2, d1 = 0, d2 = 0;
		bool ok;

		for (; i < n && cfg_is_digit(p[i]); i++)
			d1++;
		ok = d1 >= 1 && d1 <= 3 && i < n && p[i] == '.';
		if (ok)
			for (i++; i < n && cfg_is_digit(p[i]); i++)
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
		while (cfg_is_blank(*p))
			p++;
	}
	if (!*p)
		return KFAIL(st, k, "the reply has no text after the code, got '%s'", v);
	if (!cfg_all_print(p))
		return KFAIL(st, k, "%s", "the text must be printable ASCII");
	for (const char *d = strchr(p, '$'); d; d = strchr(d + 1, '$')) {
		size_t n = 0;
		bool known = false;
		while (cfg_is_alpha(d[1 + n]) || cfg_is_digit(d[1 + n]) || d[1 + n] == '_')
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

const struct keydef cfg_keys[] = {
    STR(S_DAEMON, user, set_user),
    STR(S_DAEMON, state_dir, set_state_dir),
    {S_DAEMON, "log", set_log, 0, 0, 0, 0, false},
    STR(S_DAEMON, syslog_facility, set_facility),
    {S_DAEMON, "log_level", set_log_level, 0, 0, 0, 0, false},
    {S_DAEMON, "mode", set_mode, 0, 0, 0, 0, false},
    MS(S_DAEMON, "reply_within", reply_within_ms, 1, REPLY_WITHIN_MAX),
    UINT(S_DAEMON, "max_inflight", max_inflight, 1, 1000000),
    {S_DAEMON, "no_postmaster", set_no_postmaster, 0, 0, 0, 0, false},

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
    LIST(S_HTTP, "request_options", set_request_options),
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
const size_t cfg_nkeys = ARRAY_LEN(cfg_keys);
_Static_assert(ARRAY_LEN(cfg_keys) <= CFG_KEYS_MAX,
               "CFG_KEYS_MAX: the parse state counts each key");

#undef C
#undef STR
#undef BOOL
#undef UINT
#undef MS
#undef LIST
#undef REPLY

/* ---- defaults and the whole file ------------------------------------ */

void cfg_set_defaults(cd_config *c)
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
		cfg_parse_net(buf, &c->skip_networks[c->nskip_networks++]);
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

	cfg_parse_listen("inet:127.0.0.1:10040", true, &c->policy_listen[0]);
	c->npolicy_listen = 1;
	c->milter_sender_at = CD_AT_RCPT;
	cfg_parse_listen("inet:127.0.0.1:8025", false, &c->http_listen[0]);
	c->nhttp_listen = 1;
	c->http_max_addresses = 100;
	strcpy(c->http_request_options, "timeout,transcript");
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
