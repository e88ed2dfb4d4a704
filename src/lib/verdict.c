/*
 * Evidence -> verdict + reason.
 *
 * The rule that matters most: never INVALID without positive evidence
 * about the mailbox.  A server refusing *us* (blocklists, policy, our
 * sender, our IP) says nothing about the address, and a mail server that
 * trusted a wrong INVALID would refuse legitimate mail.  So:
 *
 *   - the enhanced status code (RFC 3463) decides first, because it is
 *     the machine-readable part and servers mostly get it right;
 *   - text is a fallback, and text that blames the client beats text
 *     that blames the mailbox;
 *   - the bare reply code decides last (RFC 5321 meanings at RCPT);
 *   - only the RCPT and VRFY stages can ever yield INVALID.
 *
 * Decisions worth knowing (RCPT, 5xx):
 *
 *   X.1.0-4, X.1.6   invalid/mailbox_unknown, X.1.2 included: the
 *                    domain's own server says the destination is bad
 *   X.1.10           invalid/mailbox_unknown; null_mx only when the
 *                    text says "null MX" (Microsoft sends 5.1.10 for
 *                    "RecipientNotFound", and null_mx may be cached for
 *                    the whole domain)
 *   X.1.7, X.1.8     unknown/policy_block: about our sender
 *   X.2.1 / X.2.2    invalid/mailbox_disabled / unknown/mailbox_full
 *   X.5.3            tempfail/too_many_recipients, even as 5xx
 *   X.6.7            unknown/smtputf8_unsupported
 *   X.7.x            unknown/policy_block, whatever the text
 *   X.3/X.4/X.5/X.6  (others) text decides; without telling text the
 *                    result is unknown/rejected, not the RFC meaning of
 *                    550: the server said the cause is not the mailbox.
 *                    So Microsoft's "550 5.4.1 Recipient address
 *                    rejected: Access denied" is unknown/policy_block.
 *   X.0.x, none      text, then 550/551/553 invalid, 552 mailbox_full,
 *                    others unknown/rejected
 *
 * A decisive mailbox code (X.1.x, X.2.1) is still overridden by text
 * blaming us, and a refusal of the null sender at RCPT time is reported
 * as null_sender_rejected so the caller can retry with its fallback.
 */
#include "verdict.h"

#include <stddef.h>
#include <string.h>

/* Texts longer than this are only searched in their first part; a reply
 * text is at most CO_REPLY_TEXT_MAX anyway. */
#define TEXT_SCAN_MAX 4096

/* Pattern flags: the match must start / end at a word boundary. */
#define WB_START 1u
#define WB_END   2u

typedef struct pattern {
	const char *s; /* lower case */
	unsigned wb;
} pattern;

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Case-insensitive search of needle (lower case) in hay[0..hlen), with
 * optional word boundaries.  Returns the offset of the first match or
 * (size_t)-1. */
static size_t ci_find_from(const char *hay, size_t hlen, size_t from, const char *needle,
                           unsigned wb)
{
	size_t nlen = strlen(needle);
	if (nlen == 0 || nlen > hlen)
		return (size_t)-1;
	for (size_t i = from; i + nlen <= hlen; i++) {
		size_t k = 0;
		while (k < nlen && lower(hay[i + k]) == needle[k])
			k++;
		if (k < nlen)
			continue;
		if ((wb & WB_START) && i > 0 && is_alnum(hay[i - 1]))
			continue;
		if ((wb & WB_END) && i + nlen < hlen && is_alnum(hay[i + nlen]))
			continue;
		return i;
	}
	return (size_t)-1;
}

static bool ci_has(const char *hay, size_t hlen, const char *needle, unsigned wb)
{
	return ci_find_from(hay, hlen, 0, needle, wb) != (size_t)-1;
}

static bool match_any(const char *text, const pattern *pats, size_t n)
{
	if (text == NULL)
		return false;
	size_t len = strnlen(text, TEXT_SCAN_MAX);
	for (size_t i = 0; i < n; i++)
		if (ci_has(text, len, pats[i].s, pats[i].wb))
			return true;
	return false;
}

#define MATCH(text, pats) match_any((text), (pats), sizeof(pats) / sizeof((pats)[0]))

/* Is needle (word-start) in text, other than right after prefix?  For
 * "listed" as in "listed at zen.spamhaus.org" but not "not listed in our
 * directory" (about the mailbox), and "not allowed" but not RFC 5321's
 * own 553 text "mailbox name not allowed". */
