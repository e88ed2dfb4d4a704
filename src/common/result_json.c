/* JSON for the front ends (see result_json.h). */
#include <stdlib.h>
#include <string.h>

#include "result_json.h"

size_t co_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

json_t *co_json_str(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char *copy, *w;
	json_t *j;
	size_t i;
	uint32_t cp;

	for (i = 0; i < len;) {
		size_t n = co_utf8_seq(s + i, len - i, &cp);

		if (n == 0)
			break;
		i += n;
	}
	if (i == len)
		return json_stringn(str, len);
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	copy = malloc(len * 3 + 1);
	if (!copy)
		return NULL;
	w = copy;
	for (i = 0; i < len;) {
		size_t n = co_utf8_seq(s + i, len - i, &cp);

		if (n == 0) {
			*w++ = 0xef;
			*w++ = 0xbf;
			*w++ = 0xbd;
			i++;
		} else {
			memcpy(w, s + i, n);
			w += n;
			i += n;
		}
	}
	j = json_stringn((const char *)copy, (size_t)(w - copy));
	free(copy);
	return j;
}

json_t *co_json_cstr(const char *s)
{
	return s ? co_json_str(s, strlen(s)) : json_string("");
}

bool co_json_put(json_t *o, const char *key, json_t *value)
{
	return value && json_object_set_new(o, key, value) == 0;
}

/* "a b c" as ["a", "b", "c"]. */
static json_t *mx_hosts_json(const char *hosts)
{
	json_t *a = json_array();

	for (const char *p = hosts; a && *p;) {
		size_t n = strcspn(p, " ");
		if (n && json_array_append_new(a, co_json_str(p, n)) != 0) {
			json_decref(a);
			return NULL;
		}
		p += n + (p[n] == ' ');
	}
	return a;
}

const char *co_postmaster_name(callout_postmaster pm)
{
	switch (pm) {
	case CALLOUT_POSTMASTER_ACCEPTED:
		return "accepted";
	case CALLOUT_POSTMASTER_REFUSED:
		return "refused";
	default:
		return NULL;
	}
}

json_t *co_result_json(const char *input, size_t len, const callout_result *res, bool transcript)
{
	json_t *j = json_object();
	bool ok = j != NULL;

	ok = ok && co_json_put(j, "address", co_json_str(input, len));
	/* what the library made of it (domain lower-cased, IDNA...); for a
	 * syntax error it is only a sanitised echo, so leave it out */
	if (ok && res->reason != CALLOUT_R_SYNTAX && res->address && res->address[0] &&
	    (strlen(res->address) != len || memcmp(res->address, input, len) != 0))
		ok = co_json_put(j, "normalized", co_json_cstr(res->address));
	ok = ok && co_json_put(j, "verdict", json_string(callout_verdict_name(res->verdict)));
	ok = ok && co_json_put(j, "reason", json_string(callout_reason_name(res->reason)));
	ok = ok && co_json_put(j, "stage", json_string(callout_stage_name(res->stage)));
	ok = ok && co_json_put(j, "code", json_integer(res->code));
	ok = ok && co_json_put(j, "enhanced", co_json_cstr(res->enhanced));
	ok = ok && co_json_put(j, "text", co_json_cstr(res->text));
	ok = ok && co_json_put(j, "mx", co_json_cstr(res->mx));
	ok = ok && co_json_put(j, "ip", co_json_cstr(res->ip));
	if (ok && res->mx_hosts && res->mx_hosts[0])
		ok = co_json_put(j, "mx_hosts", mx_hosts_json(res->mx_hosts));
	ok = ok && co_json_put(j, "ms", json_integer(res->ms));
	ok = ok && co_json_put(j, "catch_all", json_boolean(res->catch_all));
	ok = ok && co_json_put(j, "tls", json_boolean(res->tls));
	ok = ok && co_json_put(j, "cached", json_boolean(res->cached));
	if (ok && res->cached)
		ok = co_json_put(j, "age", json_integer(res->age));
	if (ok && res->recheck_in) /* a greylisting re-check is pending */
		ok = co_json_put(j, "recheck_in", json_integer(res->recheck_in));
	ok = ok && co_json_put(j, "from_fact", json_boolean(res->from_fact));
	if (ok && res->from_fact) {
		ok = co_json_put(j, "fact", co_json_cstr(res->fact)) &&
		     co_json_put(j, "fact_stage", json_string(callout_stage_name(res->stage))) &&
		     co_json_put(j, "fact_learned", json_integer(res->fact_learned));
	}
	if (ok && co_postmaster_name(res->postmaster))
		ok = co_json_put(j, "postmaster", json_string(co_postmaster_name(res->postmaster)));
	if (ok && transcript)
		ok = co_json_put(j, "transcript",
		                 res->transcript ? co_json_cstr(res->transcript) : json_null());
	if (!ok) {
		json_decref(j);
		return NULL;
	}
	return j;
}
