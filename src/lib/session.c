/*
 * The callout dialogue on one connection, as an explicit state machine:
 *
 *   CONNECT -> BANNER -> EHLO [-> HELO] [-> STARTTLS -> TLS -> EHLO]
 *           -> IDLE <-> ([VRFY] TXN: [RSET] MAIL RCPT... [RCPT random]
 *                                         [RCPT postmaster])
 *           -> QUIT
 *
 * A session carries batches: the addresses of one domain that its owner
 * (pool.c) gathered, each batch one transaction with MAIL and every RCPT
 * pipelined.  Between batches it is IDLE and the owner decides: another
 * batch (RSET first), or QUIT.
 *
 * enter_*() functions send a state's command; on_reply() dispatches a
 * complete reply by state.  Transport lives in conn.c: here we only see
 * lines.  Every reply is awaited under a timer that runs from the command
 * to the complete reply, so a server that drips bytes cannot hold us.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conn.h"
#include "hash.h"
#include "session.h"
#include "verdict.h"

#define TRANSCRIPT_MAX (64 * 1024)
/* How long postmaster's reply is awaited once every address is answered:
 * its answer is a domain fact, nice to have; the addresses' answers are
 * what someone waits for. */
#define POSTMASTER_WAIT_MS 3000

typedef enum state {
	ST_CONNECT,
	ST_BANNER,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS,  /* handshake in progress */
	ST_IDLE, /* between batches: the owner decides */
	ST_VRFY,
	ST_TXN, /* MAIL and RCPTs (and RSET), maybe pipelined */
	ST_DONE
} state;

/* Commands of a transaction, answered in order. */
typedef enum step { STEP_RSET, STEP_MAIL, STEP_RCPT, STEP_RANDOM, STEP_POSTMASTER } step;

struct co_session {
	struct event_base *base;
	co_session_params p;
	const co_session_events *ev;
	void *arg;
	co_conn *conn;
	void (*closed)(void *arg); /* told once the connection is gone */
	void *closed_arg;
	struct event *timer;
	state st;
	co_reply reply;
	co_caps caps;
	unsigned outstanding; /* replies we wait for */
	bool tls_active;
	bool vrfy_done;
	bool fallback_used; /* <> was refused once: never switch twice */
	bool null_refused;  /* <> refused: drain the group, then retry with the fallback */
	bool fallback_rset; /* the RSET in flight leads to the fallback sender */
	bool pipelined;     /* the current transaction was sent as one group */
	const char *from;
	/* The batch in flight and where its transaction is. */
	co_session_batch *b;
	bool rset_first;
	unsigned nplan, sent, answered;
	unsigned accepted;      /* RCPTs of this batch with a 2xx */
	unsigned txns;          /* transactions begun on this connection */
	unsigned rcpts_before;  /* RCPTs sent in earlier transactions */
	co_session_outcome why; /* what ended the session */
	/* RCPT replies over the whole session, for evidence about it. */
	unsigned rcpt_replies, rcpt_accepts;
	bool refused_last;
	bool random_skipped; /* one command at a time, nothing accepted: no catch-all probe */
	/* postmaster@DOMAIN's answer, once asked: for every outcome after */
	callout_postmaster postmaster;
	int postmaster_code;
	char postmaster_enh[16];
	unsigned blocks; /* recipients refused alike, the refusal blaming us */
	int block_code;
	char block_enh[16];
	size_t block_first; /* hash of the first such recipient */
	/* The owner may end the session from inside idle(). */
	unsigned depth;
	bool quit_pending;
};

static callout_stage stage_of(const co_session *s);

/* The one way the dialogue moves on: every change of state is here. */
static void enter(co_session *s, state st)
{
	s->st = st;
}

/* Step k of the transaction: [RSET] MAIL RCPT*n [RANDOM] [POSTMASTER].
 * The probes come last: their answers can never stand in the way of the
 * addresses' own. */
static step step_at(const co_session *s, unsigned k, unsigned *rcpt)
{
	if (s->rset_first) {
		if (k == 0)
			return STEP_RSET;
		k--;
	}
	if (k == 0)
		return STEP_MAIL;
	k--;
	if (k < s->b->n) {
		*rcpt = k;
		return STEP_RCPT;
	}
	k -= s->b->n;
	return k == 0 && s->b->random_rcpt ? STEP_RANDOM : STEP_POSTMASTER;
}

