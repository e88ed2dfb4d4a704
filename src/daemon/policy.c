/*
 * The Postfix policy service (SMTPD_POLICY_README) on cfg->policy_listen.
 *
 * Postfix's smtpd keeps one connection per process and sends a request
 * (name=value lines, an empty line) whenever a check_policy_service
 * restriction is evaluated; we answer "action=..." and an empty line.
 * Sender verification happens at RCPT, where Postfix asks: that request
 * goes to cd_check, every other one is answered DUNNO at once.
 *
 *   socket -> lines (policy_parse.c) -> queue of requests -> the head one
 *   is checked -> answers written in order
 *
 * Postfix never pipelines requests, but a client that does is served in
 * order: up to QUEUE_MAX requests are read ahead, then reading pauses.
 * A client that shuts its side down after asking still gets its answers,
 * then the connection closes.  Limits on line, request and connection
 * count (in all, within the descriptor budget, and per client address or
 * local user), a deadline for each request from its first byte that more
 * bytes do not extend, and an idle timeout keep any one client from
 * costing much, so that Postfix is answered while another client
 * misbehaves.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "clients.h"
#include "frontends.h"
#include "listen.h"
#include "policy_parse.h"
#include "sockaddr.h"

#define IDLE_TIMEOUT_S 300         /* as Postfix's smtpd_policy_service_max_idle */
#define QUEUE_MAX      8           /* requests read ahead of their answers */
#define REQUEST_MAX    (32 * 1024) /* octets in one request; Postfix's are ~1 KiB */
#define OUTPUT_MAX     (64 * 1024) /* answers the client has not read: stop reading */
#define REPLY_MAX      640         /* "action=" + code + enhanced + cd_answer text */

typedef struct listener {
	struct evconnlistener *lev;
	cd_policy *p;
	bool is_unix;
	char path[108]; /* unix: removed on close, if still ours */
	dev_t dev;
	ino_t ino;
	char name[160]; /* "unix:/path" or "inet:[host]:port", for the log */
} listener;

typedef enum rq_state { RQ_WAITING = 0, RQ_CHECKING, RQ_DONE } rq_state;

typedef struct pconn pconn;

/* One complete request, from its empty line until its answer is written. */
typedef struct rq {
	STAILQ_ENTRY(rq) link; /* in its connection's queue */
	pconn *c;
	rq_state state;
	cd_job *job;           /* RQ_CHECKING */
	char reply[REPLY_MAX]; /* RQ_DONE: "action=...", without the newlines */
	cd_policy_req req;
} rq;

struct pconn {
	LIST_ENTRY(pconn) link; /* in its service's list */
	cd_policy *p;
	struct bufferevent *bev;
	struct event *deadline; /* the request being read must be complete by then */
	cd_client_key client;
	unsigned id;
	char peer[160];
	STAILQ_HEAD(, rq) rqs; /* complete requests, answered in this order */
	unsigned nqueued;
	rq *cur; /* the request being read, or NULL */
	size_t cur_bytes;
	bool paused; /* reading stopped: queue or output full */
	bool eof;    /* the client sent all it will: answer, then close */
	/* The last header prepended, and the transaction (Postfix's
	 * "instance") it was for: Postfix asks once per RCPT and would add
	 * the same sender header once per recipient. */
	char tagged_instance[sizeof(((cd_policy_req *)0)->instance)];
	char tagged_header[sizeof(((cd_answer *)0)->header)];
	char line[CD_POLICY_LINE_MAX + 2];
};

struct cd_policy {
	cd_daemon *d;
	listener ls[CD_LISTEN_MAX];
	size_t nls;
	struct evconnlistener *levs[CD_LISTEN_MAX]; /* ls[i].lev, for the pause */
	cd_accept_pause pause;                      /* after an accept error */
	LIST_HEAD(, pconn) conns;
	unsigned nconns;
	cd_clients *clients; /* connections per client */
	cd_refusals refused;
	unsigned pending; /* complete requests not yet answered */
	unsigned next_id;
};

static void pump(pconn *c);

