/*
 * A c-ares channel run by the libevent loop: the channel's options and
 * servers, one persistent event per socket c-ares wants watched
 * (ares_process_fd), and one timer re-armed from ares_timeout() that
 * drives its retransmissions and timeouts.  dns.c (a co_dns) and
 * doctor_dns.c (the doctor's lookups) put queries on their channel and
 * call co_dns_loop_rearm() after each batch.
 */
#ifndef CO_DNS_LOOP_H
#define CO_DNS_LOOP_H

#include <ares.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct event;
struct event_base;

/* Sockets c-ares opened that we could not watch yet (out of memory). */
#define CO_DNS_UNWATCHED_MAX 16

struct co_dns_watcher;

typedef struct co_dns_loop {
	struct event_base *base;
	ares_channel channel;
	bool have_channel;
	bool check_rcode; /* c-ares skips SERVFAIL/REFUSED servers itself */
	bool library_init;
	bool destroying; /* inside co_dns_loop_close(): answers are not wanted */
	bool giving_up;  /* inside ares_cancel() for the unwatched sockets */
	struct event *timer;
	SLIST_HEAD(, co_dns_watcher) watchers;
	struct {
		ares_socket_t fd;
		bool readable, writable;
	} unwatched[CO_DNS_UNWATCHED_MAX];
	unsigned nunwatched;
	long long unwatched_since; /* co_clock_ms() when the first of them failed */
} co_dns_loop;

/*
 * Open the channel on base: the servers (NULL: resolv.conf) with a
 * timeout per try (0: the default).  SERVFAIL and REFUSED come back as
 * the answer: with exact_rcodes always (the doctor's lookups tell them
 * apart), else with one server only (with several, c-ares asks the
 * next).  false with err and errno set (ENOMEM when out of memory);
 * co_dns_loop_close() then frees what was opened.
 * The loop must stay where it is while open (c-ares keeps its address).
 */
bool co_dns_loop_open(co_dns_loop *l, struct event_base *base, const char *servers,
                      unsigned timeout_ms, bool exact_rcodes, char *err, size_t errlen);
/* Arm the timer for what c-ares waits for next; after every new query. */
void co_dns_loop_rearm(co_dns_loop *l);
/* Destroy the channel (its queries call back with ARES_EDESTRUCTION and
 * l->destroying set), the events and the library reference. */
void co_dns_loop_close(co_dns_loop *l);

#endif
