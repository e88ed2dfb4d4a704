/*
 * The HTTP JSON API (libevent's evhttp on the daemon's loop):
 *
 *   GET  /v1/verify?address=ADDR          one result object
 *   POST /v1/verify {"address": "..."}     one result object
 *   POST /v1/verify {"addresses": [...]}   {"results": [...]}, in input order
 *   GET  /v1/doctor?domain=D | ?host=H     the doctor's report (callout.h)
 *   /v1/jobs...                            bulk jobs (http_jobs.c, jobs.c)
 *   GET  /healthz                          {"status": "ok"}, or "degraded" with reasons
 *                                          (503 when stopping)
 *   GET  /metrics                          Prometheus text (metrics.c)
 *
 * A result object has the members of `callout check --json`.  The API
 * verifies, it does not decide: no skip lists, no mode, no action.  With
 * [http] token set, /v1/ and /metrics need "Authorization: Bearer TOKEN".
 * Every error is a JSON {"error": CODE, "message": TEXT}.  The whole
 * contract: docs/http-api.md and docs/openapi.yaml.
 *
 * A request waiting for its verifications is an hreq.  It ends in one of
 * two ways: the last result arrives and it is answered (finish), or the
 * client hangs up, the front end is freed or evhttp drops the connection,
 * and its verifications are cancelled (hreq_abort).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "daemon.h"
#include "frontends.h"
#include "doctor_json.h"
#include "http_gate.h"
#include "http_int.h"
#include "jobs.h"
#include "listen.h"
#include "option_table.h"
#include "result_json.h"

/* A body over [http] max_body (bytes, default 64 KiB) gets our JSON 413;
 * beyond twice that evhttp stops reading and answers 413 itself, so that
 * no client makes us buffer more. */
#define HEADERS_MAX           (16 * 1024) /* request line and headers */
#define IO_TIMEOUT            30 /* s: reading a request, writing a reply, idle keep-alive */
#define MAX_ADDRESSES_DEFAULT 100

typedef struct hreq hreq;

/* One address of a request. */
typedef struct slot {
	hreq *r;
	callout_query *q; /* while its verification runs */
	char *input;      /* the address as the client sent it (NUL-terminated) */
	size_t len;
	json_t *obj; /* its result, once known */
} slot;

struct hreq {
	LIST_ENTRY(hreq) link; /* in the front end's requests waiting */
	bool listed;           /* on that list */
	cd_http *h;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	cd_http_conn *conn;     /* what the gate knows of evcon */
	struct event *watch;    /* notices the client hanging up */
	bool list;              /* answer {"results": [...]} */
	bool failed;            /* a verification ended without a result */
	bool has_opts;          /* the request set options: opts, not calloutd's */
	callout_doctor *doctor; /* GET /v1/doctor: the run, while it runs */
	callout_options opts;
	bool transcript; /* results carry the SMTP dialogue */
	/* opts' strings: the body's and calloutd's configuration may be gone
	 * (a reload) before its verifications start */
	char strs[2048];
	size_t n, left; /* addresses, verifications still running */
	slot slots[];
};

/* ---- JSON of a result ----------------------------------------------------- */

/* For the log: printable ASCII and UTF-8 pass, control bytes become '?'. */
static void log_safe(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; *src && i + 1 < size; src++)
		dst[i++] = (unsigned char)*src < 0x20 || *src == 0x7f ? '?' : *src;
	dst[i] = '\0';
}

/* ---- requests waiting for verifications ----------------------------------- */

static void hreq_free(hreq *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->slots[i].input);
		json_decref(r->slots[i].obj);
	}
	free(r);
}

static hreq *hreq_new(cd_http *h, struct evhttp_request *req, size_t n, bool list)
{
	hreq *r = calloc(1, sizeof(*r) + n * sizeof(slot));

	if (!r)
		return NULL;
	r->h = h;
	r->req = req;
	r->evcon = evhttp_request_get_connection(req);
	r->conn = cd_http_gate_conn(h->gate, req);
	r->list = list;
	r->n = n;
	for (size_t i = 0; i < n; i++)
		r->slots[i].r = r;
	return r;
}

/* Set slot i to a copy of the address. */
static bool hreq_set(hreq *r, size_t i, const char *addr, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return false;
	memcpy(copy, addr, len);
	copy[len] = '\0';
	r->slots[i].input = copy;
	r->slots[i].len = len;
	return true;
}

