/* A doctor's report as JSON (doctor_json.h). */
#include "doctor_json.h"
#include "result_json.h"

json_t *co_doctor_json(const callout_doctor_report *rep)
{
	json_t *o = json_object(), *checks = json_array(), *lists = json_array();
	bool ok = o && checks && lists;

	ok = ok && co_json_put(o, "target", co_json_cstr(rep->target)) &&
	     co_json_put(o, "mx", co_json_cstr(rep->mx)) &&
	     co_json_put(o, "ip", co_json_cstr(rep->ip)) &&
	     co_json_put(o, "port", json_integer(rep->port)) &&
	     co_json_put(o, "egress", co_json_cstr(rep->egress)) &&
	     co_json_put(o, "helo", co_json_cstr(rep->helo)) &&
	     co_json_put(o, "ptr", co_json_cstr(rep->ptr)) &&
	     co_json_put(o, "result", json_string(callout_doctor_level_name(rep->worst))) &&
	     co_json_put(o, "ms", json_integer(rep->ms));
	for (unsigned i = 0; ok && i < rep->nchecks; i++) {
		const callout_doctor_check *c = &rep->checks[i];

		ok = json_array_append_new(checks,
		                           json_pack("{s:s, s:s, s:o*}", "check", c->name, "level",
		                                     callout_doctor_level_name(c->level), "detail",
		                                     co_json_cstr(c->detail))) == 0;
	}
	for (unsigned i = 0; ok && i < rep->nlistings; i++) {
		const callout_doctor_listing *l = &rep->listings[i];
		json_t *listed = l->listed < 0 ? json_null() : json_boolean(l->listed > 0);

		ok =
		    json_array_append_new(lists, json_pack("{s:o*, s:o*, s:o*}", "zone",
		                                           co_json_cstr(l->zone), "listed", listed,
		                                           "detail", co_json_cstr(l->detail))) == 0;
	}
	if (ok) {
		ok = co_json_put(o, "checks", checks);
		checks = NULL;
	}
	if (ok) {
		ok = co_json_put(o, "dnsbl", lists);
		lists = NULL;
	}
	if (ok)
		return o;
	json_decref(checks);
	json_decref(lists);
	json_decref(o);
	return NULL;
}
