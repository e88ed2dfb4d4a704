/* Unit tests for calloutd.conf parsing (src/daemon/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char err[1024];

static cd_config *parse(const char *text)
{
	err[0] = '\0';
	cd_config *c = cd_config_parse(text, "t.conf", err, sizeof(err));
	if (!c)
		print_message("error: %s\n", err);
	assert_non_null(c);
	assert_string_equal(err, "");
	return c;
}

/* The text does not parse and the message starts with want. */
static void parse_fails(const char *text, const char *want)
{
	err[0] = '\0';
	cd_config *c = cd_config_parse(text, "t.conf", err, sizeof(err));
	if (c || strncmp(err, want, strlen(want)) != 0)
		print_message("input:\n%s\nwant: %s\ngot:  %s\n", text, want, err);
	cd_config_free(c);
	assert_null(c);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void check_defaults(const cd_config *c)
{
	assert_string_equal(c->user, "");
	assert_string_equal(c->state_dir, CALLOUT_STATE_DIR);
	assert_false(c->log_stderr);
	assert_string_equal(c->syslog_facility, "mail");
	assert_false(c->debug);
	assert_int_equal(c->mode, CD_MODE_ENFORCE);
	assert_int_equal(c->reply_within_ms, 10000);
	assert_int_equal(c->max_inflight, 10000);
	assert_false(c->tag_no_postmaster);

	assert_string_equal(c->helo, "");
	assert_string_equal(c->sender, "");
	assert_string_equal(c->fallback_sender, "");
	assert_string_equal(c->source_address, "");
	assert_string_equal(c->dns_servers, "");
	assert_int_equal(c->opts.port, 25);
	assert_int_equal(c->opts.deadline_ms, 120000);
	assert_int_equal(c->opts.connect_timeout_ms, 30000);
	assert_int_equal(c->opts.command_timeout_ms, 30000);
	assert_int_equal(c->opts.dns_timeout_ms, 5000);
	assert_int_equal(c->opts.max_mx, 5);
	assert_int_equal(c->opts.max_connections, 10);
	assert_false((c->opts.flags & CALLOUT_F_TLS));
	assert_true((c->opts.flags & CALLOUT_F_CATCH_ALL));
	assert_false((c->opts.flags & CALLOUT_F_VRFY));
	assert_true(!(c->opts.flags & CALLOUT_F_NO_PIPELINING));
	assert_false((c->opts.flags & CALLOUT_F_ALLOW_PRIVATE));
	assert_int_equal(c->opts.max_probes, 10000);
	assert_int_equal(c->opts.max_queued, 10000);
	assert_int_equal(c->opts.domain_sessions, 4);
	assert_int_equal(c->opts.host_sessions, 10);
	assert_int_equal(c->opts.domain_rate, 60);
	assert_int_equal(c->opts.domain_burst, 10);
	assert_int_equal(c->opts.host_rate, 300);
	assert_int_equal(c->opts.host_burst, 20);
	assert_int_equal(c->opts.session_rcpts, 10);
	assert_int_equal(c->opts.session_idle_ms, 3000);
	assert_int_equal(c->opts.backoff_failures, 3);
	assert_int_equal(c->opts.backoff_ms, 60000);
	assert_true(!(c->opts.flags & CALLOUT_F_NO_LIMIT_WAIT));

	assert_string_equal(c->cache, "lmdb:" CALLOUT_STATE_DIR "/cache.lmdb");
	assert_int_equal(c->opts.cache_positive_ttl, 7 * 86400);
	assert_int_equal(c->opts.cache_refresh, 86400);
	assert_int_equal(c->opts.cache_negative_ttl, 3 * 3600);
	assert_int_equal(c->opts.cache_tempfail_ttl, 0);
	assert_int_equal(c->opts.cache_domain_ttl, 7 * 86400);
	assert_int_equal(c->opts.cache_domain_negative_ttl, 3 * 3600);
	assert_int_equal(c->opts.cache_unreachable_ttl, 300);
	assert_true(!(c->opts.flags & CALLOUT_F_NO_NEGATIVE_CACHE));

	assert_true(c->verify_sender);
	assert_true(c->verify_recipient);
	assert_int_equal(c->nskip_networks, 2);
	assert_int_equal(c->skip_networks[0].family, AF_INET);
	assert_int_equal(c->skip_networks[0].prefix, 8);
	assert_int_equal(c->skip_networks[1].family, AF_INET6);
	assert_int_equal(c->skip_networks[1].prefix, 128);
	assert_string_equal(c->skip_senders, "");
	assert_string_equal(c->skip_domains, "");
	assert_false(c->defer_ok);
	assert_int_equal(c->nunknown_reject, 0);
	assert_int_equal(c->sender_reject.code, 550);
	assert_string_equal(c->sender_reject.enhanced, "5.1.7");
	assert_string_equal(c->sender_reject.text,
	                    "<$address>: Sender address rejected: undeliverable address ($reason)");
	assert_int_equal(c->sender_defer.code, 450);
	assert_string_equal(c->sender_defer.enhanced, "4.1.7");
	assert_string_equal(c->sender_defer.text,
	                    "<$address>: Sender address rejected: unverified address ($reason)");
	assert_int_equal(c->recipient_reject.code, 550);
	assert_string_equal(c->recipient_reject.enhanced, "5.1.1");
	assert_string_equal(
	    c->recipient_reject.text,
	    "<$address>: Recipient address rejected: undeliverable address ($reason)");
	assert_int_equal(c->recipient_defer.code, 450);
	assert_string_equal(c->recipient_defer.enhanced, "4.1.1");
	assert_string_equal(c->recipient_defer.text,
	                    "<$address>: Recipient address rejected: unverified address ($reason)");
	assert_int_equal(c->in_progress.code, 450);
	assert_string_equal(c->in_progress.enhanced, "4.7.1");
	assert_string_equal(c->in_progress.text,
	                    "Address verification in progress, try again later");

	assert_int_equal(c->npolicy_listen, 1);
	assert_false(c->policy_listen[0].is_unix);
	assert_string_equal(c->policy_listen[0].host, "127.0.0.1");
	assert_int_equal(c->policy_listen[0].port, 10040);
	assert_string_equal(c->milter_listen, "");
	assert_int_equal(c->milter_sender_at, CD_AT_RCPT);
	assert_int_equal(c->nhttp_listen, 1);
	assert_string_equal(c->http_listen[0].host, "127.0.0.1");
	assert_int_equal(c->http_listen[0].port, 8025);
	assert_string_equal(c->http_token, "");
	assert_int_equal(c->http_max_addresses, 100);
	assert_int_equal(c->policy_max_connections, 1000);
	assert_int_equal(c->policy_max_client_connections, 200);
	assert_int_equal(c->policy_request_timeout_ms, 10000);
	assert_int_equal(c->http_max_body, 65536);
	assert_int_equal(c->http_max_connections, 1000);
	assert_int_equal(c->http_max_client_connections, 200);
	assert_int_equal(c->http_request_timeout_ms, 10000);
	assert_int_equal(c->http_max_job_addresses, 1000000);
	assert_int_equal(c->http_max_job_body, 64 * 1024 * 1024);
	assert_int_equal(c->http_job_inflight, 20);
	assert_int_equal(c->http_max_jobs, 100);
	assert_int_equal(c->http_job_ttl_ms, 7U * 24 * 3600 * 1000);
	assert_false(c->http_webhooks);
	assert_false(c->http_webhook_allow_private);
	assert_string_equal(c->http_webhook_secret, "");
	assert_null(c->domains);
}

static void test_defaults(void **state)
{
	(void)state;
	cd_config *c = parse("");
	check_defaults(c);
	assert_string_equal(c->path, "t.conf");
	cd_config_free(c);

	/* comments, blank lines, empty sections */
	c = parse("# calloutd.conf\n\n; another comment\n   # indented comment\n[daemon]\n\n"
	          "[engine]\n[cache]\n[verify]\n[policy]\n[milter]\n[http]\n");
	check_defaults(c);
	cd_config_free(c);

	c = cd_config_parse(NULL, NULL, err, sizeof(err));
	assert_non_null(c);
	check_defaults(c);
	cd_config_free(c);
}

static const char full[] = "[daemon]\n"
                           "user = callout\n"
                           "state_dir = /srv/callout/\n"
                           "log = stderr\n"
                           "syslog_facility = LOCAL3\n"
                           "log_level = debug\n"
                           "mode = dry-run\n"
                           "reply_within = 2.5s\n"
                           "max_inflight = 500\n"
                           "no_postmaster = Tag\n"
                           "\n"
                           "[engine]\n"
                           "helo = MX1.Example.NET\n"
                           "sender = <probe@Example.NET>\n"
                           "fallback_sender = postmaster@example.net\n"
                           "source_address = 2001:db8::25\n"
                           "dns_servers = 127.0.0.1:5353, [::1]:53 ::1\n"
                           "port = 2525\n"
                           "timeout = 1m\n"
                           "connect_timeout = 500ms\n"
                           "command_timeout = 20\n"
                           "dns_timeout = 0.25s\n"
                           "max_mx = 3\n"
                           "max_connections = 4\n"
                           "tls = yes\n"
                           "catch_all = off\n"
                           "vrfy = TRUE\n"
                           "pipelining = 0\n"
                           "max_probes = 2000\n"
                           "max_queued = 500\n"
                           "domain_sessions = 2\n"
                           "host_sessions = 5\n"
                           "domain_rate = 30\n"
                           "domain_burst = 3\n"
                           "host_rate = 120\n"
                           "host_burst = 6\n"
                           "session_rcpts = 25\n"
                           "session_idle = 1.5s\n"
                           "backoff_failures = 5\n"
                           "backoff = 2m\n"
                           "limit_wait = no\n"
                           "\n"
                           "[cache]\n"
                           "cache = redis://:secret@10.0.0.9:6380/2?prefix=mx1:\n"
                           "positive_ttl = 2d\n"
                           "refresh = 12h\n"
                           "negative_ttl = 90m\n"
                           "tempfail_ttl = 60\n"
                           "domain_ttl = 1d\n"
                           "domain_negative_ttl = 1h\n"
                           "unreachable_ttl = 10m\n"
                           "negative_cache = no\n"
                           "\n"
                           "[verify]\n"
                           "verify_sender = no\n"
                           "verify_recipient = no\n"
                           "skip_networks = 10.0.0.0/8, 192.168.1.7, 2001:db8::/32\n"
                           "skip_senders = alice@Example.ORG, <Bob@example.com>\n"
                           "skip_domains = Example.NET, lists.example.org.\n"
                           "defer_ok = yes\n"
                           "unknown_reject = catch_all, policy_block\n"
                           "sender_reject = 554 5.7.1 No thanks: $address ($reason)\n"
                           "sender_defer = 451 Later\n"
                           "recipient_reject = 550 5.1.1 No such user $address\n"
                           "recipient_defer = 452 4.2.2 $verdict $code $text\n"
                           "in_progress = 450 4.7.1 Wait\n"
                           "\n"
                           "[policy]\n"
                           "listen = unix:/run/callout/policy.sock, inet:[::1]:10041\n"
                           "socket_mode = 0666\n"
                           "\n"
                           "[milter]\n"
                           "listen = inet:8891@127.0.0.1\n"
                           "sender_at = data\n"
                           "\n"
                           "[http]\n"
                           "listen = inet:0.0.0.0:8080\n"
                           "token = s3cret-Token_1\n"
                           "max_addresses = 20\n"
                           "\n"
                           "[domain Example.COM]\n"
                           "action = verify\n"
                           "route = 10.0.0.5, MX.inside.example.com:2525, [2001:db8::5]:25\n"
                           "mode = tag\n"
                           "\n"
                           "[domain skip.example]\n"
                           "action = skip\n";

static void test_every_key(void **state)
{
	(void)state;
	cd_config *c = parse(full);

	assert_string_equal(c->user, "callout");
	assert_string_equal(c->state_dir, "/srv/callout");
	assert_true(c->log_stderr);
	assert_string_equal(c->syslog_facility, "local3");
	assert_true(c->debug);
	assert_int_equal(c->mode, CD_MODE_DRY_RUN);
	assert_int_equal(c->reply_within_ms, 2500);
	assert_int_equal(c->max_inflight, 500);
	assert_true(c->tag_no_postmaster);

	assert_string_equal(c->helo, "mx1.example.net");
	assert_string_equal(c->sender, "probe@example.net");
	assert_string_equal(c->fallback_sender, "postmaster@example.net");
	assert_string_equal(c->source_address, "2001:db8::25");
	assert_string_equal(c->dns_servers, "127.0.0.1:5353,[::1]:53,::1");
	assert_int_equal(c->opts.port, 2525);
	assert_int_equal(c->opts.deadline_ms, 60000);
	assert_int_equal(c->opts.connect_timeout_ms, 500);
	assert_int_equal(c->opts.command_timeout_ms, 20000);
	assert_int_equal(c->opts.dns_timeout_ms, 250);
	assert_int_equal(c->opts.max_mx, 3);
	assert_int_equal(c->opts.max_connections, 4);
	assert_true((c->opts.flags & CALLOUT_F_TLS));
	assert_false((c->opts.flags & CALLOUT_F_CATCH_ALL));
	assert_true((c->opts.flags & CALLOUT_F_VRFY));
	assert_false(!(c->opts.flags & CALLOUT_F_NO_PIPELINING));
	assert_int_equal(c->opts.max_probes, 2000);
	assert_int_equal(c->opts.max_queued, 500);
	assert_int_equal(c->opts.domain_sessions, 2);
	assert_int_equal(c->opts.host_sessions, 5);
	assert_int_equal(c->opts.domain_rate, 30);
	assert_int_equal(c->opts.domain_burst, 3);
	assert_int_equal(c->opts.host_rate, 120);
	assert_int_equal(c->opts.host_burst, 6);
	assert_int_equal(c->opts.session_rcpts, 25);
	assert_int_equal(c->opts.session_idle_ms, 1500);
	assert_int_equal(c->opts.backoff_failures, 5);
	assert_int_equal(c->opts.backoff_ms, 120000);
	assert_false(!(c->opts.flags & CALLOUT_F_NO_LIMIT_WAIT));

	assert_string_equal(c->cache, "redis://:secret@10.0.0.9:6380/2?prefix=mx1:");
	assert_int_equal(c->opts.cache_positive_ttl, 2 * 86400);
	assert_int_equal(c->opts.cache_refresh, 12 * 3600);
	assert_int_equal(c->opts.cache_negative_ttl, 90 * 60);
	assert_int_equal(c->opts.cache_tempfail_ttl, 60);
	assert_int_equal(c->opts.cache_domain_ttl, 86400);
	assert_int_equal(c->opts.cache_domain_negative_ttl, 3600);
	assert_int_equal(c->opts.cache_unreachable_ttl, 600);
	assert_false(!(c->opts.flags & CALLOUT_F_NO_NEGATIVE_CACHE));

	assert_false(c->verify_sender);
	assert_false(c->verify_recipient);
	assert_int_equal(c->nskip_networks, 3);
	assert_int_equal(c->skip_networks[1].prefix, 32);
	assert_string_equal(c->skip_senders, "alice@example.org,Bob@example.com");
	assert_string_equal(c->skip_domains, "example.net,lists.example.org");
	assert_true(c->defer_ok);
	assert_int_equal(c->nunknown_reject, 2);
	assert_int_equal(c->unknown_reject[0], CALLOUT_R_CATCH_ALL);
	assert_int_equal(c->unknown_reject[1], CALLOUT_R_POLICY_BLOCK);
	assert_int_equal(c->sender_reject.code, 554);
	assert_string_equal(c->sender_reject.enhanced, "5.7.1");
	assert_string_equal(c->sender_reject.text, "No thanks: $address ($reason)");
	assert_int_equal(c->sender_defer.code, 451);
	assert_string_equal(c->sender_defer.enhanced, "");
	assert_string_equal(c->sender_defer.text, "Later");
	assert_string_equal(c->recipient_reject.text, "No such user $address");
	assert_int_equal(c->recipient_defer.code, 452);
	assert_string_equal(c->recipient_defer.enhanced, "4.2.2");
	assert_string_equal(c->recipient_defer.text, "$verdict $code $text");
	assert_string_equal(c->in_progress.text, "Wait");

	assert_int_equal(c->npolicy_listen, 2);
	assert_true(c->policy_listen[0].is_unix);
	assert_string_equal(c->policy_listen[0].path, "/run/callout/policy.sock");
	assert_int_equal(c->policy_listen[0].mode, 0666);
	assert_false(c->policy_listen[1].is_unix);
	assert_string_equal(c->policy_listen[1].host, "::1");
	assert_int_equal(c->policy_listen[1].port, 10041);
	assert_string_equal(c->milter_listen, "inet:8891@127.0.0.1");
	assert_int_equal(c->milter_sender_at, CD_AT_DATA);
	assert_int_equal(c->nhttp_listen, 1);
	assert_string_equal(c->http_listen[0].host, "0.0.0.0");
	assert_int_equal(c->http_listen[0].port, 8080);
	assert_string_equal(c->http_token, "s3cret-Token_1");
	assert_int_equal(c->http_max_addresses, 20);

	const cd_domain *d = c->domains;
	assert_non_null(d);
	assert_string_equal(d->name, "example.com");
	assert_int_equal(d->action, CD_DOM_VERIFY);
	assert_string_equal(d->route, "10.0.0.5,mx.inside.example.com:2525,[2001:db8::5]:25");
	assert_true(d->has_mode);
	assert_int_equal(d->mode, CD_MODE_TAG);
	d = d->next;
	assert_non_null(d);
	assert_string_equal(d->name, "skip.example");
	assert_int_equal(d->action, CD_DOM_SKIP);
	assert_string_equal(d->route, "");
	assert_false(d->has_mode);
	assert_null(d->next);
	cd_config_free(c);
}

/* state_dir may come after [cache]; an explicit cache wins. */
static void test_cache_default(void **state)
{
	(void)state;
	cd_config *c = parse("[cache]\npositive_ttl = 1d\n[daemon]\nstate_dir = /srv/x\n");
	assert_string_equal(c->cache, "lmdb:/srv/x/cache.lmdb");
	cd_config_free(c);
	c = parse("[daemon]\nstate_dir = /\n");
	assert_string_equal(c->cache, "lmdb:/cache.lmdb");
	cd_config_free(c);
	c = parse("[cache]\ncache = lmdb:/tmp/c.lmdb\n[daemon]\nstate_dir = /srv/x\n");
	assert_string_equal(c->cache, "lmdb:/tmp/c.lmdb");
	cd_config_free(c);
	c = parse("[cache]\ncache = None\n");
	assert_string_equal(c->cache, "none");
	cd_config_free(c);
	c = parse("[cache]\ncache = memory\n");
	assert_string_equal(c->cache, "memory");
	cd_config_free(c);
}

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
	    /* structure */
	    {"user = x\n", "t.conf:1: user: key outside any section"},
	    {"[daemon]\nuser\n", "t.conf:2: expected key = value"},
	    {"[daemon]\nuser ; = x\n", "t.conf:2: expected key = value"},
	    {"[daemon]\n= x\n", "t.conf:2: [daemon]: a key name is missing"},
	    {"[bogus]\n", "t.conf:1: [bogus]: unknown section"},
	    {"[Daemon]\n", "t.conf:1: [Daemon]: unknown section"},
	    {"[]\n", "t.conf:1: []: unknown section"},
	    {"[daemon\n", "t.conf:1: section header without ']'"},
	    {"[daemon] user = x\n", "t.conf:1: text after the section header"},
	    {"[daemon]\n[engine]\n[daemon]\n",
	     "t.conf:3: [daemon]: section given twice (first on line 1)"},
	    {"[daemon]\nuser = a\n\nuser = b\n",
	     "t.conf:4: [daemon] user: given twice (first on line 2)"},
	    {"[daemon]\nUser = a\n", "t.conf:2: [daemon] User: unknown key"},
	    {"[daemon]\nhelo = a\n", "t.conf:2: [daemon] helo: unknown key"},
	    {"[domain x.example]\nuser = a\n", "t.conf:2: [domain x.example] user: unknown key"},
	    /* indentation */
	    {"[daemon]\n  user = a\n", "t.conf:2: indented line"},
	    {"[daemon]\nuser = a\n  state_dir = /x\n",
	     "t.conf:3: [daemon] user: only a list continues on an indented line"},
	    {"[verify]\nskip_domains = a.example\n\n  b.example\n", "t.conf:4: indented line"},
	    /* [daemon] */
	    {"[daemon]\nuser = -x\n", "t.conf:2: [daemon] user: a user name cannot start"},
	    {"[daemon]\nuser = a b\n", "t.conf:2: [daemon] user: expected a user name"},
	    {"[daemon]\nstate_dir = var/lib\n",
	     "t.conf:2: [daemon] state_dir: expected an absolute path"},
	    {"[daemon]\nstate_dir = /var/lib/my\tcallout\n",
	     "t.conf:2: [daemon] state_dir: expected an absolute path without blanks"},
	    {"[cache]\ncache = lmdb:/var/my cache\n",
	     "t.conf:2: [cache] cache: expected lmdb:/PATH"},
	    {"[milter]\nlisten = unix:/run/my milter\n",
	     "t.conf:2: [milter] listen: expected unix:/ABSOLUTE/PATH"},
	    {"[daemon]\nlog = file\n",
	     "t.conf:2: [daemon] log: expected syslog or stderr, got 'file'"},
	    {"[daemon]\nsyslog_facility = kern\n",
	     "t.conf:2: [daemon] syslog_facility: expected mail, "},
	    {"[daemon]\nlog_level = warning\n",
	     "t.conf:2: [daemon] log_level: expected info or debug"},
	    {"[daemon]\nmode = reject\n",
	     "t.conf:2: [daemon] mode: expected enforce, tag or dry-run, got 'reject'"},
	    {"[daemon]\nreply_within = 301s\n",
	     "t.conf:2: [daemon] reply_within: expected a duration from 1ms to 5m"},
	    {"[daemon]\nreply_within = 0\n",
	     "t.conf:2: [daemon] reply_within: expected a duration"},
	    {"[daemon]\nno_postmaster = reject\n",
	     "t.conf:2: [daemon] no_postmaster: expected ignore or tag, got 'reject'"},
	    {"[daemon]\nmax_inflight = 0\n",
	     "t.conf:2: [daemon] max_inflight: expected a whole number from 1 to 1000000, got '0'"},
	    {"[daemon]\nmax_inflight = -1\n",
	     "t.conf:2: [daemon] max_inflight: expected a whole number"},
	    {"[daemon]\nmax_inflight = 10 000\n",
	     "t.conf:2: [daemon] max_inflight: expected a whole number"},
	    {"[daemon]\nmax_inflight = 99999999999999999999999\n",
	     "t.conf:2: [daemon] max_inflight: expected"},
	    /* [engine] */
	    {"[engine]\nhelo = mx_1.example\n", "t.conf:2: [engine] helo: expected a host name"},
	    {"[engine]\nhelo = [300.1.1.1]\n", "t.conf:2: [engine] helo: expected a host name"},
	    {"[engine]\nhelo = -mx.example\n", "t.conf:2: [engine] helo: expected a host name"},
	    {"[engine]\nsender = nobody\n",
	     "t.conf:2: [engine] sender: expected an address local@domain"},
	    {"[engine]\nsender = a b@example.org\n",
	     "t.conf:2: [engine] sender: the local part must be"},
	    {"[engine]\nsender = a..b@example.org\n", "t.conf:2: [engine] sender: misplaced '.'"},
	    {"[engine]\nsender = a@exa_mple.org\n",
	     "t.conf:2: [engine] sender: expected a domain name"},
	    {"[engine]\nsender = a@b\xc3\xa9.org\n", "t.conf:2: [engine] sender: not ASCII"},
	    {"[engine]\nfallback_sender = <>\n",
	     "t.conf:2: [engine] fallback_sender: <> is not a fallback"},
	    {"[engine]\nsource_address = eth0\n",
	     "t.conf:2: [engine] source_address: expected a local IPv4"},
	    {"[engine]\ndns_servers = 1.2.3.4:99999\n",
	     "t.conf:2: [engine] dns_servers: expected IPv4[:PORT]"},
	    {"[engine]\ndns_servers = ns.example\n",
	     "t.conf:2: [engine] dns_servers: expected IPv4[:PORT]"},
	    {"[engine]\nport = 0\n",
	     "t.conf:2: [engine] port: expected a whole number from 1 to 65535"},
	    {"[engine]\nport = 65536\n",
	     "t.conf:2: [engine] port: expected a whole number from 1 to 65535"},
	    {"[engine]\ntimeout = 2d\n",
	     "t.conf:2: [engine] timeout: expected a duration from 1ms to 1d"},
	    {"[engine]\nconnect_timeout = 0.0001s\n",
	     "t.conf:2: [engine] connect_timeout: expected a duration"},
	    {"[engine]\ncommand_timeout = 1w\n",
	     "t.conf:2: [engine] command_timeout: expected a duration"},
	    {"[engine]\ndns_timeout = .5\n", "t.conf:2: [engine] dns_timeout: expected a duration"},
	    {"[engine]\ndns_timeout = 5.\n", "t.conf:2: [engine] dns_timeout: expected a duration"},
	    {"[engine]\nmax_mx = 101\n",
	     "t.conf:2: [engine] max_mx: expected a whole number from 1 to 100"},
	    {"[engine]\nmax_connections = 1001\n",
	     "t.conf:2: [engine] max_connections: expected a whole number from 1 to 1000"},
	    {"[engine]\ntls = maybe\n", "t.conf:2: [engine] tls: expected yes or no, got 'maybe'"},
	    {"[engine]\npipelining =\n",
	     "t.conf:2: [engine] pipelining: expected yes or no, got ''"},
	    {"[engine]\nmax_probes = 1000001\n",
	     "t.conf:2: [engine] max_probes: expected a whole number from 0 (no limit) to "
	     "1000000, got '1000001'"},
	    {"[engine]\nmax_probes = -1\n",
	     "t.conf:2: [engine] max_probes: expected a whole number from 0 (no limit)"},
	    {"[daemon]\nmax_inflight = 1\n[engine]\nmax_probes = 1\nmax_probes = 2\n",
	     "t.conf:5: [engine] max_probes: given twice (first on line 4)"},
	    {"[engine]\nmax_queued = unlimited\n",
	     "t.conf:2: [engine] max_queued: expected a whole number from 0 (no limit) to "
	     "1000000, got 'unlimited'"},
	    {"[engine]\ndomain_sessions = 4.5\n",
	     "t.conf:2: [engine] domain_sessions: expected a whole number from 0 (no limit)"},
	    {"[engine]\nhost_sessions = 99999999999999999999999\n",
	     "t.conf:2: [engine] host_sessions: expected a whole number from 0 (no limit)"},
	    {"[engine]\ndomain_rate = 60/min\n",
	     "t.conf:2: [engine] domain_rate: expected a whole number from 0 (no limit) to "
	     "1000000, got '60/min'"},
	    {"[engine]\nhost_rate = 1000001\n",
	     "t.conf:2: [engine] host_rate: expected a whole number from 0 (no limit)"},
	    {"[engine]\ndomain_burst = 0\n",
	     "t.conf:2: [engine] domain_burst: expected a whole number from 1 to 1000000, got '0'"},
	    {"[engine]\nhost_burst = 1000001\n",
	     "t.conf:2: [engine] host_burst: expected a whole number from 1 to 1000000"},
	    {"[engine]\nsession_rcpts = 0\n",
	     "t.conf:2: [engine] session_rcpts: expected a whole number from 1 to 1000, got '0'"},
	    {"[engine]\nsession_rcpts = 1001\n",
	     "t.conf:2: [engine] session_rcpts: expected a whole number from 1 to 1000"},
	    {"[engine]\nsession_idle = 61s\n",
	     "t.conf:2: [engine] session_idle: expected a duration from 0 to 1m (e.g. 30s, 1.5s, "
	     "500ms), got '61s'"},
	    {"[engine]\nsession_idle = 3 s\n",
	     "t.conf:2: [engine] session_idle: expected a duration from 0 to 1m"},
	    {"[engine]\nbackoff_failures = 0\n",
	     "t.conf:2: [engine] backoff_failures: expected a whole number from 1 to 1000, "
	     "got '0'"},
	    {"[engine]\nbackoff_failures = 1001\n",
	     "t.conf:2: [engine] backoff_failures: expected a whole number from 1 to 1000"},
	    {"[engine]\nbackoff = 0\n",
	     "t.conf:2: [engine] backoff: expected a duration from 1s to 1h (e.g. 30s, 1.5s, "
	     "500ms), got '0'"},
	    {"[engine]\nbackoff = 999ms\n", "t.conf:2: [engine] backoff: expected a duration"},
	    {"[engine]\nbackoff = 61m\n", "t.conf:2: [engine] backoff: expected a duration"},
	    {"[engine]\nlimit_wait = sometimes\n",
	     "t.conf:2: [engine] limit_wait: expected yes or no, got 'sometimes'"},
	    {"[daemon]\nlimit_wait = no\n", "t.conf:2: [daemon] limit_wait: unknown key"},
	    /* [cache] */
	    {"[cache]\ncache = lmdb:relative\n", "t.conf:2: [cache] cache: expected lmdb:/PATH"},
	    {"[cache]\ncache = redis://\n", "t.conf:2: [cache] cache: expected lmdb:/PATH"},
	    {"[cache]\ncache = mysql://x\n", "t.conf:2: [cache] cache: expected lmdb:/PATH"},
	    {"[cache]\npositive_ttl = 0\n",
	     "t.conf:2: [cache] positive_ttl: expected whole seconds from 1s to 3650d"},
	    {"[cache]\nnegative_ttl = 1500ms\n",
	     "t.conf:2: [cache] negative_ttl: expected whole seconds"},
	    {"[cache]\ntempfail_ttl = 3651d\n",
	     "t.conf:2: [cache] tempfail_ttl: expected whole seconds from 0 to 3650d"},
	    {"[cache]\nrefresh = 1 d\n", "t.conf:2: [cache] refresh: expected whole seconds"},
	    {"[cache]\nnegative_cache = nope\n",
	     "t.conf:2: [cache] negative_cache: expected yes or no"},
	    /* [verify] */
	    {"[verify]\nskip_networks = 10.0.0.0/33\n",
	     "t.conf:2: [verify] skip_networks: expected ADDRESS or ADDRESS/PREFIX (IPv4 or IPv6), "
	     "got '10.0.0.0/33'"},
	    {"[verify]\nskip_networks = ::1/129\n",
	     "t.conf:2: [verify] skip_networks: expected ADDRESS"},
	    {"[verify]\nskip_networks = localhost\n",
	     "t.conf:2: [verify] skip_networks: expected ADDRESS"},
	    {"[verify]\nskip_networks = 10.0.0.0/\n",
	     "t.conf:2: [verify] skip_networks: expected ADDRESS"},
	    {"[verify]\nskip_senders = example.org\n",
	     "t.conf:2: [verify] skip_senders: expected an address"},
	    {"[verify]\nskip_senders = <>\n",
	     "t.conf:2: [verify] skip_senders: expected an address"},
	    {"[verify]\nskip_domains = *.example.org\n",
	     "t.conf:2: [verify] skip_domains: expected a domain name"},
	    {"[verify]\nskip_domains = 192.0.2.1\n",
	     "t.conf:2: [verify] skip_domains: expected a domain name"},
	    {"[verify]\nunknown_reject = mailbox_unknown\n",
	     "t.conf:2: [verify] unknown_reject: expected reasons of the unknown verdict"},
	    {"[verify]\nunknown_reject = catch-all\n",
	     "t.conf:2: [verify] unknown_reject: expected reasons"},
	    {"[verify]\ndefer_ok = 2\n", "t.conf:2: [verify] defer_ok: expected yes or no"},
	    /* [policy] [milter] [http] */
	    {"[policy]\nlisten = inet:localhost:10040\n",
	     "t.conf:2: [policy] listen: not a numeric IPv4 or [IPv6] address"},
	    {"[policy]\nlisten = inet:::1:10040\n",
	     "t.conf:2: [policy] listen: write an IPv6 address in brackets"},
	    {"[policy]\nlisten = inet:127.0.0.1\n", "t.conf:2: [policy] listen: no port"},
	    {"[policy]\nlisten = inet:127.0.0.1:0\n",
	     "t.conf:2: [policy] listen: expected a port from 1 to 65535"},
	    {"[policy]\nlisten = inet:[::1]10040\n",
	     "t.conf:2: [policy] listen: expected ':PORT' after ']'"},
	    {"[policy]\nlisten = unix:relative.sock\n",
	     "t.conf:2: [policy] listen: expected unix:/ABSOLUTE/PATH"},
	    {"[policy]\nlisten = tcp:1.2.3.4:5\n",
	     "t.conf:2: [policy] listen: expected unix:/PATH, inet:IPv4:PORT"},
	    {"[policy]\nlisten = none, inet:127.0.0.1:1\n",
	     "t.conf:2: [policy] listen: 'none' cannot be combined"},
	    {"[policy]\nlisten = none\n  inet:127.0.0.1:1\n",
	     "t.conf:3: [policy] listen: 'none' cannot be combined"},
	    {"[policy]\nsocket_mode = 0778\n",
	     "t.conf:2: [policy] socket_mode: expected an octal mode"},
	    {"[policy]\nsocket_mode = 1777\n",
	     "t.conf:2: [policy] socket_mode: expected an octal mode"},
	    {"[milter]\nlisten = inet:127.0.0.1:8891\n",
	     "t.conf:2: [milter] listen: expected a port"},
	    {"[milter]\nlisten = inet:8891@::1\n",
	     "t.conf:2: [milter] listen: expected an IPv4 address or a host name"},
	    {"[milter]\nlisten = inet6:8891@[127.0.0.1]\n",
	     "t.conf:2: [milter] listen: expected a numeric address in the brackets"},
	    {"[milter]\nlisten = inet:8891@\n",
	     "t.conf:2: [milter] listen: expected a host after '@'"},
	    {"[milter]\nlisten = unix:x.sock\n",
	     "t.conf:2: [milter] listen: expected unix:/ABSOLUTE/PATH"},
	    {"[milter]\nlisten = pipe:x\n",
	     "t.conf:2: [milter] listen: expected unix:/PATH, local:/PATH"},
	    {"[milter]\nsender_at = helo\n",
	     "t.conf:2: [milter] sender_at: expected mail, rcpt or data"},
	    {"[http]\nlisten = unix:/run/x.sock\n",
	     "t.conf:2: [http] listen: only inet:HOST:PORT sockets here"},
	    {"[http]\ntoken = a b\n",
	     "t.conf:2: [http] token: expected printable ASCII without blanks"},
	    {"[http]\nmax_addresses = 10001\n",
	     "t.conf:2: [http] max_addresses: expected a whole number from 1 to 10000"},
	    /* [domain] */
	    {"[domain]\n", "t.conf:1: [domain] needs a domain name"},
	    {"[domain a_b.example]\n", "t.conf:1: [domain a_b.example]: expected a domain name"},
	    {"[domain b\xc3\xa9.example]\n", "t.conf:1: [domain b\xc3\xa9.example]: not ASCII"},
	    {"[domain A.example]\n[domain a.example.]\n",
	     "t.conf:2: [domain a.example]: section given twice"},
	    {"[domain a.example]\naction = reject\n",
	     "t.conf:2: [domain a.example] action: expected default, skip or verify"},
	    {"[domain a.example]\nroute = mx.example:0\n",
	     "t.conf:2: [domain a.example] route: expected HOST[:PORT]"},
	    {"[domain a.example]\nroute = ::1\n",
	     "t.conf:2: [domain a.example] route: expected HOST[:PORT]"},
	    {"[domain a.example]\nroute = [::1\n",
	     "t.conf:2: [domain a.example] route: expected HOST[:PORT]"},
	    {"[domain a.example]\nroute = [10.0.0.1]\n",
	     "t.conf:2: [domain a.example] route: expected HOST[:PORT]"},
	    {"[domain a.example]\nmode = off\n",
	     "t.conf:2: [domain a.example] mode: expected enforce, tag or dry-run"},
	    {"[domain a.example]\nmode = tag\nmode = tag\n",
	     "t.conf:3: [domain a.example] mode: given twice (first on line 2)"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].text, cases[i].want);
}

