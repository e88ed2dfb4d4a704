/*
 * A bulk run seen from the terminal: counts by verdict and reason, a
 * progress line redrawn in place on standard error (done/total, rate,
 * ETA, counts, and what the run waits on), and the summary at the end.
 *
 * The progress line says when verifications wait for the limits that
 * protect the servers asked (per domain and per MX host: sessions at once
 * and a rate a minute) or for hosts backing off after failures: a list
 * of one domain is slow by design, and the user should know that is why.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct cli_progress {
	FILE *fp;
	bool draw;
	bool drawn; /* a line is on the screen */
	long long total;
	double t0, last_draw;
	unsigned long long done, skipped;
	cli_tally tally; /* done and skipped */
	callout_stats st;
	unsigned long samples, waiting_samples, backoff_samples;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_tally_add(cli_tally *t, callout_verdict v, callout_reason r)
{
	if ((unsigned)v < CLI_VERDICTS)
		t->verdicts[v]++;
	if ((unsigned)r < CALLOUT_R_COUNT)
		t->reasons[r]++;
}

cli_progress *cli_progress_new(FILE *fp, bool draw, long long total)
{
	cli_progress *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->fp = fp;
	p->draw = draw;
	p->total = total;
	p->t0 = now();
	return p;
}

void cli_progress_free(cli_progress *p)
{
	free(p);
}

void cli_progress_result(cli_progress *p, callout_verdict v, callout_reason r)
{
	p->done++;
	cli_tally_add(&p->tally, v, r);
}

void cli_progress_skipped(cli_progress *p, callout_verdict v, callout_reason r)
{
	p->skipped++;
	cli_tally_add(&p->tally, v, r);
}

/* "4s", "3m05s", "2h07m" */
static void fmt_duration(char *buf, size_t len, double s)
{
	unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);

	if (s < 10) {
		unsigned tenths = s < 0 ? 0 : (unsigned)(s * 10 + 0.5);
		snprintf(buf, len, "%u.%us", tenths / 10, tenths % 10);
	} else if (t < 60)
		snprintf(buf, len, "%lus", t);
	else if (t < 3600)
		snprintf(buf, len, "%lum%02lus", t / 60, t % 60);
	else
		snprintf(buf, len, "%luh%02lum", t / 3600, t / 60 % 60);
}

