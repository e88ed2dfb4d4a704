/* Unit tests for src/lib/session.c: the SMTP dialogue against a scripted
 * server on the same event loop.  co_session connects by address, so the
 * server listens on an abstract AF_UNIX name: a socketpair's byte stream,
 * reached the way the engine reaches a mail host. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "loopback.h"
#include "session.h"

/* When a command starting with cmd arrives, send reply (NULL: nothing),
 * then hang up if close.  The first step is the greeting (cmd NULL); a
 * step with cmd NULL after it ends the script. */
typedef struct step {
	const char *cmd;
	const char *reply;
	bool close;
} step;

/* The usual steps. */
#define GREETING                                                                                   \
	{                                                                                          \
		NULL, "220 mx.test ESMTP\r\n", false                                               \
	}
#define EHLO_PIPELINING                                                                            \
	{                                                                                          \
		"EHLO", "250-mx.test\r\n250 PIPELINING\r\n", false                                 \
	}
#define EHLO_PLAIN                                                                                 \
	{                                                                                          \
		"EHLO", "250 mx.test\r\n", false                                                   \
	}
#define END                                                                                        \
	{                                                                                          \
		NULL, NULL, false                                                                  \
	}

typedef struct server {
	struct event_base *base;
	int lfd;
	struct event *accept_ev;
	struct bufferevent *bev;
	const step *script;
	size_t next;
	size_t chunk;             /* >0: replies go out this many octets at a time */
	struct evbuffer *pending; /* reply octets not handed to the socket yet */
	struct event *drip;
	unsigned writes; /* pieces of reply handed to the socket */
	bool hangup;     /* close once everything is sent */
	bool closed;
	char log[4096];       /* commands: ',' within one read, '|' between reads */
	char unexpected[256]; /* the first command the script did not expect */
} server;

typedef struct run {
	server sv;
	co_session_params p;
	struct sockaddr_un sun;
	const char *rcpts[4];
	unsigned n;
	const char *random_rcpt;
	unsigned batches; /* how many times the batch is sent */
	co_session_outcome outs[4];
	co_session_outcome first[4]; /* the first batch's, when there are two */
	co_session_batch b;
	unsigned sent, idles;
	bool quit; /* we ended it after the last batch */
	bool gone;
	co_session_batch *gone_batch;
	co_session_outcome why;
	bool watchdog;
} run;

static void srv_close(server *sv)
{
	if (sv->bev)
		bufferevent_free(sv->bev);
	sv->bev = NULL;
	evtimer_del(sv->drip);
	sv->closed = true;
}

static void srv_maybe_hangup(server *sv)
{
	if (sv->bev && sv->hangup && evbuffer_get_length(sv->pending) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(sv->bev)) == 0)
		srv_close(sv);
}

static void srv_drip(evutil_socket_t fd, short what, void *arg)
{
	server *sv = arg;
	(void)fd;
	(void)what;
	if (!sv->bev)
		return;
	size_t n = evbuffer_get_length(sv->pending);
	if (sv->chunk && n > sv->chunk)
		n = sv->chunk;
	evbuffer_remove_buffer(sv->pending, bufferevent_get_output(sv->bev), n);
	sv->writes++;
	if (evbuffer_get_length(sv->pending) > 0) {
		struct timeval tv = {0, 2000};
		evtimer_add(sv->drip, &tv);
	}
}

static void srv_send(server *sv, const char *reply, bool close)
{
	if (reply)
		evbuffer_add(sv->pending, reply, strlen(reply));
	sv->hangup |= close;
	if (evbuffer_get_length(sv->pending) > 0 && !evtimer_pending(sv->drip, NULL))
		srv_drip(-1, 0, sv);
	srv_maybe_hangup(sv);
}

static void srv_flushed(struct bufferevent *bev, void *arg)
{
	(void)bev;
	srv_maybe_hangup(arg);
}

static void srv_log(server *sv, const char *line, bool first_of_read)
{
	size_t used = strlen(sv->log);
	snprintf(sv->log + used, sizeof(sv->log) - used, "%s%s",
	         used == 0       ? ""
	         : first_of_read ? "|"
	                         : ",",
	         line);
}

