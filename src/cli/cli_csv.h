/*
 * CSV (RFC 4180) for callout(1): a reader that yields one record at a
 * time from any byte source, and the writer of one field.  See cli_csv.c
 * for what the reader accepts.
 */
#ifndef CALLOUT_CLI_CSV_H
#define CALLOUT_CLI_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_CSV_RECORD_MAX (64 * 1024) /* bytes of field data in one record */
#define CLI_CSV_FIELDS_MAX 1024        /* fields kept of one record */

typedef struct cli_csv_record {
	const char *buf;           /* the fields' bytes, one after another */
	const size_t *start, *len; /* field i: len[i] bytes at buf + start[i] */
	size_t nfields;            /* at least 1 */
	unsigned long line;        /* the line the record begins on (from 1) */
	unsigned long last_line;   /* ... and the line it ends on */
	bool complete;             /* ended by a newline, not by the end of the input */
	const char *error;         /* not NULL: malformed, and why (the fields are
	                              what could be read) */
} cli_csv_record;

typedef struct cli_csv cli_csv;

/* A reader of the bytes get(arg) returns (EOF at the end: it may be
 * called again after that and must say EOF again).  NULL when out of
 * memory. */
cli_csv *cli_csv_new(int (*get)(void *arg), void *arg);
void cli_csv_free(cli_csv *c);

/*
 * The next record into *rec (valid until the next call): 1, 0 at the end
 * of the input, -1 with errno EFBIG (a record over CLI_CSV_RECORD_MAX
 * bytes: reading cannot go on) or ENOMEM.  Empty lines are skipped.
 */
int cli_csv_next(cli_csv *c, cli_csv_record *rec);

/* Whether a field must be quoted: it holds a comma, a quote, CR or LF. */
bool cli_csv_needs_quotes(const char *s, size_t len);
/* Write one field, quoted when it must be (quotes doubled). */
void cli_csv_put(FILE *fp, const char *s, size_t len);

#endif
