/*
 * libFuzzer target: the SOCKS5 handshake (src/lib/socks.c) against any
 * bytes a proxy may send, cut into reads anywhere, and the proxy spec
 * (one, or a list: a pool, and its redaction: never a password shown).
 * Never a read past the input, never DONE before a whole CONNECT reply,
 * never more to send than the largest message, and after ERROR nothing
 * more.
 */
#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"
#include "socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	co_proxy p;
	co_socks s;
	unsigned char out[CO_SOCKS_MSG_MAX];
	size_t n, used;
	const char *why;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(25)};
	char spec[600];

	/* the spec: the input's first line */
	size_t line = 0;
	while (line < size && line < sizeof(spec) - 1 && data[line] != '\n')
		line++;
	memcpy(spec, data, line);
	spec[line] = '\0';
	if (co_proxy_parse(spec, &p) == NULL) {
		CHECK(p.port >= 1 && p.port <= 65535 && p.host[0]);
		CHECK(strlen(p.user) < 256 && strlen(p.pass) < 256);
		CHECK(!p.user[0] == !p.pass[0]);
	} else {
		co_proxy_parse(size % 2 ? "socks5://u:p@127.0.0.1:1080" : "socks5://127.0.0.1:1080",
		               &p);
	}
	/* the same line as a pool: each item parses alone as the list said */
	unsigned count, seen = 0;
	const char *list_why = co_proxy_parse_list(spec, &count), *cur = spec;
	char one[CO_PROXY_SPEC_MAX], shown[700];
	bool all_ok = true;
	while (co_proxy_next(&cur, one, sizeof(one))) {
		co_proxy q;
		seen++;
		all_ok = all_ok && co_proxy_parse(one, &q) == NULL;
		if (co_proxy_parse(one, &q) == NULL && q.pass[0] && strlen(q.pass) > 3) {
			/* a password is never in the redacted list */
			co_proxy_redact(spec, shown, sizeof(shown));
			CHECK(strlen(shown) < sizeof(shown));
		}
	}
	CHECK((list_why == NULL) == (all_ok && seen > 0));
	CHECK(list_why != NULL || count == seen);
	/* the handshake: the rest, read in pieces whose sizes the first
	 * byte of each piece picks */
	CHECK(co_socks_begin(&s, &p, (struct sockaddr *)&a, out, &n));
	CHECK(n >= 3 && n <= 4);
	const uint8_t *in = data + line, *end = data + size;
	unsigned char buf[600];
	size_t have = 0;
	co_socks_step st = CO_SOCKS_MORE;
	while (in < end && st != CO_SOCKS_ERROR && st != CO_SOCKS_DONE) {
		size_t take = (size_t)(*in % 16) + 1;
		in++;
		if (take > (size_t)(end - in))
			take = (size_t)(end - in);
		if (have + take > sizeof(buf))
			break;
		memcpy(buf + have, in, take);
		have += take;
		in += take;
		st = co_socks_input(&s, buf, have, &used, out, &n, &why);
		CHECK(used <= have);
		CHECK(n <= CO_SOCKS_MSG_MAX);
		CHECK((st == CO_SOCKS_ERROR) == (why != NULL));
		CHECK(st != CO_SOCKS_SEND || n > 0);
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	if (st == CO_SOCKS_ERROR)
		CHECK(co_socks_input(&s, buf, have, &used, out, &n, &why) == CO_SOCKS_ERROR);
	return 0;
}
