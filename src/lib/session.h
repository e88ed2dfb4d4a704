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
	const char *mail_from;     /* mailbox, "" for the null sender */
	const char *fallback_from; /* used after a refused null sender; NULL: none */
	const char *rcpt;          /* the mailbox verified */
	const char *random_rcpt;   /* catch-all probe, NULL: none */
	bool smtputf8;             /* the addresses need SMTPUTF8 */
	bool vrfy;
	bool pipelining;           /* use it when offered */
	SSL_CTX *tls;              /* STARTTLS when offered; NULL: never */
	const char *tls_name;      /* SNI, may be NULL */
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
	bool next_host;          /* not about the address: try another host */
	bool retry_fallback;     /* null sender refused, fallback not tried: reconnect with it */
	bool retry_plain;        /* TLS failed: reconnect to this host without it */
	bool catch_all;
	bool random_rejected;    /* the random local part got a 5xx */
	bool fallback_used;      /* <> refused, the answer came with the fallback */
	bool tls;
} co_session_outcome;

/* Called once, from the loop; the session is gone when it returns. */
typedef void (*co_session_cb)(void *arg, const co_session_outcome *out);

/* Start; NULL only when out of memory. */
co_session *co_session_start(struct event_base *base, const co_session_params *p,
                             co_session_cb cb, void *arg);

/* Abandon (deadline, cancel): sends QUIT when it can; no callback. */
void co_session_cancel(co_session *s);

/* Where it is now, for a deadline's verdict. */
callout_stage co_session_stage(const co_session *s);

#endif
