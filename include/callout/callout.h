/*
 * libcallout: SMTP callout verification.
 *
 * Asks the mail exchanger responsible for an address whether it would
 * accept mail for it (EHLO, MAIL FROM:<>, RCPT TO:<address>, QUIT), and
 * reports an honest verdict with its evidence.
 *
 * Model (like c-ares): an opaque context bound to a libevent loop; any
 * number of asynchronous verifications in flight on it; a callback per
 * verification.  All calls on one context must come from the thread that
 * runs its event loop.  The library never exits, never prints and never
 * aborts on bad input.  A peer that hangs up can raise SIGPIPE on a
 * write: ignore it in the program (the callout tools do).
 *
 * Answers are cached (callout_options.cache): a verification is answered
 * from an address record or a domain fact when one is fresh; identical
 * verifications in flight (same address and MAIL FROM) share one probe,
 * and with Redis one node probes for the fleet.  A probe whose callers
 * all went away still finishes into the cache.
 */
#ifndef CALLOUT_CALLOUT_H
#define CALLOUT_CALLOUT_H

#include <stdbool.h>
#include <stddef.h>

#include <callout/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CALLOUT_BUILDING) && defined(__GNUC__)
#define CALLOUT_API __attribute__((visibility("default")))
#else
#define CALLOUT_API
#endif

struct event_base;

/* Status of a library call (not a verdict). */
typedef enum callout_status {
	CALLOUT_OK = 0,
	CALLOUT_EINVAL,     /* bad argument or option value */
	CALLOUT_ENOMEM,     /* out of memory */
	CALLOUT_EDNS,       /* the DNS resolver could not be set up */
	CALLOUT_ETLS,       /* the TLS library could not be set up */
	CALLOUT_EEVENT,     /* the event loop failed */
	CALLOUT_ECANCELLED, /* the verification was cancelled */
	CALLOUT_ECACHE      /* the cache could not be opened or used */
} callout_status;

/* The answer to "can this address receive mail?" */
typedef enum callout_verdict {
	CALLOUT_VALID = 0, /* the responsible server accepted the recipient */
	CALLOUT_INVALID,   /* positive evidence that mail cannot be delivered */
	CALLOUT_UNKNOWN,   /* the server answered, but not about the mailbox */
	CALLOUT_TEMPFAIL   /* no answer yet: ask again later */
} callout_verdict;

/*
 * Why.  The names (callout_reason_name) are stable and appear in JSON and
 * logs; the numeric values may be extended but never renumbered.
 */
typedef enum callout_reason {
	CALLOUT_R_ACCEPTED = 0, /* valid: RCPT (or VRFY) accepted */
	/* invalid */
	CALLOUT_R_SYNTAX,           /* the address is not an RFC 5321 mailbox */
	CALLOUT_R_NXDOMAIN,         /* the domain does not exist */
	CALLOUT_R_NULL_MX,          /* RFC 7505: the domain accepts no mail */
	CALLOUT_R_NO_MAIL_HOST,     /* no MX and no address, or MX hosts without addresses */
	CALLOUT_R_MAILBOX_UNKNOWN,  /* X.1.1, X.1.x, plain 550 "user unknown" */
	CALLOUT_R_MAILBOX_DISABLED, /* X.2.1 */
	/* unknown */
	CALLOUT_R_CATCH_ALL,            /* a random local part was accepted too */
	CALLOUT_R_POLICY_BLOCK,         /* X.7.x, 554 banner, blocklists: about us */
	CALLOUT_R_NULL_SENDER_REJECTED, /* MAIL FROM:<> refused, no fallback worked */
	CALLOUT_R_SMTPUTF8_UNSUPPORTED, /* UTF-8 address, server lacks SMTPUTF8 */
	CALLOUT_R_MAILBOX_FULL,         /* X.2.2 permanent: exists, cannot take mail */
	CALLOUT_R_REJECTED,             /* permanent refusal that names no cause */
	/* tempfail */
	CALLOUT_R_GREYLISTED,          /* a 4xx that looks like greylisting */
	CALLOUT_R_TEMP_REJECT,         /* any other 4xx */
	CALLOUT_R_TOO_MANY_RECIPIENTS, /* 452 or X.5.3 */
	CALLOUT_R_TIMEOUT,             /* connect, reply or whole-verification timeout */
	CALLOUT_R_CONNECT_FAILED,      /* no host could be connected to */
	CALLOUT_R_CONNECTION_LOST,     /* the server closed the connection */
	CALLOUT_R_PROTOCOL_ERROR,      /* garbage, over-long or out-of-turn replies */
	CALLOUT_R_TLS_FAILED,          /* STARTTLS handshake failed */
	CALLOUT_R_DNS_TEMPFAIL,        /* SERVFAIL, REFUSED, DNS timeout */
	CALLOUT_R_LOCAL_LIMIT,         /* one of our own limits */
	CALLOUT_R_INTERNAL,            /* our own fault (e.g. out of memory) */
	/* unknown (added later; values are never renumbered) */
	CALLOUT_R_PRIVATE_ADDRESS, /* every mail host is loopback, private, link-local,
	                              ours or never routable: not contacted */
	CALLOUT_R_COUNT
} callout_reason;

