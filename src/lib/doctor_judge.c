/*
 * The verdicts of a doctor's run (doctor_int.h): once nothing is
 * outstanding, the facts gathered (the connection and dialogue, the
 * egress address, its PTR and the PTR name's addresses, the HELO name's,
 * the blocklists' answers, the banner's Date) are judged here, in one
 * place, into the report's checks: pass, warn, fail or skip, each with
 * what was found and what to do about it.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "doctor_int.h"
#include "doctor_parse.h"

#define SKEW_WARN_S 300 /* clock skew worth a warning */

static const char *const check_names[C_COUNT] = {"connect", "egress", "ptr",      "fcrdns",
                                                 "helo",    "dnsbl",  "starttls", "clock"};

/* Append s to buf (size bytes, holding pos), cut at the end; the new pos. */
static size_t append(char *buf, size_t size, size_t pos, const char *s)
{
	size_t n = strlen(s);

	if (pos >= size)
		return pos;
	if (n > size - 1 - pos)
		n = size - 1 - pos;
	memcpy(buf + pos, s, n);
	buf[pos + n] = '\0';
	return pos + n;
}

/* Whether addr is one of f's addresses. */
static bool fwd_has(const struct fwd *f, const char *addr)
{
	for (unsigned i = 0; i < f->n; i++)
		if (strcmp(f->addrs[i], addr) == 0)
			return true;
	return false;
}

/* f's addresses, comma-separated, into out (len bytes). */
static void fwd_list(const struct fwd *f, char *out, size_t len)
{
	size_t pos = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < f->n; i++)
		pos = append(out, len, append(out, len, pos, i ? ", " : ""), f->addrs[i]);
}

static void set(callout_doctor *d, int c, callout_doctor_level l, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set(callout_doctor *d, int c, callout_doctor_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->details[c], sizeof(d->details[c]), fmt, ap);
	va_end(ap);
	d->checks[c] = (callout_doctor_check){check_names[c], l, d->details[c]};
}

static const char *timeout_note(const callout_doctor *d)
{
	return d->timed_out ? "the run's deadline passed first" : "no answer";
}

static void judge_connect(callout_doctor *d)
{
	if (d->connected) {
		if (d->banner_code == 220 || (d->banner_code == 0 && !d->smtp_err[0]))
			set(d, C_CONNECT, CALLOUT_DOCTOR_PASS, "connected to %s [%s]:%u in %u ms",
			    d->mx, d->ip, d->port, d->connect_ms);
		else if (d->banner_code)
			set(d, C_CONNECT, CALLOUT_DOCTOR_WARN,
			    "connected to %s [%s]:%u, but it greets us with \"%s\": it refuses "
			    "this "
			    "client; see the PTR, HELO and blocklist checks",
			    d->mx, d->ip, d->port, d->banner);
		else
			set(d, C_CONNECT, CALLOUT_DOCTOR_WARN,
			    "connected to %s [%s]:%u, but got %s: a firewall or proxy may "
			    "intercept "
			    "port %u",
			    d->mx, d->ip, d->port, d->smtp_err, d->port);
	} else if (d->resolve_err[0]) {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL, "%s: check the name, or the DNS servers",
		    d->resolve_err);
	} else if (!d->resolved && d->timed_out) {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL, "%s: %s while resolving it", d->target,
		    timeout_note(d));
	} else if (d->tried == 0 && d->refused_private) {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL,
		    "every address of %s is %s: not contacted unless private targets are allowed "
		    "(--allow-private, allow_private)",
		    d->target, d->private_why);
	} else {
		set(d, C_CONNECT, CALLOUT_DOCTOR_FAIL,
		    "no connection to %s on port %u (%u address%s tried; last: %s): outbound port "
		    "%u "
		    "is blocked (ask your provider, open the firewall) or the server is down",
		    d->target, d->port, d->tried, d->tried == 1 ? "" : "es",
		    d->conn_err[0] ? d->conn_err : timeout_note(d), d->port);
	}
}

static void judge_egress(callout_doctor *d)
{
	const char *why = NULL;

	if (!d->have_egress) {
		set(d, C_EGRESS, CALLOUT_DOCTOR_SKIP,
		    "unknown: no connection was made and no source address is configured "
		    "(--source, source_address)");
		return;
	}
	if (!d->allow_private && co_netcheck_addr(d->nc, &d->egress, false, &why) != CO_NET_OK &&
	    why && strcmp(why, "this host's own address") != 0) {
		set(d, C_EGRESS, CALLOUT_DOCTOR_WARN,
		    "%s is %s: a NAT in front of this host changes it, and the checks below are of "
		    "the private address; give the public one with --source (source_address)",
		    d->egress_text, why);
		return;
	}
	set(d, C_EGRESS, CALLOUT_DOCTOR_PASS, "%s (%s)", d->egress_text,
	    d->egress_configured ? "the configured source address"
	                         : "the local end of the connection");
}

