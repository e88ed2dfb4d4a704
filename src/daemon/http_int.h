/*
 * What http.c shares with the other parts of the HTTP front end
 * (http_jobs.c): its answers, the options a request may set, the daemon.
 */
#ifndef CD_HTTP_INT_H
#define CD_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "daemon.h"
#include "frontends.h"

struct evhttp_request;
typedef struct cd_jobs cd_jobs;

cd_daemon *cd_http_daemon(cd_http *h);
void cd_http_send_body(cd_http *h, struct evhttp_request *req, int code, const char *type,
                       const char *body, size_t len);
/* j is consumed; NULL answers 500. */
void cd_http_send_json(cd_http *h, struct evhttp_request *req, int code, json_t *j);
void cd_http_send_error(cd_http *h, struct evhttp_request *req, int code, const char *error,
                        const char *message);
void cd_http_send_405(cd_http *h, struct evhttp_request *req, const char *allow);
/* The options of a request's JSON object (its "address" and "addresses"
 * aside), as /v1/verify takes them; false with msg. */
bool cd_http_request_options(cd_http *h, json_t *root, callout_options *o, bool *has, char *msg,
                             size_t len);

/* /v1/jobs and below (http_jobs.c); js NULL: the store could not be opened. */
void cd_http_jobs(cd_http *h, cd_jobs *js, struct evhttp_request *req, const char *path,
                  const char *query);

#endif
