/* Unit tests for the cache records (record.c), the cache policy
 * (cache_rules.c, with a clock we choose) and the memory backend. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "cache_open.h"
#include "cache_rules.h"
#include "record.h"

static const co_ttls ttls = {
    .positive = 7 * 86400,
    .refresh = 86400,
    .negative = 3 * 3600,
    .tempfail = 0,
    .domain = 7 * 86400,
    .domain_negative = 3 * 3600,
    .unreachable = 300,
};

#define T0 1700000000LL

static co_rec sample(void)
{
	co_rec r = {.kind = CO_REC_ADDRESS,
	            .verdict = CALLOUT_VALID,
	            .reason = CALLOUT_R_ACCEPTED,
	            .stage = CALLOUT_STAGE_RCPT,
	            .flags = CO_REC_F_TLS,
	            .code = 250,
	            .probed = T0,
	            .expires = T0 + 3600};
	strcpy(r.domain, "example.org");
	strcpy(r.address, "alice@example.org");
	strcpy(r.enhanced, "2.1.5");
	strcpy(r.text, "OK");
	strcpy(r.mx, "mx.example.org");
	strcpy(r.ip, "192.0.2.1");
	return r;
}

static void test_round_trip(void **state)
{
	(void)state;
	co_rec r = sample(), back;
	uint8_t buf[CO_REC_ENCODED_MAX];
	size_t n = co_rec_encode(&r, buf);

	assert_true(n > 0 && n <= sizeof(buf));
	assert_int_equal(co_rec_decode(buf, n, &back), 0);
	assert_memory_equal(&r, &back, sizeof(r));
}

/* Every single-octet change and every truncation is detected. */
static void test_damage_detected(void **state)
{
	(void)state;
	co_rec r = sample(), back;
	uint8_t buf[CO_REC_ENCODED_MAX];
	size_t n = co_rec_encode(&r, buf);

	for (size_t i = 0; i < n; i++) {
		buf[i] ^= 0x20;
		assert_int_equal(co_rec_decode(buf, n, &back), -1);
		buf[i] ^= 0x20;
	}
	for (size_t len = 0; len < n; len++)
		assert_int_equal(co_rec_decode(buf, len, &back), -1);
	/* A version we do not know is not guessed at, even with a good CRC. */
	buf[2] = CO_REC_VERSION + 1;
	assert_int_equal(co_rec_decode(buf, n, &back), -1);
}

static void test_keys(void **state)
{
	(void)state;
	char k[CO_REC_KEY_MAX];

	co_rec_key(CO_REC_ADDRESS, "example.org", "a@example.org", "", k, sizeof(k));
	assert_string_equal(k, "a:example.org:a@example.org");
	co_rec_key(CO_REC_ADDRESS, "example.org", "a@example.org", "s@x.org", k, sizeof(k));
	assert_string_equal(k, "a:example.org:a@example.org\ts@x.org");
	co_rec_key(CO_REC_CATCH_ALL, "example.org", NULL, NULL, k, sizeof(k));
	assert_string_equal(k, "c:example.org");
	assert_int_equal(co_rec_key(CO_REC_NO_MAIL, "example.org", NULL, NULL, k, 5), 0);
}

/* Lookup results as the engine would get them. */
typedef struct lk {
	co_rec recs[CO_LOOKUP_KEYS];
	bool found[CO_LOOKUP_KEYS];
} lk;

static co_decision decide(const lk *l, long long now, const char *sender, bool fallback)
{
	return co_rules_decide(&ttls, now, l->recs, l->found, "alice@example.org", sender,
	                       fallback);
}

static void put_fact(lk *l, int i, co_rec_kind kind, uint8_t flags, long long expires)
{
	memset(&l->recs[i], 0, sizeof(l->recs[i]));
	l->recs[i].kind = kind;
	l->recs[i].flags = flags;
	l->recs[i].probed = T0;
	l->recs[i].expires = expires;
	strcpy(l->recs[i].domain, "example.org");
	l->found[i] = true;
}

