/*
 * The decisions of a mail transaction, as pure functions of the
 * configuration, the request and a verification's result: what to check
 * (or why not), and what to answer.  check.c does the waiting.
 */
#ifndef CD_DECIDE_H
#define CD_DECIDE_H

#include <stdbool.h>

#include <callout/callout.h>

#include "config.h"
#include "daemon.h"

/* One address to verify and how to answer for it.  Replies are copied:
 * a reload may free the config while the check runs. */
typedef struct cd_check_plan {
	const char *what; /* "sender" or "recipient" */
	char address[CD_ADDRESS_MAX];
	cd_mode mode;
	bool defer_ok;
	cd_reply reject, defer, in_progress;
	callout_reason unknown_reject[CALLOUT_R_COUNT];
	size_t nunknown_reject;
	bool tag_no_postmaster; /* a sender: tag a passing answer whose domain
	                           refuses postmaster (no_postmaster = tag) */
} cd_check_plan;

typedef struct cd_plan {
	unsigned n;              /* checks to run in order: 0, 1 or 2 */
	cd_check_plan checks[2]; /* recipient (call forward) first, then sender */
	const char *skip_reason; /* n == 0: why nothing is verified */
} cd_plan;

void cd_decide_plan(const cd_config *c, const cd_request *r, cd_plan *p);

/* The answer for a verification's result; verified and the result fields
 * of a are filled too. */
void cd_decide_answer(const cd_check_plan *p, const callout_result *res, cd_answer *a);

/* The answer when the result is not in within reply_within. */
void cd_decide_in_progress(const cd_check_plan *p, cd_answer *a);

/* Expand $address, $reason, $verdict, $code, $text in tmpl into out
 * (printable ASCII, no CR/LF, truncated to len). */
void cd_expand(const char *tmpl, const char *address, const callout_result *res, char *out,
               size_t len);

#endif