/* A copy of s fit for one log line: control characters become '?'. */
static const char *printable(const char *s, char *buf, size_t n)
{
	size_t i = 0;

	for (; s[i] && i + 1 < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	buf[i] = '\0';
	return buf;
}

/* ---- connections ---------------------------------------------------- */

static void rq_free_all(pconn *c)
{
	rq *q;

	while ((q = STAILQ_FIRST(&c->rqs)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->rqs, link);
		if (q->job)
			cd_job_cancel(q->job);
		free(q);
	}
	c->p->pending -= c->nqueued;
	c->nqueued = 0;
	free(c->cur);
	c->cur = NULL;
}

static void conn_free(pconn *c)
{
	cd_policy *p = c->p;

	rq_free_all(c);
	LIST_REMOVE(c, link);
	p->nconns--;
	cd_clients_remove(p->clients, &c->client);
	if (c->deadline)
		event_free(c->deadline);
	bufferevent_free(c->bev);
	free(c);
	cd_quiet_check(p->d);
}

/* The client broke the protocol's limits: log why and hang up. */
static void drop(pconn *c, const char *why)
{
	cd_log(CD_LOG_WARNING, "policy[%u]: %s: %s; disconnecting", c->id, c->peer, why);
	conn_free(c);
}

/* ---- answers --------------------------------------------------------- */

/* The reply never carries a line break of its own: that would end it. */
static void set_reply(rq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reply(rq *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->reply, sizeof(q->reply), fmt, ap);
	va_end(ap);
	for (char *s = q->reply; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
	q->state = RQ_DONE;
}

static void answer_from(rq *q, const cd_answer *a)
{
	pconn *c = q->c;
	const char *word = a->action == CD_ACT_REJECT ? "REJECT" : "DEFER";

	switch (a->action) {
	case CD_ACT_PASS:
		if (!a->header[0]) {
			set_reply(q, "action=DUNNO");
		} else if (q->req.instance[0] && strcmp(q->req.instance, c->tagged_instance) == 0 &&
		           strcmp(a->header, c->tagged_header) == 0) {
			set_reply(q, "action=DUNNO"); /* this message has it already */
		} else {
			set_reply(q, "action=PREPEND X-Callout: %s", a->header);
			snprintf(c->tagged_instance, sizeof(c->tagged_instance), "%s",
			         q->req.instance);
			snprintf(c->tagged_header, sizeof(c->tagged_header), "%s", a->header);
		}
		return;
	case CD_ACT_REJECT:
	case CD_ACT_DEFER:
		/* A code of the wrong class would turn a defer into a reject
		 * (or back): Postfix's own words keep the meaning then. */
		if ((a->action == CD_ACT_REJECT && a->code >= 500 && a->code <= 599) ||
		    (a->action == CD_ACT_DEFER && a->code >= 400 && a->code <= 499)) {
			if (a->enhanced[0])
				set_reply(q, "action=%d %s %s", a->code, a->enhanced, a->text);
			else
				set_reply(q, "action=%d %s", a->code, a->text);
		} else {
			set_reply(q, "action=%s %s", word, a->text);
		}
		return;
	}
	set_reply(q, "action=DUNNO");
}

static void answered(void *arg, const cd_answer *a)
{
	rq *q = arg;

	q->job = NULL;
	answer_from(q, a);
	pump(q->c);
}

/* Decide what the head request needs: an answer now, or a check. */
static void start(rq *q)
{
	pconn *c = q->c;
	cd_policy_req *r = &q->req;
	char buf[64];

	if (r->error) {
		cd_log(CD_LOG_WARNING, "policy[%u]: %s: bad request (%s), answering DUNNO", c->id,
		       c->peer, r->error);
		set_reply(q, "action=DUNNO");
		return;
	}
	if (strcmp(r->request, "smtpd_access_policy") != 0) {
		cd_log(CD_LOG_WARNING,
		       "policy[%u]: %s: request=%s is not smtpd_access_policy, answering DUNNO",
		       c->id, c->peer, printable(r->request, buf, sizeof(buf)));
		set_reply(q, "action=DUNNO");
		return;
	}
	/* Postfix asks at RCPT for sender and recipient alike (and, with
	 * smtpd_delay_reject, for client, HELO and MAIL restrictions too). */
	if (strcmp(r->protocol_state, "RCPT") != 0) {
		cd_log(CD_LOG_DEBUG, "policy[%u]: protocol_state=%s, answering DUNNO", c->id,
		       printable(r->protocol_state, buf, sizeof(buf)));
		set_reply(q, "action=DUNNO");
		return;
	}
	cd_request req = {
	    .fe = CD_FE_POLICY,
	    .client_address = r->client_address,
	    .client_name = r->client_name,
	    .helo = r->helo_name,
	    .sender = r->sender,
	    .recipient = r->recipient,
	    .sasl_username = r->sasl_username,
	    .queue_id = r->queue_id,
	};
	q->job = cd_check(c->p->d, &req, answered, q);
	if (!q->job) {
		cd_log(CD_LOG_ERR, "policy[%u]: out of memory, answering DEFER_IF_PERMIT", c->id);
		set_reply(q, "action=DEFER_IF_PERMIT Service temporarily unavailable");
		return;
	}
	q->state = RQ_CHECKING;
}

/* Write the answers that are due, in order; start the next check. */
static void flush_answers(pconn *c)
{
	while (!STAILQ_EMPTY(&c->rqs)) {
		rq *q = STAILQ_FIRST(&c->rqs);
		if (q->state == RQ_WAITING)
			start(q);
		if (q->state != RQ_DONE)
			return;
		char buf[REPLY_MAX];
		cd_log(CD_LOG_DEBUG, "policy[%u]: %s", c->id,
		       printable(q->reply, buf, sizeof(buf)));
		struct evbuffer *out = bufferevent_get_output(c->bev);
		evbuffer_add(out, q->reply, strlen(q->reply));
		evbuffer_add(out, "\n\n", 2);
		STAILQ_REMOVE_HEAD(&c->rqs, link);
		c->nqueued--;
		c->p->pending--;
		free(q);
	}
}

/* ---- requests -------------------------------------------------------- */

/* Parse complete lines into requests while there is room in the queue.
 * Returns how many requests were completed, or -1 when c was dropped. */
static int read_lines(pconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	int completed = 0;

	while (c->nqueued < QUEUE_MAX) {
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > CD_POLICY_LINE_MAX + 1) {
				drop(c, "line too long");
				return -1;
			}
			break;
		}
		size_t len = (size_t)p.pos;
		/* +1: the CR of a CRLF line is not part of the limit */
		if (len > CD_POLICY_LINE_MAX + 1) {
			drop(c, "line too long");
			return -1;
		}
		evbuffer_remove(in, c->line, len);
		evbuffer_drain(in, eol_len);
		if (len > 0 && c->line[len - 1] == '\r')
			len--;
		if (len > CD_POLICY_LINE_MAX) {
			drop(c, "line too long");
			return -1;
		}

		if (!c->cur) {
			c->cur = malloc(sizeof(*c->cur));
			if (!c->cur) {
				drop(c, "out of memory");
				return -1;
			}
			memset(c->cur, 0, offsetof(rq, req));
			cd_policy_req_init(&c->cur->req);
			c->cur->c = c;
			c->cur_bytes = 0;
		}
		c->cur_bytes += len + eol_len;
		if (c->cur_bytes > REQUEST_MAX) {
			drop(c, "request too large");
			return -1;
		}
		if (len > 0 && c->cur->req.nattrs >= CD_POLICY_ATTRS_MAX) {
			drop(c, "too many attributes in a request");
			return -1;
		}
		if (cd_policy_feed(&c->cur->req, c->line, len) != CD_POLICY_END)
			continue;

		STAILQ_INSERT_TAIL(&c->rqs, c->cur, link);
		c->cur = NULL;
		c->nqueued++;
		c->p->pending++;
		completed++;
	}
	return completed;
}

