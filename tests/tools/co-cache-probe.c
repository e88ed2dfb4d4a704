/*
 * co-cache-probe: drive a cache backend (src/lib/cache.h) for the tests.
 *
 *   co-cache-probe [--admin] [--strict] [--deadline MS] SPEC [COMMAND]...
 *
 * SPEC is what co_cache_open takes (redis://127.0.0.1:10379/0?prefix=t:).
 * Each COMMAND is one argument with its words separated by spaces (keys
 * may hold tabs); without any, commands are read from stdin, one a line,
 * so a test can act between them.  The loop runs while a command waits.
 *
 *   put KEY VERDICT TTL             a record for KEY (kind and names from the key)
 *   forget KEY                      delete KEY as a write
 *   get KEY...                      one line per key
 *   get-cancel KEY                  a get cancelled at once; its callback must not come
 *   claim KEY HOLD_MS WAIT_MS
 *   claim-cancel KEY HOLD_MS WAIT_MS AFTER_MS
 *   release KEY
 *   sleep MS                        run the loop
 *   await-ok MS                     run the loop until no fault is pending
 *   scan PREFIX | del KEY... | info
 *
 * One JSON object per result on stdout, e.g.
 *   {"op": "get", "key": "a:t.test:bob", "rc": 0, "found": true, "ms": 1,
 *    "record": {"kind": "address", "verdict": "valid", ...}}
 * Faults the cache reports go to stderr as "fault: MESSAGE", recoveries as
 * "recovered: MESSAGE".  --admin opens without a loop (everything
 * synchronous), --strict fails when the store cannot be opened.  Exit
 * status 0; 1 when the cache cannot be opened; 2 on usage errors; 3 when
 * the cache misbehaves (a callback after cancel, or twice); 4 when a
 * callback does not come within the deadline.
 */
#include "cache.h"
#include "cache_open.h"

#include <callout/callout.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORDS 16

struct job {
	bool done, cancelled;
	int calls;
	co_claim_result res;
	co_rec rec, out[1];
	bool found[1], have_rec;
};

static struct event_base *base;
static co_cache *cache;
static unsigned long deadline_ms = 20000;
static int exit_status;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void emit(json_t *o)
{
	char *line = json_dumps(o, JSON_COMPACT);

	if (line) {
		puts(line);
		free(line);
	}
	fflush(stdout);
	json_decref(o);
}

static void on_log(void *arg, const char *msg)
{
	/* co_cache_ok clears the flag before it speaks */
	fprintf(stderr, "%s: %s\n", cache && !cache->faulty ? "recovered" : "fault", msg);
	fflush(stderr);
}

static json_t *rec_json(const co_rec *r)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "kind",
	                 co_rec_kind_name(r->kind), "verdict",
	                 callout_verdict_name((callout_verdict)r->verdict), "domain", r->domain,
	                 "address", r->address, "sender", r->sender, "text", r->text, "ip", r->ip,
	                 "probed", (json_int_t)r->probed, "expires", (json_int_t)r->expires);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Run the loop until *flag (or *flag == want for await-ok) or ms pass. */
