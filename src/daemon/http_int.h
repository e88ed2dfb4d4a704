/*
 * What http.c shares with the other parts of the HTTP front end
 * (http_jobs.c): its answers, the options a request may set, the daemon.
 */
#ifndef CD_HTTP_INT_H
#define CD_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <sys/queue.h>

#include "daemon.h"
#include "frontends.h"
#include "http_gate.h"
#include "listen.h"

struct evhttp_request;
typedef struct cd_jobs cd_jobs;

/* The front end (http.c). */
struct cd_http {
	cd_daemon *d;
	struct evhttp *http;
	cd_http_gate *gate; /* connection caps and request deadlines */
	struct evhttp_bound_socket *bound[CD_LISTEN_MAX];
	size_t nbound;
	struct evconnlistener *levs[CD_LISTEN_MAX]; /* bound[i]'s, for the pause */
	cd_accept_pause pause;                      /* after an accept error */
	bool closed;                                /* cd_http_close: no new connections */
	LIST_HEAD(, hreq) reqs;                     /* waiting for verifications */
	unsigned pending;
	cd_jobs *jobs; /* bulk jobs, once cd_http_jobs_start opened their store */
};

/* Answers (http_answer.c); with the daemon stopping, "Connection: close". */
void cd_http_send_body(cd_http *h, struct evhttp_request *req, int code, const char *type,
                       const char *body, size_t len);
/* j is consumed; NULL answers 500. */
void cd_http_send_json(cd_http *h, struct evhttp_request *req, int code, json_t *j);
void cd_http_send_error(cd_http *h, struct evhttp_request *req, int code, const char *error,
                        const char *message);
void cd_http_send_405(cd_http *h, struct evhttp_request *req, const char *allow);
/*
 * The options a request's JSON object sets (its "address", "addresses"
 * aside; http_options.c): the option table's rows marked CO_OPT_REQUEST
 * that [http] request_options opens (numbers never beyond calloutd's own
 * value), "transcript" if opened, and "proxy": a [proxy NAME] offered to
 * HTTP clients.  Any other member is refused by name, never ignored: false
 * with msg.  o starts from calloutd's options; its text values point into
 * root.
 */
bool cd_http_options(const cd_config *c, json_t *root, callout_options *o, bool *has,
                     bool *transcript, char *msg, size_t len);
/* The same for a job (arg: the cd_daemon), whose results do not keep a
 * transcript: asking for one is refused. */
bool cd_http_job_options(void *arg, json_t *root, callout_options *o, bool *has, char *msg,
                         size_t len);

/* /v1/jobs and below (http_jobs.c); js NULL: the store could not be opened. */
void cd_http_jobs(cd_http *h, cd_jobs *js, struct evhttp_request *req, const char *path,
                  const char *query);

#endif
