/* Names, option defaults and result copies: the small public helpers. */
#include <stdlib.h>
#include <string.h>

#include <callout/callout.h>

static const char *const verdict_names[] = {
	[CALLOUT_VALID] = "valid",
	[CALLOUT_INVALID] = "invalid",
	[CALLOUT_UNKNOWN] = "unknown",
	[CALLOUT_TEMPFAIL] = "tempfail",
};

static const char *const reason_names[CALLOUT_R_COUNT] = {
	[CALLOUT_R_ACCEPTED] = "accepted",
	[CALLOUT_R_SYNTAX] = "syntax",
	[CALLOUT_R_NXDOMAIN] = "nxdomain",
	[CALLOUT_R_NULL_MX] = "null_mx",
	[CALLOUT_R_NO_MAIL_HOST] = "no_mail_host",
	[CALLOUT_R_MAILBOX_UNKNOWN] = "mailbox_unknown",
	[CALLOUT_R_MAILBOX_DISABLED] = "mailbox_disabled",
	[CALLOUT_R_CATCH_ALL] = "catch_all",
	[CALLOUT_R_POLICY_BLOCK] = "policy_block",
	[CALLOUT_R_NULL_SENDER_REJECTED] = "null_sender_rejected",
	[CALLOUT_R_SMTPUTF8_UNSUPPORTED] = "smtputf8_unsupported",
	[CALLOUT_R_MAILBOX_FULL] = "mailbox_full",
	[CALLOUT_R_REJECTED] = "rejected",
	[CALLOUT_R_GREYLISTED] = "greylisted",
	[CALLOUT_R_TEMP_REJECT] = "temp_reject",
	[CALLOUT_R_TOO_MANY_RECIPIENTS] = "too_many_recipients",
	[CALLOUT_R_TIMEOUT] = "timeout",
	[CALLOUT_R_CONNECT_FAILED] = "connect_failed",
	[CALLOUT_R_CONNECTION_LOST] = "connection_lost",
	[CALLOUT_R_PROTOCOL_ERROR] = "protocol_error",
	[CALLOUT_R_TLS_FAILED] = "tls_failed",
	[CALLOUT_R_DNS_TEMPFAIL] = "dns_tempfail",
	[CALLOUT_R_LOCAL_LIMIT] = "local_limit",
	[CALLOUT_R_INTERNAL] = "internal",
	[CALLOUT_R_PRIVATE_ADDRESS] = "private_address",
};

static const char *const stage_names[CALLOUT_STAGE_COUNT] = {
	[CALLOUT_STAGE_NONE] = "none",
	[CALLOUT_STAGE_SYNTAX] = "syntax",
	[CALLOUT_STAGE_DNS] = "dns",
	[CALLOUT_STAGE_CONNECT] = "connect",
	[CALLOUT_STAGE_BANNER] = "banner",
	[CALLOUT_STAGE_EHLO] = "ehlo",
	[CALLOUT_STAGE_HELO] = "helo",
	[CALLOUT_STAGE_STARTTLS] = "starttls",
	[CALLOUT_STAGE_VRFY] = "vrfy",
	[CALLOUT_STAGE_MAIL] = "mail",
	[CALLOUT_STAGE_RCPT] = "rcpt",
	[CALLOUT_STAGE_RSET] = "rset",
};

static const char *const status_names[] = {
	[CALLOUT_OK] = "success",
	[CALLOUT_EINVAL] = "invalid argument",
	[CALLOUT_ENOMEM] = "out of memory",
	[CALLOUT_EDNS] = "DNS resolver setup failed",
	[CALLOUT_ETLS] = "TLS setup failed",
	[CALLOUT_EEVENT] = "event loop failure",
	[CALLOUT_ECANCELLED] = "cancelled",
	[CALLOUT_ECACHE] = "cache unavailable",
};

#define NAME(table, i)                                                                             \
	((unsigned)(i) < sizeof(table) / sizeof((table)[0]) && (table)[i] ? (table)[i] : "?")

CALLOUT_API const char *callout_verdict_name(callout_verdict v)
{
	return NAME(verdict_names, v);
}

CALLOUT_API const char *callout_reason_name(callout_reason r)
{
	return NAME(reason_names, r);
}

CALLOUT_API const char *callout_stage_name(callout_stage s)
{
	return NAME(stage_names, s);
}

CALLOUT_API const char *callout_strerror(callout_status s)
{
	return NAME(status_names, s);
}

CALLOUT_API const char *callout_version(void)
{
	return CALLOUT_VERSION_STR;
}

CALLOUT_API void callout_options_init(callout_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->struct_size = sizeof(*opts);
	opts->port = 25;
	opts->connect_timeout_ms = 30000;
	opts->command_timeout_ms = 30000;
	opts->deadline_ms = 120000;
	opts->max_mx = 5;
	opts->max_connections = 10;
	opts->dns_timeout_ms = 5000;
	opts->cache_positive_ttl = 7 * 86400;
	opts->cache_refresh = 86400;
	opts->cache_negative_ttl = 3 * 3600;
	opts->cache_domain_ttl = 7 * 86400;
	opts->cache_domain_negative_ttl = 3 * 3600;
	opts->cache_unreachable_ttl = 300;
	opts->cache_wait_ms = 15000;
	opts->max_probes = 10000;
	opts->max_queued = 10000;
	opts->domain_sessions = 4;
	opts->host_sessions = 10;
	opts->domain_rate = 60;
	opts->domain_burst = 10;
	opts->host_rate = 300;
	opts->host_burst = 20;
	opts->session_rcpts = 10;
	opts->session_idle_ms = 3000;
	opts->backoff_failures = 3;
	opts->backoff_ms = 60000;
}

/* A copied result and its strings live in one allocation. */
CALLOUT_API callout_result *callout_result_dup(const callout_result *res)
{
	const char *strs[] = {res->enhanced, res->text, res->address, res->mx, res->ip,
	                      res->transcript, res->fact};
	enum { NSTR = sizeof(strs) / sizeof(strs[0]) };
	size_t len[NSTR], total = sizeof(*res);

	for (size_t i = 0; i < NSTR; i++) {
		len[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
		total += len[i];
	}
	callout_result *copy = malloc(total);
	if (!copy)
		return NULL;
	*copy = *res;
	char *p = (char *)(copy + 1);
	const char **dst[] = {&copy->enhanced, &copy->text, &copy->address, &copy->mx, &copy->ip,
	                      &copy->transcript, &copy->fact};
	for (size_t i = 0; i < NSTR; i++) {
		if (!strs[i]) {
			*dst[i] = NULL;
			continue;
		}
		memcpy(p, strs[i], len[i]);
		*dst[i] = p;
		p += len[i];
	}
	return copy;
}

CALLOUT_API void callout_result_free(callout_result *res)
{
	free(res);
}
