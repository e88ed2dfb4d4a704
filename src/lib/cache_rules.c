/* The cache policy (see cache_rules.h). */
#include <stdio.h>
#include <string.h>

#include "cache_rules.h"

/* The lookup order after the address; co_rules_decide relies on it. */
static const co_rec_kind fact_kinds[CO_LOOKUP_KEYS] = {
    [1] = CO_REC_CATCH_ALL, [2] = CO_REC_NULL_SENDER, [3] = CO_REC_NO_MAIL,
    [4] = CO_REC_BLOCKS_US, [5] = CO_REC_UNREACHABLE, [6] = CO_REC_POSTMASTER,
};

void co_rules_keys(const char *domain, const char *mailbox, const char *sender,
                   char keys[CO_LOOKUP_KEYS][CO_REC_KEY_MAX])
{
	co_rec_key(CO_REC_ADDRESS, domain, mailbox, sender, keys[0], CO_REC_KEY_MAX);
	for (int i = 1; i < CO_LOOKUP_KEYS; i++)
		co_rec_key(fact_kinds[i], domain, NULL, NULL, keys[i], CO_REC_KEY_MAX);
}

/* A fact is used only when it is what its key says and not expired. */
static bool fact(const co_rec recs[], const bool found[], int i, const char *domain, int64_t now)
{
	return found[i] && recs[i].kind == fact_kinds[i] && recs[i].expires > now &&
	       strcmp(recs[i].domain, domain) == 0;
}

bool co_rules_has_fact(const co_rec recs[CO_LOOKUP_KEYS], const bool found[CO_LOOKUP_KEYS],
                       co_rec_kind kind)
{
	for (int i = 1; i < CO_LOOKUP_KEYS; i++)
		if (fact_kinds[i] == kind)
			return found[i] && recs[i].kind == kind;
	return false;
}

co_decision co_rules_decide(const co_ttls *t, int64_t now, const co_rec recs[CO_LOOKUP_KEYS],
                            const bool found[CO_LOOKUP_KEYS], const char *mailbox,
                            const char *sender, bool have_fallback)
{
	co_decision d = {.answer = -1};
	const co_rec *a = &recs[CO_LOOKUP_ADDRESS];
	const char *at = strrchr(mailbox, '@');
	const char *domain = at ? at + 1 : "";

	/* Reported whatever answers: it is never part of the answer. */
	if (fact(recs, found, 6, domain, now))
		d.postmaster = recs[6].verdict == CALLOUT_VALID ? CALLOUT_POSTMASTER_ACCEPTED
		                                                : CALLOUT_POSTMASTER_REFUSED;
	if (found[0] && a->kind == CO_REC_ADDRESS && a->expires > now &&
	    strcmp(a->address, mailbox) == 0 && strcmp(a->sender, sender) == 0) {
		d.answer = 0;
		d.refresh = a->verdict == CALLOUT_VALID && now - a->probed >= (int64_t)t->refresh;
		return d;
	}
	/* Facts that answer for every address of the domain, strongest first. */
	static const int answering[] = {3, 4, 5};
	for (size_t k = 0; k < sizeof(answering) / sizeof(answering[0]); k++) {
		if (fact(recs, found, answering[k], domain, now)) {
			d.answer = answering[k];
			return d;
		}
	}
	if (fact(recs, found, 1, domain, now)) {
		if (recs[1].flags & CO_REC_F_YES) {
			d.answer = 1;
			return d;
		}
		d.skip_random = true;
	}
	if (!sender[0] && fact(recs, found, 2, domain, now)) {
		if (!have_fallback) {
			d.answer = 2;
			return d;
		}
		d.fallback_first = true;
	}
	return d;
}

static co_rec *add(co_rec out[], unsigned ttl[], unsigned *n, co_rec_kind kind, unsigned secs,
                   const co_probe_facts *f, int64_t now)
{
	co_rec *r = &out[*n];

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->verdict = (uint8_t)f->verdict;
	r->reason = (uint8_t)f->reason;
	r->stage = (uint8_t)f->stage;
	r->code = f->code > 0 && f->code < 1000 ? (uint16_t)f->code : 0;
	r->flags = f->tls ? CO_REC_F_TLS : 0;
	r->probed = now;
	r->expires = now + (int64_t)secs;
	snprintf(r->domain, sizeof(r->domain), "%s", f->domain);
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", f->enhanced ? f->enhanced : "");
	snprintf(r->text, sizeof(r->text), "%s", f->text ? f->text : "");
	snprintf(r->mx, sizeof(r->mx), "%s", f->mx ? f->mx : "");
	snprintf(r->ip, sizeof(r->ip), "%s", f->ip ? f->ip : "");
	ttl[*n] = secs;
	(*n)++;
	return r;
}

