/*
 * SMTP reply parsing (RFC 5321 4.2), enhanced status codes (RFC 3463)
 * and EHLO keywords.
 *
 * Replies come from servers we do not control: every line is bounded,
 * every byte may be anything (NUL included), and nothing but printable
 * ASCII ever reaches the stored text, which ends up in logs and JSON.
 */
#include "reply.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

void co_reply_init(co_reply *r)
{
	memset(r, 0, sizeof(*r));
}

size_t co_enhanced_parse(int code, const char *text, size_t len, char out[16])
{
	size_t i = 0;
	out[0] = '\0';
	if (text == NULL || code < 200 || code > 599)
		return 0;
	/* class: 2, 4 or 5, and the same as the reply's first digit */
	if (len < 5 || text[0] != (char)('0' + code / 100))
		return 0;
	if (text[1] != '.')
		return 0;
	i = 2;
	/* subject and detail: 1 to 3 digits each */
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < len && i - start < 4 && is_digit((unsigned char)text[i]))
			i++;
		size_t n = i - start;
		if (n < 1 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || text[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && text[i] != ' ')
		return 0;
	memcpy(out, text, i);
	out[i] = '\0';
	return i;
}

/* Append len octets of line text to r->text: sanitised to printable
 * ASCII, separated from earlier text by one space, truncated at
 * CO_REPLY_TEXT_MAX. */
static void text_append(co_reply *r, const char *s, size_t len)
{
	while (len > 0 && s[0] == ' ') {
		s++;
		len--;
	}
	while (len > 0 && s[len - 1] == ' ')
		len--;
	if (len == 0)
		return;
	size_t tl = strnlen(r->text, CO_REPLY_TEXT_MAX);
	if (tl > 0 && tl < CO_REPLY_TEXT_MAX)
		r->text[tl++] = ' ';
	for (size_t i = 0; i < len && tl < CO_REPLY_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		r->text[tl++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	r->text[tl] = '\0';
}

co_reply_status co_reply_feed(co_reply *r, const char *line, size_t len)
{
	if (r == NULL || r->done || (line == NULL && len > 0))
		return CO_REPLY_ERROR;
	/* Tolerate a transport that split on LF only and left the CR. */
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > CO_REPLY_LINE_MAX || len < 3)
		return CO_REPLY_ERROR;
	const unsigned char *u = (const unsigned char *)line;
	/* RFC 5321 4.2: first digit 2..5 (1yz is not used by SMTP), second
	 * 0..5, third any digit. */
	if (u[0] < '2' || u[0] > '5' || u[1] < '0' || u[1] > '5' || !is_digit(u[2]))
		return CO_REPLY_ERROR;
	bool last;
	if (len == 3 || u[3] == ' ')
		last = true; /* a bare "250" is a final line too */
	else if (u[3] == '-')
		last = false;
	else
		return CO_REPLY_ERROR;
	int code = (u[0] - '0') * 100 + (u[1] - '0') * 10 + (u[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return CO_REPLY_ERROR; /* one reply, one code */
	if (r->nlines >= CO_REPLY_LINES_MAX)
		return CO_REPLY_ERROR;

	const char *t = len > 4 ? line + 4 : line + len;
	size_t tlen = len > 4 ? len - 4 : 0;
	/* Some servers separate code and text with more than one space. */
	while (tlen > 0 && t[0] == ' ') {
		t++;
		tlen--;
	}
	char enh[16];
	size_t elen = co_enhanced_parse(code, t, tlen, enh);
	if (r->nlines == 0) {
		/* The enhanced code is read from the first line only. */
		if (elen > 0)
			memcpy(r->enhanced, enh, elen + 1);
	} else if (elen == 0 || r->enhanced[0] == '\0' || strcmp(enh, r->enhanced) != 0) {
		elen = 0; /* a different code on a continuation stays text */
	}
	t += elen;
	tlen -= elen;

	r->code = code;
	r->nlines++;
	text_append(r, t, tlen);
	if (last) {
		r->done = true;
		return CO_REPLY_DONE;
	}
	return CO_REPLY_MORE;
}

static bool kw_is(const char *kw, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(kw, name, len) == 0;
}

void co_caps_line(co_caps *caps, const char *line, size_t len, bool first)
{
	if (caps == NULL || line == NULL || first)
		return;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* Skip "250-" / "250 " when the caller passed the whole line. */
	if (len >= 3 && is_digit((unsigned char)line[0]) && is_digit((unsigned char)line[1]) &&
	    is_digit((unsigned char)line[2]) && (len == 3 || line[3] == ' ' || line[3] == '-')) {
		line += len > 3 ? 4 : 3;
		len -= len > 3 ? 4 : 3;
	}
	while (len > 0 && line[0] == ' ') {
		line++;
		len--;
	}
	size_t kl = 0;
	while (kl < len && line[kl] != ' ')
		kl++;
	const char *arg = line + kl;
	size_t alen = len - kl;
	while (alen > 0 && arg[0] == ' ') {
		arg++;
		alen--;
	}

	if (kw_is(line, kl, "PIPELINING")) {
		caps->pipelining = true;
	} else if (kw_is(line, kl, "STARTTLS")) {
		caps->starttls = true;
	} else if (kw_is(line, kl, "SMTPUTF8")) {
		caps->smtputf8 = true;
	} else if (kw_is(line, kl, "8BITMIME")) {
		caps->eightbitmime = true;
	} else if (kw_is(line, kl, "ENHANCEDSTATUSCODES")) {
		caps->enhancedstatuscodes = true;
	} else if (kw_is(line, kl, "CHUNKING")) {
		caps->chunking = true;
	} else if (kw_is(line, kl, "SIZE")) {
		/* RFC 1870: "SIZE" alone or "SIZE 0" means no fixed limit.
		 * A number too large saturates rather than wrapping. */
		unsigned long v = 0;
		for (size_t i = 0; i < alen && is_digit((unsigned char)arg[i]); i++) {
			unsigned d = (unsigned)(arg[i] - '0');
			if (v > (ULONG_MAX - d) / 10) {
				v = ULONG_MAX;
				break;
			}
			v = v * 10 + d;
		}
		caps->size = v;
	}
}
