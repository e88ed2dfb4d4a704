/*
 * A c-ares channel in the libevent loop (see dns_loop.h): dns.c's, and
 * the doctor's (doctor_dns.c).
 *
 * c-ares reports the sockets it wants watched through its sock_state_cb;
 * each socket gets one persistent libevent event that calls
 * ares_process_fd().  One timer, re-armed from ares_timeout() after every
 * processing step and after every batch of new queries, drives the
 * retransmissions and timeouts of c-ares.
 */
#include "dns_loop.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DNS_TRIES          2
/* Sockets that could not be watched (out of memory): how soon to try
 * again (an unwatched socket's answers are never read), and when to end
 * every query as "out of memory" instead of a timeout. */
#define WATCH_RETRY_MS   10
#define WATCH_GIVE_UP_MS 1000

/* One socket c-ares asked us to watch. */
struct co_dns_watcher {
	SLIST_ENTRY(co_dns_watcher) link;
	co_dns_loop *loop;
	ares_socket_t fd;
	short what;
	struct event *ev;
};

void co_dns_loop_rearm(co_dns_loop *l)
{
	struct timeval tv, *tvp;

	if (l->destroying)
		return;
	tvp = ares_timeout(l->channel, NULL, &tv);
	/* Only while queries wait: an idle loop must be able to end. */
	if (l->nunwatched > 0 && tvp != NULL &&
	    (tvp->tv_sec > 0 || tvp->tv_usec > WATCH_RETRY_MS * 1000)) {
		tv.tv_sec = 0;
		tv.tv_usec = WATCH_RETRY_MS * 1000;
		tvp = &tv;
	}
	if (tvp != NULL)
		evtimer_add(l->timer, tvp);
	else
		evtimer_del(l->timer);
}

