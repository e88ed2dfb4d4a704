/*
 * calloutd's metrics: counters kept as verifications finish and decisions
 * are made, rendered in the Prometheus text exposition format (0.0.4) for
 * GET /metrics.  Every name starts with "calloutd_"; each family has its
 * # HELP and # TYPE lines.  The families and their labels are listed in
 * docs/http-api.md.
 *
 * Every series is there from the start, at 0: a counter that appears only
 * once it moves breaks rate() and alerts on absent series.  The process_*
 * families are the standard ones of Prometheus client libraries.
 *
 * Counters are relaxed atomics: the daemon calls in from its loop thread
 * only, but a stray call from a milter thread must not tear a count, and
 * a scrape needs no consistent snapshot across families.
 */
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <callout/callout.h>

#include "daemon.h"

#define NVERDICT    4
#define NACTION     3
#define NSMTP_STAGE (CALLOUT_STAGE_RCPT - CALLOUT_STAGE_CONNECT + 1)

/* Latency buckets: upper bounds in ms, and as rendered (seconds). */
static const unsigned bucket_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};
static const char *const bucket_le[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                        "0.5",   "1",    "2.5",   "5",    "10",  "30"};
#define NBUCKET (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

/* HTTP statuses counted by name; anything else is "other". */
static const int http_statuses[] = {200, 202, 400, 401, 404, 405, 408,
                                    413, 414, 415, 429, 431, 500, 503};
#define NHTTP_STATUS (sizeof(http_statuses) / sizeof(http_statuses[0]))

typedef atomic_ullong counter;

/* One latency histogram: per-bucket (not cumulative) counts, the +Inf
 * overflow, and the sum in ms (rendered in seconds). */
typedef struct histogram {
	counter bucket[NBUCKET + 1];
	counter sum_ms;
} histogram;

struct cd_metrics {
	long long start_time; /* Unix seconds */
	counter results[CD_FE_COUNT][NVERDICT][CALLOUT_R_COUNT];
	counter cache[CD_FE_COUNT][2];            /* [0] miss (probed), [1] hit */
	counter actions[CD_FE_COUNT][NACTION][2]; /* [.][.][1]: verified, [0]: skipped */
	counter dns_errors[CD_FE_COUNT];
	counter smtp_errors[CD_FE_COUNT][NSMTP_STAGE];
	histogram latency[CD_FE_COUNT][2];        /* [.][1]: answered from the cache */
	counter http_responses[NHTTP_STATUS + 1]; /* [NHTTP_STATUS]: other */
	double start_time_exact;                  /* Unix seconds, for process_start_time_seconds */
	/* the last doctor run (GET /v1/doctor): a level per check, -1 before */
	_Atomic int doctor[8];
	_Atomic long long doctor_time;
	/* bulk jobs (jobs.c): how many in each state, results by verdict */
	_Atomic unsigned jobs[CD_JOB_NSTATES];
	counter job_results[NVERDICT];
};

/* The doctor's checks, stable names (callout.h), in its order. */
static const char *const doctor_checks[8] = {"connect", "egress", "ptr",      "fcrdns",
                                             "helo",    "dnsbl",  "starttls", "clock"};

void cd_metrics_doctor(cd_metrics *m, const callout_doctor_report *rep)
{
	for (unsigned i = 0; i < rep->nchecks; i++)
		for (unsigned k = 0; k < 8; k++)
			if (strcmp(rep->checks[i].name, doctor_checks[k]) == 0)
				atomic_store(&m->doctor[k], (int)rep->checks[i].level);
	atomic_store(&m->doctor_time, (long long)time(NULL));
}

void cd_metrics_jobs(cd_metrics *m, const unsigned by_state[CD_JOB_NSTATES])
{
	for (unsigned i = 0; i < CD_JOB_NSTATES; i++)
		atomic_store(&m->jobs[i], by_state[i]);
}

void cd_metrics_job_result(cd_metrics *m, callout_verdict v)
{
	if ((unsigned)v < NVERDICT)
		atomic_fetch_add_explicit(&m->job_results[v], 1, memory_order_relaxed);
}

