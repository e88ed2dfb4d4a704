/*
 * CSV (RFC 4180) read one record at a time, and written one field at a
 * time.
 *
 * Reading is lenient where the RFC leaves room and every tool is: records
 * end in LF or CRLF, a quote inside an unquoted field is kept as data, an
 * empty line is no record, a UTF-8 byte order mark at the start of the
 * input is dropped.  What cannot be read as the writer meant it (text
 * after a closing quote, a quote still open at the end of the input, a
 * NUL byte, too many fields) makes the record carry an error, and reading
 * goes on with the next record.  Only a record longer than
 * CO_CSV_RECORD_MAX ends the input (-1, EFBIG): that is no list, or a
 * quote left open swallowing the rest of it.
 *
 * No dependency but the C library: the fuzz target compiles this file
 * alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

struct co_csv {
	int (*get)(void *arg);
	void *arg;
	unsigned long line; /* of the next byte */
	bool started;       /* past a byte order mark */
	int pushed;         /* a byte read ahead, or -1 */
	char *buf;
	size_t len, cap;
	size_t *start, *flen;
	size_t nfields, fcap;
	co_csv_record rec;
};

co_csv *co_csv_new(int (*get)(void *arg), void *arg)
{
	co_csv *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->get = get;
	c->arg = arg;
	c->line = 1;
	c->pushed = -1;
	return c;
}

void co_csv_free(co_csv *c)
{
	if (!c)
		return;
	free(c->buf);
	free(c->start);
	free(c->flen);
	free(c);
}

static int next_byte(co_csv *c)
{
	int ch;

	if (c->pushed >= 0) {
		ch = c->pushed;
		c->pushed = -1;
	} else {
		ch = c->get(c->arg);
	}
	if (ch == '\n')
		c->line++;
	return ch;
}

/* 0, or -1 with errno (EFBIG: the record is too long, ENOMEM). */
static int put(co_csv *c, int ch)
{
	if (c->len >= CO_CSV_RECORD_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (c->len == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		char *b;

		if (cap > CO_CSV_RECORD_MAX)
			cap = CO_CSV_RECORD_MAX;
		b = realloc(c->buf, cap);
		if (!b) {
			errno = ENOMEM;
			return -1;
		}
		c->buf = b;
		c->cap = cap;
	}
	if (ch == '\0' && !c->rec.error)
		c->rec.error = "NUL byte in the record";
	c->buf[c->len++] = (char)ch;
	return 0;
}

/* Close the field that began at offset from. */
static int end_field(co_csv *c, size_t from)
{
	if (c->nfields == CO_CSV_FIELDS_MAX) {
		if (!c->rec.error)
			c->rec.error = "too many fields";
		c->len = from; /* not kept */
		return 0;
	}
	if (c->nfields == c->fcap) {
		size_t cap = c->fcap ? c->fcap * 2 : 16;
		size_t *s = realloc(c->start, cap * sizeof(*s));

		if (!s) {
			errno = ENOMEM;
			return -1;
		}
		c->start = s;
		s = realloc(c->flen, cap * sizeof(*s));
		if (!s) {
			errno = ENOMEM;
			return -1;
		}
		c->flen = s;
		c->fcap = cap;
	}
	c->start[c->nfields] = from;
	c->flen[c->nfields] = c->len - from;
	c->nfields++;
	return 0;
}

enum state { FIELD_START, UNQUOTED, QUOTED, QUOTE_IN_QUOTED };

int co_csv_next(co_csv *c, co_csv_record *out)
{
	for (;;) {
		enum state st = FIELD_START;
		size_t from = 0;
		bool any = false, ended = false, quoted = false;
		int ch, last = EOF; /* the last byte of the record */

		c->len = c->nfields = 0;
		memset(&c->rec, 0, sizeof(c->rec));
		c->rec.line = c->line;
		if (!c->started) {
			static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};
			size_t i = 0;

			c->started = true;
			while (i < 3 && (ch = c->get(c->arg)) == bom[i])
				i++;
			if (i < 3) {
				/* not a mark: what was read is data */
				for (size_t k = 0; k < i; k++)
					if (put(c, bom[k]) != 0)
						return -1;
				if (i > 0 || ch != EOF)
					any = true;
				if (i > 0)
					st = UNQUOTED;
				c->pushed = ch;
			}
		}
		while (!ended) {
			ch = next_byte(c);
			if (ch == EOF) {
				if (st == QUOTED && !c->rec.error)
					c->rec.error = "a quoted field is not closed";
				break;
			}
			any = true;
			last = ch;
			if (ch == '\r' && st != QUOTED) {
				int nx = next_byte(c);

				if (nx == '\n')
					ch = '\n'; /* CRLF */
				else if (nx != EOF)
					c->pushed = nx; /* never '\n': counted once */
			}
			if (st == FIELD_START && ch == '"') {
				st = QUOTED;
				quoted = true;
				continue;
			}
			if (st != QUOTED && (ch == ',' || ch == '\n')) {
				if (end_field(c, from) != 0)
					return -1;
				from = c->len;
				st = FIELD_START;
				ended = ch == '\n';
				continue;
			}
			switch (st) {
			case FIELD_START:
			case UNQUOTED:
				st = UNQUOTED;
				break;
			case QUOTED:
				if (ch == '"') {
					st = QUOTE_IN_QUOTED;
					continue;
				}
				break;
			case QUOTE_IN_QUOTED:
				if (ch == '"') { /* a doubled quote */
					st = QUOTED;
				} else {
					if (!c->rec.error)
						c->rec.error = "text after a closing quote";
					st = UNQUOTED;
				}
				break;
			}
			if (put(c, ch) != 0)
				return -1;
		}
		if (!any)
			return 0; /* the end of the input */
		if (!ended && end_field(c, from) != 0)
			return -1;
		/* an empty line (one empty field, nothing quoted) is no record */
		if (ended && c->nfields == 1 && c->len == 0 && !quoted && !c->rec.error)
			continue;
		c->rec.buf = c->buf ? c->buf : ""; /* never NULL, even with no bytes */
		c->rec.start = c->start;
		c->rec.len = c->flen;
		c->rec.nfields = c->nfields;
		c->rec.complete = ended;
		c->rec.last_line = last == '\n' || ended ? c->line - 1 : c->line;
		*out = c->rec;
		return 1;
	}
}

bool co_csv_needs_quotes(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
			return true;
	return false;
}

void co_csv_put(FILE *fp, const char *s, size_t len)
{
	if (!co_csv_needs_quotes(s, len)) {
		fwrite(s, 1, len, fp);
		return;
	}
	putc_unlocked('"', fp);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			putc_unlocked('"', fp);
		putc_unlocked(s[i], fp);
	}
	putc_unlocked('"', fp);
}

const char *const co_csv_columns[CO_CSV_NCOLUMNS] = {
    "address", "verdict", "reason", "code",      "enhanced", "text",
    "mx",      "ip",      "cached", "from_fact", "ms",       "line",
};

const char *const co_csv_address_names[CO_CSV_NADDRESS_NAMES] = {"email", "e-mail", "email address",
                                                                 "mail", "address"};
