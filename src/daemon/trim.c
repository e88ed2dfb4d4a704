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
 * connection closing), the heap is trimmed if anything happened since the
 * last trim.  Neither the resident size nor malloc's free bytes can tell
 * whether a trim is due: a trim in the middle of a flood takes a resident
 * size swollen by live buffers as its baseline, and the free bytes count
 * pages a trim has already given back, so that a second flood reusing
 * them swells the resident size without moving that count.  The ticks go
 * on for as long as the engine may still be finishing probes nobody waits
 * for (the [engine] timeout: they free their memory as they end), then
 * stop until the daemon next goes quiet.  So: at most one trim a second
 * and one per quiet spell, none under steady load, none while idle.  A
 * stopping daemon drops the timer (cd_quiet_stop): its loop, which runs
 * until no event is left, would otherwise wait up to a second for it.
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"

#define TRIM_TICK_MS 1000

static struct event *tick_ev;      /* on the daemon's base, made on first use */
static unsigned ticks_left;        /* while the engine may be finishing probes */
static bool busy_since_trim;       /* a request or a connection ended since */
static struct timeval quiet_since; /* when the last request in flight ended */

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
	if (quiet.tv_sec >= TRIM_TICK_MS / 1000 && busy_since_trim) {
		malloc_trim(0);
		busy_since_trim = false;
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
	busy_since_trim = true;
	ticks_left = d->cfg->opts.deadline_ms / TRIM_TICK_MS + 2;
	if (!evtimer_pending(tick_ev, NULL))
		arm();
}

void cd_quiet_stop(void)
{
	if (tick_ev)
		evtimer_del(tick_ev);
}
