/*
 * A Redis server as a spec writes it,
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P]
 * (the library's --cache and [cache] store, calloutd's own Redis
 * connections): one parser, so that they all read a spec alike, and the
 * redaction of its password for messages, which reads specs as the
 * parser does.  Parsing only: connecting is the caller's.
 */
#ifndef CO_REDIS_SPEC_H
#define CO_REDIS_SPEC_H

#include <stddef.h>

#define CO_REDIS_PORT_DEFAULT   6379
#define CO_REDIS_PREFIX_DEFAULT "callout:"
#define CO_REDIS_PREFIX_MAX     64

/* What a spec says; a part it leaves out has its default. */
typedef struct co_redis_spec {
	/* as co_hostport gives it: without brackets, a name in lower case
	 * (TCP only: the library connects to no unix socket) */
	char host[256];
	unsigned port; /* CO_REDIS_PORT_DEFAULT when none is given */
	unsigned db;   /* 0 to 65535; 0 when none is given */
	/* percent-decoded, "" when absent; the caller explicit_bzero()s the
	 * password once it has used it */
	char user[128], password[256];
	char prefix[CO_REDIS_PREFIX_MAX + 1]; /* CO_REDIS_PREFIX_DEFAULT when none */
} co_redis_spec;

/* Parse spec into out: 0, or -1 with a message in err (errlen bytes,
 * may be 0) naming the spec without its password, out then cleared.
 * USER and PASSWORD may hold %XX escapes; HOST may be [IPv6]; a USER
 * needs a PASSWORD.  rediss:// is refused (no TLS). */
int co_redis_spec_parse(const char *spec, co_redis_spec *out, char *err, size_t errlen);

/* spec with its password replaced by "***", for messages: into out
 * (truncated to len), which is returned.  Any cache spec may come: one
 * without credentials is copied as it is, NULL reads "none". */
const char *co_redis_spec_redact(const char *spec, char *out, size_t len);

#endif
