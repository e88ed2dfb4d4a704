/*
 * callout check [options] ADDRESS... [-f FILE]...
 *
 * Parses the options into a callout_options, builds one context on the
 * library's own event loop, keeps up to --concurrency verifications in
 * flight (each finished one starts the next, so input is read only as
 * fast as it is verified) and prints each result as it completes, or in
 * input order through a bounded reorder window (--ordered).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "option_table.h"
#include "proxy.h"

#define CMD             CLI_PROG " check"
#define CONCURRENCY_MAX 10000ul
#define FD_RESERVE      32 /* descriptors for stdio, DNS, files */
#define FD_PER_JOB      2
/* --ordered: results held for output in input order, at the most: input
 * is not read further while the oldest one is outstanding and this many
 * are started or waiting.  Memory: one formatted result each. */
#define ORDER_WINDOW_MIN 1024ul
#define ORDER_WINDOW_PER 8ul /* per --concurrency */

/* The command's own options; those of the option table follow them in
 * long_opts, built at start (build_long_opts). */
enum {
	OPT_ROUTE = 256,
	OPT_ROUTES_FILE,
	OPT_NO_CACHE,
	OPT_CACHE,
	OPT_TRACE,
	OPT_FORMAT,
	OPT_CSV,
	OPT_COLUMN,
	OPT_HEADER,
	OPT_NO_HEADER,
	OPT_ORDERED,
	OPT_RESUME,
	OPT_NO_PROGRESS,
	OPT_SUMMARY,
	OPT_TABLE, /* table entry i: OPT_TABLE + 2i, its --no- form OPT_TABLE + 2i + 1 */
};

static const char short_opts[] = ":jtf:c:qhp:o:";

static const struct option own_opts[] = {
    {"json", no_argument, NULL, 'j'},
    {"transcript", no_argument, NULL, 't'},
    {"file", required_argument, NULL, 'f'},
    {"concurrency", required_argument, NULL, 'c'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"route", required_argument, NULL, OPT_ROUTE},
    {"routes-file", required_argument, NULL, OPT_ROUTES_FILE},
    {"cache", required_argument, NULL, OPT_CACHE},
    {"no-cache", no_argument, NULL, OPT_NO_CACHE},
    {"trace", no_argument, NULL, OPT_TRACE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"csv", no_argument, NULL, OPT_CSV},
    {"column", required_argument, NULL, OPT_COLUMN},
    {"header", no_argument, NULL, OPT_HEADER},
    {"no-header", no_argument, NULL, OPT_NO_HEADER},
    {"ordered", no_argument, NULL, OPT_ORDERED},
    {"output", required_argument, NULL, 'o'},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"summary", no_argument, NULL, OPT_SUMMARY},
};

#define OWN_OPTS (sizeof(own_opts) / sizeof(own_opts[0]))

/* Our options, then two per table entry (a flag's --no- form), then the
 * end.  The names live in flag_names. */
static struct option long_opts[OWN_OPTS + 2 * CO_OPT_MAX + 1];
static char flag_names[2 * CO_OPT_MAX][48];

static void build_long_opts(void)
{
	const co_optdef *table;
	size_t n, k = OWN_OPTS;

	memcpy(long_opts, own_opts, sizeof(own_opts));
	table = co_opt_table(&n);
	for (size_t i = 0; i < n; i++) {
		const co_optdef *d = &table[i];
		char *name = flag_names[2 * i], *no = flag_names[2 * i + 1];

		if (d->where & CO_OPT_NO_CLI)
			continue;
		co_opt_flag(d, name, sizeof(flag_names[0]));
		long_opts[k++] =
		    (struct option){name, d->type == CO_OPT_FLAG ? no_argument : required_argument,
		                    NULL, OPT_TABLE + 2 * (int)i};
		if (d->type == CO_OPT_FLAG) {
			memcpy(no, "no-", 3);
			co_opt_flag(d, no + 3, sizeof(flag_names[0]) - 3);
			long_opts[k++] =
			    (struct option){no, no_argument, NULL, OPT_TABLE + 2 * (int)i + 1};
		}
	}
	long_opts[k] = (struct option){NULL, 0, NULL, 0};
}

/* A --route or --routes-file, applied in command line order. */
struct route_arg {
	bool is_file;
	const char *value;
};

struct config {
	callout_options opts;
	cli_output out;
	bool quiet;
	unsigned long concurrency;
	char *dns_servers; /* "a,b,..." built from every --dns-server */
	struct route_arg *routes;
	size_t nroutes;
	const char **files;
	size_t nfiles;
	const char *cache; /* --cache, NULL: the default */
	char cache_buf[4200];
	bool format_set;
	bool csv; /* --csv */
	cli_csv_opts csv_opts;
	bool ordered;
	const char *output, *resume; /* --output, --resume */
	bool no_progress, summary;
};

struct app;

struct job {
	struct app *app;
	callout_query *q;
	char *addr;
	size_t len;
	bool busy;
	bool held;              /* greylisted, waiting for its re-check */
	unsigned long long seq; /* --ordered: its place */
	cli_origin from;        /* from.kept is ours */
};

/* --ordered: a result waiting for the ones before it. */
struct slot {
	char *text; /* formatted; NULL: not there yet */
	size_t len;
};

struct app {
	const struct config *cfg;
	callout_ctx *ctx;
	cli_input *in;
	struct job *jobs;
	size_t *free_jobs; /* stack of idle job indexes */
	size_t nfree;
	size_t njobs;    /* --concurrency, and room for those held for a re-check */
	size_t inflight; /* held ones included */
	size_t held;     /* greylisted, waiting for their re-check (not counted
	                    against --concurrency: they are idle) */
	struct event *sig_int, *sig_term;
	struct job *current; /* the job whose callback is running */
	bool input_done;
	bool stopping;           /* start nothing new */
	int interrupted;         /* the signal that stopped us, or 0 */
	unsigned long cancelled; /* in flight when it came */
	cli_done *done;          /* --resume: already in the file */
	cli_progress *progress;
	struct event *timer;
	struct slot *slots; /* --ordered: window slots, by seq % window */
	size_t window;
	unsigned long long next_seq, emit_seq;
	bool any_invalid;
	bool any_other;   /* unknown or tempfail */
	bool failed;      /* an error: the run is incomplete */
	bool write_error; /* the output failed: write nothing more */
	long long total;  /* items of the input, -1: unknown */
};