static int columns(FILE *fp)
{
	struct winsize ws;

	if (ioctl(fileno(fp), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

void cli_progress_clear(cli_progress *p)
{
	if (!p || !p->drawn)
		return;
	fputs("\r\033[K", p->fp);
	fflush(p->fp);
	p->drawn = false;
}

static void draw(cli_progress *p, double t)
{
	char line[512], a[32];
	FILE *m = fmemopen(line, sizeof(line), "w"); /* what does not fit is cut */
	size_t n, width = (size_t)columns(p->fp) - 1;
	unsigned long long seen = p->done + p->skipped;
	double elapsed = t - p->t0, rate = elapsed > 0.5 ? (double)p->done / elapsed : 0;

	if (!m)
		return;
	if (p->total >= 0) {
		fprintf(m, "%llu/%lld", seen, p->total);
		if (p->total > 0)
			fprintf(m, " (%.0f%%)", 100.0 * (double)seen / (double)p->total);
	} else {
		fprintf(m, "%llu done", seen);
	}
	fprintf(m, " %.1f/s", rate);
	/* no ETA when what is left waits for its re-check: their delays say
	 * when, not the rate */
	if (p->total >= 0 && rate > 0 && (unsigned long long)p->total > seen &&
	    (unsigned long long)p->total - seen > p->st.rechecks_pending) {
		fmt_duration(a, sizeof(a), (double)((unsigned long long)p->total - seen) / rate);
		fprintf(m, " ETA %s", a);
	}
	/* what the run waits on first: a narrow terminal cuts the end */
	if (p->st.waiting) /* counted among the probing too */
		fprintf(m, " | %u waiting for per-domain/host limits", p->st.waiting);
	else if (p->st.probing || !p->st.rechecks_pending)
		fprintf(m, " | %u probing", p->st.probing);
	if (p->st.hosts_backing_off)
		fprintf(m, ", %u host%s backing off", p->st.hosts_backing_off,
		        p->st.hosts_backing_off == 1 ? "" : "s");
	if (p->st.rechecks_pending) /* greylisted, printed once re-checked */
		fprintf(m, "%s%u pending recheck",
		        p->st.waiting || p->st.probing || p->st.hosts_backing_off ? ", " : " | ",
		        p->st.rechecks_pending);
	fprintf(m, " | valid %llu invalid %llu unknown %llu tempfail %llu",
	        p->tally.verdicts[CALLOUT_VALID], p->tally.verdicts[CALLOUT_INVALID],
	        p->tally.verdicts[CALLOUT_UNKNOWN], p->tally.verdicts[CALLOUT_TEMPFAIL]);
	n = (size_t)ftell(m);
	fclose(m);
	if (n > width)
		n = width;
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	fputs("\r\033[K", p->fp);
	fwrite(line, 1, n, p->fp);
	fflush(p->fp);
	p->drawn = true;
	p->last_draw = t;
}

void cli_progress_tick(cli_progress *p, const callout_stats *st, bool force)
{
	double t = now();

	if (st) {
		p->st = *st;
		p->samples++;
		if (st->waiting)
			p->waiting_samples++;
		if (st->hosts_backing_off)
			p->backoff_samples++;
	}
	if (p->draw && (force || t - p->last_draw >= 1.0 / CLI_PROGRESS_HZ - 0.01))
		draw(p, t);
}

void cli_progress_summary(cli_progress *p, int sig, unsigned long in_flight)
{
	FILE *fp = p->fp;
	double elapsed = now() - p->t0;
	char a[32];

	cli_progress_clear(p);
	fmt_duration(a, sizeof(a), elapsed);
	if (sig)
		fprintf(fp,
		        "%s: interrupted by %s: %lu verification%s in flight cancelled, "
		        "the results so far are written\n",
		        CLI_PROG " check",
		        sig == SIGINT    ? "SIGINT"
		        : sig == SIGTERM ? "SIGTERM"
		                         : "a signal",
		        in_flight, in_flight == 1 ? "" : "s");
	fprintf(fp, "%s: %llu verified in %s (%.1f/s)", CLI_PROG " check", p->done, a,
	        elapsed > 0 ? (double)p->done / elapsed : 0.0);
	if (p->skipped)
		fprintf(fp, ", %llu skipped (already in the --resume file)", p->skipped);
	if (p->total >= 0 && (unsigned long long)p->total > p->done + p->skipped)
		fprintf(fp, ", %llu not done", (unsigned long long)p->total - p->done - p->skipped);
	fputs("\n", fp);
	fprintf(fp, "  %-24s %10s\n", "verdict", "count");
	for (int v = 0; v < CLI_VERDICTS; v++)
		fprintf(fp, "  %-24s %10llu\n", callout_verdict_name((callout_verdict)v),
		        p->tally.verdicts[v]);
	fprintf(fp, "  %-24s %10s\n", "reason", "count");
	for (int r = 0; r < CALLOUT_R_COUNT; r++)
		if (p->tally.reasons[r])
			fprintf(fp, "  %-24s %10llu\n", callout_reason_name((callout_reason)r),
			        p->tally.reasons[r]);
	if (p->samples >= 2 * CLI_PROGRESS_HZ && p->waiting_samples * 4 >= p->samples)
		fprintf(
		    fp,
		    "Verifications waited for the limits that protect the servers asked "
		    "%.0f%% of the time: each domain and each MX host gets a few sessions at "
		    "once and a few a minute (--domain-sessions, --domain-rate, --host-sessions, "
		    "--host-rate, --max-probes).  A list of few domains is slow by design.\n",
		    100.0 * (double)p->waiting_samples / (double)p->samples);
	if (p->samples >= 2 * CLI_PROGRESS_HZ && p->backoff_samples * 4 >= p->samples)
		fprintf(fp,
		        "Some mail hosts failed and were left alone for a while (backoff) "
		        "%.0f%% of the time.\n",
		        100.0 * (double)p->backoff_samples / (double)p->samples);
	fflush(fp);
}
