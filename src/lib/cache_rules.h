/*
 * What to remember and what to answer from memory: the cache policy,
 * as pure functions of records, outcomes and the time (so the rules are
 * tested with any clock).  The engine does the I/O.
 */
#ifndef CO_CACHE_RULES_H
#define CO_CACHE_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include <callout/callout.h>

#include "record.h"

typedef struct co_ttls {
	unsigned positive, refresh, negative, tempfail;
	unsigned domain, domain_negative, unreachable;
} co_ttls;

/* Keys looked up before a probe: the address first, then its domain's
 * facts. */
#define CO_LOOKUP_ADDRESS 0
#define CO_LOOKUP_KEYS    7
void co_rules_keys(const char *domain, const char *mailbox, const char *sender,
                   char keys[CO_LOOKUP_KEYS][CO_REC_KEY_MAX]);

typedef struct co_decision {
	int answer;          /* index of the record to answer from, or -1: probe */
	bool refresh;        /* the answer is a valid entry due for a re-probe */
	bool fallback_first; /* the domain refuses <>: probe with the fallback at once */
	bool skip_random;    /* the domain is known not to be a catch-all */
	/* A live postmaster fact (whatever the answer): reported with the
	 * result, and no RCPT to postmaster@DOMAIN is needed */
	callout_postmaster postmaster;
} co_decision;

/* Whether the looked-up records hold a fact of this kind (live or not). */
bool co_rules_has_fact(const co_rec recs[CO_LOOKUP_KEYS], const bool found[CO_LOOKUP_KEYS],
                       co_rec_kind kind);

/* Decide from the looked-up records (as co_rules_keys ordered them). */
co_decision co_rules_decide(const co_ttls *t, int64_t now, const co_rec recs[CO_LOOKUP_KEYS],
                            const bool found[CO_LOOKUP_KEYS], const char *mailbox,
                            const char *sender, bool have_fallback);

/* What a probe found, for co_rules_records. */
typedef struct co_probe_facts {
	const char *domain, *mailbox;
	const char *sender;   /* MAIL FROM asked for, "" for <> */
	const char *fallback; /* the fallback sender used, or NULL */
	callout_verdict verdict;
	callout_reason reason;
	callout_stage stage;
	int code;
	const char *enhanced, *text, *mx, *ip;
	bool tls;
	bool catch_all;       /* the random local part was accepted */
	bool random_rejected; /* ... refused with a 5xx */
	bool fallback_used;   /* <> was refused and the answer came with the fallback */
	bool session_blocked; /* several recipients refused alike, blaming us */
	bool block_seen;      /* the lookup before the probe found "blocks us" */
	bool refresh;         /* a background re-probe of a valid entry */
	bool no_negative;     /* do not store invalid answers */
	bool proxy_failed;    /* a proxy of ours failed on the way: no host was
	                         judged, so "unreachable" is not learned */
	/* postmaster@DOMAIN's answer in the session (never the address's):
	 * its code and enhanced code are the fact's evidence */
	callout_postmaster postmaster;
	int postmaster_code;
	const char *postmaster_enhanced;
} co_probe_facts;

/* The records to store after a probe, with their TTLs in seconds.
 * A fact about the domain comes only from evidence about the domain or
 * the session (DNS, the greeting, EHLO/HELO, MAIL, the catch-all probe,
 * the postmaster probe, the same block of us for several recipients); one
 * recipient's reply is about that recipient.  A TTL of 0 means: forget that key (an acceptance
 * clears the "blocks us" fact the probe's lookup found: the only write
 * an acceptance costs beyond its own record).  Returns how many (at most
 * CO_RULES_RECORDS_MAX). */
#define CO_RULES_RECORDS_MAX 5
unsigned co_rules_records(const co_ttls *t, int64_t now, const co_probe_facts *f,
                          co_rec out[CO_RULES_RECORDS_MAX], unsigned ttl[CO_RULES_RECORDS_MAX]);

/* A record as a result: the fields of res it carries (strings point
 * into rec); cached and age are set from now, from_fact from its kind. */
void co_rules_result(const co_rec *rec, int64_t now, callout_result *res);

#endif
