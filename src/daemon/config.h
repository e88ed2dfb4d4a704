/*
 * calloutd.conf: the daemon's configuration, parsed and checked.
 *
 * An INI file (libinih): sections [daemon], [engine], [cache], [verify],
 * [policy], [milter], [http], [doctor] and any number of [domain NAME].  Every key,
 * its default and its meaning: calloutd.conf(5).  Booleans are
 * yes/no/true/false/on/off/1/0; lists are comma separated; durations are
 * N[.F][unit] with unit ms, s (default), m, h or d.  Unknown sections or
 * keys, bad values and duplicates are errors with the file name and line
 * number.
 */
#ifndef CD_CONFIG_H
#define CD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <callout/callout.h>

#define CD_LISTEN_MAX 8
#define CD_TEXT_MAX   256

typedef enum cd_mode {
	CD_MODE_ENFORCE = 0, /* reject and defer */
	CD_MODE_TAG,         /* accept, add X-Callout (milter) or PREPEND it (policy) */
	CD_MODE_DRY_RUN      /* accept, log what enforce would have done */
} cd_mode;

/* What to do with a verdict (after mode). */
typedef enum cd_action { CD_ACT_PASS = 0, CD_ACT_REJECT, CD_ACT_DEFER } cd_action;

/* One listening socket: "unix:/path" or "inet:HOST:PORT" ("inet:[::1]:PORT"). */
typedef struct cd_listen {
	bool is_unix;
	char path[108]; /* unix */
	char host[64];  /* inet: numeric address */
	unsigned port;
	unsigned mode; /* unix: socket file permissions, default 0660 */
} cd_listen;

