/*
 * Reading the raw DNS messages c-ares hands back (see dns_answer.h): the
 * answer section record by record, and CNAME chains through it.  c-ares
 * 1.18 parses MX, A and AAAA answers itself but neither says where a
 * CNAME chain ended nor keeps the records of other names apart.
 */
#include "dns_answer.h"

#include <ares.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CNAME_CHAIN_MAX 16  /* CNAME records followed inside one answer */
#define ANSWER_RR_MAX   256 /* answer records looked at */

bool co_dns_name_copy(char dst[256], const char *src)
{
	size_t len;

	if (src == NULL)
		return false;
	len = strlen(src);
	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
	dst[len] = '\0';
	return true;
}

static unsigned rd16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

void co_dns_answer_free(co_dns_answer *a)
{
	for (unsigned i = 0; i < a->n; i++)
		ares_free_string(a->rr[i].owner);
	free(a->rr);
	a->rr = NULL;
	a->n = 0;
}

int co_dns_answer_parse(const unsigned char *abuf, int alen, co_dns_answer *a)
{
	const unsigned char *p, *end;
	unsigned qd, an;
	char *s;
	long len;

	a->n = 0;
	a->rr = NULL;
	if (abuf == NULL || alen < 12)
		return ARES_EBADRESP;
	qd = rd16(abuf + 4);
	an = rd16(abuf + 6);
	p = abuf + 12;
	end = abuf + alen;
	for (unsigned i = 0; i < qd; i++) {
		if (ares_expand_name(p, abuf, alen, &s, &len) != ARES_SUCCESS)
			return ARES_EBADRESP;
		ares_free_string(s);
		if (len < 0 || end - p < len + 4)
			return ARES_EBADRESP;
		p += len + 4;
	}
	if (an > ANSWER_RR_MAX)
		an = ANSWER_RR_MAX;
	if (an == 0)
		return ARES_SUCCESS;
	a->rr = calloc(an, sizeof *a->rr);
	if (a->rr == NULL)
		return ARES_ENOMEM;
	for (unsigned i = 0; i < an; i++) {
		co_dns_rr *rr = &a->rr[a->n];

		if (ares_expand_name(p, abuf, alen, &s, &len) != ARES_SUCCESS)
			return ARES_EBADRESP;
		rr->owner = s;
		a->n++;
		if (len < 0 || end - p < len + 10)
			return ARES_EBADRESP;
		p += len;
		rr->type = rd16(p);
		rr->klass = rd16(p + 2);
		rr->rdlen = rd16(p + 8);
		p += 10;
		if ((size_t)(end - p) < rr->rdlen)
			return ARES_EBADRESP;
		rr->rdata = p;
		p += rr->rdlen;
	}
	return ARES_SUCCESS;
}

co_dns_chase co_dns_answer_chase(const unsigned char *abuf, int alen, const co_dns_answer *a,
                                 const char *name, char final[256])
{
	unsigned hops = 0;
	bool found;

	if (!co_dns_name_copy(final, name))
		return CHASE_BAD;
	do {
		found = false;
		for (unsigned i = 0; i < a->n; i++) {
			const co_dns_rr *rr = &a->rr[i];
			char *target;
			long len;
			bool ok;

			if (rr->type != DNS_TYPE_CNAME || rr->klass != DNS_CLASS_IN ||
			    strcasecmp(rr->owner, final) != 0)
				continue;
			if (ares_expand_name(rr->rdata, abuf, alen, &target, &len) != ARES_SUCCESS)
				return CHASE_BAD;
			ok = co_dns_name_copy(final, target);
			ares_free_string(target);
			if (!ok)
				return CHASE_BAD;
			if (++hops > CNAME_CHAIN_MAX)
				return CHASE_LOOP;
			found = true;
			break;
		}
	} while (found);
	return CHASE_OK;
}
