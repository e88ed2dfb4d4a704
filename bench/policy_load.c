/*
 * policy-load: a load generator for calloutd's Postfix policy service.
 *
 *   policy-load HOST PORT CONNS TOTAL PREFIX SUFFIX [CYCLE [DEPTH]]
 *
 * Opens CONNS connections to HOST:PORT and sends TOTAL requests in all, as
 * Postfix's smtpd asks at RCPT time, with sender PREFIX<k>SUFFIX, where k
 * counts 0, 1, 2 ... (each request a new address: uncached) or, with CYCLE
 * > 0, k = request number mod CYCLE (addresses already in the cache).
 * Each connection has DEPTH requests in flight (default 1: what Postfix
 * does -- one smtpd process, one request, wait for the answer).
 *
 * Prints one JSON object: {"n", "conns", "depth", "seconds", "per_second",
 * "actions": {"DUNNO": n, ...}, "errors"}.  Exit status 1 when a
 * connection failed or not every request got an answer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF        8192
#define WBUF        8192
#define MAX_ACTIONS 16

typedef struct conn {
	int fd;
	unsigned inflight; /* requests sent, answer not yet read */
	size_t wlen, woff;
	size_t rlen;
	char w[WBUF];
	char r[RBUF];
} conn;

static struct {
	char name[32];
	unsigned long n;
} actions[MAX_ACTIONS];
static unsigned nactions;

static unsigned long total, sent, answered, cycle;
static const char *prefix, *suffix;
static unsigned depth = 1;
static unsigned long errors;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_action(const char *line, size_t len)
{
	/* "action=WORD ..." */
	const char *v = line + 7;
	size_t n = 0;
	while (v + n < line + len && v[n] != ' ' && n < sizeof(actions[0].name) - 1)
		n++;
	for (unsigned i = 0; i < nactions; i++)
		if (strlen(actions[i].name) == n && memcmp(actions[i].name, v, n) == 0) {
			actions[i].n++;
			return;
		}
	if (nactions < MAX_ACTIONS) {
		memcpy(actions[nactions].name, v, n);
		actions[nactions].name[n] = '\0';
		actions[nactions++].n = 1;
	}
}

/* Queue requests until the connection has `depth` in flight. */
static void fill(conn *c)
{
	while (c->inflight < depth && sent < total && WBUF - c->wlen > 1024) {
		unsigned long k = cycle ? sent % cycle : sent;
		int n = snprintf(c->w + c->wlen, WBUF - c->wlen,
		                 "request=smtpd_access_policy\nprotocol_state=RCPT\n"
		                 "protocol_name=ESMTP\nclient_address=192.0.2.1\n"
		                 "client_name=client.bench.test\nhelo_name=client.bench.test\n"
		                 "queue_id=\ninstance=bench.%lu\nsender=%s%lu%s\n"
		                 "recipient=rcpt@example.com\nsize=0\n\n",
		                 sent, prefix, k, suffix);
		if (n < 0 || (size_t)n >= WBUF - c->wlen)
			break;
		c->wlen += (size_t)n;
		c->inflight++;
		sent++;
	}
}

static int do_write(conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->w + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -1;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	return 0;
}

/* Read answers: "action=...\n\n" each.  -1 on error or EOF. */
static int do_read(conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->r + c->rlen, RBUF - c->rlen);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->rlen += (size_t)n;
		char *p = c->r, *end = c->r + c->rlen, *e;
		while ((e = memmem(p, (size_t)(end - p), "\n\n", 2)) != NULL) {
			if (e - p >= 7 && memcmp(p, "action=", 7) == 0)
				count_action(p, (size_t)(e - p));
			else
				errors++;
			answered++;
			c->inflight--;
			p = e + 2;
		}
		c->rlen = (size_t)(end - p);
		memmove(c->r, p, c->rlen);
		if (c->rlen == RBUF)
			return -1;
	}
}

int main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr,
		        "usage: policy-load HOST PORT CONNS TOTAL PREFIX SUFFIX [CYCLE [DEPTH]]\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "policy-load: bad IPv4 address %s\n", argv[1]);
		return 2;
	}
	unsigned nconns = (unsigned)strtoul(argv[3], NULL, 10);
	total = strtoul(argv[4], NULL, 10);
	prefix = argv[5];
	suffix = argv[6];
	if (argc > 7)
		cycle = strtoul(argv[7], NULL, 10);
	if (argc > 8)
		depth = (unsigned)strtoul(argv[8], NULL, 10);
	if (nconns == 0 || depth == 0 || depth > 8) {
		fprintf(stderr, "policy-load: CONNS >= 1, 1 <= DEPTH <= 8\n");
		return 2;
	}
	conn *conns = calloc(nconns, sizeof(conn));
	int ep = epoll_create1(0);
	if (!conns || ep < 0) {
		perror("policy-load");
		free(conns);
		return 1;
	}
	for (unsigned i = 0; i < nconns; i++) {
		conn *c = &conns[i];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			fprintf(stderr, "policy-load: connect %s:%s: %s\n", argv[1], argv[2],
			        strerror(errno));
			free(conns);
			return 1;
		}
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	double t0 = now();
	for (unsigned i = 0; i < nconns; i++) {
		fill(&conns[i]);
		if (do_write(&conns[i]) < 0)
			errors++;
	}
	struct epoll_event evs[256];
	int failed = 0;
	while (answered < total && !failed) {
		int n = epoll_wait(ep, evs, 256, 30000);
		if (n == 0) {
			fprintf(stderr, "policy-load: no answer for 30 s (%lu of %lu)\n", answered,
			        total);
			failed = 1;
		}
		for (int i = 0; i < n; i++) {
			conn *c = evs[i].data.ptr;
			if (do_read(c) < 0) {
				fprintf(stderr, "policy-load: connection lost\n");
				failed = 1;
				break;
			}
			fill(c);
			if (do_write(c) < 0) {
				failed = 1;
				break;
			}
		}
	}
	double secs = now() - t0;
	printf("{\"n\":%lu,\"conns\":%u,\"depth\":%u,\"seconds\":%.3f,\"per_second\":%.1f,"
	       "\"errors\":%lu,\"actions\":{",
	       answered, nconns, depth, secs, secs > 0 ? (double)answered / secs : 0.0, errors);
	for (unsigned i = 0; i < nactions; i++)
		printf("%s\"%s\":%lu", i ? "," : "", actions[i].name, actions[i].n);
	printf("}}\n");
	for (unsigned i = 0; i < nconns; i++)
		close(conns[i].fd);
	close(ep);
	free(conns);
	return failed || errors || answered != total;
}
