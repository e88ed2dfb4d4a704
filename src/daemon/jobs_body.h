/*
 * The body of POST /v1/jobs read into addresses: a JSON array or
 * {"addresses": [...], options}, JSON lines, CSV or plain lines, each
 * address handed to a callback with its input line.  No I/O, no store:
 * fuzzed as it is (tests/fuzz/fuzz_job_body.c).
 */
#ifndef CD_JOBS_BODY_H
#define CD_JOBS_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef enum cd_body_kind {
	CD_BODY_JSON = 0,
	CD_BODY_NDJSON,
	CD_BODY_CSV,
	CD_BODY_TEXT,
	CD_BODY_OTHER /* none of these: 415 */
} cd_body_kind;

/* Why a body was refused: an HTTP status, a stable code, a message. */
typedef struct cd_body_error {
	int status; /* 0: no error */
	const char *error;
	char msg[256];
} cd_body_error;

/* Record the first error (later ones are dropped); always false. */
bool cd_body_fail(cd_body_error *e, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The kind a Content-Type names; none (or empty) is JSON. */
cd_body_kind cd_body_kind_of(const char *content_type);

/* One address (len bytes, no NUL among them) from input line `line`:
 * true to go on, false after cd_body_fail. */
typedef bool (*cd_body_add_fn)(void *arg, unsigned long line, const char *addr, size_t len,
                               cd_body_error *e);

/*
 * Read len bytes of body as kind, handing each address to add in input
 * order.  column: CSV only, the header's name of the address column, or
 * NULL.  opts (may be NULL): a JSON object's members other than
 * "addresses" are copied into it.  true, or false with e set.
 */
bool cd_body_read(cd_body_kind kind, const char *body, size_t len, const char *column, json_t *opts,
                  cd_body_add_fn add, void *arg, cd_body_error *e);

#endif
