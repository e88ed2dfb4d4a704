/*
 * A job's addresses are kept CD_JCHUNK to a stored value (one entry for
 * 256 of them: a million addresses store in a fraction of the time and
 * space).  Each record: slot (index % CD_JCHUNK), be32 line, be16 length,
 * the bytes.  Both stores (LMDB and Redis) keep chunks in this form.
 */
#ifndef CD_JOBS_CHUNK_H
#define CD_JOBS_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "jobs_store.h"

#define CD_JCHUNK      256
#define CD_JCHUNK_HEAD 7
#define CD_JCHUNK_MAX  (CD_JCHUNK * (CD_JCHUNK_HEAD + CD_JOB_ADDR_MAX))

/* The chunk a store's transaction is filling. */
typedef struct cd_jchunk_fill {
	char id[CD_JOB_ID_LEN + 1];
	uint64_t chunk;
	unsigned char *buf; /* CD_JCHUNK_MAX bytes, or NULL */
	size_t len;         /* 0: nothing waits to be stored */
} cd_jchunk_fill;

/* Add an address (indexes in increasing order).  When it begins another
 * chunk, or another job's, put(arg) is called first to store the full
 * one (f->len is 0 then).  0, EINVAL (too long), ENOMEM, or put's error. */
int cd_jchunk_add(cd_jchunk_fill *f, const char *id, uint64_t idx, uint32_t line, const char *addr,
                  size_t len, int (*put)(void *arg), void *arg);

/* Decode the record at *p (before end) of the chunk numbered chunk into
 * in, and step *p past it; false at the end or on a malformed record
 * (the rest of the chunk is not ours: skipped). */
bool cd_jchunk_next(const unsigned char **p, const unsigned char *end, uint64_t chunk,
                    cd_jinput *in);

#endif