/* Move everything along that can move: answers out, requests in, and
 * reading paused while the queue or the unread output is full.  May free
 * c (after the client's end of input, once everything is answered). */
static void pump(pconn *c)
{
	for (;;) {
		flush_answers(c);
		int n = read_lines(c);
		if (n < 0)
			return;
		if (n == 0)
			break;
	}
	size_t unread = evbuffer_get_length(bufferevent_get_output(c->bev));
	if (c->eof) {
		if (c->nqueued == 0 && unread == 0) {
			cd_log(CD_LOG_DEBUG, "policy[%u]: %s: closed", c->id, c->peer);
			conn_free(c);
		}
		return;
	}
	bool full = c->nqueued >= QUEUE_MAX || unread > OUTPUT_MAX;
	if (full && !c->paused) {
		bufferevent_disable(c->bev, EV_READ);
		c->paused = true;
	} else if (!full && c->paused) {
		bufferevent_enable(c->bev, EV_READ);
		c->paused = false;
	}
	/* The deadline runs while the client owes us the rest of a request
	 * (not while we hold its requests back); more bytes do not move it. */
	bool owing = !c->paused && (c->cur || evbuffer_get_length(bufferevent_get_input(c->bev)));
	if (owing && !evtimer_pending(c->deadline, NULL)) {
		unsigned ms = c->p->d->cfg->policy_request_timeout_ms;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		evtimer_add(c->deadline, &tv);
	} else if (!owing) {
		evtimer_del(c->deadline);
	}
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	pconn *c = arg;
	char why[64];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "request not complete within %u ms",
	         c->p->d->cfg->policy_request_timeout_ms);
	drop(c, why);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	pump(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	pconn *c = arg;

	(void)bev;
	if (c->paused || c->eof)
		pump(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	pconn *c = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		/* Idle only when we owe the client nothing: a client waiting
		 * for a slow check is not idle. */
		if ((what & BEV_EVENT_READING) && c->nqueued > 0) {
			if (!c->paused)
				bufferevent_enable(bev, EV_READ);
			return;
		}
		cd_log(CD_LOG_DEBUG, "policy[%u]: %s: idle for %d s, closing", c->id, c->peer,
		       IDLE_TIMEOUT_S);
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* A full close and a half close (shutdown(SHUT_WR) after the
		 * request, as Exim's ${readsocket} does) look the same here:
		 * answer what was asked; a closed socket shows when we write. */
		if (c->nqueued > 0)
			cd_log(CD_LOG_DEBUG,
			       "policy[%u]: %s: end of input, %u request(s) to answer", c->id,
			       c->peer, c->nqueued);
		c->eof = true;
		pump(c);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		cd_log(CD_LOG_INFO, "policy[%u]: %s: %s%s", c->id, c->peer,
		       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()),
		       c->nqueued ? ", dropping the requests not answered" : "");
	conn_free(c);
}

/* ---- listening ------------------------------------------------------- */

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	listener *l = arg;
	cd_policy *p = l->p;
	const cd_config *cfg = p->d->cfg;
	struct timeval idle = {IDLE_TIMEOUT_S, 0};
	cd_client_key client;

	(void)lev;
	if (p->nconns >= cd_fe_cap(cfg->policy_max_connections, p->d->policy_fds)) {
		cd_refused(&p->refused, "policy", "max_connections reached");
		evutil_closesocket(fd);
		return;
	}
	cd_client_key_of(&client, fd, sa, salen);
	if (!cd_clients_add(p->clients, &client, cfg->policy_max_client_connections)) {
		cd_refused(&p->refused, "policy", "max_client_connections reached by a client");
		evutil_closesocket(fd);
		return;
	}
	pconn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev =
	    c ? bufferevent_socket_new(p->d->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	struct event *deadline = bev ? evtimer_new(p->d->base, deadline_cb, c) : NULL;
	if (!deadline) {
		cd_log(CD_LOG_ERR, "policy: out of memory, refusing a connection on %s", l->name);
		cd_clients_remove(p->clients, &client);
		if (bev)
			bufferevent_free(bev);
		else
			evutil_closesocket(fd);
		free(c);
		return;
	}
	c->p = p;
	c->bev = bev;
	c->deadline = deadline;
	c->client = client;
	c->id = ++p->next_id;
	STAILQ_INIT(&c->rqs);
	if (salen <= 0 ||
	    !co_sockaddr_text(sa, (size_t)salen, CO_SA_PORT, c->peer, sizeof(c->peer))[0])
		snprintf(c->peer, sizeof(c->peer), "%s", l->name);
	LIST_INSERT_HEAD(&p->conns, c, link);
	p->nconns++;

	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	cd_log(CD_LOG_DEBUG, "policy[%u]: connection from %s", c->id, c->peer);
}

/* Out of descriptors: every policy listener pauses (listen.c). */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	listener *l = arg;

	(void)lev;
	cd_accept_paused(&l->p->pause);
}

