/*
 * callout cache [--cache SPEC] [--json] COMMAND [ARGS]
 *
 *   list [--domain DOMAIN] [--verdict V] [--kind K] [--expired]
 *   get ADDRESS
 *   delete ADDRESS | @DOMAIN
 *   purge
 *   stats
 *
 * A thin layer over the library's blocking cache API (callout.h,
 * callout_cache_*): options anywhere on the line, one entry a line (human
 * or JSON Lines), and every string from the cache treated as untrusted:
 * a shared LMDB file or Redis server may hold anything anyone wrote.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "result_json.h"

#define CMD CLI_PROG " cache"

enum {
	OPT_CACHE = 256,
	OPT_DOMAIN,
	OPT_VERDICT,
	OPT_KIND,
	OPT_EXPIRED,
};

/* Leading '-': non-options come back in order as argument 1, so options
 * may stand anywhere (even with POSIXLY_CORRECT); ':' reports a missing
 * value as ':'. */
static const char short_opts[] = "-:jh";

static const struct option long_opts[] = {
    {"cache", required_argument, NULL, OPT_CACHE},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {"domain", required_argument, NULL, OPT_DOMAIN},
    {"verdict", required_argument, NULL, OPT_VERDICT},
    {"kind", required_argument, NULL, OPT_KIND},
    {"expired", no_argument, NULL, OPT_EXPIRED},
    {NULL, 0, NULL, 0},
};

/* Entry kinds, as the library names them, in the order stats shows them. */
static const char *const kinds[] = {"address",   "catch_all",   "null_sender", "no_mail",
                                    "blocks_us", "unreachable", "postmaster"};
#define NKINDS    (sizeof(kinds) / sizeof(kinds[0]))
#define NVERDICTS (CALLOUT_TEMPFAIL + 1)

typedef enum { C_NONE, C_LIST, C_GET, C_DELETE, C_PURGE, C_STATS } command;

static const struct {
	const char *name;
	command cmd;
	int min_args, max_args;
	const char *args; /* for messages */
} commands[] = {
    {"list", C_LIST, 0, 0, ""},
    {"get", C_GET, 1, 1, "ADDRESS"},
    {"delete", C_DELETE, 1, 1, "ADDRESS or @DOMAIN"},
    {"purge", C_PURGE, 0, 0, ""},
    {"stats", C_STATS, 0, 0, ""},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

struct config {
	const char *cache; /* --cache, or NULL for the default */
	bool json;
	command cmd;
	const char *cmd_name;
	char **rest; /* the command and its arguments, in order */
	char **args; /* the command's arguments */
	size_t nargs;
	/* list filters */
	const char *domain;
	unsigned verdicts; /* bit per callout_verdict; 0: any */
	unsigned kinds;    /* bit per index in kinds[]; 0: any */
	bool expired_only;
	int list_opt; /* the first list-only option given, for messages */
};

/* What a command needs while entries stream past. */
struct run {
	const struct config *cfg;
	long long now;
	unsigned long shown;
	bool write_failed;
	/* stats */
	unsigned long by_kind[NKINDS + 1]; /* the last: a kind we do not know */
	unsigned long by_verdict[NVERDICTS];
	unsigned long expired;
	unsigned long total;
};

/* ---- messages ---- */

static void put_escaped(FILE *fp, const char *s)
{
	if (s)
		cli_fput_escaped(fp, s, strlen(s), false);
}

/* The password of a spec "redis://[USER]:PASSWORD@HOST...", as written,
 * into pw; its length, 0 when none. */
static size_t spec_password(const char *spec, char *pw, size_t len)
{
	const char *rest = strstr(spec, "://"), *at = NULL, *colon;

	if (!rest)
		return 0;
	rest += 3;
	for (const char *p = rest; *p && *p != '/' && *p != '?'; p++)
		if (*p == '@')
			at = p;
	if (!at || !(colon = memchr(rest, ':', (size_t)(at - rest))))
		return 0;
	size_t n = (size_t)(at - colon - 1);
	if (n == 0 || n >= len)
		return 0;
	memcpy(pw, colon + 1, n);
	pw[n] = '\0';
	return n;
}

/* Write text with the Redis password of spec, if any, as "***": it must
 * not end up in messages or logs. */
static void put_spec(FILE *fp, const char *spec, const char *text)
{
	const char *hit;
	char pw[512];
	size_t pwlen = spec_password(spec, pw, sizeof(pw));

	while (pwlen && (hit = strstr(text, pw))) {
		cli_fput_escaped(fp, text, (size_t)(hit - text), false);
		fputs("***", fp);
		text = hit + pwlen;
	}
	put_escaped(fp, text);
}

/* ---- option parsing ---- */

/* A comma-separated list of names into a bit set; false on an unknown
 * or empty name. */
static bool parse_names(const char *value, const char *const *names, size_t n, unsigned *bits)
{
	const char *p = value;

	if (!*value)
		return false;
	for (;;) {
		size_t len = strcspn(p, ",");
		size_t i;

		for (i = 0; i < n; i++)
			if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0)
				break;
		if (i == n)
			return false;
		*bits |= 1u << i;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

static int getopt_error(int c, int argc, char **argv)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";

	if (c == ':') {
		if (strncmp(arg, "--", 2) == 0)
			cli_errorf(CMD, "option '--%s' requires a value",
			           cli_opt_name(long_opts, optopt));
		else
			cli_errorf(CMD, "option '-%c' requires a value", optopt);
	} else if (optopt >= 256 || (optopt > 0 && strchr(short_opts + 2, optopt))) {
		cli_errorf(CMD, "option '--%s' takes no value", cli_opt_name(long_opts, optopt));
	} else if (optopt > 0x20 && optopt < 0x7f) {
		cli_errorf(CMD, "unknown option '-%c'", optopt);
	} else if (optopt > 0) {
		cli_errorf(CMD, "unknown option '-\\x%02X'", (unsigned)optopt & 0xffu);
	} else {
		fputs(CMD ": unknown or ambiguous option '", stderr);
		cli_fput_escaped(stderr, arg, strcspn(arg, "="), false);
		fputs("'\n", stderr);
	}
	return cli_try_help(CMD);
}

static int set_command(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			cfg->cmd = commands[i].cmd;
			cfg->cmd_name = commands[i].name;
			return -1;
		}
	}
	fputs(CMD ": unknown command '", stderr);
	put_escaped(stderr, name);
	fputs("' (list, get, delete, purge or stats)\n", stderr);
	return cli_try_help(CMD);
}

