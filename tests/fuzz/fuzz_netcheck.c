/*
 * libFuzzer target: the destination classifier (co_netcheck_addr).  MX
 * addresses come from anyone's DNS, so every address must get a verdict,
 * and one carrying an IPv4 address (mapped, translated, NAT64, 6to4,
 * Teredo) must never be judged more leniently than what it carries.
 *
 * Input: an address as text ("::ffff:127.0.0.1"), or 4 or 16 raw octets.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "netcheck.h"
#include "fuzz.h"

static co_netcheck *nc;

static co_net_verdict classify(const struct sockaddr_storage *ss)
{
	const char *why = NULL;
	co_net_verdict v = co_netcheck_addr(nc, ss, false, &why);

	CHECK(v == CO_NET_OK || v == CO_NET_PRIVATE || v == CO_NET_NEVER);
	CHECK(why != NULL && (v == CO_NET_OK || why[0] != '\0'));
	/* allowing private destinations changes PRIVATE only */
	co_net_verdict allowed = co_netcheck_addr(nc, ss, true, NULL);
	CHECK(allowed == (v == CO_NET_NEVER ? CO_NET_NEVER : CO_NET_OK));
	CHECK(co_netcheck_addr(nc, ss, false, NULL) == v);
	return v;
}

static struct sockaddr_storage v6_of(const uint8_t a[16])
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
	memcpy(((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr, a, 16);
	return ss;
}

static co_net_verdict classify4(uint32_t a)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	((struct sockaddr_in *)&ss)->sin_family = AF_INET;
	((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(a);
	return classify(&ss);
}

/* The IPv4 address in every wrapping gets the IPv4 verdict. */
static void check_v4(uint32_t a)
{
	co_net_verdict v = classify4(a);
	uint32_t n = htonl(a);
	static const uint8_t last32[][12] = {
	    {[10] = 0xff, [11] = 0xff}, {[8] = 0xff, [9] = 0xff}, {0x00, 0x64, 0xff, 0x9b}};
	uint8_t b[16];

	for (size_t i = 0; i < sizeof(last32) / sizeof(last32[0]); i++) {
		memcpy(b, last32[i], 12);
		memcpy(b + 12, &n, 4);
		struct sockaddr_storage ss = v6_of(b);
		CHECK(classify(&ss) == v);
	}
	memset(b, 0x5a, sizeof(b));
	b[0] = 0x20, b[1] = 0x02;
	memcpy(b + 2, &n, 4);
	struct sockaddr_storage ss = v6_of(b);
	CHECK(classify(&ss) == v);
}

static void check_v6(const uint8_t a[16])
{
	static const uint8_t loopback[16] = {[15] = 1}, unspecified[16] = {0};
	struct sockaddr_storage ss = v6_of(a);
	co_net_verdict v = classify(&ss);
	uint32_t inner[2] = {0, 0};
	struct in6_addr in6;

	memcpy(in6.s6_addr, a, 16);
	unsigned n = co_netcheck_embedded(&in6, inner);
	CHECK(n <= 2);
	/* ::1 and :: are themselves, not IPv4-compatible addresses */
	if (!memcmp(a, loopback, 16) || !memcmp(a, unspecified, 16))
		return;
	for (unsigned i = 0; i < n; i++)
		CHECK(v >= classify4(inner[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[64];
	uint8_t bin[16];

	if (!nc) {
		struct sockaddr_in own = {.sin_family = AF_INET,
		                          .sin_addr.s_addr = htonl(0x01020304)};
		nc = co_netcheck_new();
		CHECK(nc != NULL);
		CHECK(co_netcheck_add(nc, (const struct sockaddr *)&own) == 0);
	}
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		if (inet_pton(AF_INET6, text, bin) == 1) {
			check_v6(bin);
			return 0;
		}
		if (inet_pton(AF_INET, text, bin) == 1) {
			check_v4((uint32_t)bin[0] << 24 | (uint32_t)bin[1] << 16 |
			         (uint32_t)bin[2] << 8 | bin[3]);
			return 0;
		}
	}
	if (size == 4)
		check_v4((uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
		         (uint32_t)data[2] << 8 | data[3]);
	else if (size >= 16)
		check_v6(data);
	return 0;
}
