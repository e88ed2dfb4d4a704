/*
 * The front ends calloutd serves, as the main program sees them: each
 * binds its sockets when created (before privileges are dropped), serves
 * on the daemon's loop, stops accepting on shutdown and is freed last.
 */
#ifndef CD_FRONTENDS_H
#define CD_FRONTENDS_H

#include <stddef.h>

#include "daemon.h"

/* A front end's connection cap: its configured one, or its descriptor
 * budget when that is smaller (budget 0: none). */
static inline unsigned cd_fe_cap(unsigned configured, unsigned budget)
{
	return budget && budget < configured ? budget : configured;
}

/* Postfix policy delegation (SMTPD_POLICY_README) on cfg->policy_listen. */
typedef struct cd_policy cd_policy;
cd_policy *cd_policy_new(cd_daemon *d, char *err, size_t errlen);
void cd_policy_close(cd_policy *p);             /* stop accepting; keep serving open connections */
unsigned cd_policy_pending(const cd_policy *p); /* requests not yet answered */
void cd_policy_free(cd_policy *p);

/* The HTTP JSON API, /healthz and /metrics on cfg->http_listen. */
typedef struct cd_http cd_http;
cd_http *cd_http_new(cd_daemon *d, char *err, size_t errlen);
void cd_http_close(cd_http *h);
unsigned cd_http_pending(const cd_http *h);
/* Bulk jobs: open their store and resume them, once the engine runs and
 * privileges are dropped.  -1 with err: /v1/jobs answers 503. */
int cd_http_jobs_start(cd_http *h, char *err, size_t errlen);
void cd_http_free(cd_http *h);

/* The milter (libmilter) on cfg->milter_listen: its socket is opened by
 * cd_milter_new; cd_milter_start runs libmilter's threads. */
typedef struct cd_milter cd_milter;
cd_milter *cd_milter_new(cd_daemon *d, char *err, size_t errlen);
int cd_milter_start(cd_milter *m, char *err, size_t errlen);
void cd_milter_close(cd_milter *m); /* smfi_stop: no new connections */
unsigned cd_milter_pending(const cd_milter *m);
void cd_milter_free(cd_milter *m); /* joins libmilter's thread */

#endif