static callout_stage stage_of(const co_session *s)
{
	unsigned i;

	switch (s->st) {
	case ST_CONNECT:
		return CALLOUT_STAGE_CONNECT;
	case ST_BANNER:
		return CALLOUT_STAGE_BANNER;
	case ST_EHLO:
		return CALLOUT_STAGE_EHLO;
	case ST_HELO:
		return CALLOUT_STAGE_HELO;
	case ST_STARTTLS:
	case ST_TLS:
		return CALLOUT_STAGE_STARTTLS;
	case ST_VRFY:
		return CALLOUT_STAGE_VRFY;
	case ST_TXN:
		if (s->answered < s->nplan) {
			switch (step_at(s, s->answered, &i)) {
			case STEP_RSET:
				return CALLOUT_STAGE_RSET;
			case STEP_MAIL:
				return CALLOUT_STAGE_MAIL;
			case STEP_RCPT:
			case STEP_RANDOM:
			case STEP_POSTMASTER:
				return CALLOUT_STAGE_RCPT;
			}
		}
		return CALLOUT_STAGE_RCPT;
	case ST_IDLE:
	case ST_DONE:
		break;
	}
	return CALLOUT_STAGE_NONE;
}

callout_stage co_session_stage(const co_session *s)
{
	return stage_of(s);
}

bool co_session_tls(const co_session *s)
{
	return s->tls_active;
}

static void transcript(co_session *s, const char *dir, const char *line, size_t len)
{
	struct evbuffer *t = s->p.transcript;
	if (!t || evbuffer_get_length(t) > TRANSCRIPT_MAX)
		return;
	evbuffer_add(t, dir, strlen(dir));
	for (size_t i = 0; i < len; i++) {
		char c =
		    (unsigned char)line[i] >= 0x20 && (unsigned char)line[i] < 0x7f ? line[i] : '?';
		evbuffer_add(t, &c, 1);
	}
	evbuffer_add(t, "\n", 1);
	if (evbuffer_get_length(t) > TRANSCRIPT_MAX)
		evbuffer_add_printf(t, "-- transcript truncated\n");
}

static void arm_timer(co_session *s, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(s->timer, &tv);
}

/* Send one command line; the caller has validated every argument (no
 * CR, LF or control characters can reach here). */