/* Whether a domain accepts mail for postmaster@DOMAIN, as RFC 5321 4.5.1
 * requires (CALLOUT_F_POSTMASTER).  A fact about the domain, never about
 * the address verified. */
typedef enum callout_postmaster {
	CALLOUT_POSTMASTER_UNKNOWN = 0, /* not asked, not cached, or an answer that
	                                   says nothing (4xx, a policy block, none) */
	CALLOUT_POSTMASTER_ACCEPTED,    /* RCPT TO:<postmaster@DOMAIN> got a 2xx */
	CALLOUT_POSTMASTER_REFUSED      /* ... a 5xx that says "no such user", as
	                                   makes an address invalid */
} callout_postmaster;

/* Where the conclusive answer (or the failure) happened. */
typedef enum callout_stage {
	CALLOUT_STAGE_NONE = 0,
	CALLOUT_STAGE_SYNTAX,
	CALLOUT_STAGE_DNS,
	CALLOUT_STAGE_CONNECT,
	CALLOUT_STAGE_BANNER,
	CALLOUT_STAGE_EHLO,
	CALLOUT_STAGE_HELO,
	CALLOUT_STAGE_STARTTLS,
	CALLOUT_STAGE_VRFY,
	CALLOUT_STAGE_MAIL,
	CALLOUT_STAGE_RCPT,
	CALLOUT_STAGE_RSET,
	CALLOUT_STAGE_COUNT
} callout_stage;

/* Bits for callout_options.flags. */
#define CALLOUT_F_CATCH_ALL         0x0001u /* also RCPT a random local part */
#define CALLOUT_F_TLS               0x0002u /* opportunistic STARTTLS */
#define CALLOUT_F_VRFY              0x0004u /* try VRFY before MAIL/RCPT */
#define CALLOUT_F_TRANSCRIPT        0x0008u /* keep the SMTP dialogue in the result */
#define CALLOUT_F_NO_PIPELINING     0x0010u /* never pipeline, even when offered */
#define CALLOUT_F_NO_CACHE          0x0020u /* neither read nor write the cache */
#define CALLOUT_F_NO_NEGATIVE_CACHE 0x0040u /* do not store invalid answers */
#define CALLOUT_F_ALLOW_PRIVATE                                                                    \
	0x0080u /* contact mail hosts (and address literals) on                                    \
	           loopback, private, link-local or this                                           \
	           host's own addresses; routes always may */
#define CALLOUT_F_NO_LIMIT_WAIT                                                                    \
	0x0100u /* past a limit, answer tempfail/local_limit at                                    \
	           once instead of waiting for a free slot */
#define CALLOUT_F_LOCAL_LIMITS                                                                     \
	0x0200u /* with a Redis cache, keep the per-domain and                                     \
	           per-MX limits in this process only instead of                                   \
	           sharing them with the fleet on its server */
/* Also RCPT postmaster@DOMAIN (RFC 5321 4.5.1) in the same transaction,
 * after the address (and the catch-all probe), unless the domain's answer
 * is cached: a fact about the domain, in callout_result.postmaster, that
 * never changes the verdict.  Pipelined with the other RCPTs when the
 * server offers PIPELINING (no round trip more); without it, one more.
 * Replies come in order: a server that never answers it holds the
 * address's answer until the command timeout (which then stands). */
#define CALLOUT_F_POSTMASTER 0x0400u
/* Also hear the end of a greylisting re-check (greylist_recheck): a
 * result with recheck_in > 0 is followed by a second call of the callback
 * with the re-check's answer (recheck_in 0), or with the greylisted one
 * again when this verification's deadline, moved to the last re-check
 * plus deadline_ms, passes first.  The query stays valid (and can be
 * cancelled) until that second call; callout_ctx_run() runs until then. */
#define CALLOUT_F_RECHECK_WAIT 0x8000u

/* For a limit in callout_options: no limit at all. */
#define CALLOUT_UNLIMITED ((unsigned)-1)

