/*
 * The callout dialogue on one connection, as an explicit state machine:
 *
 *   CONNECT -> BANNER -> EHLO [-> HELO] [-> STARTTLS -> TLS -> EHLO]
 *           [-> VRFY] -> TXN ([RSET] MAIL RCPT [RCPT random]) -> QUIT
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
#include "session.h"
#include "verdict.h"

#define TRANSCRIPT_MAX (64 * 1024)

typedef enum state {
	ST_CONNECT,
	ST_BANNER,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS, /* handshake in progress */
	ST_VRFY,
	ST_TXN, /* MAIL and RCPTs (and RSET), maybe pipelined */
	ST_DONE
} state;

/* Commands of a transaction, answered in order. */
typedef enum step { STEP_RSET, STEP_MAIL, STEP_RCPT, STEP_RANDOM } step;

struct co_session {
	struct event_base *base;
	co_session_params p;
	co_session_cb cb;
	void *arg;
	co_conn *conn;
	struct event *timer;
	state st;
	co_reply reply;
	co_caps caps;
	unsigned outstanding; /* replies we wait for */
	bool tls_active;
	bool vrfy_done;
	bool fallback_used;
	bool null_refused;  /* <> refused: drain the group, then retry with the fallback */
	bool rcpt_accepted; /* the real RCPT got 2xx; out holds its reply */
	bool pipelined;     /* the current transaction was sent as one group */
	step plan[4];
	unsigned nplan, sent, answered;
	const char *from;
	co_session_outcome out;
};

static callout_stage stage_of(const co_session *s)
{
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
			switch (s->plan[s->answered]) {
			case STEP_RSET:
				return CALLOUT_STAGE_RSET;
			case STEP_MAIL:
				return CALLOUT_STAGE_MAIL;
			case STEP_RCPT:
			case STEP_RANDOM:
				return CALLOUT_STAGE_RCPT;
			}
		}
		return CALLOUT_STAGE_RCPT;
	case ST_DONE:
		break;
	}
	return CALLOUT_STAGE_NONE;
}

callout_stage co_session_stage(const co_session *s)
{
	return stage_of(s);
}

