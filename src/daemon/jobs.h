/*
 * Bulk jobs: a list of addresses verified in the background, its results
 * kept per input line (POST /v1/jobs, http_jobs.c).  Jobs live in
 * STATE_DIR/jobs.lmdb, or in the verdict cache's Redis, shared by the
 * nodes that use it (jobs_store.h), and resume after a restart from the
 * first address without a stored result.  In a shared store each job
 * runs on the node that holds its lease; another takes it up when that
 * node stops or dies.  They run after the mail
 * transactions: at most [http] job_inflight verifications at once, and
 * none started while the policy service, the milter and /v1/verify hold
 * half of [daemon] max_inflight.
 */
#ifndef CD_JOBS_H
#define CD_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "daemon.h"
#include "jobs_store.h"

typedef struct cd_jobs cd_jobs;
typedef struct cd_jobent cd_jobent;
typedef struct cd_jobnew cd_jobnew;

/* The engine options of a job from its stored options object (the HTTP
 * request's, http.c's request_options); false with msg when they no
 * longer apply (a proxy gone after a reload). */
typedef bool (*cd_jobs_opts_fn)(void *arg, json_t *options, callout_options *o, bool *has,
                                char *msg, size_t len);

/* Open the store in d->cfg->state_dir, load the jobs, resume those not
 * finished.  NULL with the reason in err. */
cd_jobs *cd_jobs_new(cd_daemon *d, cd_jobs_opts_fn fn, void *arg, char *err, size_t errlen);
/* SIGTERM: cancel what runs (it resumes at the next start), write what
 * is done, start nothing more. */
void cd_jobs_stop(cd_jobs *js);
void cd_jobs_free(cd_jobs *js);

/* ---- a new job ------------------------------------------------------- */

/* NULL with an HTTP status and msg: 503 at [http] max_jobs, 500. */
cd_jobnew *cd_jobs_create(cd_jobs *js, int *status, char *msg, size_t len);
/* One address (any bytes, as given) from input line `line`: 0, EFBIG
 * past [http] max_job_addresses, ENAMETOOLONG over CD_JOB_ADDR_MAX
 * bytes, else a store error. */
int cd_jobnew_add(cd_jobnew *n, uint32_t line, const char *addr, size_t len);
size_t cd_jobnew_count(const cd_jobnew *n);
/* Store it and queue it (options and webhook may be NULL; options is
 * stolen); NULL with an HTTP status and msg (the store failed: 503 while
 * a shared store is away, else 500).  n is freed either way. */
cd_jobent *cd_jobnew_commit(cd_jobnew *n, json_t *options, const char *webhook,
                            const char *webhook_ip, int *status, char *msg, size_t len);
void cd_jobnew_abort(cd_jobnew *n);

/* ---- jobs ------------------------------------------------------------ */

/* The HTTP status of a store error: 503 while a shared store is away or
 * another node holds the job, else 500. */
int cd_jobs_status(int rc);
/* The job, or NULL: none (*err 0) or the store failed (*err).  A shared
 * store's job run by another node is read from the store. */
cd_jobent *cd_jobs_find(cd_jobs *js, const char *id, int *err);
/* {"jobs": [cd_job_json of each, oldest first]}: with a shared store,
 * the fleet's.  NULL: the store failed (*err) or out of memory (*err 0). */
json_t *cd_jobs_list(cd_jobs *js, int *err);
const char *cd_job_id(const cd_jobent *j);
cd_job_state cd_job_state_of(const cd_jobent *j);
/* {"id", "state", "created", "finished", "total", "done", "counts": {...},
 * ...}: what GET /v1/jobs/ID and the webhook send.  NULL: out of memory. */
json_t *cd_job_json(const cd_jobent *j);
/* Stop a queued or running job: cancelled, its results so far kept.
 * 0, EINPROGRESS (another node runs it: asked to cancel it, it does
 * within a second), or a store error. */
int cd_jobs_cancel(cd_jobs *js, cd_jobent *j);
/* Forget a job that is not running: gone at once for the API, its data
 * deleted in the background (another node's job: at once, and that node
 * stops its webhook's retries).  0, or a store error. */
int cd_jobs_delete(cd_jobs *js, cd_jobent *j);
/* Results of index from on (cd_jstore_results). */
int cd_jobs_results(cd_jobs *js, const cd_jobent *j, uint64_t from, size_t limit,
                    int (*fn)(void *arg, uint64_t idx, const char *json, size_t len), void *arg,
                    uint64_t *next, bool *more);

#endif
