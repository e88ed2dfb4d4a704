/*
 * The body of POST /v1/jobs (jobs_body.h).  JSON through jansson, CSV
 * through the shared reader (src/common/csv.c); lines by hand.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "jobs_body.h"

bool cd_body_fail(cd_body_error *e, int status, const char *error, const char *fmt, ...)
{
	va_list ap;

	if (e->status)
		return false;
	e->status = status;
	e->error = error;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* An address to the caller: none with a NUL byte (it would be cut short). */
static bool put(cd_body_error *e, cd_body_add_fn add, void *arg, unsigned long line, const char *a,
                size_t len)
{
	if (e->status)
		return false;
	if (memchr(a, '\0', len))
		return cd_body_fail(e, 400, "invalid_request",
		                    "line %lu: the address contains a NUL byte", line);
	return add(arg, line, a, len, e);
}

/* ---- bodies ---------------------------------------------------------------- */

/* A JSON array, or an object with "addresses"; the object's other
 * members into opts. */
static void read_json(cd_body_error *e, const char *body, size_t len, json_t *opts,
                      cd_body_add_fn add, void *arg)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *list = root;
	const char *key;
	json_t *v;

	if (!root) {
		cd_body_fail(e, 400, "invalid_json", "invalid JSON at line %d, column %d: %s",
		             jerr.line, jerr.column, jerr.text);
		return;
	}
	if (json_is_object(root)) {
		if (json_object_get(root, "address")) {
			cd_body_fail(e, 400, "invalid_request",
			             "a job takes \"addresses\" (an array), not \"address\"");
			goto out;
		}
		list = json_object_get(root, "addresses");
		json_object_foreach(root, key, v)
		{
			if (strcmp(key, "addresses") != 0)
				json_object_set(opts, key, v);
		}
	}
	if (!json_is_array(list)) {
		cd_body_fail(e, 400, "invalid_request",
		             "the body must be an array of addresses or {\"addresses\": [...]}");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *a = json_array_get(list, i);

		if (!json_is_string(a)) {
			cd_body_fail(e, 400, "invalid_request", "addresses[%zu] is not a string",
			             i);
			goto out;
		}
		if (!put(e, add, arg, i + 1, json_string_value(a), json_string_length(a)))
			goto out;
	}
out:
	json_decref(root);
}

/* JSON lines (a string or {"address": ...} each), or plain lines. */
static void read_lines(cd_body_error *e, const char *body, size_t len, bool json,
                       cd_body_add_fn add, void *arg)
{
	unsigned long line = 0;

	for (size_t at = 0; at < len && !e->status;) {
		const char *s = body + at, *nl = memchr(s, '\n', len - at);
		size_t n = nl ? (size_t)(nl - s) : len - at;

		at += n + (nl != NULL);
		line++;
		while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		while (n && (*s == ' ' || *s == '\t'))
			s++, n--;
		if (n == 0)
			continue;
		if (!json) {
			put(e, add, arg, line, s, n);
			continue;
		}
		json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL),
		       *a = v;

		if (json_is_object(v) && json_object_size(v) == 1)
			a = json_object_get(v, "address");
		if (!json_is_string(a))
			cd_body_fail(e, 400, "invalid_request",
			             "line %lu: expected a JSON string or {\"address\": \"...\"}",
			             line);
		else
			put(e, add, arg, line, json_string_value(a), json_string_length(a));
		json_decref(v);
	}
}

struct mem {
	const unsigned char *s;
	size_t len, pos;
};

static int mem_get(void *arg)
{
	struct mem *m = arg;

	return m->pos < m->len ? m->s[m->pos++] : EOF;
}

static bool field_is(const co_csv_record *r, size_t i, const char *name)
{
	return r->len[i] == strlen(name) && strncasecmp(r->buf + r->start[i], name, r->len[i]) == 0;
}

/* CSV: a header when ?column names one or no field of the first record
 * holds an '@'; the address column is `column`, else a usual name, else
 * the first. */
static void read_csv(cd_body_error *e, const char *body, size_t len, const char *column,
                     cd_body_add_fn add, void *arg)
{
	struct mem m = {(const unsigned char *)body, len, 0};
	co_csv *c = co_csv_new(mem_get, &m);
	co_csv_record r;
	size_t col = 0;
	int rc;

	if (!c) {
		cd_body_fail(e, 500, "internal", "out of memory");
		return;
	}
	for (bool first = true; !e->status && (rc = co_csv_next(c, &r)) > 0; first = false) {
		if (r.error) {
			cd_body_fail(e, 400, "invalid_request", "line %lu: %s", r.line, r.error);
			break;
		}
		if (first) {
			size_t end = r.start[r.nfields - 1] + r.len[r.nfields - 1];
			bool header = column || !memchr(r.buf, '@', end);

			if (header) {
				bool found = false;

				for (size_t k = 0;
				     !found && k < (column ? 1 : CO_CSV_NADDRESS_NAMES); k++)
					for (size_t i = 0; !found && i < r.nfields; i++)
						if (field_is(&r, i,
						             column ? column
						                    : co_csv_address_names[k]))
							col = i, found = true;
				if (column && !found)
					cd_body_fail(e, 400, "invalid_request",
					             "no column \"%.60s\" in the header (line %lu)",
					             column, r.line);
				continue;
			}
		}
		if (col < r.nfields)
			put(e, add, arg, r.line, r.buf + r.start[col], r.len[col]);
		else
			put(e, add, arg, r.line, "", 0);
	}
	if (!e->status && rc < 0)
		cd_body_fail(e, 400, "invalid_request", "%s",
		             errno == EFBIG ? "a CSV record over 64 KiB (a quote left open?)"
		                            : "out of memory reading the CSV");
	co_csv_free(c);
}

cd_body_kind cd_body_kind_of(const char *type)
{
	static const struct {
		const char *name;
		cd_body_kind kind;
	} types[] = {
	    {"application/json", CD_BODY_JSON},
	    {"application/x-www-form-urlencoded", CD_BODY_JSON},
	    {"application/x-ndjson", CD_BODY_NDJSON},
	    {"application/jsonl", CD_BODY_NDJSON},
	    {"application/jsonlines", CD_BODY_NDJSON},
	    {"text/csv", CD_BODY_CSV},
	    {"text/plain", CD_BODY_TEXT},
	};
	size_t n;

	if (!type || (n = strcspn(type, "; \t")) == 0)
		return CD_BODY_JSON;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i].name) == n && strncasecmp(type, types[i].name, n) == 0)
			return types[i].kind;
	return n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0 ? CD_BODY_JSON : CD_BODY_OTHER;
}

bool cd_body_read(cd_body_kind kind, const char *body, size_t len, const char *column, json_t *opts,
                  cd_body_add_fn add, void *arg, cd_body_error *e)
{
	json_t *mine = opts ? NULL : json_object();

	if (kind == CD_BODY_JSON)
		read_json(e, body, len, opts ? opts : mine, add, arg);
	else if (kind == CD_BODY_CSV)
		read_csv(e, body, len, column, add, arg);
	else if (kind == CD_BODY_NDJSON || kind == CD_BODY_TEXT)
		read_lines(e, body, len, kind == CD_BODY_NDJSON, add, arg);
	else
		cd_body_fail(e, 415, "unsupported_media_type", "not a kind of body a job takes");
	json_decref(mine);
	return e->status == 0;
}