/* Out of the list, no watcher, no close callback: it is ours alone. */
static void hreq_detach(hreq *r)
{
	cd_http *h = r->h;

	if (r->listed) {
		LIST_REMOVE(r, link);
		r->listed = false;
	}
	h->pending--;
	if (r->watch) {
		event_free(r->watch);
		r->watch = NULL;
	}
	cd_http_conn_on_close(r->conn, NULL, NULL);
}

/* Cancel what still runs and free it, without answering (the connection
 * is gone or going). */
static void hreq_abort(hreq *r)
{
	cd_daemon *d = r->h->d;

	if (r->doctor) {
		callout_doctor_cancel(r->doctor);
		r->doctor = NULL;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (r->slots[i].q) {
			callout_cancel(r->slots[i].q);
			r->slots[i].q = NULL;
			if (d->inflight)
				d->inflight--;
		}
	}
	cd_quiet_check(d);
	hreq_detach(r);
	hreq_free(r);
}

static void finish(hreq *r)
{
	cd_http *h = r->h;
	struct evhttp_request *req = r->req;
	json_t *body;

	hreq_detach(r);
	if (r->failed) {
		/* only when the engine is torn down under us, or out of memory */
		if (h->d->stopping)
			cd_http_send_error(h, req, 503, "stopping", "the daemon is shutting down");
		else
			cd_http_send_error(h, req, 500, "internal", "the verification failed");
		hreq_free(r);
		return;
	}
	if (r->list) {
		json_t *a = json_array();

		for (size_t i = 0; a && i < r->n; i++) {
			if (json_array_append(a, r->slots[i].obj) != 0) {
				json_decref(a);
				a = NULL;
			}
		}
		body = a ? json_pack("{s:o}", "results", a) : NULL;
	} else {
		body = json_incref(r->slots[0].obj);
	}
	cd_http_send_json(h, req, 200, body);
	hreq_free(r);
}

static void on_result(void *arg, callout_status st, const callout_result *res)
{
	slot *s = arg;
	hreq *r = s->r;
	cd_daemon *d = r->h->d;

	s->q = NULL;
	if (d->inflight)
		d->inflight--;
	cd_quiet_check(d);
	r->left--;
	if (st == CALLOUT_OK && res) {
		char addr[512];
		char *peer = NULL;
		ev_uint16_t port = 0;

		cd_metrics_result(d->metrics, CD_FE_HTTP, res);
		/* the line check.c logs for a decision, without the decision */
		evhttp_connection_get_peer(r->evcon, &peer, &port);
		log_safe(addr, sizeof(addr), res->address);
		cd_log(CD_LOG_INFO,
		       "http client=%s address=<%s> verdict=%s reason=%s smtp=%d "
		       "cached=%s ms=%u",
		       peer ? peer : "", addr, callout_verdict_name(res->verdict),
		       callout_reason_name(res->reason), res->code, res->cached ? "yes" : "no",
		       res->ms);
		s->obj = co_result_json(s->input, s->len, res, s->r->transcript);
	}
	if (!s->obj)
		r->failed = true;
	if (r->left == 0)
		finish(r);
}

/* evhttp frees the connection (evhttp_free, a failed read, the gate's
 * deadline): cancel. */
static void on_conn_close(void *arg)
{
	hreq_abort(arg);
}

/*
 * The client's socket while we verify: evhttp does not read it then, so
 * it would not notice a hang-up until it writes the answer, minutes later
 * perhaps.  A hang-up (or a half-close: like nginx, we take it as one)
 * cancels the verifications and drops the connection.
 */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	hreq *r = arg;
	struct evhttp_connection *evcon = r->evcon;

	if (!(what & EV_CLOSED)) {
		/* no EV_CLOSED on this backend: readable means EOF, an error or
		 * a pipelined request */
		char c;
		ssize_t n = recv(fd, &c, 1, MSG_PEEK);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			event_add(r->watch, NULL);
			return;
		}
		if (n > 0) {
			/* the next request is already there: evhttp reads it after
			 * our answer; we cannot watch any further */
			event_free(r->watch);
			r->watch = NULL;
			return;
		}
	}
	cd_log(CD_LOG_DEBUG, "http: client went away: verification cancelled");
	hreq_abort(r);
	evhttp_connection_free(evcon);
}