static bool has_unless_after(const char *text, const char *needle, const char *prefix)
{
	if (text == NULL)
		return false;
	size_t len = strnlen(text, TEXT_SCAN_MAX);
	size_t plen = strlen(prefix);
	size_t at = 0;
	while ((at = ci_find_from(text, len, at, needle, WB_START)) != (size_t)-1) {
		if (at < plen || !ci_has(text + at - plen, plen, prefix, 0))
			return true;
		at++;
	}
	return false;
}

static bool says_listed(const char *text)
{
	return has_unless_after(text, "listed", "not ");
}

/* Words that blame the connecting client itself: its IP, its reputation,
 * a DNS blocklist.  Decisive even against a mailbox-ish enhanced code at
 * MAIL, where the server otherwise may be refusing our null sender. */
static const pattern client_pats[] = {
    {"blocked", 0},
    {"blacklist", 0},
    {"blocklist", 0},
    {"black list", 0},
    {"block list", 0},
    {"spamhaus", 0},
    {"spamcop", 0},
    {"barracuda", 0},
    {"sorbs", 0},
    {"uceprotect", 0},
    {"rbl", WB_START | WB_END},
    {"dnsbl", WB_START},
    {"reputation", 0},
    {"banned", 0},
    {"client host", 0},
    {"your ip", 0},
    {"spam", 0},
    {"backscatter", 0},
};

bool co_text_blames_client(const char *text)
{
	return MATCH(text, client_pats) || says_listed(text);
}

/* Everything that says "this is a policy decision about you", including
 * refusals of our sender or HELO and relay denials (the server does not
 * consider itself responsible: wrong MX, not a missing mailbox). */
static const pattern policy_pats[] = {
    {"access denied", 0},
    /* relay denials, but not Postfix's "User unknown in relay
     * recipient table", which is about the mailbox */
    {"relay access", 0},
    {"relaying", 0},
    {"to relay", 0},
    {"relay denied", 0},
    {"relay not", 0},
    {"rcpthosts", 0}, /* qmail's relay refusal */
    {"policy", 0},
    {"rejected due to", 0},
    {"sender address", 0},
    {"sender domain", 0},
    {"sender verify", 0},
    {"verification failed for", 0},
    {"helo command rejected", 0},
    {"reverse dns", 0},
    {"rdns", WB_START | WB_END},
    {"ptr record", 0},
    {"rate limit", 0},
};

bool co_text_is_policy(const char *text)
{
	return co_text_blames_client(text) || MATCH(text, policy_pats) ||
	       has_unless_after(text, "not allowed", "mailbox name ");
}

/* Words only a greylisting filter uses. */
static const pattern greylist_pats[] = {
    {"greylist", 0},  {"graylist", 0},  {"grey list", 0}, {"gray list", 0},
    {"grey-list", 0}, {"gray-list", 0}, {"postgrey", 0},  {"sqlgrey", 0},
};

bool co_text_is_greylist(const char *text)
{
	return MATCH(text, greylist_pats);
}

/* "Come back later" phrasing: greylisting when it comes with the codes
 * greylisting filters use (450/451 with X.7.1, X.7.0 or X.2.0), but also
 * used by overloaded servers, so it is not decisive alone. */
static const pattern retry_pats[] = {
    {"try again later", 0},  {"try later", 0},
    {"retry later", 0},      {"please retry", 0},
    {"try again in", 0},     {"come back later", 0},
    {"retry in", 0},         {"deferred", 0},
    {"please try again", 0}, {"temporarily rejected", 0},
};

static const pattern unknown_user_pats[] = {
    {"user unknown", 0},        {"unknown user", 0},        {"no such user", 0},
    {"no such mailbox", 0},     {"no such recipient", 0},   {"no such address", 0},
    {"not exist", 0},                                     /* does not exist, does not exists */
    {"doesn't exist", 0},       {"user doesn't have", 0}, /* Yahoo: "doesn't have a yahoo.com
                                                             account" */
    {"no longer exist", 0},     {"user not found", 0},      {"address not found", 0},
    {"account not found", 0},   {"mailbox unavailable", 0}, {"mailbox is unavailable", 0},
    {"mailbox not found", 0},   {"invalid recipient", 0},   {"invalid mailbox", 0},
    {"invalid address", 0},     {"unknown recipient", 0},   {"recipient unknown", 0},
    {"recipient not found", 0}, {"no mailbox", 0},          {"recipient address rejected", 0},
    {"undeliverable", 0},       {"not a valid", 0},         {"address unknown", 0},
    {"unknown address", 0},     {"unknown local part", 0},  {"unknown local-part", 0},
    {"unrouteable address", 0}, {"unroutable address", 0},  {"nosuchuser", 0},
    {"recipnotfound", 0},       {"recipientnotfound", 0},
};

