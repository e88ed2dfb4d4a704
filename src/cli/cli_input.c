/*
 * The addresses to verify: command line arguments first, then each file
 * in the order given.  Files are opened up front (a missing file is a
 * usage error before any work) and read one line (or one CSV record) at a
 * time, so a file of any size costs one line buffer (one record, and the
 * header of a CSV file).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"

struct cli_file {
	FILE *fp;
	const char *name; /* borrowed from argv; "-" shown as "(stdin)" */
	bool is_stdin;
};

/* A record that outlives the reader's buffer: a CSV file's header. */
struct owned_record {
	co_csv_record rec;
	char *buf;
	size_t *start, *len;
};

struct cli_input {
	char **args;
	size_t nargs, argi;
	struct cli_file *files;
	size_t nfiles, cap, filei;
	unsigned long lineno;
	/* CSV */
	bool csv;
	cli_csv_opts copts;
	co_csv *reader; /* of files[filei], once it is being read */
	bool pending;   /* rec is a data record read ahead */
	co_csv_record rec;
	size_t column;                 /* the address's field in this file */
	struct owned_record hdr;       /* this file's header (nfields 0: none) */
	struct owned_record first_hdr; /* the first file's, for the output */
	bool first_done;               /* cli_input_csv_columns has run */
	size_t first_width;
	char why[160];
	char buf[CLI_LINE_MAX + 1];
};

cli_input *cli_input_new(char **args, size_t nargs)
{
	cli_input *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->args = args;
	in->nargs = nargs;
	return in;
}

int cli_input_add_file(cli_input *in, const char *path)
{
	struct cli_file f = {0};

	if (in->nfiles == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 4;
		struct cli_file *nf = realloc(in->files, cap * sizeof(*nf));

		if (!nf)
			return -1;
		in->files = nf;
		in->cap = cap;
	}
	if (strcmp(path, "-") == 0) {
		f.fp = stdin;
		f.name = "(stdin)";
		f.is_stdin = true;
	} else {
		f.fp = fopen(path, "r");
		if (!f.fp)
			return -1;
		f.name = path;
	}
	in->files[in->nfiles++] = f;
	return 0;
}

static bool is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Read one line of fp into in->buf without its leading blanks.  Returns
 * the stored length, or -1 at the end of the file (nothing read), -2 on a
 * read error and -3 for a line so long that the file cannot be a list of
 * addresses (a binary file, /dev/zero); *too_long when the line did not
 * fit in the buffer.
 */