/*
 * Options.  Always start from callout_options_init(), which sets
 * struct_size and the defaults; fields added later go at the end, so a
 * program built against an older header keeps working.
 *
 * Strings are borrowed: the library copies what it keeps.
 * Fields marked [ctx] are read only by callout_ctx_new(); the others are
 * defaults for the context and may be overridden per verification.
 * Every default, range and the name calloutd.conf and callout(1) give a
 * field come from one table (calloutd.conf(5) lists them).  Where a
 * field's range includes 0 (session_idle_ms, cache_tempfail_ttl), 0 is a
 * value; any other numeric field left at 0 takes its default.  A HELO
 * name, sender, fallback sender or source address that is not valid makes
 * callout_ctx_new() and callout_verify() return CALLOUT_EINVAL.
 */
typedef struct callout_options {
	size_t struct_size;          /* sizeof(callout_options), set by init */
	unsigned flags;              /* CALLOUT_F_* */
	const char *helo;            /* EHLO/HELO name; NULL: this host's FQDN */
	const char *sender;          /* MAIL FROM; NULL or "": the null sender <> */
	const char *fallback_sender; /* used when the null sender is refused; NULL: none */
	const char *source_address;  /* local IP to connect from; NULL: any */
	unsigned port;               /* SMTP port of every host; default 25 */
	unsigned connect_timeout_ms; /* default 30000 */
	unsigned command_timeout_ms; /* per reply; default 30000 */
	unsigned deadline_ms;        /* whole verification; default 120000 */
	unsigned max_mx;             /* MX hosts tried at most; default 5 */
	unsigned max_connections;    /* connection attempts at most; default 10 */
	const char *dns_servers;     /* [ctx] "IP[:PORT],..."; NULL: resolv.conf */
	unsigned dns_timeout_ms;     /* [ctx] per DNS try; default 5000 */

	/*
	 * The cache [ctx].  cache is one of
	 *   "lmdb:PATH"   an LMDB file, shared by every process on the host
	 *   "redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=PREFIX]"
	 *                 a Redis server shared by a fleet (port 6379, db 0,
	 *                 prefix "callout:")
	 *   "memory"      this context only (the default when NULL)
	 *   "none"        no cache
	 * A spec that does not parse makes callout_ctx_new() fail with
	 * CALLOUT_EINVAL; a store that cannot be opened or used later is a
	 * fault: verifications go on uncached and log() hears of it once.
	 * TTLs are in seconds.
	 */
	const char *cache;
	unsigned cache_positive_ttl;        /* valid answers; default 604800 (7 days) */
	unsigned cache_refresh;             /* a valid answer older than this is served and
	                                       re-probed in the background; default 86400 */
	unsigned cache_negative_ttl;        /* invalid and unknown answers; default 10800 (3 h) */
	unsigned cache_tempfail_ttl;        /* tempfail answers; default 0: not cached */
	unsigned cache_domain_ttl;          /* domain facts: catch-all, refuses <>;
	                                       default 604800 */
	unsigned cache_domain_negative_ttl; /* no mail service, blocks us, not a
	                                  catch-all; default 10800 */
	unsigned cache_unreachable_ttl;     /* no MX would talk (refused, timed out);
	                                       default 300 */
	unsigned cache_wait_ms;             /* how long to wait for another node's probe
	                                       of the same address (Redis); default 15000 */
	size_t cache_max_bytes;             /* LMDB map size; default 1 GiB */
	/* Faults an operator should hear of (a dead cache, say), one line
	 * each, without a newline [ctx].  NULL: silent. */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
	/* The wall clock in Unix seconds [ctx], for tests and simulations.
	 * NULL: time(). */
	long long (*clock)(void *arg);
	void *clock_arg;

	/*
	 * Protection of the servers we ask [ctx].  A verification that the
	 * cache cannot answer needs a slot under every limit below; one past a
	 * limit waits for a slot within its deadline (or, with
	 * CALLOUT_F_NO_LIMIT_WAIT, is answered tempfail/local_limit at once).
	 * 0 takes the default; CALLOUT_UNLIMITED lifts a limit.  Routes (the
	 * operator's own servers) are exempt from the rates and the backoff.
	 */
	unsigned max_probes;      /* verifications probing at once; default 10000 */
	unsigned max_queued;      /* verifications waiting for a slot; default 10000;
	                             beyond it: tempfail/local_limit at once */
	unsigned domain_sessions; /* SMTP sessions at once per domain; default 4 */
	unsigned host_sessions;   /* SMTP sessions at once per MX IP; default 10 */
	unsigned domain_rate;     /* new sessions per minute per domain; default 60 */
	unsigned domain_burst;    /* ... of which at once; default 10 */
	unsigned host_rate;       /* new sessions per minute per MX IP; default 300 */
	unsigned host_burst;      /* ... of which at once; default 20 */
	/* Session reuse: addresses of one domain waiting at the same time
	 * share a session (MAIL and their RCPTs pipelined, RSET between
	 * groups); a 452 or X.5.3 "too many recipients" sends the rest to
	 * another session. */
	unsigned session_rcpts;   /* RCPTs per session, the catch-all probe
	                             included (the postmaster probe may come
	                             on top in a session's first transaction);
	                             default 10; 1: no reuse */
	unsigned session_idle_ms; /* keep an idle session this long for the next
	                             address of its domain; default 3000; 0: do
	                             not.  An idle session holds a timer on the
	                             loop; callout_ctx_free() ends it at once */
	/* Backoff: consecutive refused connections, connect timeouts and 421
	 * replies from one MX IP stop sessions to it for a while (doubling,
	 * up to 16 times, while it keeps failing); one session then tries
	 * again. */
	unsigned backoff_failures; /* failures that start it; default 3 */
	unsigned backoff_ms;       /* its first length; default 60000 */

	/* A verification's progress [ctx], for debugging (callout check
	 * --trace, calloutd at log_level debug): one line for each change
	 * of a probe's state, without a newline, e.g.
	 *   "   12 ms <a@example.org> dns -> session: mx.example.org [192.0.2.1]:25"
	 * (milliseconds since the probe began; states new, cache, claim,
	 * gate, dns, session, next, store, done).  The wording may change.
	 * NULL: none. */
	void (*trace)(void *arg, const char *line);
	void *trace_arg;

	/* Make every callout through a SOCKS5 proxy [ctx]:
	 * "socks5://[USER:PASSWORD@]HOST:PORT" (RFC 1928, RFC 1929 for the
	 * password; %XX escapes in USER and PASSWORD).  The MX hosts are
	 * still found and judged here (the SSRF guard applies to them); the
	 * proxy CONNECTs to their addresses.  Its failures are tempfail
	 * (connect_failed) and no evidence against the host.  NULL: direct.
	 * Several, comma-separated, make a pool (the pool "default"): each
	 * connection takes the least busy proxy that is up. */
	const char *proxy;
	/* Connections at once through one proxy [ctx]; one past it waits for
	 * a free one like a session past a limit; default 100. */
	unsigned proxy_sessions;
	/* A proxy that fails backoff_failures times in a row (down, refused
	 * our password, broke the handshake) is down: no connection goes
	 * through it, and it is checked this often (a greeting, and the
	 * password, without a CONNECT) until it lets us in [ctx]; default
	 * 5000.  A pool whose every proxy is down answers tempfail
	 * (connect_failed) at once. */
	unsigned proxy_check_ms;
	/* The pool to go through for this verification [request]: a name
	 * given to callout_ctx_add_proxy(), "default" (the proxy above) or
	 * "direct" (none); NULL: the context's proxy.  A domain given its
	 * own with callout_ctx_set_domain_proxy() keeps it.  A name the
	 * context does not know makes callout_verify() return
	 * CALLOUT_EINVAL. */
	const char *proxy_name;

	/*
	 * Greylisting re-checks [ctx].  When a probe's answer is
	 * tempfail/greylisted, the context asks the address again this many
	 * seconds after that answer (each counted from it, increasing; a 0
	 * ends the list; all 0, the default: no re-checks).  A re-check is a
	 * verification like any other (limits, cache, single flight), except
	 * that a tempfail answer in the cache does not answer it; its answer
	 * is cached like any probe's, so the next verification of the address
	 * (the MTA's retry) is answered valid or invalid.  Still tempfail
	 * after the last, it gives up.  One re-check per address and sender;
	 * at most greylist_recheck_max pending (0: the default, 10000; beyond
	 * it none is scheduled).  Pending re-checks hold a timer on the loop
	 * but do not keep callout_ctx_run() running (unless a verification
	 * waits for one: CALLOUT_F_RECHECK_WAIT); callout_ctx_free() cancels
	 * them.  e.g. {300, 900}: after 5 and 15 minutes.
	 */
#define CALLOUT_RECHECK_MAX 8
	unsigned greylist_recheck[CALLOUT_RECHECK_MAX];
	unsigned greylist_recheck_max;

	/* The nodes of the fleet at least [ctx], for the shares of the limits
	 * while their Redis is out of reach: each node keeps limit /
	 * max(nodes counted, fleet_nodes).  A node that never reached Redis
	 * has counted none but itself; default 1. */
	unsigned fleet_nodes;
} callout_options;