static void watch(hreq *r)
{
	struct event_base *base = r->h->d->base;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	short what = (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) ? EV_CLOSED : EV_READ;

	if (fd < 0)
		return;
	r->watch = event_new(base, fd, what, on_watch, r);
	if (r->watch && event_add(r->watch, NULL) != 0) {
		event_free(r->watch);
		r->watch = NULL;
	}
	/* without a watcher a hang-up is noticed when the answer is written */
}

static void track(cd_http *h, hreq *r);

/* Start the verifications of r (its slots set) or answer an error. */
static void start(cd_http *h, hreq *r)
{
	cd_daemon *d = h->d;
	unsigned max = d->cfg->max_inflight;

	if (max && (d->inflight >= max || r->n > max - d->inflight)) {
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
		cd_http_send_error(h, r->req, 503, "busy", "too many verifications in flight");
		hreq_free(r);
		return;
	}
	if (r->n == 0) {
		cd_http_send_json(h, r->req, 200, json_pack("{s:[]}", "results"));
		hreq_free(r);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		slot *s = &r->slots[i];
		callout_status st = callout_verify(d->ctx, s->input, r->has_opts ? &r->opts : NULL,
		                                   on_result, s, &s->q);

		if (st != CALLOUT_OK) {
			char msg[128];

			snprintf(msg, sizeof(msg), "cannot start a verification: %s",
			         callout_strerror(st));
			cd_log(CD_LOG_ERR, "http: %s", msg);
			for (size_t k = 0; k < i; k++) {
				callout_cancel(r->slots[k].q);
				if (d->inflight)
					d->inflight--;
			}
			cd_http_send_error(h, r->req, 500, "internal", msg);
			hreq_free(r);
			return;
		}
		d->inflight++;
		r->left++;
	}
	track(h, r);
}

/* r waits on the loop: listed, cancelled when its client goes away. */
static void track(cd_http *h, hreq *r)
{
	LIST_INSERT_HEAD(&h->reqs, r, link);
	r->listed = true;
	h->pending++;
	cd_http_conn_on_close(r->conn, on_conn_close, r);
	watch(r);
}

/* ---- /v1/verify ------------------------------------------------------------ */

/* GET: the address parameter.  '+' is a plus sign here, not a space (as
 * in RFC 3986 queries; form encoding would break "user+tag@"); a space is
 * %20. */
static void verify_get(cd_http *h, struct evhttp_request *req, const char *query)
{
	const char *p = query ? query : "", *value = NULL;
	size_t vlen = 0;
	char *raw, *dec;
	size_t declen;
	hreq *r;

	while (*p) {
		size_t n = strcspn(p, "&"), klen = strcspn(p, "=&");

		if (klen == 7 && memcmp(p, "address", 7) == 0) {
			if (value) {
				cd_http_send_error(h, req, 400, "invalid_request",
				                   "the address parameter is given more than once");
				return;
			}
			value = p + klen + (klen < n);
			vlen = n - klen - (klen < n);
		}
		p += n + (p[n] == '&');
	}
	if (!value) {
		cd_http_send_error(h, req, 400, "invalid_request",
		                   "the address parameter is missing: /v1/verify?address=ADDRESS");
		return;
	}
	raw = strndup(value, vlen);
	dec = raw ? evhttp_uridecode(raw, 0, &declen) : NULL;
	free(raw);
	if (!dec) {
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		return;
	}
	if (strlen(dec) != declen) {
		free(dec);
		cd_http_send_error(h, req, 400, "invalid_request",
		                   "the address contains a NUL byte");
		return;
	}
	r = hreq_new(h, req, 1, false);
	if (!r || !hreq_set(r, 0, dec, declen)) {
		free(dec);
		if (r)
			hreq_free(r);
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		return;
	}
	free(dec);
	start(h, r);
}

/* ---- /v1/doctor ------------------------------------------------------------ */

#define DOCTOR_RUNS_MAX 4 /* at once: each opens a connection and a resolver */

static void on_doctor(void *arg, const callout_doctor_report *rep)
{
	hreq *r = arg;
	cd_http *h = r->h;

	r->doctor = NULL;
	cd_metrics_doctor(h->d->metrics, rep);
	cd_log(CD_LOG_INFO, "http doctor target=%s result=%s ms=%u", rep->target,
	       callout_doctor_level_name(rep->worst), rep->ms);
	hreq_detach(r);
	cd_http_send_json(h, r->req, 200, co_doctor_json(rep));
	hreq_free(r);
}

