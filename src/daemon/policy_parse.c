/*
 * Postfix policy delegation requests, one line at a time: "name=value"
 * attribute lines into a cd_policy_req, the empty line ends the request.
 * No allocation; every field is bounded and never holds a partial value.
 */
#include <string.h>

#include "policy_parse.h"

/* The attributes kept, by name; others are ignored. */
static const struct {
	const char *name;
	size_t off, size;
} attrs[] = {
#define A(n)                                                                                       \
	{                                                                                          \
#n, offsetof(cd_policy_req, n), sizeof(((cd_policy_req *)0)->n)                    \
	}
    A(request), A(protocol_state), A(client_address), A(client_name), A(helo_name),
    A(sender),  A(recipient),      A(sasl_username),  A(queue_id),    A(instance),
#undef A
};

_Static_assert(sizeof(attrs) / sizeof(attrs[0]) <= sizeof(unsigned) * 8,
               "cd_policy_req.seen has a bit per attribute");

void cd_policy_req_init(cd_policy_req *r)
{
	memset(r, 0, sizeof(*r));
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static cd_policy_status fail(cd_policy_req *r, const char *why)
{
	if (!r->error)
		r->error = why;
	return CD_POLICY_ERROR;
}

cd_policy_status cd_policy_feed(cd_policy_req *r, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return CD_POLICY_END;

	/* Counted before anything else: bad lines use up the budget too, so
	 * a request is bounded however it is malformed. */
	if (r->nattrs >= CD_POLICY_ATTRS_MAX)
		return fail(r, "too many attributes");
	r->nattrs++;
	if (len > CD_POLICY_LINE_MAX)
		return fail(r, "line too long");
	if (memchr(line, '\0', len))
		return fail(r, "NUL in a line");

	const char *eq = memchr(line, '=', len);
	if (!eq)
		return fail(r, "line is not name=value");
	size_t nlen = (size_t)(eq - line);
	if (nlen == 0)
		return fail(r, "empty attribute name");
	for (size_t i = 0; i < nlen; i++)
		if (!name_char(line[i]))
			return fail(r, "bad attribute name");

	const char *value = eq + 1;
	size_t vlen = len - nlen - 1;
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		if (strlen(attrs[i].name) != nlen || memcmp(attrs[i].name, line, nlen) != 0)
			continue;
		if (r->seen & (1u << i))
			return fail(r, "duplicate attribute");
		if (vlen >= attrs[i].size)
			return fail(r, "attribute value too long");
		char *field = (char *)r + attrs[i].off;
		memcpy(field, value, vlen);
		field[vlen] = '\0';
		r->seen |= 1u << i;
		return CD_POLICY_MORE;
	}
	return CD_POLICY_MORE;
}
