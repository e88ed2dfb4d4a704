/*
 * The runner of bulk jobs (jobs_int.h): a job's addresses read from the
 * store PREFETCH at a time and verified, at most [http] job_inflight of
 * all jobs at once, oldest job first, none started while the front ends
 * that answer mail transactions hold half of [daemon] max_inflight.
 * Results are written in batches (FLUSH_MS, FLUSH_MAX), each with the
 * records counting them, so that after a crash or a restart the counts
 * match the results kept and the job goes on from the first address
 * without one.  Also here: a job's end (its webhook), its purge, and
 * its loading from the store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs_int.h"
#include "result_json.h"

#define PREFETCH    256  /* addresses read from the store at a time, per job */
#define FLUSH_MS    200  /* results wait at most this long to be written */
#define FLUSH_MAX   512  /* ... or until this many wait */
#define PURGE_BATCH 5000 /* entries deleted in one transaction (some ms) */
#define PURGE_MS    50   /* ... and the next batch this much later */

/* A verification in flight. */
typedef struct jq {
	LIST_ENTRY(jq) link;
	cd_jobent *j;
	callout_query *q;
	bool rechecking; /* greylisted: its slot given back, waiting for the re-check */
	uint64_t idx;
	uint32_t line;
	size_t len;
	char addr[];
} jq;

long long cd_jobs_now(void)
{
	return (long long)time(NULL);
}

/* ---- writing ----------------------------------------------------------- */

void cd_jobs_gauges(cd_jobs *js)
{
	unsigned by[CD_JOB_NSTATES] = {0};
	cd_jobent *j;

	TAILQ_FOREACH(j, &js->jobs, link)
	if (!j->deleting)
		by[j->state]++;
	cd_metrics_jobs(js->d->metrics, by);
}

/* The store refuses (full, or failing): the running jobs stop as failed,
 * their results lost since the last write.  On disk they are still
 * running: the next start takes them up from there.  A shared store's
 * jobs are only left (cd_job_demote): their leases bring them back once it
 * answers. */
static void write_failed(cd_jobs *js, int rc)
{
	cd_jobent *j;

	cd_log(CD_LOG_ERR, "jobs: cannot write results: %s",
	       rc == EBUSY ? "a job's lease is another node's" : strerror(rc));
	TAILQ_FOREACH(j, &js->jobs, link)
	{
		if (js->shared) {
			cd_job_demote(j, NULL);
			continue;
		}
		if (j->deleting || !cd_job_unfinished(j))
			continue;
		cd_job_drop_queries(j);
		j->state = CD_JOB_FAILED;
		j->finished = cd_jobs_now();
		snprintf(j->error, sizeof(j->error), "cannot write its results: %s", strerror(rc));
		cd_log(CD_LOG_ERR, "job %s: failed: %s", j->id, j->error);
	}
	cd_jobs_gauges(js);
}

/* Write the waiting results and the records that changed, together. */
int cd_jobs_flush(cd_jobs *js)
{
	cd_jtxn *t;
	presult *p;
	cd_jobent *j;
	int rc;

	event_del(js->flush_ev);
	if ((rc = cd_jstore_begin(js->store, &t)))
		goto drop;
	STAILQ_FOREACH(p, &js->results, link)
	{
		rc = cd_jstore_put_result(t, p->id, p->idx, p->json, p->len);
		if (rc && rc != EEXIST)
			break;
		rc = 0;
	}
	TAILQ_FOREACH(j, &js->jobs, link)
	{
		size_t len;
		char *s;

		if (rc || !j->dirty)
			continue;
		if (!(s = cd_job_record(j, &len))) {
			rc = ENOMEM;
			break;
		}
		rc = cd_jstore_put_meta(t, j->id, s, len);
		free(s);
	}
	if (rc)
		cd_jstore_abort(t);
	else
		rc = cd_jstore_commit(t);
	if (!rc) {
		TAILQ_FOREACH(j, &js->jobs, link)
		j->dirty = false;
	}
drop:
	if (rc)
		write_failed(js, rc);
	while ((p = STAILQ_FIRST(&js->results))) {
		STAILQ_REMOVE_HEAD(&js->results, link);
		free(p);
	}
	js->nresults = 0;
	return rc;
}

void cd_jobs_on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)cd_jobs_flush(arg);
}

static void flush_soon(cd_jobs *js)
{
	struct timeval tv = {0, FLUSH_MS * 1000};

	if (js->nresults >= FLUSH_MAX)
		(void)cd_jobs_flush(js);
	else if (!event_pending(js->flush_ev, EV_TIMEOUT, NULL))
		evtimer_add(js->flush_ev, &tv);
}

/* ---- the end of a job ---------------------------------------------------- */

