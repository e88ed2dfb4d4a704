/*
 * Bulk jobs (jobs.h): the module and its life cycle.
 *
 *   queued -> running -> done | cancelled | failed      (deleted: gone)
 *
 * Every job's record is in memory ([http] max_jobs of them at most); the
 * addresses and results are in the store.  The runner is jobs_run.c's,
 * a job's record jobs_record.c's; what a shared store adds (leases, the
 * other nodes' jobs) is jobs_fleet.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "jobs_int.h"

#define TICK_S 1 /* leases renewed, other nodes' jobs looked at, expiry */

/* ---- the tick ------------------------------------------------------------------ */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	cd_jobs *js = arg;
	cd_jobent *j, *tmp;
	long long now = cd_jobs_now(), ttl = js->d->cfg->http_job_ttl_ms / 1000;
	(void)fd;
	(void)what;

	if (js->shared && !js->stopping)
		cd_jobs_fleet_tick(js);
	TAILQ_FOREACH_SAFE(j, &js->jobs, link, tmp)
	{
		if (!j->deleting && j->finished && j->finished + ttl <= now && !j->hook) {
			cd_log(CD_LOG_INFO, "job %s: expired", j->id);
			(void)cd_jobs_delete(js, j);
		}
	}
	cd_jobs_purge_soon(js);
}

/* ---- the module ---------------------------------------------------------------- */

cd_jobs *cd_jobs_new(cd_daemon *d, cd_jobs_opts_fn fn, void *arg, char *err, size_t errlen)
{
	cd_jobs *js = calloc(1, sizeof(*js));
	char where[4200];
	struct timeval tick = {TICK_S, 0};

	if (!js) {
		snprintf(err, errlen, "jobs: out of memory");
		return NULL;
	}
	js->d = d;
	js->opts_fn = fn;
	js->opts_arg = arg;
	TAILQ_INIT(&js->jobs);
	STAILQ_INIT(&js->results);
	if (!(js->store = cd_jstore_open_for(d->cfg->cache, d->cfg->state_dir, where, sizeof(where),
	                                     err, errlen))) {
		free(js);
		return NULL;
	}
	js->shared = cd_jstore_shared(js->store);
	cd_log(CD_LOG_INFO, "jobs: stored in %s%s", where,
	       js->shared ? ", shared with the nodes that use it" : "");
	js->flush_ev = evtimer_new(d->base, cd_jobs_on_flush, js);
	js->pump_ev = event_new(d->base, -1, 0, cd_jobs_on_pump, js);
	js->tick_ev = event_new(d->base, -1, EV_PERSIST, on_tick, js);
	js->purge_ev = evtimer_new(d->base, cd_jobs_on_purge, js);
	if (!js->flush_ev || !js->pump_ev || !js->tick_ev || !js->purge_ev ||
	    event_add(js->tick_ev, &tick) != 0) {
		snprintf(err, errlen, "jobs: out of memory");
		cd_jobs_free(js);
		return NULL;
	}
	if (js->shared)
		cd_jobs_fleet_tick(js); /* the store away: the ticks try again */
	else
		cd_jstore_each_meta(js->store, cd_jobs_load_one, js);
	cd_jobs_gauges(js);
	cd_jobs_pump_soon(js);
	cd_jobs_purge_soon(js);
	return js;
}

void cd_jobs_stop(cd_jobs *js)
{
	cd_jobent *j;

	if (!js || js->stopping)
		return;
	js->stopping = true;
	/* what is in flight is asked again at the next start, or by
	 * another node at once: the leases are given up */
	TAILQ_FOREACH(j, &js->jobs, link)
	cd_job_drop_queries(j);
	if (cd_jobs_flush(js) == 0) {
		TAILQ_FOREACH(j, &js->jobs, link)
		if (!j->hook)
			cd_job_release(j);
	}
}

void cd_jobs_free(cd_jobs *js)
{
	cd_jobent *j;

	if (!js)
		return;
	cd_jobs_stop(js);
	while ((j = TAILQ_FIRST(&js->jobs))) {
		TAILQ_REMOVE(&js->jobs, j, link);
		cd_job_free(j);
	}
	if (js->flush_ev)
		event_free(js->flush_ev);
	if (js->pump_ev)
		event_free(js->pump_ev);
	if (js->tick_ev)
		event_free(js->tick_ev);
	if (js->purge_ev)
		event_free(js->purge_ev);
	cd_jstore_close(js->store);
	free(js);
}

