/* The option table (see option_table.h): each option's name, type, field,
 * default, range and help, once. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "duration.h"
#include "option_table.h"

#define F(field) offsetof(callout_options, field)
#define FLAGS    offsetof(callout_options, flags)

#define DAY     86400ull
#define TIMEOUT 86400000ull     /* ms: the longest timeout, one day */
#define TTL     (3650ull * DAY) /* s: the longest TTL, ten years */
#define LIMIT   1000000ull      /* limits and rates */
#define ANY_CLI NULL            /* the CLI flag is the name */
#define SAME    0, NULL         /* calloutd's default is the library's */
#define CTX     CO_OPT_CTX
#define NOT_CTX 0
#define REQ     CO_OPT_REQUEST /* [http] request_options may open it to requests */

/* The defaults of CO_OPT_SECS_LIST rows: their def and daemon_def index
 * this. */
static const char *const list_defaults[] = {"", "5m,15m"};
#define LIST_NONE   0
#define LIST_5M_15M 1

static const co_optdef table[] = {
    /* SMTP */
    {"helo", "engine", CO_OPT_TEXT, F(helo), 0, false, REQ, 0, 0, 0, SAME, NULL, "NAME",
     "EHLO/HELO name (default: this host's fully qualified name)"},
    {"sender", "engine", CO_OPT_TEXT, F(sender), 0, false, REQ, 0, 0, 0, SAME, NULL, "ADDR",
     "MAIL FROM address (default: the null sender <>)"},
    {"fallback_sender", "engine", CO_OPT_TEXT, F(fallback_sender), 0, false, REQ, 0, 0, 0, SAME,
     NULL, "ADDR", "MAIL FROM to retry with when <> is refused (default: none)"},
    {"source_address", "engine", CO_OPT_TEXT, F(source_address), 0, false, NOT_CTX, 0, 0, 0, SAME,
     "source", "ADDR", "local IP address to connect from (default: any)"},
    {"port", "engine", CO_OPT_COUNT, F(port), 0, false, REQ, 25, 1, 65535, SAME, ANY_CLI, "N",
     "SMTP port of every server"},
    {"catch_all", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_CATCH_ALL, false, REQ, 0, 0, 1, 1,
     "a mail server decides on senders it never saw: a catch-all domain's 'valid' proves "
     "nothing there, and the fact costs one RCPT per domain a week; the command line asks "
     "only what it is asked",
     ANY_CLI, NULL, "also try a random local part; a server that accepts it gives unknown"},
    {"postmaster", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_POSTMASTER, false, REQ, 0, 0, 1, SAME,
     ANY_CLI, NULL, "also RCPT postmaster@DOMAIN, once per domain (a fact, never the verdict)"},
    {"vrfy", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_VRFY, false, REQ, 0, 0, 1, SAME, ANY_CLI, NULL,
     "try VRFY before MAIL and RCPT"},
    {"tls", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_TLS, false, REQ, 0, 0, 1, SAME, ANY_CLI, NULL,
     "use STARTTLS when the server offers it (not verified)"},
    {"pipelining", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_NO_PIPELINING, true, NOT_CTX, 1, 0, 1,
     SAME, ANY_CLI, NULL, "pipeline MAIL and RCPT when the server offers PIPELINING"},
    {"allow_private", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_ALLOW_PRIVATE, false, NOT_CTX, 0, 0,
     1, SAME, ANY_CLI, NULL,
     "also contact mail hosts on loopback, private, link-local or our own addresses"},
    {"max_mx", "engine", CO_OPT_COUNT, F(max_mx), 0, false, REQ, 5, 1, 100, SAME, ANY_CLI, "N",
     "MX hosts tried at most"},
    {"max_connections", "engine", CO_OPT_COUNT, F(max_connections), 0, false, REQ, 10, 1, 1000,
     SAME, ANY_CLI, "N", "connection attempts at most per verification"},

    /* routing and DNS */
    {"proxy", "engine", CO_OPT_TEXT, F(proxy), 0, false, CTX, 0, 0, 0, SAME, NULL,
     "socks5://[USER:PASSWORD@]HOST:PORT[,...]",
     "make every callout through this SOCKS5 proxy, or the least busy of several (default: "
     "none, direct)"},
    {"proxy_sessions", "engine", CO_OPT_COUNT, F(proxy_sessions), 0, false, CTX, 100, 1, 1000000,
     SAME, ANY_CLI, "N", "connections at once through one proxy"},
    {"proxy_check", "engine", CO_OPT_MS, F(proxy_check_ms), 0, false, CTX, 5000, 100, 3600000, SAME,
     ANY_CLI, "DURATION", "check a proxy that is down this often"},
    {"dns_servers", "engine", CO_OPT_TEXT, F(dns_servers), 0, false, CTX, 0, 0, 0, SAME,
     "dns-server", "ADDR[:PORT]", "DNS servers to ask instead of /etc/resolv.conf"},

    /* timeouts */
    {"timeout", "engine", CO_OPT_MS, F(deadline_ms), 0, false, REQ, 120000, 1, TIMEOUT, SAME,
     ANY_CLI, "DURATION", "the whole verification"},
    {"connect_timeout", "engine", CO_OPT_MS, F(connect_timeout_ms), 0, false, REQ, 30000, 1,
     TIMEOUT, SAME, ANY_CLI, "DURATION", "each connection attempt"},
    {"command_timeout", "engine", CO_OPT_MS, F(command_timeout_ms), 0, false, REQ, 30000, 1,
     TIMEOUT, SAME, ANY_CLI, "DURATION", "each SMTP reply"},
    {"dns_timeout", "engine", CO_OPT_MS, F(dns_timeout_ms), 0, false, CTX, 5000, 1, TIMEOUT, SAME,
     ANY_CLI, "DURATION", "each DNS query try"},
    {"greylist_recheck", "engine", CO_OPT_SECS_LIST, F(greylist_recheck), 0, false, CTX, LIST_NONE,
     1, 7 * DAY, LIST_5M_15M,
     "the MTA retries a greylisted address after minutes: a re-check in the background "
     "puts the real answer in the cache first; a one-shot command line would wait for it",
     ANY_CLI, "DURATION,...",
     "re-check a greylisted address this long after its answer (comma-separated, "
     "increasing; empty: never)"},
    {"greylist_recheck_max", "engine", CO_OPT_COUNT, F(greylist_recheck_max), 0, false, CTX, 10000,
     1, LIMIT, SAME, ANY_CLI, "N", "greylisted addresses waiting for a re-check at most"},

    /* protection of the servers asked */
    {"max_probes", "engine", CO_OPT_LIMIT, F(max_probes), 0, false, CTX, 10000, 0, LIMIT, SAME,
     ANY_CLI, "N", "verifications probing at once"},
    {"max_queued", "engine", CO_OPT_LIMIT, F(max_queued), 0, false, CTX, 10000, 0, LIMIT, SAME,
     ANY_CLI, "N", "verifications waiting for a slot (beyond: tempfail at once)"},
    {"domain_sessions", "engine", CO_OPT_LIMIT, F(domain_sessions), 0, false, CTX, 4, 0, LIMIT,
     SAME, ANY_CLI, "N", "SMTP sessions at once per domain"},
    {"host_sessions", "engine", CO_OPT_LIMIT, F(host_sessions), 0, false, CTX, 10, 0, LIMIT, SAME,
     ANY_CLI, "N", "SMTP sessions at once per MX address"},
    {"domain_rate", "engine", CO_OPT_LIMIT, F(domain_rate), 0, false, CTX, 60, 0, LIMIT, SAME,
     ANY_CLI, "N", "new sessions a minute per domain"},
    {"domain_burst", "engine", CO_OPT_COUNT, F(domain_burst), 0, false, CTX, 10, 1, LIMIT, SAME,
     ANY_CLI, "N", "... of which at once"},
    {"host_rate", "engine", CO_OPT_LIMIT, F(host_rate), 0, false, CTX, 300, 0, LIMIT, SAME, ANY_CLI,
     "N", "new sessions a minute per MX address"},
    {"host_burst", "engine", CO_OPT_COUNT, F(host_burst), 0, false, CTX, 20, 1, LIMIT, SAME,
     ANY_CLI, "N", "... of which at once"},
    {"session_rcpts", "engine", CO_OPT_COUNT, F(session_rcpts), 0, false, CTX, 10, 1, 1000, SAME,
     ANY_CLI, "N", "addresses of one domain asked in one session (1: one a session)"},
    {"session_idle", "engine", CO_OPT_MS, F(session_idle_ms), 0, false, CTX, 3000, 0, 60000, SAME,
     ANY_CLI, "DURATION", "keep an idle session for the next address (0: do not)"},
    {"backoff_failures", "engine", CO_OPT_COUNT, F(backoff_failures), 0, false, CTX, 3, 1, 1000,
     SAME, ANY_CLI, "N", "failures in a row of an MX address that start a backoff"},
    {"backoff", "engine", CO_OPT_MS, F(backoff_ms), 0, false, CTX, 60000, 1000, 3600000, SAME,
     ANY_CLI, "DURATION", "leave a failing MX address alone this long (doubling)"},
    {"limit_wait", "engine", CO_OPT_FLAG, FLAGS, CALLOUT_F_NO_LIMIT_WAIT, true, NOT_CTX, 1, 0, 1,
     SAME, ANY_CLI, NULL, "past a limit, wait for a slot (no: tempfail at once)"},

    /* the cache */
    {"cache", "cache", CO_OPT_TEXT, F(cache), 0, false, CTX | CO_OPT_NO_CLI, 0, 0, 0, SAME, NULL,
     "SPEC", "lmdb:PATH, redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=P], memory or none"},
    {"positive_ttl", "cache", CO_OPT_SECS, F(cache_positive_ttl), 0, false, CTX, 7 * DAY, 1, TTL,
     SAME, ANY_CLI, "DURATION", "keep valid answers"},
    {"refresh", "cache", CO_OPT_SECS, F(cache_refresh), 0, false, CTX, DAY, 1, TTL, SAME, ANY_CLI,
     "DURATION", "re-probe older valid answers in the background"},
    {"negative_ttl", "cache", CO_OPT_SECS, F(cache_negative_ttl), 0, false, CTX, 3 * 3600, 1, TTL,
     SAME, ANY_CLI, "DURATION", "keep invalid and unknown answers"},
    {"tempfail_ttl", "cache", CO_OPT_SECS, F(cache_tempfail_ttl), 0, false, CTX, 0, 0, TTL, SAME,
     ANY_CLI, "DURATION", "keep tempfail answers (0: never)"},
    {"domain_ttl", "cache", CO_OPT_SECS, F(cache_domain_ttl), 0, false, CTX, 7 * DAY, 1, TTL, SAME,
     ANY_CLI, "DURATION", "domain is a catch-all, refuses <>, accepts postmaster"},
    {"domain_negative_ttl", "cache", CO_OPT_SECS, F(cache_domain_negative_ttl), 0, false, CTX,
     3 * 3600, 1, TTL, SAME, ANY_CLI, "DURATION",
     "domain has no mail service, blocks us, is not a catch-all, refuses postmaster"},
    {"unreachable_ttl", "cache", CO_OPT_SECS, F(cache_unreachable_ttl), 0, false, CTX, 300, 1, TTL,
     SAME, ANY_CLI, "DURATION", "no MX of the domain would talk"},
    {"wait", "cache", CO_OPT_MS, F(cache_wait_ms), 0, false, CTX, 15000, 1, TIMEOUT, SAME,
     "cache-wait", "DURATION", "wait for another node's probe of the same address (Redis)"},
    {"negative_cache", "cache", CO_OPT_FLAG, FLAGS, CALLOUT_F_NO_NEGATIVE_CACHE, true, NOT_CTX, 1,
     0, 1, SAME, ANY_CLI, NULL, "store invalid answers"},
    {"shared_limits", "cache", CO_OPT_FLAG, FLAGS, CALLOUT_F_LOCAL_LIMITS, true, CTX, 1, 0, 1, SAME,
     ANY_CLI, NULL, "with Redis, hold the per-domain and per-MX limits across the fleet"},
    {"fleet_nodes", "cache", CO_OPT_COUNT, F(fleet_nodes), 0, false, CTX, 1, 1, 10000, SAME,
     ANY_CLI, "N", "nodes of the fleet at least, for each one's share while Redis is down"},
};