/* GET: domain= or host= (one of them), else [doctor] domain. */
static void doctor_get(cd_http *h, struct evhttp_request *req, const char *query)
{
	const cd_config *cfg = h->d->cfg;
	struct evkeyvalq params;
	callout_doctor_options o;
	const char *domain = NULL, *host = NULL;
	char err[256];
	unsigned running = 0;
	hreq *r;

	params.tqh_first = NULL;
	params.tqh_last = &params.tqh_first;
	if (query && evhttp_parse_query_str(query, &params) != 0) {
		cd_http_send_error(h, req, 400, "invalid_request", "the query does not parse");
		return;
	}
	for (struct evkeyval *kv = params.tqh_first; kv; kv = kv->next.tqe_next) {
		const char **p = strcmp(kv->key, "domain") == 0 ? &domain
		                 : strcmp(kv->key, "host") == 0 ? &host
		                                                : NULL;
		if (!p || *p) {
			evhttp_clear_headers(&params);
			cd_http_send_error(
			    h, req, 400, "invalid_request",
			    p ? "a parameter is given more than once"
			      : "unknown parameter: /v1/doctor?domain=DOMAIN or ?host=HOST[:PORT]");
			return;
		}
		*p = kv->value;
	}
	if (!domain && !host && cfg->doctor_domain[0])
		domain = cfg->doctor_domain;
	for (hreq *q = LIST_FIRST(&h->reqs); q; q = LIST_NEXT(q, link))
		running += q->doctor != NULL;
	if (running >= DOCTOR_RUNS_MAX) {
		evhttp_clear_headers(&params);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
		cd_http_send_error(h, req, 503, "busy", "too many doctor runs at once");
		return;
	}
	callout_doctor_options_init(&o);
	o.domain = domain;
	o.host = host;
	o.helo = cfg->helo[0] ? cfg->helo : NULL;
	o.source_address = cfg->source_address[0] ? cfg->source_address : NULL;
	o.dns_servers = cfg->dns_servers[0] ? cfg->dns_servers : NULL;
	o.dnsbl = cfg->doctor_dnsbl;
	o.port = cfg->opts.port;
	o.dns_timeout_ms = cfg->opts.dns_timeout_ms;
	o.connect_timeout_ms = cfg->opts.connect_timeout_ms;
	o.command_timeout_ms = cfg->opts.command_timeout_ms;
	o.deadline_ms = cfg->opts.deadline_ms;
	o.max_mx = cfg->opts.max_mx;
	o.allow_private = (cfg->opts.flags & CALLOUT_F_ALLOW_PRIVATE) != 0;
	r = hreq_new(h, req, 0, false);
	if (!r) {
		evhttp_clear_headers(&params);
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		return;
	}
	callout_status st =
	    callout_doctor_start(h->d->base, &o, on_doctor, r, &r->doctor, err, sizeof(err));
	evhttp_clear_headers(&params);
	if (st != CALLOUT_OK) {
		hreq_free(r);
		if (st == CALLOUT_EINVAL)
			cd_http_send_error(h, req, 400, "invalid_request",
			                   domain || host
			                       ? err
			                       : "give the target: /v1/doctor?domain=DOMAIN or "
			                         "?host=HOST[:PORT] (or set [doctor] domain)");
		else
			cd_http_send_error(h, req, 500, "internal", callout_strerror(st));
		return;
	}
	track(h, r);
}

/* Lenient: JSON of any flavour, no type, text/plain, and curl -d's
 * default form type; refused only what is clearly something else. */
static bool content_type_ok(const char *type)
{
	static const char *const ok[] = {"application/json", "text/plain",
	                                 "application/x-www-form-urlencoded"};
	size_t n;

	if (!type)
		return true;
	n = strcspn(type, "; \t");
	if (n == 0)
		return true;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strlen(ok[i]) == n && strncasecmp(type, ok[i], n) == 0)
			return true;
	/* application/problem+json, application/vnd.x+json, */
	return n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0;
}

/* Copy the request's option strings into it. */
static bool own_strings(hreq *r)
{
	const char **f[] = {&r->opts.helo, &r->opts.sender, &r->opts.fallback_sender,
	                    &r->opts.source_address, &r->opts.proxy_name};
	size_t k = 0;

	/* the context's own: not read per request */
	r->opts.dns_servers = r->opts.cache = r->opts.proxy = NULL;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t n = *f[i] ? strlen(*f[i]) + 1 : 0;
		if (!n)
			continue;
		if (k + n > sizeof(r->strs))
			return false;
		memcpy(r->strs + k, *f[i], n);
		*f[i] = r->strs + k;
		k += n;
	}
	return true;
}