static void on_webhook(void *arg, bool delivered)
{
	cd_jobent *j = arg;

	j->hook = NULL;
	j->webhook_state = delivered ? WH_DELIVERED : WH_FAILED;
	j->dirty = true;
	if (cd_jobs_flush(j->js) == 0)
		cd_job_release(j);
}

void cd_job_send_webhook(cd_jobent *j)
{
	cd_jobs *js = j->js;
	json_t *o = cd_job_json(j);
	char *body;

	/* the summary, not the webhook's own progress */
	json_object_del(o, "webhook");
	body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	const cd_config *cfg = js->d->cfg;
	cd_webhook_conf conf = {cfg->http_webhook_secret,
	                        cfg->dns_servers[0] ? cfg->dns_servers : NULL,
	                        cfg->http_webhook_allow_private};
	if (body)
		j->hook = cd_webhook_send(js->d->base, j->webhook, j->webhook_ip, &conf, body,
		                          j->id, on_webhook, j);
	free(body);
	if (!j->hook)
		cd_log(CD_LOG_ERR, "job %s: webhook: out of memory", j->id);
}

void cd_job_drop_queries(cd_jobent *j)
{
	jq *x;

	while ((x = LIST_FIRST(&j->qs))) {
		LIST_REMOVE(x, link);
		callout_cancel(x->q);
		if (!x->rechecking)
			j->js->inflight--;
		free(x);
	}
	j->inflight = j->rechecking = 0;
	free(j->buf);
	j->buf = NULL;
	j->nbuf = j->pos = 0;
}

void cd_job_end(cd_jobent *j, cd_job_state st)
{
	cd_job_drop_queries(j);
	j->state = st;
	j->finished = cd_jobs_now();
	j->dirty = true;
	cd_log(CD_LOG_INFO, "job %s: %s: %llu of %llu address%s%s%s", j->id, cd_job_state_name(st),
	       (unsigned long long)j->done, (unsigned long long)j->total, j->total == 1 ? "" : "es",
	       j->error[0] ? ": " : "", j->error);
	if (j->webhook && j->webhook_state == WH_PENDING && st != CD_JOB_FAILED)
		cd_job_send_webhook(j);
	if (cd_jobs_flush(j->js) == 0 && !j->hook)
		cd_job_release(j);
	cd_jobs_gauges(j->js);
}

/* ---- the runner ------------------------------------------------------------ */

void cd_jobs_pump_soon(cd_jobs *js)
{
	if (!js->stopping)
		event_active(js->pump_ev, 0, 0);
}

static void on_result(void *arg, callout_status st, const callout_result *res)
{
	jq *x = arg;
	cd_jobent *j = x->j;
	cd_jobs *js = j->js;
	json_t *o = NULL;
	char *s = NULL;
	presult *p;

	if (st == CALLOUT_OK && res && res->recheck_in && !x->rechecking &&
	    (j->opts.flags & CALLOUT_F_RECHECK_WAIT)) {
		/* Greylisted, a re-check pending: its answer comes later (the
		 * engine's deadline bounds it); the slot serves others meanwhile. */
		x->rechecking = true;
		j->inflight--;
		js->inflight--;
		j->rechecking++;
		cd_jobs_pump_soon(js);
		return;
	}
	LIST_REMOVE(x, link);
	if (x->rechecking) {
		j->rechecking--;
	} else {
		j->inflight--;
		js->inflight--;
	}
	if (st != CALLOUT_OK || !res || !(o = co_result_json(x->addr, x->len, res, false)) ||
	    !co_json_put(o, "line", json_integer(x->line)) ||
	    !(s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) ||
	    !(p = malloc(sizeof(*p) + strlen(s) + 1))) {
		/* not stored: the address is asked again when the job resumes */
		snprintf(j->error, sizeof(j->error), "a verification failed: %s",
		         st != CALLOUT_OK ? callout_strerror(st) : "out of memory");
		json_decref(o);
		free(s);
		free(x);
		if (!js->stopping)
			cd_job_end(j, CD_JOB_FAILED);
		return;
	}
	json_decref(o);
	memcpy(p->id, j->id, sizeof(p->id));
	p->idx = x->idx;
	p->len = strlen(s);
	memcpy(p->json, s, p->len + 1);
	free(s);
	free(x);
	STAILQ_INSERT_TAIL(&js->results, p, link);
	js->nresults++;
	if ((unsigned)res->verdict < 4)
		j->counts[res->verdict]++;
	j->done++;
	j->dirty = true;
	cd_metrics_job_result(js->d->metrics, res->verdict);
	if (j->exhausted && j->inflight == 0 && j->rechecking == 0)
		cd_job_end(j, CD_JOB_DONE);
	else
		flush_soon(js);
	cd_jobs_pump_soon(js);
}