static void test_address_expiry_and_refresh(void **state)
{
	(void)state;
	lk l = {0};
	l.recs[0] = sample();
	l.recs[0].expires = T0 + ttls.positive;
	l.found[0] = true;

	co_decision d = decide(&l, T0 + 10, "", false);
	assert_int_equal(d.answer, 0);
	assert_false(d.refresh);
	d = decide(&l, T0 + ttls.refresh, "", false);
	assert_int_equal(d.answer, 0);
	assert_true(d.refresh);
	d = decide(&l, T0 + ttls.positive, "", false); /* expired */
	assert_int_equal(d.answer, -1);
	/* A record for another sender or address is not this one. */
	d = decide(&l, T0, "s@x.org", false);
	assert_int_equal(d.answer, -1);
	/* Invalid entries are never refreshed, just expire. */
	l.recs[0].verdict = CALLOUT_INVALID;
	d = decide(&l, T0 + ttls.refresh + 1, "", false);
	assert_int_equal(d.answer, 0);
	assert_false(d.refresh);
}

static void test_domain_facts(void **state)
{
	(void)state;
	lk l = {0};

	put_fact(&l, 1, CO_REC_CATCH_ALL, CO_REC_F_YES, T0 + 100);
	assert_int_equal(decide(&l, T0, "", false).answer, 1);
	assert_int_equal(decide(&l, T0 + 100, "", false).answer, -1); /* expired */
	put_fact(&l, 1, CO_REC_CATCH_ALL, 0, T0 + 100);
	co_decision d = decide(&l, T0, "", false);
	assert_int_equal(d.answer, -1);
	assert_true(d.skip_random);

	put_fact(&l, 2, CO_REC_NULL_SENDER, 0, T0 + 100);
	assert_int_equal(decide(&l, T0, "", false).answer, 2);
	d = decide(&l, T0, "", true);
	assert_int_equal(d.answer, -1);
	assert_true(d.fallback_first);
	/* Not about a non-null sender. */
	d = decide(&l, T0, "s@x.org", false);
	assert_int_equal(d.answer, -1);
	assert_false(d.fallback_first);

	put_fact(&l, 5, CO_REC_UNREACHABLE, 0, T0 + 100);
	assert_int_equal(decide(&l, T0, "", true).answer, 5);
	put_fact(&l, 3, CO_REC_NO_MAIL, 0, T0 + 100);
	assert_int_equal(decide(&l, T0, "", true).answer, 3);
	/* A fact filed under the wrong kind is not used. */
	l.recs[3].kind = CO_REC_BLOCKS_US;
	assert_int_equal(decide(&l, T0, "", true).answer, 5);
}

static co_probe_facts facts(callout_verdict v, callout_reason r, callout_stage st)
{
	return (co_probe_facts){.domain = "example.org",
	                        .mailbox = "alice@example.org",
	                        .sender = "",
	                        .verdict = v,
	                        .reason = r,
	                        .stage = st,
	                        .code = 250,
	                        .enhanced = "",
	                        .text = "",
	                        .mx = "mx",
	                        .ip = "192.0.2.1"};
}