static void judge_ptr(callout_doctor *d)
{
	if (!d->have_egress) {
		set(d, C_PTR, CALLOUT_DOCTOR_SKIP, "no egress address to look up");
		set(d, C_FCRDNS, CALLOUT_DOCTOR_SKIP, "no egress address");
		return;
	}
	if (!d->ptr_answered || d->ptr_status == CO_RDNS_TEMPFAIL) {
		set(d, C_PTR, CALLOUT_DOCTOR_WARN, "could not check the PTR of %s: %s",
		    d->egress_text, d->ptr_answered ? d->ptr_why : timeout_note(d));
		set(d, C_FCRDNS, CALLOUT_DOCTOR_SKIP, "no PTR name to check");
		return;
	}
	if (d->ptr_status != CO_RDNS_OK) {
		set(d, C_PTR, CALLOUT_DOCTOR_FAIL,
		    "%s has no PTR record: many servers refuse such clients; ask whoever "
		    "controls the address (your provider) for a PTR naming this host, e.g. %s",
		    d->egress_text, d->helo);
		set(d, C_FCRDNS, CALLOUT_DOCTOR_SKIP, "no PTR name to check");
		return;
	}
	if (strcasecmp(d->ptr_name, d->helo) == 0)
		set(d, C_PTR, CALLOUT_DOCTOR_PASS, "%s has PTR %s, the HELO name", d->egress_text,
		    d->ptr_name);
	else
		set(d, C_PTR, CALLOUT_DOCTOR_WARN,
		    "%s has PTR %s, but the HELO name is %s: make them the same (set helo to "
		    "%s, or change the PTR)",
		    d->egress_text, d->ptr_name, d->helo, d->ptr_name);

	const struct fwd *f = &d->ptr_fwd;
	char list[DOC_DETAIL / 2];

	fwd_list(f, list, sizeof(list));
	if (fwd_has(f, d->egress_text))
		set(d, C_FCRDNS, CALLOUT_DOCTOR_PASS, "%s resolves back to %s", f->name,
		    d->egress_text);
	else if (f->n > 0)
		set(d, C_FCRDNS, CALLOUT_DOCTOR_FAIL,
		    "%s resolves to %s, not to %s: add an A/AAAA record of %s for %s, or fix "
		    "the PTR",
		    f->name, list, d->egress_text, f->name, d->egress_text);
	else if (f->temp || f->left)
		set(d, C_FCRDNS, CALLOUT_DOCTOR_WARN, "could not resolve %s: %s", f->name,
		    f->temp ? f->why : timeout_note(d));
	else
		set(d, C_FCRDNS, CALLOUT_DOCTOR_FAIL,
		    "%s (the PTR name) %s: add an A/AAAA record of it for %s", f->name,
		    f->exists ? "has no address" : "does not exist", d->egress_text);
}

static void judge_helo(callout_doctor *d)
{
	const struct fwd *f = &d->helo_fwd;
	char list[DOC_DETAIL / 2];

	if (!f->asked) { /* an address literal */
		char ip[INET6_ADDRSTRLEN];
		size_t n = strlen(d->helo);
		const char *v = strncasecmp(d->helo, "[IPv6:", 6) == 0 ? d->helo + 6 : d->helo + 1;

		size_t k = (size_t)(d->helo + n - 1 - v);

		if (k >= sizeof(ip))
			k = 0;
		memcpy(ip, v, k);
		ip[k] = '\0';
		if (d->have_egress && strcmp(ip, d->egress_text) == 0)
			set(d, C_HELO, CALLOUT_DOCTOR_WARN,
			    "the HELO name is the address literal %s: many servers want a name "
			    "that resolves to %s",
			    d->helo, d->egress_text);
		else
			set(d, C_HELO, CALLOUT_DOCTOR_FAIL,
			    "the HELO name is the address literal %s, not our address %s: use a "
			    "name "
			    "that resolves to it",
			    d->helo, d->have_egress ? d->egress_text : "(unknown)");
		return;
	}
	fwd_list(f, list, sizeof(list));
	if (f->n > 0 && !d->have_egress)
		set(d, C_HELO, CALLOUT_DOCTOR_SKIP,
		    "%s resolves to %s; the egress address is unknown, not compared", f->name,
		    list);
	else if (f->n > 0 && fwd_has(f, d->egress_text))
		set(d, C_HELO, CALLOUT_DOCTOR_PASS, "%s resolves to %s", f->name, d->egress_text);
	else if (f->n > 0)
		set(d, C_HELO, CALLOUT_DOCTOR_FAIL,
		    "%s resolves to %s, not to the egress address %s: add an A/AAAA record of "
		    "it for %s, or set helo to a name that has one",
		    f->name, list, d->egress_text, d->egress_text);
	else if (f->temp || f->left)
		set(d, C_HELO, CALLOUT_DOCTOR_WARN, "could not resolve the HELO name %s: %s",
		    f->name, f->temp ? f->why : timeout_note(d));
	else
		set(d, C_HELO, CALLOUT_DOCTOR_FAIL,
		    "the HELO name %s %s: many servers refuse it; give it an A/AAAA record%s%s, or "
		    "set helo (--helo) to a name that has one",
		    f->name, f->exists ? "has no address" : "does not exist",
		    d->have_egress ? " for " : "", d->egress_text);
}