/* The job's engine options, made again after a reload. */
static bool job_options(cd_jobent *j)
{
	cd_jobs *js = j->js;
	char msg[160];

	if (j->opts_cfg == js->d->cfg)
		return true;
	j->has_opts = false;
	if (j->options &&
	    !js->opts_fn(js->opts_arg, j->options, &j->opts, &j->has_opts, msg, sizeof(msg))) {
		snprintf(j->error, sizeof(j->error), "its options no longer apply: %s", msg);
		return false;
	}
	if (!j->has_opts)
		cd_config_options(js->d->cfg, &j->opts);
	/* a greylisted address is answered once re-checked (greylist_recheck),
	 * and the job ends when its re-checks have */
	if (j->opts.greylist_recheck[0])
		j->opts.flags |= CALLOUT_F_RECHECK_WAIT;
	j->has_opts = true;
	j->opts_cfg = js->d->cfg;
	return true;
}

/* The next address of j, or NULL (exhausted, or the store failed). */
static cd_jinput *next_input(cd_jobent *j)
{
	cd_jobs *js = j->js;
	int rc;

	if (j->pos < j->nbuf)
		return &j->buf[j->pos++];
	if (j->exhausted)
		return NULL;
	if (!j->buf && !(j->buf = malloc(PREFETCH * sizeof(*j->buf)))) {
		snprintf(j->error, sizeof(j->error), "out of memory");
		return NULL;
	}
	rc = cd_jstore_inputs(js->store, j->id, j->next, j->buf, PREFETCH, &j->nbuf, &j->next);
	j->pos = 0;
	if (rc && js->shared) {
		cd_job_demote(j, "its addresses cannot be read now");
		return NULL;
	}
	if (rc) {
		snprintf(j->error, sizeof(j->error), "cannot read its addresses: %s", strerror(rc));
		return NULL;
	}
	if (j->nbuf == 0) {
		j->exhausted = true;
		free(j->buf);
		j->buf = NULL;
		return NULL;
	}
	return &j->buf[j->pos++];
}

/* Room for one more job verification: the job limit, and the mail
 * transactions' share of max_inflight. */
static bool room(const cd_jobs *js)
{
	const cd_daemon *d = js->d;

	return !js->stopping && !d->stopping && js->inflight < d->cfg->http_job_inflight &&
	       d->inflight < d->cfg->max_inflight / 2;
}

#define BLOCKED_RETRY_MS 100 /* the front ends' share full: look again this much later */

/* Out of room: with none of our own in flight to wake us when it ends,
 * look again soon (the mail transactions' load is what blocks). */
static void blocked(cd_jobs *js)
{
	struct timeval tv = {0, BLOCKED_RETRY_MS * 1000};

	if (!js->stopping && !js->d->stopping && js->inflight < js->d->cfg->http_job_inflight &&
	    !event_pending(js->pump_ev, EV_TIMEOUT, NULL))
		event_add(js->pump_ev, &tv);
}

static void pump(cd_jobs *js)
{
	cd_jobent *j, *tmp;

	TAILQ_FOREACH_SAFE(j, &js->jobs, link, tmp)
	{
		if (j->deleting || j->foreign || !cd_job_unfinished(j))
			continue;
		/* jobs run oldest first: a later one waits for room, queued */
		if (!room(js)) {
			blocked(js);
			return;
		}
		if (j->state == CD_JOB_QUEUED) {
			j->state = CD_JOB_RUNNING;
			j->dirty = true;
			cd_jobs_gauges(js);
		}
		if (!job_options(j)) {
			cd_job_end(j, CD_JOB_FAILED);
			continue;
		}
		while (room(js)) {
			cd_jinput *in = next_input(j);
			jq *x;

			if (!in) {
				if (j->foreign)
					break;
				if (j->error[0])
					cd_job_end(j, CD_JOB_FAILED);
				else if (j->inflight == 0 && j->rechecking == 0)
					cd_job_end(j, CD_JOB_DONE);
				break;
			}
			if (!(x = malloc(sizeof(*x) + in->len + 1))) {
				j->pos--; /* asked for again by the next pump */
				return;
			}
			x->j = j;
			x->rechecking = false;
			x->idx = in->idx;
			x->line = in->line;
			x->len = in->len;
			memcpy(x->addr, in->addr, in->len);
			x->addr[in->len] = '\0';
			if (callout_verify(js->d->ctx, x->addr, j->has_opts ? &j->opts : NULL,
			                   on_result, x, &x->q) != CALLOUT_OK) {
				/* the engine refuses now: try again later */
				free(x);
				j->pos--;
				blocked(js);
				return;
			}
			LIST_INSERT_HEAD(&j->qs, x, link);
			j->inflight++;
			js->inflight++;
		}
	}
}