static void srv_read(struct bufferevent *bev, void *arg)
{
	server *sv = arg;
	char *line;
	bool first = true;

	while (sv->bev && (line = evbuffer_readln(bufferevent_get_input(bev), NULL,
	                                          EVBUFFER_EOL_CRLF_STRICT))) {
		srv_log(sv, line, first);
		first = false;
		const step *st = &sv->script[sv->next];
		if (st->cmd && strncmp(line, st->cmd, strlen(st->cmd)) == 0) {
			sv->next++;
			srv_send(sv, st->reply, st->close);
		} else if (strcmp(line, "QUIT") != 0 && !sv->unexpected[0]) {
			snprintf(sv->unexpected, sizeof(sv->unexpected), "%s", line);
		}
		free(line);
	}
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	srv_close(arg);
}

static void srv_accept(evutil_socket_t lfd, short what, void *arg)
{
	server *sv = arg;
	(void)what;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		sv->closed = true;
		return;
	}
	sv->bev = bufferevent_socket_new(sv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(sv->bev, srv_read, srv_flushed, srv_event, sv);
	bufferevent_enable(sv->bev, EV_READ | EV_WRITE);
	sv->next = 1;
	srv_send(sv, sv->script[0].reply, sv->script[0].close);
}

static void on_idle(void *arg, co_session *s, co_session_batch *done)
{
	run *r = arg;
	r->idles++;
	if (r->sent < r->batches) {
		if (done)
			memcpy(r->first, r->outs, sizeof(r->first));
		r->b = (co_session_batch){
		    .n = r->n, .rcpts = r->rcpts, .random_rcpt = r->random_rcpt, .outs = r->outs};
		r->sent++;
		co_session_send(s, &r->b);
		return;
	}
	r->quit = true;
	co_session_quit(s);
}

static void on_gone(void *arg, co_session_batch *b, const co_session_outcome *why)
{
	run *r = arg;
	r->gone = true;
	r->gone_batch = b;
	r->why = *why;
}

static const co_session_events events = {.idle = on_idle, .gone = on_gone};

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	run *r = arg;
	(void)fd;
	(void)what;
	r->watchdog = true;
}

/* A probe of one address, pipelining wanted, MAIL FROM:<>. */
static void run_init(run *r, const step *script)
{
	static unsigned seq;
	memset(r, 0, sizeof(*r));
	r->sv.script = script;
	r->sun.sun_family = AF_UNIX;
	/* abstract: sun_path[0] is NUL, nothing to clean up */
	snprintf(r->sun.sun_path + 1, sizeof(r->sun.sun_path) - 1, "callout-test-session-%d-%u",
	         (int)getpid(), seq++);
	r->p.addr = (const struct sockaddr *)&r->sun;
	r->p.addrlen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(r->sun.sun_path + 1));
	r->p.helo = "helo.test";
	r->p.mail_from = "";
	r->p.pipelining = true;
	r->p.connect_timeout_ms = 2000;
	r->p.command_timeout_ms = 2000;
	r->n = 1;
	r->rcpts[0] = "user@dest.test";
	r->batches = 1;
}

/* Run the session to its end and the server to its hang-up. */
static void run_go(run *r, bool listen_too)
{
	struct event_base *base = event_base_new();
	server *sv = &r->sv;
	assert_non_null(base);
	sv->base = base;
	sv->pending = evbuffer_new();
	sv->drip = evtimer_new(base, srv_drip, sv);
	sv->lfd = -1;
	if (listen_too) {
		sv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(sv->lfd >= 0);
		assert_int_equal(bind(sv->lfd, r->p.addr, r->p.addrlen), 0);
		assert_int_equal(listen(sv->lfd, 4), 0);
		sv->accept_ev = event_new(base, sv->lfd, EV_READ, srv_accept, sv);
		event_add(sv->accept_ev, NULL);
	} else {
		sv->closed = true;
	}

	struct event *watchdog = evtimer_new(base, on_watchdog, r);
	struct timeval tv = {10, 0};
	evtimer_add(watchdog, &tv);
	assert_non_null(co_session_start(base, &r->p, &events, r));
	while (!((r->gone || r->quit) && sv->closed) && !r->watchdog)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(watchdog);
	if (sv->accept_ev)
		event_free(sv->accept_ev);
	if (!r->watchdog)
		event_base_dispatch(base); /* a closing connection's flush */
	srv_close(sv);
	event_free(sv->drip);
	evbuffer_free(sv->pending);
	if (sv->lfd >= 0)
		close(sv->lfd);
	event_base_free(base);
	assert_false(r->watchdog);
	assert_string_equal(sv->unexpected, "");
}