bool co_text_is_unknown_user(const char *text)
{
	return MATCH(text, unknown_user_pats);
}

static const pattern disabled_pats[] = {
    {"disabled", 0},
    {"inactive", 0},
    {"deactivated", 0},
    {"no longer active", 0},
};

bool co_text_is_disabled(const char *text)
{
	return MATCH(text, disabled_pats);
}

/* A server refusing the null sender usually says so. */
static const pattern null_sender_pats[] = {
    {"null sender", 0},  {"null reverse", 0},   {"null address", 0}, {"<>", 0},
    {"empty sender", 0}, {"empty envelope", 0}, {"empty from", 0},   {"empty return", 0},
    {"blank sender", 0}, {"bounce", 0},
};

/* A refusal of the VRFY command rather than of the mailbox. */
static const pattern vrfy_refused_pats[] = {
    {"vrfy", 0},          {"verify", 0},   {"verification", 0}, {"not implemented", 0},
    {"not available", 0}, {"prohibit", 0}, {"command", 0},      {"disabled", 0},
};

static const pattern too_many_pats[] = {
    {"too many recipients", 0},
    {"recipient limit", 0},
};

/* An enhanced status code split into numbers; cls 0 when absent. */
typedef struct enh {
	int cls, subj, det;
} enh;

static enh enh_split(const char *s)
{
	enh e = {0, 0, 0};
	int v[3] = {0, 0, 0};
	int part = 0;
	if (s == NULL || s[0] == '\0')
		return e;
	for (size_t i = 0; s[i] != '\0' && i < 16; i++) {
		if (s[i] == '.') {
			if (++part > 2)
				return e;
		} else if (s[i] >= '0' && s[i] <= '9') {
			if (v[part] > 999)
				return e;
			v[part] = v[part] * 10 + (s[i] - '0');
		} else {
			return e;
		}
	}
	if (part != 2)
		return e;
	e.cls = v[0];
	e.subj = v[1];
	e.det = v[2];
	return e;
}

static co_class mk(callout_verdict v, callout_reason r, bool next_host)
{
	co_class c = {v, r, next_host};
	return c;
}

/* Greylisting (RFC 6647): an explicit word, or the codes greylisting
 * filters use (450 4.2.0, 451 4.7.1, 450 4.7.0) with "retry later"
 * phrasing.  Both are tempfail anyway; the reason tells the caller that
 * an immediate retry is useless and one after minutes will pass. */
static bool is_greylisting(int code, enh e, const char *text)
{
	if (co_text_is_greylist(text))
		return true;
	return (code == 450 || code == 451) && e.cls &&
	       ((e.subj == 7 && (e.det == 1 || e.det == 0)) || (e.subj == 2 && e.det == 0)) &&
	       MATCH(text, retry_pats);
}

/* 4xx at RCPT: always tempfail; the reason says when to come back. */
static co_class rcpt_4xx(int code, enh e, const char *text)
{
	/* 421: the server is closing the session; another MX may work. */
	if (code == 421)
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	/* X.5.3, or 452 without a code that names another cause (RFC 5321
	 * 4.5.3.1.10: 452 is what servers answer to one RCPT too many);
	 * ask again in a new session with fewer recipients. */
	if ((e.cls && e.subj == 5 && e.det == 3) || (code == 452 && (!e.cls || e.subj == 5)) ||
	    MATCH(text, too_many_pats))
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS, false);
	if (is_greylisting(code, e, text))
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED, false);
	return mk(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, false);
}

