/* Greylisting re-checks (src/lib/recheck.c) through the public API,
 * against a small SMTP server on the same loop (loopback TCP) that
 * greylists the first RCPTs it is asked: callout_ctx_run() does not wait
 * for a pending re-check, re-checks coalesce per address, the cap holds,
 * CALLOUT_F_RECHECK_WAIT gets the re-check's answer (or the last
 * tempfail), and callout_ctx_free() or a cancel leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <callout/callout.h>

#include "loopback.h"

#define SESSIONS_MAX 16

typedef struct server {
	struct event_base *base;
	int lfd;
	struct event *accept_ev;
	struct bufferevent *bevs[SESSIONS_MAX];
	bool quit[SESSIONS_MAX]; /* hang up once the reply to QUIT is out */
	unsigned sessions;
	unsigned greylist; /* RCPTs still answered 450 */
	unsigned rcpts;
} server;

static void srv_read(struct bufferevent *bev, void *arg)
{
	server *sv = arg;
	char *line;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), NULL, EVBUFFER_EOL_CRLF))) {
		const char *reply = "250 2.0.0 Ok\r\n";

		if (strncmp(line, "RCPT", 4) == 0) {
			sv->rcpts++;
			if (sv->greylist) {
				sv->greylist--;
				reply = "450 4.2.0 Recipient address rejected: Greylisted, see "
				        "http://postgrey.schweikert.ch/help/test.html\r\n";
			}
		} else if (strncmp(line, "QUIT", 4) == 0) {
			reply = "221 2.0.0 Bye\r\n";
			for (unsigned i = 0; i < sv->sessions; i++)
				sv->quit[i] |= sv->bevs[i] == bev;
		}
		bufferevent_write(bev, reply, strlen(reply));
		free(line);
	}
}

static void srv_written(struct bufferevent *bev, void *arg)
{
	server *sv = arg;

	for (unsigned i = 0; i < sv->sessions; i++)
		if (sv->bevs[i] == bev && sv->quit[i])
			shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	(void)arg;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
}

