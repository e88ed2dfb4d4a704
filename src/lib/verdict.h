/* Evidence -> verdict + reason. */
#ifndef CO_VERDICT_H
#define CO_VERDICT_H

#include <stdbool.h>

#include <callout/callout.h>

#include "reply.h"

typedef struct co_class {
	callout_verdict verdict;
	callout_reason reason;
	bool next_host; /* the answer is about this host, not the address:
	                   another MX may answer better */
} co_class;

/*
 * Classify a complete reply received at stage.  null_sender says whether
 * MAIL FROM was <> (for CALLOUT_STAGE_MAIL, and at RCPT, where servers
 * that check the sender late refuse <> in their RCPT reply).  Enhanced status codes
 * first, reply text only as a fallback.  Never returns CALLOUT_INVALID
 * without positive evidence about the mailbox or domain.
 *
 * At RCPT a 2xx is valid/accepted.  Other stages are classified for their
 * failures only; a 2xx/3xx there yields valid/accepted and means "go on".
 */
co_class co_classify(callout_stage stage, const co_reply *r, bool null_sender);

/* What a reply to RCPT TO:<postmaster@DOMAIN> says of the domain: a 2xx
 * accepts it; a refusal that would make an address invalid (X.1.1, "user
 * unknown"...) refuses it; anything else (4xx, a block of us, a refusal
 * of our sender) says nothing. */
callout_postmaster co_postmaster_answer(const co_reply *r, bool null_sender);

/* Does text (any case) look like a block of the prober: blocklists,
 * "blocked", "spamhaus", "policy"... */
bool co_text_is_policy(const char *text);

/* Does text blame the connecting client itself: its IP, its reputation,
 * a DNS blocklist ("client host", "spamhaus", "listed at")?  Such a reply
 * is about the session, not about the address it answers. */
bool co_text_blames_client(const char *text);

/* Does text name greylisting explicitly ("greylisted", "graylist",
 * "postgrey"...)?  Generic "try again later" is not enough on its own;
 * co_classify accepts it only with the codes greylisting filters use
 * (450/451 with X.7.1, X.7.0 or X.2.0). */
bool co_text_is_greylist(const char *text);

/* Does text say the mailbox does not exist ("user unknown", "no such
 * user", "does not exist"...)? */
bool co_text_is_unknown_user(const char *text);

/* Does text say the mailbox is disabled ("disabled", "inactive",
 * "deactivated", "no longer active")? */
bool co_text_is_disabled(const char *text);

#endif