static long read_line(cli_input *in, FILE *fp, bool *too_long)
{
	size_t n = 0, total = 0;
	bool any = false;
	int c;

	*too_long = false;
	while ((c = getc_unlocked(fp)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (++total > CLI_LINE_ABSURD)
			return -3;
		if (n == 0 && is_blank(c))
			continue;
		if (n < CLI_LINE_MAX)
			in->buf[n++] = (char)c;
		else
			*too_long = true;
	}
	if (c == EOF && ferror(fp))
		return -2;
	if (c == EOF && !any)
		return -1;
	while (n > 0 && is_blank((unsigned char)in->buf[n - 1]))
		n--;
	in->buf[n] = '\0';
	return (long)n;
}

void cli_input_set_csv(cli_input *in, const cli_csv_opts *opts)
{
	in->csv = true;
	in->copts = *opts;
}

static int file_get(void *arg)
{
	return getc_unlocked((FILE *)arg);
}

static bool own_record(struct owned_record *o, const co_csv_record *r)
{
	size_t bytes = r->nfields ? r->start[r->nfields - 1] + r->len[r->nfields - 1] : 0;

	free(o->buf);
	free(o->start);
	memset(o, 0, sizeof(*o));
	o->buf = malloc(bytes + 1);
	o->start = malloc(2 * r->nfields * sizeof(size_t) + 1);
	if (!o->buf || !o->start) {
		free(o->buf);
		free(o->start);
		memset(o, 0, sizeof(*o));
		return false;
	}
	o->len = o->start + r->nfields;
	if (r->nfields) { /* an empty record may have no arrays: memcpy takes no NULL */
		memcpy(o->buf, r->buf, bytes);
		memcpy(o->start, r->start, r->nfields * sizeof(size_t));
		memcpy(o->len, r->len, r->nfields * sizeof(size_t));
	}
	o->buf[bytes] = '\0';
	o->rec = *r;
	o->rec.buf = o->buf;
	o->rec.start = o->start;
	o->rec.len = o->len;
	return true;
}

static bool blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Field i of r without the blanks around it. */
static const char *field(const co_csv_record *r, size_t i, size_t *len)
{
	const char *s = r->buf + r->start[i];
	size_t n = r->len[i];

	while (n > 0 && blank((unsigned char)*s))
		s++, n--;
	while (n > 0 && blank((unsigned char)s[n - 1]))
		n--;
	*len = n;
	return s;
}

static bool field_is(const co_csv_record *r, size_t i, const char *name)
{
	size_t n;
	const char *s = field(r, i, &n);

	return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

static bool has_at(const co_csv_record *r)
{
	return memchr(r->buf, '@',
	              r->nfields ? r->start[r->nfields - 1] + r->len[r->nfields - 1] : 0) != NULL;
}

/* Read the first record of files[filei], decide whether it is a header
 * and find the address's column.  0, or -1 with errno (and in->why). */
static int csv_open(cli_input *in)
{
	struct cli_file *f = &in->files[in->filei];
	co_csv_record r;
	bool header;
	int n;

	in->reader = co_csv_new(file_get, f->fp);
	if (!in->reader) {
		errno = ENOMEM;
		return -1;
	}
	in->pending = false;
	in->hdr.rec.nfields = 0;
	n = co_csv_next(in->reader, &r);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0; /* empty: nothing to read */
	header = in->copts.header > 0 ||
	         (in->copts.header < 0 && (in->copts.column_name || !has_at(&r)));
	if (header && r.error) {
		snprintf(in->why, sizeof(in->why), "line %lu: the header: %s", r.line, r.error);
		errno = EINVAL;
		return -1;
	}
	if (header && !own_record(&in->hdr, &r)) {
		errno = ENOMEM;
		return -1;
	}
	if (!header) {
		in->rec = r;
		in->pending = true;
	}
	in->column = in->copts.column ? in->copts.column - 1 : 0;
	if (in->copts.column_name) {
		size_t i;

		for (i = 0; i < in->hdr.rec.nfields; i++)
			if (field_is(&in->hdr.rec, i, in->copts.column_name))
				break;
		if (i == in->hdr.rec.nfields) {
			snprintf(in->why, sizeof(in->why), "no column named '%.60s' in the header",
			         in->copts.column_name);
			errno = EINVAL;
			return -1;
		}
		in->column = i;
	} else if (!in->copts.column && header) {
		for (size_t k = 0; k < CO_CSV_NADDRESS_NAMES; k++)
			for (size_t i = 0; i < in->hdr.rec.nfields; i++)
				if (field_is(&in->hdr.rec, i, co_csv_address_names[k])) {
					in->column = i;
					goto found;
				}
	}
found:
	return 0;
}

static void csv_close(cli_input *in)
{
	co_csv_free(in->reader);
	in->reader = NULL;
	in->pending = false;
	in->filei++;
}

/* A read error of the file being read (n from co_csv_next or csv_open). */
static int csv_fail(cli_input *in, cli_item *item)
{
	int err = errno ? errno : EIO;

	item->file = in->files[in->filei].name;
	if (in->why[0])
		item->error = in->why;
	else if (err == EFBIG)
		item->error = "a record longer than 65536 bytes (a quote left open?): not a list";
	csv_close(in);
	errno = err;
	return -1;
}

int cli_input_csv_columns(cli_input *in, const co_csv_record **hdr, size_t *ncolumns, cli_item *err)
{
	memset(err, 0, sizeof(*err));
	*hdr = NULL;
	*ncolumns = 0;
	if (!in->csv || in->nfiles == 0)
		return 0;
	if (!in->first_done) {
		in->first_done = true;
		in->why[0] = '\0';
		errno = 0;
		if (in->filei == 0 && !in->reader && csv_open(in) != 0)
			return csv_fail(in, err);
		if (in->hdr.rec.nfields && !own_record(&in->first_hdr, &in->hdr.rec)) {
			errno = ENOMEM;
			return -1;
		}
		in->first_width = in->hdr.rec.nfields ? in->hdr.rec.nfields
		                  : in->pending       ? in->rec.nfields
		                                      : 0;
	}
	*hdr = in->first_hdr.rec.nfields ? &in->first_hdr.rec : NULL;
	*ncolumns = in->first_width;
	return 1;
}

static int csv_next(cli_input *in, cli_item *item)
{
	while (in->filei < in->nfiles) {
		struct cli_file *f = &in->files[in->filei];
		co_csv_record r;
		size_t n;
		int got;

		item->file = f->name;
		in->why[0] = '\0';
		errno = 0;
		if (!in->reader && csv_open(in) != 0)
			return csv_fail(in, item);
		if (in->pending) {
			r = in->rec;
			in->pending = false;
			got = 1;
		} else {
			got = co_csv_next(in->reader, &r);
		}
		if (got < 0)
			return csv_fail(in, item);
		if (got == 0) {
			if (ferror(f->fp)) {
				errno = errno ? errno : EIO;
				return csv_fail(in, item);
			}
			csv_close(in);
			continue;
		}
		item->record = &in->rec;
		in->rec = r;
		item->line = r.line;
		if (r.error || r.nfields <= in->column) {
			snprintf(in->why, sizeof(in->why), "%s",
			         r.error ? r.error : "no such column");
			item->error = in->why;
			item->addr = r.nfields > in->column ? r.buf + r.start[in->column] : "";
			item->len = r.nfields > in->column ? r.len[in->column] : 0;
			return 1;
		}
		item->addr = field(&r, in->column, &n);
		item->len = n;
		if (n == 0)
			item->error = "no address in the column";
		else if (n > CLI_LINE_MAX)
			item->error = "line too long", item->too_long = true;
		else if (memchr(item->addr, '\0', n))
			item->error = "line contains a NUL byte";
		else if (memchr(item->addr, '\n', n) || memchr(item->addr, '\r', n))
			item->error = "address contains a line break";
		return 1;
	}
	return 0;
}

long long cli_input_count(char **args, size_t nargs, const char *const *files, size_t nfiles,
                          const cli_csv_opts *csv)
{
	cli_input *in = cli_input_new(args, nargs);
	long long count = 0;
	cli_item item;
	int r;

	if (!in)
		return -1;
	if (csv)
		cli_input_set_csv(in, csv);
	for (size_t i = 0; i < nfiles; i++) {
		struct stat st;

		if (strcmp(files[i], "-") == 0 || stat(files[i], &st) != 0 ||
		    !S_ISREG(st.st_mode) || cli_input_add_file(in, files[i]) != 0) {
			cli_input_free(in);
			return -1;
		}
	}
	while ((r = cli_input_next(in, &item)) > 0)
		count++;
	cli_input_free(in);
	return r < 0 ? -1 : count;
}

int cli_input_next(cli_input *in, cli_item *item)
{
	memset(item, 0, sizeof(*item));
	if (in->argi < in->nargs) {
		item->addr = in->args[in->argi++];
		item->len = strlen(item->addr);
		item->line = in->argi;
		return 1;
	}
	if (in->csv)
		return csv_next(in, item);
	while (in->filei < in->nfiles) {
		struct cli_file *f = &in->files[in->filei];
		bool too_long;
		long n = read_line(in, f->fp, &too_long);

		item->file = f->name;
		if (n == -2 || n == -3) {
			int err = n == -3 ? EFBIG : errno ? errno : EIO;

			in->filei++;
			errno = err;
			return -1;
		}
		if (n == -1) {
			in->filei++;
			in->lineno = 0;
			continue;
		}
		in->lineno++;
		if (n == 0 || in->buf[0] == '#')
			continue;
		item->addr = in->buf;
		item->len = (size_t)n;
		item->line = in->lineno;
		if (too_long)
			item->error = "line too long", item->too_long = true;
		else if (memchr(in->buf, '\0', (size_t)n))
			item->error = "line contains a NUL byte";
		return 1;
	}
	return 0;
}

void cli_input_free(cli_input *in)
{
	if (!in)
		return;
	co_csv_free(in->reader);
	free(in->hdr.buf);
	free(in->hdr.start);
	free(in->first_hdr.buf);
	free(in->first_hdr.start);
	for (size_t i = 0; i < in->nfiles; i++)
		if (!in->files[i].is_stdin && in->files[i].fp)
			fclose(in->files[i].fp);
	free(in->files);
	free(in);
}