void cd_jobs_on_pump(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pump(arg);
}

/* ---- expiry and purging ------------------------------------------------------- */

void cd_job_halt(cd_jobent *j)
{
	cd_job_drop_queries(j);
	if (j->hook) {
		cd_webhook_cancel(j->hook);
		j->hook = NULL;
	}
}

void cd_job_free(cd_jobent *j)
{
	cd_job_halt(j);
	json_decref(j->options);
	free(j->webhook);
	free(j);
}

/* One batch of a deleted job's data; the next one soon, so that a large
 * job is gone in seconds without holding the loop for long. */
void cd_jobs_on_purge(evutil_socket_t fd, short what, void *arg)
{
	cd_jobs *js = arg;
	cd_jobent *j;
	cd_jtxn *t = NULL;
	bool gone = false;
	int rc;
	struct timeval soon = {0, PURGE_MS * 1000};
	(void)fd;
	(void)what;

	TAILQ_FOREACH(j, &js->jobs, link)
	if (j->deleting && !j->foreign)
		break;
	if (!j)
		return;
	if ((rc = cd_jstore_begin(js->store, &t)) == 0 &&
	    (rc = cd_jstore_purge(t, j->id, PURGE_BATCH, &gone)) == 0) {
		rc = cd_jstore_commit(t);
	} else {
		cd_jstore_abort(t);
	}
	if (rc) {
		/* tried again at the next tick */
		cd_log(CD_LOG_ERR, "job %s: cannot delete: %s", j->id, strerror(rc));
		return;
	}
	if (gone) {
		cd_log(CD_LOG_INFO, "job %s: deleted", j->id);
		TAILQ_REMOVE(&js->jobs, j, link);
		cd_job_free(j);
	}
	evtimer_add(js->purge_ev, &soon);
}

void cd_jobs_purge_soon(cd_jobs *js)
{
	if (!event_pending(js->purge_ev, EV_TIMEOUT, NULL))
		event_active(js->purge_ev, 0, 0);
}

/* ---- loading ------------------------------------------------------------------ */

void cd_job_log_resumed(const cd_jobent *j)
{
	cd_log(CD_LOG_INFO, "job %s: resumed at %llu of %llu addresses", j->id,
	       (unsigned long long)j->done, (unsigned long long)j->total);
}

/* A job found in the store.  A shared store's is another node's until
 * this node takes its lease (cd_job_take). */
int cd_jobs_load_one(void *arg, const char *id, const char *text, size_t len)
{
	cd_jobs *js = arg;
	cd_jobent *j = calloc(1, sizeof(*j));

	if (!j || !cd_job_apply(j, text, len)) {
		cd_log(CD_LOG_ERR, "jobs: job %s: its record does not parse; left alone", id);
		if (j)
			cd_job_free(j);
		return 0;
	}
	j->js = js;
	LIST_INIT(&j->qs);
	memcpy(j->id, id, sizeof(j->id));
	if (js->shared) {
		j->foreign = j->seen = true;
		TAILQ_INSERT_TAIL(&js->jobs, j, link);
		return 0;
	}
	TAILQ_INSERT_TAIL(&js->jobs, j, link);
	if (!j->deleting && cd_job_unfinished(j))
		cd_job_log_resumed(j);
	/* ended before its webhook was delivered: deliver it now */
	if (!j->deleting && j->webhook && j->webhook_state == WH_PENDING &&
	    (j->state == CD_JOB_DONE || j->state == CD_JOB_CANCELLED))
		cd_job_send_webhook(j);
	return 0;
}

/* This node stops running j and holds its record as the store has it:
 * a shared store's job whose lease is lost (or uncertain) is taken up
 * again, by this node or another, from what the store holds. */
void cd_job_demote(cd_jobent *j, const char *why)
{
	cd_jobs *js = j->js;
	presult *p, *tmp;

	if (j->foreign)
		return;
	/* its webhook, if any, is delivered by the next holder: the record
	 * still says pending */
	cd_job_halt(j);
	/* its results not written yet are the next holder's to find */
	for (p = STAILQ_FIRST(&js->results); p; p = tmp) {
		tmp = STAILQ_NEXT(p, link);
		if (strcmp(p->id, j->id) == 0) {
			STAILQ_REMOVE(&js->results, p, presult, link);
			js->nresults--;
			free(p);
		}
	}
	j->foreign = true;
	j->dirty = false;
	if (why)
		cd_log(CD_LOG_WARNING, "job %s: left to the fleet: %s", j->id, why);
}

/* A shared store's job that needs this node no more: its lease given
 * up, its record the store's. */
void cd_job_release(cd_jobent *j)
{
	if (!j->js->shared || j->foreign)
		return;
	cd_jstore_release(j->js->store, j->id);
	j->foreign = true;
}
