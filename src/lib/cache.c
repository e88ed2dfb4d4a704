/*
 * What every cache backend shares: the injectable clock, fault reporting
 * that speaks once per episode, and freeing through the backend's table.
 * Opening a cache by its spec is cache_open.c's: it knows the backends,
 * this file knows none of them.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "cache.h"

int64_t co_cache_now(const co_cache *c)
{
	return c->conf.now ? c->conf.now(c->conf.now_arg) : (int64_t)time(NULL);
}

void co_cache_fault(co_cache *c, const char *fmt, ...)
{
	va_list ap;

	c->errors++;
	if (c->faulty)
		return;
	c->faulty = true;
	va_start(ap, fmt);
	vsnprintf(c->fault_msg, sizeof(c->fault_msg), fmt, ap);
	va_end(ap);
	if (c->conf.log)
		c->conf.log(c->conf.log_arg, c->fault_msg);
}

void co_cache_ok(co_cache *c)
{
	if (!c->faulty)
		return;
	c->faulty = false;
	c->fault_msg[0] = '\0';
	if (c->conf.log)
		c->conf.log(c->conf.log_arg, "cache: working again");
}

void co_cache_free(co_cache *c)
{
	if (c)
		c->ops->free(c);
}
