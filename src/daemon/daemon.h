/*
 * calloutd's core, shared by its front ends (policy.c, milter.c, http.c):
 * one event loop, one libcallout context, the configuration, metrics and
 * the decision for a mail transaction.
 *
 *   front end -> cd_check (decide.c: skip? verify what? -> libcallout ->
 *   verdict -> action) -> answer, logged once, counted
 *
 * Everything here runs on the loop's thread; the milter's threads reach
 * it only through cd_daemon_call().
 */
#ifndef CD_DAEMON_H
#define CD_DAEMON_H

#include <stdbool.h>

#include <callout/callout.h>

#include "config.h"

struct event_base;

/* Octets of an address a front end keeps for a check: more than
 * libcallout parses (1000), so an address cut here is still too long to
 * ask, never a shorter, different address (or a syntax error). */
#define CD_ADDRESS_MAX 1024

typedef enum cd_frontend { CD_FE_POLICY = 0, CD_FE_MILTER, CD_FE_HTTP, CD_FE_COUNT } cd_frontend;

/* A bulk job's state (jobs.c). */
typedef enum cd_job_state {
	CD_JOB_QUEUED = 0,
	CD_JOB_RUNNING,
	CD_JOB_DONE,
	CD_JOB_CANCELLED,
	CD_JOB_FAILED,
	CD_JOB_NSTATES
} cd_job_state;
static inline const char *cd_job_state_name(cd_job_state s)
{
	static const char *const names[CD_JOB_NSTATES] = {"queued", "running", "done", "cancelled",
	                                                  "failed"};
	return (unsigned)s < CD_JOB_NSTATES ? names[s] : "?";
}

typedef struct cd_daemon cd_daemon;
typedef struct cd_metrics cd_metrics;

struct cd_daemon {
	struct event_base *base;
	callout_ctx *ctx; /* the engine, on base */
	cd_config *cfg;   /* current; replaced on reload (hold no pointer
	                     into it across the loop) */
	cd_metrics *metrics;
	bool stopping;            /* SIGTERM: finish, accept nothing new */
	unsigned inflight;        /* cd_check jobs and HTTP verifications */
	struct cd_bridge *bridge; /* cd_daemon_call's queue (bridge.c) */
	/* Descriptors a front end may hold for its clients, set at start from
	 * RLIMIT_NOFILE (calloutd.c); 0: no budget, the config's caps only. */
	unsigned policy_fds, http_fds;
};

/* ---- a mail transaction's question ---------------------------------- */

/* What a front end knows at the time it asks.  Strings are borrowed for
 * the call only. */
typedef struct cd_request {
	cd_frontend fe;
	const char *client_address; /* numeric IP, or "" */
	const char *client_name;    /* or "" */
	const char *helo;           /* or "" */
	const char *sender;         /* "" for the null sender */
	const char *recipient;      /* "" when not known yet (milter at MAIL) */
	const char *sasl_username;  /* non-empty: an authenticated client */
	const char *queue_id;       /* for the log, or "" */
	bool recipient_only;        /* the sender is checked at another stage */
} cd_request;

/* The answer: what the front end tells its MTA. */
typedef struct cd_answer {
	cd_action action;  /* PASS, REJECT or DEFER, after mode */
	int code;          /* 5xx / 4xx for REJECT / DEFER, else 0 */
	char enhanced[16]; /* "5.1.7", or "" */
	char text[512];    /* reply text, expanded, without the codes */
	char header[512];  /* tag mode: value for "X-Callout: ...", else "" */
	/* what it was based on, for logs and tests */
	bool verified;           /* false: skipped */
	const char *skip_reason; /* when skipped: "null sender", "authenticated", ... */
	const char *checked;     /* "sender" or "recipient" */
	callout_verdict verdict;
	callout_reason reason;
	int smtp_code; /* the remote server's reply code, or 0 */
	char why[160]; /* without one: what the engine said (log only) */
	bool cached;
	const char *fact;              /* the domain fact it came from (a static name), or NULL */
	callout_postmaster postmaster; /* whether the domain accepts postmaster */
	unsigned ms;
} cd_answer;