static int check_args(const struct config *cfg)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (commands[i].cmd != cfg->cmd)
			continue;
		if (cfg->nargs < (size_t)commands[i].min_args) {
			cli_errorf(CMD, "'%s' needs an argument: %s", cfg->cmd_name,
			           commands[i].args);
			return cli_try_help(CMD);
		}
		if (cfg->nargs > (size_t)commands[i].max_args) {
			fprintf(stderr, CMD ": unexpected argument '");
			put_escaped(stderr, cfg->args[commands[i].max_args]);
			if (commands[i].max_args == 0)
				fprintf(stderr, "': '%s' takes none\n", cfg->cmd_name);
			else
				fprintf(stderr, "': '%s' takes one %s\n", cfg->cmd_name,
				        commands[i].args);
			return cli_try_help(CMD);
		}
	}
	if (cfg->list_opt && cfg->cmd != C_LIST) {
		cli_errorf(CMD, "option '--%s' is for 'list' only",
		           cli_opt_name(long_opts, cfg->list_opt));
		return cli_try_help(CMD);
	}
	return -1;
}

/* -1 to go on, or an exit status.  cfg->rest (the command and its
 * arguments) is to be freed by the caller. */
static int parse_args(int argc, char **argv, struct config *cfg)
{
	static const char *const verdict_names[NVERDICTS] = {"valid", "invalid", "unknown",
	                                                     "tempfail"};
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	size_t nrest = 0;
	int c, rc = -1;

	if (!rest) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	opterr = 0;
	optind = 1;
	while (rc < 0 && (c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		switch (c) {
		case 1: /* a command or an argument */
			rest[nrest++] = optarg;
			break;
		case 'h':
			free(rest);
			cli_cache_help(stdout);
			return fflush(stdout) == 0 ? CLI_EXIT_VALID : CLI_EXIT_OTHER;
		case 'j':
			cfg->json = true;
			break;
		case OPT_CACHE:
			if (!*optarg)
				rc = cli_bad_value(
				    CMD, long_opts, c, optarg,
				    "expected lmdb:PATH, redis://HOST[:PORT][/DB] or memory");
			cfg->cache = optarg;
			break;
		case OPT_DOMAIN:
			if (!*optarg || strcmp(optarg, "@") == 0)
				rc = cli_bad_value(CMD, long_opts, c, optarg,
				                   "expected a domain name");
			cfg->domain = optarg;
			if (!cfg->list_opt)
				cfg->list_opt = c;
			break;
		case OPT_VERDICT:
			if (!parse_names(optarg, verdict_names, NVERDICTS, &cfg->verdicts))
				rc = cli_bad_value(CMD, long_opts, c, optarg,
				                   "expected valid, invalid, unknown or tempfail "
				                   "(or several, separated by commas)");
			if (!cfg->list_opt)
				cfg->list_opt = c;
			break;
		case OPT_KIND:
			if (!parse_names(optarg, kinds, NKINDS, &cfg->kinds))
				rc = cli_bad_value(
				    CMD, long_opts, c, optarg,
				    "expected address, catch_all, null_sender, no_mail, "
				    "blocks_us, unreachable or postmaster (or several, "
				    "separated by commas)");
			if (!cfg->list_opt)
				cfg->list_opt = c;
			break;
		case OPT_EXPIRED:
			cfg->expired_only = true;
			if (!cfg->list_opt)
				cfg->list_opt = c;
			break;
		default:
			rc = getopt_error(c, argc, argv);
			break;
		}
	}
	if (rc >= 0) {
		free(rest);
		return rc;
	}
	while (optind < argc) /* after "--" */
		rest[nrest++] = argv[optind++];
	if (nrest == 0) {
		free(rest);
		cli_errorf(CMD, "no command given (list, get, delete, purge or stats)");
		return cli_try_help(CMD);
	}
	cfg->rest = rest; /* freed by the caller */
	rc = set_command(cfg, rest[0]);
	if (rc < 0) {
		cfg->args = rest + 1;
		cfg->nargs = nrest - 1;
		rc = check_args(cfg);
	}
	return rc;
}

/* ---- formatting ---- */

/* "45s", "12m30s", "3h12m", "6d20h": the two largest units. */
static void fmt_duration(char *buf, size_t len, long long secs)
{
	static const struct {
		long long secs;
		char unit;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};

	if (secs < 0)
		secs = 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		long long major = secs / units[i].secs;
		int minor;

		if (major == 0 && units[i].secs > 1)
			continue;
		if (units[i].secs == 1) {
			snprintf(buf, len, "%llds", secs);
			return;
		}
		minor = (int)((secs % units[i].secs) / units[i + 1].secs);
		if (minor)
			snprintf(buf, len, "%lld%c%d%c", major, units[i].unit, minor,
			         units[i + 1].unit);
		else
			snprintf(buf, len, "%lld%c", major, units[i].unit);
		return;
	}
}