static const step accepting[] = {
    GREETING,
    {"EHLO", "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n", false},
    {"MAIL", "250 2.1.0 Ok\r\n", false},
    {"RCPT", "250 2.1.5 Ok\r\n", false},
    END,
};

static void test_accepted(void **state)
{
	(void)state;
	run r;
	run_init(&r, accepting);
	run_go(&r, true);

	assert_true(r.quit);
	assert_false(r.gone); /* no callback after our own quit */
	assert_int_equal(r.idles, 2);
	const co_session_outcome *o = &r.outs[0];
	assert_true(o->answered);
	assert_int_equal(o->verdict, CALLOUT_VALID);
	assert_int_equal(o->reason, CALLOUT_R_ACCEPTED);
	assert_int_equal(o->stage, CALLOUT_STAGE_RCPT);
	assert_int_equal(o->code, 250);
	assert_string_equal(o->enhanced, "2.1.5");
	assert_string_equal(o->text, "Ok");
	assert_false(o->next_host);
	assert_false(o->tls);
	assert_false(o->catch_all);
	/* MAIL and RCPT went in one write; QUIT ended it */
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<user@dest.test>|QUIT");
}

/* The one-recipient dialogue with reply to RCPT. */
static void probe_rcpt(run *r, const char *rcpt_reply)
{
	step script[] = {
	    GREETING,
	    EHLO_PIPELINING,
	    {"MAIL", "250 2.1.0 Ok\r\n", false},
	    {"RCPT", rcpt_reply, false},
	    END,
	};
	run_init(r, script);
	run_go(r, true);
	assert_true(r->quit);
	assert_true(r->outs[0].answered);
	assert_int_equal(r->outs[0].stage, CALLOUT_STAGE_RCPT);
}

static void test_unknown(void **state)
{
	(void)state;
	run r;
	probe_rcpt(&r, "550 5.1.1 <user@dest.test>: Recipient address rejected: User unknown\r\n");
	assert_int_equal(r.outs[0].verdict, CALLOUT_INVALID);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_MAILBOX_UNKNOWN);
	assert_int_equal(r.outs[0].code, 550);
	assert_string_equal(r.outs[0].enhanced, "5.1.1");
	assert_string_equal(r.outs[0].text,
	                    "<user@dest.test>: Recipient address rejected: User unknown");
	assert_false(r.outs[0].next_host);
	assert_false(r.outs[0].session_blocked);
}

static void test_greylisted(void **state)
{
	(void)state;
	run r;
	probe_rcpt(&r, "451 4.7.1 <user@dest.test>: Recipient address rejected: Greylisted, "
	               "see http://postgrey.example/\r\n");
	assert_int_equal(r.outs[0].verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_GREYLISTED);
	assert_int_equal(r.outs[0].code, 451);
	assert_string_equal(r.outs[0].enhanced, "4.7.1");
}

static void test_multiline(void **state)
{
	(void)state;
	static const step script[] = {
	    {NULL, "220-mx.test ESMTP\r\n220-no UCE\r\n220 welcome\r\n", false},
	    {"EHLO", "250-mx.test\r\n250-SIZE 1000000\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n",
	     false},
	    {"MAIL", "250 2.1.0 Ok\r\n", false},
	    {"RCPT",
	     "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
	     "550-5.1.1 Please try double-checking the recipient's email\r\n"
	     "550 5.1.1 address for typos.\r\n",
	     false},
	    END,
	};
	run r;
	run_init(&r, script);
	run_go(&r, true);

	assert_true(r.quit);
	assert_int_equal(r.outs[0].verdict, CALLOUT_INVALID);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_MAILBOX_UNKNOWN);
	assert_int_equal(r.outs[0].code, 550);
	assert_string_equal(r.outs[0].enhanced, "5.1.1");
	/* every line's text is kept, in order */
	const char *t = r.outs[0].text;
	assert_non_null(strstr(t, "does not exist."));
	assert_non_null(strstr(t, "Please try"));
	assert_true(strstr(t, "does not exist.") < strstr(t, "address for typos."));
	/* PIPELINING from a middle line of the EHLO reply counts */
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<user@dest.test>|QUIT");
}