static unsigned ms_of(const char *key, const char *value)
{
	char text[256];
	snprintf(text, sizeof(text), "[engine]\n%s = %s\n", key, value);
	cd_config *c = parse(text);
	unsigned v = strcmp(key, "timeout") == 0 ? c->opts.deadline_ms : c->opts.connect_timeout_ms;
	cd_config_free(c);
	return v;
}

static unsigned ttl_of(const char *value)
{
	char text[256];
	snprintf(text, sizeof(text), "[cache]\ntempfail_ttl = %s\n", value);
	cd_config *c = parse(text);
	unsigned v = c->opts.cache_tempfail_ttl;
	cd_config_free(c);
	return v;
}

static void test_durations(void **state)
{
	(void)state;
	assert_int_equal(ms_of("timeout", "30"), 30000);
	assert_int_equal(ms_of("timeout", "30s"), 30000);
	assert_int_equal(ms_of("timeout", "0.5"), 500);
	assert_int_equal(ms_of("timeout", "1.25s"), 1250);
	assert_int_equal(ms_of("timeout", "1ms"), 1);
	assert_int_equal(ms_of("timeout", "2m"), 120000);
	assert_int_equal(ms_of("timeout", "1.5m"), 90000);
	assert_int_equal(ms_of("timeout", "1h"), 3600000);
	assert_int_equal(ms_of("timeout", "1d"), 86400000);
	assert_int_equal(ms_of("timeout", "0.001"), 1);
	assert_int_equal(ms_of("connect_timeout", "007s"), 7000);
	assert_int_equal(ttl_of("0"), 0);
	assert_int_equal(ttl_of("90"), 90);
	assert_int_equal(ttl_of("15m"), 900);
	assert_int_equal(ttl_of("1.5h"), 5400);
	assert_int_equal(ttl_of("3650d"), 3650u * 86400u);
	assert_int_equal(ttl_of("2000ms"), 2);

	cd_config *c = parse("[daemon]\nreply_within = 300s\n");
	assert_int_equal(c->reply_within_ms, 300000);
	cd_config_free(c);
	c = parse("[daemon]\nreply_within = 1ms\n");
	assert_int_equal(c->reply_within_ms, 1);
	cd_config_free(c);

	static const char *const bad[] = {
	    "",      "s",   "-1",  "+1",          "1 s", "1S",   "1.",  ".1",
	    "1.5ms", "1e3", "1sm", "99999999999", "1w",  "0x10", "1,5", "1.0000000001"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[engine]\ntimeout = %s\n", bad[i]);
		parse_fails(text, "t.conf:2: [engine] timeout: expected a duration from 1ms to 1d");
	}
}