/* "512 B", "7.5 KiB", "12 KiB", "1 GiB". */
static void fmt_bytes(char *buf, size_t len, unsigned long long n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	unsigned long long scale = 1;
	size_t u = 0;

	while (n / scale >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		scale *= 1024;
		u++;
	}
	/* tenths, rounded */
	unsigned long long tenths = (unsigned long long)(((long double)n * 10 + scale / 2) / scale);
	if (u > 0 && tenths < 100 && tenths % 10)
		snprintf(buf, len, "%llu.%llu %s", tenths / 10, tenths % 10, units[u]);
	else
		snprintf(buf, len, "%llu %s", (tenths + 5) / 10, units[u]);
}

/*
 * A growing line buffer: a part of the human line is built in it (escaped)
 * so that it can be padded to a column.  Width counts code points, which
 * is close enough for alignment.
 */
struct col {
	char *buf;
	size_t len;
	FILE *fp;  /* where to write the column's text */
	FILE *out; /* the line */
};

/* Start a column of the line written to out.  Without memory for the
 * buffer, the text goes straight to out, unpadded. */
static FILE *col_open(struct col *c, FILE *out)
{
	c->buf = NULL;
	c->len = 0;
	c->out = out;
	c->fp = open_memstream(&c->buf, &c->len);
	return c->fp ? c->fp : out;
}

static size_t utf8_width(const char *s, size_t len)
{
	size_t w = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			w++;
	return w;
}

/* Write the column to the line, padded with spaces to width, or without
 * the spaces it ends with (trim). */
static void col_close(struct col *c, size_t width, bool trim)
{
	if (!c->fp)
		return;
	if (fflush(c->fp) == 0) {
		size_t w;

		while (trim && c->len > 0 && c->buf[c->len - 1] == ' ')
			c->len--;
		w = utf8_width(c->buf, c->len);

		fwrite(c->buf, 1, c->len, c->out);
		while (w++ < width)
			putc_unlocked(' ', c->out);
	}
	fclose(c->fp);
	free(c->buf);
}

static bool nonempty(const char *s)
{
	return s && *s;
}

static bool is_expired(const struct run *r, const callout_cache_entry *e)
{
	/* the library uses an entry while expires > now */
	return e->expires <= r->now;
}

/* What the entry is about: "alice@example.org", "alice@example.org from
 * bob@example.net", "@example.org catch_all yes". */