static void verify_post(cd_http *h, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in), max = h->d->cfg->http_max_addresses;
	const char *type =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	const char *body;
	json_t *root, *one, *many;
	json_error_t jerr;
	hreq *r = NULL;
	char msg[256];
	callout_options opts;
	bool has_opts = false, transcript = false;

	if (!max)
		max = MAX_ADDRESSES_DEFAULT;
	if (len > h->d->cfg->http_max_body) {
		snprintf(msg, sizeof(msg), "the body is larger than %u bytes",
		         h->d->cfg->http_max_body);
		cd_http_send_error(h, req, 413, "body_too_large", msg);
		return;
	}
	if (!content_type_ok(type)) {
		cd_http_send_error(h, req, 415, "unsupported_media_type",
		                   "the body must be JSON (Content-Type: application/json)");
		return;
	}
	if (len == 0) {
		cd_http_send_error(
		    h, req, 400, "invalid_request",
		    "the body is empty: {\"address\": ...} or {\"addresses\": [...]}");
		return;
	}
	/* one contiguous block: at most BODY_MAX bytes */
	body = (const char *)evbuffer_pullup(in, -1);
	if (!body) {
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		return;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(msg, sizeof(msg), "invalid JSON at line %d, column %d: %s", jerr.line,
		         jerr.column, jerr.text);
		cd_http_send_error(h, req, 400, "invalid_json", msg);
		return;
	}
	if (!json_is_object(root)) {
		cd_http_send_error(h, req, 400, "invalid_request",
		                   "the body must be an object: {\"address\": ...} or "
		                   "{\"addresses\": [...]}");
		goto out;
	}
	one = json_object_get(root, "address");
	many = json_object_get(root, "addresses");
	if ((one != NULL) == (many != NULL)) {
		cd_http_send_error(
		    h, req, 400, "invalid_request",
		    one ? "give \"address\" or \"addresses\", not both"
		        : "the body needs \"address\" (a string) or \"addresses\" (an array "
		          "of strings)");
		goto out;
	}
	if (!cd_http_options(h->d->cfg, root, &opts, &has_opts, &transcript, msg, sizeof(msg))) {
		cd_http_send_error(h, req, 400, "invalid_option", msg);
		goto out;
	}
	if (one) {
		if (!json_is_string(one)) {
			cd_http_send_error(h, req, 400, "invalid_request",
			                   "\"address\" must be a string");
			goto out;
		}
		r = hreq_new(h, req, 1, false);
		if (r && !hreq_set(r, 0, json_string_value(one), json_string_length(one)))
			goto oom;
	} else {
		size_t n;

		if (!json_is_array(many)) {
			cd_http_send_error(h, req, 400, "invalid_request",
			                   "\"addresses\" must be an array of strings");
			goto out;
		}
		n = json_array_size(many);
		if (n > max) {
			snprintf(msg, sizeof(msg), "%zu addresses; at most %zu per request", n,
			         max);
			cd_http_send_error(h, req, 400, "too_many_addresses", msg);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (!json_is_string(json_array_get(many, i))) {
				snprintf(msg, sizeof(msg), "\"addresses\"[%zu] is not a string", i);
				cd_http_send_error(h, req, 400, "invalid_request", msg);
				goto out;
			}
		}
		r = hreq_new(h, req, n, true);
		for (size_t i = 0; r && i < n; i++) {
			json_t *a = json_array_get(many, i);

			if (!hreq_set(r, i, json_string_value(a), json_string_length(a)))
				goto oom;
		}
	}
	if (!r)
		goto oom;
	r->has_opts = has_opts;
	r->opts = opts;
	r->transcript = transcript;
	if (!own_strings(r))
		goto oom;
	json_decref(root);
	start(h, r);
	return;
oom:
	if (r)
		hreq_free(r);
	cd_http_send_error(h, req, 500, "internal", "out of memory");
out:
	json_decref(root);
}

/* ---- access ------------------------------------------------------------------ */

/* Equal, in a time that depends on the token's length only. */
static bool token_equal(const char *given, size_t glen, const char *token, size_t tlen)
{
	volatile unsigned char diff = glen != tlen;

	for (size_t i = 0; i < tlen; i++)
		diff |= (unsigned char)token[i] ^ (unsigned char)(i < glen ? given[i] : 0);
	return diff == 0;
}