static bool run_until(const bool *flag, bool want, unsigned long ms)
{
	bool timed_out = false;
	struct event *t = evtimer_new(base, on_timer, &timed_out);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	if (!t)
		return false;
	evtimer_add(t, &tv);
	while (!(flag && *flag == want) && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return flag && *flag == want;
}

static void on_get(void *arg)
{
	struct job *j = arg;

	if (j->cancelled || j->done) {
		fprintf(stderr, "co-cache-probe: %s get callback\n",
		        j->cancelled ? "cancelled" : "second");
		exit_status = 3;
	}
	j->done = true;
	j->calls++;
}

static void on_claim(void *arg, co_claim_result res, const co_rec *rec)
{
	struct job *j = arg;

	if (j->cancelled || j->done) {
		fprintf(stderr, "co-cache-probe: %s claim callback\n",
		        j->cancelled ? "cancelled" : "second");
		exit_status = 3;
	}
	j->done = true;
	j->calls++;
	j->res = res;
	if ((j->have_rec = rec != NULL))
		j->rec = *rec;
}

/* A record for KEY as record.h lays keys out: "a:DOMAIN:MAILBOX[\tSENDER]", "c:DOMAIN"... */
static int make_rec(const char *key, const char *verdict, unsigned long ttl, co_rec *r)
{
	static const char tags[] = "?acnxbu";
	const char *tag = key[0] ? strchr(tags + 1, key[0]) : NULL;
	const char *dom = key + 2, *end;
	int v;

	memset(r, 0, sizeof(*r));
	if (!tag || key[1] != ':')
		return -1;
	r->kind = (co_rec_kind)(tag - tags);
	for (v = 0; v <= CALLOUT_TEMPFAIL; v++)
		if (strcmp(callout_verdict_name((callout_verdict)v), verdict) == 0)
			break;
	if (v > CALLOUT_TEMPFAIL)
		return -1;
	r->verdict = (uint8_t)v;
	end = r->kind == CO_REC_ADDRESS ? strchr(dom, ':') : dom + strlen(dom);
	if (!end || (size_t)(end - dom) >= sizeof(r->domain))
		return -1;
	memcpy(r->domain, dom, (size_t)(end - dom));
	if (r->kind == CO_REC_ADDRESS) {
		const char *tab = strchr(end + 1, '\t');
		size_t n = tab ? (size_t)(tab - end - 1) : strlen(end + 1);
		if (n >= sizeof(r->address) || (tab && strlen(tab + 1) >= sizeof(r->sender)))
			return -1;
		memcpy(r->address, end + 1, n);
		if (tab)
			strcpy(r->sender, tab + 1);
	}
	strcpy(r->text, "co-cache-probe");
	r->probed = (int64_t)time(NULL);
	r->expires = r->probed + (int64_t)ttl;
	return 0;
}

static void cmd_get(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct job j = {0};
		co_cache_req *req = NULL;
		const char *key = keys[i];
		double t0 = now_ms();
		int rc = cache->ops->get(cache, &key, 1, j.out, j.found, on_get, &j, &req);
		bool timeout = false;

		if (rc == 0) {
			timeout = !run_until(&j.done, true, deadline_ms);
			if (timeout) {
				cache->ops->cancel(cache, req);
				j.cancelled = true;
				exit_status = 4;
			}
		}
		json_t *o = json_pack("{s:s, s:s%, s:i, s:b, s:b, s:I}", "op", "get", "key", key,
		                      strlen(key), "rc", rc, "found", !timeout && j.found[0],
		                      "timeout", timeout, "ms", (json_int_t)(now_ms() - t0));
		if (!timeout && j.found[0])
			json_object_set_new(o, "record", rec_json(&j.out[0]));
		emit(o);
	}
}

static void cmd_get_cancel(const char *key)
{
	struct job j = {0};
	co_cache_req *req = NULL;
	int rc = cache->ops->get(cache, &key, 1, j.out, j.found, on_get, &j, &req);

	if (rc == 0) {
		cache->ops->cancel(cache, req);
		j.cancelled = true;
		run_until(NULL, true, 300); /* long enough for the reply to come */
	}
	emit(json_pack("{s:s, s:s, s:i, s:i}", "op", "get-cancel", "key", key, "rc", rc, "calls",
	               j.calls));
}