/* Fill *opts with the defaults. */
CALLOUT_API void callout_options_init(callout_options *opts);

/* Whether callout_verify() would take these options: CALLOUT_EINVAL for
 * a HELO name, sender, fallback sender or source address that is not
 * valid, or a port out of range ([ctx] fields and proxy_name are not
 * judged). */
CALLOUT_API callout_status callout_options_check(const callout_options *opts);

/*
 * The result of one verification.  Every pointer is borrowed: valid only
 * during the callback (use callout_result_dup() to keep it).  Strings are
 * never NULL (empty when unknown), except transcript, which is NULL unless
 * CALLOUT_F_TRANSCRIPT was set.  Reply text is sanitised to printable
 * ASCII.
 */
typedef struct callout_result {
	callout_verdict verdict;
	callout_reason reason;
	callout_stage stage;    /* where the answer came from */
	int code;               /* SMTP reply code, 0 when none */
	const char *enhanced;   /* enhanced status code "5.1.1", or "" */
	const char *text;       /* reply text, or a description of the failure */
	const char *address;    /* the address as verified (normalised) */
	const char *mx;         /* host name of the server that answered, or "" */
	const char *ip;         /* its IP address, or "" */
	unsigned ms;            /* milliseconds from start to verdict */
	bool catch_all;         /* the random local part was accepted */
	bool tls;               /* the answer came over TLS */
	bool cached;            /* answered from the cache (or by another node's
	                           probe, through Redis) */
	unsigned age;           /* seconds since the cached answer was probed */
	const char *transcript; /* "C: ...\nS: ...\n" lines, or NULL */
	/* Answered from a fact about the whole domain (it is a catch-all,
	 * blocks us, refuses <>, has no mail service, or no MX would talk),
	 * learned from evidence about the domain or a session, never from
	 * another address's reply: stage says where it was learned, text is
	 * its evidence.  Only cached results come from facts. */
	bool from_fact;
	const char *fact;       /* "catch_all", "blocks_us", "null_sender", "no_mail",
	                           "unreachable"; NULL unless from_fact */
	long long fact_learned; /* Unix time the fact was learned */
	/* The mail hosts found for the domain (its MX, up to max_mx, or its
	 * route), best first, separated by spaces; "" for a cached answer,
	 * an address literal, or a failure before DNS.  mx is the one that
	 * answered. */
	const char *mx_hosts;
	/* Whether the domain accepts postmaster@DOMAIN: asked in this
	 * verification's session (CALLOUT_F_POSTMASTER) or a fact of the
	 * cache, whatever the flags.  Never a part of the verdict. */
	callout_postmaster postmaster;
	/* tempfail (greylisted, or again while a re-check is pending) with a
	 * re-check of the address pending (greylist_recheck): in about this
	 * many seconds (at least 1) its answer will be in the cache; 0: none */
	unsigned recheck_in;
} callout_result;

