/* calloutd.conf, queried: what the front ends ask of a configuration. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "config_syntax.h"

/* ---- queries ---------------------------------------------------------- */

/* Length of a domain without one trailing dot. */
static size_t domain_len(const char *d)
{
	size_t n = strlen(d);

	return n > 1 && d[n - 1] == '.' ? n - 1 : n;
}

const cd_proxy *cd_config_proxy(const cd_config *c, const char *name)
{
	for (const cd_proxy *px = c ? c->proxies : NULL; px; px = px->next)
		if (strcmp(px->name, name) == 0)
			return px;
	return NULL;
}

const cd_domain *cd_config_domain(const cd_config *c, const char *domain)
{
	size_t n;

	if (!c || !domain)
		return NULL;
	n = domain_len(domain);
	for (const cd_domain *d = c->domains; d; d = d->next)
		if (strlen(d->name) == n && strncasecmp(d->name, domain, n) == 0)
			return d;
	return NULL;
}

void cd_config_options(const cd_config *c, callout_options *o)
{
	*o = c->opts;
	o->helo = c->helo[0] ? c->helo : NULL;
	o->sender = c->sender;
	o->fallback_sender = c->fallback_sender[0] ? c->fallback_sender : NULL;
	o->source_address = c->source_address[0] ? c->source_address : NULL;
	o->dns_servers = c->dns_servers[0] ? c->dns_servers : NULL;
	o->cache = c->cache[0] ? c->cache : NULL;
	o->proxy = c->proxy[0] ? c->proxy : NULL;
}

static bool prefix_match(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;

	if (memcmp(a, net, bytes) != 0)
		return false;
	if (bits) {
		unsigned char mask = (unsigned char)(0xffu << (8 - bits));
		if ((a[bytes] & mask) != (net[bytes] & mask))
			return false;
	}
	return true;
}

bool cd_config_skip_client(const cd_config *c, const char *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	unsigned char v4[4], v6[16];
	bool has4 = false, has6 = false;
	char buf[INET6_ADDRSTRLEN + 8];
	size_t n;

	if (!c || !addr)
		return false;
	/* also "[::1]", "IPv6:::1" and "fe80::1%eth0" */
	if (addr[0] == '[')
		addr++;
	if (strncasecmp(addr, "IPv6:", 5) == 0)
		addr += 5;
	n = strcspn(addr, "]%");
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, addr, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, v4) == 1) {
		has4 = has6 = true;
		memcpy(v6, mapped, 12);
		memcpy(v6 + 12, v4, 4);
	} else if (inet_pton(AF_INET6, buf, v6) == 1) {
		has6 = true;
		if (memcmp(v6, mapped, 12) == 0) {
			memcpy(v4, v6 + 12, 4);
			has4 = true;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < c->nskip_networks && i < ARRAY_LEN(c->skip_networks); i++) {
		const cd_net *net = &c->skip_networks[i];
		if (net->family == AF_INET && has4 && net->prefix <= 32 &&
		    prefix_match(v4, net->addr, net->prefix))
			return true;
		if (net->family == AF_INET6 && has6 && net->prefix <= 128 &&
		    prefix_match(v6, net->addr, net->prefix))
			return true;
	}
	return false;
}

/* Whether the comma-separated list holds an item matching (s, n) by cmp. */
static bool list_has(const char *list, const char *s, size_t n,
                     bool (*match)(const char *item, size_t ilen, const char *s, size_t n))
{
	while (*list) {
		size_t ilen = strcspn(list, ",");
		if (match(list, ilen, s, n))
			return true;
		list += ilen;
		if (*list == ',')
			list++;
	}
	return false;
}

static bool match_domain(const char *item, size_t ilen, const char *d, size_t n)
{
	return ilen == n && strncasecmp(item, d, n) == 0;
}

/* local part exactly, domain case-insensitively */
static bool match_address(const char *item, size_t ilen, const char *a, size_t n)
{
	const char *at = strrchr(a, '@');
	size_t local = (size_t)(at - a);

	if (ilen != n || memcmp(item, a, local + 1) != 0)
		return false;
	return strncasecmp(item + local + 1, at + 1, n - local - 1) == 0;
}

bool cd_config_skip_sender(const cd_config *c, const char *sender)
{
	const char *at;
	size_t n;

	if (!c || !sender || !*sender)
		return false;
	if (!(at = strrchr(sender, '@')) || at == sender || !at[1])
		return false;
	n = domain_len(at + 1);
	if (list_has(c->skip_domains, at + 1, n, match_domain))
		return true;
	return list_has(c->skip_senders, sender, (size_t)(at - sender) + 1 + n, match_address);
}

const char *cd_mode_name(cd_mode m)
{
	switch (m) {
	case CD_MODE_ENFORCE:
		return "enforce";
	case CD_MODE_TAG:
		return "tag";
	case CD_MODE_DRY_RUN:
		return "dry-run";
	}
	return "?";
}

const char *cd_request_option_names(void)
{
	static char names[512];
	const co_optdef *opts;
	size_t n;

	if (names[0])
		return names;
	opts = co_opt_table(&n);
	for (size_t i = 0; i < n; i++)
		if (opts[i].where & CO_OPT_REQUEST) {
			strcat(names, opts[i].name);
			strcat(names, ", ");
		}
	strcat(names, "transcript");
	return names;
}

bool cd_request_option_open(const cd_config *c, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = c->http_request_options; *p;) {
		size_t m = strcspn(p, ",");
		if (m == n && strncmp(p, name, n) == 0)
			return true;
		p += m + (p[m] == ',');
	}
	return false;
}
