/*
 * HOST[:PORT] as the configuration file and the command line write it:
 * a host name, an IPv4 address or an [IPv6] address in brackets, then an
 * optional port.  One parser for the DNS servers, routes, listen sockets
 * and the Redis address, so that they all agree on brackets and ports.
 */
#ifndef CO_HOSTPORT_H
#define CO_HOSTPORT_H

#include <stdbool.h>

enum {
	CO_HP_NUMERIC = 1 << 0,   /* the host must be an IP address */
	CO_HP_NEED_PORT = 1 << 1, /* the port is not optional */
	CO_HP_BARE_V6 = 1 << 2,   /* an IPv6 address may stand without brackets
	                             (then with no port: c-ares' syntax) */
};

enum co_host_kind { CO_HOST_NAME, CO_HOST_IPV4, CO_HOST_IPV6 };

typedef struct co_hostport {
	char host[256]; /* without brackets; a name in lower case */
	enum co_host_kind kind;
	unsigned port; /* 1..65535; 0 when none was given */
} co_hostport;

/* Parse s into hp: NULL when it is well-formed for flags, else what is
 * wrong with it (a fixed English phrase, hp then undefined). */
const char *co_hostport_parse(const char *s, unsigned flags, co_hostport *hp);

#endif
