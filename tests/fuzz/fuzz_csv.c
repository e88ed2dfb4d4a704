/*
 * libFuzzer target: the CSV reader (src/common/csv.c) on any
 * bytes, read as from a file.  Every record has at least one field, its
 * fields lie inside its buffer and are at most CO_CSV_FIELDS_MAX, its
 * lines go forward; reading ends (0 or EFBIG) without reading past the
 * input.  A record read without an error, written back with
 * co_csv_put, reads back to the same fields.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fuzz.h"

struct src {
	const unsigned char *s;
	size_t len, pos, eofs;
};

static int get(void *arg)
{
	struct src *m = arg;

	if (m->pos < m->len)
		return m->s[m->pos++];
	m->eofs++;
	return EOF;
}

static void round_trip(const co_csv_record *r)
{
	char *out = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&out, &size);
	struct src m;
	co_csv *c;
	co_csv_record again;

	CHECK(fp != NULL);
	fputs("first\n", fp); /* so that a field beginning with a BOM is not the first */
	for (size_t i = 0; i < r->nfields; i++) {
		if (i)
			fputc(',', fp);
		co_csv_put(fp, r->buf + r->start[i], r->len[i]);
	}
	fputc('\n', fp);
	CHECK(fclose(fp) == 0);
	m = (struct src){(const unsigned char *)out, size, 0, 0};
	c = co_csv_new(get, &m);
	CHECK(c != NULL);
	CHECK(co_csv_next(c, &again) == 1);
	/* one empty field is written as an empty line, which is no record */
	if (r->nfields == 1 && r->len[0] == 0) {
		CHECK(co_csv_next(c, &again) == 0);
	} else {
		CHECK(co_csv_next(c, &again) == 1);
		CHECK(again.error == NULL && again.complete);
		CHECK(again.nfields == r->nfields);
		for (size_t i = 0; i < r->nfields; i++) {
			CHECK(again.len[i] == r->len[i]);
			CHECK(memcmp(again.buf + again.start[i], r->buf + r->start[i], r->len[i]) ==
			      0);
		}
		CHECK(co_csv_next(c, &again) == 0);
	}
	co_csv_free(c);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src m = {data, size, 0, 0};
	co_csv *c = co_csv_new(get, &m);
	co_csv_record r;
	unsigned long prev_last = 0;
	int got;

	if (!c)
		return 0;
	while ((got = co_csv_next(c, &r)) > 0) {
		size_t total = 0;

		CHECK(r.nfields >= 1 && r.nfields <= CO_CSV_FIELDS_MAX);
		CHECK(r.line > prev_last && r.last_line >= r.line);
		prev_last = r.last_line;
		for (size_t i = 0; i < r.nfields; i++) {
			CHECK(r.start[i] == total); /* one after another */
			total += r.len[i];
		}
		CHECK(total <= CO_CSV_RECORD_MAX);
		if (!r.complete)
			CHECK(m.pos == m.len);
		if (!r.error && r.complete)
			round_trip(&r);
	}
	CHECK(got == 0 || errno == EFBIG);
	CHECK(m.pos <= m.len && m.eofs <= 3);
	co_csv_free(c);
	return 0;
}