static const char *const action_names[NACTION] = {
    [CD_ACT_PASS] = "pass",
    [CD_ACT_REJECT] = "reject",
    [CD_ACT_DEFER] = "defer",
};

static void inc(counter *c, unsigned long long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long long get(const counter *c)
{
	/* atomic_load takes a pointer to non-const in C17 */
	return atomic_load_explicit((counter *)c, memory_order_relaxed);
}

const char *cd_frontend_name(cd_frontend fe)
{
	switch (fe) {
	case CD_FE_POLICY:
		return "policy";
	case CD_FE_MILTER:
		return "milter";
	case CD_FE_HTTP:
		return "http";
	default:
		return "?";
	}
}

cd_metrics *cd_metrics_new(void)
{
	/* calloc: all-zero bits are a valid zero for the atomic counters on
	 * every platform the daemon builds on (lock-free atomic_ullong) */
	cd_metrics *m = calloc(1, sizeof(*m));

	struct timespec ts;

	if (!m)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (long long)ts.tv_sec;
	m->start_time_exact = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	for (unsigned k = 0; k < 8; k++)
		atomic_init(&m->doctor[k], -1);
	return m;
}

void cd_metrics_free(cd_metrics *m)
{
	free(m);
}

/*
 * An SMTP error: a tempfail the remote side or the network caused between
 * connecting and RCPT, as opposed to DNS trouble, greylisting (a normal
 * answer) or our own limits.
 */
static bool smtp_error(const callout_result *res)
{
	if (res->verdict != CALLOUT_TEMPFAIL || res->stage < CALLOUT_STAGE_CONNECT ||
	    res->stage > CALLOUT_STAGE_RCPT)
		return false;
	switch (res->reason) {
	case CALLOUT_R_TEMP_REJECT:
	case CALLOUT_R_TOO_MANY_RECIPIENTS:
	case CALLOUT_R_TIMEOUT:
	case CALLOUT_R_CONNECT_FAILED:
	case CALLOUT_R_CONNECTION_LOST:
	case CALLOUT_R_PROTOCOL_ERROR:
	case CALLOUT_R_TLS_FAILED:
		return true;
	default:
		return false;
	}
}

void cd_metrics_result(cd_metrics *m, cd_frontend fe, const callout_result *res)
{
	size_t b;

	if (!m || !res || (unsigned)fe >= CD_FE_COUNT)
		return;
	if ((unsigned)res->verdict < NVERDICT && (unsigned)res->reason < CALLOUT_R_COUNT)
		inc(&m->results[fe][res->verdict][res->reason], 1);
	/* a syntax error never reaches the cache: neither hit nor miss */
	if (res->reason != CALLOUT_R_SYNTAX)
		inc(&m->cache[fe][res->cached], 1);
	/* errors seen on the network now, not a cached memory of them */
	if (!res->cached) {
		if (res->reason == CALLOUT_R_DNS_TEMPFAIL)
			inc(&m->dns_errors[fe], 1);
		else if (smtp_error(res))
			inc(&m->smtp_errors[fe][res->stage - CALLOUT_STAGE_CONNECT], 1);
	}
	for (b = 0; b < NBUCKET && res->ms > bucket_ms[b]; b++)
		;
	inc(&m->latency[fe][res->cached].bucket[b], 1);
	inc(&m->latency[fe][res->cached].sum_ms, res->ms);
}

void cd_metrics_action(cd_metrics *m, cd_frontend fe, cd_action a, bool verified)
{
	if (!m || (unsigned)fe >= CD_FE_COUNT || (unsigned)a >= NACTION)
		return;
	inc(&m->actions[fe][a][verified], 1);
}

void cd_metrics_http_response(cd_metrics *m, int status)
{
	size_t i = 0;

	if (!m)
		return;
	while (i < NHTTP_STATUS && http_statuses[i] != status)
		i++;
	inc(&m->http_responses[i], 1);
}

static void family(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_histograms(FILE *fp, const cd_metrics *m)
{
	static const char name[] = "calloutd_verification_duration_seconds";

	family(fp, name, "histogram",
	       "Time from the start of a verification to its verdict, by front end and "
	       "whether the cache answered.");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++) {
		for (unsigned c = 0; c < 2; c++) {
			const histogram *h = &m->latency[fe][c];
			const char *fen = cd_frontend_name((cd_frontend)fe);
			const char *cn = c ? "true" : "false";
			unsigned long long cum = 0, sum = get(&h->sum_ms);

			for (size_t b = 0; b <= NBUCKET; b++) {
				cum += get(&h->bucket[b]);
				fprintf(fp,
				        "%s_bucket{frontend=\"%s\",cached=\"%s\",le=\"%s\"} %llu\n",
				        name, fen, cn, b < NBUCKET ? bucket_le[b] : "+Inf", cum);
			}
			/* the sum in seconds, exactly: ms / 1000 as a decimal */
			fprintf(fp, "%s_sum{frontend=\"%s\",cached=\"%s\"} %llu.%03llu\n", name,
			        fen, cn, sum / 1000, sum % 1000);
			fprintf(fp, "%s_count{frontend=\"%s\",cached=\"%s\"} %llu\n", name, fen, cn,
			        cum);
		}
	}
}

/* The cache and DNS as the engine sees them (callout_ctx_health). */
static void render_health(FILE *fp, const callout_health *h)
{
	static const callout_health none = {
	    .cache_backend = "none", .cache_up = true, .dns_up = true};

	if (!h)
		h = &none;
	family(fp, "calloutd_cache_up", "gauge",
	       "1 when the cache works (or there is none), 0 while it is failing and every "
	       "answer is probed.");
	fprintf(fp, "calloutd_cache_up{backend=\"%s\"} %d\n", h->cache_backend, h->cache_up);
	family(fp, "calloutd_cache_errors_total", "counter",
	       "Cache faults: failed opens, connections, reads and writes.");
	fprintf(fp, "calloutd_cache_errors_total{backend=\"%s\"} %llu\n", h->cache_backend,
	        h->cache_errors);
	family(fp, "calloutd_limits_shared", "gauge",
	       "1 when the per-domain and per-MX limits hold across the fleet (Redis).");
	fprintf(fp, "calloutd_limits_shared %d\n", h->limits_shared);
	family(fp, "calloutd_limits_up", "gauge",
	       "1 while the shared limits' Redis answers (0: each node keeps its share).");
	fprintf(fp, "calloutd_limits_up %d\n", !h->limits_shared || h->limits_up);
	family(fp, "calloutd_limits_leases", "gauge", "Session slots this node holds.");
	fprintf(fp, "calloutd_limits_leases %u\n", h->limits_leases);
	family(fp, "calloutd_limits_nodes", "gauge",
	       "Live nodes sharing the limits, last counted.");
	fprintf(fp, "calloutd_limits_nodes %u\n", h->limits_shared ? h->limits_nodes : 1);
	family(fp, "calloutd_limits_fallbacks_total", "counter",
	       "Session admissions decided without Redis (its share of each limit).");
	fprintf(fp, "calloutd_limits_fallbacks_total %llu\n", h->limits_fallbacks);
	family(fp, "calloutd_limits_round_trips_total", "counter",
	       "Commands and scripts sent to Redis for the shared limits.");
	fprintf(fp, "calloutd_limits_round_trips_total %llu\n", h->limits_round_trips);
	family(fp, "calloutd_limits_admissions_total", "counter",
	       "Sessions admitted by the limits.");
	fprintf(fp, "calloutd_limits_admissions_total %llu\n", h->limits_admissions);
	family(fp, "calloutd_dns_up", "gauge",
	       "1 unless the last DNS lookup failed (timeout, SERVFAIL, REFUSED).");
	fprintf(fp, "calloutd_dns_up %d\n", h->dns_up);
}

/* A number from /proc/self/stat: field (1-based, as in proc(5)). */
static bool proc_stat_field(unsigned field, unsigned long long *out)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	/* the command (field 2) may hold spaces: count from its closing ')' */
	char *p = strrchr(buf, ')');
	if (!p || field < 3)
		return false;
	p++;
	for (unsigned i = 3; i < field; i++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return false;
	}
	return sscanf(p, " %llu", out) == 1;
}

