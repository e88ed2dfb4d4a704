/*
 * Listening sockets of the front ends (listen.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/util.h>

#include "clock.h"
#include "daemon.h"
#include "listen.h"

/* After accept() fails (EMFILE): long enough not to spin, short enough
 * that a burst of dead connections queued ahead of a good one drains
 * quickly once descriptors are back. */
#define ACCEPT_PAUSE_MS 100

void cd_listen_name(const cd_listen *cl, char *buf, size_t n)
{
	if (cl->is_unix)
		snprintf(buf, n, "unix:%s", cl->path);
	else
		snprintf(buf, n, strchr(cl->host, ':') ? "inet:[%s]:%u" : "inet:%s:%u", cl->host,
		         cl->port);
}

int cd_listen_inet(const cd_listen *cl, const char *fe, char *err, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t sslen;
	char name[160];
	int one = 1;

	cd_listen_name(cl, name, sizeof(name));
	if (cl->port == 0 || cl->port > 65535) {
		snprintf(err, errlen, "%s: %s: bad port", fe, name);
		return -1;
	}
	if (inet_pton(AF_INET, cl->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cl->port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, cl->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cl->port);
		sslen = sizeof(*sin6);
	} else {
		snprintf(err, errlen, "%s: %s: not a numeric address", fe, name);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create %s: %s", fe, name, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "::" means IPv6 only; an IPv4 listener is configured on its own. */
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "%s: cannot listen on %s: %s", fe, name, strerror(e));
		return -1;
	}
	return fd;
}

void cd_accept_paused(cd_accept_pause *ap)
{
	struct timeval tv = {ACCEPT_PAUSE_MS / 1000, (ACCEPT_PAUSE_MS % 1000) * 1000};
	/* a line a second at most, however long the shortage lasts */
	long long second = co_clock_ms(NULL, NULL) / 1000;

	ap->pauses++;
	if (second != ap->logged_second) {
		cd_log(CD_LOG_WARNING,
		       "%s: accept: %s; pausing %d ms (%u time(s) since the last line)", ap->fe,
		       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), ACCEPT_PAUSE_MS,
		       ap->pauses);
		ap->logged_second = second;
		ap->pauses = 0;
	}
	for (size_t i = 0; i < ap->n; i++)
		if (ap->levs[i])
			evconnlistener_disable(ap->levs[i]);
	event_add(ap->resume, &tv);
}

void cd_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	cd_accept_pause *ap = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < ap->n; i++)
		if (ap->levs[i])
			evconnlistener_enable(ap->levs[i]);
}