static void put_subject(FILE *fp, const callout_cache_entry *e)
{
	if (strcmp(e->kind, "address") == 0) {
		put_escaped(fp, nonempty(e->address) ? e->address : "?");
		if (nonempty(e->sender)) {
			fputs(" from ", fp);
			put_escaped(fp, e->sender);
		}
		return;
	}
	putc_unlocked('@', fp);
	put_escaped(fp, e->domain);
	putc_unlocked(' ', fp);
	put_escaped(fp, e->kind);
	if (strcmp(e->kind, "catch_all") == 0) {
		fputs(e->catch_all ? " yes" : " no", fp);
	} else if (strcmp(e->kind, "postmaster") == 0) {
		fputs(e->verdict == CALLOUT_VALID ? " accepted" : " refused", fp);
	} else if (strcmp(e->kind, "null_sender") == 0) {
		fputs(" refused", fp);
		if (nonempty(e->sender)) {
			fputs(", fallback ", fp);
			put_escaped(fp, e->sender);
			fputs(" works", fp);
		}
	}
}

/*
 * Columns, padded (each entry is one line; wrapped here):
 *   alice@example.org   valid accepted 250 2.1.5   age 3h12m   expires in 6d20h
 *       [mx.example.org 192.0.2.1]
 *   @example.net no_mail   invalid nxdomain   age 5m   EXPIRED 2h ago
 */
static void put_line(const struct run *r, FILE *fp, const callout_cache_entry *e)
{
	char age[64], exp[64];
	const char *sep = " (";
	struct col c;
	FILE *col;
	int pad;

	put_subject(col_open(&c, fp), e);
	col_close(&c, 30, false);
	fputs("  ", fp);
	col = col_open(&c, fp);
	fprintf(col, "%s %s", callout_verdict_name(e->verdict), callout_reason_name(e->reason));
	if (e->code)
		fprintf(col, " %d", e->code);
	if (nonempty(e->enhanced)) {
		putc_unlocked(' ', col);
		put_escaped(col, e->enhanced);
	}
	col_close(&c, 34, false);
	fmt_duration(age, sizeof(age), r->now - e->probed);
	fprintf(fp, "  age %-6s  ", age);
	if (is_expired(r, e)) {
		fmt_duration(exp, sizeof(exp), r->now - e->expires);
		pad = fprintf(fp, "EXPIRED %s ago", exp);
	} else {
		fmt_duration(exp, sizeof(exp), e->expires - r->now);
		pad = fprintf(fp, "expires in %s", exp);
	}
	while (pad++ < 17)
		putc_unlocked(' ', fp);
	if (nonempty(e->mx) || nonempty(e->ip)) {
		fputs("  [", fp);
		if (nonempty(e->mx) && !(nonempty(e->ip) && strcmp(e->mx, e->ip) == 0)) {
			put_escaped(fp, e->mx);
			if (nonempty(e->ip))
				putc_unlocked(' ', fp);
		}
		put_escaped(fp, e->ip);
		putc_unlocked(']', fp);
	}
	if (e->tls) {
		fprintf(fp, "%stls", sep);
		sep = ", ";
	}
	if (e->catch_all && strcmp(e->kind, "address") == 0 && e->reason != CALLOUT_R_CATCH_ALL) {
		fprintf(fp, "%scatch-all", sep);
		sep = ", ";
	}
	if (sep[0] == ',')
		putc_unlocked(')', fp);
	if (e->verdict != CALLOUT_VALID && nonempty(e->text)) {
		fputs("  \"", fp);
		cli_fput_escaped(fp, e->text, strlen(e->text), true);
		putc_unlocked('"', fp);
	}
}

/* The line without the padding it may end with. */
static void print_human(const struct run *r, FILE *fp, const callout_cache_entry *e)
{
	struct col line;
	FILE *lp = col_open(&line, fp);

	put_line(r, lp, e);
	col_close(&line, 0, true);
	putc_unlocked('\n', fp);
}

/* Print o as one line and free it; false when out of memory.  Anyone
 * who can write to the cache (a shared Redis) chooses its strings: ASCII
 * only, so that bidirectional or invisible characters reach a terminal
 * as \uXXXX escapes, whatever reads the JSON. */
static bool dump_line(FILE *fp, json_t *o, bool ok)
{
	const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII;

	if (ok)
		ok = json_dumpf(o, fp, flags) == 0 || ferror(fp);
	json_decref(o);
	if (ok)
		putc_unlocked('\n', fp);
	return ok;
}

