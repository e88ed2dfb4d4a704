/*
 * The milter front end: libmilter (Sendmail's own library, spoken by
 * Sendmail and Postfix) on cfg->milter_listen.
 *
 *   MTA -> libmilter's threads -> xxfi_* callbacks -> a job, handed to
 *   the loop with cd_daemon_call -> cd_check (decide, verify) -> answer
 *   back through the job -> SMFIS_* and smfi_setreply / smfi_addheader
 *
 * libmilter runs a thread per busy MTA connection (Debian builds it with
 * its worker pool); a callback may block, and ours do: each waits for its
 * answer on a condition variable, never longer than reply_within plus a
 * margin.  Nothing here touches the engine, the config or the metrics
 * from those threads: the loop decides, from the config of the moment,
 * whether an event needs a check (so a reload applies to the next
 * command), and copies what the threads need on their own into `settings`.
 *
 * When the sender is checked is milter_sender_at:
 *   MAIL  at MAIL FROM: a rejection refuses the transaction;
 *   RCPT  at each RCPT TO until the sender passed once: a rejection
 *         refuses that recipient (SMFIS_REJECT at envrcpt), with our
 *         reply, as Postfix's reject_unverified_sender does under
 *         smtpd_delay_reject; the next RCPT asks again (the cache answers);
 *   DATA  at DATA: a rejection refuses the message for every recipient.
 * Recipients of a [domain] with a route are checked (call forward) at
 * every RCPT TO whatever the sender's stage.  Tag mode: every X-Callout
 * header an answer carries is added at end of message.
 *
 * libmilter is a process-wide singleton (smfi_register keeps one filter;
 * its stop is final), so is the state here: see `g`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "clock.h"
#include "decide.h"
#include "frontends.h"
#include "sockaddr.h"

/* Past reply_within, the loop is late: answer without it. */
#define WAIT_MARGIN_MS 2000
/* How long cd_milter_free waits for libmilter's listener to return. */
#define JOIN_TIMEOUT_S 10
/* X-Callout headers kept for one message (one per distinct answer). */
#define MAX_HEADERS 8

enum event { EV_MAIL, EV_RCPT, EV_DATA };

/* What the threads may use without the loop, refreshed by every job. */
typedef struct settings {
	bool enforce; /* [daemon] mode = enforce */
	bool defer_ok;
	unsigned reply_within_ms;
	cd_reply in_progress;
} settings;

/* One question from a libmilter thread to the loop.  Both sides hold a
 * reference (under g.lock): whichever lets go last frees it, so a late
 * answer never writes into a waiter that gave up, and a waiter that gave
 * up never waits for the loop to free anything. */
typedef struct mjob {
	LIST_ENTRY(mjob) link; /* g.waiting, while a thread waits */
	unsigned refs;
	pthread_cond_t cond;
	bool done;         /* answer is valid */
	bool failed;       /* the loop could not ask (out of memory) */
	bool abandoned;    /* cd_milter_free: stop waiting */
	bool asked_sender; /* the loop put the sender into the question */
	unsigned wait_ms;  /* reply_within when the loop took it */
	cd_answer answer;
	cd_daemon *d;
	enum event event;
	bool sender_done;
	/* the request, owned */
	char client[64], client_name[256], helo[256];
	char sender[CD_ADDRESS_MAX], recipient[CD_ADDRESS_MAX];
	char auth[256], queue_id[64];
} mjob;

/* Per MTA connection (smfi_setpriv). */
typedef struct conn {
	char client[64], client_name[256], helo[256];
	/* the transaction */
	char sender[CD_ADDRESS_MAX];
	bool sender_done; /* the sender passed (RCPT stage) */
	unsigned nheaders;
	char headers[MAX_HEADERS][sizeof(((cd_answer *)0)->header)];
} conn;

