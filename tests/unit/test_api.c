/* The public API's contract: names, option checks, results, and the
 * blocking call on paths that need no server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <callout/callout.h>

static void test_names_unique(void **state)
{
	(void)state;
	for (int i = 0; i < CALLOUT_R_COUNT; i++) {
		const char *a = callout_reason_name((callout_reason)i);
		assert_string_not_equal(a, "?");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a, callout_reason_name((callout_reason)j));
	}
	for (int i = 0; i < CALLOUT_STAGE_COUNT; i++)
		assert_string_not_equal(callout_stage_name((callout_stage)i), "?");
	assert_string_equal(callout_verdict_name(CALLOUT_INVALID), "invalid");
	assert_string_equal(callout_reason_name(CALLOUT_R_COUNT), "?");
	assert_string_equal(callout_version(), CALLOUT_VERSION_STR);
}

static void test_syntax_error_is_a_result(void **state)
{
	callout_result *res = NULL;
	(void)state;

	assert_int_equal(callout_verify_sync("a@@b.example", NULL, &res), CALLOUT_OK);
	assert_non_null(res);
	assert_int_equal(res->verdict, CALLOUT_INVALID);
	assert_int_equal(res->reason, CALLOUT_R_SYNTAX);
	assert_int_equal(res->stage, CALLOUT_STAGE_SYNTAX);
	assert_int_equal(res->code, 0);
	assert_true(strlen(res->text) > 0);
	assert_null(res->transcript);
	callout_result_free(res);
}

static void test_control_chars_not_echoed(void **state)
{
	callout_result *res = NULL;
	(void)state;

	assert_int_equal(callout_verify_sync("a@b.example\r\nRCPT TO:<x@y>", NULL, &res),
	                 CALLOUT_OK);
	assert_int_equal(res->reason, CALLOUT_R_SYNTAX);
	assert_null(strchr(res->address, '\r'));
	assert_null(strchr(res->address, '\n'));
	callout_result_free(res);
}

static void test_bad_options_refused(void **state)
{
	callout_options o;
	callout_ctx *ctx = NULL;
	(void)state;

	callout_options_init(&o);
	o.helo = "bad name\r\nMAIL FROM:<x@y>";
	assert_int_equal(callout_ctx_new(NULL, &o, &ctx), CALLOUT_EINVAL);
	assert_null(ctx);

	callout_options_init(&o);
	o.sender = "not an address";
	assert_int_equal(callout_ctx_new(NULL, &o, &ctx), CALLOUT_EINVAL);

	callout_options_init(&o);
	o.port = 70000;
	assert_int_equal(callout_ctx_new(NULL, &o, &ctx), CALLOUT_EINVAL);

	callout_options_init(&o);
	o.source_address = "999.1.1.1";
	assert_int_equal(callout_ctx_new(NULL, &o, &ctx), CALLOUT_EINVAL);

	/* the same judgement without a context */
	const char *helos[] = {"mx.example.org", "[192.0.2.1]", "bad name", "a\r\nb"};
	for (int i = 0; i < 4; i++) {
		callout_options_init(&o);
		o.helo = helos[i];
		assert_int_equal(callout_options_check(&o), i < 2 ? CALLOUT_OK : CALLOUT_EINVAL);
	}
	callout_options_init(&o);
	o.sender = "<probe@example.org>";
	assert_int_equal(callout_options_check(&o), CALLOUT_OK);
	o.sender = "probe@";
	assert_int_equal(callout_options_check(&o), CALLOUT_EINVAL);
	callout_options_init(&o);
	o.port = 65536;
	assert_int_equal(callout_options_check(&o), CALLOUT_EINVAL);
	assert_int_equal(callout_options_check(NULL), CALLOUT_OK); /* the defaults */
}

static void test_routes_checked(void **state)
{
	callout_ctx *ctx = NULL;
	(void)state;

	assert_int_equal(callout_ctx_new(NULL, NULL, &ctx), CALLOUT_OK);
	assert_int_equal(callout_ctx_add_route(ctx, "example.com", "mx1.example.com:2525,[::1]:25"),
	                 CALLOUT_OK);
	assert_int_equal(callout_ctx_add_route(ctx, "example.com", "127.0.0.1"), CALLOUT_OK);
	assert_int_equal(callout_ctx_add_route(ctx, "example.com", "host:0"), CALLOUT_EINVAL);
	assert_int_equal(callout_ctx_add_route(ctx, "example.com", "host:99999"), CALLOUT_EINVAL);
	assert_int_equal(callout_ctx_add_route(ctx, "example.com", "[::1"), CALLOUT_EINVAL);
	assert_int_equal(callout_ctx_add_route(ctx, "example.com", ""), CALLOUT_EINVAL);
	assert_int_equal(callout_ctx_add_route(ctx, "bad domain", "host"), CALLOUT_EINVAL);
	callout_ctx_free(ctx);
}

