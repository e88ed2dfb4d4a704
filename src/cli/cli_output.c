/*
 * One result, as a human line, one JSON object a line or one CSV row.
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
#include "result_json.h"

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
		n = c >= 0x80 ? co_utf8_seq(s + i, len - i, &cp) : 0;
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

static int print_json(const cli_output *o, const cli_origin *from, const char *input, size_t len,
                      const callout_result *res)
{
	json_t *j = co_result_json(input, len, res, o->transcript);
	int rc;

	if (!j || !co_json_put(j, "line", json_integer((json_int_t)from->line))) {
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
static void print_human(const cli_output *o, const cli_origin *from, const char *input, size_t len,
                        const callout_result *res)
{
	FILE *fp = o->fp;
	const char *sep = " (";

	if (from->file) { /* as grep -Hn */
		cli_fput_escaped(fp, from->file, strlen(from->file), false);
		fprintf(fp, ":%lu: ", from->line);
	}
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
	if (co_postmaster_name(res->postmaster)) {
		fprintf(fp, "%spostmaster %s", sep, co_postmaster_name(res->postmaster));
		sep = ", ";
	}
	if (res->cached) {
		if (res->from_fact)
			fprintf(fp, "%sfrom the domain fact %s, learned ", sep, res->fact);
		else
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

static void csv_cstr(FILE *fp, const char *s)
{
	if (s)
		co_csv_put(fp, s, strlen(s));
}

/*
 * address,verdict,reason,code,enhanced,text,mx,ip,cached,from_fact,ms,line
 *
 * The text comes from a server we do not control: when it begins with a
 * character a spreadsheet takes for a formula (= + - @ and tab), a quote
 * goes first (OWASP's advice on CSV injection).
 */
static void print_csv(const cli_output *o, const cli_origin *from, const char *input, size_t len,
                      const callout_result *res)
{
	FILE *fp = o->fp;
	const char *text = res->text ? res->text : "";

	if (from->kept)
		fwrite(from->kept, 1, from->kept_len, fp);
	co_csv_put(fp, input, len);
	fprintf(fp, ",%s,%s,", callout_verdict_name(res->verdict),
	        callout_reason_name(res->reason));
	if (res->code)
		fprintf(fp, "%d", res->code);
	putc_unlocked(',', fp);
	csv_cstr(fp, res->enhanced);
	putc_unlocked(',', fp);
	if (strchr("=+-@\t", text[0]) && text[0]) {
		char *guarded = malloc(strlen(text) + 2);

		if (guarded) {
			guarded[0] = '\'';
			strcpy(guarded + 1, text);
			csv_cstr(fp, guarded);
			free(guarded);
		}
	} else {
		csv_cstr(fp, text);
	}
	putc_unlocked(',', fp);
	csv_cstr(fp, res->mx);
	putc_unlocked(',', fp);
	csv_cstr(fp, res->ip);
	fprintf(fp, ",%s,%s,%u,%lu\n", res->cached ? "true" : "false",
	        res->from_fact ? "true" : "false", res->ms, from->line);
}

int cli_output_csv_header(const cli_output *o, const co_csv_record *hdr)
{
	errno = 0;
	for (size_t i = 0; i < o->columns; i++) {
		if (hdr && i < hdr->nfields)
			co_csv_put(o->fp, hdr->buf + hdr->start[i], hdr->len[i]);
		else
			fprintf(o->fp, "column%zu", i + 1);
		putc_unlocked(',', o->fp);
	}
	for (size_t i = 0; i < CO_CSV_NCOLUMNS; i++)
		fprintf(o->fp, "%s%c", co_csv_columns[i], i + 1 < CO_CSV_NCOLUMNS ? ',' : '\n');
	if (fflush(o->fp) != 0 || ferror(o->fp))
		return errno ? errno : EIO;
	return 0;
}

char *cli_output_csv_kept(const cli_output *o, const co_csv_record *rec, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&buf, &size);
	size_t n = rec ? rec->nfields : 0;

	if (!fp)
		return NULL;
	for (size_t i = 0; i < n || i < o->columns; i++) {
		if (i < n)
			co_csv_put(fp, rec->buf + rec->start[i], rec->len[i]);
		putc_unlocked(',', fp);
	}
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	*len = size;
	return buf;
}

int cli_output_result(const cli_output *o, const cli_origin *from, const char *input, size_t len,
                      const callout_result *res)
{
	int rc = 0;

	errno = 0;
	if (o->format == CLI_FMT_JSON)
		rc = print_json(o, from, input, len, res);
	else if (o->format == CLI_FMT_CSV)
		print_csv(o, from, input, len, res);
	else
		print_human(o, from, input, len, res);
	if (fflush(o->fp) != 0 || ferror(o->fp))
		return errno ? errno : EIO;
	return rc;
}
