/* The monotonic clock (see clock.h). */
#include <time.h>

#include "clock.h"

long long co_clock_ms(co_clock_fn clock, void *arg)
{
	struct timespec t;

	if (clock)
		return clock(arg);
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}
