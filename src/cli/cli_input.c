/*
 * The addresses to verify: command line arguments first, then each file
 * in the order given.  Files are opened up front (a missing file is a
 * usage error before any work) and read one line at a time, so a file of
 * any size costs one line buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct cli_file {
	FILE *fp;
	const char *name; /* borrowed from argv; "-" shown as "(stdin)" */
	bool is_stdin;
};

struct cli_input {
	char **args;
	size_t nargs, argi;
	struct cli_file *files;
	size_t nfiles, cap, filei;
	unsigned long lineno;
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

int cli_input_next(cli_input *in, cli_item *item)
{
	memset(item, 0, sizeof(*item));
	if (in->argi < in->nargs) {
		item->addr = in->args[in->argi++];
		item->len = strlen(item->addr);
		item->line = in->argi;
		return 1;
	}
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
	for (size_t i = 0; i < in->nfiles; i++)
		if (!in->files[i].is_stdin && in->files[i].fp)
			fclose(in->files[i].fp);
	free(in->files);
	free(in);
}
