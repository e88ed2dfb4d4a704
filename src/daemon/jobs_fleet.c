/*
 * A shared store's jobs (jobs_int.h): every node sees the fleet's jobs,
 * each runs those it holds the lease of (jobs_store.h), and takes up the
 * jobs that no node holds: those of a node that stopped or died.  What
 * is uncertain (a lease lost, the store away) makes a node leave the job
 * (demote): it is taken up again from what the store holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"

cd_jobent *cd_jobs_lookup(cd_jobs *js, const char *id)
{
	cd_jobent *j;

	TAILQ_FOREACH(j, &js->jobs, link)
	if (strcmp(j->id, id) == 0)
		return j;
	return NULL;
}

int cd_job_reread(void *arg, const char *id, const char *text, size_t len)
{
	(void)id;
	return cd_job_apply(arg, text, len) ? 0 : EINVAL;
}

/* Whether a job of no node's lease needs one: to run, to deliver its
 * webhook, or to be purged. */
static bool wants_lease(const cd_jobent *j)
{
	return j->deleting || cd_job_unfinished(j) ||
	       (j->webhook && j->webhook_state == WH_PENDING);
}

/* Take j's lease, if no node holds it, and go on from what the store
 * holds.  0, EBUSY (another node's), EIO. */
int cd_job_take(cd_jobent *j)
{
	cd_jobs *js = j->js;
	int rc;

	if (!j->foreign)
		return 0;
	if ((rc = cd_jstore_claim(js->store, j->id)))
		return rc;
	if ((rc = cd_jstore_get_meta(js->store, j->id, cd_job_reread, j))) {
		cd_jstore_release(js->store, j->id);
		return rc == ENOENT ? EBUSY : rc;
	}
	j->foreign = false;
	j->next = 0;
	j->exhausted = false;
	j->opts_cfg = NULL;
	return 0;
}

/* The tick's look at a job no node runs: this node takes it up. */
static void take_up(cd_jobent *j)
{
	cd_jobs *js = j->js;

	if (!wants_lease(j) || cd_job_take(j) != 0)
		return;
	if (j->deleting) {
		cd_jobs_purge_soon(js);
	} else if (cd_job_unfinished(j)) {
		cd_job_log_resumed(j);
		cd_jobs_pump_soon(js);
	} else if (j->webhook && j->webhook_state == WH_PENDING) {
		cd_job_send_webhook(j);
	} else {
		cd_job_release(j);
	}
}

static int sync_one(void *arg, const char *id, const char *text, size_t len)
{
	cd_jobs *js = arg;
	cd_jobent *j = cd_jobs_lookup(js, id);

	if (!j)
		return cd_jobs_load_one(js, id, text, len);
	j->seen = true;
	if (j->foreign)
		cd_job_apply(j, text, len);
	return 0;
}

/* The store's records into the jobs this node does not run: new ones
 * added, gone ones (deleted by another node) dropped. */
int cd_jobs_refresh(cd_jobs *js)
{
	cd_jobent *j, *tmp;
	int rc;

	TAILQ_FOREACH(j, &js->jobs, link)
	j->seen = false;
	if ((rc = cd_jstore_each_meta(js->store, sync_one, js)))
		return rc;
	TAILQ_FOREACH_SAFE(j, &js->jobs, link, tmp)
	{
		if (j->foreign && !j->seen) {
			TAILQ_REMOVE(&js->jobs, j, link);
			cd_job_free(j);
		}
	}
	cd_jobs_gauges(js);
	return 0;
}

/* Each second: this node's leases kept (a lost one leaves its job, a
 * cancel asked by another node is done), the others' jobs looked at,
 * those of no node taken up. */
void cd_jobs_fleet_tick(cd_jobs *js)
{
	cd_jobent *j, *tmp;

	TAILQ_FOREACH_SAFE(j, &js->jobs, link, tmp)
	{
		int rc;

		if (j->foreign || j->deleting)
			continue;
		rc = cd_jstore_renew(js->store, j->id);
		if (rc == EBUSY)
			cd_job_demote(
			    j, "its lease was lost: another node took the job up, or deleted it");
		else if (rc == ECANCELED && cd_job_unfinished(j))
			cd_job_end(j, CD_JOB_CANCELLED);
	}
	if (cd_jobs_refresh(js) != 0)
		return;
	TAILQ_FOREACH_SAFE(j, &js->jobs, link, tmp)
	if (j->foreign)
		take_up(j);
}
