/* Proxy pools (src/lib/proxy_pool.c): which proxy a connection takes, the
 * cap per proxy, down after failures in a row and up again, the names a
 * pool may have and the domains' choices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proxy_pool.h"

static char said[1024];

static void log_to(void *arg, const char *msg)
{
	(void)arg;
	snprintf(said, sizeof(said), "%s", msg);
}

static co_proxy_group *three(co_proxies *px, unsigned cap)
{
	co_proxy_group *g = NULL;
	assert_int_equal(co_proxies_add(px, "p",
	                                "socks5://127.0.0.1:1081, socks5://127.0.0.2:1082,"
	                                "socks5://u:pw@127.0.0.3:1083",
	                                cap, &g),
	                 CALLOUT_OK);
	assert_non_null(g);
	assert_int_equal(g->n, 3);
	return g;
}

static void test_least_busy_then_full(void **state)
{
	struct event_base *base = event_base_new();
	co_proxies *px = co_proxies_new(base, 2, 1000, 1000, log_to, NULL);
	co_proxy_group *g = three(px, 2);
	co_proxy_member *m, *seen[3] = {0};
	char why[200];

	(void)state;
	/* equals take turns: three connections, three proxies */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_PICKED);
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(m, seen[j]);
		seen[i] = m;
		co_proxy_hold(m);
	}
	/* the least busy first */
	co_proxy_release(seen[1]);
	assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_PICKED);
	assert_ptr_equal(m, seen[1]);
	co_proxy_hold(m);
	for (int i = 0; i < 3; i++)
		if (seen[i]->sessions < 2)
			co_proxy_hold(seen[i]);
	/* every proxy at its cap: wait */
	assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_FULL);
	assert_non_null(strstr(why, "2 connections through each proxy of pool p"));
	co_proxy_release(seen[2]);
	assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_PICKED);
	assert_ptr_equal(m, seen[2]);
	co_proxies_free(px);
	event_base_free(base);
}

static void test_down_and_up(void **state)
{
	struct event_base *base = event_base_new();
	co_proxies *px = co_proxies_new(base, 2, 1000, 1000, log_to, NULL);
	co_proxy_group *g = three(px, 0);
	co_proxy_member *m;
	char why[300];

	(void)state;
	assert_int_equal(g->cap, 100); /* 0: the default */
	/* one failure is not enough; a success clears the count */
	co_proxy_report(&g->members[0], true, "connection refused");
	co_proxy_report(&g->members[0], false, NULL);
	co_proxy_report(&g->members[0], true, "connection refused");
	assert_false(g->members[0].down);
	co_proxy_report(&g->members[0], true, "connection refused");
	assert_true(g->members[0].down);
	assert_non_null(strstr(said, "proxy 127.0.0.1:1081 (pool p) is down"));
	assert_non_null(strstr(said, "connection refused"));
	for (int i = 0; i < 6; i++) {
		assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_PICKED);
		assert_ptr_not_equal(m, &g->members[0]);
	}
	for (int i = 1; i < 3; i++) {
		co_proxy_report(&g->members[i], true, "the proxy refused the username or password");
		co_proxy_report(&g->members[i], true, "the proxy refused the username or password");
	}
	assert_true(co_proxy_group_down(g, why, sizeof(why)));
	assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_DOWN);
	assert_non_null(strstr(why, "every proxy of pool p is down"));
	assert_null(strstr(why, "pw")); /* labels carry no password */
	/* a connection that got through: up again, and said so */
	co_proxy_report(&g->members[2], false, NULL);
	assert_false(g->members[2].down);
	assert_non_null(strstr(said, "is up again"));
	assert_int_equal(co_proxy_pick(g, &m, why, sizeof(why)), CO_PROXY_PICKED);
	assert_ptr_equal(m, &g->members[2]);

	callout_proxy_health h[2];
	assert_int_equal(co_proxies_health(px, h, 2), 3);
	assert_string_equal(h[0].pool, "p");
	assert_string_equal(h[0].proxy, "127.0.0.1:1081");
	assert_false(h[0].up);
	assert_int_equal(h[0].failures, 3);
	assert_string_equal(h[0].error, "connection refused");
	co_proxies_free(px);
	event_base_free(base);
}

static void test_names_and_domains(void **state)
{
	struct event_base *base = event_base_new();
	co_proxies *px = co_proxies_new(base, 1, 1000, 1000, NULL, NULL);
	co_proxy_group *g = three(px, 5), *got = NULL;

	(void)state;
	assert_int_equal(co_proxies_add(px, "p", "socks5://127.0.0.1:1", 0, NULL), CALLOUT_EINVAL);
	assert_int_equal(co_proxies_add(px, "direct", "socks5://127.0.0.1:1", 0, NULL),
	                 CALLOUT_EINVAL);
	assert_int_equal(co_proxies_add(px, "", "socks5://127.0.0.1:1", 0, NULL), CALLOUT_EINVAL);
	assert_int_equal(co_proxies_add(px, "q", "", 0, NULL), CALLOUT_EINVAL);
	assert_int_equal(co_proxies_add(px, "q", "socks5://127.0.0.1:1,ftp://x", 0, NULL),
	                 CALLOUT_EINVAL);
	assert_int_equal(co_proxies_add(px, "q", "socks5://no-such-host.invalid:1", 0, NULL),
	                 CALLOUT_EINVAL);
	assert_null(co_proxies_find(px, "q"));
	assert_ptr_equal(co_proxies_find(px, "p"), g);

	assert_false(co_proxies_domain(px, "a.test", &got));
	assert_int_equal(co_proxies_set_domain(px, "a.test", g), CALLOUT_OK);
	assert_true(co_proxies_domain(px, "A.Test", &got));
	assert_ptr_equal(got, g);
	assert_int_equal(co_proxies_set_domain(px, "a.test", NULL), CALLOUT_OK);
	assert_true(co_proxies_domain(px, "a.test", &got));
	assert_null(got); /* direct */
	co_proxies_free(px);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_least_busy_then_full),
	    cmocka_unit_test(test_down_and_up),
	    cmocka_unit_test(test_names_and_domains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
