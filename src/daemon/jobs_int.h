/*
 * Inside the bulk jobs (jobs.h): the structures and the calls between
 * jobs.c (the module), jobs_fleet.c (a shared store's jobs: leases, the
 * other nodes'), jobs_run.c (the runner) and jobs_record.c (a job's
 * stored record).  Arrows run in that order.
 */
#ifndef CD_JOBS_INT_H
#define CD_JOBS_INT_H

#include <sys/queue.h>

#include <event2/event.h>

#include "jobs.h"
#include "jobs_webhook.h"

/* glibc's <sys/queue.h> lacks the _SAFE walk */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1);             \
	     (var) = (tvar))
#endif

extern const char *const cd_job_webhook_names[4];
enum { WH_NONE, WH_PENDING, WH_DELIVERED, WH_FAILED };

struct jq; /* a verification in flight (jobs.c) */

/* A result not written yet. */
typedef struct presult {
	STAILQ_ENTRY(presult) link;
	char id[CD_JOB_ID_LEN + 1];
	uint64_t idx;
	size_t len;
	char json[];
} presult;

struct cd_jobent {
	TAILQ_ENTRY(cd_jobent) link;
	cd_jobs *js;
	char id[CD_JOB_ID_LEN + 1];
	cd_job_state state;
	long long created, finished; /* Unix seconds; finished 0 while it runs */
	uint64_t total, done, counts[4];
	char error[200];
	json_t *options; /* the request's options, or NULL */
	char *webhook;
	char webhook_ip[64];
	int webhook_state;
	cd_webhook *hook;
	bool deleting; /* gone for the API; its data being purged */
	bool dirty;    /* the record differs from the stored one */
	bool foreign;  /* a shared store's job this node holds no lease of: its
	                  record mirrors the store's, another node may run it */
	bool seen;     /* found in the store by the last look */
	/* the runner's */
	callout_options opts;
	const cd_config *opts_cfg; /* opts were made for this configuration */
	bool has_opts;
	uint64_t next; /* the store's cursor of addresses */
	cd_jinput *buf;
	size_t nbuf, pos;
	bool exhausted;
	unsigned inflight;
	unsigned rechecking; /* greylisted addresses waiting for their re-check */
	LIST_HEAD(, jq) qs;
};

struct cd_jobs {
	cd_daemon *d;
	cd_jstore *store;
	cd_jobs_opts_fn opts_fn;
	void *opts_arg;
	TAILQ_HEAD(, cd_jobent) jobs;
	unsigned inflight;
	STAILQ_HEAD(, presult) results;
	unsigned nresults;
	struct event *flush_ev, *tick_ev, *pump_ev, *purge_ev;
	bool stopping;
	bool shared; /* other nodes share the store (jobs_store.h) */
};

/* jobs_record.c */
/* The stored record: the API's object and what the runner needs. */
char *cd_job_record(const cd_jobent *j, size_t *len);
/* The record's fields into j; false when it does not parse. */
bool cd_job_apply(cd_jobent *j, const char *text, size_t len);
/* Queued or running. */
bool cd_job_unfinished(const cd_jobent *j);

/* jobs_fleet.c */
cd_jobent *cd_jobs_lookup(cd_jobs *js, const char *id);
int cd_job_reread(void *arg, const char *id, const char *text, size_t len);
int cd_job_take(cd_jobent *j);
int cd_jobs_refresh(cd_jobs *js);
void cd_jobs_fleet_tick(cd_jobs *js);

/* jobs_run.c */
long long cd_jobs_now(void);
void cd_jobs_gauges(cd_jobs *js);
/* Write the waiting results and the records that changed, together. */
int cd_jobs_flush(cd_jobs *js);
void cd_jobs_on_flush(evutil_socket_t fd, short what, void *arg);
void cd_jobs_on_pump(evutil_socket_t fd, short what, void *arg);
void cd_jobs_on_purge(evutil_socket_t fd, short what, void *arg);
void cd_jobs_pump_soon(cd_jobs *js);
void cd_jobs_purge_soon(cd_jobs *js);
int cd_jobs_load_one(void *arg, const char *id, const char *text, size_t len);
void cd_job_drop_queries(cd_jobent *j);
/* What j has going: its verifications, its webhook. */
void cd_job_halt(cd_jobent *j);
void cd_job_send_webhook(cd_jobent *j);
void cd_job_end(cd_jobent *j, cd_job_state st);
void cd_job_free(cd_jobent *j);
void cd_job_log_resumed(const cd_jobent *j);
/* This node leaves j to the fleet (lease lost or uncertain). */
void cd_job_demote(cd_jobent *j, const char *why);
/* This node is done with j: its lease given up. */
void cd_job_release(cd_jobent *j);

#endif
