/* The options an HTTP request may set for its own verifications
 * (http_int.h): within what [http] request_options opens, or refused by
 * name. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "http_int.h"
#include "option_table.h"

/* The names of the [proxy] sections HTTP clients may ask for, or "none". */
static const char *offered_proxies(const cd_config *c, char *out, size_t len)
{
	out[0] = '\0';
	for (const cd_proxy *px = c->proxies; px; px = px->next) {
		size_t k = strlen(out), n = strlen(px->name);
		if (!px->http)
			continue;
		if (k + n + 3 > len)
			break;
		if (k)
			memcpy(out + k, ", ", 2), k += 2;
		memcpy(out + k, px->name, n + 1);
	}
	return out[0] ? out : "none";
}

/* "proxy": a [proxy NAME] offered to HTTP clients. */
static bool request_proxy(const cd_config *c, json_t *v, callout_options *o, char *msg, size_t len)
{
	const cd_proxy *px = json_is_string(v) ? cd_config_proxy(c, json_string_value(v)) : NULL;
	char names[120];

	if (px && px->http) {
		o->proxy_name = px->name;
		return true;
	}
	snprintf(msg, len, "\"proxy\": expected the name of a [proxy NAME] this server offers (%s)",
	         offered_proxies(c, names, sizeof(names)));
	return false;
}

/* A text option (sender, helo...): the library's judgement of it. */
static bool request_text(const co_optdef *d, json_t *v, callout_options *o, char *msg, size_t len)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	callout_options one;

	if (!s || json_string_length(v) > 512 || strlen(s) != json_string_length(v)) {
		snprintf(msg, len, "\"%s\": expected %s (a string)", d->name, d->arg);
		return false;
	}
	callout_options_init(&one);
	memcpy((char *)&one + d->offset, &s, sizeof(s));
	if (callout_options_check(&one) != CALLOUT_OK) {
		snprintf(msg, len, "\"%s\": not a valid %s: '%.80s'", d->name, d->arg, s);
		return false;
	}
	memcpy((char *)o + d->offset, &s, sizeof(s));
	return true;
}

/* A number, duration or yes/no; numbers never above calloutd's own. */
static bool request_value(const co_optdef *d, json_t *v, callout_options *o,
                          const callout_options *mine, char *msg, size_t len)
{
	char text[64], why[160], cap[64];
	const char *bad;

	if (json_is_string(v) && json_string_length(v) < sizeof(text))
		snprintf(text, sizeof(text), "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(text, sizeof(text), "%s", json_is_true(v) ? "yes" : "no");
	else
		text[0] = '\0';
	if ((bad = co_opt_parse(d, text, o, why, sizeof(why)))) {
		snprintf(msg, len, "\"%s\": %s", d->name, bad);
		return false;
	}
	if (d->type == CO_OPT_MS || (d->type == CO_OPT_COUNT && strcmp(d->name, "port") != 0)) {
		unsigned asked, given;

		memcpy(&asked, (const char *)o + d->offset, sizeof(asked));
		memcpy(&given, (const char *)mine + d->offset, sizeof(given));
		if (asked > given) {
			snprintf(msg, len, "\"%s\": at most %s here ([%s] %s)", d->name,
			         co_opt_format(d, mine, cap, sizeof(cap)), d->section, d->name);
			return false;
		}
	}
	return true;
}

/*
 * The options a request may carry besides its addresses: those of the
 * option table marked CO_OPT_REQUEST that [http] request_options opens
 * (numbers never beyond calloutd's own value), "transcript" if opened,
 * and "proxy": a [proxy NAME] offered to HTTP clients.  Any other field
 * is refused by name, never ignored.  false with msg when the request
 * cannot be served as asked.  Text values point into root.
 */
bool cd_http_options(const cd_config *c, json_t *root, callout_options *o, bool *has,
                     bool *transcript, char *msg, size_t len)
{
	callout_options mine;
	const char *key;
	json_t *v;

	cd_config_options(c, o);
	mine = *o;
	json_object_foreach(root, key, v)
	{
		const co_optdef *d = NULL;
		bool ok;

		if (strcmp(key, "address") == 0 || strcmp(key, "addresses") == 0)
			continue;
		if (strcmp(key, "proxy") == 0) {
			ok = request_proxy(c, v, o, msg, len);
		} else if (strcmp(key, "transcript") != 0 && !(d = co_opt_find(NULL, key))) {
			snprintf(msg, len, "unknown field \"%.60s\"", key);
			return false;
		} else if (d && !(d->where & CO_OPT_REQUEST)) {
			snprintf(msg, len,
			         "\"%s\" cannot be set per request (it is [%s] %s in "
			         "calloutd.conf)",
			         key, d->section, d->name);
			return false;
		} else if (!cd_request_option_open(c, key)) {
			snprintf(msg, len,
			         "\"%s\" is not open to requests here (the operator may add it to "
			         "[http] request_options)",
			         key);
			return false;
		} else if (!d) {
			ok = json_is_boolean(v);
			*transcript = json_is_true(v);
			if (!ok)
				snprintf(msg, len, "\"transcript\": expected true or false");
		} else if (d->type == CO_OPT_TEXT) {
			ok = request_text(d, v, o, msg, len);
		} else {
			ok = request_value(d, v, o, &mine, msg, len);
		}
		if (!ok)
			return false;
		*has = true;
	}
	if (*transcript)
		o->flags |= CALLOUT_F_TRANSCRIPT;
	return true;
}

bool cd_http_job_options(void *arg, json_t *root, callout_options *o, bool *has, char *msg,
                         size_t len)
{
	const cd_daemon *d = arg;
	bool transcript = false;

	if (!cd_http_options(d->cfg, root, o, has, &transcript, msg, len))
		return false;
	if (transcript) {
		snprintf(msg, len, "\"transcript\": a job's results do not keep the SMTP dialogue");
		return false;
	}
	return true;
}