static void test_limits(void **state)
{
	(void)state;
	cd_config *c = parse("[engine]\nport = 65535\nmax_mx = 100\nmax_connections = 1000\n"
	                     "[daemon]\nmax_inflight = 1000000\n[http]\nmax_addresses = 10000\n");
	assert_int_equal(c->opts.port, 65535);
	assert_int_equal(c->opts.max_mx, 100);
	assert_int_equal(c->opts.max_connections, 1000);
	assert_int_equal(c->max_inflight, 1000000);
	assert_int_equal(c->http_max_addresses, 10000);
	cd_config_free(c);
	c = parse("[engine]\nport = 1\nmax_mx = 1\nmax_connections = 1\n");
	assert_int_equal(c->opts.port, 1);
	cd_config_free(c);
}

/* The limits that protect the servers we ask, as the engine gets them. */
static void test_engine_limits(void **state)
{
	(void)state;
	callout_options o, lib;
	cd_config *c = parse("");

	/* the file's defaults are the library's */
	callout_options_init(&lib);
	cd_config_options(c, &o);
	assert_int_equal(o.max_probes, lib.max_probes);
	assert_int_equal(o.max_queued, lib.max_queued);
	assert_int_equal(o.domain_sessions, lib.domain_sessions);
	assert_int_equal(o.host_sessions, lib.host_sessions);
	assert_int_equal(o.domain_rate, lib.domain_rate);
	assert_int_equal(o.domain_burst, lib.domain_burst);
	assert_int_equal(o.host_rate, lib.host_rate);
	assert_int_equal(o.host_burst, lib.host_burst);
	assert_int_equal(o.session_rcpts, lib.session_rcpts);
	assert_int_equal(o.session_idle_ms, lib.session_idle_ms);
	assert_int_equal(o.backoff_failures, lib.backoff_failures);
	assert_int_equal(o.backoff_ms, lib.backoff_ms);
	assert_int_equal(o.flags & CALLOUT_F_NO_LIMIT_WAIT, 0);
	cd_config_free(c);

	/* 0: no limit; 0 ms idle: not kept */
	c = parse("[engine]\nmax_probes = 0\nmax_queued = 0\ndomain_sessions = 0\n"
	          "host_sessions = 0\ndomain_rate = 0\nhost_rate = 0\nsession_idle = 0\n"
	          "limit_wait = no\n");
	assert_int_equal(c->opts.max_probes, CALLOUT_UNLIMITED);
	assert_int_equal(c->opts.domain_rate, CALLOUT_UNLIMITED);
	assert_int_equal(c->opts.session_idle_ms, 0);
	cd_config_options(c, &o);
	assert_int_equal(o.max_probes, CALLOUT_UNLIMITED);
	assert_int_equal(o.max_queued, CALLOUT_UNLIMITED);
	assert_int_equal(o.domain_sessions, CALLOUT_UNLIMITED);
	assert_int_equal(o.host_sessions, CALLOUT_UNLIMITED);
	assert_int_equal(o.domain_rate, CALLOUT_UNLIMITED);
	assert_int_equal(o.host_rate, CALLOUT_UNLIMITED);
	assert_int_equal(o.session_idle_ms, 0);
	assert_int_equal(o.flags, CALLOUT_F_CATCH_ALL | CALLOUT_F_NO_LIMIT_WAIT);
	/* the bursts and the rest keep their defaults */
	assert_int_equal(o.domain_burst, 10);
	assert_int_equal(o.host_burst, 20);
	assert_int_equal(o.session_rcpts, 10);
	cd_config_free(c);

	/* the bounds */
	c = parse("[engine]\nmax_probes = 1000000\nmax_queued = 1000000\n"
	          "domain_sessions = 1\nhost_sessions = 1000000\ndomain_rate = 1\n"
	          "domain_burst = 1\nhost_rate = 1000000\nhost_burst = 1000000\n"
	          "session_rcpts = 1\nsession_idle = 1m\nbackoff_failures = 1000\n"
	          "backoff = 1h\nlimit_wait = yes\n");
	cd_config_options(c, &o);
	assert_int_equal(o.max_probes, 1000000);
	assert_int_equal(o.max_queued, 1000000);
	assert_int_equal(o.domain_sessions, 1);
	assert_int_equal(o.host_sessions, 1000000);
	assert_int_equal(o.domain_rate, 1);
	assert_int_equal(o.domain_burst, 1);
	assert_int_equal(o.host_rate, 1000000);
	assert_int_equal(o.host_burst, 1000000);
	assert_int_equal(o.session_rcpts, 1);
	assert_int_equal(o.session_idle_ms, 60000);
	assert_int_equal(o.backoff_failures, 1000);
	assert_int_equal(o.backoff_ms, 3600000);
	assert_int_equal(o.flags & CALLOUT_F_NO_LIMIT_WAIT, 0);
	cd_config_free(c);
	c = parse("[engine]\nsession_rcpts = 1000\nsession_idle = 250ms\nbackoff = 1s\n"
	          "backoff_failures = 1\n");
	cd_config_options(c, &o);
	assert_int_equal(o.session_rcpts, 1000);
	assert_int_equal(o.session_idle_ms, 250);
	assert_int_equal(o.backoff_ms, 1000);
	assert_int_equal(o.backoff_failures, 1);
	cd_config_free(c);

	/* each key's error names its line */
	static const char *const keys[] = {
	    "max_probes",       "max_queued", "domain_sessions", "host_sessions", "domain_rate",
	    "domain_burst",     "host_rate",  "host_burst",      "session_rcpts", "session_idle",
	    "backoff_failures", "backoff",    "limit_wait"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char text[128], want[128];
		snprintf(text, sizeof(text), "[engine]\n# comment\n\n%s = x\n", keys[i]);
		snprintf(want, sizeof(want), "t.conf:4: [engine] %s: expected ", keys[i]);
		parse_fails(text, want);
	}
}

