/*
 * co-dns-probe: drive src/lib/dns.c against a DNS server for the tests.
 *
 *   co-dns-probe [OPTIONS] DOMAIN...          co_dns_resolve_mx, one request per domain
 *   co-dns-probe --hosts [OPTIONS] NAME[@PORT]...   one co_dns_resolve_hosts request
 *
 * Every request runs in parallel on one loop.  When all are finished one
 * JSON object per request is printed, in argument order:
 *
 *   {"query": "postfix.test", "status": "ok", "implicit_mx": false, "detail": "",
 *    "ms": 2, "hosts": [{"name": "mx.postfix.test", "pref": 10, "port": 0,
 *                        "addrs": ["127.0.0.20"]}]}
 *
 * status is ok, nxdomain, null_mx, no_host, tempfail, or cancelled for a
 * request this program cancelled.  Exit status 0; 1 when the resolver
 * cannot be created; 2 on usage errors; 3 when the library misbehaves
 * (a callback after cancel, a second callback); 4 when the deadline passes.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
	const char *query;
	co_dns_req *req;
	json_t *out;
	bool done;
	bool cancelled;
	double start;
};

static struct event_base *base;
static co_dns *dns;
static struct job *jobs;
static size_t njobs, nfinished;
static int exit_status;
static bool cancel_in_callback, free_in_callback;
static struct event *deadline_ev;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const char *status_name(co_dns_status st)
{
	switch (st) {
	case CO_DNS_OK:
		return "ok";
	case CO_DNS_NXDOMAIN:
		return "nxdomain";
	case CO_DNS_NULL_MX:
		return "null_mx";
	case CO_DNS_NO_HOST:
		return "no_host";
	case CO_DNS_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

static json_t *addr_json(const struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN];
	const void *src;

	if (ss->ss_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
	else if (ss->ss_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
	else
		return json_string("?");
	if (inet_ntop(ss->ss_family, src, buf, sizeof buf) == NULL)
		return json_string("?");
	return json_string(buf);
}

static void finished(void)
{
	if (++nfinished == njobs && deadline_ev != NULL)
		event_del(deadline_ev);
}

static void stop_others(struct job *self, bool freeing)
{
	for (size_t i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];

		if (j == self || j->done || j->cancelled)
			continue;
		if (!freeing)
			co_dns_cancel(j->req);
		j->cancelled = true;
		finished();
	}
	if (freeing) {
		co_dns_free(dns);
		dns = NULL;
	}
}

static void on_result(void *arg, const co_dns_result *res)
{
	struct job *job = arg;
	json_t *o, *hosts;

	if (job->cancelled || job->done) {
		fprintf(stderr, "co-dns-probe: %s callback for %s\n",
		        job->cancelled ? "cancelled request got a" : "second", job->query);
		exit_status = 3;
		return;
	}
	job->done = true;
	hosts = json_array();
	for (unsigned i = 0; i < res->nhosts; i++) {
		const co_dns_host *h = &res->hosts[i];
		json_t *addrs = json_array();

		for (unsigned k = 0; k < h->naddr; k++)
			json_array_append_new(addrs, addr_json(&h->addr[k]));
		json_array_append_new(hosts, json_pack("{s:s, s:I, s:I, s:o}", "name", h->name,
		                                       "pref", (json_int_t)h->pref, "port",
		                                       (json_int_t)h->port, "addrs", addrs));
	}
	o = json_pack("{s:s, s:s, s:b, s:s, s:I, s:o}", "query", job->query, "status",
	              status_name(res->status), "implicit_mx", res->implicit_mx, "detail",
	              res->detail, "ms", (json_int_t)(now_ms() - job->start), "hosts", hosts);
	job->out = o;
	finished();
	if (cancel_in_callback || free_in_callback) {
		stop_others(job, free_in_callback);
		cancel_in_callback = free_in_callback = false;
	}
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
	stop_others(NULL, false);
}

static void on_free_timer(evutil_socket_t fd, short what, void *arg)
{
	stop_others(NULL, true);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "co-dns-probe: deadline passed, %zu of %zu requests finished\n", nfinished,
	        njobs);
	exit_status = 4;
	event_base_loopbreak(base);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: co-dns-probe [OPTIONS] DOMAIN...\n"
	        "       co-dns-probe --hosts [OPTIONS] NAME[@PORT]...\n"
	        "  --server LIST        DNS servers IP[:PORT],... (default /etc/resolv.conf)\n"
	        "  --timeout MS         per try (default 2000)\n"
	        "  --max-hosts N        MX hosts kept (default 0: the library's maximum)\n"
	        "  --repeat N           every request N times, all in parallel\n"
	        "  --cancel-after MS    cancel the requests still running after MS ms\n"
	        "  --free-after MS      free the resolver after MS ms\n"
	        "  --cancel-in-callback the first callback cancels every other request\n"
	        "  --free-in-callback   the first callback frees the resolver\n"
	        "  --deadline MS        give up after MS ms (default 60000)\n");
	exit(2);
}

static unsigned long num_arg(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0')
		usage();
	return v;
}

int main(int argc, char **argv)
{
	enum {
		OPT_SERVER = 256,
		OPT_TIMEOUT,
		OPT_MAX_HOSTS,
		OPT_REPEAT,
		OPT_CANCEL_AFTER,
		OPT_FREE_AFTER,
		OPT_CANCEL_CB,
		OPT_FREE_CB,
		OPT_DEADLINE,
		OPT_HOSTS
	};
	static const struct option longopts[] = {
	    {"server", required_argument, NULL, OPT_SERVER},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"max-hosts", required_argument, NULL, OPT_MAX_HOSTS},
	    {"repeat", required_argument, NULL, OPT_REPEAT},
	    {"cancel-after", required_argument, NULL, OPT_CANCEL_AFTER},
	    {"free-after", required_argument, NULL, OPT_FREE_AFTER},
	    {"cancel-in-callback", no_argument, NULL, OPT_CANCEL_CB},
	    {"free-in-callback", no_argument, NULL, OPT_FREE_CB},
	    {"deadline", required_argument, NULL, OPT_DEADLINE},
	    {"hosts", no_argument, NULL, OPT_HOSTS},
	    {NULL, 0, NULL, 0},
	};
	const char *server = NULL;
	unsigned long timeout = 2000, max_hosts = 0, repeat = 1, deadline = 60000;
	long cancel_after = -1, free_after = -1;
	bool hosts_mode = false;
	const char **names = NULL;
	unsigned *ports = NULL;
	size_t nargs;
	struct event *cancel_ev = NULL, *free_ev = NULL;
	char err[256];
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SERVER:
			server = optarg;
			break;
		case OPT_TIMEOUT:
			timeout = num_arg(optarg);
			break;
		case OPT_MAX_HOSTS:
			max_hosts = num_arg(optarg);
			break;
		case OPT_REPEAT:
			repeat = num_arg(optarg);
			break;
		case OPT_CANCEL_AFTER:
			cancel_after = (long)num_arg(optarg);
			break;
		case OPT_FREE_AFTER:
			free_after = (long)num_arg(optarg);
			break;
		case OPT_CANCEL_CB:
			cancel_in_callback = true;
			break;
		case OPT_FREE_CB:
			free_in_callback = true;
			break;
		case OPT_DEADLINE:
			deadline = num_arg(optarg);
			break;
		case OPT_HOSTS:
			hosts_mode = true;
			break;
		default:
			usage();
		}
	}
	nargs = (size_t)(argc - optind);
	if (repeat == 0 || repeat > 10000 || (nargs == 0 && !hosts_mode))
		usage();

	base = event_base_new();
	if (base == NULL) {
		fprintf(stderr, "co-dns-probe: event_base_new failed\n");
		return 1;
	}
	dns = co_dns_new(base, server, (unsigned)timeout, err, sizeof err);
	if (dns == NULL) {
		fprintf(stderr, "co-dns-probe: %s\n", err);
		event_base_free(base);
		return 1;
	}

	if (hosts_mode) {
		/* one request with every NAME[@PORT] */
		names = calloc(nargs + 1, sizeof *names);
		ports = calloc(nargs + 1, sizeof *ports);
		if (names == NULL || ports == NULL) {
			perror("co-dns-probe");
			return 1;
		}
		for (size_t i = 0; i < nargs; i++) {
			char *arg = argv[optind + (int)i];
			char *at = strrchr(arg, '@');

			if (at != NULL) {
				*at = '\0';
				ports[i] = (unsigned)num_arg(at + 1);
			}
			names[i] = arg;
		}
		njobs = repeat;
	} else {
		njobs = nargs * repeat;
	}
	jobs = calloc(njobs, sizeof *jobs);
	if (jobs == NULL) {
		perror("co-dns-probe");
		return 1;
	}

	deadline_ev = evtimer_new(base, on_deadline, NULL);
	if (deadline_ev == NULL) {
		fprintf(stderr, "co-dns-probe: evtimer_new failed\n");
		return 1;
	}
	{
		struct timeval tv = {(time_t)(deadline / 1000),
		                     (suseconds_t)(deadline % 1000) * 1000};

		evtimer_add(deadline_ev, &tv);
	}

	for (size_t i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];

		j->start = now_ms();
		if (hosts_mode) {
			j->query = nargs > 0 ? names[0] : "";
			j->req =
			    co_dns_resolve_hosts(dns, names, ports, (unsigned)nargs, on_result, j);
		} else {
			j->query = argv[optind + (int)(i % nargs)];
			j->req =
			    co_dns_resolve_mx(dns, j->query, (unsigned)max_hosts, on_result, j);
		}
		if (j->req == NULL) {
			fprintf(stderr, "co-dns-probe: request for %s failed\n", j->query);
			return 1;
		}
	}

	if (cancel_after >= 0) {
		struct timeval tv = {cancel_after / 1000,
		                     (suseconds_t)(cancel_after % 1000) * 1000};

		cancel_ev = evtimer_new(base, on_cancel_timer, NULL);
		if (cancel_ev == NULL)
			return 1;
		evtimer_add(cancel_ev, &tv);
	}
	if (free_after >= 0) {
		struct timeval tv = {free_after / 1000, (suseconds_t)(free_after % 1000) * 1000};

		free_ev = evtimer_new(base, on_free_timer, NULL);
		if (free_ev == NULL)
			return 1;
		evtimer_add(free_ev, &tv);
	}

	event_base_dispatch(base);

	if (nfinished < njobs && exit_status == 0) {
		fprintf(stderr, "co-dns-probe: loop ended with %zu of %zu requests finished\n",
		        nfinished, njobs);
		exit_status = 3;
	}
	for (size_t i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];
		char *line;

		if (j->out == NULL)
			j->out = json_pack("{s:s, s:s}", "query", j->query, "status",
			                   j->cancelled ? "cancelled" : "unfinished");
		line = json_dumps(j->out, JSON_COMPACT);
		if (line != NULL) {
			puts(line);
			free(line);
		}
		json_decref(j->out);
	}

	co_dns_free(dns);
	if (cancel_ev != NULL)
		event_free(cancel_ev);
	if (free_ev != NULL)
		event_free(free_ev);
	event_free(deadline_ev);
	event_base_free(base);
	libevent_global_shutdown();
	free(jobs);
	free(names);
	free(ports);
	return exit_status;
}