static void transcript(co_session *s, const char *dir, const char *line, size_t len)
{
	struct evbuffer *t = s->p.transcript;
	if (!t || evbuffer_get_length(t) > TRANSCRIPT_MAX)
		return;
	evbuffer_add(t, dir, strlen(dir));
	for (size_t i = 0; i < len; i++) {
		char c = (unsigned char)line[i] >= 0x20 && (unsigned char)line[i] < 0x7f ? line[i] : '?';
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

static void set_outcome(co_session *s, callout_verdict v, callout_reason r, const char *text)
{
	s->out.verdict = v;
	s->out.reason = r;
	s->out.stage = stage_of(s);
	s->out.code = 0;
	s->out.enhanced[0] = '\0';
	snprintf(s->out.text, sizeof(s->out.text), "%s", text ? text : "");
}

static void set_outcome_reply(co_session *s, co_class cls)
{
	s->out.verdict = cls.verdict;
	s->out.reason = cls.reason;
	s->out.next_host = cls.next_host;
	s->out.stage = stage_of(s);
	s->out.code = s->reply.code;
	memcpy(s->out.enhanced, s->reply.enhanced, sizeof(s->out.enhanced));
	memcpy(s->out.text, s->reply.text, sizeof(s->out.text));
}

/* The end: QUIT without waiting for its reply, report, free. */
static void finish(co_session *s)
{
	s->st = ST_DONE;
	evtimer_del(s->timer);
	if (s->conn) {
		transcript(s, "C: ", "QUIT", 4);
		co_conn_send(s->conn, "QUIT\r\n", 6);
		co_conn_close_after_flush(s->conn);
		s->conn = NULL;
	}
	s->cb(s->arg, &s->out);
	event_free(s->timer);
	free(s);
}

/* The connection is unusable: report without QUIT. */
static void fail(co_session *s, callout_verdict v, callout_reason r, const char *text)
{
	if (s->conn) {
		co_conn_free(s->conn);
		s->conn = NULL;
	}
	if (s->rcpt_accepted) {
		/* Only the catch-all probe was left unanswered: the address
		 * itself was accepted. */
		finish(s);
		return;
	}
	set_outcome(s, v, r, text);
	s->out.next_host = true;
	finish(s);
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

static void enter_ehlo(co_session *s)
{
	memset(&s->caps, 0, sizeof(s->caps));
	s->st = ST_EHLO;
	send_cmd(s, "EHLO %s", s->p.helo);
}

static void send_step(co_session *s, step st)
{
	switch (st) {
	case STEP_RSET:
		send_cmd(s, "RSET");
		break;
	case STEP_MAIL:
		send_cmd(s, "MAIL FROM:<%s>%s", s->from, s->p.smtputf8 ? " SMTPUTF8" : "");
		break;
	case STEP_RCPT:
		send_cmd(s, "RCPT TO:<%s>", s->p.rcpt);
		break;
	case STEP_RANDOM:
		send_cmd(s, "RCPT TO:<%s>", s->p.random_rcpt);
		break;
	}
}

/* [RSET] MAIL RCPT [RCPT random]: one write with PIPELINING, else one
 * command per reply. */
static void enter_txn(co_session *s, const char *from, bool rset)
{
	s->st = ST_TXN;
	s->from = from;
	s->nplan = s->sent = s->answered = 0;
	if (rset)
		s->plan[s->nplan++] = STEP_RSET;
	s->plan[s->nplan++] = STEP_MAIL;
	s->plan[s->nplan++] = STEP_RCPT;
	if (s->p.random_rcpt)
		s->plan[s->nplan++] = STEP_RANDOM;
	s->pipelined = s->p.pipelining && s->caps.pipelining;
	do
		send_step(s, s->plan[s->sent++]);
	while (s->pipelined && s->sent < s->nplan);
}

/* After EHLO or HELO succeeded (and TLS, if any, is up).  Returns false
 * when the session finished (and is freed). */
static bool after_hello(co_session *s)
{
	if (s->p.smtputf8 && !s->caps.smtputf8) {
		set_outcome(s, CALLOUT_UNKNOWN, CALLOUT_R_SMTPUTF8_UNSUPPORTED,
		            "the address needs SMTPUTF8, which the server does not offer");
		finish(s);
		return false;
	}
	if (s->p.vrfy && !s->vrfy_done) {
		s->st = ST_VRFY;
		send_cmd(s, "VRFY <%s>", s->p.rcpt);
		return true;
	}
	enter_txn(s, s->p.mail_from, false);
	return true;
}

static bool after_ehlo(co_session *s)
{
	if (s->p.tls && s->caps.starttls && !s->tls_active) {
		s->st = ST_STARTTLS;
		send_cmd(s, "STARTTLS");
		return true;
	}
	return after_hello(s);
}

/* Go on with the next command of a transaction sent one at a time. */
static void txn_continue(co_session *s)
{
	if (s->sent < s->nplan && !s->pipelined)
		send_step(s, s->plan[s->sent++]);
}

/* A reply inside the transaction.  Returns false when finished. */
static bool on_txn_reply(co_session *s)
{
	step st = s->plan[s->answered];
	int cls_digit = s->reply.code / 100;

	if (s->null_refused && st != STEP_RSET) {
		/* Draining replies to RCPTs pipelined behind the refused MAIL. */
		s->answered++;
		goto maybe_fallback;
	}
	switch (st) {
	case STEP_RSET:
		if (cls_digit != 2) {
			/* Cannot reset: start over on a new connection. */
			s->out.retry_fallback = true;
			finish(s);
			return false;
		}
		break;
	case STEP_MAIL:
		if (cls_digit != 2) {
			bool null = s->from[0] == '\0';
			co_class cls = co_classify(CALLOUT_STAGE_MAIL, &s->reply, null);
			set_outcome_reply(s, cls);
			if (null && cls.reason == CALLOUT_R_NULL_SENDER_REJECTED && s->p.fallback_from &&
			    !s->fallback_used) {
				s->fallback_used = true;
				s->null_refused = true;
				s->answered++;
				goto maybe_fallback;
			}
			finish(s);
			return false;
		}
		break;
	case STEP_RCPT:
		if (cls_digit == 2) {
			s->rcpt_accepted = true;
			set_outcome_reply(s, co_classify(CALLOUT_STAGE_RCPT, &s->reply, false));
			if (!s->p.random_rcpt) {
				finish(s);
				return false;
			}
			break;
		}
		set_outcome_reply(s, co_classify(CALLOUT_STAGE_RCPT, &s->reply, false));
		finish(s);
		return false;
	case STEP_RANDOM:
		if (cls_digit == 2) {
			s->out.verdict = CALLOUT_UNKNOWN;
			s->out.reason = CALLOUT_R_CATCH_ALL;
			s->out.catch_all = true;
		} else if (cls_digit == 5) {
			s->out.random_rejected = true;
		}
		/* Otherwise the real address's acceptance stands. */
		finish(s);
		return false;
	}
	s->answered++;
	txn_continue(s);
	return true;

maybe_fallback:
	if (s->answered < s->sent)
		return true; /* more replies of the refused group to come */
	s->null_refused = false;
	s->rcpt_accepted = false;
	if (out_of_turn(s))
		return false;
	s->out.fallback_used = true;
	enter_txn(s, s->p.fallback_from, true);
	return true;
}

/* A complete reply arrived.  Returns false when the session is over. */
static bool on_reply(co_session *s)
{
	int digit = s->reply.code / 100;
	co_class cls;

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
			s->st = ST_HELO;
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
			s->st = ST_TLS;
			if (co_conn_starttls(s->conn, s->p.tls, s->p.tls_name) < 0) {
				s->out.retry_plain = true;
				fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_TLS_FAILED, "cannot start TLS");
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
		s->vrfy_done = true;
		if (s->reply.code == 250 || s->reply.code == 251)
			goto conclude;
		if (s->reply.code == 550 || s->reply.code == 551 || s->reply.code == 553) {
			cls = co_classify(CALLOUT_STAGE_VRFY, &s->reply, false);
			if (cls.verdict == CALLOUT_INVALID || cls.reason == CALLOUT_R_POLICY_BLOCK) {
				set_outcome_reply(s, cls);
				finish(s);
				return false;
			}
		}
		/* 252, 502 and the rest say nothing: ask with RCPT. */
		if (out_of_turn(s))
			return false;
		enter_txn(s, s->p.mail_from, false);
		return true;
	case ST_TXN:
		return on_txn_reply(s);
	case ST_CONNECT:
	case ST_TLS:
	case ST_DONE:
		break;
	}
	fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_PROTOCOL_ERROR, "unexpected reply");
	return false;

conclude:
	cls = co_classify(stage_of(s), &s->reply, s->p.mail_from[0] == '\0');
	set_outcome_reply(s, cls);
	finish(s);
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
	s->st = ST_BANNER;
	s->outstanding = 1;
	arm_timer(s, s->p.command_timeout_ms);
}

static void on_tls_ready(void *arg)
{
	co_session *s = arg;
	s->tls_active = true;
	s->out.tls = true;
	s->outstanding = 0;
	co_reply_init(&s->reply);
	enter_ehlo(s);
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
		s->out.retry_plain = true;
		fail(s, CALLOUT_TEMPFAIL, CALLOUT_R_TLS_FAILED, detail);
		break;
	case CO_CONN_CLOSED:
	case CO_CONN_IO:
		if (s->null_refused) {
			/* Hung up after refusing <>: try the fallback anew. */
			s->out.retry_fallback = true;
			s->null_refused = false;
			co_conn_free(s->conn);
			s->conn = NULL;
			finish(s);
			break;
		}
		if (s->st == ST_TLS)
			s->out.retry_plain = true;
		fail(s, CALLOUT_TEMPFAIL,
		     s->st == ST_TLS ? CALLOUT_R_TLS_FAILED : CALLOUT_R_CONNECTION_LOST, detail);
		break;
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	co_session *s = arg;
	(void)fd;
	(void)what;

	if (!s->conn) {
		/* The connect failed at once; the outcome is set. */
		finish(s);
		return;
	}
	if (s->st == ST_TLS)
		s->out.retry_plain = true;
	fail(s, CALLOUT_TEMPFAIL, s->st == ST_TLS ? CALLOUT_R_TLS_FAILED : CALLOUT_R_TIMEOUT,
	     s->st == ST_CONNECT ? "connect timed out" : "timed out waiting for the server");
}

static const co_conn_events conn_events = {
	.connected = on_connected,
	.tls_ready = on_tls_ready,
	.line = on_line,
	.error = on_conn_error,
};

co_session *co_session_start(struct event_base *base, const co_session_params *p,
                             co_session_cb cb, void *arg)
{
	co_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->p = *p;
	s->cb = cb;
	s->arg = arg;
	s->st = ST_CONNECT;
	co_reply_init(&s->reply);
	s->timer = evtimer_new(base, on_timer, s);
	if (!s->timer) {
		free(s);
		return NULL;
	}
	s->conn = co_conn_connect(base, p->addr, p->addrlen, p->source, p->sourcelen,
	                          &conn_events, s);
	if (!s->conn) {
		/* Report on the loop, never from inside the caller. */
		set_outcome(s, CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, strerror(errno));
		s->out.next_host = true;
		arm_timer(s, 0);
		return s;
	}
	arm_timer(s, p->connect_timeout_ms);
	return s;
}

void co_session_cancel(co_session *s)
{
	if (!s)
		return;
	evtimer_del(s->timer);
	if (s->conn) {
		if (s->st != ST_CONNECT && s->st != ST_TLS) {
			transcript(s, "C: ", "QUIT", 4);
			co_conn_send(s->conn, "QUIT\r\n", 6);
			co_conn_close_after_flush(s->conn);
		} else {
			co_conn_free(s->conn);
		}
	}
	event_free(s->timer);
	free(s);
}
