/* The decisions of a mail transaction (see decide.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "decide.h"

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at ? at + 1 : "";
}

/* Lower-cased copy of the domain, for the [domain] lookup. */
static void lower_domain(const char *address, char *out, size_t len)
{
	const char *d = domain_of(address);
	size_t i = 0;
	for (; d[i] && i < len - 1; i++)
		out[i] = (char)tolower((unsigned char)d[i]);
	out[i] = '\0';
}

static bool same_address(const char *a, const char *b)
{
	return a[0] && b[0] && strcasecmp(a, b) == 0;
}

static void init_check(const cd_config *c, const char *what, const char *address,
                       const cd_domain *dom, cd_check_plan *k)
{
	bool recipient = what[0] == 'r';

	memset(k, 0, sizeof(*k));
	k->what = what;
	snprintf(k->address, sizeof(k->address), "%s", address);
	k->mode = dom && dom->has_mode ? dom->mode : c->mode;
	k->defer_ok = c->defer_ok;
	k->reject = recipient ? c->recipient_reject : c->sender_reject;
	k->defer = recipient ? c->recipient_defer : c->sender_defer;
	k->in_progress = c->in_progress;
	memcpy(k->unknown_reject, c->unknown_reject, sizeof(k->unknown_reject));
	k->nunknown_reject = c->nunknown_reject;
	k->tag_no_postmaster = !recipient && c->tag_no_postmaster;
}

/* Why the sender is not verified, or NULL to verify it. */
static const char *sender_skip(const cd_config *c, const cd_request *r, const cd_domain *dom)
{
	if (!c->verify_sender)
		return "sender verification off";
	if (r->recipient_only)
		return "sender checked at another stage";
	if (!r->sender[0])
		return "null sender";
	if (r->sasl_username && r->sasl_username[0])
		return "authenticated client";
	/* Loop protection: our own probes, if they come back through us. */
	if (same_address(r->sender, c->sender) || same_address(r->sender, c->fallback_sender))
		return "our own callout sender";
	if (dom && dom->action == CD_DOM_SKIP)
		return "domain skipped";
	if (dom && dom->action == CD_DOM_VERIFY)
		return NULL;
	if (r->client_address && r->client_address[0] &&
	    cd_config_skip_client(c, r->client_address))
		return "client network skipped";
	if (cd_config_skip_sender(c, r->sender))
		return "sender allow-listed";
	return NULL;
}

void cd_decide_plan(const cd_config *c, const cd_request *r, cd_plan *p)
{
	char dname[256];

	memset(p, 0, sizeof(*p));
	if (r->recipient && r->recipient[0] && c->verify_recipient) {
		lower_domain(r->recipient, dname, sizeof(dname));
		const cd_domain *dom = cd_config_domain(c, dname);
		if (dom && dom->route[0])
			init_check(c, "recipient", r->recipient, dom, &p->checks[p->n++]);
	}
	lower_domain(r->sender, dname, sizeof(dname));
	const cd_domain *sdom = cd_config_domain(c, dname);
	const char *why = sender_skip(c, r, sdom);
	if (!why)
		init_check(c, "sender", r->sender, sdom, &p->checks[p->n++]);
	else if (p->n == 0)
		p->skip_reason = why;
}

static bool unknown_rejects(const cd_check_plan *p, callout_reason r)
{
	for (size_t i = 0; i < p->nunknown_reject; i++)
		if (p->unknown_reject[i] == r)
			return true;
	return false;
}