/* True when the request may go on; else it has been answered 401. */
static bool authorized(cd_http *h, struct evhttp_request *req)
{
	const char *token = h->d->cfg->http_token;
	const char *auth, *challenge = "Bearer realm=\"calloutd\"";

	if (!token[0])
		return true;
	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (auth && strncasecmp(auth, "Bearer", 6) == 0 && (auth[6] == ' ' || auth[6] == '\t')) {
		const char *t = auth + 7;

		/* evhttp trimmed the value's end: the rest is the token */
		t += strspn(t, " \t");
		if (token_equal(t, strlen(t), token, strlen(token)))
			return true;
		challenge = "Bearer realm=\"calloutd\", error=\"invalid_token\"";
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", challenge);
	cd_http_send_error(h, req, 401, "unauthorized",
	                   auth ? "the bearer token is not valid"
	                        : "this needs Authorization: Bearer TOKEN");
	return false;
}

/* ---- health ------------------------------------------------------------------ */

/*
 * {"status": "ok"}, or {"status": "degraded", "cache": "ok"|"failing"|
 * "none", "dns": "ok"|"failing", "reasons": [...]}: degraded still answers
 * (uncached, or tempfail), so it is a 200, for a person or an alert to
 * read, not a reason to restart us.
 */
/* The proxies of the engine's pools, or NULL for none; a pool whose
 * every proxy is down is a reason to say degraded. */
static json_t *proxies_json(cd_daemon *d, json_t *reasons)
{
	callout_proxy_health px[CD_PROXIES_SHOWN];
	size_t n = callout_ctx_proxies(d->ctx, px, CD_PROXIES_SHOWN);
	json_t *out;
	char why[320];

	if (!n || !(out = json_array()))
		return NULL;
	n = n < CD_PROXIES_SHOWN ? n : CD_PROXIES_SHOWN;
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(out,
		                      json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:s}", "pool", px[i].pool,
		                                "proxy", px[i].proxy, "up", px[i].up, "sessions",
		                                (json_int_t)px[i].sessions, "connections",
		                                (json_int_t)px[i].connections, "failures",
		                                (json_int_t)px[i].failures, "error", px[i].error));
		/* the last of a pool in the list: is any of the pool up? */
		bool last = i + 1 == n || strcmp(px[i + 1].pool, px[i].pool) != 0, up = false;
		for (size_t j = i + 1; last && j-- > 0 && strcmp(px[j].pool, px[i].pool) == 0;)
			up |= px[j].up;
		if (last && !up) {
			snprintf(why, sizeof(why), "proxy pool %s: every proxy is down (%.200s)",
			         px[i].pool, px[i].error);
			json_array_append_new(reasons, json_string(why));
		}
	}
	return out;
}

static json_t *health_json(cd_daemon *d)
{
	callout_health hl;
	json_t *reasons = json_array();
	const char *cache = "ok", *dns = "ok";
	char why[320];

	if (!reasons || callout_ctx_health(d->ctx, &hl, sizeof(hl)) != CALLOUT_OK) {
		json_decref(reasons);
		return json_pack("{s:s}", "status", "ok");
	}
	if (strcmp(hl.cache_backend, "none") == 0) {
		cache = "none";
	} else if (!hl.cache_up) {
		cache = "failing";
		snprintf(why, sizeof(why), "cache (%s): %s", hl.cache_backend, hl.cache_error);
		json_array_append_new(reasons, json_string(why));
	}
	if (!hl.dns_up) {
		dns = "failing";
		snprintf(why, sizeof(why), "dns: %s", hl.dns_error);
		json_array_append_new(reasons, json_string(why));
	}
	/* Limits held across a fleet: whether Redis answers for them. */
	json_t *limits = NULL;
	if (hl.limits_shared) {
		if (!hl.limits_up)
			json_array_append_new(
			    reasons, json_string("limits: Redis out of reach; this node keeps "
			                         "its share of each limit"));
		limits = json_pack("{s:b,s:b,s:I,s:I,s:I,s:I}", "shared", 1, "up", hl.limits_up,
		                   "leases", (json_int_t)hl.limits_leases, "nodes",
		                   (json_int_t)hl.limits_nodes, "fallbacks",
		                   (json_int_t)hl.limits_fallbacks, "admissions",
		                   (json_int_t)hl.limits_admissions);
	}
	json_t *proxies = proxies_json(d, reasons);
	json_t *out;
	if (!json_array_size(reasons)) {
		json_decref(reasons);
		out = json_pack("{s:s}", "status", "ok");
	} else {
		out = json_pack("{s:s,s:s,s:s,s:o}", "status", "degraded", "cache", cache, "dns",
		                dns, "reasons", reasons);
	}
	if (out && limits)
		json_object_set_new(out, "limits", limits);
	else
		json_decref(limits);
	if (out && proxies)
		json_object_set_new(out, "proxies", proxies);
	else
		json_decref(proxies);
	return out;
}