static const step two_rcpts[] = {
    GREETING,
    EHLO_PIPELINING,
    {"MAIL", "250 2.1.0 Ok\r\n", false},
    {"RCPT TO:<a@dest.test>", "250 2.1.5 Ok\r\n", false},
    {"RCPT TO:<b@dest.test>", "550 5.1.1 User unknown\r\n", false},
    END,
};

static void two_rcpts_run(run *r, const step *script, bool pipelining)
{
	run_init(r, script);
	r->p.pipelining = pipelining;
	r->n = 2;
	r->rcpts[0] = "a@dest.test";
	r->rcpts[1] = "b@dest.test";
	run_go(r, true);
}

static void test_pipelining(void **state)
{
	(void)state;
	run r;

	/* on and offered: the whole transaction in one write */
	two_rcpts_run(&r, two_rcpts, true);
	assert_true(r.quit);
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<a@dest.test>,"
	                              "RCPT TO:<b@dest.test>|QUIT");
	assert_int_equal(r.outs[0].verdict, CALLOUT_VALID);
	assert_int_equal(r.outs[1].verdict, CALLOUT_INVALID);
	assert_int_equal(r.outs[1].reason, CALLOUT_R_MAILBOX_UNKNOWN);

	/* off: one command per reply, same answers */
	two_rcpts_run(&r, two_rcpts, false);
	assert_true(r.quit);
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>|RCPT TO:<a@dest.test>|"
	                              "RCPT TO:<b@dest.test>|QUIT");
	assert_int_equal(r.outs[0].verdict, CALLOUT_VALID);
	assert_int_equal(r.outs[1].verdict, CALLOUT_INVALID);

	/* wanted but not offered: not used */
	static const step plain[] = {
	    GREETING,
	    {"EHLO", "250-mx.test\r\n250 8BITMIME\r\n", false},
	    {"MAIL", "250 2.1.0 Ok\r\n", false},
	    {"RCPT TO:<a@dest.test>", "250 2.1.5 Ok\r\n", false},
	    {"RCPT TO:<b@dest.test>", "250 2.1.5 Ok\r\n", false},
	    END,
	};
	two_rcpts_run(&r, plain, true);
	assert_true(r.quit);
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>|RCPT TO:<a@dest.test>|"
	                              "RCPT TO:<b@dest.test>|QUIT");
	assert_int_equal(r.outs[1].verdict, CALLOUT_VALID);
}

