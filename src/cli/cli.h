/*
 * callout(1): declarations shared by the files of the command line tool.
 *
 *   callout.c     main(): the subcommand dispatcher, top-level help, version
 *   cli_check.c   `callout check`: options, the verification loop
 *   cli_input.c   addresses from the command line and files, read lazily
 *   cli_output.c  one result as a human line or a JSON object; escaping
 *   cli_parse.c   strict parsing of option values
 *   cli_cache.c   `callout cache`: list, get, delete, purge, stats
 *   cli_doctor.c  `callout doctor`: checks of our own side
 *   cli_state.c   where the cache lives by default; the clock
 */
#ifndef CALLOUT_CLI_H
#define CALLOUT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <callout/callout.h>

#include "csv.h"

#define CLI_PROG "callout"

/* Exit statuses of every subcommand (documented in callout(1)). */
enum {
	CLI_EXIT_VALID = 0,   /* every address valid */
	CLI_EXIT_INVALID = 1, /* at least one address invalid */
	CLI_EXIT_USAGE = 2,   /* bad command line */
	CLI_EXIT_OTHER = 3,   /* unknown, tempfail or an error; none invalid */
};

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* ---- subcommands ---- */

int cli_check_main(int argc, char **argv);
void cli_check_help(FILE *fp);
int cli_cache_main(int argc, char **argv);
void cli_cache_help(FILE *fp);
int cli_doctor_main(int argc, char **argv);
void cli_doctor_help(FILE *fp);

/* ---- cli_state.c ---- */

/*
 * The cache spec to use: opt when given, else $CALLOUT_CACHE, else the
 * LMDB file CLI_STATE_DIR/cache.lmdb when that directory is writable (or
 * can be made), else $XDG_STATE_HOME/callout/cache.lmdb (default
 * ~/.local/state).  Returns opt, the environment's string or buf.
 */
#define CLI_STATE_DIR CALLOUT_STATE_DIR /* meson: -Dstatedir */
const char *cli_cache_spec(const char *opt, char *buf, size_t len);

/*
 * root working on a cache that belongs to another user (calloutd's): open
 * it as that user (effective ids), so that the files the open makes (the
 * file, its lock) stay theirs and the daemon can still write them.  The
 * owner is the file's, or its directory's while the file does not exist.
 * 0 (nothing to do, or done: call cli_cache_owner_end after the open), or
 * -1 after saying why not: then do not open it.
 */
typedef struct cli_ids {
	unsigned uid, gid;
	bool switched;
} cli_ids;
int cli_cache_owner_begin(const char *cmd, const char *spec, cli_ids *saved);
void cli_cache_owner_end(cli_ids *saved);

/* The clock for the cache: time(), moved by $CALLOUT_NOW for tests
 * ("+SECONDS" or "-SECONDS" from now, or a Unix time).  false when
 * CALLOUT_NOW is set but malformed. */
bool cli_clock_check(void);
long long cli_clock(void *arg);

/* $CALLOUT_ALLOW_PRIVATE is set to 1, yes or true: as --allow-private. */
bool cli_allow_private_env(void);

/* Log lines from the library, to stderr with the program's name. */
void cli_log(void *arg, const char *msg);
/* callout_options.trace: a probe's steps, on stderr. */
void cli_trace(void *arg, const char *line);

/* ---- cli_parse.c: option values; all return false on any garbage ---- */

struct option;