/* ---- messages ---- */

/* ---- option parsing ---- */

static bool append_dns_server(struct config *cfg, const char *value)
{
	size_t old = cfg->dns_servers ? strlen(cfg->dns_servers) : 0;
	size_t add = strlen(value);
	char *s = realloc(cfg->dns_servers, old + add + 2);

	if (!s)
		return false;
	if (old)
		s[old++] = ',';
	memcpy(s + old, value, add + 1);
	cfg->dns_servers = s;
	return true;
}

/* --dns-server: one server, or several separated by commas. */
static int opt_dns_server(struct config *cfg, int opt, const char *value)
{
	char *copy = strdup(value);
	char *save = NULL, *tok;
	bool ok = copy != NULL && *value;

	if (!copy) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	for (tok = strtok_r(copy, ",", &save); ok && tok; tok = strtok_r(NULL, ",", &save))
		ok = cli_valid_dns_server(tok);
	free(copy);
	if (!ok || strstr(value, ",,") || value[strlen(value) - 1] == ',' || value[0] == ',')
		return cli_bad_value(CMD, long_opts, opt, value,
		                     "expected IPv4[:PORT], IPv6 or [IPv6]:PORT");
	if (!append_dns_server(cfg, value)) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	return -1;
}

static int add_route_arg(struct config *cfg, bool is_file, const char *value)
{
	struct route_arg *r = realloc(cfg->routes, (cfg->nroutes + 1) * sizeof(*r));

	if (!r) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	cfg->routes = r;
	r[cfg->nroutes].is_file = is_file;
	r[cfg->nroutes].value = value;
	cfg->nroutes++;
	return -1;
}

static int add_file_arg(struct config *cfg, const char *path)
{
	const char **f = realloc(cfg->files, (cfg->nfiles + 1) * sizeof(*f));

	if (!f) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	cfg->files = f;
	f[cfg->nfiles++] = path;
	return -1;
}

static int opt_uint(int opt, const char *value, unsigned long min, unsigned long max,
                    unsigned long *out)
{
	if (!cli_parse_uint(value, min, max, out)) {
		char expected[80];

		snprintf(expected, sizeof(expected), "expected a whole number from %lu to %lu", min,
		         max);
		return cli_bad_value(CMD, long_opts, opt, value, expected);
	}
	return -1;
}

/* A text option of the table: checked here, as callout_ctx_new() would
 * only say EINVAL. */
static int opt_text(struct config *cfg, int opt, const co_optdef *d, const char *value)
{
	const char **field = (const char **)(void *)((char *)&cfg->opts + d->offset);

	switch (d->offset) {
	case offsetof(callout_options, dns_servers):
		return opt_dns_server(cfg, opt, value);
	case offsetof(callout_options, sender):
		/* "<>" and "" both mean the null sender */
		*field = strcmp(value, "<>") == 0 ? "" : value;
		return -1;
	case offsetof(callout_options, fallback_sender):
		if (!*value || strcmp(value, "<>") == 0)
			return cli_bad_value(CMD, long_opts, opt, value,
			                     "expected an address (the first try is already the "
			                     "null sender)");
		break;
	case offsetof(callout_options, helo):
		if (!*value)
			return cli_bad_value(CMD, long_opts, opt, value, "expected a host name");
		break;
	case offsetof(callout_options, proxy): {
		unsigned n;
		const char *why = co_proxy_parse_list(value, &n);
		if (why)
			return cli_bad_value(CMD, long_opts, opt, value, why);
		break;
	}
	case offsetof(callout_options, source_address):
		if (!cli_valid_ip(value))
			return cli_bad_value(CMD, long_opts, opt, value,
			                     "expected a local IPv4 or IPv6 address");
		break;
	}
	*field = value;
	return -1;
}

/* An option of the table: its --no- form when no. */
static int opt_table(struct config *cfg, int opt, const char *value)
{
	const co_optdef *table;
	size_t n;
	char why[160];
	const char *bad;

	table = co_opt_table(&n);
	const co_optdef *d = &table[(opt - OPT_TABLE) / 2];
	bool no = (opt - OPT_TABLE) % 2;

	if (d->type == CO_OPT_TEXT)
		return opt_text(cfg, opt, d, value);
	if (d->type == CO_OPT_FLAG)
		value = no ? "no" : "yes";
	if ((bad = co_opt_parse(d, value, &cfg->opts, why, sizeof(why))))
		return cli_bad_value(CMD, long_opts, opt, value, bad);
	return -1;
}

/* The long option value of a table entry ("port" for -p). */
static int table_opt(const char *name)
{
	size_t n;

	return OPT_TABLE + 2 * (int)(co_opt_find("engine", name) - co_opt_table(&n));
}

/* An unknown option, a missing or unexpected argument. */
static int getopt_error(int c, int argc, char **argv)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";

	if (c == ':') {
		if (strncmp(arg, "--", 2) == 0)
			cli_errorf(CMD, "option '--%s' requires a value",
			           cli_opt_name(long_opts, optopt));
		else
			cli_errorf(CMD, "option '-%c' requires a value", optopt);
	} else if (optopt >= 256 || (optopt > 0 && strchr(short_opts + 1, optopt))) {
		/* a valid long option given "=value" although it takes none */
		cli_errorf(CMD, "option '--%s' takes no value", cli_opt_name(long_opts, optopt));
	} else if (optopt > 0) {
		if (optopt > 0x20 && optopt < 0x7f)
			cli_errorf(CMD, "unknown option '-%c'", optopt);
		else
			cli_errorf(CMD, "unknown option '-\\x%02X'", (unsigned)optopt & 0xffu);
	} else {
		size_t n = strcspn(arg, "=");

		fputs(CMD ": unknown or ambiguous option '", stderr);
		cli_fput_escaped(stderr, arg, n, false);
		fputs("'\n", stderr);
	}
	return cli_try_help(CMD);
}