static bool print_json(const struct run *r, FILE *fp, const callout_cache_entry *e)
{
	json_t *j = json_object();
	long long age = r->now - e->probed;
	bool ok = j != NULL;

	ok = ok && co_json_put(j, "kind", co_json_cstr(e->kind));
	ok = ok && co_json_put(j, "domain", co_json_cstr(e->domain));
	ok = ok && co_json_put(j, "address", co_json_cstr(e->address));
	ok = ok && co_json_put(j, "sender", co_json_cstr(e->sender));
	ok = ok && co_json_put(j, "verdict", json_string(callout_verdict_name(e->verdict)));
	ok = ok && co_json_put(j, "reason", json_string(callout_reason_name(e->reason)));
	ok = ok && co_json_put(j, "stage", json_string(callout_stage_name(e->stage)));
	ok = ok && co_json_put(j, "code", json_integer(e->code));
	ok = ok && co_json_put(j, "enhanced", co_json_cstr(e->enhanced));
	ok = ok && co_json_put(j, "text", co_json_cstr(e->text));
	ok = ok && co_json_put(j, "mx", co_json_cstr(e->mx));
	ok = ok && co_json_put(j, "ip", co_json_cstr(e->ip));
	ok = ok && co_json_put(j, "catch_all", json_boolean(e->catch_all));
	ok = ok && co_json_put(j, "tls", json_boolean(e->tls));
	ok = ok && co_json_put(j, "probed", json_integer(e->probed));
	ok = ok && co_json_put(j, "expires", json_integer(e->expires));
	ok = ok && co_json_put(j, "age", json_integer(age > 0 ? age : 0));
	ok = ok && co_json_put(j, "expired", json_boolean(is_expired(r, e)));
	return dump_line(fp, j, ok);
}

/* ---- commands ---- */

static int kind_index(const char *kind)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(kinds[i], kind) == 0)
			return (int)i;
	return -1;
}

static bool selected(const struct run *r, const callout_cache_entry *e)
{
	const struct config *cfg = r->cfg;
	int k = kind_index(e->kind);

	if (cfg->kinds && (k < 0 || !(cfg->kinds & (1u << k))))
		return false;
	if (cfg->verdicts &&
	    ((unsigned)e->verdict >= NVERDICTS || !(cfg->verdicts & (1u << e->verdict))))
		return false;
	if (cfg->expired_only && !is_expired(r, e))
		return false;
	return true;
}

/* Print one entry; non-zero stops the scan (the reader went away). */
static int show(void *arg, const callout_cache_entry *e)
{
	struct run *r = arg;
	FILE *fp = stdout;

	if (!selected(r, e))
		return 0;
	r->shown++;
	if (r->cfg->json) {
		if (!print_json(r, fp, e)) {
			cli_errorf(CMD, "out of memory");
			r->write_failed = true;
			return 1;
		}
	} else {
		print_human(r, fp, e);
	}
	if (ferror(fp)) {
		r->write_failed = true;
		return 1;
	}
	return 0;
}

static int count(void *arg, const callout_cache_entry *e)
{
	struct run *r = arg;
	int k = kind_index(e->kind);

	r->total++;
	r->by_kind[k < 0 ? NKINDS : (size_t)k]++;
	if (k == 0 && (unsigned)e->verdict < NVERDICTS)
		r->by_verdict[e->verdict]++;
	if (is_expired(r, e))
		r->expired++;
	return 0;
}

static int cache_error(const char *what, callout_status st)
{
	cli_errorf(CMD, "cannot %s: %s", what, callout_strerror(st));
	return CLI_EXIT_OTHER;
}

static void note_damaged(unsigned long damaged)
{
	if (damaged)
		cli_errorf(CMD, "note: %lu damaged record%s skipped ('" CMD " purge' deletes them)",
		           damaged, damaged == 1 ? "" : "s");
}

static int cmd_list(callout_cache *cc, struct run *r)
{
	unsigned long damaged = 0;
	callout_status st = callout_cache_list(cc, r->cfg->domain, show, r, &damaged);

	if (st == CALLOUT_EINVAL && r->cfg->domain)
		return cli_bad_value(CMD, long_opts, OPT_DOMAIN, r->cfg->domain,
		                     "expected a domain name");
	if (st != CALLOUT_OK && !r->write_failed)
		return cache_error("list the cache", st);
	if (!r->write_failed)
		note_damaged(damaged);
	return CLI_EXIT_VALID;
}

static int cmd_get(callout_cache *cc, struct run *r)
{
	const char *addr = r->cfg->args[0];
	callout_status st = callout_cache_get(cc, addr, show, r);

	if (st == CALLOUT_EINVAL) {
		fputs(CMD ": invalid address '", stderr);
		put_escaped(stderr, addr);
		fputs("': expected local@domain\n", stderr);
		return cli_try_help(CMD);
	}
	if (st != CALLOUT_OK && !r->write_failed)
		return cache_error("read the cache", st);
	if (r->shown == 0 && !r->cfg->json) {
		put_escaped(stdout, addr);
		fputs(": nothing cached\n", stdout);
	}
	return r->shown ? CLI_EXIT_VALID : CLI_EXIT_INVALID;
}