static int fail(char *err, size_t errlen, const listener *l, const char *what, int e)
{
	snprintf(err, errlen, "policy: %s %s: %s", what, l->name, strerror(e));
	return -1;
}

/* A socket file left by an earlier run is removed; anything else at that
 * path, or a socket someone still listens on, is an error. */
static int clear_stale(const listener *l, char *err, size_t errlen)
{
	struct stat st;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (lstat(l->path, &st) < 0)
		return errno == ENOENT ? 0 : fail(err, errlen, l, "cannot stat", errno);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "policy: %s exists and is not a socket", l->name);
		return -1;
	}
	memcpy(sun.sun_path, l->path, strlen(l->path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, errlen, l, "cannot probe", errno);
	int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "policy: %s is in use by another process", l->name);
		return -1;
	}
	if (unlink(l->path) < 0 && errno != ENOENT)
		return fail(err, errlen, l, "cannot remove stale", errno);
	return 0;
}

static int open_unix(listener *l, const cd_listen *cl, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(cl->path);
	struct stat st;

	if (n == 0 || n >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "policy: socket path too long: %s", cl->path);
		return -1;
	}
	memcpy(sun.sun_path, cl->path, n + 1);
	if (clear_stale(l, err, errlen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, errlen, l, "cannot create", errno);
	/* Owner-only until chmod gives the configured mode: nobody connects
	 * through a wider umask in between. */
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	umask(old);
	if (rc < 0) {
		close(fd);
		return fail(err, errlen, l, "cannot bind", e);
	}
	if (chmod(cl->path, (mode_t)(cl->mode & 07777)) < 0 || lstat(cl->path, &st) < 0) {
		e = errno;
		close(fd);
		unlink(cl->path);
		return fail(err, errlen, l, "cannot set the mode of", e);
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	if (listen(fd, SOMAXCONN) < 0) {
		e = errno;
		close(fd);
		unlink(cl->path);
		return fail(err, errlen, l, "cannot listen on", e);
	}
	return fd;
}

cd_policy *cd_policy_new(cd_daemon *d, char *err, size_t errlen)
{
	cd_policy *p = calloc(1, sizeof(*p));
	const cd_config *cfg = d->cfg;

	if (!p) {
		snprintf(err, errlen, "policy: out of memory");
		return NULL;
	}
	p->d = d;
	LIST_INIT(&p->conns);
	p->pause = (cd_accept_pause){.fe = "policy", .levs = p->levs};
	p->pause.resume = evtimer_new(d->base, cd_accept_resume_cb, &p->pause);
	p->clients = cd_clients_new();
	if (!p->pause.resume || !p->clients) {
		snprintf(err, errlen, "policy: out of memory");
		if (p->pause.resume)
			event_free(p->pause.resume);
		cd_clients_free(p->clients);
		free(p);
		return NULL;
	}
	for (size_t i = 0; i < cfg->npolicy_listen && i < CD_LISTEN_MAX; i++) {
		const cd_listen *cl = &cfg->policy_listen[i];
		listener *l = &p->ls[p->nls];
		int fd;

		*l = (listener){.p = p, .is_unix = cl->is_unix};
		cd_listen_name(cl, l->name, sizeof(l->name));
		if (cl->is_unix) {
			snprintf(l->path, sizeof(l->path), "%s", cl->path);
			fd = open_unix(l, cl, err, errlen);
		} else {
			fd = cd_listen_inet(cl, "policy", err, errlen);
		}
		if (fd < 0)
			goto bad;
		l->lev = evconnlistener_new(d->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
		if (!l->lev) {
			close(fd);
			if (l->is_unix)
				unlink(l->path);
			snprintf(err, errlen, "policy: %s: out of memory", l->name);
			goto bad;
		}
		evconnlistener_set_error_cb(l->lev, accept_error_cb);
		p->levs[p->nls] = l->lev;
		p->pause.n = ++p->nls;
		cd_log(CD_LOG_INFO, "policy: listening on %s", l->name);
	}
	return p;
bad:
	cd_policy_free(p);
	return NULL;
}

void cd_policy_close(cd_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nls; i++) {
		listener *l = &p->ls[i];
		struct stat st;

		evconnlistener_free(l->lev);
		l->lev = p->levs[i] = NULL;
		/* Only our own socket: a newer daemon may have bound the path. */
		if (l->is_unix && lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    st.st_dev == l->dev && st.st_ino == l->ino && unlink(l->path) < 0)
			cd_log(CD_LOG_WARNING, "policy: cannot remove %s: %s", l->path,
			       strerror(errno));
	}
	p->nls = 0;
	p->pause.n = 0;
	if (p->pause.resume)
		event_del(p->pause.resume);
}

unsigned cd_policy_pending(const cd_policy *p)
{
	return p ? p->pending : 0;
}

void cd_policy_free(cd_policy *p)
{
	if (!p)
		return;
	cd_policy_close(p);
	while (!LIST_EMPTY(&p->conns))
		conn_free(LIST_FIRST(&p->conns));
	if (p->pause.resume)
		event_free(p->pause.resume);
	cd_clients_free(p->clients);
	free(p);
}
