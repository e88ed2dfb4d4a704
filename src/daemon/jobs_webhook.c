/*
 * The webhook of a bulk job (jobs_webhook.h): libevent's HTTP client, one
 * attempt at a time.  A host name is resolved at each attempt with
 * libevent's asynchronous resolver (a blocking getaddrinfo would hold the
 * loop, and with it the mail), and the address it gives is checked before
 * it is used, so that a name that turns private is not followed.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "daemon.h"
#include "jobs_webhook.h"

#define ATTEMPT_TIMEOUT 10 /* s: connect, send, answer */

struct cd_webhook {
	struct event_base *base;
	struct evdns_base *dns;                /* for a host name; made at the first attempt */
	struct evdns_getaddrinfo_request *gai; /* a resolution under way */
	struct evhttp_connection *evcon;
	struct event *timer; /* the next attempt, or freeing evcon after one */
	char *url, *body, *host, *path, *dns_servers;
	char ip[64], signature[80], job[40];
	bool by_name, allow_private;
	int port;
	unsigned tries;
	int phase;     /* W_WAIT: the timer starts an attempt; else it ends one */
	char why[256]; /* the last attempt's failure */
	void (*done)(void *arg, bool delivered);
	void *arg;
};

/* Loopback, private, link-local, shared, multicast, unspecified,
 * documentation: nowhere a webhook of someone on the Internet belongs. */
static bool private_v4(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 20) == 0xac1 ||
	       (a >> 16) == 0xc0a8 || (a >> 16) == 0xa9fe || (a >> 22) == (100 << 2 | 1) ||
	       (a >> 28) >= 0xe || (a >> 8) == 0xc00002 || (a >> 8) == 0xc63364 ||
	       (a >> 8) == 0xcb0071;
}

static bool private_addr(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return private_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family != AF_INET6)
		return true;
	const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(b, v4mapped, 12) == 0)
		return private_v4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
		                  (uint32_t)b[14] << 8 | b[15]);
	bool zero = true;
	for (int i = 0; i < 15; i++)
		zero &= b[i] == 0;
	/* ::, ::1, fc00::/7, fe80::/10, ff00::/8, 2001:db8::/32 */
	return zero || (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
	       b[0] == 0xff || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8);
}

/* host as evhttp gives it, without an IPv6 literal's brackets, into out;
 * false when it does not fit. */
static bool bare_host(const char *host, char *out, size_t len)
{
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n >= len)
		return false;
	memcpy(out, host, n);
	out[n] = '\0';
	return true;
}

/* A host name as DNS takes it: letters, digits, '-', '_' and dots, 253
 * bytes at most. */
static bool dns_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* The numeric address of host, an IP literal, into sa; false for a name. */
static bool ip_literal(const char *host, struct sockaddr_storage *sa)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

bool cd_webhook_check(const char *url, bool allow_private, char *ip, size_t iplen, char *msg,
                      size_t len)
{
	struct evhttp_uri *u;
	const char *scheme, *host;
	char bare[256];
	struct sockaddr_storage sa;
	bool ok = false;

	ip[0] = '\0';
	if (strlen(url) > CD_WEBHOOK_URL_MAX) {
		snprintf(msg, len, "\"webhook\": longer than %d bytes", CD_WEBHOOK_URL_MAX);
		return false;
	}
	if (!(u = evhttp_uri_parse_with_flags(url, 0)) || !(scheme = evhttp_uri_get_scheme(u)) ||
	    strcasecmp(scheme, "http") != 0 || !(host = evhttp_uri_get_host(u)) || !host[0] ||
	    evhttp_uri_get_userinfo(u)) {
		snprintf(msg, len, "\"webhook\": expected http://HOST[:PORT][/PATH]");
		goto out;
	}
	if (!bare_host(host, bare, sizeof(bare))) {
		snprintf(msg, len, "\"webhook\": the host name is too long");
		goto out;
	}
	if (!ip_literal(bare, &sa)) {
		/* a name: resolved when the webhook is sent, not here on the loop */
		ok = dns_name(bare);
		if (!ok)
			snprintf(msg, len, "\"webhook\": %.100s is not a host name", bare);
		goto out;
	}
	if (!allow_private && private_addr((struct sockaddr *)&sa)) {
		snprintf(msg, len,
		         "\"webhook\": %.100s is a private or loopback address ([http] "
		         "webhook_allow_private)",
		         bare);
		goto out;
	}
	snprintf(ip, iplen, "%s", bare);
	ok = true;
out:
	if (u)
		evhttp_uri_free(u);
	return ok;
}