#define TABLE_LEN (sizeof(table) / sizeof(table[0]))
_Static_assert(TABLE_LEN <= CO_OPT_MAX, "CO_OPT_MAX is too small");

const co_optdef *co_opt_table(size_t *n)
{
	*n = TABLE_LEN;
	return table;
}

const co_optdef *co_opt_find(const char *section, const char *name)
{
	for (size_t i = 0; i < TABLE_LEN; i++)
		if (strcmp(table[i].name, name) == 0 &&
		    (!section || strcmp(table[i].section, section) == 0))
			return &table[i];
	return NULL;
}

const char *co_opt_flag(const co_optdef *d, char *buf, size_t len)
{
	size_t i = 0;

	if (d->cli) {
		snprintf(buf, len, "%s", d->cli);
		return buf;
	}
	for (; d->name[i] && i + 1 < len; i++)
		buf[i] = d->name[i] == '_' ? '-' : d->name[i];
	if (len)
		buf[i] = '\0';
	return buf;
}

const co_optdef *co_opt_find_flag(const char *flag)
{
	char buf[64];

	for (size_t i = 0; i < TABLE_LEN; i++)
		if (!(table[i].where & CO_OPT_NO_CLI) &&
		    strcmp(co_opt_flag(&table[i], buf, sizeof(buf)), flag) == 0)
			return &table[i];
	return NULL;
}

