/*
 * A socket address as text, for logs, results and limits' messages: one
 * helper for the library and calloutd.
 */
#ifndef CO_SOCKADDR_H
#define CO_SOCKADDR_H

#include <stddef.h>
#include <sys/socket.h>

enum {
	CO_SA_PORT = 1 << 0,  /* "[addr]:port" rather than "addr" */
	CO_SA_UNMAP = 1 << 1, /* an IPv4-mapped IPv6 address as IPv4 */
};

/* The numeric address of sa into out ("192.0.2.1", "2001:db8::1"), ""
 * for a family without one (AF_UNIX) or a salen too short for its family
 * (salen 0: trust the family).  Returns out. */
const char *co_sockaddr_text(const struct sockaddr *sa, size_t salen, unsigned flags, char *out,
                             size_t len);

#endif