static void test_result_dup(void **state)
{
	callout_result r = {
	    .verdict = CALLOUT_VALID,
	    .code = 250,
	    .enhanced = "2.1.5",
	    .text = "Ok",
	    .address = "a@b.example",
	    .mx = "mx.b.example",
	    .ip = "192.0.2.1",
	    .transcript = NULL,
	    .mx_hosts = "mx.b.example mx2.b.example",
	};
	(void)state;

	callout_result *c = callout_result_dup(&r);
	assert_non_null(c);
	assert_ptr_not_equal(c->text, r.text);
	assert_string_equal(c->text, "Ok");
	assert_string_equal(c->enhanced, "2.1.5");
	assert_string_equal(c->mx, "mx.b.example");
	assert_null(c->transcript);
	assert_ptr_not_equal(c->mx_hosts, r.mx_hosts);
	assert_string_equal(c->mx_hosts, "mx.b.example mx2.b.example");
	assert_int_equal(c->code, 250);
	callout_result_free(c);
}

/* A closed port on loopback: a connect failure is tempfail, never invalid. */
static void test_refused_is_tempfail(void **state)
{
	callout_options o;
	callout_result *res = NULL;
	(void)state;

	callout_options_init(&o);
	o.port = 1;
	o.helo = "verifier.test";
	o.dns_servers = "127.0.0.1:1";
	o.flags = CALLOUT_F_TRANSCRIPT | CALLOUT_F_ALLOW_PRIVATE;
	assert_int_equal(callout_verify_sync("alice@[127.0.0.1]", &o, &res), CALLOUT_OK);
	assert_int_equal(res->verdict, CALLOUT_TEMPFAIL);
	assert_int_equal(res->reason, CALLOUT_R_CONNECT_FAILED);
	assert_string_equal(res->ip, "127.0.0.1");
	assert_non_null(res->transcript);
	callout_result_free(res);
}

/* Loopback, private and our own addresses are not contacted by default:
 * no session, an unknown that says why. */
static void test_private_addresses_refused(void **state)
{
	static const char *const addrs[] = {
	    "alice@[127.0.0.1]",    "alice@[10.1.2.3]",
	    "alice@[192.168.1.1]",  "alice@[172.16.0.9]",
	    "alice@[169.254.1.1]",  "alice@[100.64.0.1]",
	    "alice@[IPv6:::1]",     "alice@[IPv6:fd00::1]",
	    "alice@[IPv6:fe80::1]", "alice@[IPv6:::ffff:10.0.0.1]",
	};
	callout_options o;
	(void)state;

	callout_options_init(&o);
	o.port = 1;
	o.helo = "verifier.test";
	o.dns_servers = "127.0.0.1:1";
	o.cache = "none";
	o.flags = CALLOUT_F_TRANSCRIPT;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		callout_result *res = NULL;
		assert_int_equal(callout_verify_sync(addrs[i], &o, &res), CALLOUT_OK);
		assert_int_equal(res->verdict, CALLOUT_UNKNOWN);
		assert_int_equal(res->reason, CALLOUT_R_PRIVATE_ADDRESS);
		assert_non_null(strstr(res->text, "not contacted"));
		assert_null(strstr(res->transcript, "-- connecting to"));
		assert_non_null(strstr(res->transcript, "-- not connecting to"));
		callout_result_free(res);
	}
	/* Multicast and 240/4 are refused even when private ones are allowed. */
	o.flags |= CALLOUT_F_ALLOW_PRIVATE;
	callout_result *res = NULL;
	assert_int_equal(callout_verify_sync("alice@[224.0.0.1]", &o, &res), CALLOUT_OK);
	assert_int_equal(res->reason, CALLOUT_R_PRIVATE_ADDRESS);
	assert_non_null(strstr(res->text, "multicast"));
	callout_result_free(res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_unique),
	    cmocka_unit_test(test_syntax_error_is_a_result),
	    cmocka_unit_test(test_control_chars_not_echoed),
	    cmocka_unit_test(test_bad_options_refused),
	    cmocka_unit_test(test_routes_checked),
	    cmocka_unit_test(test_result_dup),
	    cmocka_unit_test(test_refused_is_tempfail),
	    cmocka_unit_test(test_private_addresses_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
