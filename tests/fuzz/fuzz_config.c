/*
 * libFuzzer target: calloutd.conf (src/daemon/config.c through libinih).
 * Any text either parses into a configuration whose every field is
 * within its documented limits, or is refused with a "NAME:LINE: ..."
 * message; parsing twice gives the same configuration, and the queries
 * work on whatever was accepted.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <callout/callout.h>

#include "config.h"
#include "option_table.h"
#include "fuzz.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* NUL-terminated within the field; printable ASCII when asked. */
static void check_str(const char *s, size_t field, bool ascii)
{
	size_t n = strnlen(s, field);
	CHECK(n < field);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		CHECK(c >= 0x20 && c != 0x7f);
		CHECK(!ascii || c < 0x7f);
	}
}

/* lower-case letters, digits, '-', '.' */
static void check_domain(const char *s, size_t field)
{
	check_str(s, field, true);
	CHECK(*s);
	for (; *s; s++)
		CHECK((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.');
}

static void check_reply(const cd_reply *r, int klass)
{
	CHECK(r->code / 100 == klass);
	check_str(r->enhanced, sizeof(r->enhanced), true);
	CHECK(!r->enhanced[0] || r->enhanced[0] - '0' == klass);
	check_str(r->text, sizeof(r->text), true);
	CHECK(r->text[0] && r->text[0] != ' ');
	for (const char *d = strchr(r->text, '$'); d; d = strchr(d + 1, '$'))
		CHECK(strncmp(d + 1, "address", 7) == 0 || strncmp(d + 1, "reason", 6) == 0 ||
		      strncmp(d + 1, "verdict", 7) == 0 || strncmp(d + 1, "code", 4) == 0 ||
		      strncmp(d + 1, "text", 4) == 0);
}

static void check_listen(const cd_listen *l, size_t n, bool unix_ok)
{
	unsigned char buf[16];

	CHECK(n <= CD_LISTEN_MAX);
	for (size_t i = 0; i < n; i++) {
		check_str(l[i].path, sizeof(l[i].path), false);
		check_str(l[i].host, sizeof(l[i].host), true);
		if (l[i].is_unix) {
			CHECK(unix_ok && l[i].path[0] == '/' && l[i].mode <= 0777);
		} else {
			CHECK(inet_pton(AF_INET, l[i].host, buf) == 1 ||
			      inet_pton(AF_INET6, l[i].host, buf) == 1);
			CHECK(l[i].port >= 1 && l[i].port <= 65535);
		}
	}
}

static void check_config(const cd_config *c)
{
	callout_options o;

	check_str(c->path, sizeof(c->path), false);
	check_str(c->user, sizeof(c->user), true);
	check_str(c->state_dir, sizeof(c->state_dir), false);
	CHECK(c->state_dir[0] == '/');
	check_str(c->syslog_facility, sizeof(c->syslog_facility), true);
	CHECK(c->mode <= CD_MODE_DRY_RUN);
	CHECK(c->reply_within_ms >= 1 && c->reply_within_ms <= 300000);
	CHECK(c->max_inflight >= 1 && c->max_inflight <= 1000000);

	check_str(c->helo, sizeof(c->helo), true);
	check_str(c->sender, sizeof(c->sender), true);
	check_str(c->fallback_sender, sizeof(c->fallback_sender), true);
	CHECK(!c->sender[0] || strchr(c->sender, '@'));
	CHECK(!c->fallback_sender[0] || strchr(c->fallback_sender, '@'));
	check_str(c->source_address, sizeof(c->source_address), true);
	check_str(c->dns_servers, sizeof(c->dns_servers), true);
	CHECK(!strpbrk(c->dns_servers, " \t"));
	/* every number of the option table within its range (0 for a limit
	 * is CALLOUT_UNLIMITED); no flag the table does not know */
	size_t nopts;
	const co_optdef *opts = co_opt_table(&nopts);
	unsigned known = 0;
	for (size_t i = 0; i < nopts; i++) {
		const co_optdef *d = &opts[i];
		unsigned v;

		known |= d->bit;
		if (d->type == CO_OPT_FLAG || d->type == CO_OPT_TEXT)
			continue;
		memcpy(&v, (const char *)&c->opts + d->offset, sizeof(v));
		CHECK((d->type == CO_OPT_LIMIT && v == CALLOUT_UNLIMITED) ||
		      (v >= d->min && v <= d->max));
	}
	CHECK((c->opts.flags & ~known) == 0);

	check_str(c->cache, sizeof(c->cache), false);
	CHECK(c->cache[0]);

	CHECK(c->nskip_networks <= LEN(c->skip_networks));
	for (size_t i = 0; i < c->nskip_networks; i++) {
		const cd_net *n = &c->skip_networks[i];
		CHECK(n->family == AF_INET || n->family == AF_INET6);
		CHECK(n->prefix <= (n->family == AF_INET ? 32u : 128u));
		for (unsigned bit = n->prefix; bit < 128; bit++) /* host bits cleared */
			CHECK(!(n->addr[bit / 8] & (0x80u >> (bit % 8))));
	}
	check_str(c->skip_senders, sizeof(c->skip_senders), true);
	check_str(c->skip_domains, sizeof(c->skip_domains), true);
	CHECK(!strpbrk(c->skip_senders, " \t") && !strpbrk(c->skip_domains, " \t"));
	CHECK(c->nunknown_reject <= LEN(c->unknown_reject));
	for (size_t i = 0; i < c->nunknown_reject; i++)
		CHECK(c->unknown_reject[i] >= CALLOUT_R_CATCH_ALL &&
		      c->unknown_reject[i] <= CALLOUT_R_REJECTED);
	check_reply(&c->sender_reject, 5);
	check_reply(&c->recipient_reject, 5);
	check_reply(&c->sender_defer, 4);
	check_reply(&c->recipient_defer, 4);
	check_reply(&c->in_progress, 4);

	check_listen(c->policy_listen, c->npolicy_listen, true);
	check_str(c->milter_listen, sizeof(c->milter_listen), false);
	CHECK(c->milter_sender_at <= CD_AT_DATA);
	check_listen(c->http_listen, c->nhttp_listen, false);
	check_str(c->http_token, sizeof(c->http_token), true);
	CHECK(!strchr(c->http_token, ' '));
	CHECK(c->http_max_addresses >= 1 && c->http_max_addresses <= 10000);

	for (const cd_domain *d = c->domains; d; d = d->next) {
		char upper[256];
		check_domain(d->name, sizeof(d->name));
		check_str(d->route, sizeof(d->route), true);
		CHECK(d->action <= CD_DOM_VERIFY && d->mode <= CD_MODE_DRY_RUN);
		CHECK(d->has_mode || d->mode == CD_MODE_ENFORCE);
		CHECK(cd_config_domain(c, d->name) == d); /* names are unique */
		for (size_t i = 0; i < sizeof(upper); i++)
			upper[i] = (char)(d->name[i] >= 'a' && d->name[i] <= 'z' ? d->name[i] - 32
			                                                         : d->name[i]);
		CHECK(cd_config_domain(c, upper) == d);
	}

	cd_config_options(c, &o);
	CHECK(o.struct_size == sizeof(o) && o.deadline_ms == c->opts.deadline_ms);
	CHECK(o.flags == c->opts.flags);
	/* the options say what the file says: each table value prints the same */
	for (size_t i = 0; i < nopts; i++) {
		char a[64], b[64];
		if (opts[i].type != CO_OPT_TEXT)
			CHECK(strcmp(co_opt_format(&opts[i], &o, a, sizeof(a)),
			             co_opt_format(&opts[i], &c->opts, b, sizeof(b))) == 0);
	}
	cd_config_skip_client(c, "127.0.0.1");
	cd_config_skip_client(c, "::ffff:10.1.2.3");
	cd_config_skip_client(c, "2001:db8::1");
	cd_config_skip_sender(c, "alice@example.org");
	cd_config_skip_sender(c, "x@Y");
	/* every skip-listed address and domain is found */
	char list[2048];
	memcpy(list, c->skip_senders, sizeof(list));
	for (char *save = NULL, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save))
		CHECK(cd_config_skip_sender(c, a));
	memcpy(list, c->skip_domains, sizeof(list));
	for (char *save = NULL, *d = strtok_r(list, ",", &save); d;
	     d = strtok_r(NULL, ",", &save)) {
		char addr[300] = "x@";
		strcat(addr, d);
		CHECK(cd_config_skip_sender(c, addr));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], err2[256];
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cd_config *c = cd_config_parse(text, "fuzz", err, sizeof(err));
	cd_config *again = cd_config_parse(text, "fuzz", err2, sizeof(err2));
	CHECK(!c == !again);
	if (c) {
		check_config(c);
		/* deterministic: the same bytes (the domain lists aside) */
		cd_domain *h1 = c->domains, *h2 = again->domains, *d1 = h1, *d2 = h2;
		c->domains = again->domains = NULL;
		CHECK(memcmp(c, again, sizeof(*c)) == 0);
		c->domains = h1;
		again->domains = h2;
		for (; d1 && d2; d1 = d1->next, d2 = d2->next)
			CHECK(memcmp(d1->name, d2->name, sizeof(d1->name)) == 0 &&
			      memcmp(d1->route, d2->route, sizeof(d1->route)) == 0 &&
			      d1->action == d2->action && d1->has_mode == d2->has_mode &&
			      d1->mode == d2->mode);
		CHECK(!d1 && !d2);
	} else {
		CHECK(strnlen(err, sizeof(err)) < sizeof(err));
		CHECK(strncmp(err, "fuzz:", 5) == 0);
		CHECK(strcmp(err, err2) == 0);
	}
	cd_config_free(c);
	cd_config_free(again);
	free(text);
	return 0;
}