/* ---- dispatch ----------------------------------------------------------------- */

static void on_request(struct evhttp_request *req, void *arg)
{
	cd_http *h = arg;
	cd_daemon *d = h->d;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	cd_http_conn *conn = cd_http_gate_conn(h->gate, req);

	if (!conn) {
		/* the gate could not record the connection (out of memory): no
		 * caps, no deadline, no notice of a hang-up, so no service */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		return;
	}
	cd_http_conn_busy(conn, req);
	if (!path)
		path = "";
	if (strcmp(path, "/healthz") == 0) {
		if (!get)
			cd_http_send_405(h, req, "GET, HEAD");
		else if (d->stopping)
			cd_http_send_json(h, req, 503, json_pack("{s:s}", "status", "stopping"));
		else
			cd_http_send_json(h, req, 200, health_json(d));
	} else if (strcmp(path, "/metrics") == 0) {
		char *text;

		if (!get) {
			cd_http_send_405(h, req, "GET, HEAD");
			return;
		}
		if (!authorized(h, req))
			return;
		callout_stats st;
		bool have = callout_ctx_stats(d->ctx, &st, sizeof(st)) == CALLOUT_OK;
		callout_health health;
		bool healthy = callout_ctx_health(d->ctx, &health, sizeof(health)) == CALLOUT_OK;
		callout_proxy_health px[CD_PROXIES_SHOWN];
		size_t npx = callout_ctx_proxies(d->ctx, px, CD_PROXIES_SHOWN);
		text = cd_metrics_render(d->metrics, d->inflight, have ? &st : NULL,
		                         healthy ? &health : NULL, px,
		                         npx < CD_PROXIES_SHOWN ? npx : CD_PROXIES_SHOWN);
		if (!text) {
			cd_http_send_error(h, req, 500, "internal", "out of memory");
			return;
		}
		cd_http_send_body(h, req, 200, "text/plain; version=0.0.4; charset=utf-8", text,
		                  strlen(text));
		free(text);
	} else if (strncmp(path, "/v1/", 4) == 0) {
		/* the token first: without it, not even which paths exist */
		if (!authorized(h, req))
			return;
		if (strcmp(path, "/v1/doctor") == 0) {
			if (!get)
				cd_http_send_405(h, req, "GET, HEAD");
			else if (d->stopping)
				cd_http_send_error(h, req, 503, "stopping",
				                   "the daemon is shutting down");
			else
				doctor_get(h, req, evhttp_uri_get_query(uri));
		} else if (strncmp(path, "/v1/jobs", 8) == 0 && (!path[8] || path[8] == '/'))
			cd_http_jobs(h, h->jobs, req, path, evhttp_uri_get_query(uri));
		else if (strcmp(path, "/v1/verify") != 0)
			cd_http_send_error(h, req, 404, "not_found", "no such endpoint");
		else if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_POST)
			cd_http_send_405(h, req, "GET, POST");
		else if (d->stopping)
			cd_http_send_error(h, req, 503, "stopping", "the daemon is shutting down");
		else if (cmd == EVHTTP_REQ_GET)
			verify_get(h, req, evhttp_uri_get_query(uri));
		else
			verify_post(h, req);
	} else {
		cd_http_send_error(h, req, 404, "not_found", "no such endpoint");
	}
}

/* ---- the front end --------------------------------------------------------------- */

/* evhttp answers 413 itself, without reading the body, past twice
 * max_body, or past max_job_body and a MiB when that is more: a job's list
 * is long (there is no hook between the request line and the body in
 * libevent 2.1 to give /v1/jobs alone the larger limit).  Up to there our
 * JSON 413 explains. */
#define JOB_BODY_SLACK (1024 * 1024)

/* libevent passes the error callback the listener's argument, which
 * evhttp has made its own: the one HTTP front end's pause is found here. */
