/* The addresses' chunk form (jobs_chunk.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_chunk.h"

int cd_jchunk_add(cd_jchunk_fill *f, const char *id, uint64_t idx, uint32_t line, const char *addr,
                  size_t alen, int (*put)(void *arg), void *arg)
{
	unsigned char *p;
	int rc;

	if (alen > CD_JOB_ADDR_MAX)
		return EINVAL;
	if (!f->buf && !(f->buf = malloc(CD_JCHUNK_MAX)))
		return ENOMEM;
	if (f->len && (idx / CD_JCHUNK != f->chunk || memcmp(f->id, id, CD_JOB_ID_LEN) != 0) &&
	    (rc = put(arg)))
		return rc;
	memcpy(f->id, id, CD_JOB_ID_LEN);
	f->id[CD_JOB_ID_LEN] = '\0';
	f->chunk = idx / CD_JCHUNK;
	p = f->buf + f->len;

	p[0] = (unsigned char)(idx % CD_JCHUNK);
	p[1] = (unsigned char)(line >> 24);
	p[2] = (unsigned char)(line >> 16);
	p[3] = (unsigned char)(line >> 8);
	p[4] = (unsigned char)line;
	p[5] = (unsigned char)(alen >> 8);
	p[6] = (unsigned char)alen;
	if (alen)
		memcpy(p + CD_JCHUNK_HEAD, addr, alen);
	f->len += CD_JCHUNK_HEAD + alen;
	return 0;
}

bool cd_jchunk_next(const unsigned char **p, const unsigned char *end, uint64_t chunk,
                    cd_jinput *in)
{
	const unsigned char *r = *p;
	size_t len;

	if (end - r < CD_JCHUNK_HEAD)
		return false;
	len = (size_t)r[5] << 8 | r[6];
	if ((size_t)(end - r) - CD_JCHUNK_HEAD < len || len > CD_JOB_ADDR_MAX)
		return false;
	in->idx = chunk * CD_JCHUNK + r[0];
	in->line = (uint32_t)r[1] << 24 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 8 | r[4];
	in->len = len;
	memcpy(in->addr, r + CD_JCHUNK_HEAD, len);
	*p = r + CD_JCHUNK_HEAD + len;
	return true;
}
