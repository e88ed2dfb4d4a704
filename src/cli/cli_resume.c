/*
 * --resume FILE: the results an earlier run wrote to FILE are not asked
 * again, and the new ones are appended to it.
 *
 * A result is known by its input line and its address (both are in every
 * JSON line and CSV row): the set keeps, for each, the line, a 64-bit
 * hash of the address and the verdict, 16 bytes a result, sorted once and
 * searched by bisection.  The address is hashed as the output shows it
 * (bytes that are not UTF-8 as U+FFFD, as in JSON), so an input line and
 * its result always meet.
 *
 * A run killed while writing (kill -9, a full disk) can leave a last line
 * without its newline: it is cut off the file, and its address is asked
 * again.  Any other line that is not a result is an error: that is not a
 * file of ours, and appending to it would mix things up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "result_json.h"

#define LINE_MAX_BYTES (1024 * 1024) /* a JSON line with a long transcript fits */

struct entry {
	uint64_t key; /* line << 16 | verdict << 8 | reason */
	uint64_t hash;
};

struct cli_done {
	struct entry *e;
	size_t n, cap;
};

/* FNV-1a over the address as UTF-8, each byte of a bad sequence as U+FFFD. */
static uint64_t addr_hash(const char *addr, size_t len)
{
	const unsigned char *s = (const unsigned char *)addr;
	static const unsigned char repl[3] = {0xef, 0xbf, 0xbd};
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = co_utf8_seq(s + i, len - i, &cp);
		const unsigned char *p = n ? s + i : repl;
		size_t k = n ? n : 3;

		for (size_t j = 0; j < k; j++) {
			h ^= p[j];
			h *= 0x100000001b3ull;
		}
		i += n ? n : 1;
	}
	return h;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	uint64_t lx = x->key >> 16, ly = y->key >> 16;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return 0;
}

static bool add(cli_done *d, unsigned long line, const char *addr, size_t len, int v, int r)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 1024;
		struct entry *e = realloc(d->e, cap * sizeof(*e));

		if (!e)
			return false;
		d->e = e;
		d->cap = cap;
	}
	d->e[d->n].key = (uint64_t)line << 16 | (uint64_t)v << 8 | (uint64_t)r;
	d->e[d->n].hash = addr_hash(addr, len);
	d->n++;
	return true;
}

bool cli_done_find(const cli_done *d, unsigned long line, const char *addr, size_t len,
                   callout_verdict *v, callout_reason *r)
{
	struct entry k = {.key = (uint64_t)line << 16, .hash = addr_hash(addr, len)};
	const struct entry *e;

	if (!d || d->n == 0)
		return false;
	e = bsearch(&k, d->e, d->n, sizeof(k), cmp_entry);
	if (!e)
		return false;
	*v = (callout_verdict)(e->key >> 8 & 0xff);
	*r = (callout_reason)(e->key & 0xff);
	return true;
}

size_t cli_done_count(const cli_done *d)
{
	return d ? d->n : 0;
}

void cli_done_free(cli_done *d)
{
	if (!d)
		return;
	free(d->e);
	free(d);
}

static int verdict_of(const char *s, size_t n)
{
	for (int v = 0; v < CLI_VERDICTS; v++) {
		const char *name = callout_verdict_name((callout_verdict)v);
		if (strlen(name) == n && memcmp(name, s, n) == 0)
			return v;
	}
	return -1;
}

static int reason_of(const char *s, size_t n)
{
	for (int r = 0; r < CALLOUT_R_COUNT; r++) {
		const char *name = callout_reason_name((callout_reason)r);
		if (strlen(name) == n && memcmp(name, s, n) == 0)
			return r;
	}
	return -1;
}

/* A line number as the output writes it: 1 .. 2^47. */
static bool line_of(const char *s, size_t n, unsigned long *out)
{
	char buf[24];

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return cli_parse_uint(buf, 1, (1ul << 47), out);
}

struct reader {
	const char *cmd, *path;
	FILE *fp;
	off_t pos;  /* bytes read */
	off_t good; /* the end of the last complete result */
	unsigned long lineno;
	cli_done *done;
};

static int bad(struct reader *rd, unsigned long line, const char *why)
{
	fprintf(stderr, "%s: ", rd->cmd);
	cli_fput_escaped(stderr, rd->path, strlen(rd->path), false);
	fprintf(stderr, ":%lu: %s: not a file written by --output or --resume\n", line, why);
	return -1;
}

static int store(struct reader *rd, unsigned long line, const char *addr, size_t alen, int v, int r)
{
	if (!add(rd->done, line, addr, alen, v, r)) {
		fprintf(stderr, "%s: out of memory\n", rd->cmd);
		return -1;
	}
	return 0;
}

/* One complete JSON line. */
static int json_line(struct reader *rd, const char *buf, size_t len)
{
	json_error_t err;
	json_t *j = json_loadb(buf, len, JSON_ALLOW_NUL, &err);
	json_t *line = json_object_get(j, "line"), *addr = json_object_get(j, "address");
	json_t *verdict = json_object_get(j, "verdict"), *reason = json_object_get(j, "reason");
	int v, r, rc;

	if (!j)
		return bad(rd, rd->lineno, "not JSON");
	if (!json_is_integer(line) || json_integer_value(line) < 1 || !json_is_string(addr) ||
	    !json_is_string(verdict) || !json_is_string(reason)) {
		json_decref(j);
		return bad(rd, rd->lineno, "not a result with a line number");
	}
	v = verdict_of(json_string_value(verdict), json_string_length(verdict));
	r = reason_of(json_string_value(reason), json_string_length(reason));
	if (v < 0 || r < 0) {
		json_decref(j);
		return bad(rd, rd->lineno, "unknown verdict or reason");
	}
	rc = store(rd, (unsigned long)json_integer_value(line), json_string_value(addr),
	           json_string_length(addr), v, r);
	json_decref(j);
	return rc;
}