/* 5xx at RCPT. */
static co_class rcpt_5xx(int code, enh e, const char *text, bool null_sender)
{
	/* RFC 6531 3.7.4: X.6.7, a UTF-8 address the server cannot take. */
	if ((e.cls && e.subj == 6 && e.det == 7) ||
	    ci_has(text, strnlen(text, TEXT_SCAN_MAX), "smtputf8", 0))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED, false);
	/* X.5.3 too many recipients, even as 5xx: about the session, not
	 * the address; a new session with fewer recipients may pass. */
	if (e.cls && e.subj == 5 && e.det == 3)
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_TOO_MANY_RECIPIENTS, false);
	/* The null sender refused only at RCPT time (sender restrictions
	 * evaluated late): the caller should retry with its fallback sender. */
	if (null_sender && !co_text_blames_client(text) && MATCH(text, null_sender_pats) &&
	    ((e.cls && e.subj == 1 && e.det == 7) ||
	     ci_has(text, strnlen(text, TEXT_SCAN_MAX), "sender", 0)))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, false);
	/* X.7.x is security/policy: about us, never about the mailbox. */
	if (e.cls && e.subj == 7)
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	if (e.cls && e.subj == 1) {
		/* X.1.7 / X.1.8 are about the *sender* address: a server
		 * checking MAIL FROM at RCPT time (Postfix delays sender
		 * restrictions to RCPT by default). */
		if (e.det == 7 || e.det == 8)
			return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
		/* X.1.0 other, X.1.1 bad mailbox, X.1.2 bad destination
		 * system (the domain's own server says the domain part is
		 * not deliverable), X.1.3 bad syntax, X.1.4 ambiguous,
		 * X.1.6 moved without forwarding, X.1.10 (RFC 7505 null MX,
		 * but also Microsoft's "RecipientNotFound"): positive
		 * evidence that mail to this address cannot be delivered,
		 * unless the text blames us. */
		if (e.det <= 4 || e.det == 6 || e.det == 10) {
			if (co_text_is_policy(text))
				return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
			/* A live server answering RCPT cannot itself be a null
			 * MX; only call it null_mx when the text says so, since
			 * a null_mx reason may be cached for the whole domain. */
			if (e.det == 10 &&
			    (ci_has(text, strnlen(text, TEXT_SCAN_MAX), "null mx", 0) ||
			     ci_has(text, strnlen(text, TEXT_SCAN_MAX), "nullmx", 0)))
				return mk(CALLOUT_INVALID, CALLOUT_R_NULL_MX, false);
			return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
		}
	}
	if (e.cls && e.subj == 2 && e.det == 1) {
		/* X.2.1 mailbox disabled: exists but takes no mail. */
		if (co_text_is_policy(text))
			return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
		return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_DISABLED, false);
	}
	/* X.2.2 mailbox full: the mailbox exists; it cannot take mail now. */
	if (e.cls && e.subj == 2 && e.det == 2)
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_MAILBOX_FULL, false);

	/* No decisive enhanced code: the text, policy words first. */
	if (co_text_is_policy(text))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	if (co_text_is_disabled(text))
		return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_DISABLED, false);
	if (co_text_is_unknown_user(text))
		return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	/* An enhanced code saying the failure is in the mail system (X.3),
	 * the network or routing (X.4), the protocol (X.5) or the content
	 * (X.6) takes the meaning away from a bare 550: not evidence. */
	if (e.cls && e.subj >= 3 && e.subj <= 6)
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
	/* RFC 5321 4.2.2/3.6: at RCPT, 550 mailbox unavailable, 551 user
	 * not local, 553 mailbox name not allowed are about the mailbox;
	 * 552 is exceeded storage. */
	switch (code) {
	case 550:
	case 551:
	case 553:
		return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	case 552:
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_MAILBOX_FULL, false);
	default:
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
	}
}

static co_class classify_rcpt(int code, enh e, const char *text, bool null_sender)
{
	if (code < 300)
		return mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
	if (code < 400) /* RCPT never answers 3xx */
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, true);
	if (code < 500)
		return rcpt_4xx(code, e, text);
	return rcpt_5xx(code, e, text, null_sender);
}

static co_class classify_mail(int code, enh e, const char *text, bool null_sender)
{
	if (code < 400)
		return mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
	/* 4xx at MAIL is about this server's state or greylisting of the
	 * session, never the address: another MX may take it now. */
	if (code < 500) {
		if (is_greylisting(code, e, text))
			return mk(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED, true);
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
	}
	/* X.6.7: our SMTPUTF8 parameter or UTF-8 address refused. */
	if ((e.cls && e.subj == 6 && e.det == 7) ||
	    ci_has(text, strnlen(text, TEXT_SCAN_MAX), "smtputf8", 0))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED, false);
	/* The client itself is blocked (IP, blocklist, reputation): a
	 * fallback sender would not help. */
	if (co_text_blames_client(text))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* Refusing <> (against RFC 5321 6.1 / RFC 2505): say so, so the
	 * caller retries with its fallback sender.  "Null sender not
	 * allowed" is policy wording but about the sender, not us. */
	if (null_sender && MATCH(text, null_sender_pats))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, false);
	if (co_text_is_policy(text))
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
	/* A silent refusal of MAIL FROM:<> is most likely about <>. */
	if (null_sender)
		return mk(CALLOUT_UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, false);
	return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
}