static void send_cmd(co_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_cmd(co_session *s, const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		n = (int)sizeof(buf) - 3; /* cannot happen with checked input */
	transcript(s, "C: ", buf, (size_t)n);
	memcpy(buf + n, "\r\n", 2);
	co_conn_send(s->conn, buf, (size_t)n + 2);
	s->outstanding++;
	arm_timer(s, s->p.command_timeout_ms);
}

/* What ended (or will end) the session, for whoever waited on it. */
static void set_why(co_session *s, callout_verdict v, callout_reason r, const char *text)
{
	memset(&s->why, 0, sizeof(s->why));
	s->why.verdict = v;
	s->why.reason = r;
	s->why.stage = stage_of(s);
	snprintf(s->why.text, sizeof(s->why.text), "%s", text ? text : "");
}

static void outcome_from_reply(const co_session *s, co_session_outcome *o, co_class cls,
                               callout_stage stage)
{
	o->verdict = cls.verdict;
	o->reason = cls.reason;
	o->next_host = cls.next_host;
	o->stage = stage;
	o->code = s->reply.code;
	memcpy(o->enhanced, s->reply.enhanced, sizeof(o->enhanced));
	memcpy(o->text, s->reply.text, sizeof(o->text));
}

/* The answers come with the fallback sender: <> was refused here. */
static bool on_fallback(const co_session *s)
{
	return s->p.fallback_from && s->from == s->p.fallback_from;
}

/* One recipient's refusal is about that recipient.  The same refusal of
 * several different recipients, blaming us, with none accepted, is about
 * the session: the server blocks us. */
static void note_rcpt_reply(co_session *s, const char *rcpt, co_class cls)
{
	int digit = s->reply.code / 100;

	s->rcpt_replies++;
	s->refused_last = digit == 5;
	if (digit == 2) {
		s->rcpt_accepts++;
		return;
	}
	if (cls.reason != CALLOUT_R_POLICY_BLOCK || !co_text_blames_client(s->reply.text))
		return;
	size_t h = co_hash(rcpt, strlen(rcpt));
	if (!s->blocks) {
		s->blocks = 1;
		s->block_code = s->reply.code;
		memcpy(s->block_enh, s->reply.enhanced, sizeof(s->block_enh));
		s->block_first = h;
	} else if (s->reply.code == s->block_code && h != s->block_first &&
	           strcmp(s->reply.enhanced, s->block_enh) == 0) {
		s->blocks++;
	}
}

static bool session_blocked(const co_session *s)
{
	return s->blocks >= 2 && s->rcpt_accepts == 0;
}

/* The server stopped in the middle of a transaction after it had answered
 * RCPTs (a hang-up after a 550, a 421, silence after N recipients): that
 * is about the session, so the addresses it did not answer ask again in
 * another one.  So does an accepted address whose catch-all probe never
 * had its turn: alone, it would have had one.  (A probe the server itself
 * leaves unanswered, a tarpit for unknown users, lets the answers stand.) */
static void cut_batch(co_session *s)
{
	co_session_batch *b = s->b;
	bool unasked = false;

	if (!b || s->st != ST_TXN || s->rcpt_replies == 0 || s->null_refused)
		return;
	s->why.cut = s->why.requeue = true;
	s->why.rcpts_answered = s->rcpt_replies;
	s->why.refused_last = s->refused_last;
	for (unsigned i = 0; i < b->n; i++)
		unasked |= !b->outs[i].answered;
	if (!b->random_rcpt || !unasked)
		return;
	for (unsigned i = 0; i < b->n; i++)
		if (b->outs[i].answered && b->outs[i].verdict == CALLOUT_VALID)
			b->outs[i].answered = false;
}

/* Every RCPT of the batch the server did not answer gets the session's
 * outcome; what it answered stands.  Flags true of the whole session go
 * on every outcome. */
static void settle_batch(co_session *s)
{
	co_session_batch *b = s->b;
	if (!b)
		return;
	for (unsigned i = 0; i < b->n; i++) {
		co_session_outcome *o = &b->outs[i];
		if (!o->answered) {
			bool keep_catch = o->random_rejected;
			*o = s->why;
			o->random_rejected = keep_catch;
		}
		o->tls = s->tls_active;
		o->fallback_used |= on_fallback(s);
		o->session_blocked = session_blocked(s);
		o->postmaster = s->postmaster;
		o->postmaster_code = s->postmaster_code;
		memcpy(o->postmaster_enhanced, s->postmaster_enh, sizeof(o->postmaster_enhanced));
	}
}

/* Let the connection go: QUIT and close after the server's answer, or
 * close at once; the owner hears when it is gone. */
static void drop_conn(co_session *s, bool quit)
{
	void (*closed)(void *) = s->closed;

	s->closed = NULL;
	if (s->conn) {
		if (quit) {
			transcript(s, "C: ", "QUIT", 4);
			co_conn_send(s->conn, "QUIT\r\n", 6);
			co_conn_close_then(s->conn, closed, s->closed_arg);
			closed = NULL;
		} else {
			co_conn_free(s->conn);
		}
		s->conn = NULL;
	}
	if (closed)
		closed(s->closed_arg);
}

/* The end: QUIT (when the connection is sound), report, free. */
static void end(co_session *s, bool quit)
{
	co_session_batch *b = s->b;

	enter(s, ST_DONE);
	evtimer_del(s->timer);
	drop_conn(s, quit);
	s->why.tls = s->tls_active;
	s->why.fallback_used = on_fallback(s);
	settle_batch(s);
	s->b = NULL;
	s->ev->gone(s->arg, b, &s->why);
	event_free(s->timer);
	free(s);
}

/* The connection is unusable: report without QUIT. */
static void fail(co_session *s, callout_verdict v, callout_reason r, const char *text)
{
	set_why(s, v, r, text);
	s->why.next_host = true;
	cut_batch(s);
	end(s, false);
}

/* TLS could not be had (STARTTLS refused by us, the handshake failed or
 * timed out, the server hung up in it): the one place that says so, and
 * that the owner may try again in plain text, or another host. */
static void tls_failed(co_session *s, const char *detail)
{
	set_why(s, CALLOUT_TEMPFAIL, CALLOUT_R_TLS_FAILED, detail);
	s->why.retry_plain = s->why.next_host = true;
	end(s, false);
}

/* 421 in a transaction: the server is closing the session, whatever
 * command it answers.  Not an answer about any address. */
static void closing(co_session *s)
{
	callout_stage stage = stage_of(s);
	co_class cls = {CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, true};

	memset(&s->why, 0, sizeof(s->why));
	outcome_from_reply(s, &s->why, cls, stage);
	cut_batch(s);
	end(s, true);
}

/* A reply that ends the session for every address it carries. */
static void conclude(co_session *s)
{
	callout_stage stage = stage_of(s);
	co_class cls = co_classify(stage, &s->reply, s->from[0] == '\0');
	memset(&s->why, 0, sizeof(s->why));
	outcome_from_reply(s, &s->why, cls, stage);
	end(s, true);
}

/* Data the server sent before we asked anything is a protocol error. */
static bool out_of_turn(co_session *s)
{
	if (s->outstanding == 0 && co_conn_pending(s->conn) > 0) {
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, "server sent data out of turn");
		return true;
	}
	return false;
}

