/* The option table (src/common/option_table.c): its defaults are the
 * library's, every value it prints parses back, its ranges hold at both
 * ends, and 0 is a value where the range allows it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "option_table.h"

static const co_optdef *table(size_t *n)
{
	return co_opt_table(n);
}

static void test_defaults_are_the_librarys(void **state)
{
	callout_options init, from_table;
	size_t n;
	const co_optdef *t = table(&n);

	(void)state;
	callout_options_init(&init);
	memset(&from_table, 0, sizeof(from_table));
	from_table.struct_size = sizeof(from_table);
	co_opt_defaults(&from_table, false);
	assert_memory_equal(&init, &from_table, sizeof(init));
	/* calloutd differs only where the table says why */
	co_opt_defaults(&from_table, true);
	for (size_t i = 0; i < n; i++)
		if (!co_opt_equal(&t[i], &init, &from_table))
			assert_non_null(t[i].daemon_why);
	assert_true(from_table.flags & CALLOUT_F_CATCH_ALL);
	assert_false(init.flags & CALLOUT_F_CATCH_ALL);
}

static void test_names_are_unique_and_findable(void **state)
{
	size_t n;
	const co_optdef *t = table(&n);
	char flag[64];

	(void)state;
	assert_true(n > 30 && n <= CO_OPT_MAX);
	for (size_t i = 0; i < n; i++) {
		assert_ptr_equal(co_opt_find(t[i].section, t[i].name), &t[i]);
		assert_non_null(t[i].help);
		if (t[i].where & CO_OPT_NO_CLI)
			continue;
		assert_ptr_equal(co_opt_find_flag(co_opt_flag(&t[i], flag, sizeof(flag))), &t[i]);
	}
	assert_string_equal(co_opt_flag(co_opt_find("engine", "connect_timeout"), flag, 64),
	                    "connect-timeout");
	assert_string_equal(co_opt_flag(co_opt_find("engine", "source_address"), flag, 64),
	                    "source");
	assert_null(co_opt_find("engine", "nope"));
	assert_null(co_opt_find("cache", "port"));
	assert_null(co_opt_find_flag("cache")); /* the CLI has its own --cache */
}

/* Every printed value parses back to the same value. */
static void test_format_parses_back(void **state)
{
	size_t n;
	const co_optdef *t = table(&n);
	callout_options a, b;
	char buf[64], why[160];

	(void)state;
	for (int daemon = 0; daemon < 2; daemon++) {
		callout_options_init(&a);
		co_opt_defaults(&a, daemon);
		for (size_t i = 0; i < n; i++) {
			if (t[i].type == CO_OPT_TEXT)
				continue;
			callout_options_init(&b);
			b.flags = ~a.flags; /* every flag the other way */
			co_opt_format(&t[i], &a, buf, sizeof(buf));
			if (t[i].type == CO_OPT_LIMIT && strstr(buf, "no limit"))
				strcpy(buf, "0");
			assert_null(co_opt_parse(&t[i], buf, &b, why, sizeof(why)));
			assert_true(co_opt_equal(&t[i], &a, &b));
		}
	}
}

static const char *try(const char *section, const char *name, const char *text, callout_options *o)
{
	static char why[160];
	return co_opt_parse(co_opt_find(section, name), text, o, why, sizeof(why));
}

static void test_ranges_hold_at_both_ends(void **state)
{
	size_t n;
	const co_optdef *t = table(&n);
	callout_options o;
	char text[64], why[160];

	(void)state;
	callout_options_init(&o);
	for (size_t i = 0; i < n; i++) {
		const co_optdef *d = &t[i];
		const char *suffix = d->type == CO_OPT_MS     ? "ms"
		                     : d->type == CO_OPT_SECS ? "s"
		                                              : "";

		if (d->type == CO_OPT_TEXT || d->type == CO_OPT_FLAG)
			continue;
		snprintf(text, sizeof(text), "%llu%s", d->min, suffix);
		assert_null(co_opt_parse(d, text, &o, why, sizeof(why)));
		snprintf(text, sizeof(text), "%llu%s", d->max, suffix);
		assert_null(co_opt_parse(d, text, &o, why, sizeof(why)));
		snprintf(text, sizeof(text), "%llu%s", d->max + 1, suffix);
		assert_non_null(co_opt_parse(d, text, &o, why, sizeof(why)));
		assert_non_null(strstr(why, "expected"));
		if (d->min > 0) {
			snprintf(text, sizeof(text), "%llu%s", d->min - 1, suffix);
			assert_non_null(co_opt_parse(d, text, &o, why, sizeof(why)));
		}
		/* garbage never changes the value */
		callout_options before = o;
		assert_non_null(co_opt_parse(d, "-1", &o, why, sizeof(why)));
		assert_non_null(co_opt_parse(d, " 5", &o, why, sizeof(why)));
		if (d->type != CO_OPT_SECS_LIST) /* there "" is none */
			assert_non_null(co_opt_parse(d, "", &o, why, sizeof(why)));
		assert_non_null(co_opt_parse(d, "99999999999999999999999", &o, why, sizeof(why)));
		assert_memory_equal(&before, &o, sizeof(o));
	}
}

