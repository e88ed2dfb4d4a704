/*
 * libFuzzer target: mailbox parsing (co_addr_parse), HELO names and
 * domain normalisation, with the invariants the rest of the library
 * relies on checked on every accepted input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"

/* Octets check_longer adds to a local part. */
#define LONGER 200

static void check_printable(const char *s)
{
	for (; *s; s++)
		CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f);
}

static void check_addr(const co_addr *a)
{
	size_t ll = strlen(a->local), dl = strlen(a->domain), ml = strlen(a->mailbox);
	CHECK(ll >= 1 && ll <= CO_LOCAL_MAX);
	CHECK(dl >= 1 && dl <= CO_DOMAIN_MAX);
	CHECK(ml + 2 <= CO_PATH_MAX);
	CHECK(ml == ll + 1 + dl);
	CHECK(memcmp(a->mailbox, a->local, ll) == 0 && a->mailbox[ll] == '@');
	CHECK(strcmp(a->mailbox + ll + 1, a->domain) == 0);
	check_printable(a->mailbox);

	bool high = false;
	for (const char *p = a->local; *p; p++)
		high |= (unsigned char)*p >= 0x80;
	CHECK(high == a->utf8);

	if (a->kind == CO_ADDR_DOMAIN) {
		/* a lower-case ASCII name we could also send in EHLO */
		for (const char *p = a->domain; *p; p++)
			CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
			      *p == '.');
		CHECK(a->ip[0] == '\0');
	} else {
		CHECK(a->domain[0] == '[' && a->domain[dl - 1] == ']');
		CHECK(a->ip[0] != '\0');
	}
	CHECK(co_helo_valid(a->domain));

	/* normal form is a fixed point */
	co_addr b;
	char err[128];
	CHECK(co_addr_parse(a->mailbox, &b, err, sizeof(err)) == 0);
	CHECK(strcmp(a->mailbox, b.mailbox) == 0);
	CHECK(a->kind == b.kind && a->utf8 == b.utf8);
	CHECK(strcmp(a->ip, b.ip) == 0);
}

/* Length alone is never a syntax error: an accepted address with a
 * longer (dot-atom) local part is accepted as exactly that, or too long
 * to ask. */
static void check_longer(const co_addr *a)
{
	char longer[LONGER + CO_PATH_MAX + 1], err[64];
	co_addr b;

	if (a->local[0] == '"')
		return;
	memset(longer, 'x', LONGER);
	memcpy(longer + LONGER, a->mailbox, strlen(a->mailbox) + 1);
	int rc = co_addr_parse(longer, &b, err, sizeof(err));
	CHECK(rc == 0 || rc == CO_ADDR_TOO_LONG);
	if (rc == 0)
		CHECK(strcmp(b.mailbox, longer) == 0);
	else
		CHECK(strlen(longer) + 2 > CO_PATH_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[1100];
	if (size >= sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';

	co_addr a;
	char err[64];
	memset(err, 'x', sizeof(err));
	int rc = co_addr_parse(buf, &a, err, sizeof(err));
	CHECK(rc == 0 || rc == CO_ADDR_SYNTAX || rc == CO_ADDR_TOO_LONG);
	if (rc == 0) {
		check_addr(&a);
		check_longer(&a);
	} else {
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		CHECK(err[0] != '\0');
	}

	(void)co_helo_valid(buf);

	char dom[CO_DOMAIN_MAX + 1], dom2[CO_DOMAIN_MAX + 1];
	if (co_domain_normalise(buf, dom, err, sizeof(err)) == 0) {
		CHECK(strlen(dom) >= 1 && strlen(dom) <= CO_DOMAIN_MAX);
		CHECK(co_helo_valid(dom));
		CHECK(co_domain_normalise(dom, dom2, err, sizeof(err)) == 0);
		CHECK(strcmp(dom, dom2) == 0);
	}
	return 0;
}