static long long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long long n = 0;

	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the one reading the directory */
}

static void render_process(FILE *fp, const cd_metrics *m)
{
	struct rusage ru;
	struct rlimit rl;
	unsigned long long rss_pages = 0;
	long page = sysconf(_SC_PAGESIZE);

	family(fp, "process_cpu_seconds_total", "counter",
	       "User and system CPU time spent, in seconds.");
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		fprintf(fp, "process_cpu_seconds_total %.3f\n",
		        (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		            (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	family(fp, "process_open_fds", "gauge", "Open file descriptors.");
	fprintf(fp, "process_open_fds %lld\n", open_fds());
	family(fp, "process_max_fds", "gauge", "The limit on open file descriptors.");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fprintf(fp, "process_max_fds %lld\n",
		        rl.rlim_cur == RLIM_INFINITY ? -1LL : (long long)rl.rlim_cur);
	family(fp, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
	if (proc_stat_field(24, &rss_pages)) /* rss, in pages */
		fprintf(fp, "process_resident_memory_bytes %llu\n",
		        rss_pages * (unsigned long long)(page > 0 ? page : 4096));
	family(fp, "process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch, in seconds.");
	fprintf(fp, "process_start_time_seconds %.3f\n", m->start_time_exact);
}

/* The verdict a reason comes with (callout.h groups them). */
static callout_verdict reason_verdict(unsigned r)
{
	if (r == CALLOUT_R_ACCEPTED)
		return CALLOUT_VALID;
	if (r <= CALLOUT_R_MAILBOX_DISABLED)
		return CALLOUT_INVALID;
	if (r <= CALLOUT_R_REJECTED || r == CALLOUT_R_PRIVATE_ADDRESS)
		return CALLOUT_UNKNOWN;
	return CALLOUT_TEMPFAIL;
}

static void render_doctor(FILE *fp, const cd_metrics *m)
{
	family(fp, "calloutd_doctor_check", "gauge",
	       "The last GET /v1/doctor run, by check: 0 pass, 1 warn, 2 fail, 3 skip; -1 before "
	       "the first run.");
	for (unsigned k = 0; k < 8; k++)
		fprintf(fp, "calloutd_doctor_check{check=\"%s\"} %d\n", doctor_checks[k],
		        atomic_load((_Atomic int *)&m->doctor[k]));
	family(fp, "calloutd_doctor_last_run_timestamp_seconds", "gauge",
	       "When the last GET /v1/doctor run ended, in Unix seconds; 0 before the first.");
	fprintf(fp, "calloutd_doctor_last_run_timestamp_seconds %lld\n",
	        atomic_load((_Atomic long long *)&m->doctor_time));
}

/* Each SOCKS5 proxy of the engine's pools. */
static void render_jobs(FILE *fp, const cd_metrics *m)
{
	family(fp, "calloutd_jobs", "gauge",
	       "Bulk jobs stored (POST /v1/jobs), by state; with jobs in Redis, the fleet's.");
	for (unsigned i = 0; i < CD_JOB_NSTATES; i++)
		fprintf(fp, "calloutd_jobs{state=\"%s\"} %u\n", cd_job_state_name((cd_job_state)i),
		        atomic_load((_Atomic unsigned *)&m->jobs[i]));
	family(fp, "calloutd_job_verifications_total", "counter",
	       "Verifications of bulk jobs finished, by verdict.");
	for (unsigned v = 0; v < NVERDICT; v++)
		fprintf(fp, "calloutd_job_verifications_total{verdict=\"%s\"} %llu\n",
		        callout_verdict_name((callout_verdict)v),
		        atomic_load_explicit((counter *)&m->job_results[v], memory_order_relaxed));
}

static void render_proxies(FILE *fp, const callout_proxy_health *px, size_t n)
{
	if (!n)
		return;
	family(fp, "calloutd_proxy_up", "gauge",
	       "1 while a SOCKS5 proxy is in use, 0 while it is down and checked until it "
	       "answers.");
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "calloutd_proxy_up{pool=\"%s\",proxy=\"%s\"} %d\n", px[i].pool,
		        px[i].proxy, px[i].up);
	family(fp, "calloutd_proxy_sessions", "gauge", "Connections through a proxy now.");
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "calloutd_proxy_sessions{pool=\"%s\",proxy=\"%s\"} %u\n", px[i].pool,
		        px[i].proxy, px[i].sessions);
	family(fp, "calloutd_proxy_connections_total", "counter",
	       "Connections opened through a proxy.");
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "calloutd_proxy_connections_total{pool=\"%s\",proxy=\"%s\"} %llu\n",
		        px[i].pool, px[i].proxy, px[i].connections);
	family(fp, "calloutd_proxy_failures_total", "counter",
	       "Failures of a proxy itself (down, password refused, broken handshake, stalled).");
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "calloutd_proxy_failures_total{pool=\"%s\",proxy=\"%s\"} %llu\n",
		        px[i].pool, px[i].proxy, px[i].failures);
}

