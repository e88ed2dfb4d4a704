/*
 * The one monotonic clock of the library, the CLI and calloutd, in
 * milliseconds, with a hook so that tests can step time themselves (the
 * limits, the pool).  Wall clock readings (cache record timestamps) are
 * another clock and do not come from here.
 */
#ifndef CO_CLOCK_H
#define CO_CLOCK_H

/* A clock of monotonic milliseconds; NULL where a clock is asked for:
 * the real one. */
typedef long long (*co_clock_fn)(void *arg);

/* clock(arg), or CLOCK_MONOTONIC in milliseconds when clock is NULL. */
long long co_clock_ms(co_clock_fn clock, void *arg);

#endif
