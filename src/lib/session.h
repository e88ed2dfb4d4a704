/*
 * One callout over one SMTP connection: the protocol state machine.
 * It knows SMTP, not DNS or caching: the engine gives it an address to
 * connect to and the commands' arguments, and gets back an outcome.
 */
#ifndef CO_SESSION_H
#define CO_SESSION_H

#include <stdbool.h>
#include <sys/socket.h>

#include <callout/callout.h>

#include "conn.h"
#include "reply.h"

struct event_base;
struct evbuffer;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct co_session co_session;

/* Everything borrowed: it must outlive the session. */
typedef struct co_session_params {
	const struct sockaddr *addr;
	socklen_t addrlen;
	const struct sockaddr *source; /* NULL: any */
	socklen_t sourcelen;
	const char *helo;
	const char *mail_from;      /* mailbox, "" for the null sender */
	const char *fallback_from;  /* used after a refused null sender; NULL: none */
	bool smtputf8;              /* the addresses need SMTPUTF8 */
	bool vrfy;                  /* VRFY first, for a batch of one */
	bool pipelining;            /* use it when offered */
	SSL_CTX *tls;               /* STARTTLS when offered; NULL: never */
	const char *tls_name;       /* SNI, may be NULL */
	const co_conn_proxy *proxy; /* SOCKS5 proxy to connect through; NULL: direct */
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
	struct evbuffer *transcript; /* NULL: none kept */
} co_session_params;

typedef struct co_session_outcome {
	callout_verdict verdict;
	callout_reason reason;
	callout_stage stage;
	int code;
	char enhanced[16];
	char text[CO_REPLY_TEXT_MAX + 1];
	bool answered;       /* the server answered this RCPT */
	bool next_host;      /* not about the address: try another host */
	bool retry_fallback; /* null sender refused, fallback not tried: reconnect with it */
	bool retry_plain;    /* TLS failed: reconnect to this host without it */
	bool requeue;        /* "too many recipients" past the first RCPT of the
	                        session: ask again in another session */
	bool catch_all;
	bool random_rejected; /* the random local part got a 5xx */
	bool fallback_used;   /* <> refused, the answer came with the fallback */
	bool tls;
	/* Evidence about the session rather than the address. */
	bool session_blocked;    /* several recipients refused alike by replies that
	                            blame us, none accepted: the server blocks us */
	bool cut;                /* (what ended the session) the server stopped in
	                            the middle of a transaction after answering
	                            RCPTs: a hang-up, a 421, silence */
	unsigned rcpts_answered; /* ... RCPT replies the session had by then */
	bool refused_last;       /* ... the last of them was a 5xx */
	bool proxy_failed;       /* the SOCKS proxy failed, not the host: no
	                            evidence about the host (no backoff) */
	/* postmaster@DOMAIN's answer in this session, if asked: a fact about
	 * the domain beside the outcome, never a part of it */
	callout_postmaster postmaster;
	int postmaster_code;
	char postmaster_enhanced[16];
} co_session_outcome;

/* One transaction: MAIL, then an RCPT per address, then the catch-all
 * probe, then the postmaster probe.  The caller owns it; the session
 * fills outs[]. */
typedef struct co_session_batch {
	unsigned n;
	const char *const *rcpts; /* n mailboxes */
	const char *random_rcpt;  /* catch-all probe, NULL: none */
	co_session_outcome *outs; /* n outcomes */
	/* postmaster@DOMAIN, NULL: none; its answer goes on every outcome of
	 * the session from then on */
	const char *postmaster_rcpt;
} co_session_batch;

/*
 * What the session tells its owner, always from the loop.
 * idle: ready for a batch (co_session_send), after the greeting (done is
 *   NULL) and after each batch (done, its outcomes filled).  The owner may
 *   send or quit from inside the callback, or later.
 * gone: the session is over and freed when this returns.  b is the batch
 *   in flight (its outcomes filled) or NULL; why says what ended it, for
 *   work that waited on the session.
 */
typedef struct co_session_events {
	void (*idle)(void *arg, co_session *s, co_session_batch *done);
	void (*gone)(void *arg, co_session_batch *b, const co_session_outcome *why);
} co_session_events;

/* Start connecting; NULL only when out of memory. */
co_session *co_session_start(struct event_base *base, const co_session_params *p,
                             const co_session_events *ev, void *arg);

/* Send a batch on an idle session: [RSET] MAIL RCPT... pipelined. */
void co_session_send(co_session *s, co_session_batch *b);

/* closed(arg) once its connection is gone (after the server answered
 * QUIT, or closed), perhaps after the session ended and was freed: what
 * it held at the server is free only then.  Exactly once. */
void co_session_on_closed(co_session *s, void (*closed)(void *arg), void *arg);

/* End it (QUIT when it can); no more callbacks.  Safe inside one. */
void co_session_quit(co_session *s);

/* Where it is now, for a deadline's verdict. */
callout_stage co_session_stage(const co_session *s);

/* Whether the connection is encrypted. */
bool co_session_tls(const co_session *s);

#endif
