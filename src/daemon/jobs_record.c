/* A job's stored record (jobs_int.h): the API's object, and the fields
 * the runner needs to go on, as JSON text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"

const char *const cd_job_webhook_names[4] = {"none", "pending", "delivered", "failed"};

bool cd_job_unfinished(const cd_jobent *j)
{
	return j->state == CD_JOB_QUEUED || j->state == CD_JOB_RUNNING;
}

static json_t *counts_json(const cd_jobent *j)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "valid", (json_int_t)j->counts[CALLOUT_VALID],
	                 "invalid", (json_int_t)j->counts[CALLOUT_INVALID], "unknown",
	                 (json_int_t)j->counts[CALLOUT_UNKNOWN], "tempfail",
	                 (json_int_t)j->counts[CALLOUT_TEMPFAIL]);
}

json_t *cd_job_json(const cd_jobent *j)
{
	json_t *o =
	    json_pack("{s:s,s:s,s:I,s:o,s:I,s:I,s:o}", "id", j->id, "state",
	              cd_job_state_name(j->state), "created", (json_int_t)j->created, "finished",
	              j->finished ? json_integer(j->finished) : json_null(), "total",
	              (json_int_t)j->total, "done", (json_int_t)j->done, "counts", counts_json(j));

	if (o && j->rechecking)
		json_object_set_new(o, "pending_recheck", json_integer(j->rechecking));
	if (o && j->error[0])
		json_object_set_new(o, "error", json_string(j->error));
	if (o && j->webhook)
		json_object_set_new(o, "webhook",
		                    json_string(cd_job_webhook_names[j->webhook_state]));
	return o;
}

/* The stored record: the API's object and what the runner needs. */
char *cd_job_record(const cd_jobent *j, size_t *len)
{
	json_t *o = cd_job_json(j);
	char *s;

	if (!o)
		return NULL;
	if (j->options)
		json_object_set(o, "options", j->options);
	if (j->webhook) {
		json_object_set_new(o, "webhook_url", json_string(j->webhook));
		json_object_set_new(o, "webhook_ip", json_string(j->webhook_ip));
	}
	if (j->deleting)
		json_object_set_new(o, "deleting", json_true());
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s)
		*len = strlen(s);
	return s;
}

/* The record's fields into j; false when it does not parse. */
bool cd_job_apply(cd_jobent *j, const char *text, size_t len)
{
	json_t *o = json_loadb(text, len, 0, NULL), *c;
	const char *state, *url, *ip, *wh, *err;

	if (!o)
		return false;
	state = json_string_value(json_object_get(o, "state"));
	for (unsigned i = 0; state && i < CD_JOB_NSTATES; i++)
		if (strcmp(state, cd_job_state_name((cd_job_state)i)) == 0)
			j->state = (cd_job_state)i;
	j->created = json_integer_value(json_object_get(o, "created"));
	j->finished = json_integer_value(json_object_get(o, "finished"));
	j->total = (uint64_t)json_integer_value(json_object_get(o, "total"));
	j->done = (uint64_t)json_integer_value(json_object_get(o, "done"));
	c = json_object_get(o, "counts");
	j->counts[CALLOUT_VALID] = (uint64_t)json_integer_value(json_object_get(c, "valid"));
	j->counts[CALLOUT_INVALID] = (uint64_t)json_integer_value(json_object_get(c, "invalid"));
	j->counts[CALLOUT_UNKNOWN] = (uint64_t)json_integer_value(json_object_get(c, "unknown"));
	j->counts[CALLOUT_TEMPFAIL] = (uint64_t)json_integer_value(json_object_get(c, "tempfail"));
	err = json_string_value(json_object_get(o, "error"));
	snprintf(j->error, sizeof(j->error), "%s", err ? err : "");
	json_decref(j->options);
	j->options = NULL;
	if ((c = json_object_get(o, "options")) && json_is_object(c))
		j->options = json_incref(c);
	url = json_string_value(json_object_get(o, "webhook_url"));
	ip = json_string_value(json_object_get(o, "webhook_ip"));
	wh = json_string_value(json_object_get(o, "webhook"));
	free(j->webhook);
	j->webhook = NULL;
	j->webhook_state = WH_NONE;
	if (url && ip && (j->webhook = strdup(url))) {
		snprintf(j->webhook_ip, sizeof(j->webhook_ip), "%s", ip);
		for (unsigned i = 0; wh && i < 4; i++)
			if (strcmp(wh, cd_job_webhook_names[i]) == 0)
				j->webhook_state = (int)i;
	}
	j->deleting = json_is_true(json_object_get(o, "deleting"));
	json_decref(o);
	return true;
}
