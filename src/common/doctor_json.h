/*
 * A doctor's report (callout_doctor_report) as JSON: the same object for
 * `callout doctor --json` and calloutd's GET /v1/doctor.
 */
#ifndef CO_DOCTOR_JSON_H
#define CO_DOCTOR_JSON_H

#include <jansson.h>

#include <callout/callout.h>

/*
 * {"target", "mx", "ip", "port", "egress", "helo", "ptr", "result"
 * (pass/warn/fail: the worst level), "ms", "checks": [{"check", "level",
 * "detail"}...] in the library's order, "dnsbl": [{"zone", "listed"
 * (true, false or null: could not check), "detail"}...]}.  NULL when out
 * of memory.
 */
json_t *co_doctor_json(const callout_doctor_report *rep);

#endif
