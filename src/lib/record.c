/* Cache records: keys, encoding and decoding (format in record.h). */
#include <stdio.h>
#include <string.h>

#include <callout/callout.h>

#include "record.h"

/* magic 2, version, kind, verdict, reason, stage, flags, code 2, times 16 */
#define HEADER_LEN 26

static const char *const kind_names[CO_REC_KIND_COUNT] = {
    [CO_REC_ADDRESS] = "address",         [CO_REC_CATCH_ALL] = "catch_all",
    [CO_REC_NULL_SENDER] = "null_sender", [CO_REC_NO_MAIL] = "no_mail",
    [CO_REC_BLOCKS_US] = "blocks_us",     [CO_REC_UNREACHABLE] = "unreachable",
    [CO_REC_POSTMASTER] = "postmaster",
};

static const char kind_tags[CO_REC_KIND_COUNT] = {
    [CO_REC_ADDRESS] = 'a',    [CO_REC_CATCH_ALL] = 'c', [CO_REC_NULL_SENDER] = 'n',
    [CO_REC_NO_MAIL] = 'x',    [CO_REC_BLOCKS_US] = 'b', [CO_REC_UNREACHABLE] = 'u',
    [CO_REC_POSTMASTER] = 'p',
};

const char *co_rec_kind_name(co_rec_kind k)
{
	return k > 0 && k < CO_REC_KIND_COUNT ? kind_names[k] : "?";
}

size_t co_rec_key(co_rec_kind kind, const char *domain, const char *mailbox, const char *sender,
                  char *out, size_t len)
{
	int n;

	if (kind <= 0 || kind >= CO_REC_KIND_COUNT || !domain) {
		n = -1;
	} else if (kind != CO_REC_ADDRESS) {
		n = snprintf(out, len, "%c:%s", kind_tags[kind], domain);
	} else if (sender && *sender) {
		n = snprintf(out, len, "a:%s:%s\t%s", domain, mailbox ? mailbox : "", sender);
	} else {
		n = snprintf(out, len, "a:%s:%s", domain, mailbox ? mailbox : "");
	}
	if (n < 0 || (size_t)n >= len) {
		if (len)
			out[0] = '\0';
		return 0;
	}
	return (size_t)n;
}

size_t co_rec_key_of(const co_rec *r, char *out, size_t len)
{
	return co_rec_key(r->kind, r->domain, r->address, r->sender, out, len);
}

/* CRC-32 (IEEE 802.3, reflected), bitwise: records are small. */
static uint32_t crc32_of(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return ~c;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (i * 8));
	return p;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t field)
{
	size_t n = strnlen(s, field);
	if (n > CO_REC_STR_MAX)
		n = CO_REC_STR_MAX;
	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

size_t co_rec_encode(const co_rec *r, uint8_t *out)
{
	uint8_t *p = out;

	*p++ = 'C';
	*p++ = 'O';
	*p++ = CO_REC_VERSION;
	*p++ = (uint8_t)r->kind;
	*p++ = r->verdict;
	*p++ = r->reason;
	*p++ = r->stage;
	*p++ = r->flags;
	*p++ = (uint8_t)(r->code >> 8);
	*p++ = (uint8_t)r->code;
	p = put_u64(p, (uint64_t)r->probed);
	p = put_u64(p, (uint64_t)r->expires);
	p = put_str(p, r->domain, sizeof(r->domain));
	p = put_str(p, r->address, sizeof(r->address));
	p = put_str(p, r->sender, sizeof(r->sender));
	p = put_str(p, r->enhanced, sizeof(r->enhanced));
	p = put_str(p, r->text, sizeof(r->text));
	p = put_str(p, r->mx, sizeof(r->mx));
	p = put_str(p, r->ip, sizeof(r->ip));
	uint32_t crc = crc32_of(out, (size_t)(p - out));
	for (int i = 3; i >= 0; i--)
		*p++ = (uint8_t)(crc >> (i * 8));
	return (size_t)(p - out);
}

/* Copy one length-prefixed string into a field; it must fit and hold no
 * control characters, as nothing we write does (UTF-8 is allowed: SMTPUTF8
 * addresses). */
static int get_str(const uint8_t **pp, const uint8_t *end, char *field, size_t size)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return -1;
	size_t n = *p++;
	if (n >= size || (size_t)(end - p) < n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return -1;
	memcpy(field, p, n);
	field[n] = '\0';
	*pp = p + n;
	return 0;
}

int co_rec_decode(const uint8_t *in, size_t len, co_rec *r)
{
	memset(r, 0, sizeof(*r));
	if (len < HEADER_LEN + 7 + 4 || len > CO_REC_ENCODED_MAX || in[0] != 'C' || in[1] != 'O' ||
	    in[2] != CO_REC_VERSION)
		goto bad;
	const uint8_t *end = in + len - 4;
	uint32_t crc =
	    (uint32_t)end[0] << 24 | (uint32_t)end[1] << 16 | (uint32_t)end[2] << 8 | end[3];
	if (crc != crc32_of(in, len - 4))
		goto bad;
	if (in[3] == 0 || in[3] >= CO_REC_KIND_COUNT || in[4] > CALLOUT_TEMPFAIL ||
	    in[5] >= CALLOUT_R_COUNT || in[6] >= CALLOUT_STAGE_COUNT)
		goto bad;
	r->kind = (co_rec_kind)in[3];
	r->verdict = in[4];
	r->reason = in[5];
	r->stage = in[6];
	r->flags = in[7];
	r->code = (uint16_t)(in[8] << 8 | in[9]);
	r->probed = (int64_t)get_u64(in + 10);
	r->expires = (int64_t)get_u64(in + 18);
	const uint8_t *p = in + HEADER_LEN;
	if (get_str(&p, end, r->domain, sizeof(r->domain)) < 0 ||
	    get_str(&p, end, r->address, sizeof(r->address)) < 0 ||
	    get_str(&p, end, r->sender, sizeof(r->sender)) < 0 ||
	    get_str(&p, end, r->enhanced, sizeof(r->enhanced)) < 0 ||
	    get_str(&p, end, r->text, sizeof(r->text)) < 0 ||
	    get_str(&p, end, r->mx, sizeof(r->mx)) < 0 ||
	    get_str(&p, end, r->ip, sizeof(r->ip)) < 0 || p != end || !r->domain[0] ||
	    (r->code != 0 && (r->code < 200 || r->code > 599)))
		goto bad;
	return 0;
bad:
	memset(r, 0, sizeof(*r));
	return -1;
}