static cd_reply reply_of(const char *key, const char *value)
{
	char text[512];
	snprintf(text, sizeof(text), "[verify]\n%s = %s\n", key, value);
	cd_config *c = parse(text);
	cd_reply r = strcmp(key, "sender_reject") == 0 ? c->sender_reject : c->in_progress;
	cd_config_free(c);
	return r;
}

static void test_replies(void **state)
{
	(void)state;
	cd_reply r = reply_of("sender_reject", "550 5.1.7 Go away");
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "5.1.7");
	assert_string_equal(r.text, "Go away");
	r = reply_of("sender_reject", "553   Sender $address: $verdict/$reason, $code $text.");
	assert_int_equal(r.code, 553);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "Sender $address: $verdict/$reason, $code $text.");
	r = reply_of("sender_reject", "550 5.123.456 x");
	assert_string_equal(r.enhanced, "5.123.456");
	r = reply_of("sender_reject", "550 5.1.1 100% sure; really (see http://x.example/?a=b)");
	assert_string_equal(r.text, "100% sure; really (see http://x.example/?a=b)");
	/* " ;" starts a comment */
	r = reply_of("sender_reject", "550 5.1.1 No ; this is a comment");
	assert_string_equal(r.text, "No");
	r = reply_of("in_progress", "421 4.4.5 Busy");
	assert_int_equal(r.code, 421);
	/* a number in the text is text */
	r = reply_of("in_progress", "450 4 times, retry");
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "4 times, retry");

	static const struct {
		const char *key, *value, *want;
	} bad[] = {
	    {"sender_reject", "450 4.1.7 x", "expected \"5.. [5.X.Y] text\" with a 5xx reply code"},
	    {"sender_reject", "560 5.1.7 x", "expected \"5.. [5.X.Y] text\""},
	    {"sender_reject", "55 x", "expected \"5.. [5.X.Y] text\""},
	    {"sender_reject", "5500 x", "expected \"5.. [5.X.Y] text\""},
	    {"sender_reject", "550-5.1.7 x", "expected \"5.. [5.X.Y] text\""},
	    {"sender_reject", "x 550", "expected \"5.. [5.X.Y] text\""},
	    {"sender_reject", "550", "the reply has no text after the code"},
	    {"sender_reject", "550 5.1.7", "the reply has no text after the code"},
	    {"sender_reject", "550 4.1.7 x",
	     "the enhanced status code of a 5xx reply must start with 5."},
	    {"sender_reject", "550 5.1 x", "bad enhanced status code '5.1'"},
	    {"sender_reject", "550 5.1.7.1 x", "bad enhanced status code"},
	    {"sender_reject", "550 5.1000.1 x", "bad enhanced status code"},
	    {"sender_reject", "550 5..1 x", "bad enhanced status code"},
	    {"sender_reject", "550 5.1.x y", "bad enhanced status code"},
	    {"sender_reject", "550 x $foo", "unknown placeholder '$foo'"},
	    {"sender_reject", "550 x $addressee", "unknown placeholder '$addressee'"},
	    {"sender_reject", "550 x ${address}", "unknown placeholder '$'"},
	    {"sender_reject", "550 costs $5", "unknown placeholder '$5'"},
	    {"sender_reject", "550 x $", "unknown placeholder '$'"},
	    {"sender_reject", "550 caf\xc3\xa9", "the text must be printable ASCII"},
	    {"sender_defer", "550 5.1.7 x", "expected \"4.. [4.X.Y] text\" with a 4xx reply code"},
	    {"recipient_defer", "250 ok", "expected \"4.. [4.X.Y] text\""},
	    {"in_progress", "450 5.7.1 x",
	     "the enhanced status code of a 4xx reply must start with 4."},
	    {"recipient_reject", "", "expected \"5.. [5.X.Y] text\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512], want[256];
		snprintf(text, sizeof(text), "[verify]\n\n%s = %s\n", bad[i].key, bad[i].value);
		snprintf(want, sizeof(want), "t.conf:3: [verify] %s: %s", bad[i].key, bad[i].want);
		parse_fails(text, want);
	}
	/* the longest text that fits, and one more */
	char text[600], longtext[CD_TEXT_MAX + 1];
	memset(longtext, 'x', sizeof(longtext));
	longtext[CD_TEXT_MAX - 1] = '\0';
	snprintf(text, sizeof(text), "[verify]\nsender_reject = 550 %s\n", longtext);
	/* 255 characters do not fit a 199-character line: the line limit applies first */
	parse_fails(text, "t.conf:2: line too long (at most 199 characters)");
}

