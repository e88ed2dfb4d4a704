/*
 * calloutd's metrics: counters kept as verifications finish and decisions
 * are made, rendered in the Prometheus text exposition format (0.0.4) for
 * GET /metrics.  Every name starts with "calloutd_"; each family has its
 * # HELP and # TYPE lines.  The families and their labels are listed in
 * docs/http-api.md.
 *
 * Counters are relaxed atomics: the daemon calls in from its loop thread
 * only, but a stray call from a milter thread must not tear a count, and
 * a scrape needs no consistent snapshot across families.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <callout/callout.h>

#include "daemon.h"

#define NVERDICT 4
#define NACTION 3
#define NSMTP_STAGE (CALLOUT_STAGE_RCPT - CALLOUT_STAGE_CONNECT + 1)

/* Latency buckets: upper bounds in ms, and as rendered (seconds). */
static const unsigned bucket_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};
static const char *const bucket_le[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                        "0.5",   "1",    "2.5",   "5",    "10",  "30"};
#define NBUCKET (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

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
	counter cache[CD_FE_COUNT][2];      /* [0] miss (probed), [1] hit */
	counter actions[CD_FE_COUNT][NACTION][2]; /* [.][.][1]: verified, [0]: skipped */
	counter dns_errors[CD_FE_COUNT];
	counter smtp_errors[CD_FE_COUNT][NSMTP_STAGE];
	histogram latency[CD_FE_COUNT][2];  /* [.][1]: answered from the cache */
};

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

	if (m)
		m->start_time = (long long)time(NULL);
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

char *cd_metrics_render(const cd_metrics *m, unsigned inflight, const callout_stats *engine)
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

	/* verdict x reason: only the pairs seen so far (most never occur) */
	family(fp, "calloutd_verifications_total", "counter",
	       "Verifications finished, by front end, verdict and reason.");
	for (unsigned fe = 0; fe < CD_FE_COUNT; fe++)
		for (unsigned v = 0; v < NVERDICT; v++)
			for (unsigned r = 0; r < CALLOUT_R_COUNT; r++) {
				unsigned long long n = get(&m->results[fe][v][r]);

				if (n)
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

	bool bad = ferror(fp) != 0;

	if (fclose(fp) != 0 || bad) {
		free(buf);
		return NULL;
	}
	return buf;
}