/* Deep copy of a result; NULL on allocation failure.  Free with
 * callout_result_free(). */
CALLOUT_API callout_result *callout_result_dup(const callout_result *res);
CALLOUT_API void callout_result_free(callout_result *res);

typedef struct callout_ctx callout_ctx;
typedef struct callout_query callout_query;

/*
 * Called once per verification that was not cancelled, from the event
 * loop (twice with CALLOUT_F_RECHECK_WAIT and a re-check pending).  status is CALLOUT_OK whenever
 * res holds a verdict (which is always, except when the context is being freed: CALLOUT_ECANCELLED
 * and res NULL).  The query handle is invalid once the callback returns.
 */
typedef void (*callout_cb)(void *arg, callout_status status, const callout_result *res);

/*
 * Create a context on base (NULL: the context makes and owns one; run it
 * with callout_ctx_run()).  opts may be NULL for the defaults.
 */
CALLOUT_API callout_status callout_ctx_new(struct event_base *base, const callout_options *opts,
                                           callout_ctx **out);

/* Cancel every verification in flight (their callbacks are called with
 * CALLOUT_ECANCELLED) and free the context.  When the context owns its
 * loop, it first runs that loop until it is empty, so that closing
 * connections can send their QUIT: remove any persistent events of your
 * own from it before. */
CALLOUT_API void callout_ctx_free(callout_ctx *ctx);

/* The event base of the context. */
CALLOUT_API struct event_base *callout_ctx_base(callout_ctx *ctx);

/* What the context is doing now, for monitoring.  Fields are only ever
 * added at the end: pass sizeof(your struct). */
typedef struct callout_stats {
	unsigned probing;           /* verifications past the cache, holding a slot */
	unsigned waiting;           /* waiting for a slot: max_probes, or a limit of
	                               their domain or MX */
	unsigned sessions;          /* SMTP sessions open, idle ones included */
	unsigned idle_sessions;     /* ... kept for the next address of their domain */
	unsigned hosts_backing_off; /* MX addresses left alone after failures */
	/* Greylisting re-checks (greylist_recheck) */
	unsigned rechecks_pending;             /* addresses waiting for one */
	unsigned long long rechecks_scheduled; /* addresses given one, since the start */
	unsigned long long rechecks_dropped;   /* not given one: greylist_recheck_max */
	unsigned long long rechecks_done[4];   /* ended, by their last answer's verdict
	                                          (callout_verdict; tempfail: gave up) */
} callout_stats;