static co_class classify_vrfy(int code, enh e, const char *text)
{
	/* RFC 5321 3.5.3: 250/251 verify the mailbox; 252 means "cannot
	 * verify, but will accept", which says nothing. */
	if (code == 250 || code == 251)
		return mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
	if (code == 550 || code == 551 || code == 553) {
		/* Same guard as at RCPT: a refusal of us is no verdict. */
		if ((e.cls && e.subj == 7) || co_text_is_policy(text))
			return mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
		if (e.cls && e.subj == 2 && e.det == 1)
			return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_DISABLED, false);
		if (e.cls && e.subj == 2 && e.det == 2)
			return mk(CALLOUT_UNKNOWN, CALLOUT_R_MAILBOX_FULL, false);
		/* Some servers refuse the VRFY command itself with 550
		 * ("VRFY disabled"), or name a non-mailbox cause. */
		if (MATCH(text, vrfy_refused_pats) || (e.cls && e.subj >= 3 && e.subj <= 6))
			return mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
		return mk(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN, false);
	}
	/* 252, 502 (VRFY disabled, RFC 2505), 4xx, other 5xx: no answer;
	 * the caller falls back to MAIL/RCPT. */
	return mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
}

co_class co_classify(callout_stage stage, const co_reply *r, bool null_sender)
{
	if (r == NULL || r->code < 200 || r->code > 599)
		return mk(CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, true);
	int code = r->code;
	enh e = enh_split(r->enhanced);
	if (e.cls != code / 100)
		e.cls = e.subj = e.det = 0; /* a mismatched class is no code */
	const char *text = r->text;
	co_class c;

	switch (stage) {
	case CALLOUT_STAGE_RCPT:
		c = classify_rcpt(code, e, text, null_sender);
		break;
	case CALLOUT_STAGE_VRFY:
		c = classify_vrfy(code, e, text);
		break;
	case CALLOUT_STAGE_MAIL:
		c = classify_mail(code, e, text, null_sender);
		break;
	case CALLOUT_STAGE_BANNER:
	case CALLOUT_STAGE_EHLO:
	case CALLOUT_STAGE_HELO:
		/* A 5xx greeting or EHLO/HELO refusal is about us (RFC 5321
		 * 3.1: 554 "no SMTP service here"); conclusive for the
		 * domain, as Exim remembers it.  4xx (421 busy): try another
		 * host. */
		if (code < 400)
			c = mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
		else if (code < 500)
			c = mk(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
		else
			c = mk(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, false);
		break;
	case CALLOUT_STAGE_STARTTLS:
		/* A refused STARTTLS is about this host's TLS; the caller may
		 * go on in clear text or try another host. */
		if (code < 400)
			c = mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
		else
			c = mk(CALLOUT_TEMPFAIL, CALLOUT_R_TLS_FAILED, true);
		break;
	case CALLOUT_STAGE_RSET:
		/* RSET failing says nothing about any address. */
		if (code < 400)
			c = mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
		else if (code < 500)
			c = mk(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, code == 421);
		else
			c = mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
		break;
	default:
		/* No SMTP reply belongs to the other stages; be neutral. */
		if (code < 400)
			c = mk(CALLOUT_VALID, CALLOUT_R_ACCEPTED, false);
		else if (code < 500)
			c = mk(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, true);
		else
			c = mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
		break;
	}
	/* Belt and braces: INVALID only from the stages that ask about the
	 * mailbox. */
	if (c.verdict == CALLOUT_INVALID && stage != CALLOUT_STAGE_RCPT &&
	    stage != CALLOUT_STAGE_VRFY)
		c = mk(CALLOUT_UNKNOWN, CALLOUT_R_REJECTED, false);
	return c;
}

callout_postmaster co_postmaster_answer(const co_reply *r, bool null_sender)
{
	co_class c = co_classify(CALLOUT_STAGE_RCPT, r, null_sender);

	if (c.verdict == CALLOUT_VALID)
		return CALLOUT_POSTMASTER_ACCEPTED;
	return c.verdict == CALLOUT_INVALID ? CALLOUT_POSTMASTER_REFUSED
	                                    : CALLOUT_POSTMASTER_UNKNOWN;
}
