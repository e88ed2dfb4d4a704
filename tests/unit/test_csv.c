/*
 * The CSV reader and writer of callout(1) (src/common/csv.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

struct src {
	const char *s;
	size_t len, pos;
};

static int get(void *arg)
{
	struct src *m = arg;

	return m->pos < m->len ? (unsigned char)m->s[m->pos++] : EOF;
}

/* Parse input (len bytes) and describe every record: fields joined by
 * '|', then "@line-last_line", "!" when incomplete, "#error". */
static char *describe_n(const char *input, size_t len, int *last)
{
	struct src m = {input, len, 0};
	co_csv *c = co_csv_new(get, &m);
	char *out = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&out, &size);
	co_csv_record r;
	int got;

	assert_non_null(c);
	assert_non_null(fp);
	while ((got = co_csv_next(c, &r)) > 0) {
		for (size_t i = 0; i < r.nfields; i++) {
			if (i)
				fputc('|', fp);
			fwrite(r.buf + r.start[i], 1, r.len[i], fp);
		}
		fprintf(fp, "@%lu-%lu%s", r.line, r.last_line, r.complete ? "" : "!");
		if (r.error)
			fprintf(fp, "#%s", r.error);
		fputc('\n', fp);
	}
	*last = got;
	fclose(fp);
	co_csv_free(c);
	return out;
}

static void expect(const char *input, const char *want)
{
	int last;
	char *got = describe_n(input, strlen(input), &last);

	assert_int_equal(last, 0);
	assert_string_equal(got, want);
	free(got);
}

static void test_plain(void **state)
{
	(void)state;
	expect("a,b,c\n1,2,3\n", "a|b|c@1-1\n1|2|3@2-2\n");
	expect("a,b\r\n1,2\r\n", "a|b@1-1\n1|2@2-2\n");
	expect("a,,\n", "a||@1-1\n");
	expect("last,no,newline", "last|no|newline@1-1!\n");
	expect("", "");
}

static void test_quotes(void **state)
{
	(void)state;
	expect("\"Smith, John\",x\n", "Smith, John|x@1-1\n");
	expect("\"say \"\"hi\"\"\",2\n", "say \"hi\"|2@1-1\n");
	expect("\"two\nlines\",x\nnext\n", "two\nlines|x@1-2\nnext@3-3\n");
	expect("\"crlf\r\ninside\"\r\n", "crlf\r\ninside@1-2\n");
	expect("\"\"\n", "@1-1\n");         /* a quoted empty field is a record */
	expect("a\"b,c\n", "a\"b|c@1-1\n"); /* a quote inside an unquoted field: data */
}

static void test_blank_lines_and_bom(void **state)
{
	(void)state;
	expect("\n\na\n\r\nb\n", "a@3-3\nb@5-5\n");
	expect("\xef\xbb\xbf"
	       "email\nx@y\n",
	       "email@1-1\nx@y@2-2\n");
	expect("\xef\xbb"
	       "z\n",
	       "\xef\xbbz@1-1\n"); /* not a whole mark: data */
	expect("\xef\n", "\xef@1-1\n");
}

static void test_malformed(void **state)
{
	(void)state;
	expect("\"ab\"c,d\nok\n", "abc|d@1-1#text after a closing quote\nok@2-2\n");
	expect("\"open\nnever closed", "open\nnever closed@1-2!#a quoted field is not closed\n");
	expect("ok\n\"open\n", "ok@1-1\nopen\n@2-2!#a quoted field is not closed\n");
	{
		int last;
		char *got = describe_n("a\0b,c\n", 6, &last);

		assert_int_equal(last, 0);
		assert_memory_equal(got, "a\0b|c@1-1#NUL byte in the record\n", 33);
		free(got);
	}
}

static void test_limits(void **state)
{
	size_t n = CO_CSV_RECORD_MAX + 10;
	char *big = malloc(n + 8);
	int last;
	char *got;

	(void)state;
	assert_non_null(big);
	/* one field too long: the input ends with EFBIG */
	memcpy(big, "ok\n\"", 4);
	memset(big + 4, 'x', n - 4);
	errno = 0;
	got = describe_n(big, n, &last);
	assert_int_equal(last, -1);
	assert_int_equal(errno, EFBIG);
	assert_string_equal(got, "ok@1-1\n");
	free(got);
	/* too many fields: the first ones are kept, the record flagged */
	n = 0;
	for (int i = 0; i < CO_CSV_FIELDS_MAX + 5; i++)
		big[n++] = ',';
	big[n++] = '\n';
	{
		struct src m = {big, n, 0};
		co_csv *c = co_csv_new(get, &m);
		co_csv_record r;

		assert_int_equal(co_csv_next(c, &r), 1);
		assert_int_equal(r.nfields, CO_CSV_FIELDS_MAX);
		assert_string_equal(r.error, "too many fields");
		assert_int_equal(co_csv_next(c, &r), 0);
		co_csv_free(c);
	}
	free(big);
}

static void test_writer_round_trip(void **state)
{
	static const char *const fields[] = {
	    "plain", "with, comma", "\"quoted\"", "two\nlines", "cr\rhere", "", "trailing "};
	char *out = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&out, &size);
	struct src m;
	co_csv *c;
	co_csv_record r;
	size_t nf = sizeof(fields) / sizeof(fields[0]);

	(void)state;
	for (size_t i = 0; i < nf; i++) {
		if (i)
			fputc(',', fp);
		co_csv_put(fp, fields[i], strlen(fields[i]));
	}
	fputc('\n', fp);
	fclose(fp);
	assert_string_equal(out, "plain,\"with, comma\",\"\"\"quoted\"\"\",\"two\nlines\","
	                         "\"cr\rhere\",,trailing \n");
	m = (struct src){out, size, 0};
	c = co_csv_new(get, &m);
	assert_int_equal(co_csv_next(c, &r), 1);
	assert_int_equal(r.nfields, nf);
	for (size_t i = 0; i < nf; i++) {
		assert_int_equal(r.len[i], strlen(fields[i]));
		assert_memory_equal(r.buf + r.start[i], fields[i], r.len[i]);
	}
	assert_null(r.error);
	assert_true(r.complete);
	co_csv_free(c);
	free(out);
	assert_false(co_csv_needs_quotes("a@b", 3));
	assert_true(co_csv_needs_quotes("a,b", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_quotes),
	    cmocka_unit_test(test_blank_lines_and_bom),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_writer_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
