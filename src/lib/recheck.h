/*
 * Greylisting re-checks (callout_options.greylist_recheck): an address
 * whose probe was answered tempfail/greylisted is asked again after the
 * configured delays, counted from that answer, through a probe like any
 * other (limits, cache, single flight), so that its answer is in the cache
 * when the MTA retries.  One re-check per address and sender; bounded in
 * number; requests that asked for it (CALLOUT_F_RECHECK_WAIT) hold on one
 * and get its answer.
 */
#ifndef CO_RECHECK_H
#define CO_RECHECK_H

#include <stdbool.h>
#include <sys/queue.h>

#include <callout/callout.h>

#include "addr.h"
#include "ctx.h"

struct recheck;

/* The re-checks of a context; NULL (no re-checks) when delays[0] is 0 or
 * out of memory (*enomem says which).  max: how many may be pending. */
co_rechecks *co_rechecks_new(callout_ctx *ctx, const unsigned delays[CALLOUT_RECHECK_MAX],
                             unsigned max, bool *enomem);
/* Cancel and free them all (callout_ctx_free, after its requests and
 * probes). */
void co_rechecks_free(co_rechecks *rs);
/* For callout_ctx_stats. */
void co_rechecks_stats(const co_rechecks *rs, callout_stats *st);

/*
 * A probe for addr with set has its answer res (not from the cache); call
 * before its waiters hear it.  A greylisted answer gets a re-check, unless
 * one is pending; any other answer ends a pending one (its holders get
 * it).  refresh: a background re-probe of a valid entry, never re-checked.
 * Returns the seconds until the pending re-check, 0: none.
 */
unsigned co_recheck_answer(callout_ctx *ctx, const settings *set, const co_addr *addr,
                           const callout_result *res, bool refresh);

/* Seconds until the re-check pending for addr and set, 0: none. */
unsigned co_recheck_pending(callout_ctx *ctx, const settings *set, const co_addr *addr);

/* A request holding on a re-check (CALLOUT_F_RECHECK_WAIT). */
typedef struct co_recheck_hold {
	LIST_ENTRY(co_recheck_hold) link;
	struct recheck *rc;   /* the re-check held on; NULL: none */
	callout_result *last; /* the greylisted answer, for the deadline */
	void (*cb)(void *arg, const callout_result *res);
	void *arg;
} co_recheck_hold;

/*
 * Hold h on the re-check pending for addr and set, keeping a copy of res
 * (the greylisted answer): true, and cb(arg, answer) is called once from
 * the loop with the re-check's last answer, after h has let go.  false:
 * none pending, or out of memory; deliver res.
 */
bool co_recheck_hold_on(callout_ctx *ctx, const settings *set, const co_addr *addr,
                        const callout_result *res, co_recheck_hold *h,
                        void (*cb)(void *arg, const callout_result *res), void *arg);
/* Milliseconds until the last re-check of what h holds on is due. */
unsigned co_recheck_hold_ms(const co_recheck_hold *h);
/* Let go (a cancel, the deadline) and free the kept answer; h may hold
 * nothing. */
void co_recheck_unhold(co_recheck_hold *h);

#endif