static void test_records_from_probe(void **state)
{
	(void)state;
	co_rec out[CO_RULES_RECORDS_MAX];
	unsigned ttl[CO_RULES_RECORDS_MAX];

	co_probe_facts f = facts(CALLOUT_VALID, CALLOUT_R_ACCEPTED, CALLOUT_STAGE_RCPT);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_ADDRESS);
	assert_int_equal(ttl[0], ttls.positive);
	assert_int_equal(out[0].expires, T0 + ttls.positive);
	/* An acceptance clears the "blocks us" the lookup found: TTL 0, forget. */
	f.block_seen = true;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 2);
	assert_int_equal(out[1].kind, CO_REC_BLOCKS_US);
	assert_int_equal(ttl[1], 0);

	/* A failed re-probe never replaces the good entry; a clear invalid does. */
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED, CALLOUT_STAGE_RCPT);
	f.refresh = true;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);
	f = facts(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN, CALLOUT_STAGE_RCPT);
	f.refresh = true;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(ttl[0], ttls.negative);
	f.no_negative = true;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);

	/* Tempfail is not cached by default. */
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_GREYLISTED, CALLOUT_STAGE_RCPT);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);

	/* Domain facts. */
	f = facts(CALLOUT_INVALID, CALLOUT_R_NXDOMAIN, CALLOUT_STAGE_DNS);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_NO_MAIL);
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_DNS_TEMPFAIL, CALLOUT_STAGE_DNS);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);
	f = facts(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, CALLOUT_STAGE_BANNER);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_BLOCKS_US);
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_CONNECT_FAILED, CALLOUT_STAGE_CONNECT);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_UNREACHABLE);
	assert_int_equal(ttl[0], ttls.unreachable);
	/* Our proxy failed on the way: no host was judged, nothing is learned
	 * (not even with tempfail answers cached). */
	f.proxy_failed = true;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);
	co_ttls keep_tempfail = ttls;
	keep_tempfail.tempfail = 60;
	assert_int_equal(co_rules_records(&keep_tempfail, T0, &f, out, ttl), 0);
	f.proxy_failed = false;
	assert_int_equal(co_rules_records(&keep_tempfail, T0, &f, out, ttl), 1);
	/* One connection reset or answered 421: not the whole domain. */
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_CONNECTION_LOST, CALLOUT_STAGE_BANNER);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_TEMP_REJECT, CALLOUT_STAGE_BANNER);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);
	f = facts(CALLOUT_TEMPFAIL, CALLOUT_R_LOCAL_LIMIT, CALLOUT_STAGE_CONNECT);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 0);

	f = facts(CALLOUT_UNKNOWN, CALLOUT_R_CATCH_ALL, CALLOUT_STAGE_RCPT);
	f.catch_all = true;
	f.block_seen = true;
	unsigned n = co_rules_records(&ttls, T0, &f, out, ttl);
	assert_int_equal(n, 3);
	assert_int_equal(out[2].kind, CO_REC_BLOCKS_US);
	assert_int_equal(out[0].kind, CO_REC_CATCH_ALL);
	assert_true(out[0].flags & CO_REC_F_YES);

	f = facts(CALLOUT_VALID, CALLOUT_R_ACCEPTED, CALLOUT_STAGE_RCPT);
	f.fallback_used = true;
	f.fallback = "probe@us.example";
	f.random_rejected = true;
	f.text = "2.1.5 alice is welcome";
	n = co_rules_records(&ttls, T0, &f, out, ttl);
	assert_int_equal(n, 3);
	assert_int_equal(out[0].kind, CO_REC_NULL_SENDER);
	assert_string_equal(out[0].sender, "probe@us.example");
	/* The fact does not carry this address's reply as its evidence. */
	assert_null(strstr(out[0].text, "alice"));
	assert_int_equal(out[0].stage, CALLOUT_STAGE_MAIL);
	assert_int_equal(out[1].kind, CO_REC_CATCH_ALL);
	assert_false(out[1].flags & CO_REC_F_YES);
	assert_int_equal(out[2].kind, CO_REC_ADDRESS);
	assert_string_equal(out[2].sender, "");
}

/* A fact about the domain comes only from evidence about the domain or
 * the session; one recipient's reply is about that recipient. */