static void test_skip_client(void **state)
{
	(void)state;
	cd_config *c = parse("");
	assert_true(cd_config_skip_client(c, "127.0.0.1"));
	assert_true(cd_config_skip_client(c, "127.255.0.9"));
	assert_true(cd_config_skip_client(c, "::1"));
	assert_true(cd_config_skip_client(c, "::ffff:127.0.0.1"));
	assert_true(cd_config_skip_client(c, "[::1]"));
	assert_true(cd_config_skip_client(c, "IPv6:::1"));
	assert_false(cd_config_skip_client(c, "128.0.0.1"));
	assert_false(cd_config_skip_client(c, "::2"));
	assert_false(cd_config_skip_client(c, ""));
	assert_false(cd_config_skip_client(c, "localhost"));
	assert_false(cd_config_skip_client(c, "unknown"));
	assert_false(cd_config_skip_client(NULL, "127.0.0.1"));
	cd_config_free(c);

	/* a zone is not part of a network */
	parse_fails("[verify]\nskip_networks = 192.0.2.77/24, 10.1.2.3,\n  fe80::1%eth0/10\n",
	            "t.conf:3: [verify] skip_networks: expected ADDRESS");
}

static void test_skip_networks(void **state)
{
	(void)state;
	cd_config *c = parse("[verify]\n"
	                     "skip_networks = 192.0.2.77/24, 10.1.2.3,\n"
	                     "  [2001:db8:1::]/48 ; a comment\n"
	                     "  # a comment between continuation lines\n"
	                     "  172.16.0.0/12 2001:db8:ffff::1\n"
	                     "  ::ffff:198.51.100.0/120\n");
	assert_int_equal(c->nskip_networks, 6);
	/* host bits are cleared */
	assert_int_equal(c->skip_networks[0].addr[3], 0);
	assert_true(cd_config_skip_client(c, "192.0.2.1"));
	assert_true(cd_config_skip_client(c, "192.0.2.255"));
	assert_false(cd_config_skip_client(c, "192.0.3.1"));
	assert_true(cd_config_skip_client(c, "10.1.2.3"));
	assert_false(cd_config_skip_client(c, "10.1.2.4"));
	assert_true(cd_config_skip_client(c, "172.31.255.255"));
	assert_false(cd_config_skip_client(c, "172.32.0.0"));
	assert_true(cd_config_skip_client(c, "2001:db8:1:abcd::5"));
	assert_true(cd_config_skip_client(c, "2001:DB8:1::"));
	assert_false(cd_config_skip_client(c, "2001:db8:2::1"));
	assert_true(cd_config_skip_client(c, "2001:db8:ffff::1"));
	assert_false(cd_config_skip_client(c, "2001:db8:ffff::2"));
	/* IPv4-mapped IPv6 against IPv4 nets, and IPv4 against mapped nets */
	assert_true(cd_config_skip_client(c, "::ffff:192.0.2.9"));
	assert_true(cd_config_skip_client(c, "::ffff:c000:0209"));
	assert_false(cd_config_skip_client(c, "::ffff:192.0.3.9"));
	assert_false(cd_config_skip_client(c, "::192.0.2.9")); /* IPv4-compatible: not mapped */
	assert_true(cd_config_skip_client(c, "198.51.100.42"));
	assert_true(cd_config_skip_client(c, "::ffff:198.51.100.42"));
	assert_false(cd_config_skip_client(c, "198.51.101.42"));
	/* the loopback defaults were replaced */
	assert_false(cd_config_skip_client(c, "127.0.0.1"));
	assert_false(cd_config_skip_client(c, "::1"));
	cd_config_free(c);

	/* an empty list: nothing is skipped; /0 matches everything of a family */
	c = parse("[verify]\nskip_networks =\n");
	assert_int_equal(c->nskip_networks, 0);
	assert_false(cd_config_skip_client(c, "127.0.0.1"));
	cd_config_free(c);
	c = parse("[verify]\nskip_networks = 0.0.0.0/0\n");
	assert_true(cd_config_skip_client(c, "203.0.113.1"));
	assert_true(cd_config_skip_client(c, "::ffff:203.0.113.1"));
	assert_false(cd_config_skip_client(c, "2001:db8::1"));
	cd_config_free(c);
	c = parse("[verify]\nskip_networks = ::/0\n");
	assert_true(cd_config_skip_client(c, "2001:db8::1"));
	assert_true(cd_config_skip_client(c, "203.0.113.1")); /* as ::ffff:203.0.113.1 */
	cd_config_free(c);

	/* at most 64 */
	char text[4096] = "[verify]\nskip_networks = 10.0.0.1\n";
	for (int i = 2; i <= 65; i++) {
		char line[64];
		snprintf(line, sizeof(line), "  10.0.0.%d\n", i);
		strcat(text, line);
	}
	parse_fails(text, "t.conf:66: [verify] skip_networks: too many networks (at most 64)");
}

