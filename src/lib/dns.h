/* DNS for callouts: c-ares on the libevent loop. */
#ifndef CO_DNS_H
#define CO_DNS_H

#include <stdbool.h>
#include <sys/socket.h>

struct event_base;

#define CO_DNS_HOSTS_MAX 16 /* MX hosts kept per domain, at most */
#define CO_DNS_ADDRS_MAX 8  /* addresses kept per host, at most */

typedef struct co_dns co_dns;
typedef struct co_dns_req co_dns_req;

typedef enum co_dns_status {
	CO_DNS_OK = 0,   /* hosts[] holds at least one host with an address */
	CO_DNS_NXDOMAIN, /* the domain does not exist */
	CO_DNS_NULL_MX,  /* RFC 7505 "MX 0 ." */
	CO_DNS_NO_HOST,  /* no MX and no A/AAAA, or no MX host has an address */
	CO_DNS_TEMPFAIL  /* SERVFAIL, REFUSED, timeout, malformed answer */
} co_dns_status;

typedef struct co_dns_host {
	char name[256]; /* host name, lower case, no trailing dot */
	unsigned pref;  /* MX preference; index in names[] for routes */
	unsigned port;  /* 0: caller's default */
	unsigned naddr;
	struct sockaddr_storage addr[CO_DNS_ADDRS_MAX]; /* IPv6 first, then IPv4; port 0 */
} co_dns_host;

typedef struct co_dns_result {
	co_dns_status status;
	bool implicit_mx; /* no MX record: the domain's own A/AAAA */
	unsigned nhosts;
	co_dns_host *hosts; /* ordered: preference, equal ones shuffled */
	char detail[128];   /* failures: e.g. "SERVFAIL looking up MX for example.com" */
} co_dns_result;

/* Called once from the loop unless cancelled; res is borrowed. */
typedef void (*co_dns_cb)(void *arg, const co_dns_result *res);

/*
 * servers: "IP[:PORT],..." (IPv6 in brackets when a port is given), or NULL
 * for /etc/resolv.conf.  timeout_ms per try.  Returns NULL on failure with
 * a reason in err, and errno ENOMEM when that reason is out of memory
 * (not the servers, not resolv.conf).
 */
co_dns *co_dns_new(struct event_base *base, const char *servers, unsigned timeout_ms, char *err,
                   size_t errlen);
/* Cancels every request in flight (their callbacks are not called). */
void co_dns_free(co_dns *dns);

/*
 * Resolve the mail hosts of domain (an A-label): MX records sorted by
 * preference with equal preferences shuffled, null MX detected, CNAMEs
 * followed, implicit MX when there is no MX record, then the AAAA and A
 * addresses of at most max_hosts hosts.  Hosts without any address are
 * dropped.  NULL on allocation failure.
 */
co_dns_req *co_dns_resolve_mx(co_dns *dns, const char *domain, unsigned max_hosts, co_dns_cb cb,
                              void *arg);

/*
 * Resolve a fixed list of hosts (a call-forward route) in the given order:
 * names[i] is a host name or an IP literal (IPv6 without brackets); ports[i]
 * is copied to the result.  Status CO_DNS_NO_HOST when none resolves,
 * CO_DNS_TEMPFAIL when none resolves and one lookup failed temporarily.
 */
co_dns_req *co_dns_resolve_hosts(co_dns *dns, const char *const *names, const unsigned *ports,
                                 unsigned n, co_dns_cb cb, void *arg);

/* Stop a request; its callback will not be called. */
void co_dns_cancel(co_dns_req *req);

#endif
