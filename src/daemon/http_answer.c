/* The HTTP front end's answers: a body, JSON, an error, 405 (http_int.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "http_int.h"

void cd_http_send_body(cd_http *h, struct evhttp_request *req, int code, const char *type,
                       const char *body, size_t len)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;

	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Cache-Control", "no-store");
	/* shutting down: let keep-alive clients go */
	if (h->closed || h->d->stopping)
		evhttp_add_header(out, "Connection", "close");
	if (head) {
		/* the length GET would have had, and no body */
		char n[24];

		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(out, "Content-Length", n);
	}
	if (!buf || (!head && evbuffer_add(buf, body, len) != 0)) {
		if (buf)
			evbuffer_free(buf);
		cd_metrics_http_response(h->d->metrics, HTTP_INTERNAL);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	cd_metrics_http_response(h->d->metrics, code);
	evhttp_send_reply(req, code, NULL, buf);
	evbuffer_free(buf);
}

/* Send j (consumed) as the body. */
void cd_http_send_json(cd_http *h, struct evhttp_request *req, int code, json_t *j)
{
	static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}\n";
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	size_t len;

	json_decref(j);
	if (!s) {
		cd_http_send_body(h, req, HTTP_INTERNAL, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	/* a newline, so that `curl` output ends its line */
	len = strlen(s);
	char *t = realloc(s, len + 2);
	if (!t) {
		free(s);
		cd_http_send_body(h, req, HTTP_INTERNAL, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	t[len] = '\n';
	t[len + 1] = '\0';
	cd_http_send_body(h, req, code, "application/json", t, len + 1);
	free(t);
}

void cd_http_send_error(cd_http *h, struct evhttp_request *req, int code, const char *error,
                        const char *message)
{
	cd_http_send_json(h, req, code,
	                  json_pack("{s:s, s:s}", "error", error, "message", message));
}

void cd_http_send_405(cd_http *h, struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	cd_http_send_error(h, req, 405, "method_not_allowed", "method not allowed here");
}
