/*
 * JSON for the front ends: strings of any bytes made valid UTF-8, and a
 * verification result as an object -- the same members in the same order
 * for `callout check --json` and calloutd's HTTP API.
 */
#ifndef CO_RESULT_JSON_H
#define CO_RESULT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <callout/callout.h>

/* Length (1-4) of the well-formed UTF-8 sequence at s, with its code
 * point in *cp; 0 when the bytes are not well-formed UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF included). */
size_t co_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);

/* A JSON string for len bytes of s (or the C string s, NULL as ""); each
 * byte that is not part of well-formed UTF-8 becomes U+FFFD.  NULL when
 * out of memory. */
json_t *co_json_str(const char *s, size_t len);
json_t *co_json_cstr(const char *s);

/* Add key: value to o; value is stolen, NULL counts as a failure. */
bool co_json_put(json_t *o, const char *key, json_t *value);

/* "accepted", "refused", or NULL when unknown (callout_result.postmaster). */
const char *co_postmaster_name(callout_postmaster pm);

/*
 * The result of verifying input (len bytes as given): address,
 * normalized (only when the library's form differs), verdict, reason,
 * stage, code, enhanced, text, mx, ip, ms, catch_all, tls, cached, age
 * (only when cached), from_fact (and the fact's members with it),
 * postmaster (only when known) and, when transcript, the transcript (null
 * when none was kept).  NULL when out of memory.
 */
json_t *co_result_json(const char *input, size_t len, const callout_result *res, bool transcript);

#endif
