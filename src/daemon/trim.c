/*
 * Give freed memory back to the system when the daemon goes quiet.
 *
 * glibc keeps what a burst of verifications freed in its arenas: after
 * 20,000 verifications at concurrency 2,000 that is about 50 MiB of RSS
 * the idle daemon holds for nothing (tests/integration/test_load.py).
 * malloc_trim(0) returns it.
 *
 * When nothing is in flight any more, a one-second timer ticks.  On a tick
 * that follows a full second without a request in flight (or a front-end
 * connection closing), the heap is trimmed if malloc holds at least
 * TRIM_MIN_GROWTH more free bytes than it kept after the last trim.  The
 * free bytes, not the resident size, are the measure: a trim in the
 * middle of a flood used to take a resident size swollen by live
 * buffers as its baseline, and the memory those buffers freed later
 * never came back.  The ticks go on for as long as
 * the engine may still be finishing probes nobody waits for (the [engine]
 * timeout: they free their memory as they end), then stop until the
 * daemon next goes quiet.  So: at most one trim a second, none under
 * steady load, none while idle.  The timer is never more than a second
 * away, so a stopping daemon's loop is not held up longer than that.
 */
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"

#define TRIM_TICK_MS    1000
#define TRIM_MIN_GROWTH (1024L * 1024L)

static struct event *tick_ev;      /* on the daemon's base, made on first use */
static unsigned ticks_left;        /* while the engine may be finishing probes */
static size_t free_after_trim;     /* bytes malloc kept free after the last trim */
static struct timeval quiet_since; /* when the last request in flight ended */

/* Bytes malloc holds free, in every arena. */
static size_t free_bytes(void)
{
	return mallinfo2().fordblks;
}

static void arm(void)
{
	struct timeval tv = {TRIM_TICK_MS / 1000, (TRIM_TICK_MS % 1000) * 1000};
	evtimer_add(tick_ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	cd_daemon *d = arg;
	struct timeval now, quiet;
	(void)fd;
	(void)what;

	if (d->stopping || d->inflight)
		return; /* the next time it goes quiet arms us again */
	event_base_gettimeofday_cached(d->base, &now);
	evutil_timersub(&now, &quiet_since, &quiet);
	if (quiet.tv_sec >= TRIM_TICK_MS / 1000) {
		size_t held = free_bytes();
		if (held >= free_after_trim + TRIM_MIN_GROWTH) {
			malloc_trim(0);
			free_after_trim = free_bytes();
		} else if (held < free_after_trim) {
			free_after_trim = held; /* reused since: measure from here */
		}
	}
	if (ticks_left && --ticks_left)
		arm();
}

void cd_quiet_check(cd_daemon *d)
{
	if (d->inflight || d->stopping)
		return;
	if (!tick_ev && !(tick_ev = evtimer_new(d->base, on_tick, d)))
		return;
	event_base_gettimeofday_cached(d->base, &quiet_since);
	ticks_left = d->cfg->timeout_ms / TRIM_TICK_MS + 2;
	if (!evtimer_pending(tick_ev, NULL))
		arm();
}