/* Ready for a batch: ask the owner.  Returns false when the session
 * ended (and is freed). */
static bool go_idle(co_session *s, co_session_batch *done)
{
	enter(s, ST_IDLE);
	evtimer_del(s->timer);
	if (out_of_turn(s)) /* gone() gets the batch */
		return false;
	if (done)
		settle_batch(s);
	s->b = NULL;
	s->depth++;
	s->ev->idle(s->arg, s, done);
	s->depth--;
	if (s->quit_pending) {
		event_free(s->timer);
		free(s);
		return false;
	}
	return true;
}

static void enter_ehlo(co_session *s)
{
	memset(&s->caps, 0, sizeof(s->caps));
	enter(s, ST_EHLO);
	send_cmd(s, "EHLO %s", s->p.helo);
}

static void send_step(co_session *s, unsigned k)
{
	unsigned i = 0;
	switch (step_at(s, k, &i)) {
	case STEP_RSET:
		send_cmd(s, "RSET");
		break;
	case STEP_MAIL:
		send_cmd(s, "MAIL FROM:<%s>%s", s->from, s->p.smtputf8 ? " SMTPUTF8" : "");
		break;
	case STEP_RCPT:
		send_cmd(s, "RCPT TO:<%s>", s->b->rcpts[i]);
		break;
	case STEP_RANDOM:
		send_cmd(s, "RCPT TO:<%s>", s->b->random_rcpt);
		break;
	case STEP_POSTMASTER:
		send_cmd(s, "RCPT TO:<%s>", s->b->postmaster_rcpt);
		break;
	}
}

/* [RSET] MAIL RCPT... [RCPT random] [RCPT postmaster]: one write with
 * PIPELINING, else one command per reply. */
static void enter_txn(co_session *s, bool rset)
{
	enter(s, ST_TXN);
	s->rset_first = rset;
	s->sent = s->answered = s->accepted = 0;
	s->random_skipped = false;
	s->nplan = (rset ? 1 : 0) + 1 + s->b->n + (s->b->random_rcpt ? 1 : 0) +
	           (s->b->postmaster_rcpt ? 1 : 0);
	s->pipelined = s->p.pipelining && s->caps.pipelining;
	do
		send_step(s, s->sent++);
	while (s->pipelined && s->sent < s->nplan);
}

void co_session_send(co_session *s, co_session_batch *b)
{
	s->b = b;
	for (unsigned i = 0; i < b->n; i++)
		memset(&b->outs[i], 0, sizeof(b->outs[i]));
	if (s->p.vrfy && !s->vrfy_done && b->n == 1) {
		enter(s, ST_VRFY);
		send_cmd(s, "VRFY <%s>", b->rcpts[0]);
		return;
	}
	enter_txn(s, s->txns++ > 0);
}

/* After EHLO or HELO succeeded (and TLS, if any, is up).  Returns false
 * when the session finished (and is freed). */
static bool after_hello(co_session *s)
{
	if (s->p.smtputf8 && !s->caps.smtputf8) {
		set_why(s, CALLOUT_UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED,
		        "the address needs SMTPUTF8, which the server does not offer");
		end(s, true);
		return false;
	}
	return go_idle(s, NULL);
}

static bool after_ehlo(co_session *s)
{
	if (s->p.tls && s->caps.starttls && !s->tls_active) {
		enter(s, ST_STARTTLS);
		send_cmd(s, "STARTTLS");
		return true;
	}
	return after_hello(s);
}

/* One command at a time, with no RCPT accepted, the catch-all probe has
 * nothing to tell: it is not sent (what follows it still is). */