static unsigned *uint_field(const co_optdef *d, callout_options *o)
{
	return (unsigned *)(void *)((char *)o + d->offset);
}

static unsigned uint_value(const co_optdef *d, const callout_options *o)
{
	unsigned v;

	memcpy(&v, (const char *)o + d->offset, sizeof(v));
	return v;
}

static void set_flag(const co_optdef *d, callout_options *o, bool yes)
{
	if (yes != d->negated)
		o->flags |= d->bit;
	else
		o->flags &= ~d->bit;
}

/* A number as the field keeps it: limits of 0 are CALLOUT_UNLIMITED,
 * seconds and milliseconds are the field's own unit. */
static void set_number(const co_optdef *d, callout_options *o, unsigned long long v)
{
	if (d->type == CO_OPT_LIMIT && v == 0)
		*uint_field(d, o) = CALLOUT_UNLIMITED;
	else
		*uint_field(d, o) = (unsigned)v;
}

static const char *parse_list(const co_optdef *d, const char *text, callout_options *o, char *buf,
                              size_t len);

void co_opt_defaults(callout_options *o, bool daemon)
{
	char why[160];

	for (size_t i = 0; i < TABLE_LEN; i++) {
		const co_optdef *d = &table[i];
		unsigned long long v = daemon && d->daemon_why ? d->daemon_def : d->def;

		if (d->type == CO_OPT_FLAG)
			set_flag(d, o, v != 0);
		else if (d->type == CO_OPT_SECS_LIST)
			parse_list(d, list_defaults[v], o, why, sizeof(why));
		else if (d->type != CO_OPT_TEXT)
			set_number(d, o, v);
	}
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
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

/* Digits only, no sign, no blanks, no overflow. */
static bool parse_whole(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (~0ull - 9) / 10)
			return false;
		v = v * 10 + (unsigned long long)(*s - '0');
	}
	*out = v;
	return true;
}

