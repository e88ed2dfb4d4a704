/*
 * RFC 5321 mailbox parsing and normalisation.
 *
 * Everything here works on bounded stack buffers; the only allocation is
 * the one libidn2 makes for an A-label, freed before returning.  Input
 * comes from users, files and network peers, so every byte is checked:
 * control characters (which would let a caller inject SMTP commands) are
 * refused everywhere, even inside quotes.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <idn2.h>

/* Longer input is refused before any work: no mailbox is that long. */
#define CO_INPUT_MAX 1000
/* Octets of a label in a domain name (RFC 1035 2.3.4). */
#define CO_LABEL_MAX 63

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* RFC 5322 atext, extended by RFC 6531 with any non-ASCII octet (the
 * UTF-8 validity of the whole local part is checked separately). */
static bool is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c) || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF.  A mailbox is compared octet by octet by servers, so a
 * malformed sequence is an error, not something to repair.
 */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* > U+10FFFF */
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}

/* Is s[0..len) a dot-atom: atoms of atext separated by single dots? */
static bool is_dot_atom(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i - 1] == '.')
				return false;
		} else if (!is_atext(c)) {
			return false;
		}
	}
	return true;
}

/*
 * Check an ASCII domain of len octets (no trailing dot): LDH labels of
 * 1..63 octets that neither start nor end with a hyphen, at most 255 in
 * all.  A single label is accepted (RFC 5321 Domain allows it; whether it
 * resolves is DNS's business).  A dotted quad is refused: it is almost
 * certainly an IP address that should have been written as a literal.
 */
static int ldh_check(const char *s, size_t len, char *err, size_t errlen)
{
	if (len == 0)
		return fail(err, errlen, "empty domain");
	if (len > CO_DOMAIN_MAX)
		return fail(err, errlen, "domain longer than %d octets", CO_DOMAIN_MAX);
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			unsigned char c = (unsigned char)s[i];
			if (!is_alpha(c) && !is_digit(c) && c != '-')
				return fail(err, errlen,
				            "invalid character 0x%02x in domain (letters, digits, "
				            "hyphens only)",
				            c);
			continue;
		}
		size_t ll = i - start;
		if (ll == 0)
			return fail(err, errlen, "empty label in domain");
		if (ll > CO_LABEL_MAX)
			return fail(err, errlen, "domain label longer than %d octets",
			            CO_LABEL_MAX);
		if (s[start] == '-' || s[i - 1] == '-')
			return fail(err, errlen, "domain label starts or ends with a hyphen");
		start = i + 1;
	}
	char tmp[CO_DOMAIN_MAX + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET, tmp, bin) == 1)
		return fail(err, errlen, "IP address as domain: write it as a literal [%s]", tmp);
	return 0;
}

/*
 * A label "xn--..." must at least be valid Punycode: an A-label that
 * decodes to nothing is a typo, not a name.  Otherwise ASCII names are
 * not second-guessed (IDNA 2008 rules for existing A-labels are the
 * registry's business).
 */
static int alabel_check(const char *lc, char *err, size_t errlen)
{
	bool has_alabel = strncmp(lc, "xn--", 4) == 0 || strstr(lc, ".xn--") != NULL;
	if (!has_alabel)
		return 0;
	char *u = NULL;
	int rc = idn2_to_unicode_8z8z(lc, &u, 0);
	idn2_free(u);
	if (rc != IDN2_OK)
		return fail(err, errlen, "invalid A-label in domain: %s", idn2_strerror(rc));
	return 0;
}

int co_domain_normalise(const char *in, char *out, char *err, size_t errlen)
{
	if (in == NULL)
		return fail(err, errlen, "no domain");
	size_t len = strnlen(in, CO_INPUT_MAX + 1);
	if (len > CO_INPUT_MAX)
		return fail(err, errlen, "domain too long");
	bool ascii = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (is_ctl(c))
			return fail(err, errlen, "control character in domain");
		if (c >= 0x80)
			ascii = false;
	}
	/* One trailing dot means the root; it is not part of the name. */
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0)
		return fail(err, errlen, "empty domain");

	if (ascii) {
		if (ldh_check(in, len, err, errlen) != 0)
			return -1;
		char tmp[CO_DOMAIN_MAX + 1];
		for (size_t i = 0; i < len; i++)
			tmp[i] = lower(in[i]);
		tmp[len] = '\0';
		if (alabel_check(tmp, err, errlen) != 0)
			return -1;
		memcpy(out, tmp, len + 1);
		return 0;
	}

	if (!utf8_valid((const unsigned char *)in, len))
		return fail(err, errlen, "invalid UTF-8 in domain");
	char src[CO_INPUT_MAX + 1];
	memcpy(src, in, len);
	src[len] = '\0';
	/* IDNA 2008 with UTS #46 mapping (case folding, NFC); the
	 * transitional mapping as a fallback for names only IDNA 2003
	 * accepted. */
	uint8_t *alabel = NULL;
	int rc =
	    idn2_lookup_u8((const uint8_t *)src, &alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		idn2_free(alabel);
		alabel = NULL;
		int rc2 = idn2_lookup_u8((const uint8_t *)src, &alabel,
		                         IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
		if (rc2 != IDN2_OK) {
			idn2_free(alabel);
			return fail(err, errlen, "invalid internationalised domain: %s",
			            idn2_strerror(rc));
		}
	}
	size_t alen = strlen((const char *)alabel);
	int ret = 0;
	/* libidn2 checks a lot, but the result must still be a plain LDH
	 * name within our limits before anyone sends it. */
	if (alen > 0 && alabel[alen - 1] == '.')
		alen--;
	if (ldh_check((const char *)alabel, alen, err, errlen) != 0) {
		ret = -1;
	} else {
		for (size_t i = 0; i < alen; i++)
			out[i] = lower((char)alabel[i]);
		out[alen] = '\0';
	}
	idn2_free(alabel);
	return ret;
}