static void skip_needless_random(co_session *s)
{
	unsigned i;
	if (!s->pipelined && s->answered == s->sent && s->sent < s->nplan && s->accepted == 0 &&
	    step_at(s, s->sent, &i) == STEP_RANDOM) {
		s->sent++;
		s->answered++;
		s->random_skipped = true;
	}
}

/* Only postmaster's reply is still to come in this transaction. */
static bool awaiting_postmaster(const co_session *s)
{
	unsigned i;

	return s->st == ST_TXN && s->b && !s->null_refused && s->answered + 1 == s->nplan &&
	       step_at(s, s->answered, &i) == STEP_POSTMASTER;
}

/* A reply inside the transaction.  Returns false when finished. */
static bool on_txn_reply(co_session *s)
{
	co_session_batch *b = s->b;
	unsigned i = 0;
	step st = step_at(s, s->answered, &i);
	int cls_digit = s->reply.code / 100;
	co_class cls;

	if (s->null_refused && st != STEP_RSET) {
		/* Draining replies to RCPTs pipelined behind the refused MAIL. */
		s->answered++;
		goto maybe_fallback;
	}
	if (s->reply.code == 421) {
		closing(s);
		return false;
	}
	switch (st) {
	case STEP_RSET:
		if (cls_digit != 2) {
			/* Cannot reset: what this batch asks goes to a new
			 * connection (with the fallback sender, if that was
			 * the reason for the RSET). */
			if (s->fallback_rset) {
				s->why.retry_fallback = true; /* why: the refusal of <> */
			} else {
				set_why(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR,
				        "RSET refused");
				s->why.requeue = true;
			}
			end(s, true);
			return false;
		}
		s->fallback_rset = false;
		break;
	case STEP_MAIL:
		if (cls_digit != 2) {
			bool null = s->from[0] == '\0';
			cls = co_classify(CALLOUT_STAGE_MAIL, &s->reply, null);
			if (null && cls.reason == CALLOUT_R_NULL_SENDER_REJECTED &&
			    s->p.fallback_from && !s->fallback_used) {
				memset(&s->why, 0, sizeof(s->why));
				outcome_from_reply(s, &s->why, cls, CALLOUT_STAGE_MAIL);
				s->fallback_used = true;
				s->null_refused = true;
				s->answered++;
				goto maybe_fallback;
			}
			conclude(s);
			return false;
		}
		break;
	case STEP_RCPT:
		cls = co_classify(CALLOUT_STAGE_RCPT, &s->reply, false);
		outcome_from_reply(s, &b->outs[i], cls, CALLOUT_STAGE_RCPT);
		b->outs[i].answered = true;
		note_rcpt_reply(s, b->rcpts[i], cls);
		if (cls_digit == 2)
			s->accepted++;
		else if (cls.reason == CALLOUT_R_TOO_MANY_RECIPIENTS && s->rcpts_before + i > 0)
			b->outs[i].requeue = true;
		break;
	case STEP_POSTMASTER:
		/* A fact about the domain for every outcome of the session,
		 * whatever the addresses' answers; not evidence about the
		 * session either (the server must treat it apart). */
		s->postmaster = co_postmaster_answer(&s->reply, false);
		s->postmaster_code = s->reply.code;
		memcpy(s->postmaster_enh, s->reply.enhanced, sizeof(s->postmaster_enh));
		break;
	case STEP_RANDOM:
		note_rcpt_reply(s, b->random_rcpt,
		                co_classify(CALLOUT_STAGE_RCPT, &s->reply, false));
		for (unsigned k = 0; k < b->n; k++) {
			co_session_outcome *o = &b->outs[k];
			if (cls_digit == 5)
				o->random_rejected = true;
			if (cls_digit == 2 && o->answered && o->verdict == CALLOUT_VALID) {
				o->verdict = CALLOUT_UNKNOWN;
				o->reason = CALLOUT_R_CATCH_ALL;
				o->catch_all = true;
			}
		}
		/* Otherwise the real addresses' answers stand. */
		break;
	}
	s->answered++;
	skip_needless_random(s);
	if (s->answered == s->nplan) {
		s->rcpts_before += s->sent - (s->rset_first ? 2 : 1) - (s->random_skipped ? 1 : 0);
		return go_idle(s, b);
	}
	if (!s->pipelined && s->sent < s->nplan)
		send_step(s, s->sent++);
	if (awaiting_postmaster(s))
		arm_timer(s, s->p.command_timeout_ms < POSTMASTER_WAIT_MS ? s->p.command_timeout_ms
		                                                          : POSTMASTER_WAIT_MS);
	return true;

maybe_fallback:
	if (s->answered < s->sent)
		return true; /* more replies of the refused group to come */
	s->null_refused = false;
	if (out_of_turn(s))
		return false;
	s->from = s->p.fallback_from;
	s->fallback_rset = true;
	enter_txn(s, true);
	return true;
}