static int print_count(const struct config *cfg, const char *key, const char *verb, unsigned long n)
{
	if (cfg->json) {
		json_t *j = json_object();

		if (!dump_line(stdout, j, j && co_json_put(j, key, json_integer((json_int_t)n)))) {
			cli_errorf(CMD, "out of memory");
			return CLI_EXIT_OTHER;
		}
	} else {
		printf("%lu %s %s\n", n, n == 1 ? "entry" : "entries", verb);
	}
	return CLI_EXIT_VALID;
}

static int cmd_delete(callout_cache *cc, struct run *r)
{
	const char *what = r->cfg->args[0];
	unsigned long deleted = 0;
	callout_status st = callout_cache_delete(cc, what, &deleted);

	if (st == CALLOUT_EINVAL) {
		fputs(CMD ": cannot delete '", stderr);
		put_escaped(stderr, what);
		fputs("': expected an address local@domain or @domain\n", stderr);
		return cli_try_help(CMD);
	}
	if (st != CALLOUT_OK) {
		if (deleted)
			cli_errorf(CMD, "%lu entries were deleted before the error", deleted);
		return cache_error("delete", st);
	}
	return print_count(r->cfg, "deleted", "deleted", deleted);
}

static int cmd_purge(callout_cache *cc, struct run *r)
{
	unsigned long deleted = 0;
	/* The library purges what expired before the time it is given;
	 * list calls an entry expired from the second it stops being used
	 * (expires <= now), so purge up to the end of this second. */
	callout_status st = callout_cache_purge(cc, r->now + 1, &deleted);

	if (st != CALLOUT_OK) {
		if (deleted)
			cli_errorf(CMD, "%lu entries were deleted before the error", deleted);
		return cache_error("purge", st);
	}
	return print_count(r->cfg, "purged", "purged", deleted);
}

static int stats_json(const struct run *r, const callout_cache_stats *cs, unsigned long damaged)
{
	static const char *const vnames[NVERDICTS] = {"valid", "invalid", "unknown", "tempfail"};
	json_t *j = json_object(), *k = json_object(), *v = json_object();
	bool ok = j && k && v;

	for (size_t i = 0; ok && i < NKINDS; i++)
		ok = co_json_put(k, kinds[i], json_integer((json_int_t)r->by_kind[i]));
	if (ok && r->by_kind[NKINDS])
		ok = co_json_put(k, "other", json_integer((json_int_t)r->by_kind[NKINDS]));
	for (size_t i = 0; ok && i < NVERDICTS; i++)
		ok = co_json_put(v, vnames[i], json_integer((json_int_t)r->by_verdict[i]));
	ok = ok && co_json_put(j, "backend", co_json_cstr(cs->backend));
	ok = ok && co_json_put(j, "total", json_integer((json_int_t)(r->total + damaged)));
	ok = ok && co_json_put(j, "entries", json_integer((json_int_t)r->total));
	ok = ok && co_json_put(j, "expired", json_integer((json_int_t)r->expired));
	ok = ok && co_json_put(j, "damaged", json_integer((json_int_t)damaged));
	if (ok) { /* co_json_put() takes k and v, even when it fails */
		ok = co_json_put(j, "kinds", k);
		k = NULL;
	}
	if (ok) {
		ok = co_json_put(j, "verdicts", v);
		v = NULL;
	}
	ok = ok && co_json_put(j, "bytes_used", json_integer((json_int_t)cs->bytes_used));
	ok = ok && co_json_put(j, "bytes_limit", json_integer((json_int_t)cs->bytes_limit));
	json_decref(k);
	json_decref(v);
	if (!dump_line(stdout, j, ok)) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	return CLI_EXIT_VALID;
}

/*
 * backend      lmdb
 * entries      12 (3 expired, 1 damaged)
 *   address    8 (valid 5, invalid 2, unknown 1, tempfail 0)
 *   catch_all  1
 *   ...
 * size         48 KiB used of 1 GiB
 */
