/*
 * The HTTP side of bulk jobs (jobs.c):
 *
 *   POST   /v1/jobs                 a list in the body: 202 {"id", ...}
 *   GET    /v1/jobs                 {"jobs": [...]}
 *   GET    /v1/jobs/ID              progress and counts
 *   GET    /v1/jobs/ID/results      JSON lines or CSV, ?offset=N&limit=M
 *   DELETE /v1/jobs/ID              cancel a job that runs; forget one that ended
 *
 * The body is a JSON array of addresses or {"addresses": [...], options},
 * JSON lines (application/x-ndjson: a string or {"address": ...} a line),
 * CSV (text/csv: the address column found as callout check finds it, or
 * ?column=NAME) or plain lines (text/plain).  Options and "webhook" come
 * in the JSON object or as query parameters; options are checked by
 * http.c's request_options, as for /v1/verify.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "csv.h"
#include "http_int.h"
#include "jobs.h"
#include "jobs_body.h"
#include "jobs_webhook.h"

#define RESULTS_LIMIT_DEFAULT 1000
#define RESULTS_LIMIT_MAX     10000

/* A body being read into a new job. */
typedef struct post {
	cd_jobnew *n;
	const cd_config *cfg;
	cd_body_error e;
} post;

static bool add(void *arg, unsigned long line, const char *a, size_t len, cd_body_error *e)
{
	post *p = arg;
	int rc = cd_jobnew_add(p->n, (uint32_t)line, a, len);

	if (rc == EFBIG)
		return cd_body_fail(
		    e, 413, "too_many_addresses",
		    "more than %u addresses; at most %u per job ([http] max_job_addresses)",
		    p->cfg->http_max_job_addresses, p->cfg->http_max_job_addresses);
	if (rc == ENAMETOOLONG)
		return cd_body_fail(e, 400, "invalid_request", "line %lu: an address over %d bytes",
		                    line, CD_JOB_ADDR_MAX);
	if (rc)
		return cd_body_fail(e, 500, "internal", "cannot store the job: %s", strerror(rc));
	return true;
}

/* ---- POST /v1/jobs ------------------------------------------------------------ */

/* 503 (the store is away: try again) or 500. */
static void store_error(cd_http *h, struct evhttp_request *req, int status, const char *msg)
{
	if (status == 503) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
		cd_http_send_error(h, req, 503, "unavailable", msg);
	} else {
		cd_http_send_error(h, req, status, "internal", msg);
	}
}

static void jobs_post(cd_http *h, cd_jobs *js, struct evhttp_request *req, const char *query)
{
	cd_daemon *d = h->d;
	const cd_config *cfg = d->cfg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	cd_body_kind kind = cd_body_kind_of(
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type"));
	struct evkeyvalq params = {NULL, NULL};
	json_t *opts = json_object(), *hook;
	const char *column = NULL, *body;
	post p = {.cfg = cfg};
	cd_body_error *e = &p.e;
	callout_options o;
	bool has = false;
	char ip[64] = "", why[256];
	cd_jobent *j;
	int status;

	params.tqh_last = &params.tqh_first;
	if (len > cfg->http_max_job_body) {
		snprintf(why, sizeof(why), "the body is larger than %u bytes ([http] max_job_body)",
		         cfg->http_max_job_body);
		cd_http_send_error(h, req, 413, "body_too_large", why);
		goto out;
	}
	if (kind == CD_BODY_OTHER) {
		cd_http_send_error(h, req, 415, "unsupported_media_type",
		                   "the body must be JSON (application/json), JSON lines "
		                   "(application/x-ndjson), CSV (text/csv) or lines (text/plain)");
		goto out;
	}
	if (!opts) {
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		goto out;
	}
	if (query && evhttp_parse_query_str(query, &params) != 0) {
		cd_http_send_error(h, req, 400, "invalid_request", "the query does not parse");
		goto out;
	}
	for (struct evkeyval *kv = params.tqh_first; kv; kv = kv->next.tqe_next) {
		if (strcmp(kv->key, "column") == 0 && kind == CD_BODY_CSV)
			column = kv->value;
		else
			json_object_set_new(opts, kv->key, json_string(kv->value));
	}
	if (len == 0) {
		cd_http_send_error(h, req, 400, "invalid_request",
		                   "the body is empty: no addresses");
		goto out;
	}
	if (!(body = (const char *)evbuffer_pullup(in, -1))) {
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		goto out;
	}
	if (!(p.n = cd_jobs_create(js, &status, why, sizeof(why)))) {
		if (status == 503)
			evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
			                  "60");
		cd_http_send_error(h, req, status, status == 503 ? "busy" : "internal", why);
		goto out;
	}
	if (cd_body_read(kind, body, len, column, opts, add, &p, e) && cd_jobnew_count(p.n) == 0)
		cd_body_fail(e, 400, "invalid_request", "the body holds no address");
	/* the webhook apart, the members are the options of /v1/verify */
	if (!e->status && (hook = json_object_get(opts, "webhook"))) {
		if (!cfg->http_webhooks)
			cd_body_fail(
			    e, 400, "invalid_option",
			    "\"webhook\": this server takes no webhooks ([http] webhooks)");
		else if (!json_is_string(hook))
			cd_body_fail(e, 400, "invalid_option", "\"webhook\": expected a URL");
		else if (!cd_webhook_check(json_string_value(hook), cfg->http_webhook_allow_private,
		                           ip, sizeof(ip), why, sizeof(why)))
			cd_body_fail(e, 400, "invalid_option", "%s", why);
	}
	hook = json_incref(json_object_get(opts, "webhook"));
	json_object_del(opts, "webhook");
	if (!e->status && !cd_http_job_options(h->d, opts, &o, &has, why, sizeof(why)))
		cd_body_fail(e, 400, "invalid_option", "%s", why);
	if (e->status) {
		cd_jobnew_abort(p.n);
		json_decref(hook);
		cd_http_send_error(h, req, e->status, e->error, e->msg);
		goto out;
	}
	j = cd_jobnew_commit(p.n, json_object_size(opts) ? json_incref(opts) : NULL,
	                     hook ? json_string_value(hook) : NULL, ip, &status, why, sizeof(why));
	json_decref(hook);
	if (!j) {
		store_error(h, req, status, why);
		goto out;
	}
	char where[64];
	snprintf(where, sizeof(where), "/v1/jobs/%s", cd_job_id(j));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", where);
	cd_http_send_json(h, req, 202, cd_job_json(j));
out:
	evhttp_clear_headers(&params);
	json_decref(opts);
}