static void test_skip_sender(void **state)
{
	(void)state;
	cd_config *c = parse("[verify]\n"
	                     "skip_senders = alice@example.org, Bob@Example.COM\n"
	                     "skip_domains = lists.example.net\n"
	                     "  trusted.example.\n");
	assert_string_equal(c->skip_domains, "lists.example.net,trusted.example");
	assert_true(cd_config_skip_sender(c, "alice@example.org"));
	assert_true(cd_config_skip_sender(c, "alice@EXAMPLE.org"));
	assert_true(cd_config_skip_sender(c, "alice@example.org."));
	assert_false(cd_config_skip_sender(c, "Alice@example.org")); /* local part: exact */
	assert_false(cd_config_skip_sender(c, "alice@example.org.uk"));
	assert_false(cd_config_skip_sender(c, "malice@example.org"));
	assert_false(cd_config_skip_sender(c, "lice@example.org"));
	assert_true(cd_config_skip_sender(c, "Bob@example.com"));
	assert_false(cd_config_skip_sender(c, "bob@example.com"));
	assert_true(cd_config_skip_sender(c, "anyone@lists.example.net"));
	assert_true(cd_config_skip_sender(c, "anyone@Lists.Example.NET"));
	assert_false(cd_config_skip_sender(c, "anyone@sub.lists.example.net")); /* exact domain */
	assert_false(cd_config_skip_sender(c, "anyone@example.net"));
	assert_true(cd_config_skip_sender(c, "x@trusted.example"));
	assert_false(cd_config_skip_sender(c, ""));
	assert_false(cd_config_skip_sender(c, "alice"));
	assert_false(cd_config_skip_sender(c, "@example.org"));
	assert_false(cd_config_skip_sender(c, "alice@"));
	assert_false(cd_config_skip_sender(NULL, "alice@example.org"));
	assert_false(cd_config_skip_sender(c, NULL));
	cd_config_free(c);

	c = parse("");
	assert_false(cd_config_skip_sender(c, "alice@example.org"));
	cd_config_free(c);
}