static void judge_dnsbl(callout_doctor *d)
{
	char listed[DOC_DETAIL / 2] = "", unknown[DOC_DETAIL / 2] = "";
	size_t nl = 0, nu = 0;

	for (unsigned i = 0; i < d->nzones; i++) {
		struct zone *z = &d->zones[i];

		if (!z->answered) {
			z->listed = -1;
			snprintf(z->detail, sizeof(z->detail), "could not check: %s",
			         z->asked ? timeout_note(d) : "no egress address");
		}
		d->listings[i] = (callout_doctor_listing){z->name, z->listed, z->detail};
		if (z->listed == 1) {
			nl = append(listed, sizeof(listed), nl, nl ? ", " : "");
			nl = append(listed, sizeof(listed), nl, z->name);
			nl = append(listed, sizeof(listed), nl, z->detail + 6);
		} else if (z->listed < 0) {
			nu = append(unknown, sizeof(unknown), nu, nu ? ", " : "");
			nu = append(unknown, sizeof(unknown), nu, z->name);
		}
	}
	if (d->nzones == 0)
		set(d, C_DNSBL, CALLOUT_DOCTOR_SKIP,
		    "no blocklists configured (--dnsbl ZONE,..., [doctor] dnsbl)");
	else if (!d->have_egress)
		set(d, C_DNSBL, CALLOUT_DOCTOR_SKIP, "no egress address to look up");
	else if (nl)
		set(d, C_DNSBL, CALLOUT_DOCTOR_FAIL,
		    "%s is listed on %s: servers using these lists refuse us; ask each list for "
		    "delisting once the cause is fixed",
		    d->egress_text, listed);
	else if (nu)
		set(d, C_DNSBL, CALLOUT_DOCTOR_WARN, "could not check %s on %s (see dnsbl details)",
		    d->egress_text, unknown);
	else
		set(d, C_DNSBL, CALLOUT_DOCTOR_PASS, "%s is on none of %u list%s", d->egress_text,
		    d->nzones, d->nzones == 1 ? "" : "s");
}

static void judge_tls(callout_doctor *d)
{
	if (!d->connected || d->banner_code != 220 || d->ehlo_code == 0) {
		set(d, C_STARTTLS, CALLOUT_DOCTOR_SKIP, "no SMTP session got as far as EHLO");
		return;
	}
	if (d->ehlo_code != 250) {
		set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN,
		    "%s answered EHLO %s with \"%s\": it refuses our HELO name", d->mx, d->helo,
		    d->ehlo_text);
		return;
	}
	switch (d->tls_state) {
	case TLS_OK:
		set(d, C_STARTTLS, CALLOUT_DOCTOR_PASS, "offered by %s; handshake OK (%s)", d->mx,
		    d->tls_detail);
		break;
	case TLS_FAILED:
		set(d, C_STARTTLS, CALLOUT_DOCTOR_FAIL,
		    "offered by %s, but the handshake failed: %s; check the TLS library and "
		    "any TLS-intercepting middlebox",
		    d->mx, d->tls_detail);
		break;
	case TLS_REFUSED:
		set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN,
		    "offered by %s, but STARTTLS was answered %s", d->mx, d->tls_detail);
		break;
	default:
		if (d->caps.starttls)
			set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN, "offered by %s; %s", d->mx,
			    d->smtp_err[0] ? d->smtp_err : timeout_note(d));
		else
			set(d, C_STARTTLS, CALLOUT_DOCTOR_WARN,
			    "not offered by %s: callouts to it go in clear text (a firewall that "
			    "strips STARTTLS does this too)",
			    d->mx);
	}
}

static void judge_clock(callout_doctor *d)
{
	long long now = now_s(d), built = co_build_date(__DATE__);

	/* __DATE__ is the local date: a day's slack for time zones */
	if (built > 0 && now < built - 86400) {
		set(d, C_CLOCK, CALLOUT_DOCTOR_FAIL,
		    "the clock (%lld) is before this program was built (%s): set the time (NTP); "
		    "TLS and caches go wrong with it",
		    now, __DATE__);
	} else if (d->have_date) {
		long long skew = d->banner_now - d->banner_date;
		long long mag = skew < 0 ? -skew : skew;

		if (mag > SKEW_WARN_S)
			set(d, C_CLOCK, CALLOUT_DOCTOR_WARN,
			    "%lld s %s the Date in %s's banner: one of the clocks is wrong; check "
			    "NTP here",
			    mag, skew > 0 ? "ahead of" : "behind", d->mx);
		else
			set(d, C_CLOCK, CALLOUT_DOCTOR_PASS,
			    "within %lld s of the Date in %s's banner", mag, d->mx);
	} else {
		set(d, C_CLOCK, CALLOUT_DOCTOR_SKIP,
		    "could not be checked: no banner with a date (the clock is after the build "
		    "date)");
	}
}

void co_doctor_judge(callout_doctor *d)
{
	judge_connect(d);
	judge_egress(d);
	judge_ptr(d);
	judge_helo(d);
	judge_dnsbl(d);
	judge_tls(d);
	judge_clock(d);
}