/* Fill *out (len bytes of it); CALLOUT_EINVAL for NULL arguments. */
CALLOUT_API callout_status callout_ctx_stats(callout_ctx *ctx, callout_stats *out, size_t len);

/* Whether the context's dependencies work, for health checks.  Fields
 * are only ever added at the end: pass sizeof(your struct). */
typedef struct callout_health {
	const char *cache_backend;       /* "lmdb", "redis", "memory" or "none" (static) */
	bool cache_up;                   /* false: failing (lookups find nothing, writes
	                                    are dropped, every answer is probed) */
	unsigned long long cache_errors; /* cache faults since the context was made */
	char cache_error[256];           /* while !cache_up: the fault, without secrets */
	bool dns_up;                     /* false: the last DNS lookup failed (timeout,
	                                    SERVFAIL, REFUSED) */
	unsigned long long dns_errors;   /* lookups that failed so since the start */
	char dns_error[128];             /* while !dns_up: the failure */

	/* The limits on sessions (shared_limits) */
	bool limits_shared;                    /* they hold across the fleet (Redis) */
	bool limits_up;                        /* ... and its server answers (false: each node
	                                          keeps its share, floor(limit / nodes)) */
	unsigned limits_leases;                /* session slots this node holds */
	unsigned limits_nodes;                 /* live nodes, as last counted */
	unsigned long long limits_fallbacks;   /* admissions decided without the server */
	unsigned long long limits_round_trips; /* commands and scripts sent for them */
	unsigned long long limits_admissions;  /* sessions admitted */
} callout_health;

/* Fill *out (len bytes of it); CALLOUT_EINVAL for NULL arguments. */
CALLOUT_API callout_status callout_ctx_health(callout_ctx *ctx, callout_health *out, size_t len);

/* A cache spec (callout_options.cache) fit for logs and output: its
 * password, if any, replaced by "***".  Written into out (truncated to
 * len), which is returned. */
CALLOUT_API const char *callout_cache_spec_redact(const char *spec, char *out, size_t len);

/* Run the context's loop until no verification is left in flight. */
CALLOUT_API callout_status callout_ctx_run(callout_ctx *ctx);

/*
 * Call forward: send the callouts for domain (exact match, case
 * insensitive) to hosts instead of its MX.  hosts is
 * "HOST[:PORT][,HOST[:PORT]...]"; a HOST is a name, an IPv4 address or
 * an IPv6 address in brackets.  A later route for the same domain
 * replaces the earlier one.
 */
CALLOUT_API callout_status callout_ctx_add_route(callout_ctx *ctx, const char *domain,
                                                 const char *hosts);

/*
 * SOCKS5 proxy pools by name, for domains and requests to choose
 * (callout_options.proxy_name).  proxies is one spec or several,
 * comma-separated, as callout_options.proxy takes them; sessions caps
 * the connections at once through each (0: proxy_sessions).  Hosts are
 * resolved now.  CALLOUT_EINVAL for a bad spec, a host that does not
 * resolve, a name already given, "default", "direct", or a name that is
 * empty or longer than 63 bytes.
 */
CALLOUT_API callout_status callout_ctx_add_proxy(callout_ctx *ctx, const char *name,
                                                 const char *proxies, unsigned sessions);

/*
 * Make every callout to domain (exact match, case insensitive; its
 * route's hosts included) go through the pool name, "default", or
 * "direct" (no proxy, whatever the request asks).  The domain's choice
 * comes before the request's.  A later call for the same domain replaces
 * the earlier one.  CALLOUT_EINVAL for a name the context does not know.
 */
CALLOUT_API callout_status callout_ctx_set_domain_proxy(callout_ctx *ctx, const char *domain,
                                                        const char *name);

/* How one proxy of a pool is doing (callout_ctx_proxies).  Strings are
 * the context's, valid until it is freed. */
typedef struct callout_proxy_health {
	const char *pool;               /* "default" or the name given */
	const char *proxy;              /* "HOST:PORT", without the password */
	bool up;                        /* false: down, checked until it answers */
	unsigned sessions;              /* connections through it now */
	unsigned long long connections; /* since the start */
	unsigned long long failures;    /* of its own, since the start */
	const char *error;              /* its last failure, or "" */
} callout_proxy_health;

