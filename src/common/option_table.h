/*
 * The option table: every option of callout_options that a person sets,
 * described once.  The library takes its defaults from it
 * (callout_options_init), the CLI its flags, its --help and its value
 * parsing, calloutd.conf its [engine] and [cache] keys, calloutd -t its
 * summary and the HTTP API the options a request may carry; a unit test
 * checks the man pages against it.
 *
 * A value is written the same everywhere: the CLI flag --connect-timeout
 * takes what the key connect_timeout takes.  0 is a value where the range
 * allows it (a TTL of 0, session_idle 0, a limit of 0 for none), never a
 * stand-in for "not set": an option not given keeps its default.
 */
#ifndef CO_OPTION_TABLE_H
#define CO_OPTION_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include <callout/callout.h>

typedef enum co_opt_type {
	CO_OPT_FLAG,  /* yes or no: a CALLOUT_F_ bit (set by yes, or by no when negated) */
	CO_OPT_COUNT, /* a whole number in [min, max] */
	CO_OPT_LIMIT, /* a whole number up to max, 0 for none (CALLOUT_UNLIMITED) */
	CO_OPT_MS,    /* a duration, kept in milliseconds, [min, max] ms */
	CO_OPT_SECS,  /* a duration in whole seconds, kept in seconds, [min, max] s */
	CO_OPT_TEXT,  /* a string (const char *); its syntax is checked by its user */
	/* durations in whole seconds, increasing, separated by commas, kept in
	 * an unsigned array of CALLOUT_RECHECK_MAX ended by 0; each in [min,
	 * max] s; "" (all 0) for none.  def and daemon_def are not values but
	 * indexes into the table's list of default lists (option_table.c) */
	CO_OPT_SECS_LIST
} co_opt_type;

/* Who reads an option. */
enum {
	CO_OPT_CTX = 1 << 0,     /* read by callout_ctx_new() only */
	CO_OPT_REQUEST = 1 << 1, /* [http] request_options may let a request set it (numbers:
	                            never beyond calloutd's value) */
	CO_OPT_NO_CLI = 1 << 2,  /* no flag of callout check (it has its own) */
};

typedef struct co_optdef {
	const char *name;    /* key in calloutd.conf; the CLI flag is --name with '-' */
	const char *section; /* "engine" or "cache" */
	co_opt_type type;
	size_t offset;  /* of the field in callout_options (flags for CO_OPT_FLAG) */
	unsigned bit;   /* CO_OPT_FLAG: the CALLOUT_F_ bit */
	bool negated;   /* CO_OPT_FLAG: yes clears the bit ("pipelining" is !NO_PIPELINING) */
	unsigned where; /* CO_OPT_* */
	unsigned long long def, min, max; /* in the field's unit; FLAG: def 0 or 1 */
	/* calloutd's default where it differs from the library's (and the
	 * CLI's), and why; daemon_why NULL: the same */
	unsigned long long daemon_def;
	const char *daemon_why;
	const char *cli;  /* the CLI's flag when not the name with '-', or NULL */
	const char *arg;  /* the value's name in help: "N", "DURATION", "NAME" */
	const char *help; /* one line, for --help and calloutd -t */
} co_optdef;

/* More entries than the table will ever have (an array per entry fits). */
#define CO_OPT_MAX 64

/* The table, in the order of --help; *n receives its length. */
const co_optdef *co_opt_table(size_t *n);

/* The entry of a key ("connect_timeout") in section ("engine"; NULL: any). */
const co_optdef *co_opt_find(const char *section, const char *name);

/* The entry whose CLI flag (without "--") is flag, or NULL. */
const co_optdef *co_opt_find_flag(const char *flag);

/* The CLI flag of d, without "--", into buf. */
const char *co_opt_flag(const co_optdef *d, char *buf, size_t len);

/* Every option's default into o (the library's, or calloutd's). */
void co_opt_defaults(callout_options *o, bool daemon);

/*
 * Parse text as d's value into o.  Returns NULL, or what was expected (a
 * fixed phrase such as "expected a whole number from 1 to 100", built in
 * buf) when text is not a value of d.  CO_OPT_TEXT options are not parsed
 * here (NULL, o unchanged is never returned for them: "not a table value").
 */
const char *co_opt_parse(const co_optdef *d, const char *text, callout_options *o, char *buf,
                         size_t len);

/* d's value in o as calloutd.conf writes it ("30s", "yes", "0" for no
 * limit, "" for an empty string). */
const char *co_opt_format(const co_optdef *d, const callout_options *o, char *buf, size_t len);

/* d's default as text, the library's or calloutd's. */
const char *co_opt_format_default(const co_optdef *d, bool daemon, char *buf, size_t len);

/* Whether two option sets agree on d. */
bool co_opt_equal(const co_optdef *d, const callout_options *a, const callout_options *b);

#endif
