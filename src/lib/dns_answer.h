/*
 * Reading the raw DNS messages c-ares hands back: the records of the
 * answer section, and the CNAME chain through them.  Plain functions on
 * bytes, no state and no I/O, for dns.c.
 */
#ifndef CO_DNS_ANSWER_H
#define CO_DNS_ANSWER_H

#include <stdbool.h>

#define DNS_CLASS_IN   1
#define DNS_TYPE_A     1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_MX    15
#define DNS_TYPE_AAAA  28

/* One resource record of the answer section. */
typedef struct co_dns_rr {
	char *owner; /* from ares_expand_name, no trailing dot */
	unsigned type, klass, rdlen;
	const unsigned char *rdata; /* inside the message */
} co_dns_rr;

typedef struct co_dns_answer {
	unsigned n;
	co_dns_rr *rr;
} co_dns_answer;

/*
 * Copy a domain name in lower case (ASCII) without its trailing dot; false
 * if empty or too long.  Servers echo the case of the question in names
 * compressed against it, and host names are keys for the callers.
 */
bool co_dns_name_copy(char dst[256], const char *src);

/* The answer section of a DNS message; ARES_SUCCESS, ARES_EBADRESP or
 * ARES_ENOMEM.  Free it with co_dns_answer_free() whatever it returns. */
int co_dns_answer_parse(const unsigned char *abuf, int alen, co_dns_answer *a);
void co_dns_answer_free(co_dns_answer *a);

typedef enum co_dns_chase { CHASE_OK, CHASE_LOOP, CHASE_BAD, CHASE_NOMEM } co_dns_chase;

/*
 * Follow the CNAME chain that starts at name through the answer; final gets
 * the last name of the chain (name itself when there is no CNAME).
 */
co_dns_chase co_dns_answer_chase(const unsigned char *abuf, int alen, const co_dns_answer *a,
                                 const char *name, char final[256]);

#endif
