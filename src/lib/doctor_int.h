/*
 * The inside of a doctor's run (callout_doctor in callout.h), shared by
 * the files that make it up:
 *   doctor.c        the run: options, the start, the deadline, the report
 *   doctor_smtp.c   the target: its addresses, the connection, the SMTP
 *                   dialogue (banner, EHLO, STARTTLS, the handshake)
 *   doctor_dns.c    the lookups about our side (the HELO name, the egress
 *                   address's PTR and the PTR name, the blocklists) and the
 *                   small c-ares channel they go on
 *   doctor_judge.c  the verdicts: the facts gathered, judged into checks
 *   doctor_parse.c  the pure parts (doctor_parse.h)
 * Not for other files.
 */
#ifndef CO_DOCTOR_INT_H
#define CO_DOCTOR_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include <callout/callout.h>

#include "clock.h"
#include "dns.h"
#include "hostport.h"
#include "netcheck.h"
#include "reply.h"

struct bufferevent;

#define DOC_TARGETS (CO_DNS_HOSTS_MAX * CO_DNS_ADDRS_MAX)
#define DOC_ZONES   8
#define DOC_ADDRS   16
#define DOC_DETAIL  320

/* The checks of the report, in its order (check names: doctor_judge.c). */
enum { C_CONNECT, C_EGRESS, C_PTR, C_FCRDNS, C_HELO, C_DNSBL, C_STARTTLS, C_CLOCK, C_COUNT };

enum phase { P_IDLE, P_CONNECT, P_BANNER, P_EHLO, P_STARTTLS, P_TLS, P_QUIT, P_DONE };

/* The small c-ares channel of the lookups (doctor_dns.c). */
typedef struct co_rdns co_rdns;

/* What a lookup found, exactly: NXDOMAIN apart from SERVFAIL. */
typedef enum co_rdns_status {
	CO_RDNS_OK = 0,   /* answers[] has at least one entry */
	CO_RDNS_NXDOMAIN, /* the name does not exist */
	CO_RDNS_NODATA,   /* the name exists, but without this type */
	CO_RDNS_TEMPFAIL  /* SERVFAIL, REFUSED, timeout, garbage: could not tell */
} co_rdns_status;

/* servers as co_dns_new(); NULL with a reason in err on failure. */
co_rdns *co_rdns_new(struct event_base *base, const char *servers, unsigned timeout_ms, char *err,
                     size_t errlen);
/* Drops every lookup in flight (no callbacks). */
void co_rdns_free(co_rdns *r);

/* An address of the target to connect to. */
struct target {
	char name[256];
	struct sockaddr_storage ss;
	socklen_t len;
};

/* A/AAAA of one name. */
struct fwd {
	callout_doctor *d;
	char name[256];
	bool asked;
	unsigned left; /* queries outstanding */
	bool temp, exists;
	char why[64];
	unsigned n;
	char addrs[DOC_ADDRS][INET6_ADDRSTRLEN];
};

/* A blocklist zone and its answer about the egress address. */
struct zone {
	callout_doctor *d;
	char name[256];
	bool asked, answered;
	int listed;
	char detail[160];
};

struct callout_doctor {
	struct event_base *base;
	callout_doctor_cb cb;
	void *arg;
	long long t0; /* co_clock_ms() at the start */
	/* options */
	char target[256];
	bool by_mx;
	co_hostport hp;
	unsigned port;
	char helo[256];
	bool has_source;
	struct sockaddr_storage source;
	socklen_t source_len;
	unsigned conn_ms, cmd_ms, max_mx;
	bool allow_private;
	long long (*clock)(void *arg);
	void *clock_arg;
	/* machinery */
	co_dns *dns;
	co_dns_req *dns_req;
	co_rdns *rdns;
	co_netcheck *nc;
	SSL_CTX *tls;
	struct event *deadline, *done;
	unsigned pending; /* lookups outstanding */
	bool smtp_active, timed_out, finishing;
	/* the target */
	bool resolved;
	char resolve_err[512];
	struct target targets[DOC_TARGETS];
	unsigned ntargets, next, tried, refused_private;
	char private_why[64];
	/* the SMTP session */
	enum phase phase;
	struct bufferevent *bev;
	long long tconn; /* co_clock_ms() at the connect */
	co_reply reply;
	co_caps caps;
	bool ehlo_first;
	char conn_err[400];
	bool connected;
	unsigned connect_ms;
	char mx[256], ip[INET6_ADDRSTRLEN];
	int banner_code;
	char banner[160];
	bool have_date;
	long long banner_date, banner_now;
	char smtp_err[192];
	int ehlo_code;
	char ehlo_text[128];
	enum { TLS_NONE, TLS_OK, TLS_FAILED, TLS_REFUSED } tls_state;
	char tls_detail[192];
	/* our side */
	bool have_egress, egress_configured;
	struct sockaddr_storage egress;
	char egress_text[INET6_ADDRSTRLEN];
	bool ptr_asked, ptr_answered;
	co_rdns_status ptr_status;
	char ptr_name[256], ptr_why[64];
	struct fwd helo_fwd, ptr_fwd;
	struct zone zones[DOC_ZONES];
	unsigned nzones;
	/* the report */
	char details[C_COUNT][DOC_DETAIL];
	callout_doctor_check checks[C_COUNT];
	callout_doctor_listing listings[DOC_ZONES];
};

/* The run ends once nothing is outstanding (doctor.c's on_done). */
static inline void maybe_finish(callout_doctor *d)
{
	if (d->pending == 0 && !d->smtp_active && !d->finishing) {
		d->finishing = true;
		event_active(d->done, 0, 0);
	}
}

/* Milliseconds since t, a reading of co_clock_ms(). */
static inline unsigned ms_since(long long t)
{
	return (unsigned)(co_clock_ms(NULL, NULL) - t);
}

/* Now in Unix seconds: the caller's clock, if any (tests). */
static inline long long now_s(const callout_doctor *d)
{
	return d->clock ? d->clock(d->clock_arg) : (long long)time(NULL);
}

/* ---- doctor_smtp.c ---- */

/* Resolve the target, then connect to its addresses in turn and talk to
 * the first that answers; false when out of memory. */
bool co_doctor_smtp_start(callout_doctor *d);
/* The run's deadline passed: note what it cut short of the session. */
void co_doctor_smtp_deadline(callout_doctor *d);

/* ---- doctor_dns.c ---- */

/* Look up the A and AAAA records of name into f. */
void co_doctor_fwd_start(callout_doctor *d, struct fwd *f, const char *name);
/* Our egress address is ss (configured: the source address): look up its
 * PTR and ask every blocklist about it; only the first call counts. */
void co_doctor_egress_known(callout_doctor *d, const struct sockaddr_storage *ss, bool configured);

/* ---- doctor_judge.c ---- */

/* Judge the facts gathered into d->checks and d->listings. */
void co_doctor_judge(callout_doctor *d);

#endif