static void cmd_claim(const char *key, unsigned long hold, unsigned long wait, long cancel_after)
{
	struct job j = {0};
	co_cache_req *req = NULL;
	double t0 = now_ms();
	const char *result;

	if (!cache->ops->claim) {
		emit(json_pack("{s:s, s:s, s:s}", "op", "claim", "key", key, "result",
		               "unsupported"));
		return;
	}
	int rc = cache->ops->claim(cache, key, (unsigned)hold, (unsigned)wait, on_claim, &j, &req);
	if (rc == 0 && cancel_after >= 0) {
		run_until(&j.done, true, (unsigned long)cancel_after);
		if (!j.done) {
			cache->ops->cancel(cache, req);
			j.cancelled = true;
			run_until(NULL, true, wait + 300);
		}
	} else if (rc == 0 && !run_until(&j.done, true, deadline_ms)) {
		cache->ops->cancel(cache, req);
		j.cancelled = true;
		exit_status = 4;
	}
	if (rc == 1)
		result = "granted";
	else if (rc < 0)
		result = "failed";
	else if (j.cancelled)
		result = "cancelled";
	else
		result = j.res == CO_CLAIM_ANSWERED ? "answered" : "granted";
	json_t *o =
	    json_pack("{s:s, s:s, s:i, s:s, s:i, s:I}", "op", "claim", "key", key, "rc", rc,
	              "result", result, "calls", j.calls, "ms", (json_int_t)(now_ms() - t0));
	if (j.have_rec)
		json_object_set_new(o, "record", rec_json(&j.rec));
	emit(o);
}

static int on_scan(void *arg, const char *key, size_t keylen, const co_rec *rec)
{
	json_array_append_new(
	    arg,
	    json_pack("{s:s%, s:b, s:s}", "key", key, keylen, "damaged", rec == NULL, "verdict",
	              rec ? callout_verdict_name((callout_verdict)rec->verdict) : ""));
	return 0;
}

static unsigned long num(const char *s, bool *bad)
{
	char *end;
	unsigned long v = s ? strtoul(s, &end, 10) : 0;

	if (!s || !*s || *end)
		*bad = true;
	return v;
}