/* A network for the skip list: address and prefix length. */
typedef struct cd_net {
	int family; /* AF_INET, AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
} cd_net;

/* A reply: "550 5.1.7 text"; text may hold $address, $reason, $verdict,
 * $code and $text (the remote server's reply), expanded per request. */
typedef struct cd_reply {
	int code;
	char enhanced[16];
	char text[CD_TEXT_MAX];
} cd_reply;

typedef enum cd_domain_action {
	CD_DOM_DEFAULT = 0, /* as [verify] says */
	CD_DOM_SKIP,        /* never verify senders of this domain */
	CD_DOM_VERIFY       /* always verify (even a skipped client network) */
} cd_domain_action;

/* [domain NAME]: per-domain overrides, for senders and recipients of NAME. */
typedef struct cd_domain {
	struct cd_domain *next;
	char name[256]; /* normalised (lower case A-label) */
	cd_domain_action action;
	char route[512]; /* "HOST[:PORT],...": call forward for recipients
	                    of this domain (and callouts for it go there) */
	bool has_mode;
	cd_mode mode;
	char proxy[64]; /* "": as the request or [engine] says; "direct",
	                   "default" or a [proxy NAME] */
} cd_domain;

/* [proxy NAME]: a pool of SOCKS5 proxies that [domain] sections and HTTP
 * requests choose by name. */
typedef struct cd_proxy {
	struct cd_proxy *next;
	char name[64];
	char url[4096];    /* socks5://...[, socks5://...] */
	unsigned sessions; /* at once through each; 0: [engine] proxy_sessions */
	bool http;         /* HTTP requests may ask for it; default yes */
} cd_proxy;

typedef struct cd_config {
	char path[4096]; /* the file it came from */

	/* [daemon] */
	char user[64];            /* drop privileges to this user after binding; "" = stay */
	char state_dir[4096];     /* default /var/lib/callout */
	bool log_stderr;          /* log = stderr (default syslog) */
	char syslog_facility[16]; /* default "mail" */
	bool debug;               /* log_level = debug */
	cd_mode mode;             /* default enforce */
	unsigned reply_within_ms; /* default 10000 */
	unsigned max_inflight;    /* verifications in flight at most, default 10000 */
	/* no_postmaster = tag: a passing sender whose domain is known to
	 * refuse postmaster@DOMAIN is tagged (never refused for it); default
	 * ignore */
	bool tag_no_postmaster;

	/* [engine] and [cache]: the numbers and booleans of the option table
	 * (option_table.h), calloutd's defaults where they differ; the strings
	 * are below, and cd_config_options() points opts at them */
	callout_options opts;
	char helo[256];
	char sender[256];          /* "" = <> */
	char fallback_sender[256]; /* "" = none */
	char source_address[64];
	char dns_servers[512];
	char proxy[4096]; /* "" = direct; a list: a pool */
	char cache[4096]; /* spec; default lmdb:STATE_DIR/cache.lmdb */

	/* [verify]: the decisions, shared by the policy service and the milter */
	bool verify_sender;       /* default yes */
	bool verify_recipient;    /* call forward for [domain] sections with a route; default yes */
	cd_net skip_networks[64]; /* clients never checked; default 127.0.0.0/8, ::1/128 */
	size_t nskip_networks;
	char skip_senders[2048]; /* comma list of addresses never verified */
	char skip_domains[2048]; /* comma list of sender domains never verified */
	bool defer_ok;           /* tempfail passes instead of deferring; default no */
	/* unknown verdicts pass, except reasons listed here, which reject */
	callout_reason unknown_reject[CALLOUT_R_COUNT];
	size_t nunknown_reject;
	cd_reply
	    sender_reject; /* 550 5.1.7 Sender address rejected: undeliverable address ($reason) */
	cd_reply sender_defer; /* 450 4.1.7 Sender address rejected: unverified address ($reason) */
	cd_reply recipient_reject; /* 550 5.1.1 Recipient address rejected: undeliverable address
	                              ($reason) */
	cd_reply recipient_defer;  /* 450 4.1.1 Recipient address rejected: unverified address
	                              ($reason) */
	cd_reply in_progress;      /* 450 4.7.1 ... verification in progress, try again later */

	/* [policy] */
	cd_listen policy_listen[CD_LISTEN_MAX];
	size_t npolicy_listen; /* default: inet:127.0.0.1:10040 */
	/* front-end limits (0 is never stored: the keys' ranges start at 1) */
	unsigned policy_max_connections;        /* at once; default 1000 (fd budget caps it) */
	unsigned policy_max_client_connections; /* per client address; default 200 */
	unsigned policy_request_timeout_ms;     /* first byte to empty line; default 10 s */

	/* [milter] */
	char milter_listen[512]; /* libmilter's socket spec ("unix:/path", "inet:PORT@HOST"); "" =
	                            off */
	enum { CD_AT_MAIL, CD_AT_RCPT, CD_AT_DATA } milter_sender_at; /* default rcpt */

	/* [http] */
	cd_listen http_listen[CD_LISTEN_MAX]; /* inet only; default inet:127.0.0.1:8025 */
	size_t nhttp_listen;
	char http_token[256];           /* bearer token; "" = none */
	unsigned http_max_addresses;    /* per POST; default 100 */
	char http_request_options[512]; /* options requests may set: "timeout,..." */
	/* front-end limits */
	unsigned http_max_body;               /* bytes; default 65536 */
	unsigned http_max_connections;        /* at once; default 1000 (fd budget caps it) */
	unsigned http_max_client_connections; /* per client address; default 200 */
	unsigned http_request_timeout_ms; /* accept (or the last reply) to the whole request read;
	                                     default 10 s */
	/* bulk jobs (POST /v1/jobs, jobs.c) */
	unsigned http_max_job_addresses; /* per job; default 1000000 */
	unsigned http_max_job_body;      /* bytes; default 64 MiB */
	unsigned http_job_inflight;      /* verifications of all jobs at once; default 20 */
	unsigned http_max_jobs;          /* jobs stored at once; default 100 */
	unsigned http_job_ttl_ms;        /* a finished job is kept this long; default 7 days */
	bool http_webhooks;              /* a job may name a webhook; default no */
	bool http_webhook_allow_private; /* ... on a private or loopback address; default no */
	char http_webhook_secret[256];   /* HMAC-SHA256 key of X-Callout-Signature; "" = none */

	/* [doctor]: GET /v1/doctor */
	char doctor_dnsbl[1024]; /* blocklist zones, comma separated; "" = none */
	char doctor_domain[256]; /* the target when the request names none; "" = none */

	cd_domain *domains;
	cd_proxy *proxies;
} cd_config;

/* Parse path into a new config (defaults for what it leaves out).  NULL
 * on error, with "FILE:LINE: what is wrong" in err and errno ENOMEM when
 * we ran out of memory (the file may be fine), else the reason the file
 * could not be read or EINVAL. */
cd_config *cd_config_load(const char *path, char *err, size_t errlen);

/* The same from an open file, read from its start (path names it in
 * messages); fd stays open.  Reload reads the file opened at the start
 * this way when the unprivileged daemon may not open it again. */
cd_config *cd_config_load_fd(int fd, const char *path, char *err, size_t errlen);

/* The same from a string (tests, fuzzing); name is used in messages. */
cd_config *cd_config_parse(const char *text, const char *name, char *err, size_t errlen);

void cd_config_free(cd_config *c);

/* Whether [http] request_options opens the option name to requests. */
bool cd_request_option_open(const cd_config *c, const char *name);
/* The options [http] request_options may name, ", "-separated. */
const char *cd_request_option_names(void);

/* The [proxy NAME] section, or NULL. */
const cd_proxy *cd_config_proxy(const cd_config *c, const char *name);

/* The [domain] section for a domain (normalised), or NULL. */
const cd_domain *cd_config_domain(const cd_config *c, const char *domain);

/* Fill libcallout options from the config (strings point into c). */
void cd_config_options(const cd_config *c, callout_options *o);

/* Whether addr (numeric, "1.2.3.4" or "::1") is in the skip networks. */
bool cd_config_skip_client(const cd_config *c, const char *addr);

/* Whether the sender address, or its domain, is on a skip list. */
bool cd_config_skip_sender(const cd_config *c, const char *sender);

const char *cd_mode_name(cd_mode m);

#endif
