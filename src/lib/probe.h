/*
 * The probe: the work of verifying one address with one sender, shared by
 * the requests (callout_verify) that wait on it.  Its states and its
 * lifecycle are in probe.c.
 */
#ifndef CO_PROBE_H
#define CO_PROBE_H

#include <stddef.h>
#include <sys/queue.h>

#include <callout/callout.h>

#include "addr.h"
#include "ctx.h"

typedef struct co_probe co_probe;

/* One waiter of a probe (a request): cb(arg, res) gets the result, after
 * the waiter has left the probe. */
typedef struct co_waiter {
	LIST_ENTRY(co_waiter) link;
	co_probe *probe; /* the probe it waits on; NULL: none */
	void (*cb)(void *arg, const callout_result *res);
	void *arg;
} co_waiter;

/* The probe a request for addr with set waits on: one in flight for the
 * same address and sender, or a new one started from the loop.  NULL: out
 * of memory. */
co_probe *co_probe_for(callout_ctx *ctx, const settings *set, const co_addr *addr);
/* w waits on p (the newest waiter is told first). */
void co_probe_wait(co_probe *p, co_waiter *w, void (*cb)(void *arg, const callout_result *res),
                   void *arg);
/* w stops waiting; a probe nobody needs any more is freed. */
void co_probe_leave(co_waiter *w);
/* Free a probe, its waiters told nothing (callout_ctx_free). */
void co_probe_free(co_probe *p);
/* A deadline reached while waiting on p: what it is. */
typedef struct co_late {
	callout_reason reason;
	callout_stage stage;
	char why[256];
} co_late;
void co_probe_deadline(const co_probe *p, co_late *late);
/* Start the probes at the gate that may have a slot now. */
void co_probe_gate_admit(callout_ctx *ctx);

#endif
