/*
 * The HTTP front end's connections: a cap in total (within the descriptor
 * budget) and per client address, and a deadline for each request that
 * bytes do not extend.  evhttp (libevent 2.1) has neither.
 */
#ifndef CD_HTTP_GATE_H
#define CD_HTTP_GATE_H

#include <event2/http.h>

#include "daemon.h"
#include "listen.h"

typedef struct cd_http_gate cd_http_gate;
typedef struct cd_http_conn cd_http_conn;

/* Watch every connection http accepts from now on (it takes evhttp's
 * bufferevent callback); listeners are http's, stopped during a burst of
 * accepts.  Free it after evhttp_free(http). */
cd_http_gate *cd_http_gate_new(cd_daemon *d, struct evhttp *http, cd_accept_pause *listeners);
void cd_http_gate_free(cd_http_gate *g);

/* The admitted connection a request came on; NULL for one the gate could
 * not record (out of memory), whose requests should be refused. */
cd_http_conn *cd_http_gate_conn(cd_http_gate *g, struct evhttp_request *req);

/* req has been read whole: its deadline stops until the reply has been
 * written, then the next request's starts. */
void cd_http_conn_busy(cd_http_conn *c, struct evhttp_request *req);

/* Call fn(arg) once if the connection ends (a hang-up, an error, evhttp
 * freeing it); fn NULL: no longer. */
void cd_http_conn_on_close(cd_http_conn *c, void (*fn)(void *), void *arg);

#endif