static void fact_text(co_rec *r, const char *text)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/* Replies before any recipient are about the domain's server and us. */
static bool session_stage(callout_stage stage)
{
	return stage == CALLOUT_STAGE_BANNER || stage == CALLOUT_STAGE_EHLO ||
	       stage == CALLOUT_STAGE_HELO || stage == CALLOUT_STAGE_MAIL;
}

/* No MX would even talk: refused or silent.  A reset or a 421 is one
 * connection's trouble, not the domain's: the pool's backoff deals with
 * a host that keeps doing it. */
static bool unreachable(const co_probe_facts *f)
{
	if (f->verdict != CALLOUT_TEMPFAIL ||
	    (f->stage != CALLOUT_STAGE_CONNECT && f->stage != CALLOUT_STAGE_BANNER))
		return false;
	return f->reason == CALLOUT_R_CONNECT_FAILED || f->reason == CALLOUT_R_TIMEOUT;
}

/* postmaster@DOMAIN's answer, a fact apart: whatever became of the
 * address, its evidence is the postmaster reply, never the address's. */
static void postmaster_fact(const co_ttls *t, int64_t now, const co_probe_facts *f, co_rec out[],
                            unsigned ttl[], unsigned *n)
{
	bool accepted = f->postmaster == CALLOUT_POSTMASTER_ACCEPTED;
	unsigned secs = accepted ? t->domain : t->domain_negative;
	co_rec *r;

	if (f->postmaster == CALLOUT_POSTMASTER_UNKNOWN || !secs)
		return;
	r = add(out, ttl, n, CO_REC_POSTMASTER, secs, f, now);
	r->verdict = accepted ? CALLOUT_VALID : CALLOUT_INVALID;
	r->reason = accepted ? CALLOUT_R_ACCEPTED : CALLOUT_R_MAILBOX_UNKNOWN;
	r->stage = CALLOUT_STAGE_RCPT;
	fact_text(r, accepted ? "postmaster was accepted" : "postmaster was refused as unknown");
	r->code =
	    f->postmaster_code > 0 && f->postmaster_code < 1000 ? (uint16_t)f->postmaster_code : 0;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s",
	         f->postmaster_enhanced ? f->postmaster_enhanced : "");
}