/* ---- a new job -------------------------------------------------------------------- */

struct cd_jobnew {
	cd_jobs *js;
	cd_jtxn *txn;
	char id[CD_JOB_ID_LEN + 1];
	size_t n;
};

cd_jobnew *cd_jobs_create(cd_jobs *js, int *status, char *msg, size_t len)
{
	unsigned n = 0;
	unsigned char rnd[CD_JOB_ID_LEN / 2];
	cd_jobnew *nj;
	cd_jobent *j;
	int rc;

	TAILQ_FOREACH(j, &js->jobs, link)
	n += !j->deleting;
	if (n >= js->d->cfg->http_max_jobs) {
		*status = 503;
		snprintf(msg, len,
		         "%u jobs are stored, the most there may be ([http] max_jobs); "
		         "delete finished ones",
		         n);
		return NULL;
	}
	*status = 500;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(msg, len, "no random bytes for a job id: %s", strerror(errno));
		return NULL;
	}
	if (!(nj = calloc(1, sizeof(*nj)))) {
		snprintf(msg, len, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(nj->id + 2 * i, 3, "%02x", rnd[i]);
	nj->js = js;
	if ((rc = cd_jstore_begin(js->store, &nj->txn))) {
		snprintf(msg, len, "cannot store the job: %s", strerror(rc));
		free(nj);
		return NULL;
	}
	return nj;
}

int cd_jobnew_add(cd_jobnew *n, uint32_t line, const char *addr, size_t len)
{
	int rc;

	if (n->n >= n->js->d->cfg->http_max_job_addresses)
		return EFBIG;
	if (len > CD_JOB_ADDR_MAX)
		return ENAMETOOLONG;
	if ((rc = cd_jstore_put_input(n->txn, n->id, n->n, line, addr, len)))
		return rc;
	n->n++;
	return 0;
}

size_t cd_jobnew_count(const cd_jobnew *n)
{
	return n->n;
}

void cd_jobnew_abort(cd_jobnew *n)
{
	if (!n)
		return;
	cd_jstore_abort(n->txn);
	free(n);
}

cd_jobent *cd_jobnew_commit(cd_jobnew *n, json_t *options, const char *webhook,
                            const char *webhook_ip, int *status, char *msg, size_t len)
{
	cd_jobs *js = n->js;
	cd_jobent *j = calloc(1, sizeof(*j));
	char *s = NULL;
	size_t slen;
	int rc = ENOMEM;

	if (!j || (webhook && !(j->webhook = strdup(webhook))))
		goto fail;
	j->js = js;
	LIST_INIT(&j->qs);
	memcpy(j->id, n->id, sizeof(j->id));
	j->state = CD_JOB_QUEUED;
	j->created = cd_jobs_now();
	j->total = n->n;
	j->options = options;
	options = NULL;
	if (webhook) {
		snprintf(j->webhook_ip, sizeof(j->webhook_ip), "%s", webhook_ip);
		j->webhook_state = WH_PENDING;
	}
	if (!(s = cd_job_record(j, &slen)) || (rc = cd_jstore_put_meta(n->txn, j->id, s, slen)))
		goto fail;
	free(s);
	s = NULL;
	/* a shared store's job is this node's to run from the start */
	if (js->shared && (rc = cd_jstore_claim(js->store, j->id)))
		goto fail;
	rc = cd_jstore_commit(n->txn);
	n->txn = NULL;
	if (rc)
		goto fail;
	free(n);
	TAILQ_INSERT_TAIL(&js->jobs, j, link);
	cd_log(CD_LOG_INFO, "job %s: queued: %llu address%s%s", j->id, (unsigned long long)j->total,
	       j->total == 1 ? "" : "es", j->webhook ? ", with a webhook" : "");
	cd_jobs_gauges(js);
	cd_jobs_pump_soon(js);
	return j;
fail:
	*status = cd_jobs_status(rc);
	snprintf(msg, len, "cannot store the job: %s",
	         rc == EBUSY ? "its id is another's" : strerror(rc));
	free(s);
	json_decref(options);
	if (j) {
		json_decref(j->options);
		free(j->webhook);
		free(j);
	}
	cd_jobnew_abort(n);
	return NULL;
}

/* ---- jobs -------------------------------------------------------------------------- */

int cd_jobs_status(int rc)
{
	return rc == EIO || rc == EBUSY ? 503 : 500;
}

static int exists(void *arg, const char *id, const char *text, size_t len)
{
	(void)arg;
	(void)id;
	(void)text;
	(void)len;
	return 0;
}

cd_jobent *cd_jobs_find(cd_jobs *js, const char *id, int *err)
{
	cd_jobent *j = cd_jobs_lookup(js, id);
	int rc = 0;

	*err = 0;
	if (js->shared && !(j && j->deleting)) {
		/* as the store has it now: another node's record, a job new
		 * to this node, or one of ours another node may have deleted */
		if (!j) {
			rc = cd_jstore_get_meta(js->store, id, cd_jobs_load_one, js);
			j = cd_jobs_lookup(js, id);
		} else {
			rc = cd_jstore_get_meta(js->store, id, j->foreign ? cd_job_reread : exists,
			                        j);
		}
		if (rc == ENOENT && j) {
			if (!j->foreign)
				cd_log(CD_LOG_INFO, "job %s: deleted by another node", j->id);
			cd_job_demote(j, NULL);
			TAILQ_REMOVE(&js->jobs, j, link);
			cd_job_free(j);
			cd_jobs_gauges(js);
			j = NULL;
		} else if (rc && rc != ENOENT) {
			*err = rc;
			return NULL;
		}
	}
	return j && !j->deleting ? j : NULL;
}

const char *cd_job_id(const cd_jobent *j)
{
	return j->id;
}

cd_job_state cd_job_state_of(const cd_jobent *j)
{
	return j->state;
}

int cd_jobs_cancel(cd_jobs *js, cd_jobent *j)
{
	int rc;

	if (!cd_job_unfinished(j))
		return 0;
	if (j->foreign) {
		rc = cd_job_take(j);
		if (rc == EBUSY)
			return (rc = cd_jstore_request_stop(js->store, j->id)) ? rc : EINPROGRESS;
		if (rc)
			return rc;
		if (!cd_job_unfinished(j)) {
			/* it ended meanwhile */
			cd_job_release(j);
			return 0;
		}
	}
	cd_job_end(j, CD_JOB_CANCELLED);
	return 0;
}

/* Another node's job that ended (that node may hold its lease to retry
 * the webhook): its data go at once, for every node; that node finds
 * its lease gone at its next tick and sends nothing more. */
static int delete_foreign(cd_jobs *js, cd_jobent *j)
{
	cd_jtxn *t = NULL;
	bool gone;
	int rc;

	if ((rc = cd_jstore_begin(js->store, &t)) ||
	    (rc = cd_jstore_purge(t, j->id, SIZE_MAX, &gone))) {
		cd_jstore_abort(t);
		return rc;
	}
	if ((rc = cd_jstore_commit(t)))
		return rc;
	cd_log(CD_LOG_INFO, "job %s: deleted", j->id);
	TAILQ_REMOVE(&js->jobs, j, link);
	cd_job_free(j);
	cd_jobs_gauges(js);
	return 0;
}

int cd_jobs_delete(cd_jobs *js, cd_jobent *j)
{
	int rc;

	if (j->foreign)
		return delete_foreign(js, j);
	cd_job_halt(j);
	j->deleting = true;
	j->dirty = true;
	rc = cd_jobs_flush(js);
	cd_jobs_gauges(js);
	cd_jobs_purge_soon(js);
	return rc;
}

int cd_jobs_results(cd_jobs *js, const cd_jobent *j, uint64_t from, size_t limit,
                    int (*fn)(void *arg, uint64_t idx, const char *json, size_t len), void *arg,
                    uint64_t *next, bool *more)
{
	/* what waits to be written is there too */
	if (js->nresults)
		(void)cd_jobs_flush(js);
	return cd_jstore_results(js->store, j->id, from, limit, fn, arg, next, more);
}

json_t *cd_jobs_list(cd_jobs *js, int *err)
{
	json_t *a;
	cd_jobent *j;

	/* the fleet's, as the store has them now */
	if (js->shared && (*err = cd_jobs_refresh(js)))
		return NULL;
	*err = 0;
	a = json_array();

	TAILQ_FOREACH(j, &js->jobs, link)
	if (a && !j->deleting && json_array_append_new(a, cd_job_json(j)) != 0) {
		json_decref(a);
		a = NULL;
	}
	return a ? json_pack("{s:o}", "jobs", a) : NULL;
}