static void test_domains(void **state)
{
	(void)state;
	char longname[300], text[600];
	/* 4 labels of 63 + dots = 255 > 253; 3 of 63 and one of 61 = 253 */
	snprintf(longname, sizeof(longname), "%.63s.%.63s.%.63s.%.61s",
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	         "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	         "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	assert_int_equal(strlen(longname), 253);
	snprintf(text, sizeof(text),
	         "[domain Example.COM.]\nroute = Primary.Example.com, 10.0.0.5:2525\n"
	         "  [2001:db8::5]\n"
	         "[domain   %s  ] ; long\naction = skip\n"
	         "[domain xn--bcher-kva.example]\nmode = dry-run\n",
	         longname);
	cd_config *c = parse(text);
	const cd_domain *d = cd_config_domain(c, "example.com");
	assert_non_null(d);
	assert_string_equal(d->name, "example.com");
	assert_string_equal(d->route, "primary.example.com,10.0.0.5:2525,[2001:db8::5]");
	assert_int_equal(d->action, CD_DOM_DEFAULT);
	assert_false(d->has_mode);
	assert_ptr_equal(cd_config_domain(c, "EXAMPLE.com"), d);
	assert_ptr_equal(cd_config_domain(c, "example.com."), d);
	assert_null(cd_config_domain(c, "sub.example.com"));
	assert_null(cd_config_domain(c, "example.co"));
	assert_null(cd_config_domain(c, "xample.com"));
	assert_null(cd_config_domain(c, ""));
	assert_null(cd_config_domain(c, NULL));
	d = cd_config_domain(c, longname);
	assert_non_null(d);
	assert_int_equal(d->action, CD_DOM_SKIP);
	d = cd_config_domain(c, "xn--bcher-kva.example");
	assert_non_null(d);
	assert_true(d->has_mode);
	assert_int_equal(d->mode, CD_MODE_DRY_RUN);
	cd_config_free(c);

	/* 254 characters do not make a domain */
	snprintf(text, sizeof(text), "[domain %s0]\n", longname);
	parse_fails(text, "t.conf:1: [domain ");

	/* a route list too long for its field */
	char big[4096];
	strcpy(big, "[domain a.example]\nroute = mx0.example\n");
	for (int i = 1; i < 60; i++) {
		char line[64];
		snprintf(line, sizeof(line), "  mx%d.example.com:2525\n", i);
		strcat(big, line);
	}
	parse_fails(big, "t.conf:");
	assert_non_null(
	    strstr(err, "[domain a.example] route: the list is too long (at most 511 characters)"));
}

/* [proxy NAME] pools and the domains that choose them. */
static void test_proxies(void **state)
{
	(void)state;
	cd_config *c =
	    parse("[engine]\nproxy = socks5://10.0.0.1:1080, socks5://u:p@10.0.0.2:1080\n"
	          "[proxy eu]\nurl = socks5://10.1.0.1:1080,\n"
	          "  socks5://10.1.0.2:1080\nsessions = 5\nhttp = no\n"
	          "[proxy us-1]\nurl = socks5://10.2.0.1:1080\n"
	          "[domain a.example]\nproxy = eu\n"
	          "[domain b.example]\nproxy = direct\n"
	          "[domain c.example]\nproxy = default\n");
	const cd_proxy *eu = cd_config_proxy(c, "eu"), *us = cd_config_proxy(c, "us-1");
	assert_non_null(eu);
	assert_non_null(us);
	assert_string_equal(eu->url, "socks5://10.1.0.1:1080,socks5://10.1.0.2:1080");
	assert_int_equal(eu->sessions, 5);
	assert_false(eu->http);
	assert_int_equal(us->sessions, 0); /* [engine] proxy_sessions */
	assert_true(us->http);
	assert_null(cd_config_proxy(c, "default"));
	assert_string_equal(cd_config_domain(c, "a.example")->proxy, "eu");
	assert_string_equal(cd_config_domain(c, "b.example")->proxy, "direct");
	assert_string_equal(cd_config_domain(c, "c.example")->proxy, "default");
	cd_config_free(c);
}

static void test_listen(void **state)
{
	(void)state;
	cd_config *c = parse("[policy]\nlisten = none\n[http]\nlisten = none\n");
	assert_int_equal(c->npolicy_listen, 0);
	assert_int_equal(c->nhttp_listen, 0);
	cd_config_free(c);
	c = parse("[policy]\nlisten =\n[http]\nlisten =\n[milter]\nlisten = none\n");
	assert_int_equal(c->npolicy_listen, 0);
	assert_int_equal(c->nhttp_listen, 0);
	assert_string_equal(c->milter_listen, "");
	cd_config_free(c);

	/* socket_mode before listen applies too; the default is 0660 */
	c = parse("[policy]\nsocket_mode = 600\nlisten = unix:/a, inet:0.0.0.0:1\n  unix:/b\n");
	assert_int_equal(c->npolicy_listen, 3);
	assert_int_equal(c->policy_listen[0].mode, 0600);
	assert_int_equal(c->policy_listen[2].mode, 0600);
	assert_string_equal(c->policy_listen[2].path, "/b");
	assert_int_equal(c->policy_listen[1].mode, 0);
	cd_config_free(c);
	c = parse("[policy]\nlisten = unix:/run/callout/policy\n");
	assert_int_equal(c->policy_listen[0].mode, 0660);
	cd_config_free(c);
	c = parse("[http]\nlisten = inet:[::]:8025, inet:[2001:db8::1]:80\n");
	assert_int_equal(c->nhttp_listen, 2);
	assert_string_equal(c->http_listen[0].host, "::");
	assert_string_equal(c->http_listen[1].host, "2001:db8::1");
	assert_int_equal(c->http_listen[1].port, 80);
	cd_config_free(c);

	/* socket paths: 107 characters fit sun_path, 108 do not */
	char text[300], path[120];
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	snprintf(text, sizeof(text), "[policy]\nlisten = unix:%s\n", path);
	c = parse(text);
	assert_string_equal(c->policy_listen[0].path, path);
	cd_config_free(c);
	path[107] = 'p';
	path[108] = '\0';
	snprintf(text, sizeof(text), "[policy]\nlisten = unix:%s\n", path);
	parse_fails(text, "t.conf:2: [policy] listen: socket path too long");
	snprintf(text, sizeof(text), "[milter]\nlisten = local:%s\n", path);
	parse_fails(text, "t.conf:2: [milter] listen: socket path too long");

	/* at most 8 */
	parse_fails("[policy]\nlisten = inet:127.0.0.1:1 inet:127.0.0.1:2 inet:127.0.0.1:3 "
	            "inet:127.0.0.1:4\n  inet:127.0.0.1:5 inet:127.0.0.1:6 inet:127.0.0.1:7 "
	            "inet:127.0.0.1:8\n  inet:127.0.0.1:9\n",
	            "t.conf:4: [policy] listen: too many sockets (at most 8)");

	static const char *const milter_ok[] = {
	    "unix:/run/callout/milter.sock",
	    "local:/var/spool/postfix/callout",
	    "inet:8891",
	    "inet:8891@127.0.0.1",
	    "inet:8891@localhost",
	    "inet:8891@[127.0.0.1]",
	    "inet6:8891",
	    "inet6:8891@::1",
	    "inet6:8891@[::1]",
	    "inet6:8891@ip6-localhost",
	};
	for (size_t i = 0; i < sizeof(milter_ok) / sizeof(milter_ok[0]); i++) {
		snprintf(text, sizeof(text), "[milter]\nlisten = %s\nsender_at = mail\n",
		         milter_ok[i]);
		c = parse(text);
		assert_string_equal(c->milter_listen, milter_ok[i]);
		assert_int_equal(c->milter_sender_at, CD_AT_MAIL);
		cd_config_free(c);
	}
}

static void test_options(void **state)
{
	(void)state;
	callout_options o;
	cd_config *c = parse("");

	cd_config_options(c, &o);
	assert_int_equal(o.struct_size, sizeof(o));
	assert_int_equal(o.flags, CALLOUT_F_CATCH_ALL);
	assert_null(o.helo);
	assert_string_equal(o.sender, "");
	assert_null(o.fallback_sender);
	assert_null(o.source_address);
	assert_null(o.dns_servers);
	assert_int_equal(o.port, 25);
	assert_int_equal(o.deadline_ms, 120000);
	assert_int_equal(o.connect_timeout_ms, 30000);
	assert_int_equal(o.command_timeout_ms, 30000);
	assert_int_equal(o.dns_timeout_ms, 5000);
	assert_int_equal(o.max_mx, 5);
	assert_int_equal(o.max_connections, 10);
	assert_string_equal(o.cache, "lmdb:" CALLOUT_STATE_DIR "/cache.lmdb");
	assert_ptr_equal(o.cache, c->cache);
	assert_int_equal(o.cache_positive_ttl, 604800);
	assert_int_equal(o.cache_refresh, 86400);
	assert_int_equal(o.cache_negative_ttl, 10800);
	assert_int_equal(o.cache_tempfail_ttl, 0);
	assert_int_equal(o.cache_domain_ttl, 604800);
	assert_int_equal(o.cache_domain_negative_ttl, 10800);
	assert_int_equal(o.cache_unreachable_ttl, 300);
	assert_int_equal(o.cache_wait_ms, 15000); /* not configurable: the library's */
	assert_int_equal(o.max_probes, 10000);
	assert_int_equal(o.max_queued, 10000);
	assert_int_equal(o.domain_sessions, 4);
	assert_int_equal(o.host_sessions, 10);
	assert_int_equal(o.domain_rate, 60);
	assert_int_equal(o.domain_burst, 10);
	assert_int_equal(o.host_rate, 300);
	assert_int_equal(o.host_burst, 20);
	assert_int_equal(o.session_rcpts, 10);
	assert_int_equal(o.session_idle_ms, 3000);
	assert_int_equal(o.backoff_failures, 3);
	assert_int_equal(o.backoff_ms, 60000);
	assert_null(o.log);
	cd_config_free(c);

	c = parse(full);
	cd_config_options(c, &o);
	assert_int_equal(o.flags, CALLOUT_F_TLS | CALLOUT_F_VRFY | CALLOUT_F_NO_PIPELINING |
	                              CALLOUT_F_NO_NEGATIVE_CACHE | CALLOUT_F_NO_LIMIT_WAIT);
	assert_ptr_equal(o.helo, c->helo);
	assert_string_equal(o.helo, "mx1.example.net");
	assert_string_equal(o.sender, "probe@example.net");
	assert_string_equal(o.fallback_sender, "postmaster@example.net");
	assert_string_equal(o.source_address, "2001:db8::25");
	assert_string_equal(o.dns_servers, "127.0.0.1:5353,[::1]:53,::1");
	assert_int_equal(o.port, 2525);
	assert_int_equal(o.deadline_ms, 60000);
	assert_int_equal(o.connect_timeout_ms, 500);
	assert_int_equal(o.command_timeout_ms, 20000);
	assert_int_equal(o.dns_timeout_ms, 250);
	assert_int_equal(o.max_mx, 3);
	assert_int_equal(o.max_connections, 4);
	assert_string_equal(o.cache, "redis://:secret@10.0.0.9:6380/2?prefix=mx1:");
	assert_int_equal(o.cache_positive_ttl, 2 * 86400);
	assert_int_equal(o.cache_refresh, 12 * 3600);
	assert_int_equal(o.cache_negative_ttl, 5400);
	assert_int_equal(o.cache_tempfail_ttl, 60);
	assert_int_equal(o.cache_domain_ttl, 86400);
	assert_int_equal(o.cache_domain_negative_ttl, 3600);
	assert_int_equal(o.cache_unreachable_ttl, 600);
	assert_int_equal(o.max_probes, 2000);
	assert_int_equal(o.max_queued, 500);
	assert_int_equal(o.domain_sessions, 2);
	assert_int_equal(o.host_sessions, 5);
	assert_int_equal(o.domain_rate, 30);
	assert_int_equal(o.domain_burst, 3);
	assert_int_equal(o.host_rate, 120);
	assert_int_equal(o.host_burst, 6);
	assert_int_equal(o.session_rcpts, 25);
	assert_int_equal(o.session_idle_ms, 1500);
	assert_int_equal(o.backoff_failures, 5);
	assert_int_equal(o.backoff_ms, 120000);
	cd_config_free(c);

	/* libcallout takes the result: a context can be made from it */
	c = parse("[cache]\ncache = memory\n[engine]\nhelo = mx.example.org\n"
	          "sender = probe@example.org\ndns_servers = 127.0.0.1\n");
	cd_config_options(c, &o);
	callout_ctx *ctx = NULL;
	assert_int_equal(callout_ctx_new(NULL, &o, &ctx), CALLOUT_OK);
	callout_ctx_free(ctx);
	cd_config_free(c);
}

/* Values that do not fit their field are errors, never truncated. */
static void test_too_long(void **state)
{
	(void)state;
	char text[8192], v[300];

	memset(v, 'u', sizeof(v));
	v[64] = '\0';
	snprintf(text, sizeof(text), "[daemon]\nuser = %s\n", v);
	parse_fails(text, "t.conf:2: [daemon] user: too long (at most 63 characters)");
	v[63] = '\0';
	snprintf(text, sizeof(text), "[daemon]\nuser = %s\n", v);
	cd_config *c = parse(text);
	assert_string_equal(c->user, v);
	cd_config_free(c);

	/* a token of 195 characters does not fit a line */
	memset(v, 't', sizeof(v));
	v[195] = '\0';
	snprintf(text, sizeof(text), "[http]\ntoken = %s\n", v);
	parse_fails(text, "t.conf:2: line too long (at most 199 characters)");
	/* 199 characters fit */
	v[199 - strlen("token=")] = '\0';
	snprintf(text, sizeof(text), "[http]\ntoken=%s\n", v);
	c = parse(text);
	assert_int_equal(strlen(c->http_token), 199 - strlen("token="));
	cd_config_free(c);
	/* comments are not limited */
	memset(v, 'c', sizeof(v));
	v[299] = '\0';
	snprintf(text, sizeof(text), "# %s\n[daemon]\n  ; %s\nuser = x\n", v, v);
	c = parse(text);
	cd_config_free(c);

	/* skip_domains: 2047 characters at most, over continuation lines */
	strcpy(text, "[verify]\nskip_domains = d000.example\n");
	for (int i = 1; i < 200; i++) {
		char line[64];
		snprintf(line, sizeof(line), "  d%03d.example\n", i);
		strcat(text, line);
	}
	parse_fails(text, "t.conf:");
	assert_non_null(
	    strstr(err, "[verify] skip_domains: the list is too long (at most 2047 characters)"));
	/* a list item longer than 299 characters */
	memset(v, 'a', sizeof(v));
	v[sizeof(v) - 1] = '\0';
	snprintf(text, sizeof(text), "[verify]\nskip_domains = %s\n", v);
	parse_fails(text, "t.conf:2: line too long");
}

static void test_continuation(void **state)
{
	(void)state;
	cd_config *c = parse("[verify]\n"
	                     "unknown_reject =\n"
	                     "    catch_all,\n"
	                     "    Policy_Block ; comment\n"
	                     "\tmailbox_full, catch_all\n"
	                     "skip_senders = a@example.org\n");
	assert_int_equal(c->nunknown_reject, 3);
	assert_int_equal(c->unknown_reject[1], CALLOUT_R_POLICY_BLOCK);
	assert_int_equal(c->unknown_reject[2], CALLOUT_R_MAILBOX_FULL);
	assert_string_equal(c->skip_senders, "a@example.org");
	cd_config_free(c);

	/* an indented "key = value" below a list key is a list item, and wrong */
	parse_fails("[verify]\nskip_domains = a.example\n  defer_ok = yes\n",
	            "t.conf:3: [verify] skip_domains: expected a domain name");
	/* after a section header */
	parse_fails("[verify]\n  defer_ok = yes\n", "t.conf:2: indented line");
	/* after a comment right below a section header */
	parse_fails("[verify]\n# x\n  defer_ok = yes\n", "t.conf:3: indented line");
	/* dns_servers and route continue too */
	c = parse("[engine]\ndns_servers = 127.0.0.1\n  127.0.0.2:53\n"
	          "[domain a.example]\nroute = mx1.a.example\n  mx2.a.example\n");
	assert_string_equal(c->dns_servers, "127.0.0.1,127.0.0.2:53");
	assert_string_equal(c->domains->route, "mx1.a.example,mx2.a.example");
	cd_config_free(c);
}

static void test_control_chars(void **state)
{
	(void)state;
	/* CRLF line ends, tabs, a byte order mark, no final newline */
	cd_config *c = parse("\xef\xbb\xbf[daemon]\r\nuser\t=\tcallout\r\n\r\nmode = tag");
	assert_string_equal(c->user, "callout");
	assert_int_equal(c->mode, CD_MODE_TAG);
	cd_config_free(c);
	/* ':' as a separator, as inih allows */
	c = parse("[daemon]\nuser: callout\n");
	assert_string_equal(c->user, "callout");
	cd_config_free(c);

	parse_fails("[daemon]\nuser = a\rb\n", "t.conf:2: control character 0x0d");
	parse_fails("[daemon]\r\r\n", "t.conf:1: control character 0x0d");
	parse_fails("[daemon]\n# \x1b[31m\n", "t.conf:2: control character 0x1b");
	parse_fails("[daemon]\nuser = a\x7f\n", "t.conf:2: control character 0x7f");
	parse_fails("[daemon]\n\n\nuser = \x01\n", "t.conf:4: control character 0x01");
	/* a byte order mark only at the very start */
	parse_fails("[daemon]\n\xef\xbb\xbfuser = a\n",
	            "t.conf:2: [daemon] \xef\xbb\xbfuser: unknown key");
}

static char *write_temp(const void *data, size_t len)
{
	static char path[64];
	strcpy(path, "/tmp/test_config.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_load(void **state)
{
	(void)state;
	char *path = write_temp(full, strlen(full));
	cd_config *c = cd_config_load(path, err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(c->path, path);
	assert_string_equal(c->user, "callout");
	cd_config_free(c);
	unlink(path);

	/* a NUL byte: an error at its line */
	static const char nul[] = "[daemon]\nuser = a\0b\n";
	path = write_temp(nul, sizeof(nul) - 1);
	c = cd_config_load(path, err, sizeof(err));
	assert_null(c);
	char want[128];
	snprintf(want, sizeof(want), "%s:2: control character 0x00", path);
	assert_string_equal(strncmp(err, want, strlen(want)) == 0 ? want : err, want);
	unlink(path);

	/* empty file */
	path = write_temp("", 0);
	c = cd_config_load(path, err, sizeof(err));
	assert_non_null(c);
	check_defaults(c);
	cd_config_free(c);
	unlink(path);

	c = cd_config_load("/nonexistent/calloutd.conf", err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, "/nonexistent/calloutd.conf: No such file or directory");
	c = cd_config_load("/tmp", err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, "/tmp: is a directory");
	/* no error buffer */
	assert_null(cd_config_load("/nonexistent", NULL, 0));
	assert_null(cd_config_parse("[x]", "x", NULL, 0));
	/* a tiny one: truncated, terminated */
	char small[8];
	assert_null(cd_config_parse("[bogus]", "name", small, sizeof(small)));
	assert_string_equal(small, "name:1:");

	/* larger than 1 MiB */
	size_t big = 1024 * 1024 + 1;
	char *junk = malloc(big);
	assert_non_null(junk);
	memset(junk, '#', big);
	path = write_temp(junk, big);
	c = cd_config_load(path, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, ": larger than 1048576 bytes"));
	unlink(path);
	free(junk);
}

/* 1 MB of junk: an error, quickly, without a crash. */
static void test_junk(void **state)
{
	(void)state;
	size_t n = 1024 * 1024;
	char *junk = malloc(n + 1);
	assert_non_null(junk);
	srand(42);
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < n; i++) {
			switch (round) {
			case 0: /* random bytes, no NUL */
				junk[i] = (char)(1 + rand() % 255);
				break;
			case 1: /* printable, long lines */
				junk[i] = (char)(0x20 + rand() % 95);
				break;
			case 2: /* brackets and equals */
				junk[i] = "[]=\n ;#a"[rand() % 8];
				break;
			default: /* one long line */
				junk[i] = 'x';
			}
		}
		junk[n] = '\0';
		err[0] = '\0';
		cd_config *c = cd_config_parse(junk, "junk", err, sizeof(err));
		assert_null(c);
		assert_true(strncmp(err, "junk:", 5) == 0);
	}
	/* many [domain] sections: the cap */
	size_t len = 0;
	for (int i = 0; len + 64 < n; i++)
		len += (size_t)snprintf(junk + len, n - len, "[domain d%d.example]\n", i);
	cd_config *c = cd_config_parse(junk, "junk", err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "too many [domain] sections (at most 10000)"));
	free(junk);
}