static const char *expected(const co_optdef *d, char *buf, size_t len)
{
	char lo[24], hi[24];

	switch (d->type) {
	case CO_OPT_FLAG:
		snprintf(buf, len, "expected yes or no");
		break;
	case CO_OPT_COUNT:
		snprintf(buf, len, "expected a whole number from %llu to %llu", d->min, d->max);
		break;
	case CO_OPT_LIMIT:
		snprintf(buf, len, "expected a whole number from 0 (no limit) to %llu", d->max);
		break;
	case CO_OPT_MS:
		snprintf(buf, len, "expected a duration from %s to %s (e.g. 30s, 1.5s, 500ms)",
		         co_duration_format(d->min, lo, sizeof(lo)),
		         co_duration_format(d->max, hi, sizeof(hi)));
		break;
	case CO_OPT_SECS:
		snprintf(buf, len, "expected whole seconds from %s to %s (e.g. 90s, 15m, 3h, 7d)",
		         co_duration_format(d->min * 1000, lo, sizeof(lo)),
		         co_duration_format(d->max * 1000, hi, sizeof(hi)));
		break;
	case CO_OPT_TEXT:
		snprintf(buf, len, "expected text");
		break;
	case CO_OPT_SECS_LIST:
		snprintf(buf, len,
		         "expected up to %d increasing durations in whole seconds from %s to %s, "
		         "separated by commas (e.g. 5m,15m), or nothing for none",
		         CALLOUT_RECHECK_MAX, co_duration_format(d->min * 1000, lo, sizeof(lo)),
		         co_duration_format(d->max * 1000, hi, sizeof(hi)));
		break;
	}
	return buf;
}

static unsigned *list_field(const co_optdef *d, callout_options *o)
{
	return (unsigned *)(void *)((char *)o + d->offset);
}