static int load_json(struct reader *rd)
{
	char *buf = malloc(LINE_MAX_BYTES);
	size_t n = 0;
	int c;

	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", rd->cmd);
		return -1;
	}
	while ((c = getc_unlocked(rd->fp)) != EOF) {
		rd->pos++;
		if (c != '\n') {
			if (n == LINE_MAX_BYTES) {
				free(buf);
				return bad(rd, rd->lineno + 1, "a line longer than 1 MiB");
			}
			buf[n++] = (char)c;
			continue;
		}
		rd->lineno++;
		if (n > 0 && json_line(rd, buf, n) != 0) {
			free(buf);
			return -1;
		}
		n = 0;
		rd->good = rd->pos;
	}
	free(buf);
	return 0;
}

static int counted_get(void *arg)
{
	struct reader *rd = arg;
	int c = getc_unlocked(rd->fp);

	if (c != EOF)
		rd->pos++;
	return c;
}

static int load_csv(struct reader *rd, bool *has_header)
{
	co_csv *csv = co_csv_new(counted_get, rd);
	co_csv_record rec;
	int got = 0, rc = 0;

	if (!csv) {
		fprintf(stderr, "%s: out of memory\n", rd->cmd);
		return -1;
	}
	while (rc == 0 && (got = co_csv_next(csv, &rec)) > 0) {
		const size_t k = rec.nfields - CO_CSV_NCOLUMNS; /* our first column */
		unsigned long line;
		int v, r;

		if (!rec.complete)
			break; /* cut off by a kill: dropped */
		if (rec.error) {
			rc = bad(rd, rec.line, rec.error);
			break;
		}
		if (rec.nfields < CO_CSV_NCOLUMNS) {
			rc = bad(rd, rec.line, "too few columns");
			break;
		}
		if (!*has_header) {
			for (size_t i = 0; i < CO_CSV_NCOLUMNS; i++)
				if (rec.len[k + i] != strlen(co_csv_columns[i]) ||
				    memcmp(rec.buf + rec.start[k + i], co_csv_columns[i],
				           rec.len[k + i]) != 0) {
					rc = bad(rd, rec.line,
					         "the header does not end in our columns");
					break;
				}
			*has_header = true;
			rd->good = rd->pos;
			continue;
		}
#define F(i) (rec.buf + rec.start[k + (i)]), (rec.len[k + (i)])
		v = verdict_of(F(1));
		r = reason_of(F(2));
		if (v < 0 || r < 0 || !line_of(F(11), &line)) {
			rc = bad(rd, rec.line, "no verdict, reason or line number where expected");
			break;
		}
		rc = store(rd, line, F(0), v, r);
#undef F
		rd->good = rd->pos;
	}
	if (rc == 0 && got < 0) {
		rc = bad(rd, rd->lineno, errno == EFBIG ? "a record over 64 KiB" : strerror(errno));
	}
	co_csv_free(csv);
	return rc;
}

int cli_resume_open(const char *cmd, const char *path, cli_format fmt, FILE **fpp, cli_done **donep,
                    bool *has_header)
{
	struct reader rd = {.cmd = cmd, .path = path};
	struct stat st;
	int fd, rc;

	*fpp = NULL;
	*donep = NULL;
	*has_header = false;
	errno = 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		const char *why = fd < 0 || errno ? strerror(errno) : "not a regular file";

		fprintf(stderr, "%s: cannot resume '", cmd);
		cli_fput_escaped(stderr, path, strlen(path), false);
		fprintf(stderr, "': %s\n", why);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rd.fp = fdopen(fd, "r+");
	rd.done = calloc(1, sizeof(*rd.done));
	if (!rd.fp || !rd.done) {
		fprintf(stderr, "%s: out of memory\n", cmd);
		if (rd.fp)
			fclose(rd.fp);
		else
			close(fd);
		free(rd.done);
		return -1;
	}
	rc = fmt == CLI_FMT_CSV ? load_csv(&rd, has_header) : load_json(&rd);
	if (rc == 0 && ferror(rd.fp)) {
		fprintf(stderr, "%s: cannot read '", cmd);
		cli_fput_escaped(stderr, path, strlen(path), false);
		fprintf(stderr, "': %s\n", strerror(errno ? errno : EIO));
		rc = -1;
	}
	if (rc == 0 && rd.good < st.st_size) {
		fprintf(stderr, "%s: ", cmd);
		cli_fput_escaped(stderr, path, strlen(path), false);
		fprintf(stderr,
		        ": dropped an incomplete last line (%lld bytes, from a run that was "
		        "killed): its address is verified again\n",
		        (long long)(st.st_size - rd.good));
		if (ftruncate(fd, rd.good) != 0) {
			fprintf(stderr, "%s: cannot repair it: %s\n", cmd, strerror(errno));
			rc = -1;
		}
	}
	if (rc == 0 && fseeko(rd.fp, 0, SEEK_END) != 0) {
		fprintf(stderr, "%s: cannot append: %s\n", cmd, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		fclose(rd.fp);
		cli_done_free(rd.done);
		return -1;
	}
	if (rd.done->n) /* e is NULL while empty: qsort takes no NULL */
		qsort(rd.done->e, rd.done->n, sizeof(*rd.done->e), cmp_entry);
	*fpp = rd.fp;
	*donep = rd.done;
	return 0;
}