/* --format text|json|csv */
static int opt_format(struct config *cfg, const char *value)
{
	static const char *const names[] = {"text", "json", "csv"};

	for (int i = 0; i < 3; i++)
		if (strcmp(value, names[i]) == 0) {
			cfg->out.format = (cli_format)i;
			cfg->format_set = true;
			return -1;
		}
	return cli_bad_value(CMD, long_opts, OPT_FORMAT, value, "expected text, json or csv");
}

/* --column NAME|N: a number is a position from 1, anything else a name. */
static int opt_column(struct config *cfg, const char *value)
{
	unsigned long n;

	cfg->csv = true;
	cfg->csv_opts.column = 0;
	cfg->csv_opts.column_name = NULL;
	if (value[0] >= '0' && value[0] <= '9') {
		if (!cli_parse_uint(value, 1, CO_CSV_FIELDS_MAX, &n))
			return cli_bad_value(
			    CMD, long_opts, OPT_COLUMN, value,
			    "expected a column name, or its number from 1 to 1024");
		cfg->csv_opts.column = n;
	} else if (!*value) {
		return cli_bad_value(CMD, long_opts, OPT_COLUMN, value,
		                     "expected a column name or number");
	} else {
		cfg->csv_opts.column_name = value;
	}
	return -1;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);

	return n >= k && strcasecmp(s + n - k, tail) == 0;
}

/* --output, --resume and the format they imply. */
static int check_output_args(struct config *cfg, int nargs)
{
	const char *file = cfg->resume ? cfg->resume : cfg->output;

	if (cfg->resume && cfg->output) {
		cli_errorf(CMD, "--resume FILE already writes to FILE: give --output or --resume");
		return cli_try_help(CMD);
	}
	if (file && !cfg->format_set) {
		if (ends_with(file, ".csv"))
			cfg->out.format = CLI_FMT_CSV;
		else if (cfg->resume || ends_with(file, ".json") || ends_with(file, ".jsonl"))
			cfg->out.format = CLI_FMT_JSON;
	}
	if (!cfg->resume)
		return -1;
	if (cfg->out.format == CLI_FMT_TEXT) {
		cli_errorf(CMD, "--resume needs --format json or csv: text lines carry no "
		                "line numbers to resume from");
		return cli_try_help(CMD);
	}
	if (cfg->nfiles + (nargs > 0) > 1) {
		cli_errorf(CMD, "--resume takes one input: one -f FILE, or the ADDRESS arguments "
		                "(results are known by their line number)");
		return cli_try_help(CMD);
	}
	if (cfg->quiet) {
		cli_errorf(CMD, "--resume writes results: not with --quiet");
		return cli_try_help(CMD);
	}
	return -1;
}

/* Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, struct config *cfg)
{
	int c, rc = -1;

	build_long_opts();
	opterr = 0;
	optind = 1;
	while (rc < 0 && (c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_check_help(stdout);
			return fflush(stdout) == 0 ? CLI_EXIT_VALID : CLI_EXIT_OTHER;
		case 'j':
			cfg->out.format = CLI_FMT_JSON;
			cfg->format_set = true;
			break;
		case OPT_FORMAT:
			rc = opt_format(cfg, optarg);
			break;
		case OPT_CSV:
			cfg->csv = true;
			break;
		case OPT_COLUMN:
			rc = opt_column(cfg, optarg);
			break;
		case OPT_HEADER:
		case OPT_NO_HEADER:
			cfg->csv = true;
			cfg->csv_opts.header = c == OPT_HEADER;
			break;
		case OPT_ORDERED:
			cfg->ordered = true;
			break;
		case 'o':
			cfg->output = optarg;
			break;
		case OPT_RESUME:
			cfg->resume = optarg;
			break;
		case OPT_NO_PROGRESS:
			cfg->no_progress = true;
			break;
		case OPT_SUMMARY:
			cfg->summary = true;
			break;
		case 't':
			cfg->out.transcript = true;
			cfg->opts.flags |= CALLOUT_F_TRANSCRIPT;
			break;
		case 'q':
			cfg->quiet = true;
			break;
		case 'f':
			rc = add_file_arg(cfg, optarg);
			break;
		case 'c':
			rc = opt_uint('c', optarg, 1, CONCURRENCY_MAX, &cfg->concurrency);
			break;
		case 'p':
			rc = opt_table(cfg, table_opt("port"), optarg);
			break;
		case OPT_ROUTE:
			rc = add_route_arg(cfg, false, optarg);
			break;
		case OPT_ROUTES_FILE:
			rc = add_route_arg(cfg, true, optarg);
			break;
		case OPT_TRACE:
			cfg->opts.trace = cli_trace;
			break;
		case OPT_CACHE:
			cfg->cache = optarg;
			break;
		case OPT_NO_CACHE:
			cfg->opts.flags |= CALLOUT_F_NO_CACHE;
			break;
		default:
			if (c >= OPT_TABLE && c < OPT_TABLE + 2 * CO_OPT_MAX)
				rc = opt_table(cfg, c, optarg);
			else
				return getopt_error(c, argc, argv);
		}
	}
	if (rc >= 0)
		return rc;
	if (optind >= argc && cfg->nfiles == 0) {
		cli_errorf(CMD, "no address given");
		return cli_try_help(CMD);
	}
	if ((rc = check_output_args(cfg, argc - optind)) >= 0)
		return rc;
	cfg->opts.dns_servers = cfg->dns_servers;
	if (cli_allow_private_env())
		cfg->opts.flags |= CALLOUT_F_ALLOW_PRIVATE;
	if (!cli_clock_check()) {
		cli_errorf(CMD, "CALLOUT_NOW must be +SECONDS, -SECONDS or a Unix time");
		return CLI_EXIT_USAGE;
	}
	/* With --no-cache the cache is not even opened. */
	cfg->opts.cache = (cfg->opts.flags & CALLOUT_F_NO_CACHE)
	                      ? "none"
	                      : cli_cache_spec(cfg->cache, cfg->cache_buf, sizeof(cfg->cache_buf));
	cfg->opts.log = cli_log;
	cfg->opts.clock = cli_clock;
	/* with re-checks asked for, a greylisted address is printed when final */
	if (cfg->opts.greylist_recheck[0])
		cfg->opts.flags |= CALLOUT_F_RECHECK_WAIT;
	return -1;
}