static void append(char *out, size_t len, size_t *n, const char *s)
{
	for (; *s && *n + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		/* One printable line: an MTA puts it in an SMTP reply. */
		out[(*n)++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[*n] = '\0';
}

void cd_expand(const char *tmpl, const char *address, const callout_result *res, char *out,
               size_t len)
{
	static const char *const names[] = {"address", "reason", "verdict", "code", "text"};
	size_t n = 0;
	char code[16];

	out[0] = '\0';
	snprintf(code, sizeof(code), "%d", res ? res->code : 0);
	for (const char *p = tmpl; *p && n + 1 < len;) {
		size_t k = 0, nl = 0;
		if (*p == '$') {
			for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
				nl = strlen(names[k]);
				if (strncmp(p + 1, names[k], nl) == 0)
					break;
			}
		}
		if (*p != '$' || k == sizeof(names) / sizeof(names[0])) {
			char one[2] = {*p++, '\0'};
			append(out, len, &n, one);
			continue;
		}
		const char *v = k == 0   ? address
		                : k == 1 ? (res ? callout_reason_name(res->reason) : "")
		                : k == 2 ? (res ? callout_verdict_name(res->verdict) : "")
		                : k == 3 ? code
		                         : (res ? res->text : "");
		append(out, len, &n, v);
		p += 1 + nl;
	}
}

static void set_reply(cd_answer *a, const cd_reply *r, const char *address,
                      const callout_result *res)
{
	a->code = r->code;
	snprintf(a->enhanced, sizeof(a->enhanced), "%s", r->enhanced);
	cd_expand(r->text, address, res, a->text, sizeof(a->text));
}

/* The header tag mode adds: what the verification found, and that the
 * domain refuses postmaster when that is what it is there for. */
static void tag(const cd_check_plan *p, const callout_result *res, bool no_postmaster, cd_answer *a)
{
	snprintf(a->header, sizeof(a->header),
	         "verdict=%s; reason=%s; %s%s=", callout_verdict_name(res->verdict),
	         callout_reason_name(res->reason), no_postmaster ? "postmaster=refused; " : "",
	         p->what);
	size_t n = strlen(a->header);
	append(a->header, sizeof(a->header), &n, p->address);
}

/* Tag and dry-run accept; tag says what it found in a header.  A sender
 * domain that refuses postmaster is a signal to tag (no_postmaster =
 * tag), never a reason to refuse: it changes nothing else. */
static void apply_mode(const cd_check_plan *p, const callout_result *res, cd_answer *a)
{
	bool no_postmaster = res && p->tag_no_postmaster && p->mode != CD_MODE_DRY_RUN &&
	                     res->postmaster == CALLOUT_POSTMASTER_REFUSED;

	if (p->mode == CD_MODE_ENFORCE) {
		if (no_postmaster && a->action == CD_ACT_PASS)
			tag(p, res, true, a);
		return;
	}
	if (p->mode == CD_MODE_TAG && res)
		tag(p, res, no_postmaster, a);
	a->action = CD_ACT_PASS;
	a->code = 0;
	a->enhanced[0] = '\0';
	a->text[0] = '\0';
}

void cd_decide_answer(const cd_check_plan *p, const callout_result *res, cd_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->verified = true;
	a->checked = p->what;
	a->verdict = res->verdict;
	a->reason = res->reason;
	a->smtp_code = res->code;
	if (!res->code && res->text) {
		/* For the log line, inside its double quotes. */
		snprintf(a->why, sizeof(a->why), "%s", res->text);
		for (char *c = a->why; *c; c++)
			if (*c == '"' || *c == '\\')
				*c = '\'';
	}
	a->cached = res->cached;
	a->fact = res->from_fact ? res->fact : NULL; /* static: outlives res */
	a->postmaster = res->postmaster;
	a->ms = res->ms;
	switch (res->verdict) {
	case CALLOUT_INVALID:
		a->action = CD_ACT_REJECT;
		break;
	case CALLOUT_UNKNOWN:
		a->action = unknown_rejects(p, res->reason) ? CD_ACT_REJECT : CD_ACT_PASS;
		break;
	case CALLOUT_TEMPFAIL:
		a->action = p->defer_ok ? CD_ACT_PASS : CD_ACT_DEFER;
		break;
	default:
		a->action = CD_ACT_PASS;
		break;
	}
	if (a->action == CD_ACT_REJECT)
		set_reply(a, &p->reject, p->address, res);
	else if (a->action == CD_ACT_DEFER)
		set_reply(a, &p->defer, p->address, res);
	apply_mode(p, res, a);
}

void cd_decide_in_progress(const cd_check_plan *p, cd_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->verified = true;
	a->checked = p->what;
	a->verdict = CALLOUT_TEMPFAIL;
	a->reason = CALLOUT_R_TIMEOUT;
	a->action = p->defer_ok ? CD_ACT_PASS : CD_ACT_DEFER;
	if (a->action == CD_ACT_DEFER)
		set_reply(a, &p->in_progress, p->address, NULL);
	apply_mode(p, NULL, a);
}