unsigned co_rules_records(const co_ttls *t, int64_t now, const co_probe_facts *f,
                          co_rec out[CO_RULES_RECORDS_MAX], unsigned ttl[CO_RULES_RECORDS_MAX])
{
	unsigned n = 0;
	co_rec *r;

	if (f->stage == CALLOUT_STAGE_SYNTAX || f->stage == CALLOUT_STAGE_NONE)
		return 0;
	postmaster_fact(t, now, f, out, ttl, &n);
	if (f->stage == CALLOUT_STAGE_DNS) {
		/* DNS answers are about the domain; a DNS failure is about
		 * nothing we should remember. */
		if (f->verdict == CALLOUT_INVALID && !f->no_negative && t->domain_negative)
			add(out, ttl, &n, CO_REC_NO_MAIL, t->domain_negative, f, now);
		return n;
	}
	if (f->reason == CALLOUT_R_POLICY_BLOCK &&
	    (session_stage(f->stage) || f->session_blocked)) {
		if (t->domain_negative) {
			r = add(out, ttl, &n, CO_REC_BLOCKS_US, t->domain_negative, f, now);
			/* The fact's evidence must not be one address's reply. */
			if (!session_stage(f->stage) && strcasestr(r->text, f->mailbox))
				snprintf(r->text, sizeof(r->text),
				         "several recipients refused alike in one session, none "
				         "accepted: the server blocks us");
		}
		return n;
	}
	if (f->reason == CALLOUT_R_NULL_SENDER_REJECTED && f->stage == CALLOUT_STAGE_MAIL) {
		if (t->domain)
			add(out, ttl, &n, CO_REC_NULL_SENDER, t->domain, f, now);
		return n;
	}
	if (unreachable(f)) {
		if (t->unreachable && !f->proxy_failed)
			add(out, ttl, &n, CO_REC_UNREACHABLE, t->unreachable, f, now);
		return n;
	}
	if (f->fallback_used && f->fallback && t->domain) {
		/* Without a fallback, this is the answer the domain gives. */
		r = add(out, ttl, &n, CO_REC_NULL_SENDER, t->domain, f, now);
		r->verdict = CALLOUT_UNKNOWN;
		r->reason = CALLOUT_R_NULL_SENDER_REJECTED;
		r->stage = CALLOUT_STAGE_MAIL;
		snprintf(r->sender, sizeof(r->sender), "%s", f->fallback);
		/* The reply kept with the probe is this address's answer to
		 * the fallback, not the refusal. */
		fact_text(r, "MAIL FROM:<> was refused; the fallback sender was accepted");
	}
	/* The reply kept with the session is the real address's, not the
	 * random one's: a catch-all fact carries a description instead. */
	if (f->catch_all && t->domain) {
		r = add(out, ttl, &n, CO_REC_CATCH_ALL, t->domain, f, now);
		r->verdict = CALLOUT_UNKNOWN;
		r->reason = CALLOUT_R_CATCH_ALL;
		r->flags |= CO_REC_F_YES;
		fact_text(r, "a random local part was accepted");
	} else if (f->random_rejected && t->domain_negative) {
		r = add(out, ttl, &n, CO_REC_CATCH_ALL, t->domain_negative, f, now);
		r->verdict = CALLOUT_INVALID;
		r->reason = CALLOUT_R_MAILBOX_UNKNOWN;
		fact_text(r, "a random local part was refused");
	}

	unsigned secs;
	switch (f->verdict) {
	case CALLOUT_VALID:
		secs = t->positive;
		break;
	case CALLOUT_INVALID:
		secs = f->no_negative ? 0 : t->negative;
		break;
	case CALLOUT_UNKNOWN:
		secs = t->negative;
		break;
	default: /* our proxy's failure is nobody's answer */
		secs = f->proxy_failed ? 0 : t->tempfail;
		break;
	}
	/* Postfix's rule: a failed re-probe never replaces a good entry
	 * before it expires. */
	if (f->refresh && (f->verdict == CALLOUT_TEMPFAIL || f->verdict == CALLOUT_UNKNOWN))
		secs = 0;
	if (secs) {
		r = add(out, ttl, &n, CO_REC_ADDRESS, secs, f, now);
		snprintf(r->address, sizeof(r->address), "%s", f->mailbox);
		snprintf(r->sender, sizeof(r->sender), "%s", f->sender);
		if (f->catch_all)
			r->flags |= CO_REC_F_CATCH_ALL;
	}
	/* Somebody was accepted: whatever blocked us does not any more
	 * (TTL 0: forget the fact). */
	if ((f->verdict == CALLOUT_VALID || f->catch_all) && f->block_seen)
		add(out, ttl, &n, CO_REC_BLOCKS_US, 0, f, now);
	return n;
}

void co_rules_result(const co_rec *rec, int64_t now, callout_result *res)
{
	res->verdict = (callout_verdict)rec->verdict;
	res->reason = (callout_reason)rec->reason;
	res->stage = (callout_stage)rec->stage;
	res->code = rec->code;
	res->enhanced = rec->enhanced;
	res->text = rec->text;
	res->mx = rec->mx;
	res->ip = rec->ip;
	res->catch_all = rec->flags & (CO_REC_F_CATCH_ALL | CO_REC_F_YES);
	res->tls = rec->flags & CO_REC_F_TLS;
	res->cached = true;
	res->age = now > rec->probed ? (unsigned)(now - rec->probed) : 0;
	res->from_fact = rec->kind != CO_REC_ADDRESS;
	res->fact = res->from_fact ? co_rec_kind_name(rec->kind) : NULL;
	res->fact_learned = res->from_fact ? rec->probed : 0;
}
