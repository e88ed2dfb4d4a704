/*
 * A socket address as text (sockaddr.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sockaddr.h"

const char *co_sockaddr_text(const struct sockaddr *sa, size_t salen, unsigned flags, char *out,
                             size_t len)
{
	struct sockaddr_storage ss; /* aligned, unlike what sa may be */
	char ip[INET6_ADDRSTRLEN] = "";
	const void *addr = NULL;
	unsigned port = 0;
	int family = AF_UNSPEC;
	size_t need;

	if (len)
		out[0] = '\0';
	if (!sa || !len)
		return out;
	need = sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
	       : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                   : 0;
	if (!need || (salen && salen < need))
		return out;
	memcpy(&ss, sa, need);
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
		family = AF_INET;
		addr = &sin->sin_addr;
		port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
		family = AF_INET6;
		addr = &sin6->sin6_addr;
		port = ntohs(sin6->sin6_port);
		if ((flags & CO_SA_UNMAP) && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			family = AF_INET;
			addr = &sin6->sin6_addr.s6_addr[12];
		}
	}
	if (!inet_ntop(family, addr, ip, sizeof(ip)))
		return out;
	char text[64]; /* "[" 45 "]:" 10: room for any, then cut to len */
	if (flags & CO_SA_PORT)
		snprintf(text, sizeof(text), "[%s]:%u", ip, port);
	else
		snprintf(text, sizeof(text), "%s", ip);
	size_t n = strlen(text) < len ? strlen(text) : len - 1;
	memcpy(out, text, n);
	out[n] = '\0';
	return out;
}