/* ---- GET /v1/jobs/ID/results ------------------------------------------------------ */

typedef struct page {
	FILE *fp;
	bool csv;
} page;

static void csv_str(FILE *fp, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (s)
		co_csv_put(fp, s, strlen(s));
}

/* One result as a row of callout check --format csv's columns. */
static void csv_row(FILE *fp, json_t *o)
{
	const char *text = json_string_value(json_object_get(o, "text"));
	json_int_t code = json_integer_value(json_object_get(o, "code"));

	csv_str(fp, o, "address");
	fputc(',', fp);
	csv_str(fp, o, "verdict");
	fputc(',', fp);
	csv_str(fp, o, "reason");
	fputc(',', fp);
	if (code)
		fprintf(fp, "%lld", (long long)code);
	fputc(',', fp);
	csv_str(fp, o, "enhanced");
	fputc(',', fp);
	/* a spreadsheet must not take the server's text for a formula */
	if (text && text[0] && strchr("=+-@\t", text[0]))
		fputc('\'', fp);
	if (text)
		co_csv_put(fp, text, strlen(text));
	fputc(',', fp);
	csv_str(fp, o, "mx");
	fputc(',', fp);
	csv_str(fp, o, "ip");
	fprintf(fp, ",%s,%s,%lld,%lld\n",
	        json_is_true(json_object_get(o, "cached")) ? "true" : "false",
	        json_is_true(json_object_get(o, "from_fact")) ? "true" : "false",
	        (long long)json_integer_value(json_object_get(o, "ms")),
	        (long long)json_integer_value(json_object_get(o, "line")));
}