static void report_read_error(const char *file, int err, const char *why);

/* ---- context set-up ---- */

static bool rejects(const callout_options *opts)
{
	callout_ctx *ctx = NULL;
	callout_status st = callout_ctx_new(NULL, opts, &ctx);

	if (st == CALLOUT_OK)
		callout_ctx_free(ctx);
	return st == CALLOUT_EINVAL;
}

/* callout_ctx_new() said EINVAL: find the option it did not like by trying
 * each string option on its own. */
static int explain_einval(const callout_options *full)
{
	callout_options one;

#define TRY_ALONE(field, opt, why)                                                                 \
	do {                                                                                       \
		if (full->field) {                                                                 \
			callout_options_init(&one);                                                \
			one.field = full->field;                                                   \
			if (rejects(&one))                                                         \
				return cli_bad_value(CMD, long_opts, opt, full->field, why);       \
		}                                                                                  \
	} while (0)

	TRY_ALONE(sender, table_opt("sender"), "expected an address local@domain, or <> for none");
	TRY_ALONE(fallback_sender, table_opt("fallback_sender"),
	          "expected an address local@domain");
	TRY_ALONE(helo, table_opt("helo"), "expected a host name (letters, digits, '-' and '.')");
	TRY_ALONE(source_address, table_opt("source_address"),
	          "expected a local IPv4 or IPv6 address");
	TRY_ALONE(dns_servers, table_opt("dns_servers"), "rejected by the resolver");
	TRY_ALONE(proxy, table_opt("proxy"), "its host does not resolve");
#undef TRY_ALONE
	if (full->cache) {
		char shown[4200]; /* never echo a Redis password */
		callout_options_init(&one);
		one.cache = full->cache;
		if (rejects(&one))
			return cli_bad_value(
			    CMD, long_opts, OPT_CACHE,
			    callout_cache_spec_redact(full->cache, shown, sizeof(shown)),
			    "expected lmdb:PATH, "
			    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P], "
			    "memory or none");
	}
	cli_errorf(CMD, "the options were rejected by libcallout: %s",
	           callout_strerror(CALLOUT_EINVAL));
	return cli_try_help(CMD);
}

static int add_route(callout_ctx *ctx, char *spec, bool allow_space, const char *file,
                     unsigned long line, const char *orig)
{
	char *domain, *hosts;
	callout_status st;

	if (!cli_split_route(spec, allow_space, &domain, &hosts))
		st = CALLOUT_EINVAL;
	else
		st = callout_ctx_add_route(ctx, domain, hosts);
	if (st == CALLOUT_OK)
		return -1;
	if (st != CALLOUT_EINVAL) {
		cli_errorf(CMD, "cannot add a route: %s", callout_strerror(st));
		return CLI_EXIT_OTHER;
	}
	if (!file)
		return cli_bad_value(CMD, long_opts, OPT_ROUTE, orig,
		                     "expected DOMAIN=HOST[:PORT][,HOST[:PORT]...]");
	fputs(CMD ": ", stderr);
	cli_fput_escaped(stderr, file, strlen(file), false);
	fprintf(stderr, ":%lu: invalid route '", line);
	cli_fput_escaped(stderr, orig, strlen(orig), false);
	fputs("': expected DOMAIN HOST[:PORT][,HOST[:PORT]...]\n", stderr);
	return CLI_EXIT_USAGE;
}

/* Lines "DOMAIN HOST[:PORT],..." or "DOMAIN=...", '#' starts a comment. */
static int load_routes_file(callout_ctx *ctx, const char *path)
{
	cli_input *in = cli_input_new(NULL, 0);
	char line[CLI_LINE_MAX + 1], orig[CLI_LINE_MAX + 1];
	cli_item item;
	int r = 0, rc = -1;

	if (!in) {
		cli_errorf(CMD, "out of memory");
		return CLI_EXIT_OTHER;
	}
	if (cli_input_add_file(in, path) != 0) {
		int err = errno;

		fputs(CMD ": cannot open routes file '", stderr);
		cli_fput_escaped(stderr, path, strlen(path), false);
		fprintf(stderr, "': %s\n", strerror(err));
		cli_input_free(in);
		return CLI_EXIT_USAGE;
	}
	while (rc < 0 && (r = cli_input_next(in, &item)) > 0) {
		char *hash, *spec;

		if (item.error) {
			line[0] = '\0'; /* reported as an invalid route */
			snprintf(orig, sizeof(orig), "(%s)", item.error);
		} else {
			memcpy(line, item.addr, item.len + 1);
			if ((hash = strchr(line, '#')))
				*hash = '\0';
			memcpy(orig, line, sizeof(line));
		}
		spec = cli_trim(line);
		if (!*spec && !item.error)
			continue;
		rc = add_route(ctx, spec, true, path, item.line, cli_trim(orig));
	}
	if (rc < 0 && r < 0) {
		report_read_error(path, errno, NULL);
		rc = CLI_EXIT_USAGE;
	}
	cli_input_free(in);
	return rc;
}

static int apply_routes(callout_ctx *ctx, const struct config *cfg)
{
	int rc = -1;

	for (size_t i = 0; rc < 0 && i < cfg->nroutes; i++) {
		const struct route_arg *r = &cfg->routes[i];

		if (r->is_file) {
			rc = load_routes_file(ctx, r->value);
		} else {
			char *spec = strdup(r->value);

			if (!spec) {
				cli_errorf(CMD, "out of memory");
				return CLI_EXIT_OTHER;
			}
			rc = add_route(ctx, spec, false, NULL, 0, r->value);
			free(spec);
		}
	}
	return rc;
}

/* Descriptors: a verification holds one socket, and its connection may
 * linger a moment after the result to send QUIT, so count two each.
 * Raise the soft limit if we may, else lower the concurrency (a refused
 * socket() would be reported as a connection failure, which would be a
 * lie). */
static void fit_fd_limit(struct config *cfg)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)cfg->concurrency * FD_PER_JOB + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= want)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
			return;
	}
	if (rl.rlim_cur > FD_RESERVE + FD_PER_JOB) {
		unsigned long fit = (unsigned long)((rl.rlim_cur - FD_RESERVE) / FD_PER_JOB);

		cli_errorf(CMD,
		           "warning: the open file limit allows %lu verifications at once, not %lu",
		           fit, cfg->concurrency);
		cfg->concurrency = fit;
	}
}

