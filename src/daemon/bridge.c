/*
 * cd_daemon_call: how libmilter's threads hand work to the event loop.
 * A mutex-protected queue and an eventfd that wakes the loop; the loop
 * runs the queued calls in order.  Nothing else in the daemon is shared
 * between threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"

typedef struct call {
	STAILQ_ENTRY(call) link;
	void (*fn)(void *arg);
	void *arg;
} call;

struct cd_bridge {
	pthread_mutex_t lock;
	STAILQ_HEAD(calls, call) calls; /* to run on the loop, in order */
	bool closed;
	int fd;
	struct event *ev;
};

static void run_queue(evutil_socket_t fd, short what, void *arg)
{
	struct cd_bridge *b = arg;
	uint64_t n;
	(void)what;

	while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&b->lock);
	struct calls due = STAILQ_HEAD_INITIALIZER(due);
	STAILQ_CONCAT(&due, &b->calls); /* leaves b->calls empty */
	pthread_mutex_unlock(&b->lock);
	call *c;
	while ((c = STAILQ_FIRST(&due)) != NULL) {
		STAILQ_REMOVE_HEAD(&due, link);
		c->fn(c->arg);
		free(c);
	}
}

int cd_bridge_init(cd_daemon *d)
{
	struct cd_bridge *b = calloc(1, sizeof(*b));
	int err = 0;

	if (!b)
		return -1;
	STAILQ_INIT(&b->calls);
	b->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->fd < 0 || (err = pthread_mutex_init(&b->lock, NULL)) != 0) {
		err = b->fd < 0 ? errno : err;
		if (b->fd >= 0)
			close(b->fd);
		free(b);
		errno = err; /* for the caller's message */
		return -1;
	}
	b->ev = event_new(d->base, b->fd, EV_READ | EV_PERSIST, run_queue, b);
	if (!b->ev || event_add(b->ev, NULL) < 0) {
		err = errno; /* calloc's ENOMEM, or epoll_ctl's */
		if (b->ev)
			event_free(b->ev);
		pthread_mutex_destroy(&b->lock);
		close(b->fd);
		free(b);
		errno = err;
		return -1;
	}
	d->bridge = b;
	return 0;
}

int cd_daemon_call(cd_daemon *d, void (*fn)(void *arg), void *arg)
{
	struct cd_bridge *b = d->bridge;
	call *c = malloc(sizeof(*c));
	uint64_t one = 1;

	if (!c)
		return -1;
	*c = (call){.fn = fn, .arg = arg};
	pthread_mutex_lock(&b->lock);
	if (b->closed) {
		pthread_mutex_unlock(&b->lock);
		free(c);
		return -1;
	}
	STAILQ_INSERT_TAIL(&b->calls, c, link);
	pthread_mutex_unlock(&b->lock);
	/* A full counter (2^64 - 2 wakeups unread) cannot happen; EAGAIN
	 * would still leave the event readable. */
	while (write(b->fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	return 0;
}

void cd_bridge_free(cd_daemon *d)
{
	struct cd_bridge *b = d->bridge;

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->closed = true;
	pthread_mutex_unlock(&b->lock);
	run_queue(b->fd, EV_READ, b); /* what was queued still runs */
	event_free(b->ev);
	close(b->fd);
	pthread_mutex_destroy(&b->lock);
	free(b);
	d->bridge = NULL;
}
