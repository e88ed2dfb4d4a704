/*
 * The words the library gives out: the names of verdicts, reasons and
 * stages (stable: JSON, logs and metrics carry them), the messages of
 * status codes, and the library's version.
 */
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
    [CALLOUT_STAGE_NONE] = "none",     [CALLOUT_STAGE_SYNTAX] = "syntax",
    [CALLOUT_STAGE_DNS] = "dns",       [CALLOUT_STAGE_CONNECT] = "connect",
    [CALLOUT_STAGE_BANNER] = "banner", [CALLOUT_STAGE_EHLO] = "ehlo",
    [CALLOUT_STAGE_HELO] = "helo",     [CALLOUT_STAGE_STARTTLS] = "starttls",
    [CALLOUT_STAGE_VRFY] = "vrfy",     [CALLOUT_STAGE_MAIL] = "mail",
    [CALLOUT_STAGE_RCPT] = "rcpt",     [CALLOUT_STAGE_RSET] = "rset",
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