void cd_webhook_signature(const char *secret, const char *body, size_t len, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;

	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac,
	          &maclen))
		maclen = 0;
	memcpy(out, "sha256=", 7);
	for (unsigned i = 0; i < maclen && i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
	out[7 + 2 * (maclen < 32 ? maclen : 32)] = '\0';
}

enum { W_WAIT, W_DELIVERED, W_FAILED };

static void attempt(cd_webhook *w);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	static const unsigned backoff[] = {1, 4, 16, 16};
	cd_webhook *w = arg;
	void (*done)(void *, bool) = w->done;
	void *darg = w->arg;
	(void)fd;
	(void)what;

	/* evhttp must not free a connection inside its own callback: here */
	if (w->evcon) {
		evhttp_connection_free(w->evcon);
		w->evcon = NULL;
	}
	if (w->phase == W_WAIT) {
		attempt(w);
	} else if (w->phase == W_FAILED && w->tries < CD_WEBHOOK_TRIES) {
		struct timeval tv = {backoff[w->tries - 1], 0};

		cd_log(CD_LOG_INFO, "job %s: webhook: %s; again in %u s", w->job, w->why,
		       backoff[w->tries - 1]);
		w->phase = W_WAIT;
		evtimer_add(w->timer, &tv);
	} else {
		bool ok = w->phase == W_DELIVERED;

		if (ok)
			cd_log(CD_LOG_INFO, "job %s: webhook delivered", w->job);
		else
			cd_log(CD_LOG_WARNING, "job %s: webhook: %s; given up after %u attempts",
			       w->job, w->why, w->tries);
		cd_webhook_cancel(w);
		done(darg, ok);
	}
}

static void on_reply(struct evhttp_request *req, void *arg)
{
	cd_webhook *w = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	struct timeval now = {0, 0};

	if (code >= 200 && code < 300) {
		w->phase = W_DELIVERED;
	} else {
		w->phase = W_FAILED;
		if (code)
			snprintf(w->why, sizeof(w->why), "the receiver answered %d", code);
		else
			snprintf(w->why, sizeof(w->why), "no answer from %s port %d", w->ip,
			         w->port);
	}
	evtimer_add(w->timer, &now);
}

/* Connect to w->ip and send. */
static void post(cd_webhook *w)
{
	struct evhttp_request *req;
	struct evkeyvalq *hd;
	char host[320];
	struct timeval now = {0, 0};

	snprintf(w->why, sizeof(w->why), "cannot send to %s port %d", w->ip, w->port);
	if (!(w->evcon = evhttp_connection_base_new(w->base, NULL, w->ip, (ev_uint16_t)w->port)) ||
	    !(req = evhttp_request_new(on_reply, w))) {
		evtimer_add(w->timer, &now);
		return;
	}
	evhttp_connection_set_timeout(w->evcon, ATTEMPT_TIMEOUT);
	evhttp_connection_set_retries(w->evcon, 0);
	hd = evhttp_request_get_output_headers(req);
	if (w->port == 80)
		snprintf(host, sizeof(host), "%s", w->host);
	else
		snprintf(host, sizeof(host), "%s:%d", w->host, w->port);
	evhttp_add_header(hd, "Host", host);
	evhttp_add_header(hd, "Content-Type", "application/json");
	evhttp_add_header(hd, "User-Agent", "calloutd");
	evhttp_add_header(hd, "X-Callout-Job", w->job);
	evhttp_add_header(hd, "X-Callout-Signature", w->signature);
	evhttp_add_header(hd, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), w->body, strlen(w->body));
	if (evhttp_make_request(w->evcon, req, EVHTTP_REQ_POST, w->path) != 0)
		evtimer_add(w->timer, &now); /* evhttp freed req */
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	cd_webhook *w = arg;
	struct timeval now = {0, 0};
	bool private_only = false;

	if (err == EVUTIL_EAI_CANCEL) /* cd_webhook_cancel: w is going */
		return;
	w->gai = NULL;
	w->ip[0] = '\0';
	for (struct evutil_addrinfo *ai = err ? NULL : res; ai && !w->ip[0]; ai = ai->ai_next) {
		if (!w->allow_private && private_addr(ai->ai_addr))
			private_only = true;
		else if (getnameinfo(ai->ai_addr, (socklen_t)ai->ai_addrlen, w->ip, sizeof(w->ip),
		                     NULL, 0, NI_NUMERICHOST) != 0)
			w->ip[0] = '\0';
	}
	if (res)
		evutil_freeaddrinfo(res);
	if (w->ip[0]) {
		post(w);
		return;
	}
	if (err)
		snprintf(w->why, sizeof(w->why), "%.100s does not resolve: %s", w->host,
		         evutil_gai_strerror(err));
	else if (private_only) {
		snprintf(w->why, sizeof(w->why),
		         "%.100s resolves to private or loopback addresses only ([http] "
		         "webhook_allow_private)",
		         w->host);
		w->tries = CD_WEBHOOK_TRIES; /* a setting, not a passing failure: no retry */
	} else
		snprintf(w->why, sizeof(w->why), "%.100s: no usable address", w->host);
	evtimer_add(w->timer, &now);
}