/* "CMD: message" on stderr. */
void cli_errorf(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* The hint after a usage error; returns CLI_EXIT_USAGE. */
int cli_try_help(const char *cmd);
/* The long name of option val in opts, or "?". */
const char *cli_opt_name(const struct option *opts, int val);
/* "CMD: invalid value 'V' for --NAME: expected..." and the hint;
 * returns CLI_EXIT_USAGE. */
int cli_bad_value(const char *cmd, const struct option *opts, int opt, const char *value,
                  const char *expected);

/* A decimal integer in [min, max]: digits only, no sign, no spaces. */
bool cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/* A duration as the configuration file writes it (duration.h: "30",
 * "30s", "0.5", "500ms", "15m", "7d"; no unit means seconds) into
 * milliseconds in [min_ms, max_ms]; with whole_seconds, a fraction of a
 * second is refused. */
bool cli_parse_ms(const char *s, unsigned long long min_ms, unsigned long long max_ms,
                  bool whole_seconds, unsigned long long *out_ms);

/* An IPv4 or IPv6 address literal (no brackets, no port). */
bool cli_valid_ip(const char *s);

/* One DNS server: IPv4[:PORT], IPv6, or [IPv6]:PORT. */
bool cli_valid_dns_server(const char *s);

/* Strip leading and trailing blanks (space, tab, CR, LF) in place. */
char *cli_trim(char *s);

/*
 * Split a route "DOMAIN=HOSTS" (or, when allow_space, "DOMAIN HOSTS") in
 * place.  Blanks around the parts and around the commas of HOSTS are
 * removed.  Returns false when a part or a host is missing, or a blank is
 * left inside DOMAIN or a host.
 */
bool cli_split_route(char *line, bool allow_space, char **domain, char **hosts);

/* ---- cli_input.c: the addresses to verify, read one at a time ---- */

#define CLI_LINE_MAX    1024        /* longer lines are reported, not verified */
#define CLI_LINE_ABSURD (64 * 1024) /* a longer line ends the file: not a list */

typedef struct cli_input cli_input;

typedef struct cli_item {
	const char *addr; /* not NUL-terminated when error is set */
	size_t len;
	const char *error;           /* non-NULL: the line cannot be verified, and why */
	bool too_long;               /* the error is the length alone: our limit, not invalid */
	const char *file;            /* NULL for a command line argument */
	unsigned long line;          /* of a file, from 1 (a CSV record's first line); of an
	                                argument, its position among them (from 1) */
	const co_csv_record *record; /* CSV input: the whole record, else NULL */
} cli_item;

/* How CSV files are read (--csv, --column, --header, --no-header). */
typedef struct cli_csv_opts {
	const char *column_name; /* --column NAME: found in each file's header */
	unsigned long column;    /* --column N (from 1); 0: by name, or the default */
	int header;              /* 1 the first record is a header, 0 it is not,
	                            -1 detect: it is unless a field holds '@' */
} cli_csv_opts;

/* args (borrowed, must outlive the input) come before every file. */
cli_input *cli_input_new(char **args, size_t nargs);
/* Read every file as CSV (before any cli_input_add_file). */
void cli_input_set_csv(cli_input *in, const cli_csv_opts *opts);
/* Open path now ("-" is standard input); read later.  -1 with errno. */
int cli_input_add_file(cli_input *in, const char *path);
/* 1 and *item (valid until the next call), 0 at the end, -1 on a read
 * error (errno set, item->file names the file, item->error says why when
 * errno alone does not; EFBIG for a line longer than CLI_LINE_ABSURD or
 * a CSV record over CO_CSV_RECORD_MAX).  Reading goes on with the next
 * file. */
int cli_input_next(cli_input *in, cli_item *item);
/*
 * CSV input: the columns of the first file, read now (its first record,
 * or its header): the header record into *hdr (NULL when the file has
 * none) and the number of columns.  0 when there is no CSV file; -1 as
 * cli_input_next.
 */
int cli_input_csv_columns(cli_input *in, const co_csv_record **hdr, size_t *ncolumns,
                          cli_item *err);
/* The number of items a second reading of the same input would give, or
 * -1 when it cannot be known without consuming it (standard input, a
 * pipe, a read error). */
long long cli_input_count(char **args, size_t nargs, const char *const *files, size_t nfiles,
                          const cli_csv_opts *csv);
void cli_input_free(cli_input *in);

/* ---- cli_output.c ---- */

typedef enum cli_format { CLI_FMT_TEXT, CLI_FMT_JSON, CLI_FMT_CSV } cli_format;

typedef struct cli_output {
	FILE *fp;
	cli_format format;
	bool transcript; /* include the SMTP dialogue */
	size_t columns;  /* CSV output of CSV input: the input's columns, kept first */
} cli_output;

/* Where the input of a result came from. */
typedef struct cli_origin {
	const char *file;   /* NULL: a command line argument */
	unsigned long line; /* cli_item.line */
	const char *kept;   /* CSV output of CSV input: the record's fields as
	                       cli_output_csv_kept made them, else NULL */
	size_t kept_len;
} cli_origin;

/*
 * Print the result of verifying input (len bytes as typed, any bytes) and
 * flush.  0 on success, else an errno value (EPIPE when the reader went
 * away, ENOMEM, EIO...).
 */
int cli_output_result(const cli_output *o, const cli_origin *from, const char *input, size_t len,
                      const callout_result *res);

/* The header line of the CSV output: the input's column names (hdr, or
 * columnN when NULL) for o->columns, then co_csv_columns.  0 or errno. */
int cli_output_csv_header(const cli_output *o, const co_csv_record *hdr);

/* The fields of rec to keep in the CSV output: each written as a field
 * and followed by a comma, padded to o->columns with empty ones.  A
 * string to free, its length in *len; NULL when out of memory. */
char *cli_output_csv_kept(const cli_output *o, const co_csv_record *rec, size_t *len);

/* Write s (len bytes) with control characters, invalid UTF-8, invisible
 * or bidirectional format characters and backslashes escaped; also '"'
 * when quoted. */
void cli_fput_escaped(FILE *fp, const char *s, size_t len, bool quoted);

/* ---- cli_progress.c: counts, the progress line, the summary ---- */

#define CLI_VERDICTS 4

typedef struct cli_tally {
	unsigned long long verdicts[CLI_VERDICTS];
	unsigned long long reasons[CALLOUT_R_COUNT];
} cli_tally;

void cli_tally_add(cli_tally *t, callout_verdict v, callout_reason r);

typedef struct cli_progress cli_progress;

/*
 * draw: redraw a progress line on fp (a terminal) when asked; total: the
 * number of items of the input, or -1 when unknown.  NULL when out of
 * memory.
 */
cli_progress *cli_progress_new(FILE *fp, bool draw, long long total);
void cli_progress_free(cli_progress *p);
/* One result of this run. */
void cli_progress_result(cli_progress *p, callout_verdict v, callout_reason r);
/* One item skipped by --resume, with the verdict FILE gave it. */
void cli_progress_skipped(cli_progress *p, callout_verdict v, callout_reason r);
/* What the library is doing now: sampled, and the line redrawn when it
 * is due (at most CLI_PROGRESS_HZ times a second) or when force. */
#define CLI_PROGRESS_HZ 4
void cli_progress_tick(cli_progress *p, const callout_stats *st, bool force);
/* Erase the progress line (before anything else is written to fp). */
void cli_progress_clear(cli_progress *p);
/* The summary table.  in_flight: verifications cancelled by a signal. */
void cli_progress_summary(cli_progress *p, int signal, unsigned long in_flight);

/* ---- cli_resume.c: --resume FILE ---- */

typedef struct cli_done cli_done;

/*
 * Open path to continue it: read the results it holds (fmt: JSON lines or
 * CSV; a file that does not exist is made), drop an incomplete last line
 * (a run killed while writing), and leave *fp open at its end to append.
 * *done: the (line, address) pairs it holds with their verdicts, 16 bytes
 * each; *has_header: a CSV file begins with our header.  0, or -1 after
 * saying why on stderr.
 */
int cli_resume_open(const char *cmd, const char *path, cli_format fmt, FILE **fp, cli_done **done,
                    bool *has_header);
/* Whether the result for address (len bytes) at line is in the file;
 * when it is, its verdict and reason. */
bool cli_done_find(const cli_done *d, unsigned long line, const char *addr, size_t len,
                   callout_verdict *v, callout_reason *r);
size_t cli_done_count(const cli_done *d);
void cli_done_free(cli_done *d);

#endif