static void watcher_cb(evutil_socket_t fd, short what, void *arg)
{
	struct co_dns_watcher *w = arg;
	co_dns_loop *l = w->loop; /* w may be freed while c-ares processes */

	ares_process_fd(l->channel, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	co_dns_loop_rearm(l);
}

static struct co_dns_watcher *watcher_find(co_dns_loop *l, ares_socket_t fd)
{
	struct co_dns_watcher *w;

	SLIST_FOREACH(w, &l->watchers, link)
	if (w->fd == fd)
		return w;
	return NULL;
}

/* Forget fd in the retry list. */
static void unwatched_drop(co_dns_loop *l, ares_socket_t fd)
{
	for (unsigned i = 0; i < l->nunwatched; i++) {
		if (l->unwatched[i].fd == fd) {
			l->unwatched[i] = l->unwatched[--l->nunwatched];
			return;
		}
	}
}

/* Watch fd with this interest (not both false); false when out of memory,
 * leaving any old watcher as it was. */
static bool watch(co_dns_loop *l, ares_socket_t fd, bool readable, bool writable)
{
	struct co_dns_watcher *w = watcher_find(l, fd);
	short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	struct event *ev;

	if (w != NULL && w->what == what)
		return true;
	if (w == NULL) {
		w = calloc(1, sizeof *w);
		if (w == NULL)
			return false;
		w->loop = l;
		w->fd = fd;
		ev = event_new(l->base, (evutil_socket_t)fd, what, watcher_cb, w);
		if (ev == NULL || event_add(ev, NULL) != 0) {
			if (ev != NULL)
				event_free(ev);
			free(w);
			return false;
		}
		w->ev = ev;
		w->what = what;
		SLIST_INSERT_HEAD(&l->watchers, w, link);
		return true;
	}
	ev = event_new(l->base, (evutil_socket_t)fd, what, watcher_cb, w);
	if (ev == NULL || event_add(ev, NULL) != 0) {
		if (ev != NULL)
			event_free(ev);
		return false; /* the old interest stays until a retry works */
	}
	event_free(w->ev);
	w->ev = ev;
	w->what = what;
	return true;
}

/* Try again to watch the sockets that could not be watched.  When that
 * fails for too long, end the queries: they could only time out, and
 * c-ares cannot end those of one socket, so every one ends ("out of
 * memory", a tempfail).  Not from inside c-ares (ares_cancel). */
static void watch_retry(co_dns_loop *l)
{
	for (unsigned i = 0; i < l->nunwatched;) {
		if (watch(l, l->unwatched[i].fd, l->unwatched[i].readable,
		          l->unwatched[i].writable))
			l->unwatched[i] = l->unwatched[--l->nunwatched];
		else
			i++;
	}
	if (l->nunwatched > 0 && co_clock_ms(NULL, NULL) - l->unwatched_since >= WATCH_GIVE_UP_MS) {
		l->giving_up = true;
		ares_cancel(l->channel); /* ARES_ECANCELLED: "out of memory" */
		l->giving_up = false;
		l->unwatched_since = co_clock_ms(NULL, NULL); /* for later queries */
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	co_dns_loop *l = arg;

	watch_retry(l);
	ares_process_fd(l->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	co_dns_loop_rearm(l);
}

/*
 * c-ares opens, changes or closes a socket.  Freeing an event from its own
 * callback is allowed by libevent 2.1 (it does not touch the event after
 * the callback returns), which happens when c-ares closes a socket while
 * processing it.  If a socket cannot be watched (out of memory), the timer
 * tries again every WATCH_RETRY_MS (its answers wait in the socket) and
 * gives up after WATCH_GIVE_UP_MS (watch_retry).  Past CO_DNS_UNWATCHED_MAX such
 * sockets, the queries of the others end by their timeout.
 */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	co_dns_loop *l = data;
	struct co_dns_watcher *w;

	if (!readable && !writable) {
		unwatched_drop(l, fd);
		w = watcher_find(l, fd);
		if (w != NULL) {
			SLIST_REMOVE(&l->watchers, w, co_dns_watcher, link);
			event_free(w->ev);
			free(w);
		}
		return;
	}
	if (l->destroying)
		return;
	unwatched_drop(l, fd);
	if (watch(l, fd, readable, writable) || l->nunwatched == CO_DNS_UNWATCHED_MAX)
		return;
	if (l->nunwatched == 0)
		l->unwatched_since = co_clock_ms(NULL, NULL);
	l->unwatched[l->nunwatched].fd = fd;
	l->unwatched[l->nunwatched].readable = readable;
	l->unwatched[l->nunwatched].writable = writable;
	l->nunwatched++;
	/* rearm(), which every way into c-ares ends with, makes the retry soon */
}

static bool channel_open(co_dns_loop *l, const char *servers, unsigned timeout_ms, bool nocheckresp,
                         char *err, size_t errlen)
{
	static char lookups[] = "b"; /* DNS only, never /etc/hosts */
	struct ares_options opts;
	int rc, mask;

	memset(&opts, 0, sizeof opts);
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	if (nocheckresp)
		opts.flags |= ARES_FLAG_NOCHECKRESP;
	opts.timeout = timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
	opts.tries = DNS_TRIES;
	opts.ndots = 1;
	opts.lookups = lookups;
	opts.sock_state_cb = sock_state_cb;
	opts.sock_state_cb_data = l;
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
	       ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
	rc = ares_init_options(&l->channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		if (err != NULL)
			snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		errno = rc == ARES_ENOMEM ? ENOMEM : EINVAL;
		return false;
	}
	l->have_channel = true;
	l->check_rcode = !nocheckresp;
	if (servers != NULL) {
		rc = ares_set_servers_ports_csv(l->channel, servers);
		if (rc != ARES_SUCCESS) {
			if (err != NULL)
				snprintf(err, errlen, "DNS servers \"%s\": %s", servers,
				         ares_strerror(rc));
			errno = rc == ARES_ENOMEM ? ENOMEM : EINVAL;
			return false;
		}
	}
	return true;
}

static unsigned channel_nservers(co_dns_loop *l)
{
	struct ares_addr_port_node *list = NULL;
	unsigned n = 0;

	if (ares_get_servers_ports(l->channel, &list) != ARES_SUCCESS)
		return 2; /* unknown: let c-ares check rcodes */
	for (struct ares_addr_port_node *p = list; p != NULL; p = p->next)
		n++;
	ares_free_data(list);
	return n;
}

bool co_dns_loop_open(co_dns_loop *l, struct event_base *base, const char *servers,
                      unsigned timeout_ms, bool exact_rcodes, char *err, size_t errlen)
{
	int rc;

	l->base = base;
	SLIST_INIT(&l->watchers);
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		if (err != NULL)
			snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		errno = rc == ARES_ENOMEM ? ENOMEM : EINVAL;
		return false;
	}
	l->library_init = true;

	l->timer = evtimer_new(base, timer_cb, l);
	if (l->timer == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return false;
	}

	if (timeout_ms == 0)
		timeout_ms = DEFAULT_TIMEOUT_MS;
	/*
	 * With one server, c-ares should hand SERVFAIL/REFUSED back to us
	 * (ARES_FLAG_NOCHECKRESP) so the failure says what happened: c-ares
	 * 1.18 would report ECONNREFUSED.  With several, it should try the
	 * next one instead; the server list is only known once resolv.conf
	 * is read, so the channel is opened a second time when needed.  With
	 * exact_rcodes, every server's SERVFAIL/REFUSED comes back.
	 */
	if (!channel_open(l, servers, timeout_ms, exact_rcodes, err, errlen))
		return false;
	if (!exact_rcodes && channel_nservers(l) <= 1) {
		ares_destroy(l->channel);
		l->have_channel = false;
		if (!channel_open(l, servers, timeout_ms, true, err, errlen))
			return false;
	}
	return true;
}

void co_dns_loop_close(co_dns_loop *l)
{
	l->destroying = true;
	if (l->have_channel)
		ares_destroy(l->channel); /* callbacks: ARES_EDESTRUCTION */
	l->have_channel = false;
	while (!SLIST_EMPTY(&l->watchers)) {
		struct co_dns_watcher *w = SLIST_FIRST(&l->watchers);

		SLIST_REMOVE_HEAD(&l->watchers, link);
		event_free(w->ev);
		free(w);
	}
	if (l->timer != NULL)
		event_free(l->timer);
	l->timer = NULL;
	if (l->library_init)
		ares_library_cleanup();
	l->library_init = false;
}
