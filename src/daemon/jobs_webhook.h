/*
 * A bulk job's webhook: one POST of a small JSON summary when the job
 * ends, signed with HMAC-SHA256 ([http] webhook_secret) in
 * X-Callout-Signature: sha256=HEX, retried with backoff.
 */
#ifndef CD_JOBS_WEBHOOK_H
#define CD_JOBS_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

#define CD_WEBHOOK_URL_MAX 2048
#define CD_WEBHOOK_TRIES   4 /* the first and three more: after 1, 4 and 16 s */

/*
 * A webhook URL as a request gives it: http://HOST[:PORT][/PATH].  An IP
 * address must be public unless allow_private, and goes into ip; a host
 * name is only checked for its form here (ip ""): it is resolved, and its
 * address checked, when the webhook is sent.  false with msg.
 */
bool cd_webhook_check(const char *url, bool allow_private, char *ip, size_t iplen, char *msg,
                      size_t len);

/* sha256=HEX of body under secret ("" makes the key empty) into out
 * (at least 72 bytes). */
void cd_webhook_signature(const char *secret, const char *body, size_t len, char *out);

typedef struct cd_webhook cd_webhook;

/* How webhooks are sent: calloutd's [http] and [engine] settings. */
typedef struct cd_webhook_conf {
	const char *secret;      /* webhook_secret */
	const char *dns_servers; /* "IP[:PORT],..."; NULL: /etc/resolv.conf */
	bool allow_private;      /* webhook_allow_private */
} cd_webhook_conf;

/* POST body to url at ip (cd_webhook_check's; "" or NULL: resolve the
 * URL's host at each attempt), up to CD_WEBHOOK_TRIES times until a 2xx;
 * done(arg, delivered) once at the end, from the loop.  NULL when out of
 * memory or the URL does not parse. */
cd_webhook *cd_webhook_send(struct event_base *base, const char *url, const char *ip,
                            const cd_webhook_conf *conf, const char *body, const char *job,
                            void (*done)(void *arg, bool delivered), void *arg);
/* No callback, nothing more sent. */
void cd_webhook_cancel(cd_webhook *w);

#endif