static void test_zero_is_a_value_where_allowed(void **state)
{
	callout_options o;

	(void)state;
	callout_options_init(&o);
	assert_null(try("engine", "domain_sessions", "0", &o));
	assert_int_equal(o.domain_sessions, CALLOUT_UNLIMITED);
	assert_null(try("engine", "session_idle", "0", &o));
	assert_int_equal(o.session_idle_ms, 0);
	assert_null(try("cache", "tempfail_ttl", "0", &o));
	assert_int_equal(o.cache_tempfail_ttl, 0);
	/* and refused where it means nothing */
	assert_string_equal(try("engine", "port", "0", &o),
	                    "expected a whole number from 1 to 65535");
	assert_non_null(try("engine", "timeout", "0", &o));
	assert_non_null(try("cache", "positive_ttl", "0", &o));
	/* durations: one syntax, units, whole seconds for the TTLs */
	assert_null(try("engine", "timeout", "1.5m", &o));
	assert_int_equal(o.deadline_ms, 90000);
	assert_null(try("cache", "domain_ttl", "2d", &o));
	assert_int_equal(o.cache_domain_ttl, 2 * 86400);
	assert_non_null(try("cache", "domain_ttl", "1.5s", &o));
	/* flags, negated ones included */
	assert_null(try("engine", "pipelining", "no", &o));
	assert_true(o.flags & CALLOUT_F_NO_PIPELINING);
	assert_null(try("engine", "pipelining", "on", &o));
	assert_false(o.flags & CALLOUT_F_NO_PIPELINING);
	assert_string_equal(try("engine", "tls", "maybe", &o), "expected yes or no");
}

/* greylist_recheck: increasing whole-second durations, "" for none;
 * calloutd re-checks by default, the library and the CLI do not. */
static void test_duration_lists(void **state)
{
	const co_optdef *d = co_opt_find("engine", "greylist_recheck");
	static const char *const bad[] = {
	    "5m,",  ",5m", "5m,,15m",           "15m,5m", "5m,5m", "0",
	    "1.5s", "8d",  "1,2,3,4,5,6,7,8,9", "5 m",    "x"};
	callout_options o, before;
	char buf[160], why[160];

	(void)state;
	callout_options_init(&o);
	assert_int_equal(o.greylist_recheck[0], 0);
	assert_string_equal(co_opt_format_default(d, false, buf, sizeof(buf)), "");
	assert_string_equal(co_opt_format_default(d, true, buf, sizeof(buf)), "5m,15m");
	assert_null(try("engine", "greylist_recheck", "1s,2,90s,1h", &o));
	assert_int_equal(o.greylist_recheck[0], 1);
	assert_int_equal(o.greylist_recheck[1], 2);
	assert_int_equal(o.greylist_recheck[2], 90);
	assert_int_equal(o.greylist_recheck[3], 3600);
	assert_int_equal(o.greylist_recheck[4], 0);
	assert_string_equal(co_opt_format(d, &o, buf, sizeof(buf)), "1s,2s,90s,1h");
	assert_null(try("engine", "greylist_recheck", "1,2,3,4,5,6,7,8", &o));
	assert_int_equal(o.greylist_recheck[7], 8);
	before = o;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_non_null(co_opt_parse(d, bad[i], &o, why, sizeof(why)));
		assert_memory_equal(&before, &o, sizeof(o));
	}
	assert_null(try("engine", "greylist_recheck", "", &o));
	assert_int_equal(o.greylist_recheck[0], 0);
	assert_string_equal(co_opt_format(d, &o, buf, sizeof(buf)), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_are_the_librarys),
	    cmocka_unit_test(test_names_are_unique_and_findable),
	    cmocka_unit_test(test_format_parses_back),
	    cmocka_unit_test(test_ranges_hold_at_both_ends),
	    cmocka_unit_test(test_zero_is_a_value_where_allowed),
	    cmocka_unit_test(test_duration_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
