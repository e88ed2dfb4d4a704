/*
 * One result, as a human line or as one JSON object a line.
 *
 * Reply text from servers is already printable ASCII (the library
 * sanitises it), but the address comes from the user or a file and may
 * hold any bytes: nothing reaches the terminal unescaped, and JSON strings
 * are always valid UTF-8.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

size_t cli_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
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

/* Code points that must not reach a terminal raw: C1 controls, invisible
 * and bidirectional formatting characters ("Trojan Source"). */
static bool cp_unsafe(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || (c >= 0x200b && c <= 0x200f) ||
	       (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c == 0xfeff;
}

void cli_fput_escaped(FILE *fp, const char *str, size_t len, bool quoted)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n;

		if (c >= 0x20 && c < 0x7f) {
			if (c == '\\' || (quoted && c == '"'))
				putc_unlocked('\\', fp);
			putc_unlocked(c, fp);
			i++;
			continue;
		}
		if (c == '\t' || c == '\n' || c == '\r') {
			putc_unlocked('\\', fp);
			putc_unlocked(c == '\t' ? 't' : c == '\n' ? 'n' : 'r', fp);
			i++;
			continue;
		}
		n = c >= 0x80 ? cli_utf8_seq(s + i, len - i, &cp) : 0;
		if (n == 0) {
			fprintf(fp, "\\x%02X", c);
			i++;
		} else if (cp_unsafe(cp)) {
			fprintf(fp, "\\u%04X", (unsigned)cp);
			i += n;
		} else {
			fwrite(s + i, 1, n, fp);
			i += n;
		}
	}
}