/* Greylisting re-checks (greylist_recheck): pending, scheduled, and how
 * they ended. */
static void render_rechecks(FILE *fp, const callout_stats *st)
{
	if (!st)
		return;
	family(fp, "calloutd_greylist_rechecks_pending", "gauge",
	       "Greylisted addresses waiting for their re-check.");
	fprintf(fp, "calloutd_greylist_rechecks_pending %u\n", st->rechecks_pending);
	family(fp, "calloutd_greylist_rechecks_scheduled_total", "counter",
	       "Greylisted addresses given a re-check.");
	fprintf(fp, "calloutd_greylist_rechecks_scheduled_total %llu\n", st->rechecks_scheduled);
	family(fp, "calloutd_greylist_rechecks_dropped_total", "counter",
	       "Greylisted addresses not given a re-check: greylist_recheck_max were pending.");
	fprintf(fp, "calloutd_greylist_rechecks_dropped_total %llu\n", st->rechecks_dropped);
	family(fp, "calloutd_greylist_rechecks_total", "counter",
	       "Re-checks ended, by the verdict of their last answer (tempfail: still so after "
	       "the last delay, given up).");
	for (unsigned v = 0; v < 4; v++)
		fprintf(fp, "calloutd_greylist_rechecks_total{outcome=\"%s\"} %llu\n",
		        callout_verdict_name((callout_verdict)v), st->rechecks_done[v]);
}

