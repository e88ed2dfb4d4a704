/*
 * A SOCKS5 proxy as the configuration file, the command line and the
 * library's options write it: socks5://[USER:PASSWORD@]HOST:PORT.  One
 * parser, so that calloutd.conf and callout check refuse the same specs
 * the library would.
 */
#ifndef CO_PROXY_H
#define CO_PROXY_H

#include <stdbool.h>
#include <stddef.h>

/* A proxy as the options write it: socks5://[USER:PASS@]HOST:PORT. */
typedef struct co_proxy {
	char host[256]; /* a name or a numeric address, without brackets */
	unsigned port;
	char user[256]; /* "" with pass "": no authentication offered */
	char pass[256];
} co_proxy;

/* Parse a proxy spec; NULL, or what is wrong with it (a fixed phrase).
 * USER and PASS may hold %XX escapes (for ':', '@', '/'); each is 1 to
 * 255 bytes. */
const char *co_proxy_parse(const char *spec, co_proxy *out);

/* The longest spec: scheme, user, password (both escaped), host, port. */
#define CO_PROXY_SPEC_MAX 2048

/* The next spec of a comma-separated list, copied into one (len bytes),
 * *cursor moved past it; false when none is left. */
bool co_proxy_next(const char **cursor, char *one, size_t len);

/* Parse every spec of a comma-separated list (a pool); NULL, or what is
 * wrong with the first bad one (or that there is none).  *n: how many. */
const char *co_proxy_parse_list(const char *specs, unsigned *n);

/* The spec (or list) fit for logs and output: passwords replaced by "***".
 * Written into out (truncated to len), which is returned. */
const char *co_proxy_redact(const char *spec, char *out, size_t len);

/* "HOST:PORT" ("[v6]:PORT") of p, for messages. */
const char *co_proxy_label(const co_proxy *p, char *out, size_t len);

#endif
