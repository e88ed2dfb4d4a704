/*
 * CSV (RFC 4180) for callout(1) and calloutd: a reader that yields one record at a
 * time from any byte source, and the writer of one field.  See csv.c
 * for what the reader accepts.
 */
#ifndef CO_CSV_H
#define CO_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CO_CSV_RECORD_MAX (64 * 1024) /* bytes of field data in one record */
#define CO_CSV_FIELDS_MAX 1024        /* fields kept of one record */

typedef struct co_csv_record {
	const char *buf;           /* the fields' bytes, one after another */
	const size_t *start, *len; /* field i: len[i] bytes at buf + start[i] */
	size_t nfields;            /* at least 1 */
	unsigned long line;        /* the line the record begins on (from 1) */
	unsigned long last_line;   /* ... and the line it ends on */
	bool complete;             /* ended by a newline, not by the end of the input */
	const char *error;         /* not NULL: malformed, and why (the fields are
	                              what could be read) */
} co_csv_record;

typedef struct co_csv co_csv;

/* A reader of the bytes get(arg) returns (EOF at the end: it may be
 * called again after that and must say EOF again).  NULL when out of
 * memory. */
co_csv *co_csv_new(int (*get)(void *arg), void *arg);
void co_csv_free(co_csv *c);

/*
 * The next record into *rec (valid until the next call): 1, 0 at the end
 * of the input, -1 with errno EFBIG (a record over CO_CSV_RECORD_MAX
 * bytes: reading cannot go on) or ENOMEM.  Empty lines are skipped.
 */
int co_csv_next(co_csv *c, co_csv_record *rec);

/* The result columns of a CSV of results (callout check --format csv,
 * calloutd's GET /v1/jobs/ID/results), always the last ones of a row. */
#define CO_CSV_NCOLUMNS 12
extern const char *const co_csv_columns[CO_CSV_NCOLUMNS];

/* The usual names of an address column, in the order they are looked
 * for in a header (case-insensitive). */
#define CO_CSV_NADDRESS_NAMES 5
extern const char *const co_csv_address_names[CO_CSV_NADDRESS_NAMES];

/* Whether a field must be quoted: it holds a comma, a quote, CR or LF. */
bool co_csv_needs_quotes(const char *s, size_t len);
/* Write one field, quoted when it must be (quotes doubled). */
void co_csv_put(FILE *fp, const char *s, size_t len);

#endif