json_t *cli_json_str(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char *copy, *w;
	json_t *j;
	size_t i;
	uint32_t cp;

	for (i = 0; i < len;) {
		size_t n = cli_utf8_seq(s + i, len - i, &cp);

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
		size_t n = cli_utf8_seq(s + i, len - i, &cp);

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

json_t *cli_json_cstr(const char *s)
{
	return s ? cli_json_str(s, strlen(s)) : json_string("");
}

bool cli_json_put(json_t *o, const char *key, json_t *value)
{
	return value && json_object_set_new(o, key, value) == 0;
}

static int print_json(const cli_output *o, const char *input, size_t len, const callout_result *res)
{
	json_t *j = json_object();
	bool ok = j != NULL;
	int rc;

	ok = ok && cli_json_put(j, "address", cli_json_str(input, len));
	/* what the library made of it (domain lower-cased, IDNA...); for a
	 * syntax error it is only a sanitised echo, so leave it out */
	if (ok && res->reason != CALLOUT_R_SYNTAX && res->address && res->address[0] &&
	    (strlen(res->address) != len || memcmp(res->address, input, len) != 0))
		ok = cli_json_put(j, "normalized", cli_json_cstr(res->address));
	ok = ok && cli_json_put(j, "verdict", json_string(callout_verdict_name(res->verdict)));
	ok = ok && cli_json_put(j, "reason", json_string(callout_reason_name(res->reason)));
	ok = ok && cli_json_put(j, "stage", json_string(callout_stage_name(res->stage)));
	ok = ok && cli_json_put(j, "code", json_integer(res->code));
	ok = ok && cli_json_put(j, "enhanced", cli_json_cstr(res->enhanced));
	ok = ok && cli_json_put(j, "text", cli_json_cstr(res->text));
	ok = ok && cli_json_put(j, "mx", cli_json_cstr(res->mx));
	ok = ok && cli_json_put(j, "ip", cli_json_cstr(res->ip));
	ok = ok && cli_json_put(j, "ms", json_integer(res->ms));
	ok = ok && cli_json_put(j, "catch_all", json_boolean(res->catch_all));
	ok = ok && cli_json_put(j, "tls", json_boolean(res->tls));
	ok = ok && cli_json_put(j, "cached", json_boolean(res->cached));
	if (ok && res->cached)
		ok = cli_json_put(j, "age", json_integer(res->age));
	if (ok && o->transcript)
		ok = cli_json_put(j, "transcript",
		         res->transcript ? cli_json_cstr(res->transcript) : json_null());
	if (!ok) {
		json_decref(j);
		return ENOMEM;
	}
	rc = json_dumpf(j, o->fp, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (rc != 0 && !ferror(o->fp))
		return ENOMEM;
	putc_unlocked('\n', o->fp);
	return 0;
}

/* "45s", "12m", "5h", "3d". */
static void print_age(FILE *fp, unsigned age)
{
	if (age < 120)
		fprintf(fp, "%us", age);
	else if (age < 120 * 60)
		fprintf(fp, "%um", age / 60);
	else if (age < 48 * 3600)
		fprintf(fp, "%uh", age / 3600);
	else
		fprintf(fp, "%ud", age / 86400);
}

static void print_cstr(FILE *fp, const char *s, bool quoted)
{
	if (s)
		cli_fput_escaped(fp, s, strlen(s), quoted);
}

static bool nonempty(const char *s)
{
	return s && *s;
}

/*
 * alice@example.com: valid (accepted) 250 2.1.5 via mx.example.com [192.0.2.1] 412 ms
 * x@example.com: invalid (mailbox_unknown) 550 5.1.1 "User unknown" at rcpt via ... 380 ms
 */
static void print_human(const cli_output *o, const char *input, size_t len,
                        const callout_result *res)
{
	FILE *fp = o->fp;
	const char *sep = " (";

	cli_fput_escaped(fp, input, len, false);
	fprintf(fp, ": %s (%s)", callout_verdict_name(res->verdict),
	        callout_reason_name(res->reason));
	if (res->code)
		fprintf(fp, " %d", res->code);
	if (nonempty(res->enhanced)) {
		putc_unlocked(' ', fp);
		print_cstr(fp, res->enhanced, false);
	}
	if (res->verdict != CALLOUT_VALID && nonempty(res->text)) {
		fputs(" \"", fp);
		print_cstr(fp, res->text, true);
		putc_unlocked('"', fp);
	}
	if (res->verdict != CALLOUT_VALID && res->stage != CALLOUT_STAGE_NONE &&
	    res->stage != CALLOUT_STAGE_SYNTAX)
		fprintf(fp, " at %s", callout_stage_name(res->stage));
	if (nonempty(res->mx) || nonempty(res->ip)) {
		fputs(" via", fp);
		/* an IP literal or a route to an IP: no name to show */
		if (nonempty(res->mx) && !(nonempty(res->ip) && strcmp(res->mx, res->ip) == 0)) {
			putc_unlocked(' ', fp);
			print_cstr(fp, res->mx, false);
		}
		if (nonempty(res->ip)) {
			fputs(" [", fp);
			print_cstr(fp, res->ip, false);
			putc_unlocked(']', fp);
		}
	}
	fprintf(fp, " %u ms", res->ms);
	if (res->tls) {
		fprintf(fp, "%stls", sep);
		sep = ", ";
	}
	if (res->catch_all && res->reason != CALLOUT_R_CATCH_ALL) {
		fprintf(fp, "%scatch-all", sep);
		sep = ", ";
	}
	if (res->cached) {
		fprintf(fp, "%scached ", sep);
		print_age(fp, res->age);
		fputs(" ago", fp);
		sep = ", ";
	}
	if (sep[0] == ',')
		putc_unlocked(')', fp);
	putc_unlocked('\n', fp);

	if (o->transcript && res->transcript) {
		const char *line = res->transcript;

		while (*line) {
			const char *nl = strchr(line, '\n');
			size_t n = nl ? (size_t)(nl - line) : strlen(line);

			if (n > 0 && line[n - 1] == '\r')
				n--;
			fputs("    ", fp);
			cli_fput_escaped(fp, line, n, false);
			putc_unlocked('\n', fp);
			if (!nl)
				break;
			line = nl + 1;
		}
	}
}

int cli_output_result(const cli_output *o, const char *input, size_t len, const callout_result *res)
{
	int rc = 0;

	errno = 0;
	if (o->json)
		rc = print_json(o, input, len, res);
	else
		print_human(o, input, len, res);
	if (fflush(o->fp) != 0 || ferror(o->fp))
		return errno ? errno : EIO;
	return rc;
}
