/*
 * The inside of calloutd.conf's parser, shared by config.c (the keys, their
 * values and defaults), config_read.c (lines, sections, the whole file)
 * and config_query.c; not for other files.
 */
#ifndef CD_CONFIG_INT_H
#define CD_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "option_table.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define CONFIG_FILE_MAX   (1024 * 1024) /* bytes */
#define FE_CONN_MAX       100000        /* front-end connections: more than any fd limit */
#define FE_TIMEOUT_MAX    3600000       /* ms: a front end's request deadline */
#define DOMAINS_MAX       10000         /* [domain] sections */
#define PROXIES_MAX       100           /* [proxy] sections */
#define ITEM_MAX          300           /* one list item */
#define REPLY_WITHIN_MAX  300000u
#define DEFAULT_STATE_DIR CALLOUT_STATE_DIR /* meson: -Dstatedir */

enum sect {
	S_NONE = 0,
	S_DAEMON,
	S_ENGINE,
	S_CACHE,
	S_VERIFY,
	S_POLICY,
	S_MILTER,
	S_HTTP,
	S_DOMAIN,
	S_DOCTOR,
	S_PROXY
};

#define CFG_NSECTS (S_PROXY + 1)
extern const char *const cfg_sect_names[CFG_NSECTS];

struct pst;
struct keydef;
typedef bool (*setter)(struct pst *st, const struct keydef *k, char *v, bool more);

struct keydef {
	enum sect sect;
	const char *name;
	setter set;
	size_t off;             /* in cd_config, cd_domain (S_DOMAIN) or cd_proxy (S_PROXY) */
	size_t size;            /* strings: the field's size */
	unsigned long min, max; /* numbers: limits (durations: in ms) */
	bool list;              /* may continue on indented lines */
};

struct pst {
	cd_config *c;
	const char *name;    /* for messages */
	const char *p, *end; /* what is left of the input */
	unsigned line;
	enum sect sect;
	char sect_label[320]; /* "daemon", "domain example.org": a header of 300 at most */
	cd_domain *dom, **dom_tail;
	size_t ndomains;
	cd_proxy *px, **px_tail;
	size_t nproxies;
	unsigned sect_line[CFG_NSECTS];
	unsigned *key_line; /* per key: where it was set in this section */
	const struct keydef *cur_key;
	const co_optdef *cur_opt;      /* or the option table's key */
	unsigned opt_line[CO_OPT_MAX]; /* per table key: where it was set */
	bool can_continue;             /* the line above is a key or continuation line */
	bool cont;                     /* this line is a continuation */
	bool listen_none;              /* listen = none, no continuation then */
	bool failed;
	bool nomem; /* failed for want of memory, not for the file */
	char *err;
	size_t errlen;
	/* resolved at the end */
	unsigned state_dir_line;
	bool cache_set;
	unsigned socket_mode;
};

/* The key table (config.c) and its size, at most CFG_KEYS_MAX. */
#define CFG_KEYS_MAX 256
extern const struct keydef cfg_keys[];
extern const size_t cfg_nkeys;

/* snprintf() that may truncate (error messages). */
void cfg_errorf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Stop at the first error: "FILE:LINE: message" into the caller's buffer;
 * returns false. */
bool cfg_fail(struct pst *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define KFAIL(st, k, fmt, ...)                                                                     \
	cfg_fail(st, "[%s] %s: " fmt, (st)->sect_label, (k)->name, __VA_ARGS__)

/* Every value calloutd starts from (config.c). */
void cfg_set_defaults(cd_config *c);

#endif
