/*
 * callout doctor [OPTIONS] DOMAIN | --host HOST[:PORT]
 *
 * Checks our own side of a callout (the library's callout_doctor_start):
 * port 25 out, the egress address, its PTR and forward confirmation, the
 * HELO name, DNS blocklists, STARTTLS and the clock.  One line per check,
 * or one JSON object with --json.  Exit status: 0 no check failed
 * (warnings allowed), 1 some check failed, 2 usage, 3 could not run.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "doctor_json.h"

#define CMD CLI_PROG " doctor"

enum {
	OPT_HOST = 256,
	OPT_HELO,
	OPT_SOURCE,
	OPT_DNS,
	OPT_DNS_TIMEOUT,
	OPT_DNSBL,
	OPT_CONNECT_TIMEOUT,
	OPT_COMMAND_TIMEOUT,
	OPT_TIMEOUT,
	OPT_MAX_MX,
	OPT_ALLOW_PRIVATE,
};

static const char short_opts[] = ":jhp:";

static const struct option long_opts[] = {
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"host", required_argument, NULL, OPT_HOST},
    {"helo", required_argument, NULL, OPT_HELO},
    {"source-address", required_argument, NULL, OPT_SOURCE},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"dns-servers", required_argument, NULL, OPT_DNS},
    {"dns-timeout", required_argument, NULL, OPT_DNS_TIMEOUT},
    {"dnsbl", required_argument, NULL, OPT_DNSBL},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"command-timeout", required_argument, NULL, OPT_COMMAND_TIMEOUT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-mx", required_argument, NULL, OPT_MAX_MX},
    {"allow-private", no_argument, NULL, OPT_ALLOW_PRIVATE},
    {NULL, 0, NULL, 0},
};

void cli_doctor_help(FILE *fp)
{
	fputs("Usage: " CMD " [OPTIONS] DOMAIN\n"
	      "       " CMD " [OPTIONS] --host HOST[:PORT]\n"
	      "\n"
	      "Check our own side of a callout against the MX hosts of DOMAIN (or one\n"
	      "host): outbound port 25, the egress address, its PTR and that the PTR name\n"
	      "resolves back to it, the HELO name, DNS blocklists, STARTTLS and the clock.\n"
	      "One line per check: pass, warn, fail or skip, and what to do.\n"
	      "\n"
	      "Options:\n"
	      "      --host HOST[:PORT]     check against this host (name, IPv4 or [IPv6])\n"
	      "  -p, --port N               SMTP port (default 25)\n"
	      "      --helo NAME            the HELO name to check (default: this host's FQDN)\n"
	      "      --source-address IP    connect from this address; its checks are run\n"
	      "                             even when no connection can be made (--source)\n"
	      "      --dnsbl ZONE[,ZONE...] DNS blocklists to look the egress address up in\n"
	      "      --dns-servers LIST     DNS servers \"IP[:PORT],...\" (default resolv.conf)\n"
	      "      --dns-timeout DUR      per DNS try (default 5s)\n"
	      "      --connect-timeout DUR  per address (default 10s)\n"
	      "      --command-timeout DUR  per reply and the TLS handshake (default 10s)\n"
	      "      --timeout DUR          the whole run (default 60s)\n"
	      "      --max-mx N             MX hosts tried at most (default 5)\n"
	      "      --allow-private        contact a loopback or private target\n"
	      "                             (also $CALLOUT_ALLOW_PRIVATE=1)\n"
	      "  -j, --json                 one JSON object\n"
	      "  -h, --help                 show this help and exit\n"
	      "\n"
	      "Exit status: 0 no check failed (warnings allowed), 1 a check failed,\n"
	      "2 usage error, 3 the checks could not be run.\n",
	      fp);
}

struct run {
	bool json;
	int rc;
};

static void on_report(void *arg, const callout_doctor_report *rep)
{
	struct run *r = arg;

	r->rc = rep->worst == CALLOUT_DOCTOR_FAIL ? CLI_EXIT_INVALID : CLI_EXIT_VALID;
	if (r->json) {
		json_t *j = co_doctor_json(rep);
		char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

		json_decref(j);
		if (!s) {
			cli_errorf(CMD, "out of memory");
			r->rc = CLI_EXIT_OTHER;
			return;
		}
		puts(s);
		free(s);
		return;
	}
	for (unsigned i = 0; i < rep->nchecks; i++) {
		const char *d = rep->checks[i].detail;

		printf("%-4s  %-8s  ", callout_doctor_level_name(rep->checks[i].level),
		       rep->checks[i].name);
		cli_fput_escaped(stdout, d, strlen(d), false);
		putchar('\n');
	}
	for (unsigned i = 0; i < rep->nlistings; i++)
		printf("      dnsbl     %s: %s\n", rep->listings[i].zone, rep->listings[i].detail);
	printf("result: %s\n", callout_doctor_level_name(rep->worst));
}

static int bad_value(int opt, const char *value, const char *expected)
{
	return cli_bad_value(CMD, long_opts, opt, value, expected);
}

static int opt_ms(int opt, const char *value, unsigned *out)
{
	unsigned long long ms;

	if (!cli_parse_ms(value, 1, 3600000, false, &ms))
		return bad_value(opt, value, "expected a duration from 1ms to 1h");
	*out = (unsigned)ms;
	return -1;
}

static int getopt_failed(int argc, char **argv)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";

	fputs(CMD ": bad option or missing value '", stderr);
	cli_fput_escaped(stderr, arg, strlen(arg), false);
	fputs("'\n", stderr);
	return cli_try_help(CMD);
}

/* -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, callout_doctor_options *o, struct run *r)
{
	unsigned long n;
	int c, rc = -1;

	opterr = 0;
	optind = 1;
	while (rc < 0 && (c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_doctor_help(stdout);
			return fflush(stdout) == 0 ? CLI_EXIT_VALID : CLI_EXIT_OTHER;
		case 'j':
			r->json = true;
			break;
		case 'p':
			if (!cli_parse_uint(optarg, 1, 65535, &n))
				return bad_value(c, optarg, "expected a port from 1 to 65535");
			o->port = (unsigned)n;
			break;
		case OPT_MAX_MX:
			if (!cli_parse_uint(optarg, 1, 16, &n))
				return bad_value(c, optarg, "expected a number from 1 to 16");
			o->max_mx = (unsigned)n;
			break;
		case OPT_HOST:
			o->host = optarg;
			break;
		case OPT_HELO:
			o->helo = optarg;
			break;
		case OPT_SOURCE:
			if (!cli_valid_ip(optarg))
				return bad_value(c, optarg,
				                 "expected a local IPv4 or IPv6 address");
			o->source_address = optarg;
			break;
		case OPT_DNS:
			o->dns_servers = optarg;
			break;
		case OPT_DNSBL:
			o->dnsbl = optarg;
			break;
		case OPT_DNS_TIMEOUT:
			rc = opt_ms(c, optarg, &o->dns_timeout_ms);
			break;
		case OPT_CONNECT_TIMEOUT:
			rc = opt_ms(c, optarg, &o->connect_timeout_ms);
			break;
		case OPT_COMMAND_TIMEOUT:
			rc = opt_ms(c, optarg, &o->command_timeout_ms);
			break;
		case OPT_TIMEOUT:
			rc = opt_ms(c, optarg, &o->deadline_ms);
			break;
		case OPT_ALLOW_PRIVATE:
			o->allow_private = true;
			break;
		default:
			return getopt_failed(argc, argv);
		}
	}
	if (rc >= 0)
		return rc;
	if (optind < argc && o->host) {
		cli_errorf(CMD, "give a domain or --host, not both");
		return cli_try_help(CMD);
	}
	if (optind + 1 < argc) {
		cli_errorf(CMD, "one domain at a time");
		return cli_try_help(CMD);
	}
	if (optind < argc)
		o->domain = argv[optind];
	else if (!o->host) {
		cli_errorf(CMD, "no domain or --host given");
		return cli_try_help(CMD);
	}
	if (cli_allow_private_env())
		o->allow_private = true;
	if (!cli_clock_check()) {
		cli_errorf(CMD, "CALLOUT_NOW must be +SECONDS, -SECONDS or a Unix time");
		return CLI_EXIT_USAGE;
	}
	o->clock = cli_clock;
	return -1;
}

int cli_doctor_main(int argc, char **argv)
{
	callout_doctor_options o;
	struct run r = {false, CLI_EXIT_OTHER};
	struct event_base *base;
	callout_status st;
	char err[256];
	int rc;

	callout_doctor_options_init(&o);
	if ((rc = parse_args(argc, argv, &o, &r)) >= 0)
		return rc;
	if (!(base = event_base_new())) {
		cli_errorf(CMD, "cannot create the event loop");
		return CLI_EXIT_OTHER;
	}
	st = callout_doctor_start(base, &o, on_report, &r, NULL, err, sizeof(err));
	if (st != CALLOUT_OK) {
		event_base_free(base);
		if (st == CALLOUT_EINVAL) {
			fputs(CMD ": ", stderr);
			cli_fput_escaped(stderr, err, strlen(err), false);
			fputc('\n', stderr);
			return cli_try_help(CMD);
		}
		cli_errorf(CMD, "%s", callout_strerror(st));
		return CLI_EXIT_OTHER;
	}
	event_base_dispatch(base);
	event_base_free(base);
	return r.rc;
}