static void test_facts_only_from_domain_evidence(void **state)
{
	(void)state;
	co_rec out[CO_RULES_RECORDS_MAX];
	unsigned ttl[CO_RULES_RECORDS_MAX];
	callout_result res;

	/* Microsoft 365's refusal of one unknown recipient. */
	co_probe_facts f = facts(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, CALLOUT_STAGE_RCPT);
	f.code = 550;
	f.enhanced = "5.4.1";
	f.text = "Recipient address rejected: Access denied";
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_ADDRESS);
	assert_int_equal(out[0].reason, CALLOUT_R_POLICY_BLOCK);
	assert_string_equal(out[0].address, "alice@example.org");

	/* The same block of us for several recipients in one session. */
	f.session_blocked = true;
	f.text = "Client host [192.0.2.9] blocked using zen.spamhaus.org; alice@example.org";
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_BLOCKS_US);
	assert_int_equal(out[0].stage, CALLOUT_STAGE_RCPT);
	assert_null(strstr(out[0].text, "alice"));
	f.text = "Client host [192.0.2.9] blocked using zen.spamhaus.org";
	co_rules_records(&ttls, T0, &f, out, ttl);
	assert_string_equal(out[0].text, f.text);

	/* Before any recipient: the greeting, EHLO, MAIL. */
	static const callout_stage domain_stages[] = {CALLOUT_STAGE_BANNER, CALLOUT_STAGE_EHLO,
	                                              CALLOUT_STAGE_HELO, CALLOUT_STAGE_MAIL};
	for (size_t i = 0; i < sizeof(domain_stages) / sizeof(domain_stages[0]); i++) {
		f = facts(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, domain_stages[i]);
		assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
		assert_int_equal(out[0].kind, CO_REC_BLOCKS_US);
	}
	f = facts(CALLOUT_UNKNOWN, CALLOUT_R_NULL_SENDER_REJECTED, CALLOUT_STAGE_MAIL);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_NULL_SENDER);

	/* An answer from a fact says so, with when and where it was learned. */
	f = facts(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, CALLOUT_STAGE_MAIL);
	co_rules_records(&ttls, T0, &f, out, ttl);
	memset(&res, 0, sizeof(res));
	co_rules_result(&out[0], T0 + 60, &res);
	assert_true(res.from_fact);
	assert_string_equal(res.fact, "blocks_us");
	assert_int_equal(res.fact_learned, T0);
	assert_int_equal(res.stage, CALLOUT_STAGE_MAIL);
	assert_int_equal(res.age, 60);
	f = facts(CALLOUT_VALID, CALLOUT_R_ACCEPTED, CALLOUT_STAGE_RCPT);
	co_rules_records(&ttls, T0, &f, out, ttl);
	co_rules_result(&out[0], T0, &res);
	assert_false(res.from_fact);
	assert_null(res.fact);
}

/* postmaster@DOMAIN's answer: a fact apart, with its own evidence and
 * TTL, reported beside any answer and never answering for an address. */
static void test_postmaster_fact(void **state)
{
	(void)state;
	co_rec out[CO_RULES_RECORDS_MAX], back;
	unsigned ttl[CO_RULES_RECORDS_MAX];
	uint8_t buf[CO_REC_ENCODED_MAX];
	char k[CO_REC_KEY_MAX];
	lk l = {0};

	co_rec_key(CO_REC_POSTMASTER, "example.org", NULL, NULL, k, sizeof(k));
	assert_string_equal(k, "p:example.org");

	/* Refused: a negative domain fact; the address's answer stands. */
	co_probe_facts f = facts(CALLOUT_VALID, CALLOUT_R_ACCEPTED, CALLOUT_STAGE_RCPT);
	f.text = "2.1.5 alice is welcome";
	f.postmaster = CALLOUT_POSTMASTER_REFUSED;
	f.postmaster_code = 550;
	f.postmaster_enhanced = "5.1.1";
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 2);
	assert_int_equal(out[0].kind, CO_REC_POSTMASTER);
	assert_int_equal(ttl[0], ttls.domain_negative);
	assert_int_equal(out[0].verdict, CALLOUT_INVALID);
	assert_int_equal(out[0].code, 550);
	assert_string_equal(out[0].enhanced, "5.1.1");
	assert_null(strstr(out[0].text, "alice"));
	assert_int_equal(out[1].kind, CO_REC_ADDRESS);
	assert_int_equal(out[1].verdict, CALLOUT_VALID);
	assert_int_equal(out[1].code, 250);
	/* It round-trips as any record. */
	assert_int_equal(co_rec_decode(buf, co_rec_encode(&out[0], buf), &back), 0);
	assert_memory_equal(&out[0], &back, sizeof(back));

	/* Accepted: a positive one, beside whatever the address got. */
	f = facts(CALLOUT_INVALID, CALLOUT_R_MAILBOX_UNKNOWN, CALLOUT_STAGE_RCPT);
	f.postmaster = CALLOUT_POSTMASTER_ACCEPTED;
	f.postmaster_code = 250;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 2);
	assert_int_equal(out[0].kind, CO_REC_POSTMASTER);
	assert_int_equal(ttl[0], ttls.domain);
	assert_int_equal(out[0].verdict, CALLOUT_VALID);
	assert_int_equal(out[1].verdict, CALLOUT_INVALID);
	/* Also beside a session-level fact. */
	f = facts(CALLOUT_UNKNOWN, CALLOUT_R_POLICY_BLOCK, CALLOUT_STAGE_RCPT);
	f.session_blocked = true;
	f.postmaster = CALLOUT_POSTMASTER_ACCEPTED;
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 2);
	assert_int_equal(out[0].kind, CO_REC_POSTMASTER);
	assert_int_equal(out[1].kind, CO_REC_BLOCKS_US);
	/* Unknown: nothing learned. */
	f = facts(CALLOUT_VALID, CALLOUT_R_ACCEPTED, CALLOUT_STAGE_RCPT);
	assert_int_equal(co_rules_records(&ttls, T0, &f, out, ttl), 1);
	assert_int_equal(out[0].kind, CO_REC_ADDRESS);

	/* The lookup reports a live fact and answers nothing from it. */
	put_fact(&l, 6, CO_REC_POSTMASTER, 0, T0 + 100);
	l.recs[6].verdict = CALLOUT_INVALID;
	co_decision d = decide(&l, T0, "", false);
	assert_int_equal(d.answer, -1);
	assert_int_equal(d.postmaster, CALLOUT_POSTMASTER_REFUSED);
	l.recs[6].verdict = CALLOUT_VALID;
	assert_int_equal(decide(&l, T0, "", false).postmaster, CALLOUT_POSTMASTER_ACCEPTED);
	assert_int_equal(decide(&l, T0 + 100, "", false).postmaster, CALLOUT_POSTMASTER_UNKNOWN);
	/* ... also when something else answers */
	l.recs[0] = sample();
	l.found[0] = true;
	d = decide(&l, T0, "", false);
	assert_int_equal(d.answer, 0);
	assert_int_equal(d.postmaster, CALLOUT_POSTMASTER_ACCEPTED);
	/* ... and only a fact filed under its kind */
	l.recs[6].kind = CO_REC_CATCH_ALL;
	assert_int_equal(decide(&l, T0, "", false).postmaster, CALLOUT_POSTMASTER_UNKNOWN);
}