static void srv_accept(evutil_socket_t lfd, short what, void *arg)
{
	server *sv = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)what;
	if (fd < 0)
		return;
	if (sv->sessions == SESSIONS_MAX) {
		close(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(sv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	sv->bevs[sv->sessions++] = bev;
	bufferevent_setcb(bev, srv_read, srv_written, srv_event, sv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bufferevent_write(bev, "220 mx.test ESMTP\r\n", 19);
}

typedef struct fixture {
	struct event_base *base;
	server sv;
	unsigned port;
	callout_options o;
	char addr[2][64];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin;

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->sv.base = f->base;
	f->sv.lfd = loopback_socket(SOCK_STREAM, &sin);
	assert_true(f->sv.lfd >= 0);
	assert_int_equal(listen(f->sv.lfd, 16), 0);
	f->sv.accept_ev = event_new(f->base, f->sv.lfd, EV_READ | EV_PERSIST, srv_accept, &f->sv);
	event_add(f->sv.accept_ev, NULL);
	f->port = ntohs(sin.sin_port);
	callout_options_init(&f->o);
	f->o.port = f->port;
	f->o.helo = "verifier.test";
	f->o.dns_servers = "127.0.0.1:1";
	f->o.flags = CALLOUT_F_ALLOW_PRIVATE;
	f->o.session_idle_ms = 0; /* a re-check is a new session, as in life */
	f->o.cache = "memory";
	snprintf(f->addr[0], sizeof(f->addr[0]), "alice@[127.0.0.1]");
	snprintf(f->addr[1], sizeof(f->addr[1]), "bob@[127.0.0.1]");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	struct timeval settle = {0, 300000};

	/* the callouts' closing connections end on the loop (their QUIT) */
	event_base_loopexit(f->base, &settle);
	event_base_dispatch(f->base);
	for (unsigned i = 0; i < f->sv.sessions; i++)
		bufferevent_free(f->sv.bevs[i]);
	event_free(f->sv.accept_ev);
	close(f->sv.lfd);
	event_base_free(f->base);
	free(f);
	return 0;
}

typedef struct answer {
	unsigned calls;
	callout_result *res[2];
	callout_query *q;
	bool cancel; /* cancel it in its first callback */
} answer;

static void on_answer(void *arg, callout_status st, const callout_result *res)
{
	answer *a = arg;

	assert_int_equal(st, CALLOUT_OK);
	assert_true(a->calls < 2);
	a->res[a->calls++] = callout_result_dup(res);
	if (a->cancel)
		callout_cancel(a->q);
}

static void answer_free(answer *a)
{
	callout_result_free(a->res[0]);
	callout_result_free(a->res[1]);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static callout_stats stats(callout_ctx *ctx)
{
	callout_stats st;

	assert_int_equal(callout_ctx_stats(ctx, &st, sizeof(st)), CALLOUT_OK);
	return st;
}

/* A pending re-check holds a timer but not callout_ctx_run(); asking again
 * joins it; callout_ctx_free() cancels it. */
static void test_run_does_not_wait_and_rechecks_coalesce(void **state)
{
	fixture *f = *state;
	callout_ctx *ctx;
	answer a = {0}, b = {0};
	double t0 = now_s();

	f->sv.greylist = 100;
	f->o.greylist_recheck[0] = 3600;
	f->o.greylist_recheck[1] = 7200;
	assert_int_equal(callout_ctx_new(f->base, &f->o, &ctx), CALLOUT_OK);
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &a, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res[0]->verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(a.res[0]->reason, CALLOUT_R_GREYLISTED);
	assert_in_range(a.res[0]->recheck_in, 3599, 3600);
	assert_true(now_s() - t0 < 10);
	assert_int_equal(stats(ctx).rechecks_pending, 1);

	/* not cached (tempfail_ttl 0): probed again, greylisted again, the
	 * same re-check */
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &b, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.res[0]->reason, CALLOUT_R_GREYLISTED);
	assert_in_range(b.res[0]->recheck_in, 3590, 3600);
	callout_stats st = stats(ctx);
	assert_int_equal(st.rechecks_pending, 1);
	assert_int_equal(st.rechecks_scheduled, 1);
	assert_int_equal(f->sv.rcpts, 2);
	callout_ctx_free(ctx);
	answer_free(&a);
	answer_free(&b);
}

/* greylist_recheck_max: beyond it a greylisted answer gets no re-check. */
static void test_the_cap(void **state)
{
	fixture *f = *state;
	callout_ctx *ctx;
	answer a = {0}, b = {0};

	f->sv.greylist = 100;
	f->o.greylist_recheck[0] = 60;
	f->o.greylist_recheck_max = 1;
	assert_int_equal(callout_ctx_new(f->base, &f->o, &ctx), CALLOUT_OK);
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &a, NULL), CALLOUT_OK);
	assert_int_equal(callout_verify(ctx, f->addr[1], NULL, on_answer, &b, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(a.res[0]->reason, CALLOUT_R_GREYLISTED);
	assert_int_equal(b.res[0]->reason, CALLOUT_R_GREYLISTED);
	assert_int_equal((a.res[0]->recheck_in > 0) + (b.res[0]->recheck_in > 0), 1);
	callout_stats st = stats(ctx);
	assert_int_equal(st.rechecks_pending, 1);
	assert_int_equal(st.rechecks_dropped, 1);
	callout_ctx_free(ctx);
	answer_free(&a);
	answer_free(&b);
}

/* CALLOUT_F_RECHECK_WAIT: told of the greylisting, then of the re-check's
 * answer, which the cache keeps. */
static void test_wait_gets_the_answer_and_the_cache_keeps_it(void **state)
{
	fixture *f = *state;
	callout_ctx *ctx;
	answer a = {0}, c = {0};
	double t0 = now_s();

	f->sv.greylist = 1;
	f->o.greylist_recheck[0] = 1;
	f->o.flags |= CALLOUT_F_RECHECK_WAIT;
	assert_int_equal(callout_ctx_new(f->base, &f->o, &ctx), CALLOUT_OK);
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &a, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(a.calls, 2);
	assert_int_equal(a.res[0]->reason, CALLOUT_R_GREYLISTED);
	assert_int_equal(a.res[0]->recheck_in, 1);
	assert_int_equal(a.res[1]->verdict, CALLOUT_VALID);
	assert_int_equal(a.res[1]->recheck_in, 0);
	assert_true(a.res[1]->ms >= 1000);
	assert_true(now_s() - t0 >= 1.0);
	callout_stats st = stats(ctx);
	assert_int_equal(st.rechecks_pending, 0);
	assert_int_equal(st.rechecks_done[CALLOUT_VALID], 1);

	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &c, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.res[0]->verdict, CALLOUT_VALID);
	assert_true(c.res[0]->cached);
	assert_int_equal(f->sv.rcpts, 2);
	callout_ctx_free(ctx);
	answer_free(&a);
	answer_free(&c);
}

/* Greylisted at every try: one re-check per delay, then the last
 * tempfail; nothing cached. */
static void test_gives_up_after_the_last_delay(void **state)
{
	fixture *f = *state;
	callout_ctx *ctx;
	answer a = {0}, c = {0};

	f->sv.greylist = 100;
	f->o.greylist_recheck[0] = 1;
	f->o.greylist_recheck[1] = 2;
	f->o.flags |= CALLOUT_F_RECHECK_WAIT;
	assert_int_equal(callout_ctx_new(f->base, &f->o, &ctx), CALLOUT_OK);
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &a, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(a.calls, 2);
	assert_int_equal(a.res[1]->verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(a.res[1]->reason, CALLOUT_R_GREYLISTED);
	assert_int_equal(a.res[1]->recheck_in, 0);
	assert_true(a.res[1]->ms >= 2000);
	assert_int_equal(f->sv.rcpts, 3);
	callout_stats st = stats(ctx);
	assert_int_equal(st.rechecks_done[CALLOUT_TEMPFAIL], 1);
	assert_int_equal(st.rechecks_pending, 0);

	/* not cached: asked again, a new re-check */
	f->o.flags &= ~CALLOUT_F_RECHECK_WAIT;
	assert_int_equal(callout_verify(ctx, f->addr[0], &f->o, on_answer, &c, NULL), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_false(c.res[0]->cached);
	assert_int_equal(c.res[0]->recheck_in, 1);
	assert_int_equal(stats(ctx).rechecks_scheduled, 2);
	callout_ctx_free(ctx);
	answer_free(&a);
	answer_free(&c);
}

/* A query held on a re-check can be cancelled; freeing the context with
 * the re-check pending leaks nothing (the sanitizer build says so). */
static void test_cancel_while_held(void **state)
{
	fixture *f = *state;
	callout_ctx *ctx;
	answer a = {0};

	f->sv.greylist = 100;
	f->o.greylist_recheck[0] = 3600;
	f->o.flags |= CALLOUT_F_RECHECK_WAIT;
	assert_int_equal(callout_ctx_new(f->base, &f->o, &ctx), CALLOUT_OK);
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &a, &a.q), CALLOUT_OK);
	while (a.calls == 0)
		assert_true(event_base_loop(f->base, EVLOOP_ONCE) >= 0);
	assert_int_equal(a.res[0]->recheck_in, 3600);
	callout_cancel(a.q);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK); /* nothing in flight */
	assert_int_equal(a.calls, 1);
	assert_int_equal(stats(ctx).rechecks_pending, 1);

	/* cancelled in its first callback: no second */
	answer b = {.cancel = true};
	assert_int_equal(callout_verify(ctx, f->addr[0], NULL, on_answer, &b, &b.q), CALLOUT_OK);
	assert_int_equal(callout_ctx_run(ctx), CALLOUT_OK);
	assert_int_equal(b.calls, 1);
	assert_true(b.res[0]->recheck_in > 0);
	callout_ctx_free(ctx);
	answer_free(&a);
	answer_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_run_does_not_wait_and_rechecks_coalesce, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_the_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait_gets_the_answer_and_the_cache_keeps_it, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_gives_up_after_the_last_delay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_while_held, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