/*
 * An address literal "[...]" of len octets: "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]" (tag case-insensitive as in the RFC's ABNF).
 * General-address-literals (any other tag) have no use for a callout and
 * are refused.  The bare address, canonicalised by inet_ntop, goes to ip.
 */
static int literal_parse(const char *s, size_t len, co_addr_kind *kind, char ip[64], char *err,
                         size_t errlen)
{
	char tmp[CO_DOMAIN_MAX + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	if (len < 2 || s[0] != '[' || s[len - 1] != ']')
		return fail(err, errlen, "malformed address literal");
	if (len > CO_DOMAIN_MAX)
		return fail(err, errlen, "address literal too long");
	const char *p = s + 1;
	size_t n = len - 2;
	if (n == 0)
		return fail(err, errlen, "empty address literal");
	if (memchr(p, '[', n) != NULL || memchr(p, ']', n) != NULL || memchr(p, '\\', n) != NULL)
		return fail(err, errlen, "malformed address literal");
	if (n > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		memcpy(tmp, p + 5, n - 5);
		tmp[n - 5] = '\0';
		if (inet_pton(AF_INET6, tmp, bin) != 1)
			return fail(err, errlen, "invalid IPv6 address literal");
		if (ip != NULL && inet_ntop(AF_INET6, bin, ip, 64) == NULL)
			return fail(err, errlen, "invalid IPv6 address literal");
		*kind = CO_ADDR_IPV6;
		return 0;
	}
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, bin) == 1) {
		if (ip != NULL && inet_ntop(AF_INET, bin, ip, 64) == NULL)
			return fail(err, errlen, "invalid IPv4 address literal");
		*kind = CO_ADDR_IPV4;
		return 0;
	}
	const char *colon = memchr(p, ':', n);
	if (colon != NULL && colon > p)
		return fail(err, errlen, "unsupported address literal (only IPv4 and IPv6:)");
	return fail(err, errlen, "invalid IPv4 address literal");
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int co_addr_parse(const char *input, co_addr *out, char *err, size_t errlen)
{
	if (input == NULL || out == NULL)
		return fail(err, errlen, "no address");
	size_t len = strnlen(input, CO_INPUT_MAX + 1);
	if (len > CO_INPUT_MAX) {
		fail(err, errlen, "address longer than %d octets: too long to ask", CO_INPUT_MAX);
		return CO_ADDR_TOO_LONG;
	}

	/* Surrounding blanks, then optional angle brackets. */
	const char *s = input;
	while (len > 0 && is_blank(s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_blank(s[len - 1]))
		len--;
	if (len == 0)
		return fail(err, errlen, "empty address");
	/* Control characters anywhere (also inside quotes) are refused
	 * before parsing: a CR or LF would end the SMTP command early. */
	for (size_t i = 0; i < len; i++)
		if (is_ctl((unsigned char)s[i]))
			return fail(err, errlen, "control character 0x%02x in address",
			            (unsigned char)s[i]);
	if (s[0] == '<' || s[len - 1] == '>') {
		if (len < 2 || s[0] != '<' || s[len - 1] != '>')
			return fail(err, errlen, "unbalanced angle brackets");
		s++;
		len -= 2;
		if (len == 0)
			return fail(err, errlen, "empty address (null sender <>)");
		if (s[0] == '@')
			return fail(err, errlen, "source routes are not supported");
	}

	/* Local part: a quoted string (unquoted here into buf) or a dot-atom. */
	char buf[CO_INPUT_MAX + 1];
	size_t blen = 0;
	size_t i = 0;
	bool quoted = false;
	if (s[0] == '"') {
		quoted = true;
		i = 1;
		for (;;) {
			if (i >= len)
				return fail(err, errlen, "unterminated quoted local part");
			unsigned char c = (unsigned char)s[i];
			if (c == '"')
				break;
			if (c == '\\') {
				/* quoted-pairSMTP: backslash and one printable
				 * ASCII character. */
				if (i + 1 >= len)
					return fail(err, errlen, "unterminated quoted local part");
				unsigned char e = (unsigned char)s[i + 1];
				if (e < 0x20 || e > 0x7e)
					return fail(err, errlen,
					            "invalid escape in quoted local part");
				buf[blen++] = (char)e;
				i += 2;
				continue;
			}
			buf[blen++] = (char)c; /* qtextSMTP, or UTF-8 (checked below) */
			i++;
		}
		i++; /* closing quote */
		if (i >= len || s[i] != '@')
			return fail(err, errlen, "quoted local part must be followed by @");
	} else {
		while (i < len && s[i] != '@') {
			buf[blen++] = s[i];
			i++;
		}
		if (i >= len)
			return fail(err, errlen, "no @ in address");
	}
	/* s[i] is the '@' that ends the local part. */
	const char *dom = s + i + 1;
	size_t dlen = len - i - 1;
	if (blen == 0)
		return fail(err, errlen, "empty local part");
	if (memchr(dom, '@', dlen) != NULL)
		return fail(err, errlen, quoted ? "@ after the domain" : "several @ in address");
	if (dlen == 0)
		return fail(err, errlen, "empty domain");

	if (!utf8_valid((const unsigned char *)buf, blen))
		return fail(err, errlen, "invalid UTF-8 in local part");
	bool utf8 = false;
	for (size_t k = 0; k < blen; k++)
		if ((unsigned char)buf[k] >= 0x80)
			utf8 = true;

	/* Wire form: the dot-atom as is when it is one; otherwise quoted,
	 * escaping only what must be escaped.  Its length is checked last,
	 * with the path's. */
	char local[2 * CO_INPUT_MAX + 3];
	size_t llen = 0;
	if (is_dot_atom(buf, blen)) {
		memcpy(local, buf, blen);
		llen = blen;
	} else {
		if (!quoted)
			return fail(err, errlen,
			            "invalid character in local part (quote it if intended)");
		local[llen++] = '"';
		for (size_t k = 0; k < blen; k++) {
			if (buf[k] == '"' || buf[k] == '\\')
				local[llen++] = '\\';
			local[llen++] = buf[k];
		}
		local[llen++] = '"';
	}
	local[llen] = '\0';

	/* Domain: an address literal as sent, or a name folded to an
	 * A-label. */
	co_addr_kind kind = CO_ADDR_DOMAIN;
	char ip[64] = "";
	char domain[CO_DOMAIN_MAX + 1];
	size_t domlen;
	if (dom[0] == '[') {
		if (literal_parse(dom, dlen, &kind, ip, err, errlen) != 0)
			return -1;
		memcpy(domain, dom, dlen);
		domain[dlen] = '\0';
		domlen = dlen;
	} else {
		char dtmp[CO_INPUT_MAX + 1];
		memcpy(dtmp, dom, dlen);
		dtmp[dlen] = '\0';
		if (co_domain_normalise(dtmp, domain, err, errlen) != 0)
			return -1;
		domlen = strlen(domain);
	}

	/* Path "<local@domain>" at most 256 octets (which bounds the local
	 * part too): longer is well-formed, just more than we ask about. */
	if (llen + 1 + domlen + 2 > CO_PATH_MAX) {
		fail(err, errlen, "address longer than %d octets: too long to ask",
		     CO_PATH_MAX - 2);
		return CO_ADDR_TOO_LONG;
	}

	out->kind = kind;
	out->utf8 = utf8;
	memcpy(out->local, local, llen + 1);
	memcpy(out->domain, domain, domlen + 1);
	memcpy(out->ip, ip, sizeof(out->ip));
	memcpy(out->mailbox, local, llen);
	out->mailbox[llen] = '@';
	memcpy(out->mailbox + llen + 1, domain, domlen + 1);
	return 0;
}

bool co_helo_valid(const char *name)
{
	if (name == NULL)
		return false;
	size_t len = strnlen(name, CO_DOMAIN_MAX + 1);
	if (len == 0 || len > CO_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (is_ctl(c) || c >= 0x80)
			return false;
	}
	if (name[0] == '[') {
		co_addr_kind kind;
		return literal_parse(name, len, &kind, NULL, NULL, 0) == 0;
	}
	return ldh_check(name, len, NULL, 0) == 0;
}

void co_default_helo(char *out, size_t len)
{
	char host[256] = "";
	struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *ai = NULL;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	if (!strchr(host, '.') && getaddrinfo(host, NULL, &hints, &ai) == 0) {
		if (ai && ai->ai_canonname && strchr(ai->ai_canonname, '.'))
			snprintf(host, sizeof(host), "%s", ai->ai_canonname);
		freeaddrinfo(ai);
	}
	snprintf(out, len, "%s", co_helo_valid(host) ? host : "localhost");
}