/* ---- the verification loop ---- */

static void feed(struct app *app);

static void account(struct app *app, const callout_result *res)
{
	if (res->verdict == CALLOUT_INVALID)
		app->any_invalid = true;
	else if (res->verdict != CALLOUT_VALID)
		app->any_other = true;
	if (app->progress)
		cli_progress_result(app->progress, res->verdict, res->reason);
}

/* Nothing left to wait for: let the loop end. */
static void stop_events(struct app *app)
{
	if (app->sig_int)
		event_del(app->sig_int);
	if (app->sig_term)
		event_del(app->sig_term);
	if (app->timer)
		event_del(app->timer);
}

static void release(struct app *app, struct job *job)
{
	free(job->addr);
	free((char *)job->from.kept);
	job->addr = NULL;
	job->from.kept = NULL;
	job->q = NULL;
	job->busy = false;
	if (job->held) {
		job->held = false;
		app->held--;
	}
	app->free_jobs[app->nfree++] = (size_t)(job - app->jobs);
	app->inflight--;
}

static void cancel_all(struct app *app)
{
	app->stopping = true;
	for (size_t i = 0; i < app->njobs; i++) {
		struct job *job = &app->jobs[i];

		if (job->busy && job != app->current) {
			callout_cancel(job->q);
			release(app, job);
		}
	}
}

static void write_failed(struct app *app, int err)
{
	if (err != EPIPE) /* a reader that went away needs no message */
		cli_errorf(CMD, "cannot write the results: %s", strerror(err));
	app->failed = app->write_error = true;
	cancel_all(app);
}

/* Write what is ready of the window, in order; with all, skip the holes
 * left by cancelled verifications. */
static void drain(struct app *app, bool all)
{
	const cli_output *o = &app->cfg->out;

	while (app->emit_seq < app->next_seq) {
		struct slot *sl = &app->slots[app->emit_seq % app->window];

		if (!sl->text && !all)
			break;
		if (sl->text && !app->write_error) {
			cli_progress_clear(isatty(fileno(o->fp)) ? app->progress : NULL);
			errno = 0;
			if (fwrite(sl->text, 1, sl->len, o->fp) != sl->len || fflush(o->fp) != 0)
				write_failed(app, errno ? errno : EIO);
		}
		free(sl->text);
		sl->text = NULL;
		app->emit_seq++;
	}
}

/* Print (or, --ordered, place) and count one result; on a write error
 * stop everything. */
static void emit(struct app *app, unsigned long long seq, const cli_origin *from, const char *input,
                 size_t len, const callout_result *res)
{
	cli_output o = app->cfg->out;
	struct slot *sl;
	int err;

	account(app, res);
	if (app->cfg->quiet || app->write_error)
		return;
	if (!app->cfg->ordered) {
		cli_progress_clear(isatty(fileno(o.fp)) ? app->progress : NULL);
		if ((err = cli_output_result(&o, from, input, len, res)) != 0)
			write_failed(app, err);
		return;
	}
	sl = &app->slots[seq % app->window];
	o.fp = open_memstream(&sl->text, &sl->len);
	err = o.fp ? cli_output_result(&o, from, input, len, res) : ENOMEM;
	if (o.fp && fclose(o.fp) != 0 && !err)
		err = ENOMEM;
	if (err) {
		free(sl->text);
		sl->text = NULL;
		write_failed(app, err);
		return;
	}
	drain(app, false);
}

static void emit_local(struct app *app, const cli_item *item, const cli_origin *from,
                       const char *why)
{
	char text[200];
	/* Length alone says nothing about the mailbox. */
	callout_result res = {
	    .verdict = item->too_long ? CALLOUT_TEMPFAIL : CALLOUT_INVALID,
	    .reason = item->too_long ? CALLOUT_R_LOCAL_LIMIT : CALLOUT_R_SYNTAX,
	    .stage = CALLOUT_STAGE_SYNTAX,
	    .enhanced = "",
	    .text = text,
	    .address = "",
	    .mx = "",
	    .ip = "",
	};

	if (item->file && item->record && item->record->last_line > item->line)
		snprintf(text, sizeof(text), "%s (lines %lu-%lu)", why, item->line,
		         item->record->last_line);
	else if (item->file)
		snprintf(text, sizeof(text), "%s (line %lu)", why, item->line);
	else
		snprintf(text, sizeof(text), "%s", why);
	emit(app, app->next_seq++, from, item->addr, item->len, &res);
}

static void on_result(void *arg, callout_status status, const callout_result *res)
{
	struct job *job = arg;
	struct app *app = job->app;

	if (status == CALLOUT_OK && res && res->recheck_in && !job->held) {
		/* greylisted: its re-check's answer comes in a second call */
		job->held = true;
		app->held++;
		feed(app);
		return;
	}
	app->current = job;
	if (status == CALLOUT_OK && res) {
		emit(app, job->seq, &job->from, job->addr, job->len, res);
	} else if (status != CALLOUT_ECANCELLED && !app->stopping) {
		cli_errorf(CMD, "verification failed: %s", callout_strerror(status));
		app->failed = true;
	}
	app->current = NULL;
	release(app, job); /* the handle dies when we return */
	feed(app);
}

/* Where an item came from; for CSV output, its kept columns (to free). */
static bool origin(struct app *app, const cli_item *item, cli_origin *from)
{
	const cli_output *o = &app->cfg->out;

	*from = (cli_origin){.file = item->file, .line = item->line};
	if (o->format != CLI_FMT_CSV || (o->columns == 0 && !item->record))
		return true;
	from->kept = cli_output_csv_kept(o, item->record, &from->kept_len);
	return from->kept != NULL;
}

static void out_of_memory(struct app *app)
{
	cli_errorf(CMD, "out of memory");
	app->failed = true;
	app->stopping = true;
}