static int stats_human(const struct run *r, const callout_cache_stats *cs, unsigned long damaged)
{
	char used[32], limit[32];

	fputs("backend       ", stdout);
	put_escaped(stdout, cs->backend);
	printf("\nentries       %lu (%lu expired, %lu damaged)\n", r->total + damaged, r->expired,
	       damaged);
	for (size_t i = 0; i < NKINDS; i++) {
		printf("  %-12s%lu", kinds[i], r->by_kind[i]);
		if (i == 0)
			printf(" (valid %lu, invalid %lu, unknown %lu, tempfail %lu)",
			       r->by_verdict[CALLOUT_VALID], r->by_verdict[CALLOUT_INVALID],
			       r->by_verdict[CALLOUT_UNKNOWN], r->by_verdict[CALLOUT_TEMPFAIL]);
		putchar('\n');
	}
	if (r->by_kind[NKINDS])
		printf("  %-12s%lu\n", "other", r->by_kind[NKINDS]);
	if (damaged)
		printf("  %-12s%lu\n", "damaged", damaged);
	fmt_bytes(used, sizeof(used), cs->bytes_used);
	if (cs->bytes_limit) {
		fmt_bytes(limit, sizeof(limit), cs->bytes_limit);
		printf("size          %s used of %s (%.1f%%)\n", used, limit,
		       100.0 * (double)cs->bytes_used / (double)cs->bytes_limit);
	} else {
		printf("size          %s used (no limit)\n", used);
	}
	return CLI_EXIT_VALID;
}

static int cmd_stats(callout_cache *cc, struct run *r)
{
	callout_cache_stats cs = {0};
	unsigned long damaged = 0;
	callout_status st = callout_cache_list(cc, NULL, count, r, &damaged);

	if (st != CALLOUT_OK)
		return cache_error("read the cache", st);
	st = callout_cache_stats_get(cc, &cs);
	if (st != CALLOUT_OK)
		return cache_error("get the cache's statistics", st);
	if (!cs.backend)
		cs.backend = "?";
	return r->cfg->json ? stats_json(r, &cs, damaged) : stats_human(r, &cs, damaged);
}

/* ---- main ---- */

/* The library's reason often starts by naming the store again
 * ("lmdb:PATH: ...", "cache redis://HOST:PORT: ..."): say it once. */
static const char *reason_only(const char *spec, const char *why)
{
	const char *p = why, *colon;

	if (strncmp(p, "cache ", 6) == 0)
		p += 6;
	if (strncmp(p, spec, strlen(spec)) == 0 && strncmp(p + strlen(spec), ": ", 2) == 0)
		return p + strlen(spec) + 2;
	if (strncmp(p, "redis://", 8) == 0 && strncmp(spec, "redis://", 8) == 0 &&
	    (colon = strstr(p, ": ")) && !memchr(p, ' ', (size_t)(colon - p)))
		return colon + 2;
	return why;
}

static int open_error(const char *spec, const char *why, int rc)
{
	fputs(CMD ": cannot open cache ", stderr);
	put_spec(stderr, spec, spec);
	fputs(": ", stderr);
	put_spec(stderr, spec, reason_only(spec, why));
	fputc('\n', stderr);
	return rc == CLI_EXIT_USAGE ? cli_try_help(CMD) : rc;
}

static int open_cache(const char *spec, callout_cache **cc)
{
	char err[512] = "";
	struct stat st_file;
	callout_status st;

	/* Looking must not create: a mistyped path is an error, not an
	 * empty cache (the library would make the file). */
	if (strncmp(spec, "lmdb:", 5) == 0 && spec[5] && stat(spec + 5, &st_file) != 0)
		return open_error(spec,
		                  errno == ENOENT ? "no such file (nothing was ever cached there)"
		                                  : strerror(errno),
		                  CLI_EXIT_OTHER);
	cli_ids ids;
	if (cli_cache_owner_begin(CMD, spec, &ids) < 0)
		return CLI_EXIT_OTHER;
	st = callout_cache_open(spec, cc, err, sizeof(err));
	cli_cache_owner_end(&ids);
	if (st == CALLOUT_OK)
		return -1;
	/* a spec that does not parse (or "none") is the user's to fix */
	return open_error(spec, err[0] ? err : callout_strerror(st),
	                  st == CALLOUT_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_OTHER);
}