/* A record written before the postmaster kind existed reads as it did;
 * a kind newer than ours is damaged, never guessed at. */
static void test_format_compatible(void **state)
{
	(void)state;
	/* a catch_all "no" fact, as the version before wrote it */
	static const uint8_t old[] = {
	    0x43, 0x4f, 0x01, 0x02, 0x01, 0x05, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x65, 0x54, 0x1b, 0x30,
	    0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00,
	    0x00, 0x00, 0x1f, 0x61, 0x20, 0x72, 0x61, 0x6e, 0x64, 0x6f, 0x6d, 0x20, 0x6c,
	    0x6f, 0x63, 0x61, 0x6c, 0x20, 0x70, 0x61, 0x72, 0x74, 0x20, 0x77, 0x61, 0x73,
	    0x20, 0x72, 0x65, 0x66, 0x75, 0x73, 0x65, 0x64, 0x0e, 0x6d, 0x78, 0x2e, 0x65,
	    0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x09, 0x31, 0x39,
	    0x32, 0x2e, 0x30, 0x2e, 0x32, 0x2e, 0x31, 0x06, 0x2b, 0x9a, 0xd8,
	};
	co_rec r;
	uint8_t buf[CO_REC_ENCODED_MAX];

	assert_int_equal(co_rec_decode(old, sizeof(old), &r), 0);
	assert_int_equal(r.kind, CO_REC_CATCH_ALL);
	assert_int_equal(r.verdict, CALLOUT_INVALID);
	assert_string_equal(r.domain, "example.org");
	assert_string_equal(r.text, "a random local part was refused");
	assert_int_equal(r.expires, T0 + 3 * 3600);
	/* and is written back to the same bytes */
	assert_int_equal(co_rec_encode(&r, buf), sizeof(old));
	assert_memory_equal(buf, old, sizeof(old));

	r = sample();
	r.kind = CO_REC_KIND_COUNT;
	assert_int_equal(co_rec_decode(buf, co_rec_encode(&r, buf), &r), -1);
}

static int64_t fixed_now(void *arg)
{
	return *(int64_t *)arg;
}