static void start(struct app *app, const cli_item *item)
{
	struct job *job = &app->jobs[app->free_jobs[--app->nfree]];
	callout_status st;

	job->addr = malloc(item->len + 1);
	if (!job->addr || !origin(app, item, &job->from)) {
		free(job->addr);
		job->addr = NULL;
		app->nfree++;
		out_of_memory(app);
		return;
	}
	memcpy(job->addr, item->addr, item->len);
	job->addr[item->len] = '\0';
	job->len = item->len;
	job->app = app;
	job->busy = true;
	job->seq = app->next_seq++;
	app->inflight++;
	st = callout_verify(app->ctx, job->addr, NULL, on_result, job, &job->q);
	if (st == CALLOUT_OK)
		return;
	if (st == CALLOUT_EINVAL) {
		/* With the context's options the only argument left is the
		 * address: the library refused it outright. */
		cli_origin from = job->from;

		job->from.kept = NULL;
		app->next_seq--; /* emit_local takes the same place */
		release(app, job);
		emit_local(app, item, &from, "address refused by libcallout");
		free((char *)from.kept);
		return;
	}
	release(app, job);
	cli_errorf(CMD, "cannot start a verification: %s", callout_strerror(st));
	app->failed = true;
	app->stopping = true;
}

/* An item --resume finds in its file: counted, not asked again. */
static bool skip_done(struct app *app, const cli_item *item)
{
	callout_verdict v;
	callout_reason r;

	if (!cli_done_find(app->done, item->line, item->addr, item->len, &v, &r))
		return false;
	if (v == CALLOUT_INVALID)
		app->any_invalid = true;
	else if (v != CALLOUT_VALID)
		app->any_other = true;
	if (app->progress)
		cli_progress_skipped(app->progress, v, r);
	return true;
}

static void report_read_error(const char *file, int err, const char *why)
{
	fputs(CMD ": error reading '", stderr);
	cli_fput_escaped(stderr, file, strlen(file), false);
	if (why)
		fprintf(stderr, "': %s\n", why);
	else if (err == EFBIG)
		fprintf(stderr, "': a line longer than %d bytes: not a list\n", CLI_LINE_ABSURD);
	else
		fprintf(stderr, "': %s\n", strerror(err));
}

/* Keep the pipeline full: start verifications until the concurrency
 * limit (--ordered: or the window), the end of the input, or a stop. */
static void feed(struct app *app)
{
	while (!app->stopping && !app->input_done &&
	       app->inflight - app->held < app->cfg->concurrency && app->nfree > 0 &&
	       (!app->cfg->ordered || app->next_seq - app->emit_seq < app->window)) {
		cli_item item;
		int r = cli_input_next(app->in, &item);

		if (r == 0) {
			app->input_done = true;
		} else if (r < 0) {
			report_read_error(item.file, errno, item.error);
			app->failed = true;
		} else if (skip_done(app, &item)) {
			continue;
		} else if (item.error) {
			cli_origin from;

			if (!origin(app, &item, &from)) {
				out_of_memory(app);
				break;
			}
			emit_local(app, &item, &from, item.error);
			free((char *)from.kept);
		} else {
			start(app, &item);
		}
	}
	if (app->inflight == 0)
		stop_events(app);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;

	(void)what;
	app->interrupted = (int)sig;
	app->cancelled = (unsigned long)app->inflight;
	cancel_all(app);
	stop_events(app); /* a second signal gets the default action */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;
	callout_stats st;

	(void)fd;
	(void)what;
	if (callout_ctx_stats(app->ctx, &st, sizeof(st)) == CALLOUT_OK)
		cli_progress_tick(app->progress, &st, false);
}

/* The CSV output's header: the input's columns, then ours.  -1 to go
 * on, or an exit status. */
static int csv_header(struct config *cfg, cli_input *in, bool has_header)
{
	const co_csv_record *hdr;
	cli_item err;
	int r, e;

	/* the first CSV file's first record: a column not found is a usage
	 * error before any work */
	r = cli_input_csv_columns(in, &hdr, &cfg->out.columns, &err);
	if (r < 0) {
		report_read_error(err.file ? err.file : "?", errno, err.error);
		return CLI_EXIT_USAGE;
	}
	if (cfg->out.format != CLI_FMT_CSV || has_header || cfg->quiet)
		return -1;
	if ((e = cli_output_csv_header(&cfg->out, hdr)) != 0) {
		if (e != EPIPE)
			cli_errorf(CMD, "cannot write the results: %s", strerror(e));
		return CLI_EXIT_OTHER;
	}
	return -1;
}

