/*
 * Listening sockets of the front ends: an inet socket opened from a
 * configured cd_listen, and the pause of a front end's listeners when
 * accept() fails for want of descriptors.
 */
#ifndef CD_LISTEN_H
#define CD_LISTEN_H

#include <stddef.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"

/* A non-blocking, close-on-exec socket listening on cl (a numeric
 * address; "::" is IPv6 only), or -1 with "FE: NAME: why" in err. */
int cd_listen_inet(const cd_listen *cl, const char *fe, char *err, size_t errlen);

/* "inet:127.0.0.1:8025", "inet:[::1]:8025" or "unix:/path". */
void cd_listen_name(const cd_listen *cl, char *buf, size_t n);

/* accept() failed with something other than EAGAIN/EINTR (libevent
 * retries those): out of descriptors, most likely.  The listening socket
 * stays readable, so the n listeners stop accepting and resume (an event
 * made with cd_accept_resume_cb and a cd_accept_pause as argument) comes
 * back to them after a short pause, instead of spinning and logging at
 * full speed. */
typedef struct cd_accept_pause {
	const char *fe;               /* for the log: "policy", "http" */
	struct evconnlistener **levs; /* n of them, NULL ones skipped */
	size_t n;
	struct event *resume;
	long long logged_second; /* of the last line logged */
	unsigned pauses;         /* since */
} cd_accept_pause;

void cd_accept_paused(cd_accept_pause *ap);
void cd_accept_resume_cb(evutil_socket_t fd, short what, void *arg);

#endif