typedef void (*cd_answer_cb)(void *arg, const cd_answer *a);
typedef struct cd_job cd_job;

/*
 * Decide and, when needed, verify.  cb is called exactly once, from the
 * loop (never inside this call), unless the job is cancelled.  Within
 * reply_within: if the verification is not done by then, the answer is the
 * in-progress defer (or PASS with defer_ok) and the probe finishes into
 * the cache.  NULL only when out of memory.
 */
cd_job *cd_check(cd_daemon *d, const cd_request *req, cd_answer_cb cb, void *arg);

/* The front end's connection went away: no callback. */
void cd_job_cancel(cd_job *job);

/* ---- memory (trim.c) -------------------------------------------------- */

/* Call when a request in flight has ended (d->inflight was decremented)
 * or a front end's connection closed: once the daemon stays quiet, freed
 * memory goes back to the system. */
void cd_quiet_check(cd_daemon *d);

/* On SIGTERM: drop the pending tick, so the stopping loop has nothing to
 * wait for (after d->stopping is set, nothing arms it again). */
void cd_quiet_stop(void);

/* ---- for the milter's threads ---------------------------------------- */

/* Run fn(arg) on the loop's thread, soon.  Safe from any thread.  0, or
 * -1 when the bridge is closed or out of memory. */
int cd_daemon_call(cd_daemon *d, void (*fn)(void *arg), void *arg);

/* For the main program: set up the bridge on d->base (0, or -1 with
 * errno set); close it (calls queued later fail; those already queued
 * still run) and free it. */
int cd_bridge_init(cd_daemon *d);
void cd_bridge_free(cd_daemon *d);

/* ---- logging (log.c) -------------------------------------------------- */

typedef enum cd_log_level {
	CD_LOG_ERR = 0,
	CD_LOG_WARNING,
	CD_LOG_INFO,
	CD_LOG_DEBUG
} cd_log_level;

void cd_log_open(const cd_config *cfg);
void cd_log(cd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* libcallout's log callback. */
void cd_log_engine(void *arg, const char *msg);
/* callout_options.trace: the probes' steps, at debug level. */
void cd_log_trace(void *arg, const char *line);

/* ---- metrics (metrics.c) ---------------------------------------------- */

cd_metrics *cd_metrics_new(void);
void cd_metrics_free(cd_metrics *m);
/* One verification finished (from any front end, cached or not). */
void cd_metrics_result(cd_metrics *m, cd_frontend fe, const callout_result *res);
/* A decision was made (policy and milter): its action. */
void cd_metrics_action(cd_metrics *m, cd_frontend fe, cd_action a, bool verified);
/* An HTTP response went out with this status. */
void cd_metrics_http_response(cd_metrics *m, int status);
/* A doctor run (GET /v1/doctor) ended: its levels, for
 * calloutd_doctor_check. */
void cd_metrics_doctor(cd_metrics *m, const callout_doctor_report *rep);
/* Bulk jobs (jobs.c): the gauge of jobs by state, and a job's result. */
void cd_metrics_jobs(cd_metrics *m, const unsigned by_state[CD_JOB_NSTATES]);
void cd_metrics_job_result(cd_metrics *m, callout_verdict v);
/* The proxies /metrics and /healthz show at most. */
#define CD_PROXIES_SHOWN 256

/* Prometheus text exposition into a malloc'd string (NUL-terminated);
 * inflight is the current gauge; engine and health may be NULL; the
 * nproxies proxies of the engine's pools.  NULL when out of memory. */
char *cd_metrics_render(const cd_metrics *m, unsigned inflight, const callout_stats *engine,
                        const callout_health *health, const callout_proxy_health *proxies,
                        size_t nproxies);

const char *cd_frontend_name(cd_frontend fe);

#endif