static int run(const struct config *cfg)
{
	struct run r = {.cfg = cfg};
	callout_cache *cc = NULL;
	char specbuf[4200];
	const char *spec;
	int rc;

	if (!cli_clock_check()) {
		fputs(CMD ": invalid CALLOUT_NOW '", stderr);
		put_escaped(stderr, getenv("CALLOUT_NOW"));
		fputs("': expected +SECONDS, -SECONDS or a Unix time\n", stderr);
		return CLI_EXIT_USAGE;
	}
	r.now = cli_clock(NULL);
	spec = cli_cache_spec(cfg->cache, specbuf, sizeof(specbuf));
	rc = open_cache(spec, &cc);
	if (rc >= 0)
		return rc;

	switch (cfg->cmd) {
	case C_LIST:
		rc = cmd_list(cc, &r);
		break;
	case C_GET:
		rc = cmd_get(cc, &r);
		break;
	case C_DELETE:
		rc = cmd_delete(cc, &r);
		break;
	case C_PURGE:
		rc = cmd_purge(cc, &r);
		break;
	case C_STATS:
		rc = cmd_stats(cc, &r);
		break;
	default:
		rc = CLI_EXIT_USAGE;
		break;
	}
	callout_cache_close(cc);
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout) || r.write_failed) {
		/* a reader that went away needs no message */
		if (errno != EPIPE && !r.write_failed)
			cli_errorf(CMD, "cannot write the output: %s",
			           strerror(errno ? errno : EIO));
		if (rc == CLI_EXIT_VALID || rc == CLI_EXIT_INVALID)
			rc = CLI_EXIT_OTHER;
	}
	return rc;
}

int cli_cache_main(int argc, char **argv)
{
	struct config cfg = {.cmd = C_NONE};
	int rc = parse_args(argc, argv, &cfg);

	if (rc < 0)
		rc = run(&cfg);
	free(cfg.rest);
	return rc;
}

void cli_cache_help(FILE *fp)
{
	fputs("Usage: " CMD " [--cache SPEC] [--json] COMMAND [ARGS]\n"
	      "\n"
	      "List, inspect and tidy the cache that '" CLI_PROG " check' fills: the answers\n"
	      "for addresses (one per address and MAIL FROM) and the facts about domains\n"
	      "(catch_all, null_sender, no_mail, blocks_us, unreachable, postmaster).\n"
	      "\n"
	      "Commands:\n"
	      "  list [--domain DOMAIN] [--verdict V] [--kind K] [--expired]\n"
	      "                        every entry, one a line; expired ones are marked\n"
	      "  get ADDRESS           the entries about ADDRESS: its answers (one per\n"
	      "                        sender) and the facts about its domain\n"
	      "  delete ADDRESS        delete every answer for ADDRESS\n"
	      "  delete @DOMAIN        delete the facts about DOMAIN and the answers for\n"
	      "                        all its addresses\n"
	      "  purge                 delete the expired and the damaged entries\n"
	      "  stats                 count the entries by kind and verdict; the size\n"
	      "\n"
	      "Options (before or after COMMAND):\n"
	      "      --cache SPEC      the cache: lmdb:PATH,\n"
	      "                        redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=P] or\n"
	      "                        memory (default: $CALLOUT_CACHE, else\n"
	      "                        lmdb:" CLI_STATE_DIR "/cache.lmdb when that directory\n"
	      "                        is writable, else\n"
	      "                        lmdb:$XDG_STATE_HOME/callout/cache.lmdb)\n"
	      "  -j, --json            JSON Lines: one object an entry (list, get), or one\n"
	      "                        object (delete, purge, stats)\n"
	      "  -h, --help            show this help and exit\n"
	      "\n"
	      "Options of list:\n"
	      "      --domain DOMAIN   only DOMAIN's facts and its addresses' answers\n"
	      "      --verdict V       only entries with verdict V: valid, invalid,\n"
	      "                        unknown, tempfail (several: separate with commas)\n"
	      "      --kind K          only entries of kind K: address, catch_all,\n"
	      "                        null_sender, no_mail, blocks_us, unreachable,\n"
	      "                        postmaster (several: separate with commas)\n"
	      "      --expired         only the expired entries\n"
	      "\n"
	      "Human output of list and get:\n"
	      "  ADDRESS [from SENDER]  VERDICT REASON CODE ENHANCED  age AGE\n"
	      "      expires in TIME | EXPIRED TIME ago  [MX IP] (tls, catch-all)  \"TEXT\"\n"
	      "  @DOMAIN KIND [yes|no|accepted|refused]  VERDICT REASON ...\n"
	      "JSON members: kind, domain, address, sender, verdict, reason, stage, code,\n"
	      "enhanced, text, mx, ip, catch_all, tls, probed and expires (Unix times),\n"
	      "age (seconds), expired.\n"
	      "\n"
	      "The clock is moved by $CALLOUT_NOW (\"+SECONDS\", \"-SECONDS\" or a Unix time).\n"
	      "\n"
	      "Exit status:\n"
	      "  0  done (get: something is cached for ADDRESS)\n"
	      "  1  get: nothing is cached for ADDRESS\n"
	      "  2  usage error: unknown command or option, bad value or argument\n"
	      "  3  the cache cannot be opened or read, or output failed\n"
	      "See callout(1) for what the cache remembers.\n",
	      fp);
}