/* One command; -1 on a usage error. */
static int run_command(char *line)
{
	char *w[MAX_WORDS];
	size_t n = 0;
	bool bad = false;

	for (char *save = NULL, *t = strtok_r(line, " \r\n", &save); t && n < MAX_WORDS;
	     t = strtok_r(NULL, " \r\n", &save))
		w[n++] = t;
	if (n == 0)
		return 0;
	for (size_t i = n; i < MAX_WORDS; i++)
		w[i] = NULL;

	if (strcmp(w[0], "put") == 0 && n == 4) {
		co_rec rec;
		unsigned long ttl = num(w[3], &bad);
		if (bad || make_rec(w[1], w[2], ttl, &rec) != 0)
			return -1;
		int rc = cache->ops->put(cache, w[1], &rec, (unsigned)ttl);
		run_until(NULL, true, 20); /* let it go out, as a running loop would */
		emit(json_pack("{s:s, s:s, s:i}", "op", "put", "key", w[1], "rc", rc));
	} else if (strcmp(w[0], "forget") == 0 && n == 2) {
		int rc = cache->ops->forget(cache, w[1]);
		run_until(NULL, true, 20);
		emit(json_pack("{s:s, s:s, s:i}", "op", "forget", "key", w[1], "rc", rc));
	} else if (strcmp(w[0], "get") == 0 && n >= 2) {
		cmd_get(w + 1, n - 1);
	} else if (strcmp(w[0], "get-cancel") == 0 && n == 2) {
		cmd_get_cancel(w[1]);
	} else if (strcmp(w[0], "claim") == 0 && n == 4) {
		unsigned long hold = num(w[2], &bad), wait = num(w[3], &bad);
		if (bad)
			return -1;
		cmd_claim(w[1], hold, wait, -1);
	} else if (strcmp(w[0], "claim-cancel") == 0 && n == 5) {
		unsigned long hold = num(w[2], &bad), wait = num(w[3], &bad),
		              after = num(w[4], &bad);
		if (bad)
			return -1;
		cmd_claim(w[1], hold, wait, (long)after);
	} else if (strcmp(w[0], "release") == 0 && n == 2) {
		if (cache->ops->release)
			cache->ops->release(cache, w[1]);
		run_until(NULL, true, 20);
		emit(json_pack("{s:s, s:s}", "op", "release", "key", w[1]));
	} else if (strcmp(w[0], "sleep") == 0 && n == 2) {
		unsigned long ms = num(w[1], &bad);
		if (bad)
			return -1;
		run_until(NULL, true, ms);
		emit(json_pack("{s:s, s:I}", "op", "sleep", "ms", (json_int_t)ms));
	} else if (strcmp(w[0], "await-ok") == 0 && n == 2) {
		unsigned long ms = num(w[1], &bad);
		double t0 = now_ms();
		if (bad)
			return -1;
		bool ok = !cache->faulty || run_until(&cache->faulty, false, ms);
		emit(json_pack("{s:s, s:b, s:I}", "op", "await-ok", "ok", ok, "ms",
		               (json_int_t)(now_ms() - t0)));
	} else if (strcmp(w[0], "scan") == 0 && n <= 2) {
		json_t *recs = json_array();
		int rc = cache->ops->scan(cache, n == 2 ? w[1] : "", on_scan, recs);
		emit(json_pack("{s:s, s:i, s:o}", "op", "scan", "rc", rc, "records", recs));
	} else if (strcmp(w[0], "del") == 0 && n >= 2) {
		unsigned long deleted = 0;
		int rc = cache->ops->del(cache, (const char *const *)(w + 1), n - 1, &deleted);
		emit(json_pack("{s:s, s:i, s:I}", "op", "del", "rc", rc, "deleted",
		               (json_int_t)deleted));
	} else if (strcmp(w[0], "info") == 0 && n == 1) {
		co_cache_info info = {0};
		int rc = cache->ops->info(cache, &info);
		emit(json_pack("{s:s, s:i, s:s, s:I, s:I}", "op", "info", "rc", rc, "backend",
		               info.backend ? info.backend : "", "bytes_used",
		               (json_int_t)info.bytes_used, "bytes_limit",
		               (json_int_t)info.bytes_limit));
	} else {
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: co-cache-probe [--admin] [--strict] [--deadline MS] SPEC "
	                "[COMMAND]...\n(commands: see the top of co-cache-probe.c)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"admin", no_argument, NULL, 'a'},
	    {"strict", no_argument, NULL, 's'},
	    {"deadline", required_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0},
	};
	co_cache_conf conf = {.log = on_log};
	bool admin = false, bad = false;
	char err[256], line[4096];
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			admin = true;
			break;
		case 's':
			conf.strict = true;
			break;
		case 'd':
			deadline_ms = num(optarg, &bad);
			break;
		default:
			usage();
		}
	}
	if (bad || optind >= argc)
		usage();
	/* as the programs do: a server that went away gives EPIPE, not death */
	signal(SIGPIPE, SIG_IGN);

	base = event_base_new();
	if (!base) {
		fprintf(stderr, "co-cache-probe: event_base_new failed\n");
		return 1;
	}
	conf.base = admin ? NULL : base;
	if (co_cache_open(argv[optind], &conf, &cache, err, sizeof(err)) != 0 || !cache) {
		fprintf(stderr, "co-cache-probe: %s\n", cache ? err : err[0] ? err : "no cache");
		event_base_free(base);
		return 1;
	}
	if (optind + 1 < argc) {
		for (int i = optind + 1; i < argc; i++) {
			snprintf(line, sizeof(line), "%s", argv[i]);
			if (run_command(line) != 0) {
				fprintf(stderr, "co-cache-probe: bad command: %s\n", argv[i]);
				exit_status = 2;
				break;
			}
		}
	} else {
		while (fgets(line, sizeof(line), stdin)) {
			if (run_command(line) != 0) {
				fprintf(stderr, "co-cache-probe: bad command: %s", line);
				emit(json_pack("{s:s}", "op", "error"));
			}
		}
	}

	co_cache_free(cache);
	cache = NULL;
	event_base_free(base);
	libevent_global_shutdown();
	return exit_status;
}
