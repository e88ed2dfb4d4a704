/*
 * libFuzzer target: a job's chunk of addresses (src/daemon/jobs_chunk.c),
 * the form both job stores keep, read back from LMDB or from a Redis that
 * anyone on its network may write.  Checked: decoding any bytes ends,
 * stays within them, and gives indexes of the chunk and lengths within
 * CD_JOB_ADDR_MAX; addresses (the input's lines) written into a chunk
 * read back the same, in order.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "jobs_chunk.h"

static int put(void *arg)
{
	(void)arg;
	CHECK(!"one chunk's addresses never start another");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cd_jinput in;
	const unsigned char *p = data, *end = data + size;
	const uint64_t chunk = 3;
	const char *id = "0123456789abcdef0123456789abcdef";
	cd_jchunk_fill f = {0};
	size_t n = 0;

	/* any bytes as a stored chunk */
	while (cd_jchunk_next(&p, end, chunk, &in)) {
		CHECK(p <= end);
		CHECK(in.idx >= chunk * CD_JCHUNK && in.idx < (chunk + 1) * CD_JCHUNK);
		CHECK(in.len <= CD_JOB_ADDR_MAX);
	}
	CHECK(p >= data && p <= end);

	/* the lines as addresses: written, then read back alike */
	const char *s = (const char *)data, *stop = s + size;
	uint32_t line = 1;
	while (s < stop && n < CD_JCHUNK) {
		const char *nl = memchr(s, '\n', (size_t)(stop - s));
		size_t len = (size_t)((nl ? nl : stop) - s);

		if (len > CD_JOB_ADDR_MAX)
			len = CD_JOB_ADDR_MAX;
		CHECK(cd_jchunk_add(&f, id, chunk * CD_JCHUNK + n, line, s, len, put, NULL) == 0);
		n++;
		line += 2;
		s = nl ? nl + 1 : stop;
	}
	p = f.buf;
	s = (const char *)data;
	for (size_t i = 0; i < n; i++) {
		const char *nl = memchr(s, '\n', (size_t)(stop - s));
		size_t len = (size_t)((nl ? nl : stop) - s);

		if (len > CD_JOB_ADDR_MAX)
			len = CD_JOB_ADDR_MAX;
		CHECK(cd_jchunk_next(&p, f.buf + f.len, chunk, &in));
		CHECK(in.idx == chunk * CD_JCHUNK + i && in.line == 1 + 2 * i);
		CHECK(in.len == len && memcmp(in.addr, s, len) == 0);
		s = nl ? nl + 1 : stop;
	}
	CHECK(n == 0 || p == f.buf + f.len);
	free(f.buf);
	return 0;
}
