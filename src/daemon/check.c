/*
 * cd_check: one mail transaction's question, answered in time.
 *
 *   plan (decide.c) -> verify each planned address in turn -> answer
 *
 * The answer goes to the front end within reply_within: a verification
 * still running then gets the in-progress answer, and goes on without us
 * into the cache (the engine finishes probes nobody waits for), so the
 * sending server's retry is answered at once.  One log line per decision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "decide.h"
#include "result_json.h"

struct cd_job {
	cd_daemon *d;
	cd_answer_cb cb;
	void *arg;
	cd_plan plan;
	unsigned cur; /* the check running */
	callout_query *q;
	struct event *timer; /* reply_within; also delivers skips from the loop */
	bool answer_ready;   /* skip: deliver on the first timer */
	cd_answer answer;
	cd_frontend fe;
	char client[64], sender[CD_ADDRESS_MAX], recipient[CD_ADDRESS_MAX], queue_id[64];
};

static void clean(char *out, size_t len, const char *in)
{
	size_t i = 0;
	for (; in && in[i] && i < len - 1; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[i] = ch > 0x20 && ch < 0x7f && ch != '"' ? (char)ch : '?';
	}
	out[i] = '\0';
}

static const char *action_name(cd_action a)
{
	return a == CD_ACT_REJECT ? "reject" : a == CD_ACT_DEFER ? "defer" : "pass";
}

static void log_decision(const cd_job *j, const cd_answer *a, const char *would)
{
	char id[80] = "", reply[48] = "";
	const char *pm = co_postmaster_name(a->postmaster);
	if (a->code)
		snprintf(reply, sizeof(reply), " reply=\"%d %s\"", a->code, a->enhanced);
	if (j->queue_id[0])
		snprintf(id, sizeof(id), "%s: ", j->queue_id);
	if (!a->verified) {
		cd_log(CD_LOG_INFO,
		       "%s%s client=%s sender=<%s> recipient=<%s> action=pass skipped=\"%s\"", id,
		       cd_frontend_name(j->fe), j->client, j->sender, j->recipient,
		       a->skip_reason ? a->skip_reason : "");
		return;
	}
	cd_log(CD_LOG_INFO,
	       "%s%s client=%s sender=<%s> recipient=<%s> checked=%s verdict=%s reason=%s "
	       "smtp=%d%s%s%s cached=%s%s%s%s%s ms=%u action=%s%s%s%s%s",
	       id, cd_frontend_name(j->fe), j->client, j->sender, j->recipient, a->checked,
	       callout_verdict_name(a->verdict), callout_reason_name(a->reason), a->smtp_code,
	       a->why[0] ? " why=\"" : "", a->why, a->why[0] ? "\"" : "", a->cached ? "yes" : "no",
	       a->fact ? " fact=" : "", a->fact ? a->fact : "", pm ? " postmaster=" : "",
	       pm ? pm : "", a->ms, action_name(a->action), reply, would ? " would=" : "",
	       would ? would : "",
	       j->plan.checks[j->cur].mode == CD_MODE_DRY_RUN ? " mode=dry-run"
	       : j->plan.checks[j->cur].mode == CD_MODE_TAG   ? " mode=tag"
	                                                      : "");
}

static void job_free(cd_job *j)
{
	if (j->q)
		callout_cancel(j->q);
	if (j->timer)
		event_free(j->timer);
	j->d->inflight--;
	cd_quiet_check(j->d);
	free(j);
}

/* Give the answer and end the job. */
static void answer(cd_job *j, const cd_answer *a, const char *would)
{
	cd_answer_cb cb = j->cb;
	void *arg = j->arg;
	cd_answer copy = *a; /* a may live in j */

	log_decision(j, &copy, would);
	cd_metrics_action(j->d->metrics, j->fe, copy.action, copy.verified);
	job_free(j);
	cb(arg, &copy);
}

static void start_check(cd_job *j);

static void on_result(void *arg, callout_status st, const callout_result *res)
{
	cd_job *j = arg;
	const cd_check_plan *k = &j->plan.checks[j->cur];
	cd_answer a;

	j->q = NULL;
	if (st != CALLOUT_OK || !res) {
		/* The engine is going away (shutdown): say try later. */
		cd_decide_in_progress(k, &a);
		answer(j, &a, NULL);
		return;
	}
	cd_metrics_result(j->d->metrics, j->fe, res);
	cd_decide_answer(k, res, &a);
	if (a.action == CD_ACT_PASS && !a.header[0] && j->cur + 1 < j->plan.n) {
		j->cur++;
		start_check(j);
		return;
	}
	const char *would = NULL;
	if (k->mode == CD_MODE_DRY_RUN) {
		cd_check_plan enforce = *k;
		cd_answer e;
		enforce.mode = CD_MODE_ENFORCE;
		cd_decide_answer(&enforce, res, &e);
		would = action_name(e.action);
	}
	answer(j, &a, would);
}

static void start_check(cd_job *j)
{
	const cd_check_plan *k = &j->plan.checks[j->cur];
	callout_status st = callout_verify(j->d->ctx, k->address, NULL, on_result, j, &j->q);

	if (st != CALLOUT_OK) {
		/* Our own fault (out of memory): a tempfail that says so, not
		 * the in-progress answer, which would log a timeout.  Answered
		 * from the loop: this may run inside cd_check. */
		struct timeval now = {0, 0};
		callout_result res = {
		    .verdict = CALLOUT_TEMPFAIL,
		    .reason = CALLOUT_R_INTERNAL,
		    .enhanced = "",
		    .text = callout_strerror(st),
		    .address = k->address,
		    .mx = "",
		    .ip = "",
		};
		cd_log(CD_LOG_ERR, "cannot start a verification: %s", callout_strerror(st));
		cd_decide_answer(k, &res, &j->answer);
		j->answer_ready = true;
		evtimer_add(j->timer, &now);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	cd_job *j = arg;
	cd_answer a;
	(void)fd;
	(void)what;

	if (j->answer_ready) {
		answer(j, &j->answer, NULL);
		return;
	}
	/* reply_within: the probe goes on into the cache without us. */
	cd_decide_in_progress(&j->plan.checks[j->cur], &a);
	answer(j, &a, NULL);
}

cd_job *cd_check(cd_daemon *d, const cd_request *req, cd_answer_cb cb, void *arg)
{
	cd_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->timer = evtimer_new(d->base, on_timer, j);
	if (!j->timer) {
		free(j);
		return NULL;
	}
	j->d = d;
	j->cb = cb;
	j->arg = arg;
	j->fe = req->fe;
	clean(j->client, sizeof(j->client), req->client_address);
	clean(j->sender, sizeof(j->sender), req->sender);
	clean(j->recipient, sizeof(j->recipient), req->recipient);
	clean(j->queue_id, sizeof(j->queue_id), req->queue_id);
	d->inflight++;
	cd_decide_plan(d->cfg, req, &j->plan);
	if (j->plan.n == 0) {
		j->answer = (cd_answer){.action = CD_ACT_PASS, .skip_reason = j->plan.skip_reason};
		j->answer_ready = true;
		struct timeval now = {0, 0};
		evtimer_add(j->timer, &now);
		return j;
	}
	unsigned ms = d->cfg->reply_within_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(j->timer, &tv);
	start_check(j);
	return j;
}

void cd_job_cancel(cd_job *j)
{
	if (j)
		job_free(j);
}