static void test_mode_name(void **state)
{
	(void)state;
	assert_string_equal(cd_mode_name(CD_MODE_ENFORCE), "enforce");
	assert_string_equal(cd_mode_name(CD_MODE_TAG), "tag");
	assert_string_equal(cd_mode_name(CD_MODE_DRY_RUN), "dry-run");
	assert_string_equal(cd_mode_name((cd_mode)42), "?");
	/* every mode name parses back */
	for (int m = CD_MODE_ENFORCE; m <= CD_MODE_DRY_RUN; m++) {
		char text[64];
		snprintf(text, sizeof(text), "[daemon]\nmode = %s\n", cd_mode_name((cd_mode)m));
		cd_config *c = parse(text);
		assert_int_equal(c->mode, m);
		cd_config_free(c);
	}
}

/* The sample shipped in contrib/ parses to the defaults, names every key
 * in its section, and its commented-out values ("#key = value") are the
 * defaults too. */
static void test_contrib_sample(void **state)
{
	(void)state;
	static const char *const keys[] = {
	    "[daemon]",
	    "user",
	    "state_dir",
	    "log",
	    "syslog_facility",
	    "log_level",
	    "mode",
	    "reply_within",
	    "max_inflight",
	    "no_postmaster",
	    "[engine]",
	    "helo",
	    "sender",
	    "fallback_sender",
	    "source_address",
	    "dns_servers",
	    "port",
	    "timeout",
	    "connect_timeout",
	    "command_timeout",
	    "dns_timeout",
	    "greylist_recheck",
	    "greylist_recheck_max",
	    "max_mx",
	    "max_connections",
	    "tls",
	    "catch_all",
	    "postmaster",
	    "vrfy",
	    "pipelining",
	    "allow_private",
	    "proxy",
	    "proxy_sessions",
	    "proxy_check",
	    "max_probes",
	    "max_queued",
	    "domain_sessions",
	    "host_sessions",
	    "domain_rate",
	    "domain_burst",
	    "host_rate",
	    "host_burst",
	    "session_rcpts",
	    "session_idle",
	    "backoff_failures",
	    "backoff",
	    "limit_wait",
	    "[cache]",
	    "cache",
	    "positive_ttl",
	    "refresh",
	    "negative_ttl",
	    "tempfail_ttl",
	    "domain_ttl",
	    "domain_negative_ttl",
	    "unreachable_ttl",
	    "negative_cache",
	    "[verify]",
	    "verify_sender",
	    "verify_recipient",
	    "skip_networks",
	    "skip_senders",
	    "skip_domains",
	    "defer_ok",
	    "unknown_reject",
	    "sender_reject",
	    "sender_defer",
	    "recipient_reject",
	    "recipient_defer",
	    "in_progress",
	    "[policy]",
	    "listen",
	    "socket_mode",
	    "max_connections",
	    "max_client_connections",
	    "request_timeout",
	    "[milter]",
	    "listen",
	    "sender_at",
	    "[http]",
	    "listen",
	    "token",
	    "max_addresses",
	    "request_options",
	    "max_body",
	    "max_connections",
	    "max_client_connections",
	    "request_timeout",
	    "max_job_addresses",
	    "max_job_body",
	    "job_inflight",
	    "max_jobs",
	    "job_ttl",
	    "webhooks",
	    "webhook_allow_private",
	    "webhook_secret",
	    "[doctor]",
	    "dnsbl",
	    "domain",
	};
	char path[4096];
	snprintf(path, sizeof(path), "%s/contrib/calloutd.conf", SOURCE_ROOT);
	cd_config *c = cd_config_load(path, err, sizeof(err));
	if (!c)
		print_message("%s\n", err);
	assert_non_null(c);
	/* Its one deliberate choice: a first start logs what it would do. */
	assert_int_equal(c->mode, CD_MODE_DRY_RUN);
	c->mode = CD_MODE_ENFORCE;
	check_defaults(c);
	cd_config_free(c);

	/* read it, uncomment "#key = ..." lines */
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char text[65536];
	size_t len = 0, k = 0;
	char line[512], section[64] = "";
	while (fgets(line, sizeof(line), f)) {
		const char *l = line;
		if (line[0] >= 'a' && line[0] <= 'z') {
			assert_string_equal(line, "mode = dry-run\n");
			continue;
		}
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z') {
			l = line + 1;
			char key[64];
			assert_int_equal(sscanf(l, "%63[a-z_] =", key), 1);
			/* the keys come in the order above, each in its section */
			assert_true(k < sizeof(keys) / sizeof(keys[0]));
			if (strcmp(key, keys[k]) != 0)
				print_message("[%s] %s: expected %s\n", section, key, keys[k]);
			assert_string_equal(key, keys[k]);
			k++;
		} else if (line[0] == '[') {
			sscanf(line, "[%63[^]]", section);
			char want[80];
			snprintf(want, sizeof(want), "[%s]", section);
			assert_true(k < sizeof(keys) / sizeof(keys[0]));
			assert_string_equal(want, keys[k]);
			k++;
		}
		size_t n = strlen(l);
		assert_true(len + n < sizeof(text));
		memcpy(text + len, l, n);
		len += n;
	}
	text[len] = '\0';
	fclose(f);
	assert_int_equal(k, sizeof(keys) / sizeof(keys[0]));
	c = parse(text);
	check_defaults(c);
	cd_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),       cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_cache_default),  cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_durations),      cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_engine_limits),  cmocka_unit_test(test_replies),
	    cmocka_unit_test(test_skip_client),    cmocka_unit_test(test_skip_networks),
	    cmocka_unit_test(test_skip_sender),    cmocka_unit_test(test_domains),
	    cmocka_unit_test(test_listen),         cmocka_unit_test(test_options),
	    cmocka_unit_test(test_too_long),       cmocka_unit_test(test_continuation),
	    cmocka_unit_test(test_control_chars),  cmocka_unit_test(test_load),
	    cmocka_unit_test(test_junk),           cmocka_unit_test(test_mode_name),
	    cmocka_unit_test(test_contrib_sample), cmocka_unit_test(test_proxies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