static int put_result(void *arg, uint64_t idx, const char *json, size_t len)
{
	page *pg = arg;
	json_t *o;
	(void)idx;

	if (!pg->csv) {
		fwrite(json, 1, len, pg->fp);
		fputc('\n', pg->fp);
		return 0;
	}
	if (!(o = json_loadb(json, len, 0, NULL)))
		return EIO;
	csv_row(pg->fp, o);
	json_decref(o);
	return 0;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static void jobs_results(cd_http *h, cd_jobs *js, cd_jobent *j, struct evhttp_request *req,
                         const char *query)
{
	struct evkeyvalq params = {NULL, NULL};
	const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
	const char *format = NULL;
	uint64_t offset = 0, limit = RESULTS_LIMIT_DEFAULT, next;
	page pg = {NULL, accept && strstr(accept, "text/csv")};
	char *buf = NULL, msg[160], hdr[32];
	size_t blen = 0;
	bool more;
	int rc;

	params.tqh_last = &params.tqh_first;
	if (query && evhttp_parse_query_str(query, &params) != 0) {
		cd_http_send_error(h, req, 400, "invalid_request", "the query does not parse");
		goto out;
	}
	for (struct evkeyval *kv = params.tqh_first; kv; kv = kv->next.tqe_next) {
		bool ok = strcmp(kv->key, "offset") == 0 ? parse_u64(kv->value, UINT64_MAX, &offset)
		          : strcmp(kv->key, "limit") == 0
		              ? parse_u64(kv->value, RESULTS_LIMIT_MAX, &limit) && limit > 0
		          : strcmp(kv->key, "format") == 0
		              ? (format = kv->value,
		                 strcmp(format, "csv") == 0 || strcmp(format, "json") == 0)
		              : false;
		if (!ok) {
			snprintf(msg, sizeof(msg),
			         "bad parameter \"%.40s\": ?offset=N (from 0), &limit=M (1 to %d), "
			         "&format=json|csv",
			         kv->key, RESULTS_LIMIT_MAX);
			cd_http_send_error(h, req, 400, "invalid_request", msg);
			goto out;
		}
	}
	if (format)
		pg.csv = strcmp(format, "csv") == 0;
	if (!(pg.fp = open_memstream(&buf, &blen))) {
		cd_http_send_error(h, req, 500, "internal", "out of memory");
		goto out;
	}
	if (pg.csv)
		for (size_t i = 0; i < CO_CSV_NCOLUMNS; i++)
			fprintf(pg.fp, "%s%c", co_csv_columns[i],
			        i + 1 < CO_CSV_NCOLUMNS ? ',' : '\n');
	rc = cd_jobs_results(js, j, offset, (size_t)limit, put_result, &pg, &next, &more);
	if (fclose(pg.fp) != 0 || rc) {
		snprintf(msg, sizeof(msg), "cannot read the results: %s",
		         strerror(rc ? rc : ENOMEM));
		store_error(h, req, rc ? cd_jobs_status(rc) : 500, msg);
		goto out;
	}
	/* where the next page starts: absent on the last one so far */
	if (more) {
		snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)next);
		evhttp_add_header(evhttp_request_get_output_headers(req), "X-Next-Offset", hdr);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Job-State",
	                  cd_job_state_name(cd_job_state_of(j)));
	cd_http_send_body(h, req, 200, pg.csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
	                  buf, blen);
out:
	free(buf);
	evhttp_clear_headers(&params);
}

/* ---- dispatch ------------------------------------------------------------------------ */

void cd_http_jobs(cd_http *h, cd_jobs *js, struct evhttp_request *req, const char *path,
                  const char *query)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	const char *rest = path + strlen("/v1/jobs");
	char id[CD_JOB_ID_LEN + 1];
	cd_jobent *j;

	if (!js) {
		cd_http_send_error(h, req, 503, "unavailable",
		                   "bulk jobs are not available: their store could not be opened");
		return;
	}
	if (!*rest || strcmp(rest, "/") == 0) {
		if (cmd == EVHTTP_REQ_POST) {
			if (h->d->stopping)
				cd_http_send_error(h, req, 503, "stopping",
				                   "the daemon is shutting down");
			else
				jobs_post(h, js, req, query);
		} else if (get) {
			int err;
			json_t *list = cd_jobs_list(js, &err);

			if (err)
				store_error(h, req, cd_jobs_status(err),
				            "the jobs' store does not answer");
			else
				cd_http_send_json(h, req, 200, list);
		} else {
			cd_http_send_405(h, req, "GET, HEAD, POST");
		}
		return;
	}
	/* /ID or /ID/results */
	size_t n = strcspn(rest + 1, "/");
	int err = 0;
	if (rest[0] != '/' || n != CD_JOB_ID_LEN || !(memcpy(id, rest + 1, n), id[n] = '\0', 1) ||
	    !(j = cd_jobs_find(js, id, &err))) {
		if (err)
			store_error(h, req, cd_jobs_status(err), "the jobs' store does not answer");
		else
			cd_http_send_error(h, req, 404, "not_found", "no such job");
		return;
	}
	rest += 1 + n;
	if (strcmp(rest, "/results") == 0) {
		if (!get)
			cd_http_send_405(h, req, "GET, HEAD");
		else
			jobs_results(h, js, j, req, query);
	} else if (*rest) {
		cd_http_send_error(h, req, 404, "not_found", "no such endpoint");
	} else if (get) {
		cd_http_send_json(h, req, 200, cd_job_json(j));
	} else if (cmd == EVHTTP_REQ_DELETE) {
		cd_job_state st = cd_job_state_of(j);

		if (st == CD_JOB_QUEUED || st == CD_JOB_RUNNING) {
			/* another node runs it: 202, it cancels the job within a second */
			if ((err = cd_jobs_cancel(js, j)) == 0 || err == EINPROGRESS)
				cd_http_send_json(h, req, err ? 202 : 200, cd_job_json(j));
			else
				store_error(h, req, cd_jobs_status(err),
				            "cannot cancel the job now");
		} else if ((err = cd_jobs_delete(js, j)) == 0) {
			cd_http_send_json(h, req, 200,
			                  json_pack("{s:s,s:s}", "id", id, "state", "deleted"));
		} else {
			store_error(h, req, cd_jobs_status(err), "cannot delete the job now");
		}
	} else {
		cd_http_send_405(h, req, "GET, HEAD, DELETE");
	}
}