/* "5m,15m" into the array; the value changes only when all of it parses. */
static const char *parse_list(const co_optdef *d, const char *text, callout_options *o, char *buf,
                              size_t len)
{
	unsigned v[CALLOUT_RECHECK_MAX] = {0};
	char item[32];
	size_t n = 0;

	for (const char *p = text; *p; n++) {
		size_t k = strcspn(p, ",");
		unsigned long long ms;

		if (n == CALLOUT_RECHECK_MAX || k == 0 || k >= sizeof(item))
			return expected(d, buf, len);
		memcpy(item, p, k);
		item[k] = '\0';
		if (!co_duration_parse(item, &ms) || ms % 1000 != 0 || ms / 1000 < d->min ||
		    ms / 1000 > d->max || (n > 0 && ms / 1000 <= v[n - 1]))
			return expected(d, buf, len);
		v[n] = (unsigned)(ms / 1000);
		p += k;
		if (*p == ',' && !*++p)
			return expected(d, buf, len); /* a trailing comma */
	}
	memcpy(list_field(d, o), v, sizeof(v));
	return NULL;
}

const char *co_opt_parse(const co_optdef *d, const char *text, callout_options *o, char *buf,
                         size_t len)
{
	unsigned long long v = 0;
	bool yes;

	switch (d->type) {
	case CO_OPT_FLAG:
		if (!parse_bool(text, &yes))
			return expected(d, buf, len);
		set_flag(d, o, yes);
		return NULL;
	case CO_OPT_COUNT:
	case CO_OPT_LIMIT:
		if (!parse_whole(text, &v) || v < d->min || v > d->max)
			return expected(d, buf, len);
		break;
	case CO_OPT_MS:
		if (!co_duration_parse(text, &v) || v < d->min || v > d->max)
			return expected(d, buf, len);
		break;
	case CO_OPT_SECS:
		if (!co_duration_parse(text, &v) || v % 1000 != 0 || v / 1000 < d->min ||
		    v / 1000 > d->max)
			return expected(d, buf, len);
		v /= 1000;
		break;
	case CO_OPT_TEXT:
		return expected(d, buf, len);
	case CO_OPT_SECS_LIST:
		return parse_list(d, text, o, buf, len);
	}
	set_number(d, o, v);
	return NULL;
}

const char *co_opt_format(const co_optdef *d, const callout_options *o, char *buf, size_t len)
{
	const char *s;
	unsigned v = d->type == CO_OPT_TEXT || d->type == CO_OPT_FLAG ? 0 : uint_value(d, o);
	size_t at = 0;

	switch (d->type) {
	case CO_OPT_FLAG:
		snprintf(buf, len, "%s", ((o->flags & d->bit) != 0) != d->negated ? "yes" : "no");
		break;
	case CO_OPT_COUNT:
		snprintf(buf, len, "%u", v);
		break;
	case CO_OPT_LIMIT:
		snprintf(buf, len, v == CALLOUT_UNLIMITED ? "0 (no limit)" : "%u", v);
		break;
	case CO_OPT_MS:
		co_duration_format(v, buf, len);
		break;
	case CO_OPT_SECS:
		co_duration_format(v * 1000ull, buf, len);
		break;
	case CO_OPT_TEXT:
		memcpy(&s, (const char *)o + d->offset, sizeof(s));
		snprintf(buf, len, "%s", s ? s : "");
		break;
	case CO_OPT_SECS_LIST: {
		unsigned list[CALLOUT_RECHECK_MAX];

		memcpy(list, (const char *)o + d->offset, sizeof(list));
		if (len)
			buf[0] = '\0';
		for (size_t i = 0; i < CALLOUT_RECHECK_MAX && list[i] && at < len; i++) {
			char one[32];
			int w = snprintf(buf + at, len - at, "%s%s", i ? "," : "",
			                 co_duration_format(list[i] * 1000ull, one, sizeof(one)));
			at += w > 0 ? (size_t)w : 0;
		}
		break;
	}
	}
	return buf;
}

const char *co_opt_format_default(const co_optdef *d, bool daemon, char *buf, size_t len)
{
	callout_options o;

	memset(&o, 0, sizeof(o));
	co_opt_defaults(&o, daemon);
	return co_opt_format(d, &o, buf, len);
}

bool co_opt_equal(const co_optdef *d, const callout_options *a, const callout_options *b)
{
	const char *sa, *sb;

	switch (d->type) {
	case CO_OPT_FLAG:
		return (a->flags & d->bit) == (b->flags & d->bit);
	case CO_OPT_TEXT:
		memcpy(&sa, (const char *)a + d->offset, sizeof(sa));
		memcpy(&sb, (const char *)b + d->offset, sizeof(sb));
		return strcmp(sa ? sa : "", sb ? sb : "") == 0;
	case CO_OPT_SECS_LIST:
		return memcmp((const char *)a + d->offset, (const char *)b + d->offset,
		              CALLOUT_RECHECK_MAX * sizeof(unsigned)) == 0;
	default:
		return uint_value(d, a) == uint_value(d, b);
	}
}
