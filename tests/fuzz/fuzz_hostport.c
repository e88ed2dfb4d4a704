/*
 * libFuzzer target: the shared parsers of the configuration file and the
 * command line (src/common): HOST[:PORT] under every combination of
 * flags, and durations.  What one of them accepts must mean exactly one
 * thing: written back in its canonical form and parsed again, it gives
 * the same result; what the flags forbid never comes out.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "fuzz.h"
#include "hostport.h"

static void check_hostport(const char *s, unsigned flags)
{
	co_hostport hp, again;
	unsigned char addr[16];
	char canon[300];
	const char *why = co_hostport_parse(s, flags, &hp);

	if (why) {
		CHECK(why[0] != '\0');
		return;
	}
	size_t n = strnlen(hp.host, sizeof(hp.host));
	CHECK(n > 0 && n < sizeof(hp.host));
	CHECK(hp.port <= 65535);
	CHECK(!(flags & CO_HP_NEED_PORT) || hp.port > 0);
	switch (hp.kind) {
	case CO_HOST_IPV4:
		CHECK(inet_pton(AF_INET, hp.host, addr) == 1);
		break;
	case CO_HOST_IPV6:
		CHECK(inet_pton(AF_INET6, hp.host, addr) == 1);
		break;
	case CO_HOST_NAME:
		CHECK(!(flags & CO_HP_NUMERIC));
		CHECK(inet_pton(AF_INET, hp.host, addr) != 1);
		for (const char *p = hp.host; *p; p++)
			CHECK(!(*p >= 'A' && *p <= 'Z') && *p != ':' && *p != '[' && *p != ']');
		break;
	default:
		CHECK(0);
	}
	/* the canonical form parses to the same thing */
	const char *l = hp.kind == CO_HOST_IPV6 ? "[" : "", *r = hp.kind == CO_HOST_IPV6 ? "]" : "";
	if (hp.port)
		snprintf(canon, sizeof(canon), "%s%s%s:%u", l, hp.host, r, hp.port);
	else
		snprintf(canon, sizeof(canon), "%s%s%s", l, hp.host, r);
	CHECK(co_hostport_parse(canon, flags & ~(unsigned)CO_HP_BARE_V6, &again) == NULL);
	CHECK(strcmp(again.host, hp.host) == 0 && again.kind == hp.kind && again.port == hp.port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	unsigned long long ms, again;
	char buf[32]; /* 20 digits and a unit at most */

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	for (unsigned flags = 0; flags < 8; flags++)
		check_hostport(s, flags);
	if (co_duration_parse(s, &ms)) {
		co_duration_format(ms, buf, sizeof(buf));
		CHECK(co_duration_parse(buf, &again) && again == ms);
	}
	free(s);
	return 0;
}
