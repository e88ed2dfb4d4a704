/* Copies of results, for callers that keep one past the callback. */
#include <stdlib.h>
#include <string.h>

#include <callout/callout.h>

/* A copied result and its strings live in one allocation. */
CALLOUT_API callout_result *callout_result_dup(const callout_result *res)
{
	const char *strs[] = {res->enhanced, res->text,       res->address, res->mx,
	                      res->ip,       res->transcript, res->fact,    res->mx_hosts};
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
	const char **dst[] = {&copy->enhanced, &copy->text,       &copy->address, &copy->mx,
	                      &copy->ip,       &copy->transcript, &copy->fact,    &copy->mx_hosts};
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