/* Fill out with up to n proxies of every pool; returns how many there
 * are (more than n: out holds the first n). */
CALLOUT_API size_t callout_ctx_proxies(callout_ctx *ctx, callout_proxy_health *out, size_t n);

/*
 * Start verifying address.  opts may be NULL for the context's options;
 * its [ctx] fields are ignored.  cb is always called later from the loop,
 * never from inside this call (even for a syntax error, which is a
 * result: invalid/syntax).  *out, when out is not NULL, receives a handle
 * for callout_cancel().  CALLOUT_EINVAL means bad arguments or options,
 * never a bad address.
 */
CALLOUT_API callout_status callout_verify(callout_ctx *ctx, const char *address,
                                          const callout_options *opts, callout_cb cb, void *arg,
                                          callout_query **out);

/* Stop a verification; its callback will not be called. */
CALLOUT_API void callout_cancel(callout_query *q);

/*
 * Blocking convenience: verify one address on a private loop and return a
 * result to free with callout_result_free().
 */
CALLOUT_API callout_status callout_verify_sync(const char *address, const callout_options *opts,
                                               callout_result **out);

/*
 * The cache, for tools: list, inspect and tidy what a cache holds
 * (the `callout cache` command).  These calls block.
 */
typedef struct callout_cache callout_cache;

typedef struct callout_cache_entry {
	const char *kind; /* "address", or a domain fact: "catch_all",
	                     "null_sender", "no_mail", "blocks_us", "unreachable",
	                     "postmaster" (verdict valid: accepts postmaster@DOMAIN;
	                     invalid: refuses it) */
	const char *domain;
	const char *address;     /* address: the mailbox; otherwise "" */
	const char *sender;      /* address: the MAIL FROM used ("" for <>);
	                            null_sender: the fallback sender that worked */
	callout_verdict verdict; /* what a verification answers from it */
	callout_reason reason;
	callout_stage stage;
	int code;
	const char *enhanced;
	const char *text;
	const char *mx;
	const char *ip;
	bool catch_all; /* catch_all: the domain is one; address: probed with one */
	bool tls;
	long long probed;  /* Unix time of the probe */
	long long expires; /* Unix time it stops being used */
} callout_cache_entry;

typedef struct callout_cache_stats {
	const char *backend;            /* "lmdb", "redis", "memory" */
	unsigned long long bytes_used;  /* LMDB pages in use, Redis used_memory */
	unsigned long long bytes_limit; /* LMDB map size, Redis maxmemory; 0: none */
} callout_cache_stats;

/* Called per entry; return non-zero to stop.  e is borrowed. */
typedef int (*callout_cache_fn)(void *arg, const callout_cache_entry *e);

/* Open a cache by spec (as callout_options.cache; not "none").  On
 * failure err (may be NULL) says why. */
CALLOUT_API callout_status callout_cache_open(const char *spec, callout_cache **out, char *err,
                                              size_t errlen);
CALLOUT_API void callout_cache_close(callout_cache *c);

/* Every entry, or those of one domain; *damaged (may be NULL) counts the
 * records that could not be read. */
CALLOUT_API callout_status callout_cache_list(callout_cache *c, const char *domain,
                                              callout_cache_fn fn, void *arg,
                                              unsigned long *damaged);

/* The entries about an address: its records (one per sender) and the
 * facts about its domain.  EINVAL for an address that does not parse. */
CALLOUT_API callout_status callout_cache_get(callout_cache *c, const char *address,
                                             callout_cache_fn fn, void *arg);

/* Delete the records of an address ("user@example.org", every sender),
 * or of a domain and all its addresses ("@example.org"). */
CALLOUT_API callout_status callout_cache_delete(callout_cache *c, const char *what,
                                                unsigned long *deleted);

/* Delete the entries that expired before now (Unix time; 0: the current
 * time) and the damaged ones. */
CALLOUT_API callout_status callout_cache_purge(callout_cache *c, long long now,
                                               unsigned long *deleted);

CALLOUT_API callout_status callout_cache_stats_get(callout_cache *c, callout_cache_stats *st);

/*
 * The doctor: checks of our own side, for when callouts fail and we may be
 * the cause (`callout doctor`, calloutd's GET /v1/doctor).  One run
 * connects to a target on port 25 (the MX hosts of a domain, tried in
 * order, or one host), learns our egress address (the source address, or
 * the local end of that connection), and checks its PTR, that the PTR
 * name resolves back to it, that the HELO name resolves to it, its
 * listing on DNS blocklists, STARTTLS at the target and the clock.
 * Every network step has a timeout; the whole run has a deadline.
 */