static void test_ehlo_refused(void **state)
{
	(void)state;
	static const step script[] = {
	    {NULL, "220 mx.test\r\n", false},
	    {"EHLO", "502 5.5.2 Error: command not recognized\r\n", false},
	    {"HELO", "250 mx.test\r\n", false},
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT", "250 Ok\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	run_go(&r, true);
	/* HELO instead, and no capabilities: no pipelining */
	assert_true(r.quit);
	assert_int_equal(r.outs[0].verdict, CALLOUT_VALID);
	assert_string_equal(r.sv.log, "EHLO helo.test|HELO helo.test|MAIL FROM:<>|"
	                              "RCPT TO:<user@dest.test>|QUIT");
}

static void test_banner_refused(void **state)
{
	(void)state;
	static const step script[] = {
	    {NULL, "554 5.7.1 mx.test: no SMTP service for you\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	run_go(&r, true);
	/* no batch was ever asked for; the refusal is why */
	assert_true(r.gone);
	assert_null(r.gone_batch);
	assert_int_equal(r.idles, 0);
	assert_int_equal(r.why.verdict, CALLOUT_UNKNOWN);
	assert_int_equal(r.why.reason, CALLOUT_R_POLICY_BLOCK);
	assert_int_equal(r.why.stage, CALLOUT_STAGE_BANNER);
	assert_int_equal(r.why.code, 554);
	assert_string_equal(r.sv.log, "QUIT");
}

static void test_closed_after_banner(void **state)
{
	(void)state;
	static const step script[] = {
	    {NULL, "220 mx.test ESMTP\r\n", true},
	    END,
	};
	run r;
	run_init(&r, script);
	run_go(&r, true);
	assert_true(r.gone);
	assert_null(r.gone_batch);
	assert_int_equal(r.idles, 0);
	assert_int_equal(r.why.verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.why.reason, CALLOUT_R_CONNECTION_LOST);
	assert_int_equal(r.why.stage, CALLOUT_STAGE_EHLO);
	assert_true(r.why.next_host);
}

static void test_closed_mid_transaction(void **state)
{
	(void)state;
	static const step script[] = {
	    GREETING,
	    EHLO_PLAIN,
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT TO:<a@dest.test>", "250 Ok\r\n", false},
	    {"RCPT TO:<b@dest.test>", NULL, true},
	    {NULL, NULL, false},
	};
	run r;
	two_rcpts_run(&r, script, true);
	assert_true(r.gone);
	assert_ptr_equal(r.gone_batch, &r.b);
	/* what was answered stands; the rest gets the hang-up, marked as
	 * about the session so it is asked again elsewhere */
	assert_true(r.outs[0].answered);
	assert_int_equal(r.outs[0].verdict, CALLOUT_VALID);
	assert_false(r.outs[1].answered);
	assert_int_equal(r.outs[1].verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.outs[1].reason, CALLOUT_R_CONNECTION_LOST);
	assert_int_equal(r.outs[1].stage, CALLOUT_STAGE_RCPT);
	assert_true(r.outs[1].cut);
	assert_true(r.outs[1].requeue);
	assert_int_equal(r.outs[1].rcpts_answered, 1);
	assert_false(r.outs[1].refused_last);
	assert_true(r.why.cut);
}

static void test_421(void **state)
{
	(void)state;
	static const step script[] = {
	    GREETING,
	    EHLO_PLAIN,
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT TO:<a@dest.test>", "550 5.1.1 User unknown\r\n", false},
	    {"RCPT TO:<b@dest.test>", "421 4.4.2 mx.test Error: timeout exceeded\r\n", true},
	    END,
	};
	run r;
	two_rcpts_run(&r, script, false);
	assert_true(r.gone);
	assert_ptr_equal(r.gone_batch, &r.b);
	assert_int_equal(r.outs[0].verdict, CALLOUT_INVALID);
	/* the 421 is the server closing, not an answer about b */
	assert_false(r.outs[1].answered);
	assert_int_equal(r.outs[1].verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.outs[1].reason, CALLOUT_R_TEMP_REJECT);
	assert_int_equal(r.outs[1].code, 421);
	assert_string_equal(r.outs[1].enhanced, "4.4.2");
	assert_int_equal(r.outs[1].stage, CALLOUT_STAGE_RCPT);
	assert_true(r.outs[1].next_host);
	assert_true(r.outs[1].cut);
	assert_true(r.outs[1].refused_last);
	assert_int_equal(r.why.code, 421);

	/* at MAIL: every address gets it */
	static const step at_mail[] = {
	    GREETING,
	    EHLO_PLAIN,
	    {"MAIL", "421 4.3.2 Service shutting down\r\n", true},
	    END,
	};
	run_init(&r, at_mail);
	run_go(&r, true);
	assert_true(r.gone);
	assert_int_equal(r.outs[0].verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_TEMP_REJECT);
	assert_int_equal(r.outs[0].stage, CALLOUT_STAGE_MAIL);
	assert_int_equal(r.outs[0].code, 421);
	assert_false(r.outs[0].cut); /* no RCPT was answered */
}

static void test_split_writes(void **state)
{
	(void)state;
	static const step script[] = {
	    {NULL, "220-mx.test ESMTP\r\n220 hello\r\n", false},
	    {"EHLO", "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n", false},
	    {"MAIL", "250 2.1.0 Ok\r\n", false},
	    {"RCPT", "550-5.1.1 no such\r\n550 5.1.1 user\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	r.sv.chunk = 3; /* CR and LF land in different writes too */
	run_go(&r, true);
	assert_true(r.quit);
	assert_true(r.sv.writes > 30);
	assert_int_equal(r.outs[0].verdict, CALLOUT_INVALID);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_MAILBOX_UNKNOWN);
	assert_string_equal(r.outs[0].text, "no such user");
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<user@dest.test>|QUIT");
}

/* A reply to RCPT of one line: code, then text up to len octets. */
static char *long_reply(char *buf, const char *code, size_t len, const char *end)
{
	size_t n = strlen(code);
	memcpy(buf, code, n);
	memset(buf + n, 'x', len - n);
	strcpy(buf + len, end);
	return buf;
}

static void test_long_line(void **state)
{
	(void)state;
	char line[1200];
	run r;

	/* 1000 octets is a line (its text is truncated) */
	probe_rcpt(&r, long_reply(line, "550 5.1.1 ", 1000, "\r\n"));
	assert_int_equal(r.outs[0].verdict, CALLOUT_INVALID);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_MAILBOX_UNKNOWN);
	assert_int_equal(strlen(r.outs[0].text), CO_REPLY_TEXT_MAX);

	/* 1001 is a protocol error, not an answer */
	step script[] = {
	    GREETING,
	    EHLO_PIPELINING,
	    {"MAIL", "250 2.1.0 Ok\r\n", false},
	    {"RCPT", long_reply(line, "550 5.1.1 ", 1001, "\r\n"), false},
	    END,
	};
	run_init(&r, script);
	run_go(&r, true);
	assert_true(r.gone);
	assert_false(r.outs[0].answered);
	assert_int_equal(r.outs[0].verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_PROTOCOL_ERROR);
	assert_true(r.outs[0].next_host);

	/* and is seen without waiting for its end: no timeout */
	script[3].reply = long_reply(line, "550 5.1.1 ", 1100, "");
	run_init(&r, script);
	r.p.command_timeout_ms = 5000;
	run_go(&r, true);
	assert_true(r.gone);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_PROTOCOL_ERROR);
}

static void test_timeout(void **state)
{
	(void)state;
	static const step script[] = {
	    GREETING,
	    EHLO_PLAIN,
	    {"MAIL", NULL, false}, /* silence */
	    END,
	};
	run r;
	run_init(&r, script);
	r.p.command_timeout_ms = 100;
	run_go(&r, true);
	assert_true(r.gone);
	assert_ptr_equal(r.gone_batch, &r.b);
	assert_int_equal(r.outs[0].verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_TIMEOUT);
	assert_int_equal(r.outs[0].stage, CALLOUT_STAGE_MAIL);
	assert_true(r.outs[0].next_host);
}

static void test_out_of_turn(void **state)
{
	(void)state;
	static const step script[] = {
	    {NULL, "220 mx.test ESMTP\r\n250 unasked\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	run_go(&r, true);
	assert_true(r.gone);
	assert_int_equal(r.why.verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.why.reason, CALLOUT_R_PROTOCOL_ERROR);
	assert_int_equal(r.why.stage, CALLOUT_STAGE_BANNER);
	assert_string_equal(r.sv.log, ""); /* not even EHLO */

	/* garbage instead of a reply */
	static const step garbage[] = {
	    GREETING,
	    {"EHLO", "hello there\r\n", false},
	    END,
	};
	run_init(&r, garbage);
	run_go(&r, true);
	assert_true(r.gone);
	assert_int_equal(r.why.reason, CALLOUT_R_PROTOCOL_ERROR);
	assert_int_equal(r.why.stage, CALLOUT_STAGE_EHLO);
}

static void test_catch_all(void **state)
{
	(void)state;
	static const step script[] = {
	    GREETING,
	    EHLO_PIPELINING,
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT TO:<user@dest.test>", "250 Ok\r\n", false},
	    {"RCPT TO:<zq8x1r@dest.test>", "250 Ok\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	r.random_rcpt = "zq8x1r@dest.test";
	run_go(&r, true);
	assert_true(r.quit);
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<user@dest.test>,"
	                              "RCPT TO:<zq8x1r@dest.test>|QUIT");
	assert_int_equal(r.outs[0].verdict, CALLOUT_UNKNOWN);
	assert_int_equal(r.outs[0].reason, CALLOUT_R_CATCH_ALL);
	assert_true(r.outs[0].catch_all);

	/* the random address refused: the answer stands */
	static const step picky[] = {
	    GREETING,
	    EHLO_PIPELINING,
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT TO:<user@dest.test>", "250 Ok\r\n", false},
	    {"RCPT TO:<zq8x1r@dest.test>", "550 5.1.1 unknown\r\n", false},
	    END,
	};
	run_init(&r, picky);
	r.random_rcpt = "zq8x1r@dest.test";
	run_go(&r, true);
	assert_int_equal(r.outs[0].verdict, CALLOUT_VALID);
	assert_false(r.outs[0].catch_all);
	assert_true(r.outs[0].random_rejected);
}

static void test_second_batch(void **state)
{
	(void)state;
	static const step script[] = {
	    GREETING,
	    EHLO_PIPELINING,
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT", "250 Ok\r\n", false},
	    {"RSET", "250 Ok\r\n", false},
	    {"MAIL", "250 Ok\r\n", false},
	    {"RCPT", "550 5.1.1 gone\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	r.batches = 2;
	run_go(&r, true);
	/* the next transaction on the same connection starts with RSET */
	assert_true(r.quit);
	assert_int_equal(r.idles, 3);
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<user@dest.test>|"
	                              "RSET,MAIL FROM:<>,RCPT TO:<user@dest.test>|QUIT");
	assert_int_equal(r.first[0].verdict, CALLOUT_VALID);
	assert_int_equal(r.outs[0].verdict, CALLOUT_INVALID);
}

static void test_null_sender_fallback(void **state)
{
	(void)state;
	static const step script[] = {
	    GREETING,
	    EHLO_PIPELINING,
	    {"MAIL FROM:<>", "550 5.7.1 null sender not accepted\r\n", false},
	    {"RCPT", "503 5.5.1 need MAIL first\r\n", false},
	    {"RSET", "250 Ok\r\n", false},
	    {"MAIL FROM:<probe@us.test>", "250 Ok\r\n", false},
	    {"RCPT", "250 Ok\r\n", false},
	    END,
	};
	run r;
	run_init(&r, script);
	r.p.fallback_from = "probe@us.test";
	run_go(&r, true);
	assert_true(r.quit);
	assert_string_equal(r.sv.log, "EHLO helo.test|MAIL FROM:<>,RCPT TO:<user@dest.test>|"
	                              "RSET,MAIL FROM:<probe@us.test>,RCPT TO:<user@dest.test>|"
	                              "QUIT");
	assert_int_equal(r.outs[0].verdict, CALLOUT_VALID);
	assert_true(r.outs[0].fallback_used);
}

static void test_connect_refused(void **state)
{
	(void)state;
	run r;
	run_init(&r, accepting);
	run_go(&r, false); /* nobody listens on the name */
	assert_true(r.gone);
	assert_null(r.gone_batch);
	assert_int_equal(r.idles, 0);
	assert_int_equal(r.why.verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.why.reason, CALLOUT_R_CONNECT_FAILED);
	assert_int_equal(r.why.stage, CALLOUT_STAGE_CONNECT);
	assert_true(r.why.next_host);
}

static void test_connect_timeout(void **state)
{
	(void)state;
	/* a TCP listener whose accept queue is full: the kernel drops our
	 * SYN and the connect hangs, as to a host that never answers */
	struct sockaddr_in sin;
	int lfd = loopback_socket(SOCK_STREAM, &sin), fill[2];
	assert_true(lfd >= 0);
	assert_int_equal(listen(lfd, 0), 0);
	for (int i = 0; i < 2; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(fill[i] >= 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}

	run r;
	run_init(&r, accepting);
	r.p.addr = (struct sockaddr *)&sin;
	r.p.addrlen = sizeof(sin);
	r.p.connect_timeout_ms = 150;
	run_go(&r, false);
	assert_true(r.gone);
	assert_null(r.gone_batch);
	assert_int_equal(r.why.verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(r.why.reason, CALLOUT_R_TIMEOUT);
	assert_int_equal(r.why.stage, CALLOUT_STAGE_CONNECT);
	assert_string_equal(r.why.text, "connect timed out");
	assert_true(r.why.next_host);
	for (int i = 0; i < 2; i++)
		close(fill[i]);
	close(lfd);
}

int main(void)
{
	/* a write to a server that hung up must be an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted),
	    cmocka_unit_test(test_unknown),
	    cmocka_unit_test(test_greylisted),
	    cmocka_unit_test(test_multiline),
	    cmocka_unit_test(test_pipelining),
	    cmocka_unit_test(test_ehlo_refused),
	    cmocka_unit_test(test_banner_refused),
	    cmocka_unit_test(test_closed_after_banner),
	    cmocka_unit_test(test_closed_mid_transaction),
	    cmocka_unit_test(test_421),
	    cmocka_unit_test(test_split_writes),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_out_of_turn),
	    cmocka_unit_test(test_catch_all),
	    cmocka_unit_test(test_second_batch),
	    cmocka_unit_test(test_null_sender_fallback),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_connect_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