struct cd_milter {
	pthread_mutex_t lock;
	bool registered; /* smfi_register done: there is no second time */
	bool started, stopping, closed;
	cd_daemon *d; /* NULL once closed */
	settings set;
	LIST_HEAD(, mjob) waiting; /* threads waiting for the loop (zero: empty) */
	atomic_uint pending;
	atomic_bool main_done;
	pthread_t main_thread, stop_thread, poke_thread;
	bool have_stop_thread, have_poke_thread;
	char spec[512]; /* the socket, as libmilter wants it (writable) */
	char unix_path[108];
};

/* The one milter of the process (libmilter allows no other). */
static struct cd_milter g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- logging, from any thread, on the loop --------------------------- */

typedef struct logmsg {
	cd_log_level level;
	char text[512];
} logmsg;

static void log_on_loop(void *arg)
{
	logmsg *m = arg;
	cd_log(m->level, "milter: %s", m->text);
	free(m);
}

/* cd_log belongs to the loop (a reload reopens it): post the line there.
 * Call with g.lock held or not; dropped once the milter is closed. */
static void post_log(cd_daemon *d, cd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void post_log(cd_daemon *d, cd_log_level level, const char *fmt, ...)
{
	logmsg *m = d ? malloc(sizeof(*m)) : NULL;
	va_list ap;

	if (!m)
		return;
	m->level = level;
	va_start(ap, fmt);
	vsnprintf(m->text, sizeof(m->text), fmt, ap);
	va_end(ap);
	if (cd_daemon_call(d, log_on_loop, m) < 0)
		free(m);
}

/* ---- settings --------------------------------------------------------- */

/* On the loop (or before it runs): copy what the threads need. */
static void settings_refresh(const cd_config *c)
{
	pthread_mutex_lock(&g.lock);
	g.set.enforce = c->mode == CD_MODE_ENFORCE;
	g.set.defer_ok = c->defer_ok;
	g.set.reply_within_ms = c->reply_within_ms;
	g.set.in_progress = c->in_progress;
	pthread_mutex_unlock(&g.lock);
}

/* ---- the job, on the loop --------------------------------------------- */

/* Drop one reference; call with g.lock held. */
static void job_release(mjob *j)
{
	if (--j->refs > 0)
		return;
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* The loop is done with j: with an answer (a) or without (failed). */
static void job_finish(mjob *j, const cd_answer *a)
{
	pthread_mutex_lock(&g.lock);
	if (a) {
		j->answer = *a;
		j->done = true;
	} else {
		j->failed = true;
	}
	pthread_cond_signal(&j->cond);
	job_release(j);
	pthread_mutex_unlock(&g.lock);
}

static void on_answer(void *arg, const cd_answer *a)
{
	job_finish(arg, a);
}

/* Whether the recipient is one to call forward for: decide.c's own rule,
 * asked with the sender out of the question. */
static bool call_forward(const cd_config *c, const mjob *j)
{
	cd_request r = {.fe = CD_FE_MILTER,
	                .client_address = j->client,
	                .client_name = j->client_name,
	                .helo = j->helo,
	                .sender = j->sender,
	                .recipient = j->recipient,
	                .sasl_username = "",
	                .queue_id = "",
	                .recipient_only = true};
	cd_plan p;

	cd_decide_plan(c, &r, &p);
	return p.n > 0;
}

static void job_start(void *arg)
{
	mjob *j = arg;
	const cd_config *c = j->d->cfg;
	bool check = false, closed;
	cd_request r = {.fe = CD_FE_MILTER,
	                .client_address = j->client,
	                .client_name = j->client_name,
	                .helo = j->helo,
	                .sender = j->sender,
	                .recipient = "",
	                .sasl_username = j->auth,
	                .queue_id = j->queue_id};

	settings_refresh(c);
	pthread_mutex_lock(&g.lock);
	closed = g.closed;
	j->wait_ms = c->reply_within_ms;
	pthread_mutex_unlock(&g.lock);
	if (closed) {
		job_finish(j, NULL);
		return;
	}
	switch (j->event) {
	case EV_MAIL:
		check = j->asked_sender = c->milter_sender_at == CD_AT_MAIL;
		break;
	case EV_DATA:
		check = j->asked_sender = c->milter_sender_at == CD_AT_DATA;
		break;
	case EV_RCPT:
		r.recipient = j->recipient;
		if (c->milter_sender_at == CD_AT_RCPT && !j->sender_done) {
			/* The sender, and the recipient too if it is routed. */
			check = j->asked_sender = true;
		} else if (call_forward(c, j)) {
			/* The recipient only. */
			r.recipient_only = true;
			check = true;
		}
		break;
	}
	if (!check) {
		cd_answer pass = {.action = CD_ACT_PASS, .skip_reason = "not at this stage"};
		job_finish(j, &pass);
		return;
	}
	if (!cd_check(j->d, &r, on_answer, j))
		job_finish(j, NULL);
}

/* ---- the job, on a libmilter thread ----------------------------------- */

/* The instant ms of co_clock_ms(), as a CLOCK_MONOTONIC timespec (the
 * clock of a job's condition variable). */
static struct timespec monotonic_at(long long ms)
{
	return (struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
}

/*
 * Ask the loop about an event of connection c; wait for the answer.
 * 0 with *a filled, or -1 when there is none in time (or at all): the
 * caller answers on its own.  *asked_sender: whether the answer covers
 * the sender.
 */
static int ask(const conn *c, SMFICTX *ctx, enum event ev, const char *rcpt, cd_answer *a,
               bool *asked_sender)
{
	static char sym_auth[] = "{auth_authen}", sym_qid[] = "i";
	const char *auth = smfi_getsymval(ctx, sym_auth);
	const char *qid = smfi_getsymval(ctx, sym_qid);
	pthread_condattr_t ca;
	long long start;
	mjob *j = calloc(1, sizeof(*j));
	int rc = -1;

	*asked_sender = false;
	if (!j)
		return -1;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&j->cond, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		free(j);
		return -1;
	}
	pthread_condattr_destroy(&ca);
	j->refs = 2; /* this thread and the loop */
	j->event = ev;
	j->sender_done = c->sender_done;
	snprintf(j->client, sizeof(j->client), "%s", c->client);
	snprintf(j->client_name, sizeof(j->client_name), "%s", c->client_name);
	snprintf(j->helo, sizeof(j->helo), "%s", c->helo);
	snprintf(j->sender, sizeof(j->sender), "%s", c->sender);
	snprintf(j->recipient, sizeof(j->recipient), "%s", rcpt ? rcpt : "");
	snprintf(j->auth, sizeof(j->auth), "%s", auth ? auth : "");
	snprintf(j->queue_id, sizeof(j->queue_id), "%s", qid ? qid : "");

	start = co_clock_ms(NULL, NULL);
	pthread_mutex_lock(&g.lock);
	j->wait_ms = g.set.reply_within_ms;
	/* Under the lock: cd_milter_free closes it, and no call may follow
	 * (the bridge goes away after us). */
	j->d = g.d;
	if (g.closed || cd_daemon_call(j->d, job_start, j) < 0) {
		pthread_cond_destroy(&j->cond);
		free(j);
		pthread_mutex_unlock(&g.lock);
		return -1;
	}
	LIST_INSERT_HEAD(&g.waiting, j, link);
	atomic_fetch_add(&g.pending, 1);
	for (;;) {
		if (j->done || j->failed || j->abandoned)
			break;
		/* wait_ms may grow when the loop takes the job after a reload */
		long long end = start + j->wait_ms + WAIT_MARGIN_MS;
		struct timespec deadline = monotonic_at(end);

		if (pthread_cond_timedwait(&j->cond, &g.lock, &deadline) == ETIMEDOUT &&
		    co_clock_ms(NULL, NULL) >= end)
			break;
	}
	if (j->done) {
		*a = j->answer;
		*asked_sender = j->asked_sender;
		rc = 0;
	} else if (!j->abandoned && !j->failed) {
		post_log(j->d, CD_LOG_WARNING, "no answer within %u ms for <%s>: answering alone",
		         j->wait_ms + WAIT_MARGIN_MS, j->recipient[0] ? j->recipient : j->sender);
	}
	LIST_REMOVE(j, link);
	atomic_fetch_sub(&g.pending, 1);
	job_release(j);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

/* ---- replies ---------------------------------------------------------- */

/* smfi_setreply ignores text with a lone '%' (a printf format for
 * Sendmail): double them. */
static void escape_percent(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in && n + 2 < len; in++) {
		if (*in == '%')
			out[n++] = '%';
		out[n++] = *in;
	}
	out[n] = '\0';
}

static void set_reply(SMFICTX *ctx, int code, const char *enhanced, const char *text, bool reject)
{
	char rcode[8], xcode[16], msg[2 * sizeof(((cd_answer *)0)->text) + 1];

	if (code < 400 || code > 599 || (code >= 500) != reject)
		code = reject ? 550 : 450;
	snprintf(rcode, sizeof(rcode), "%d", code);
	/* Postfix calls a reply malformed unless an enhanced code of the
	 * same class follows the code. */
	if (enhanced && enhanced[0] == rcode[0])
		snprintf(xcode, sizeof(xcode), "%s", enhanced);
	else
		snprintf(xcode, sizeof(xcode), "%c.0.0", rcode[0]);
	escape_percent(text ? text : "", msg, sizeof(msg));
	if (smfi_setreply(ctx, rcode, xcode, msg[0] ? msg : NULL) == MI_SUCCESS)
		return;
	/* libmilter refused the enhanced code: the class's own then. */
	snprintf(xcode, sizeof(xcode), "%c.0.0", rcode[0]);
	(void)smfi_setreply(ctx, rcode, xcode, msg[0] ? msg : NULL);
}

/* No answer from the loop: what defer_ok and the mode say. */
static sfsistat answer_alone(SMFICTX *ctx, const char *address)
{
	settings s;
	char text[sizeof(((cd_answer *)0)->text)];

	pthread_mutex_lock(&g.lock);
	s = g.set;
	pthread_mutex_unlock(&g.lock);
	if (s.defer_ok || !s.enforce)
		return SMFIS_CONTINUE;
	cd_expand(s.in_progress.text, address, NULL, text, sizeof(text));
	set_reply(ctx, s.in_progress.code, s.in_progress.enhanced, text, false);
	return SMFIS_TEMPFAIL;
}

/* ---- connection state ------------------------------------------------- */

static conn *conn_get(SMFICTX *ctx)
{
	conn *c = smfi_getpriv(ctx);

	if (!c && (c = calloc(1, sizeof(*c))) && smfi_setpriv(ctx, c) != MI_SUCCESS) {
		free(c);
		c = NULL;
	}
	return c;
}

static void transaction_reset(conn *c)
{
	c->sender[0] = '\0';
	c->sender_done = false;
	c->nheaders = 0;
}

static void keep_header(conn *c, const char *h)
{
	for (unsigned i = 0; i < c->nheaders; i++)
		if (strcmp(c->headers[i], h) == 0)
			return;
	if (c->nheaders < MAX_HEADERS)
		snprintf(c->headers[c->nheaders++], sizeof(c->headers[0]), "%s", h);
}

/* "<a@b>" -> "a@b"; "<>" -> "".  Spaces around are dropped too. */
static void strip_address(const char *in, char *out, size_t len)
{
	size_t n;

	while (*in == ' ' || *in == '\t')
		in++;
	n = strlen(in);
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
		n--;
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(out, in, n);
	out[n] = '\0';
}

/* ---- callbacks (libmilter's threads) ---------------------------------- */

static sfsistat check_event(SMFICTX *ctx, conn *c, enum event ev, const char *rcpt)
{
	cd_answer a;
	bool asked_sender;

	if (ask(c, ctx, ev, rcpt, &a, &asked_sender) < 0)
		return answer_alone(ctx, ev == EV_RCPT && rcpt ? rcpt : c->sender);
	if (a.action == CD_ACT_PASS) {
		bool tagged_recipient =
		    a.header[0] && a.checked && strcmp(a.checked, "recipient") == 0;
		if (a.header[0])
			keep_header(c, a.header);
		/* In tag mode the first header ends the check: a tagged
		 * recipient says nothing about the sender. */
		if (asked_sender && !tagged_recipient)
			c->sender_done = true;
		return SMFIS_CONTINUE;
	}
	set_reply(ctx, a.code, a.enhanced, a.text, a.action == CD_ACT_REJECT);
	return a.action == CD_ACT_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static sfsistat xx_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	conn *c = conn_get(ctx);

	if (!c)
		return SMFIS_TEMPFAIL;
	/* numeric, "" when unknown or not IP; mapped IPv4 as IPv4 */
	co_sockaddr_text(hostaddr, 0, CO_SA_UNMAP, c->client, sizeof(c->client));
	snprintf(c->client_name, sizeof(c->client_name), "%s", hostname ? hostname : "");
	return SMFIS_CONTINUE;
}

static sfsistat xx_helo(SMFICTX *ctx, char *helohost)
{
	conn *c = conn_get(ctx);

	if (!c)
		return SMFIS_TEMPFAIL;
	snprintf(c->helo, sizeof(c->helo), "%s", helohost ? helohost : "");
	return SMFIS_CONTINUE;
}

static sfsistat xx_envfrom(SMFICTX *ctx, char **argv)
{
	conn *c = conn_get(ctx);

	if (!c)
		return SMFIS_TEMPFAIL;
	transaction_reset(c);
	strip_address(argv && argv[0] ? argv[0] : "", c->sender, sizeof(c->sender));
	return check_event(ctx, c, EV_MAIL, NULL);
}

static sfsistat xx_envrcpt(SMFICTX *ctx, char **argv)
{
	conn *c = conn_get(ctx);
	char rcpt[CD_ADDRESS_MAX];

	if (!c)
		return SMFIS_TEMPFAIL;
	strip_address(argv && argv[0] ? argv[0] : "", rcpt, sizeof(rcpt));
	return check_event(ctx, c, EV_RCPT, rcpt);
}

static sfsistat xx_data(SMFICTX *ctx)
{
	conn *c = conn_get(ctx);

	if (!c)
		return SMFIS_TEMPFAIL;
	return check_event(ctx, c, EV_DATA, NULL);
}

static sfsistat xx_eom(SMFICTX *ctx)
{
	static char name[] = "X-Callout";
	conn *c = smfi_getpriv(ctx);

	if (!c)
		return SMFIS_CONTINUE;
	for (unsigned i = 0; i < c->nheaders; i++)
		(void)smfi_addheader(ctx, name, c->headers[i]);
	transaction_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat xx_abort(SMFICTX *ctx)
{
	conn *c = smfi_getpriv(ctx);

	if (c)
		transaction_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat xx_close(SMFICTX *ctx)
{
	conn *c = smfi_getpriv(ctx);

	if (c) {
		smfi_setpriv(ctx, NULL);
		free(c);
	}
	return SMFIS_CONTINUE;
}

/* ---- libmilter's signal thread ---------------------------------------- */

/*
 * smfi_main starts a thread of its own (mi_signal_thread) that blocks
 * SIGHUP, SIGTERM and SIGINT and takes them with sigwait(); on any of the
 * three it stops the milter for good -- MilterStop only ever rises, the
 * listening socket is closed, there is no restart.  In calloutd those
 * signals belong to the main thread's event loop: HUP reloads, TERM
 * drains.  Blocking them in our threads does not settle it: sigwait()
 * takes a signal pending for the process whatever the mask, and the
 * kernel hands a process-directed signal to the main thread only while
 * that has none pending already; two signals close together (HUP then
 * TERM), or one sent to a stopped process, may go to libmilter's thread.
 * Rare, and fatal: a HUP lost to libmilter is a dead milter (the tests saw
 * about one HUP in thirty go that way with the process stopped).
 *
 * So the daemon defines sigwait() itself.  The executable comes first in
 * ELF symbol lookup, so libmilter's call (through its PLT, to
 * sigwait@GLIBC_2.2.5, which an unversioned definition in the executable
 * satisfies; a static libmilter would bind to it at link time) lands
 * here, and a wait for exactly libmilter's three signals parks that
 * thread for good.  Any other sigwait is what the C library's does:
 * sigwaitinfo, again on EINTR.  With the milter's threads started with
 * every asynchronous signal blocked (cd_milter_start), the main thread is
 * the only one HUP, TERM and INT can go to.  test_milter.py checks it
 * (test_hup_always_reaches_the_daemon fails without this function).
 */
static bool is_libmilter_set(const sigset_t *set)
{
	static const int all[] = {SIGHUP, SIGTERM, SIGINT};
	int n = 0;

	for (int s = 1; s < NSIG; s++) {
		if (sigismember(set, s) != 1)
			continue;
		if (s != all[0] && s != all[1] && s != all[2])
			return false;
		n++;
	}
	return n == 3;
}

int sigwait(const sigset_t *restrict set, int *restrict sig)
{
	int r;

	if (is_libmilter_set(set)) {
		for (;;)
			pause();
	}
	do
		r = sigwaitinfo(set, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno;
	*sig = r;
	return 0;
}

/* Every asynchronous signal blocked: for threads that are not the loop's. */
static void block_signals(sigset_t *old)
{
	sigset_t set;

	sigfillset(&set);
	/* Faults must still kill, not hang. */
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGTRAP);
	sigdelset(&set, SIGABRT);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static int spawn(pthread_t *t, void *(*fn)(void *))
{
	sigset_t old;
	int rc;

	block_signals(&old);
	rc = pthread_create(t, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- the socket ------------------------------------------------------- */

/* Copy n bytes of in as a string; false when they do not fit. */
static bool copy_n(char *out, size_t len, const char *in, size_t n)
{
	if (n >= len)
		return false;
	memcpy(out, in, n);
	out[n] = '\0';
	return true;
}

/* "inet:PORT[@HOST]" / "inet6:PORT[@HOST]" (HOST maybe in brackets). */
static bool parse_inet(const char *spec, int *family, char *port, size_t plen, char *host,
                       size_t hlen)
{
	const char *p = strchr(spec, ':'), *at;

	if (!p)
		return false;
	p++;
	*family = strncmp(spec, "inet6:", 6) == 0 ? AF_INET6 : AF_INET;
	at = strchr(p, '@');
	if (!copy_n(port, plen, p, at ? (size_t)(at - p) : strlen(p)))
		return false;
	host[0] = '\0';
	if (at) {
		const char *h = at + 1;
		size_t n = strlen(h);
		if (h[0] == '[' && n > 2 && h[n - 1] == ']')
			return copy_n(host, hlen, h + 1, n - 2);
		return copy_n(host, hlen, h, n);
	}
	return true;
}

/* Why a unix socket cannot be made at path: "" when no reason is found. */
static void why_no_unix(const char *path, char *out, size_t len)
{
	char dir[sizeof(g.unix_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;

	out[0] = '\0';
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(out, len, "%s exists and is not a socket", path);
		return;
	}
	if (!slash || !copy_n(dir, sizeof(dir), path, slash == path ? 1 : (size_t)(slash - path)))
		return;
	if (access(dir, W_OK | X_OK) < 0)
		snprintf(out, len, "%s: %s", dir, strerror(errno));
}

/* libmilter keeps the reason for a failed bind in syslog only: find it
 * out ourselves for the error message.  "" when binding works. */
static void why_no_listen(const char *spec, char *out, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *res = NULL;
	char port[16], host[256];
	int fd, one = 1, gai;

	out[0] = '\0';
	if (g.unix_path[0]) {
		why_no_unix(g.unix_path, out, len);
		return;
	}
	if (!parse_inet(spec, &hints.ai_family, port, sizeof(port), host, sizeof(host)))
		return;
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai != 0) {
		snprintf(out, len, "%s", gai_strerror(gai));
		return;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0)
		snprintf(out, len, "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
}

/* Unix sockets: what cd_listen gives the others, 0660 and the daemon's
 * user (the MTA's user needs to be in its group, see docs/sendmail.md). */
static void unix_socket_owner(const cd_config *c)
{
	struct passwd *pw;

	if (!g.unix_path[0])
		return;
	if (chmod(g.unix_path, 0660) < 0)
		cd_log(CD_LOG_WARNING, "milter: chmod %s: %s", g.unix_path, strerror(errno));
	if (c->user[0] && geteuid() == 0 && (pw = getpwnam(c->user)) &&
	    chown(g.unix_path, pw->pw_uid, pw->pw_gid) < 0)
		cd_log(CD_LOG_WARNING, "milter: chown %s: %s", g.unix_path, strerror(errno));
}

/*
 * Wake libmilter's listener: it holds its mutex while it polls the
 * listening socket for up to 5 seconds, and smfi_stop() waits for that
 * mutex.  A connection ends the poll at once; the session it starts sees
 * the stop (or end of file) and goes.
 */
static void poke_listener(void)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[16], host[256];
	int fd;

	if (g.unix_path[0]) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", g.unix_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			(void)connect(fd, (struct sockaddr *)&sun, sizeof(sun));
			close(fd);
		}
		return;
	}
	if (!parse_inet(g.spec, &hints.ai_family, port, sizeof(port), host, sizeof(host)))
		return;
	/* A wildcard listener is reached on loopback. */
	if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
		strcpy(host, hints.ai_family == AF_INET6 ? "::1" : "127.0.0.1");
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		(void)connect(fd, res->ai_addr, res->ai_addrlen);
		close(fd);
	}
	freeaddrinfo(res);
}

/* ---- threads ---------------------------------------------------------- */

static void *milter_main(void *arg)
{
	int r = smfi_main();

	atomic_store(&g.main_done, true);
	pthread_mutex_lock(&g.lock);
	if (r != MI_SUCCESS || !g.stopping)
		post_log(g.d, CD_LOG_ERR, "libmilter stopped%s (its reason is in syslog)",
		         g.stopping ? " with an error" : " unasked");
	pthread_mutex_unlock(&g.lock);
	return arg;
}

/* smfi_stop waits for the listener's mutex (see poke_listener).  The
 * listener may see the stop flag first and destroy that mutex on its way
 * out while we wait: libmilter's own signal thread has the same race,
 * and glibc answers a destroyed mutex with EINVAL, not a hang. */
static void *stop_main(void *arg)
{
	smfi_stop();
	return arg;
}

static void *poke_main(void *arg)
{
	const struct timespec tick = {0, 20 * 1000000L};

	/* Until the listener returned; bounded, as a poke could go astray. */
	for (unsigned i = 0; i < 500 && !atomic_load(&g.main_done); i++) {
		if (i % 5 == 0)
			poke_listener();
		nanosleep(&tick, NULL);
	}
	return arg;
}

/* ---- the front end's interface ---------------------------------------- */

cd_milter *cd_milter_new(cd_daemon *d, char *err, size_t errlen)
{
	static char name[] = "calloutd";
	const cd_config *c = d->cfg;
	struct smfiDesc desc = {
	    .xxfi_name = name,
	    .xxfi_version = SMFI_VERSION,
	    .xxfi_flags = SMFIF_ADDHDRS,
	    .xxfi_connect = xx_connect,
	    .xxfi_helo = xx_helo,
	    .xxfi_envfrom = xx_envfrom,
	    .xxfi_envrcpt = xx_envrcpt,
	    .xxfi_eom = xx_eom,
	    .xxfi_abort = xx_abort,
	    .xxfi_close = xx_close,
	    .xxfi_data = xx_data,
	};

	pthread_mutex_lock(&g.lock);
	bool again = g.registered;
	g.registered = true;
	pthread_mutex_unlock(&g.lock);
	if (again) {
		snprintf(err, errlen, "milter: libmilter serves one milter per process, once");
		return NULL;
	}
	snprintf(g.spec, sizeof(g.spec), "%s", c->milter_listen);
	if (strncmp(g.spec, "unix:", 5) == 0 || strncmp(g.spec, "local:", 6) == 0)
		snprintf(g.unix_path, sizeof(g.unix_path), "%s", strchr(g.spec, ':') + 1);
	if (smfi_register(desc) != MI_SUCCESS || smfi_setconn(g.spec) != MI_SUCCESS) {
		snprintf(err, errlen, "milter: libmilter refused to register the filter");
		return NULL;
	}
	/* Bound now, while we may (privileges are dropped after); true:
	 * a stale unix socket of an earlier run is removed. */
	if (smfi_opensocket(true) != MI_SUCCESS) {
		char why[256];
		why_no_listen(g.spec, why, sizeof(why));
		snprintf(err, errlen, "milter: cannot listen on %s%s%s", c->milter_listen,
		         why[0] ? ": " : "", why[0] ? why : " (libmilter's reason is in syslog)");
		return NULL;
	}
	unix_socket_owner(c);
	g.d = d;
	settings_refresh(c);
	return &g;
}

int cd_milter_start(cd_milter *m, char *err, size_t errlen)
{
	int rc = spawn(&m->main_thread, milter_main);

	if (rc != 0) {
		snprintf(err, errlen, "milter: cannot start libmilter's thread: %s", strerror(rc));
		return -1;
	}
	pthread_mutex_lock(&m->lock);
	m->started = true;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void cd_milter_close(cd_milter *m)
{
	pthread_mutex_lock(&m->lock);
	bool already = m->stopping, started = m->started;
	m->stopping = true;
	pthread_mutex_unlock(&m->lock);
	if (already)
		return;
	if (!started) {
		/* No listener holds libmilter's mutex: close the socket here. */
		smfi_stop();
		return;
	}
	/* Not on the loop: smfi_stop may wait seconds for the listener. */
	m->have_stop_thread = spawn(&m->stop_thread, stop_main) == 0;
	m->have_poke_thread = spawn(&m->poke_thread, poke_main) == 0;
}

unsigned cd_milter_pending(const cd_milter *m)
{
	return atomic_load(&m->pending);
}

static void join_bounded(pthread_t t, const char *what)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += JOIN_TIMEOUT_S;
	if (pthread_timedjoin_np(t, NULL, &deadline) != 0) {
		cd_log(CD_LOG_WARNING, "milter: %s did not end; leaving it", what);
		pthread_detach(t);
	}
}

void cd_milter_free(cd_milter *m)
{
	if (!m)
		return;
	cd_milter_close(m);
	/* From here no thread calls into the daemon: waiting ones answer
	 * alone now, later ones at once.  The state itself stays (libmilter's
	 * sessions may outlive us), jobs still queued for the loop are freed
	 * by whoever holds them last. */
	pthread_mutex_lock(&m->lock);
	m->closed = true;
	m->d = NULL;
	mjob *j;
	LIST_FOREACH(j, &m->waiting, link)
	{
		j->abandoned = true;
		pthread_cond_signal(&j->cond);
	}
	bool started = m->started;
	m->started = false;
	pthread_mutex_unlock(&m->lock);
	if (started)
		join_bounded(m->main_thread, "libmilter's listener");
	if (m->have_stop_thread)
		join_bounded(m->stop_thread, "smfi_stop");
	if (m->have_poke_thread)
		join_bounded(m->poke_thread, "the listener's wake-up");
	m->have_stop_thread = m->have_poke_thread = false;
	/* libmilter leaves its socket file behind when it runs as root. */
	struct stat st;
	if (m->unix_path[0] && lstat(m->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(m->unix_path);
}
