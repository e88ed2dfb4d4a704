/*
 * The doctor's internals (callout_doctor_start() in callout.h): the pure
 * parts, unit-tested and fuzzed, and a small c-ares channel for the
 * lookups dns.c does not offer (PTR, plain A/AAAA with their exact
 * status: NXDOMAIN apart from SERVFAIL).
 */
#ifndef CO_DOCTOR_H
#define CO_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;

/* The DNSBL query name of sa under zone: "4.3.2.1.zone" for 1.2.3.4, 32
 * reversed nibbles for IPv6 (an IPv4-mapped IPv6 address as IPv4).  False
 * for another family or when out (len bytes) is too small. */
bool co_dnsbl_name(const struct sockaddr *sa, const char *zone, char *out, size_t len);

/* Find an RFC 5322 date-time ("[Day, ]D Mon YYYY HH:MM[:SS] ZONE", zone
 * +HHMM/-HHMM, UT, UTC, GMT, Z or a US zone name) anywhere in text (len
 * bytes, any bytes) and return it in Unix seconds in *out.  False when
 * there is none or it is not a valid date. */
bool co_banner_date(const char *text, size_t len, long long *out);

/* Unix seconds of the date in __DATE__-like s ("Jun  3 2024"), 00:00 UTC;
 * -1 when it does not parse. */
long long co_build_date(const char *s);

/* ---- doctor_dns.c ---- */

typedef struct co_rdns co_rdns;

typedef enum co_rdns_status {
	CO_RDNS_OK = 0,   /* answers[] has at least one entry */
	CO_RDNS_NXDOMAIN, /* the name does not exist */
	CO_RDNS_NODATA,   /* the name exists, but without this type */
	CO_RDNS_TEMPFAIL  /* SERVFAIL, REFUSED, timeout, garbage: could not tell */
} co_rdns_status;

/* answers: names (PTR) or numeric addresses (A, AAAA); why: the failure
 * ("SERVFAIL", "timeout") for TEMPFAIL, else "".  Called once from the
 * loop, never after co_rdns_free(). */
typedef void (*co_rdns_cb)(void *arg, co_rdns_status st, const char *const *answers, unsigned n,
                           const char *why);

/* servers as co_dns_new(); NULL with a reason in err on failure. */
co_rdns *co_rdns_new(struct event_base *base, const char *servers, unsigned timeout_ms, char *err,
                     size_t errlen);
/* Drops every lookup in flight (no callbacks). */
void co_rdns_free(co_rdns *r);
/* type: 1 (A), 28 (AAAA) or 12 (PTR).  -1 when out of memory. */
int co_rdns_query(co_rdns *r, const char *name, int type, co_rdns_cb cb, void *arg);

#endif