/* A reply to VRFY (a batch of one).  Returns false when finished. */
static bool on_vrfy_reply(co_session *s)
{
	co_session_batch *b = s->b;
	int code = s->reply.code;

	s->vrfy_done = true;
	if (code == 250 || code == 251 || code == 550 || code == 551 || code == 553) {
		co_class cls = co_classify(CALLOUT_STAGE_VRFY, &s->reply, false);
		if (code / 100 == 2 || cls.verdict == CALLOUT_INVALID ||
		    cls.reason == CALLOUT_R_POLICY_BLOCK) {
			outcome_from_reply(s, &b->outs[0], cls, CALLOUT_STAGE_VRFY);
			b->outs[0].answered = true;
			return go_idle(s, b);
		}
	}
	/* 252, 502 and the rest say nothing: ask with RCPT. */
	if (out_of_turn(s))
		return false;
	enter_txn(s, s->txns++ > 0);
	return true;
}

/* A complete reply arrived.  Returns false when the session is over. */
static bool on_reply(co_session *s)
{
	int digit = s->reply.code / 100;

	s->outstanding--;
	if (s->outstanding == 0)
		evtimer_del(s->timer);
	else
		arm_timer(s, s->p.command_timeout_ms);

	switch (s->st) {
	case ST_BANNER:
		if (digit != 2)
			goto conclude;
		if (out_of_turn(s))
			return false;
		enter_ehlo(s);
		return true;
	case ST_EHLO:
		if (digit == 2) {
			if (out_of_turn(s))
				return false;
			return after_ehlo(s);
		}
		if (digit == 5) {
			/* No ESMTP: plain HELO, no capabilities. */
			memset(&s->caps, 0, sizeof(s->caps));
			enter(s, ST_HELO);
			send_cmd(s, "HELO %s", s->p.helo);
			return true;
		}
		goto conclude;
	case ST_HELO:
		if (digit != 2)
			goto conclude;
		if (out_of_turn(s))
			return false;
		return after_hello(s);
	case ST_STARTTLS:
		if (digit == 2) {
			if (out_of_turn(s))
				return false;
			enter(s, ST_TLS);
			if (co_conn_starttls(s->conn, s->p.tls, s->p.tls_name) < 0) {
				tls_failed(s, "cannot start TLS");
				return false;
			}
			arm_timer(s, s->p.command_timeout_ms);
			return false; /* the bufferevent changed: deliver nothing more */
		}
		if (s->reply.code == 421)
			goto conclude;
		/* Opportunistic: go on in plain text. */
		return after_hello(s);
	case ST_VRFY:
		return on_vrfy_reply(s);
	case ST_TXN:
		return on_txn_reply(s);
	case ST_CONNECT:
	case ST_TLS:
	case ST_IDLE:
	case ST_DONE:
		break;
	}
	fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, "unexpected reply");
	return false;

conclude:
	conclude(s);
	return false;
}

static bool on_line(void *arg, const char *line, size_t len)
{
	co_session *s = arg;

	transcript(s, "S: ", line, len);
	if (s->outstanding == 0 || s->st == ST_TLS) {
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, "server sent data out of turn");
		return false;
	}
	co_reply_status rs = co_reply_feed(&s->reply, line, len);
	if (rs == CO_REPLY_ERROR) {
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, "malformed reply from server");
		return false;
	}
	if (s->st == ST_EHLO)
		co_caps_line(&s->caps, line, len, s->reply.nlines == 1);
	if (rs == CO_REPLY_MORE)
		return true;
	bool alive = on_reply(s);
	if (alive)
		co_reply_init(&s->reply);
	return alive;
}

static void on_connected(void *arg)
{
	co_session *s = arg;
	enter(s, ST_BANNER);
	s->outstanding = 1;
	arm_timer(s, s->p.command_timeout_ms);
}

static void on_tls_ready(void *arg)
{
	co_session *s = arg;
	s->tls_active = true;
	s->outstanding = 0;
	co_reply_init(&s->reply);
	enter_ehlo(s);
}