/* A resolver of its own, on the servers calloutd's engine asks. */
static struct evdns_base *resolver(const cd_webhook *w)
{
	struct evdns_base *dns = evdns_base_new(w->base, 0);
	char *list = NULL, *save = NULL;
	int added = 0;

	if (!dns)
		return NULL;
	if (w->dns_servers && (list = strdup(w->dns_servers))) {
		for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
			added += evdns_base_nameserver_ip_add(dns, t) == 0;
		free(list);
	} else if (w->dns_servers) {
		added = 0;
	} else if (evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, "/etc/resolv.conf") == 0) {
		added = (int)evdns_base_count_nameservers(dns);
	}
	/* 0x20 case games trip some forwarders; a webhook gains nothing by them */
	evdns_base_set_option(dns, "randomize-case:", "0");
	if (added == 0) {
		evdns_base_free(dns, 0);
		return NULL;
	}
	return dns;
}

static void attempt(cd_webhook *w)
{
	struct timeval now = {0, 0};
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

	w->tries++;
	w->phase = W_FAILED;
	if (!w->by_name) {
		post(w);
		return;
	}
	if (!w->dns && !(w->dns = resolver(w))) {
		snprintf(w->why, sizeof(w->why), "no DNS server to resolve %.100s", w->host);
		evtimer_add(w->timer, &now);
		return;
	}
	/* may answer at once (then it returns NULL, after on_resolved) */
	w->gai = evdns_getaddrinfo(w->dns, w->host, NULL, &hints, on_resolved, w);
}

cd_webhook *cd_webhook_send(struct event_base *base, const char *url, const char *ip,
                            const cd_webhook_conf *conf, const char *body, const char *job,
                            void (*done)(void *arg, bool delivered), void *arg)
{
	cd_webhook *w = calloc(1, sizeof(*w));
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
	const char *path = u ? evhttp_uri_get_path(u) : NULL,
	           *query = u ? evhttp_uri_get_query(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	char bare[256];

	if (!w || !u || !host || !bare_host(host, bare, sizeof(bare)) ||
	    !(w->timer = evtimer_new(base, on_timer, w)) || !(w->body = strdup(body)) ||
	    !(w->host = strdup(bare)) ||
	    (conf->dns_servers && !(w->dns_servers = strdup(conf->dns_servers))) ||
	    asprintf(&w->path, "%s%s%s", path && path[0] ? path : "/", query ? "?" : "",
	             query ? query : "") < 0) {
		if (w)
			w->path = NULL;
		cd_webhook_cancel(w);
		if (u)
			evhttp_uri_free(u);
		return NULL;
	}
	w->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
	evhttp_uri_free(u);
	w->base = base;
	w->done = done;
	w->arg = arg;
	w->allow_private = conf->allow_private;
	w->by_name = !ip || !ip[0];
	snprintf(w->ip, sizeof(w->ip), "%s", w->by_name ? "" : ip);
	snprintf(w->job, sizeof(w->job), "%s", job);
	cd_webhook_signature(conf->secret, body, strlen(body), w->signature);
	w->phase = W_WAIT;
	struct timeval now = {0, 0};
	evtimer_add(w->timer, &now);
	return w;
}

void cd_webhook_cancel(cd_webhook *w)
{
	if (!w)
		return;
	if (w->gai)
		evdns_getaddrinfo_cancel(w->gai); /* on_resolved hears EVUTIL_EAI_CANCEL */
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->evcon)
		evhttp_connection_free(w->evcon);
	if (w->timer)
		event_free(w->timer);
	free(w->body);
	free(w->host);
	free(w->dns_servers);
	free(w->path);
	free(w);
}