static cd_accept_pause *the_pause;

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	(void)arg;
	if (the_pause)
		cd_accept_paused(the_pause);
}

cd_http *cd_http_new(cd_daemon *d, char *err, size_t errlen)
{
	const cd_config *cfg = d->cfg;
	cd_http *h = calloc(1, sizeof(*h));

	if (!h || !(h->http = evhttp_new(d->base))) {
		snprintf(err, errlen, "http: out of memory");
		free(h);
		return NULL;
	}
	h->d = d;
	LIST_INIT(&h->reqs);
	h->pause = (cd_accept_pause){.fe = "http", .levs = h->levs};
	h->pause.resume = evtimer_new(d->base, cd_accept_resume_cb, &h->pause);
	h->gate = cd_http_gate_new(d, h->http, &h->pause);
	if (!h->pause.resume || !h->gate) {
		snprintf(err, errlen, "http: out of memory");
		cd_http_free(h);
		return NULL;
	}
	the_pause = &h->pause;
	ev_ssize_t job_body = (ev_ssize_t)cfg->http_max_job_body + JOB_BODY_SLACK;
	evhttp_set_max_body_size(h->http, 2 * (ev_ssize_t)cfg->http_max_body > job_body
	                                      ? 2 * (ev_ssize_t)cfg->http_max_body
	                                      : job_body);
	evhttp_set_max_headers_size(h->http, HEADERS_MAX);
	evhttp_set_timeout(h->http, IO_TIMEOUT);
	/* read what is left of an over-long body before closing, so that the
	 * client sees the 413 rather than a reset */
	evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
	/* every method evhttp knows reaches on_request, which answers 405 as JSON */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(h->http, on_request, h);

	for (size_t i = 0; i < cfg->nhttp_listen && i < CD_LISTEN_MAX; i++) {
		const cd_listen *l = &cfg->http_listen[i];
		struct evconnlistener *lev;
		char name[160];
		int fd;

		cd_listen_name(l, name, sizeof(name));
		if (l->is_unix) {
			snprintf(err, errlen, "http: listen %s: only inet sockets are supported",
			         name);
			cd_http_free(h);
			return NULL;
		}
		if ((fd = cd_listen_inet(l, "http", err, errlen)) < 0) {
			cd_http_free(h);
			return NULL;
		}
		lev = evconnlistener_new(d->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, 0, fd);
		if (!lev) {
			close(fd);
			snprintf(err, errlen, "http: %s: out of memory", name);
			cd_http_free(h);
			return NULL;
		}
		/* evhttp takes the accept callback; the error one is ours */
		h->bound[h->nbound] = evhttp_bind_listener(h->http, lev);
		if (!h->bound[h->nbound]) {
			evconnlistener_free(lev);
			snprintf(err, errlen, "http: %s: out of memory", name);
			cd_http_free(h);
			return NULL;
		}
		evconnlistener_set_error_cb(lev, accept_error_cb);
		h->levs[h->nbound] = lev;
		h->pause.n = ++h->nbound;
		cd_log(CD_LOG_INFO, "http: listening on %s", name);
	}
	return h;
}

void cd_http_close(cd_http *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nbound; i++) {
		evhttp_del_accept_socket(h->http, h->bound[i]); /* frees the listener */
		h->levs[i] = NULL;
	}
	h->nbound = h->pause.n = 0;
	if (h->pause.resume)
		event_del(h->pause.resume);
	h->closed = true;
	cd_jobs_stop(h->jobs);
}

unsigned cd_http_pending(const cd_http *h)
{
	return h ? h->pending : 0;
}

void cd_http_free(cd_http *h)
{
	if (!h)
		return;
	while (!LIST_EMPTY(&h->reqs))
		hreq_abort(LIST_FIRST(&h->reqs));
	cd_jobs_free(h->jobs);
	evhttp_free(h->http); /* closes the listeners and every connection */
	cd_http_gate_free(h->gate);
	if (h->pause.resume)
		event_free(h->pause.resume);
	if (the_pause == &h->pause)
		the_pause = NULL;
	free(h);
}

/* ---- for http_jobs.c and jobs.c ---------------------------------------------------- */

int cd_http_jobs_start(cd_http *h, char *err, size_t errlen)
{
	if (!h)
		return 0;
	h->jobs = cd_jobs_new(h->d, cd_http_job_options, h->d, err, errlen);
	return h->jobs ? 0 : -1;
}