/* As fail(), and says that the host is not to blame. */
static void proxy_failed(co_session *s, callout_reason reason, const char *detail)
{
	set_why(s, CALLOUT_TEMPFAIL, reason, detail);
	s->why.proxy_failed = s->why.next_host = true;
	cut_batch(s);
	end(s, false);
}

static void on_conn_error(void *arg, co_conn_error err, const char *detail)
{
	co_session *s = arg;
	switch (err) {
	case CO_CONN_REFUSED:
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, detail);
		break;
	case CO_CONN_LINE_TOO_LONG:
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, detail);
		break;
	case CO_CONN_TLS:
		tls_failed(s, detail);
		break;
	case CO_CONN_PROXY:
		proxy_failed(s, CALLOUT_R_CONNECT_FAILED, detail);
		break;
	case CO_CONN_CLOSED:
	case CO_CONN_IO:
		if (s->null_refused) {
			/* Hung up after refusing <>: try the fallback anew
			 * (why: the refusal). */
			s->why.retry_fallback = true;
			end(s, false);
			break;
		}
		if (s->st == ST_TLS) {
			tls_failed(s, detail);
			break;
		}
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECTION_LOST, detail);
		break;
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	co_session *s = arg;
	(void)fd;
	(void)what;

	if (!s->conn) {
		/* The connect failed at once; why is set. */
		end(s, false);
		return;
	}
	if (s->st == ST_TLS) {
		tls_failed(s, "timed out in the TLS handshake");
		return;
	}
	if (awaiting_postmaster(s)) {
		/* The addresses' answers stand; the fact stays unknown.  Not a
		 * failure of the host, nor a cut: QUIT, and no reuse (a reply is
		 * still due on this connection). */
		static const char note[] = "-- postmaster did not answer in time; the session ends";
		transcript(s, "", note, sizeof(note) - 1);
		end(s, true);
		return;
	}
	if (s->st == ST_CONNECT && s->p.proxy && co_conn_proxy_stalled(s->conn)) {
		char msg[400];
		snprintf(msg, sizeof(msg), "proxy %s: did not answer in time", s->p.proxy->label);
		proxy_failed(s, CALLOUT_R_TIMEOUT, msg);
		return;
	}
	fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_TIMEOUT,
	     s->st != ST_CONNECT ? "timed out waiting for the server"
	     : s->p.proxy        ? "connect through the proxy timed out"
	                         : "connect timed out");
}

static const co_conn_events conn_events = {
    .connected = on_connected,
    .tls_ready = on_tls_ready,
    .line = on_line,
    .error = on_conn_error,
};

co_session *co_session_start(struct event_base *base, const co_session_params *p,
                             const co_session_events *ev, void *arg)
{
	co_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->p = *p;
	s->ev = ev;
	s->arg = arg;
	enter(s, ST_CONNECT);
	s->from = p->mail_from;
	co_reply_init(&s->reply);
	s->timer = evtimer_new(base, on_timer, s);
	if (!s->timer) {
		free(s);
		return NULL;
	}
	s->conn = co_conn_connect(base, p->addr, p->addrlen, p->source, p->sourcelen, p->proxy,
	                          &conn_events, s);
	if (!s->conn) {
		/* Report on the loop, never from inside the caller.  Our own
		 * shortage (memory, descriptors) says nothing about the host. */
		int e = errno;
		bool ours = e == ENOMEM || e == EMFILE || e == ENFILE || e == ENOBUFS;
		set_why(s, CALLOUT_TEMPFAIL, ours ? CALLOUT_R_INTERNAL : CALLOUT_R_CONNECT_FAILED,
		        strerror(e));
		s->why.next_host = !ours;
		arm_timer(s, 0);
		return s;
	}
	arm_timer(s, p->connect_timeout_ms);
	return s;
}

void co_session_on_closed(co_session *s, void (*closed)(void *arg), void *arg)
{
	s->closed = closed;
	s->closed_arg = arg;
}

void co_session_quit(co_session *s)
{
	if (!s || s->st == ST_DONE)
		return;
	state was = s->st;
	enter(s, ST_DONE);
	evtimer_del(s->timer);
	drop_conn(s, was != ST_CONNECT && was != ST_TLS);
	if (s->depth) {
		s->quit_pending = true; /* go_idle() frees it on the way out */
		return;
	}
	event_free(s->timer);
	free(s);
}