typedef enum callout_doctor_level {
	CALLOUT_DOCTOR_PASS = 0,
	CALLOUT_DOCTOR_WARN, /* works, but may hurt; or could not be checked */
	CALLOUT_DOCTOR_FAIL, /* broken: callouts from here fail or are refused */
	CALLOUT_DOCTOR_SKIP  /* not applicable (say, no connection, no PTR) */
} callout_doctor_level;

/* Options.  Start from callout_doctor_options_init(); fields added later
 * go at the end.  Strings are borrowed for the call. */
typedef struct callout_doctor_options {
	size_t struct_size;
	const char *domain;            /* check against the MX hosts of this domain, or */
	const char *host;              /* this host: NAME, IPv4 or [IPv6], optional :PORT */
	unsigned port;                 /* default 25; a port in host wins */
	const char *helo;              /* NULL: this host's FQDN, as callouts use */
	const char *source_address;    /* local IP to connect from; NULL: any */
	const char *dns_servers;       /* "IP[:PORT],..."; NULL: resolv.conf */
	const char *dnsbl;             /* blocklist zones "ZONE[,ZONE...]"; NULL: none */
	unsigned dns_timeout_ms;       /* per DNS try; default 5000 */
	unsigned connect_timeout_ms;   /* per address; default 10000 */
	unsigned command_timeout_ms;   /* per reply and the TLS handshake; default 10000 */
	unsigned deadline_ms;          /* the whole run; default 60000 */
	unsigned max_mx;               /* MX hosts tried at most; default 5 */
	bool allow_private;            /* a loopback or private target may be contacted */
	long long (*clock)(void *arg); /* Unix seconds; NULL: time() (tests) */
	void *clock_arg;
} callout_doctor_options;

CALLOUT_API void callout_doctor_options_init(callout_doctor_options *o);

/* One check.  Names are stable (JSON, metrics): "connect", "egress",
 * "ptr", "fcrdns", "helo", "dnsbl", "starttls", "clock", in that order. */
typedef struct callout_doctor_check {
	const char *name;
	callout_doctor_level level;
	const char *detail; /* one line: what was found and what to do */
} callout_doctor_check;

/* One blocklist zone's answer about the egress address. */
typedef struct callout_doctor_listing {
	const char *zone;
	int listed;         /* 1 listed, 0 not listed, -1 could not check */
	const char *detail; /* the answer ("127.0.0.2") or the failure */
} callout_doctor_listing;

/* The report: borrowed, valid during the callback.  Strings are never NULL
 * ("" when unknown). */
typedef struct callout_doctor_report {
	const char *target; /* the domain or host as given (normalised) */
	const char *mx;     /* host name connected to, or "" */
	const char *ip;     /* its address, or "" */
	unsigned port;
	const char *egress;         /* our address, or "" */
	const char *helo;           /* the HELO name checked */
	const char *ptr;            /* the egress address's PTR name, or "" */
	callout_doctor_level worst; /* FAIL, WARN or PASS (SKIP counts as PASS) */
	unsigned ms;
	unsigned nchecks;
	const callout_doctor_check *checks;
	unsigned nlistings;
	const callout_doctor_listing *listings;
} callout_doctor_report;

typedef void (*callout_doctor_cb)(void *arg, const callout_doctor_report *rep);
typedef struct callout_doctor callout_doctor;

/*
 * Start the checks on base; cb is called once from the loop (never inside
 * this call) unless cancelled, and the run frees itself after it returns.
 * CALLOUT_EINVAL (with a reason in err, errlen bytes) for options that do
 * not parse: no target or both, a malformed domain, host, port, HELO
 * name, source address, DNS server or blocklist zone.
 */
CALLOUT_API callout_status callout_doctor_start(struct event_base *base,
                                                const callout_doctor_options *opts,
                                                callout_doctor_cb cb, void *arg,
                                                callout_doctor **out, char *err, size_t errlen);

/* Stop a run: its callback is not called. */
CALLOUT_API void callout_doctor_cancel(callout_doctor *d);

/* "pass", "warn", "fail", "skip"; "?" for an out-of-range value. */
CALLOUT_API const char *callout_doctor_level_name(callout_doctor_level l);

/* Names: stable strings for JSON and logs ("valid", "mailbox_unknown",
 * "rcpt"); "?" for an out-of-range value. */
CALLOUT_API const char *callout_verdict_name(callout_verdict v);
CALLOUT_API const char *callout_reason_name(callout_reason r);
CALLOUT_API const char *callout_stage_name(callout_stage s);
CALLOUT_API const char *callout_strerror(callout_status s);

/* The library's version at run time, e.g. "0.1.0". */
CALLOUT_API const char *callout_version(void);

#ifdef __cplusplus
}
#endif

#endif