static int run(struct config *cfg, cli_input *in, struct app *app, bool has_header)
{
	struct event_base *base;
	callout_status st;
	bool draw = !cfg->quiet && !cfg->no_progress && isatty(STDERR_FILENO);
	int rc = -1;

	cli_ids ids;
	if (cli_cache_owner_begin(CMD, cfg->opts.cache, &ids) < 0)
		return CLI_EXIT_OTHER;
	st = callout_ctx_new(NULL, &cfg->opts, &app->ctx);
	cli_cache_owner_end(&ids);
	if (st == CALLOUT_EINVAL)
		return explain_einval(&cfg->opts);
	if (st != CALLOUT_OK) {
		cli_errorf(CMD, "cannot start: %s", callout_strerror(st));
		return CLI_EXIT_OTHER;
	}
	rc = apply_routes(app->ctx, cfg);
	if (rc < 0)
		rc = csv_header(cfg, in, has_header);
	if (rc >= 0)
		goto done;

	app->window = cfg->concurrency * ORDER_WINDOW_PER;
	if (app->window < ORDER_WINDOW_MIN)
		app->window = ORDER_WINDOW_MIN;
	/* held jobs wait idle for their re-check, at most one an address
	 * pending (greylist_recheck_max) unless an address comes twice */
	app->njobs =
	    cfg->concurrency + (cfg->opts.greylist_recheck[0] ? cfg->opts.greylist_recheck_max : 0);
	app->jobs = calloc(app->njobs, sizeof(*app->jobs));
	app->free_jobs = calloc(app->njobs, sizeof(*app->free_jobs));
	app->slots = cfg->ordered ? calloc(app->window, sizeof(*app->slots)) : NULL;
	app->progress = cli_progress_new(stderr, draw, app->total);
	base = callout_ctx_base(app->ctx);
	if (base) {
		app->sig_int = evsignal_new(base, SIGINT, on_signal, app);
		app->sig_term = evsignal_new(base, SIGTERM, on_signal, app);
		app->timer = event_new(base, -1, EV_PERSIST, on_timer, app);
	}
	if (!app->jobs || !app->free_jobs || (cfg->ordered && !app->slots) || !app->progress ||
	    !app->sig_int || !app->sig_term || !app->timer || event_add(app->sig_int, NULL) != 0 ||
	    event_add(app->sig_term, NULL) != 0 ||
	    event_add(app->timer, &(struct timeval){0, 1000000 / CLI_PROGRESS_HZ}) != 0) {
		cli_errorf(CMD, "cannot start: %s", base ? "out of memory" : "no event loop");
		rc = CLI_EXIT_OTHER;
		goto done;
	}
	for (size_t i = 0; i < app->njobs; i++)
		app->free_jobs[app->nfree++] = app->njobs - 1 - i;

	feed(app);
	if (app->inflight > 0) {
		st = callout_ctx_run(app->ctx);
		if (st != CALLOUT_OK) {
			cli_errorf(CMD, "event loop: %s", callout_strerror(st));
			app->failed = true;
		}
		if (app->inflight > 0) { /* the loop gave up early */
			if (st == CALLOUT_OK) {
				cli_errorf(CMD, "event loop ended with verifications in flight");
				app->failed = true;
			}
			cancel_all(app);
		}
	}
	stop_events(app);
	if (app->slots)
		drain(app, true); /* what is there; holes were cancelled */

	if (app->interrupted || (draw && !app->failed) || cfg->summary)
		cli_progress_summary(app->progress, app->interrupted, app->cancelled);
	if (app->interrupted)
		rc = 128 + app->interrupted;
	else if (app->any_invalid)
		rc = CLI_EXIT_INVALID;
	else if (app->any_other || app->failed)
		rc = CLI_EXIT_OTHER;
	else
		rc = CLI_EXIT_VALID;
done:
	app->stopping = true;
	if (app->sig_int)
		event_free(app->sig_int);
	if (app->sig_term)
		event_free(app->sig_term);
	if (app->timer)
		event_free(app->timer);
	callout_ctx_free(app->ctx);
	if (app->slots)
		for (size_t i = 0; i < app->window; i++)
			free(app->slots[i].text);
	free(app->slots);
	free(app->jobs);
	free(app->free_jobs);
	cli_progress_free(app->progress);
	return rc;
}

/* Open --output or --resume, and count the input for the progress line.
 * -1 to go on, or an exit status. */
static int prepare(struct config *cfg, struct app *app, char **args, size_t nargs, bool *has_header)
{
	if (cfg->resume) {
		if (cli_resume_open(CMD, cfg->resume, cfg->out.format, &cfg->out.fp, &app->done,
		                    has_header) != 0)
			return CLI_EXIT_USAGE;
	} else if (cfg->output) {
		cfg->out.fp = fopen(cfg->output, "w");
		if (!cfg->out.fp) {
			int err = errno;

			fputs(CMD ": cannot write '", stderr);
			cli_fput_escaped(stderr, cfg->output, strlen(cfg->output), false);
			fprintf(stderr, "': %s\n", strerror(err));
			return CLI_EXIT_USAGE;
		}
	}
	app->total = -1;
	if (!cfg->quiet && !cfg->no_progress && isatty(STDERR_FILENO))
		app->total = cli_input_count(args, nargs, cfg->files, cfg->nfiles,
		                             cfg->csv ? &cfg->csv_opts : NULL);
	return -1;
}

int cli_check_main(int argc, char **argv)
{
	struct config cfg = {.concurrency = 10, .out = {.fp = stdout}, .csv_opts = {.header = -1}};
	struct app app = {.cfg = &cfg};
	cli_input *in = NULL;
	bool has_header = false;
	int rc;

	callout_options_init(&cfg.opts);
	rc = parse_args(argc, argv, &cfg);
	if (rc >= 0)
		goto out;

	in = cli_input_new(argv + optind, (size_t)(argc - optind));
	if (!in) {
		cli_errorf(CMD, "out of memory");
		rc = CLI_EXIT_OTHER;
		goto out;
	}
	if (cfg.csv)
		cli_input_set_csv(in, &cfg.csv_opts);
	for (size_t i = 0; i < cfg.nfiles; i++) {
		if (cli_input_add_file(in, cfg.files[i]) != 0) {
			int err = errno;

			fputs(CMD ": cannot open '", stderr);
			cli_fput_escaped(stderr, cfg.files[i], strlen(cfg.files[i]), false);
			fprintf(stderr, "': %s\n", strerror(err));
			rc = err == ENOMEM ? CLI_EXIT_OTHER : CLI_EXIT_USAGE;
			goto out;
		}
	}
	rc = prepare(&cfg, &app, argv + optind, (size_t)(argc - optind), &has_header);
	if (rc >= 0)
		goto out;
	fit_fd_limit(&cfg);
	app.in = in;
	rc = run(&cfg, in, &app, has_header);
out:
	if (cfg.out.fp && cfg.out.fp != stdout && fclose(cfg.out.fp) != 0 && rc != CLI_EXIT_USAGE) {
		cli_errorf(CMD, "cannot write the results: %s", strerror(errno));
		rc = rc == CLI_EXIT_VALID || rc == CLI_EXIT_INVALID ? CLI_EXIT_OTHER : rc;
	}
	cli_done_free(app.done);
	cli_input_free(in);
	free(cfg.dns_servers);
	free(cfg.routes);
	free(cfg.files);
	return rc;
}

/* Headings of the table's options in --help, at the first of each group. */
static const struct {
	const char *first, *heading;
} groups[] = {
    {"helo", "SMTP"},
    {"proxy", "Proxy and DNS"},
    {"timeout", "Timeouts (DURATION: 30, 30s, 0.5, 500ms, 2m, 1h, 7d; no unit means seconds)"},
    {"max_probes", "Limits that protect the servers asked (0 for a limit or a rate: none)"},
    {"positive_ttl", "Cache"},
};