char *cd_metrics_render(const cd_metrics *m, unsigned inflight, const callout_stats *engine,
                        const callout_health *health, const callout_proxy_health *proxies,
                        size_t nproxies)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	if (!m)
		return NULL;
	fp = open_memstream(&buf, &len);
	if (!fp)
		return NULL;

	family(fp, "calloutd_build_info", "gauge", "Always 1; the version of libcallout in use.");
	fprintf(fp, "calloutd_build_info{version=\"%s\"} 1\n", callout_version());

	family(fp, "calloutd_start_time_seconds", "gauge",
	       "Start time of the daemon since the Unix epoch, in seconds.");
	fprintf(fp, "calloutd_start_time_seconds %lld\n", m->start_time);

	family(fp, "calloutd_verifications_in_flight", "gauge",
	       "Verifications running now (mail transactions and HTTP requests).");
	fprintf(fp, "calloutd_verifications_in_flight %u\n", inflight);

	/* The limits at work (callout_ctx_stats) */
	static const struct {
		const char *name, *help;
		size_t off;
	} gauges[] = {
	    {"calloutd_engine_probing", "Verifications past the cache, holding a slot.",
	     offsetof(callout_stats, probing)},
	    {"calloutd_engine_waiting",
	     "Verifications waiting for a slot (max_probes, or a limit of their domain or MX).",
	     offsetof(callout_stats, waiting)},
	    {"calloutd_engine_sessions", "SMTP sessions open, idle ones included.",
	     offsetof(callout_stats, sessions)},
	    {"calloutd_engine_idle_sessions",
	     "SMTP sessions kept open for the next address of their domain.",
	     offsetof(callout_stats, idle_sessions)},
	    {"calloutd_engine_hosts_backing_off", "MX addresses left alone after failures.",
	     offsetof(callout_stats, hosts_backing_off)},
	};
	for (size_t i = 0; engine && i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		unsigned v;
		memcpy(&v, (const char *)engine + gauges[i].off, sizeof(v));
		family(fp, gauges[i].name, "gauge", gauges[i].help);
		fprintf(fp, "%s %u\n", gauges[i].name, v);
	}

	render_rechecks(fp, engine);

	/* verdict x reason: the pairs that go together, from 0, and any other
	 * pair once seen */
	family(fp, "calloutd_verifications_total", "counter",
	       "Verifications finished, by front end, verdict and reason.");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++)
		for (unsigned v = 0; v < NVERDICT; v++)
			for (unsigned r = 0; r < CALLOUT_R_COUNT; r++) {
				unsigned long long n = get(&m->results[fe][v][r]);

				if (n || reason_verdict(r) == v)
					fprintf(fp,
					        "calloutd_verifications_total{frontend=\"%s\","
					        "verdict=\"%s\",reason=\"%s\"} %llu\n",
					        cd_frontend_name((cd_frontend)fe),
					        callout_verdict_name((callout_verdict)v),
					        callout_reason_name((callout_reason)r), n);
			}

	family(fp, "calloutd_cache_lookups_total", "counter",
	       "Verifications answered from the cache (hit) or by a probe (miss); syntax errors "
	       "are neither.");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++)
		for (unsigned c = 0; c < 2; c++)
			fprintf(fp,
			        "calloutd_cache_lookups_total{frontend=\"%s\",result=\"%s\"} "
			        "%llu\n",
			        cd_frontend_name((cd_frontend)fe), c ? "hit" : "miss",
			        get(&m->cache[fe][c]));

	family(fp, "calloutd_decisions_total", "counter",
	       "Answers to mail transactions, by front end, action and whether a verification "
	       "was made (verified) or not needed (skipped).");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++) {
		if (fe == CD_FE_HTTP) /* the HTTP API verifies, it does not decide */
			continue;
		for (unsigned a = 0; a < NACTION; a++)
			for (unsigned v = 2; v-- > 0;)
				fprintf(fp,
				        "calloutd_decisions_total{frontend=\"%s\",action=\"%s\","
				        "check=\"%s\"} %llu\n",
				        cd_frontend_name((cd_frontend)fe), action_names[a],
				        v ? "verified" : "skipped", get(&m->actions[fe][a][v]));
	}

	family(fp, "calloutd_dns_errors_total", "counter",
	       "Probes that failed on DNS (reason dns_tempfail: SERVFAIL, REFUSED, timeout).");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++)
		fprintf(fp, "calloutd_dns_errors_total{frontend=\"%s\"} %llu\n",
		        cd_frontend_name((cd_frontend)fe), get(&m->dns_errors[fe]));

	family(fp, "calloutd_smtp_errors_total", "counter",
	       "Probes that failed between connect and RCPT for a network or server fault "
	       "(tempfail other than DNS, greylisting and local limits), by stage.");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++)
		for (unsigned s = 0; s < NSMTP_STAGE; s++)
			fprintf(fp,
			        "calloutd_smtp_errors_total{frontend=\"%s\",stage=\"%s\"} %llu\n",
			        cd_frontend_name((cd_frontend)fe),
			        callout_stage_name((callout_stage)(CALLOUT_STAGE_CONNECT + s)),
			        get(&m->smtp_errors[fe][s]));

	render_histograms(fp, m);

	family(fp, "calloutd_http_responses_total", "counter",
	       "HTTP responses sent, by status code (\"other\": any code not listed).");
	for (size_t i = 0; i < NHTTP_STATUS; i++)
		fprintf(fp, "calloutd_http_responses_total{code=\"%d\"} %llu\n", http_statuses[i],
		        get(&m->http_responses[i]));
	fprintf(fp, "calloutd_http_responses_total{code=\"other\"} %llu\n",
	        get(&m->http_responses[NHTTP_STATUS]));

	render_health(fp, health);
	render_proxies(fp, proxies, nproxies);
	render_doctor(fp, m);
	render_jobs(fp, m);
	render_process(fp, m);

	bool bad = ferror(fp) != 0;

	if (fclose(fp) != 0 || bad) {
		free(buf);
		return NULL;
	}
	return buf;
}