static int scan_count(void *arg, const char *key, size_t keylen, const co_rec *rec)
{
	(void)key;
	(void)keylen;
	(void)rec;
	(*(int *)arg)++;
	return 0;
}

static void test_memory_backend(void **state)
{
	(void)state;
	int64_t now = T0;
	co_cache_conf conf = {.now = fixed_now, .now_arg = &now, .max_bytes = 64 * 1024};
	co_cache *c;
	char err[128];
	co_rec r = sample(), out[2];
	bool found[2];
	char key[CO_REC_KEY_MAX];

	assert_int_equal(co_cache_open("memory", &conf, &c, err, sizeof(err)), 0);
	co_rec_key_of(&r, key, sizeof(key));
	assert_int_equal(c->ops->put(c, key, &r, 60), 0);
	const char *keys[2] = {key, "c:example.org"};
	assert_int_equal(c->ops->get(c, keys, 2, out, found, NULL, NULL, NULL), 1);
	assert_true(found[0]);
	assert_false(found[1]);
	assert_string_equal(out[0].address, "alice@example.org");
	/* The budget evicts the oldest writes, never the newest. */
	for (int i = 0; i < 1000; i++) {
		snprintf(r.address, sizeof(r.address), "u%d@example.org", i);
		co_rec_key_of(&r, key, sizeof(key));
		assert_int_equal(c->ops->put(c, key, &r, 60), 0);
	}
	int n = 0;
	c->ops->scan(c, "a:example.org:", scan_count, &n);
	assert_true(n > 10 && n < 1000);
	assert_int_equal(c->ops->get(c, keys, 1, out, found, NULL, NULL, NULL), 1);
	assert_true(found[0]);
	unsigned long deleted = 0;
	assert_int_equal(c->ops->del(c, keys, 1, &deleted), 0);
	assert_int_equal(deleted, 1);
	/* forget deletes a key; a missing one is no error. */
	co_rec_key_of(&r, key, sizeof(key));
	assert_int_equal(c->ops->put(c, key, &r, 60), 0);
	keys[0] = key;
	assert_int_equal(c->ops->forget(c, key), 0);
	assert_int_equal(c->ops->get(c, keys, 1, out, found, NULL, NULL, NULL), 1);
	assert_false(found[0]);
	assert_int_equal(c->ops->forget(c, key), 0);
	co_cache_free(c);
}

static void test_bad_specs(void **state)
{
	(void)state;
	co_cache_conf conf = {0};
	co_cache *c;
	char err[256];
	const char *bad[] = {"",
	                     "lmdb:",
	                     "redis://",
	                     "redis://h:0",
	                     "redis://h:99999",
	                     "redis://h/x",
	                     "redis://h?foo=1",
	                     "redis://user@h",
	                     "mem",
	                     "LMDB:/x"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(co_cache_open(bad[i], &conf, &c, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(co_cache_open("none", &conf, &c, err, sizeof(err)), 0);
	assert_null(c);
}

static void test_bad_redis_credentials(void **state)
{
	(void)state;
	co_cache_conf conf = {0};
	co_cache *c;
	char err[256];
	/* each holds the password "hunter2" somewhere; no message may */
	const char *bad[] = {"redis://:hunter2%zz@h",  "redis://:hunter2%00@h",
	                     "redis://u:hunter2@",     "redis://:hunter2@h:0",
	                     "redis://:hunter2@h?x=1", "rediss://:hunter2@h",
	                     "redis://u%:hunter2@h",   "redis://:hunter2@h/x"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(co_cache_open(bad[i], &conf, &c, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_null(strstr(err, "hunter2"));
	}
	assert_int_equal(co_cache_open("rediss://h", &conf, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not supported"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_damage_detected),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_address_expiry_and_refresh),
	    cmocka_unit_test(test_domain_facts),
	    cmocka_unit_test(test_records_from_probe),
	    cmocka_unit_test(test_facts_only_from_domain_evidence),
	    cmocka_unit_test(test_postmaster_fact),
	    cmocka_unit_test(test_format_compatible),
	    cmocka_unit_test(test_memory_backend),
	    cmocka_unit_test(test_bad_specs),
	    cmocka_unit_test(test_bad_redis_credentials),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