/* text from column 27, wrapped before column 80 */
static void help_text(FILE *fp, int col, const char *text)
{
	const char *p = text;

	if (col > 25) {
		fputc('\n', fp);
		col = 0;
	}
	fprintf(fp, "%*s", 27 - col, "");
	col = 27;
	while (*p) {
		size_t w = strcspn(p, " ");
		if (col > 27 && col + 1 + (int)w > 79) {
			fprintf(fp, "\n%27s", "");
			col = 27;
		} else if (col > 27) {
			fputc(' ', fp);
			col++;
		}
		fwrite(p, 1, w, fp);
		col += (int)w;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', fp);
}

/* Every option of the table, with its default, in groups. */
static void help_table(FILE *fp)
{
	const co_optdef *table;
	size_t n;
	char flag[48], def[64], text[400];

	table = co_opt_table(&n);
	for (size_t i = 0; i < n; i++) {
		const co_optdef *d = &table[i];
		int col;

		for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
			if (strcmp(groups[g].first, d->name) == 0)
				fprintf(fp, "\n%s:\n", groups[g].heading);
		if (d->where & CO_OPT_NO_CLI)
			continue;
		co_opt_flag(d, flag, sizeof(flag));
		if (d->type == CO_OPT_FLAG)
			col = fprintf(fp, "      --[no-]%s", flag);
		else
			col = fprintf(fp, "  %s--%s %s",
			              strcmp(d->name, "port") == 0 ? "-p, " : "    ", flag, d->arg);
		if (d->type == CO_OPT_TEXT)
			snprintf(text, sizeof(text), "%s", d->help);
		else if (!*co_opt_format_default(d, false, def, sizeof(def)))
			snprintf(text, sizeof(text), "%s (default none)", d->help);
		else
			snprintf(text, sizeof(text), "%s (default %s)", d->help, def);
		help_text(fp, col, text);
	}
}

void cli_check_help(FILE *fp)
{
	fputs("Usage: " CMD " [OPTIONS] ADDRESS...\n"
	      "       " CMD " [OPTIONS] -f FILE\n"
	      "\n"
	      "Ask the mail server responsible for each ADDRESS whether it would accept\n"
	      "mail for it (EHLO, MAIL FROM:<>, RCPT TO:<ADDRESS>, QUIT), without sending\n"
	      "a message.  Results are printed as they complete (see --ordered).  On a\n"
	      "terminal, a progress line and a summary go to standard error; Ctrl-C stops,\n"
	      "writes the results so far and the summary, and exits with status 130.\n"
	      "\n"
	      "Input and output:\n"
	      "  -f, --file FILE          read addresses from FILE, one a line ('-' for\n"
	      "                           standard input); blank lines and lines starting\n"
	      "                           with '#' are skipped; may be repeated and combined\n"
	      "                           with ADDRESS arguments\n"
	      "      --csv                read the files as CSV (RFC 4180); the other\n"
	      "                           columns are kept in CSV output\n"
	      "      --column NAME|N      the address column, by header name or number\n"
	      "                           (default: email, e-mail, mail or address, else 1)\n"
	      "      --header, --no-header  the first CSV record is (not) a header (default:\n"
	      "                           it is when no field holds '@', or --column NAME)\n"
	      "      --format FMT         text (default), json (one object a line) or csv;\n"
	      "                           both carry the input line number\n"
	      "  -j, --json               = --format json\n"
	      "      --ordered            print in input order (completion order otherwise);\n"
	      "                           reading pauses while the oldest is outstanding and\n"
	      "                           8 x the concurrency (at least 1024) are pending\n"
	      "  -o, --output FILE        write the results to FILE (format from a .csv or\n"
	      "                           .json name when --format is not given)\n"
	      "      --resume FILE        continue FILE, the --output of a run that was\n"
	      "                           stopped: skip the lines it holds, append the rest\n"
	      "      --no-progress        no progress line on a terminal's standard error\n"
	      "      --summary            print the summary table even when not on a terminal\n"
	      "  -t, --transcript         show the SMTP dialogue under each result\n"
	      "      --trace              show each verification's steps on standard\n"
	      "                           error, with the milliseconds since it began\n"
	      "  -q, --quiet              print no results: only the exit status tells\n"
	      "  -c, --concurrency N      verify up to N addresses at once (default 10)\n"
	      "\n"
	      "Routing:\n"
	      "      --route DOMAIN=HOST[:PORT][,HOST[:PORT]...]\n"
	      "                           ask HOST instead of the MX of DOMAIN (call\n"
	      "                           forward); may be repeated; IPv6 as [2001:db8::1]\n"
	      "      --routes-file FILE   routes from FILE, lines \"DOMAIN HOST[:PORT],...\"\n"
	      "      --cache SPEC         lmdb:PATH, redis://[:PASSWORD@]HOST[:PORT][/DB]\n"
	      "                           [?prefix=P], memory or none (default: $CALLOUT_CACHE,\n"
	      "                           else lmdb:" CLI_STATE_DIR "/cache.lmdb when writable,\n"
	      "                           else ~/.local/state/callout/cache.lmdb)\n"
	      "      --no-cache           neither read nor write the cache\n",
	      fp);
	help_table(fp);
	fputs("\n"
	      "--dns-server may be repeated; IPv6 with a port is written [::1]:53.\n"
	      "Each of these options is the calloutd.conf(5) key of its name with '-' for\n"
	      "'_' (--source is source_address, --dns-server dns_servers, --cache-wait\n"
	      "wait); calloutd's defaults are the same, except catch_all (yes).\n"
	      "\n"
	      "  -h, --help               show this help and exit\n"
	      "\n"
	      "Exit status:\n"
	      "  0  every address is valid\n"
	      "  1  at least one address is invalid\n"
	      "  2  usage error: unknown option, bad value, unreadable file\n"
	      "  3  otherwise: some address unknown or tempfail (and none invalid),\n"
	      "     or an error stopped the run\n"
	      "  130, 143  stopped by SIGINT or SIGTERM\n"
	      "\n"
	      "Human output: ADDRESS: VERDICT (REASON) CODE ENHANCED \"TEXT\" at STAGE\n"
	      "              via MX [IP] MS ms (tls, catch-all, postmaster refused,\n"
	      "              cached AGE ago)\n"
	      "See callout(1) for the verdicts, the reasons and the JSON fields.\n",
	      fp);
}
