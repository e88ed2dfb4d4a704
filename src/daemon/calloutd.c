/*
 * calloutd: SMTP callout verification as a service for mail servers and
 * applications -- a Postfix policy service, a milter and an HTTP JSON
 * API on one event loop and one libcallout engine (calloutd(8)).
 *
 * Start: read the config, bind every socket, drop privileges, open the
 * engine and its cache as the unprivileged user, serve.  SIGHUP reloads
 * the decisions (verify, mode, domains, replies) without dropping
 * anything; SIGTERM stops accepting, answers what is in flight and exits.
 * -t checks what start would: the file, the run user, the state
 * directory and the cache (opened as that user; Redis authenticated).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"
#include "frontends.h"
#include "option_table.h"
#include "proxy.h"

#define DEFAULT_CONFIG  CALLOUT_CONFIG_FILE /* meson: sysconfdir/callout */
#define DRAIN_MARGIN_MS 2000
/* Descriptors kept out of the front ends' budgets: stdio, listeners,
 * the loop, the cache, DNS, the bridge, the log. */
#define FD_RESERVE 64

typedef struct app {
	cd_daemon d;
	const char *config_path;
	const char *mode_override;
	bool stderr_override, debug_override;
	cd_policy *policy;
	cd_http *http;
	cd_milter *milter;
	struct event *sig_hup, *sig_term, *sig_int, *drain;
	struct timeval drain_deadline;
	int exit_status;
	/* The config file as opened at the start (as root): reload reads it
	 * when the unprivileged daemon may not open the path itself. */
	int config_fd;
	struct stat config_st;
} app;

static void usage(FILE *fp)
{
	fputs("Usage: calloutd [OPTIONS]\n"
	      "\n"
	      "SMTP callout verification service: Postfix policy delegation, milter and\n"
	      "HTTP JSON API (see calloutd(8) and calloutd.conf(5)).  Runs in the foreground.\n"
	      "\n"
	      "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
	      "  -t, --check-config  check the configuration, print a summary and exit\n"
	      "  -m, --mode MODE     override [daemon] mode: enforce, tag or dry-run\n"
	      "  -e, --stderr        log to standard error instead of syslog\n"
	      "  -d, --debug         log debugging detail\n"
	      "  -h, --help          show this help and exit\n"
	      "  -V, --version       show the version and exit\n"
	      "\n"
	      "Signals: HUP reloads the configuration, TERM and INT stop gracefully.\n"
	      "Exit status: 0 after a clean stop (or a valid configuration with -t),\n"
	      "1 when the configuration is invalid (with -t: or start would fail),\n"
	      "2 for a usage error, 3 when starting failed.\n",
	      fp);
}

/*
 * Read the config file.  After dropping privileges the path may be
 * readable by root only: then the descriptor opened at the start is read
 * again, as long as the path still names that file (edited in place).  A
 * file replaced since (a new inode) cannot be read: say so.
 */
static cd_config *read_config(app *a, char *err, size_t errlen)
{
	cd_config *c = cd_config_load(a->config_path, err, errlen);
	struct stat st;

	if (c || errno != EACCES || a->config_fd < 0)
		return c;
	if (stat(a->config_path, &st) == 0 && st.st_dev == a->config_st.st_dev &&
	    st.st_ino == a->config_st.st_ino)
		return cd_config_load_fd(a->config_fd, a->config_path, err, errlen);
	snprintf(err, errlen,
	         "%s: permission denied for user %s, and the file was replaced since the "
	         "start (the copy opened then is stale); make it readable by the user's "
	         "group, or restart",
	         a->config_path, a->d.cfg ? a->d.cfg->user : "?");
	errno = EACCES;
	return NULL;
}

/* Load the config and apply the command line's overrides. */
static cd_config *load(app *a, char *err, size_t errlen)
{
	cd_config *c = read_config(a, err, errlen);

	if (!c)
		return NULL;
	if (a->mode_override) {
		if (strcmp(a->mode_override, "enforce") == 0)
			c->mode = CD_MODE_ENFORCE;
		else if (strcmp(a->mode_override, "tag") == 0)
			c->mode = CD_MODE_TAG;
		else
			c->mode = CD_MODE_DRY_RUN;
	}
	if (a->stderr_override)
		c->log_stderr = true;
	if (a->debug_override)
		c->debug = true;
	return c;
}

/* The [proxy NAME] pools, once: the engine keeps them until it ends. */
static int add_proxies(callout_ctx *ctx, const cd_config *c)
{
	char shown[600];

	for (const cd_proxy *px = c->proxies; px; px = px->next) {
		callout_status st = callout_ctx_add_proxy(ctx, px->name, px->url, px->sessions);
		if (st != CALLOUT_OK) {
			cd_log(CD_LOG_ERR, "[proxy %s] url %s: %s (does every host resolve?)",
			       px->name, co_proxy_redact(px->url, shown, sizeof(shown)),
			       callout_strerror(st));
			return -1;
		}
	}
	return 0;
}

/* The [domain] sections' routes and proxies. */
static int add_routes(callout_ctx *ctx, const cd_config *c)
{
	for (const cd_domain *dom = c->domains; dom; dom = dom->next) {
		callout_status st;
		if (dom->route[0] &&
		    (st = callout_ctx_add_route(ctx, dom->name, dom->route)) != CALLOUT_OK) {
			cd_log(CD_LOG_ERR, "[domain %s] route %s: %s", dom->name, dom->route,
			       callout_strerror(st));
			return -1;
		}
		if (dom->proxy[0] &&
		    (st = callout_ctx_set_domain_proxy(ctx, dom->name, dom->proxy)) != CALLOUT_OK) {
			cd_log(CD_LOG_ERR,
			       "[domain %s] proxy %s: %s (a new [proxy] needs a restart)",
			       dom->name, dom->proxy, callout_strerror(st));
			return -1;
		}
	}
	return 0;
}

/* Whether the [proxy] sections or the domains' choice of them differ. */
static bool proxies_differ(const cd_config *o, const cd_config *n)
{
	const cd_proxy *a = o->proxies, *b = n->proxies;

	for (; a && b; a = a->next, b = b->next)
		if (strcmp(a->name, b->name) || strcmp(a->url, b->url) ||
		    a->sessions != b->sessions)
			return true;
	if (a || b)
		return true;
	for (const cd_domain *d = o->domains; d; d = d->next) {
		const cd_domain *e = cd_config_domain(n, d->name);
		if (d->proxy[0] && (!e || strcmp(d->proxy, e->proxy) != 0))
			return true; /* a choice taken away stays until the restart */
	}
	return false;
}

/* What a reload cannot change: sockets, the engine and its cache (every
 * engine option is read once, by callout_ctx_new()). */
static bool needs_restart(const cd_config *o, const cd_config *n)
{
	callout_options a, b;
	const co_optdef *opts;
	size_t nopts;
	bool engine = false;

	cd_config_options(o, &a);
	cd_config_options(n, &b);
	opts = co_opt_table(&nopts);
	for (size_t i = 0; i < nopts; i++)
		engine |= !co_opt_equal(&opts[i], &a, &b);
	return engine || o->npolicy_listen != n->npolicy_listen ||
	       memcmp(o->policy_listen, n->policy_listen, sizeof(o->policy_listen)) != 0 ||
	       o->nhttp_listen != n->nhttp_listen ||
	       memcmp(o->http_listen, n->http_listen, sizeof(o->http_listen)) != 0 ||
	       strcmp(o->milter_listen, n->milter_listen) != 0 || strcmp(o->user, n->user) != 0 ||
	       strcmp(o->state_dir, n->state_dir) != 0 || proxies_differ(o, n);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	app *a = arg;
	char err[512];
	(void)sig;
	(void)what;

	cd_config *c = load(a, err, sizeof(err));
	if (!c) {
		cd_log(CD_LOG_ERR, "reload failed, keeping the running configuration: %s", err);
		return;
	}
	if (needs_restart(a->d.cfg, c))
		cd_log(CD_LOG_WARNING,
		       "reload: changes to listen addresses, user, state_dir, "
		       "[engine], [cache] or [proxy] take effect at the next restart");
	add_routes(a->d.ctx, c); /* new and changed routes apply at once */
	cd_config_free(a->d.cfg);
	a->d.cfg = c;
	cd_log_open(c);
	cd_log(CD_LOG_INFO, "configuration reloaded from %s (mode %s)", a->config_path,
	       cd_mode_name(c->mode));
}

/* Work not answered yet; front ends count what waits outside cd_check
 * (queued requests), so some is counted twice: harmless for draining. */
static unsigned pending(const app *a)
{
	return a->d.inflight + (a->policy ? cd_policy_pending(a->policy) : 0) +
	       (a->http ? cd_http_pending(a->http) : 0) +
	       (a->milter ? cd_milter_pending(a->milter) : 0);
}

/* After SIGTERM: exit once everything in flight is answered, or when the
 * deadline passes (every answer is due within reply_within anyway). */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	app *a = arg;
	struct timeval now;
	(void)fd;
	(void)what;

	event_base_gettimeofday_cached(a->d.base, &now);
	if (pending(a) == 0 || evutil_timercmp(&now, &a->drain_deadline, >=)) {
		if (pending(a))
			cd_log(CD_LOG_WARNING, "stopping with %u requests unanswered", pending(a));
		event_base_loopexit(a->d.base, NULL);
	}
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	app *a = arg;
	(void)what;

	if (a->d.stopping)
		return;
	cd_log(CD_LOG_INFO, "signal %d: stopping; answering %u requests in flight", (int)sig,
	       pending(a));
	a->d.stopping = true;
	cd_quiet_stop();
	if (a->policy)
		cd_policy_close(a->policy);
	if (a->http)
		cd_http_close(a->http);
	if (a->milter)
		cd_milter_close(a->milter);
	struct timeval now, margin;
	unsigned ms = a->d.cfg->reply_within_ms + DRAIN_MARGIN_MS;
	event_base_gettimeofday_cached(a->d.base, &now);
	margin.tv_sec = ms / 1000;
	margin.tv_usec = (ms % 1000) * 1000;
	evutil_timeradd(&now, &margin, &a->drain_deadline);
	struct timeval tick = {0, 50000};
	a->drain = event_new(a->d.base, -1, EV_PERSIST, on_drain, a);
	if (a->drain)
		event_add(a->drain, &tick);
	else
		event_base_loopexit(a->d.base, NULL);
}

/*
 * Make the state directory, owned by the user we become, mode 0750.  Never
 * through a symbolic link: a state_dir that is (or was swapped for) a link
 * would hand the place it points to to the daemon's user.
 */
static int prepare_state_dir(const cd_config *c, const struct passwd *pw)
{
	int fd, rc = -1;

	if (mkdir(c->state_dir, 0750) < 0 && errno != EEXIST) {
		cd_log(CD_LOG_ERR, "state_dir %s: %s", c->state_dir, strerror(errno));
		return -1;
	}
	fd = open(c->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		cd_log(CD_LOG_ERR, "state_dir %s: %s", c->state_dir,
		       errno == ELOOP || errno == ENOTDIR
		           ? "not a directory (a symbolic link is not followed: give the real path)"
		           : strerror(errno));
		return -1;
	}
	if (pw && fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
		cd_log(CD_LOG_ERR, "state_dir %s: chown: %s", c->state_dir, strerror(errno));
		goto out;
	}
	if ((pw || geteuid() != 0) && fchmod(fd, 0750) < 0) {
		cd_log(CD_LOG_ERR, "state_dir %s: chmod: %s", c->state_dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* Become pw for good; -1 with errno set (EPERM when root could come back). */
static int become(const struct passwd *pw)
{
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return -1;
	if (setuid(0) == 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

static int drop_privileges(const cd_config *c, const struct passwd *pw)
{
	if (!pw)
		return 0;
	/* Unix sockets were made as root: hand them to the user. */
	for (size_t i = 0; i < c->npolicy_listen; i++)
		if (c->policy_listen[i].is_unix &&
		    chown(c->policy_listen[i].path, pw->pw_uid, pw->pw_gid) < 0)
			cd_log(CD_LOG_WARNING, "chown %s: %s", c->policy_listen[i].path,
			       strerror(errno));
	if (become(pw) < 0) {
		cd_log(CD_LOG_ERR, "cannot become user %s: %s", pw->pw_name, strerror(errno));
		return -1;
	}
	return 0;
}

/* An LMDB file that does not exist yet: can start create it? */
static void check_lmdb_create(const char *path, char *why, size_t len)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (!slash || (size_t)(slash - path) >= sizeof(dir))
		return;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (!dir[0] || stat(dir, &st) < 0)
		return; /* missing: start makes it (state_dir, or the cache's parents) */
	if (access(dir, W_OK | X_OK) < 0)
		snprintf(why, len, "lmdb:%.200s: cannot create it in %.200s: %.60s", path, dir,
		         strerror(errno));
}

/* Open the cache as the engine will (strictly: say why not).  "" in why
 * when it works. */
static void check_cache_here(const char *spec, char *why, size_t len)
{
	callout_cache *cc = NULL;
	struct stat st;

	why[0] = '\0';
	if (strcmp(spec, "none") == 0 || strcmp(spec, "memory") == 0)
		return;
	if (strncmp(spec, "lmdb:", 5) == 0) {
		if (stat(spec + 5, &st) < 0 && errno == ENOENT) {
			check_lmdb_create(spec + 5, why, len);
			return;
		}
		if (S_ISREG(st.st_mode) && access(spec + 5, R_OK | W_OK) < 0) {
			snprintf(why, len, "%s: %s", spec, strerror(errno));
			return;
		}
	}
	/* messages name the spec without its password */
	if (callout_cache_open(spec, &cc, why, len) == CALLOUT_OK) {
		why[0] = '\0';
		callout_cache_close(cc);
	}
}

/* The same as the user start becomes (pw; NULL: as we are). */
static void check_cache(const char *spec, const struct passwd *pw, char *why, size_t len)
{
	int fds[2];

	if (!pw || geteuid() != 0) {
		check_cache_here(spec, why, len);
		return;
	}
	if (pipe(fds) < 0) {
		snprintf(why, len, "cannot check the cache: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, len, "cannot check the cache: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		if (become(pw) < 0)
			snprintf(why, len, "cannot become user %s: %s", pw->pw_name,
			         strerror(errno));
		else
			check_cache_here(spec, why, len);
		ssize_t n = write(fds[1], why, strlen(why));
		_exit(n < 0);
	}
	close(fds[1]);
	size_t got = 0;
	for (ssize_t n; got < len - 1 && (n = read(fds[0], why + got, len - 1 - got)) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	why[got] = '\0';
	close(fds[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* What start needs beyond a valid file; 0, or -1 after saying why. */
static int check_startable(const cd_config *c, const char *cache_shown)
{
	struct passwd *pw = NULL;
	struct stat st;
	char why[512];

	if (c->user[0] && !(pw = getpwnam(c->user))) {
		fprintf(stderr, "calloutd: [daemon] user %s: no such user\n", c->user);
		return -1;
	}
	if (lstat(c->state_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "calloutd: [daemon] state_dir %s: %s\n", c->state_dir,
		        S_ISLNK(st.st_mode) ? "a symbolic link (not followed: give the real path)"
		                            : "not a directory");
		return -1;
	}
	check_cache(c->cache, pw, why, sizeof(why));
	if (why[0]) {
		fprintf(stderr, "calloutd: [cache] %s cannot be used%s%s: %s\n", cache_shown,
		        pw ? " by user " : "", pw ? pw->pw_name : "", why);
		return -1;
	}
	return 0;
}

/*
 * Share the descriptors among the front ends, so that no flood of one
 * of them runs the process out: the soft RLIMIT_NOFILE is raised to the
 * hard one, then the policy service and the HTTP API get a quarter each
 * of what is left after FD_RESERVE; the other half is the engine's (its
 * SMTP and DNS sockets) and the milter's.  A front end's connection cap
 * is the smaller of its configured max_connections and its budget.
 */
static unsigned long long fd_budgets(cd_daemon *d)
{
	struct rlimit rl;
	rlim_t total, n;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = {rl.rlim_max, rl.rlim_max};

		/* no limit at all is still a budget: a million */
		if (raised.rlim_cur == RLIM_INFINITY || raised.rlim_cur > 1048576)
			raised.rlim_cur = 1048576;
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = raised.rlim_cur;
	}
	total = rl.rlim_cur == RLIM_INFINITY ? 1048576 : rl.rlim_cur;
	n = total > 2 * FD_RESERVE ? total - FD_RESERVE : total / 2;
	d->policy_fds = d->http_fds = (unsigned)(n / 4 ? n / 4 : 1);
	return (unsigned long long)total;
}

/* -t: every [engine] and [cache] option of the table with its value. */
static void print_options(const cd_config *c)
{
	callout_options o;
	const co_optdef *opts;
	size_t n;
	char buf[4096], shown[512];

	cd_config_options(c, &o);
	opts = co_opt_table(&n);
	for (size_t i = 0; i < n; i++) {
		const char *v = co_opt_format(&opts[i], &o, buf, sizeof(buf));
		if (strcmp(opts[i].name, "cache") == 0)
			v = callout_cache_spec_redact(v, shown, sizeof(shown));
		else if (strcmp(opts[i].name, "proxy") == 0)
			v = co_proxy_redact(v, shown, sizeof(shown));
		printf("  [%s] %s = %s\n", opts[i].section, opts[i].name, v);
	}
}

static int check_config(app *a)
{
	char err[512], shown[512];
	cd_config *c = load(a, err, sizeof(err));

	if (!c) {
		int rc = errno == ENOMEM ? 3 : 1; /* our fault, not the file's */
		fprintf(stderr, "calloutd: %s\n", err);
		return rc;
	}
	callout_cache_spec_redact(c->cache, shown, sizeof(shown));
	if (check_startable(c, shown) < 0) {
		cd_config_free(c);
		return 1;
	}
	printf("%s: configuration OK\n", a->config_path);
	printf("  mode %s, reply within %u ms, cache %s\n", cd_mode_name(c->mode),
	       c->reply_within_ms, shown);
	if (c->tag_no_postmaster)
		printf("  no_postmaster tag (senders of domains that refuse postmaster)\n");
	if (c->user[0])
		printf("  user %s\n", c->user);
	for (size_t i = 0; i < c->npolicy_listen; i++)
		printf("  policy %s%s:%u\n", c->policy_listen[i].is_unix ? "unix:" : "inet:",
		       c->policy_listen[i].is_unix ? c->policy_listen[i].path
		                                   : c->policy_listen[i].host,
		       c->policy_listen[i].port);
	for (size_t i = 0; i < c->nhttp_listen; i++)
		printf("  http inet:%s:%u\n", c->http_listen[i].host, c->http_listen[i].port);
	if (c->milter_listen[0])
		printf("  milter %s\n", c->milter_listen);
	print_options(c);
	cd_daemon d = {0};
	printf("  descriptors: %llu\n", fd_budgets(&d));
	printf("  policy limits: max_connections %u (of %u configured), max_client_connections "
	       "%u, request_timeout %u ms\n",
	       cd_fe_cap(c->policy_max_connections, d.policy_fds), c->policy_max_connections,
	       c->policy_max_client_connections, c->policy_request_timeout_ms);
	printf("  http limits: max_connections %u (of %u configured), max_client_connections %u, "
	       "request_timeout %u ms, max_body %u bytes\n",
	       cd_fe_cap(c->http_max_connections, d.http_fds), c->http_max_connections,
	       c->http_max_client_connections, c->http_request_timeout_ms, c->http_max_body);
	cd_config_free(c);
	return 0;
}

static int parse_args(app *a, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 't'},
	    {"mode", required_argument, NULL, 'm'},   {"stderr", no_argument, NULL, 'e'},
	    {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	bool check = false;
	int c;

	a->config_path = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:tm:edhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->config_path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'm':
			if (strcmp(optarg, "enforce") && strcmp(optarg, "tag") &&
			    strcmp(optarg, "dry-run")) {
				fprintf(stderr,
				        "calloutd: --mode: expected enforce, tag or dry-run\n");
				return 2;
			}
			a->mode_override = optarg;
			break;
		case 'e':
			a->stderr_override = true;
			break;
		case 'd':
			a->debug_override = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("calloutd %s\n", callout_version());
			return 0;
		default:
			fputs("Try 'calloutd --help' for more information.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "calloutd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return check ? check_config(a) : -1;
}

static int start(app *a)
{
	char err[512], shown[512];
	struct passwd *pw = NULL;
	callout_options o;
	cd_config *c = a->d.cfg;

	if (c->user[0]) {
		if (!(pw = getpwnam(c->user))) {
			cd_log(CD_LOG_ERR, "user %s: no such user", c->user);
			return -1;
		}
		if (geteuid() != 0) {
			if (geteuid() != pw->pw_uid) {
				cd_log(CD_LOG_ERR, "user = %s needs to start as root", c->user);
				return -1;
			}
			pw = NULL; /* already that user */
		}
	}
	/* Files we make (the cache, its lock) are ours and our group's only. */
	umask(027);
	if (prepare_state_dir(c, pw) < 0)
		return -1;
	unsigned long long nfd = fd_budgets(&a->d);
	cd_log(CD_LOG_INFO, "descriptors: %llu; budgets: policy %u, http %u, the rest the engine's",
	       nfd, a->d.policy_fds, a->d.http_fds);
	if (!(a->d.metrics = cd_metrics_new())) {
		cd_log(CD_LOG_ERR, "cannot start: out of memory");
		return -1;
	}
	if (cd_bridge_init(&a->d) < 0) {
		/* calloc, eventfd or libevent: errno says which trouble */
		cd_log(CD_LOG_ERR, "cannot start the milter bridge: %s", strerror(errno));
		return -1;
	}
	/* Every socket first, while we may still bind privileged ports. */
	if ((c->npolicy_listen && !(a->policy = cd_policy_new(&a->d, err, sizeof(err)))) ||
	    (c->nhttp_listen && !(a->http = cd_http_new(&a->d, err, sizeof(err)))) ||
	    (c->milter_listen[0] && !(a->milter = cd_milter_new(&a->d, err, sizeof(err))))) {
		cd_log(CD_LOG_ERR, "%s", err);
		return -1;
	}
	if (drop_privileges(c, pw) < 0)
		return -1;
	/* The engine and its cache file belong to the unprivileged user. */
	cd_config_options(c, &o);
	o.log = cd_log_engine;
	/* each probe's steps, at log_level debug (the cost of formatting
	 * them is not paid otherwise) */
	if (c->debug)
		o.trace = cd_log_trace;
	callout_status st = callout_ctx_new(a->d.base, &o, &a->d.ctx);
	if (st != CALLOUT_OK) {
		cd_log(CD_LOG_ERR, "cannot start the engine: %s", callout_strerror(st));
		return -1;
	}
	callout_cache_spec_redact(c->cache, shown, sizeof(shown));
	callout_health h;
	if (callout_ctx_health(a->d.ctx, &h, sizeof(h)) == CALLOUT_OK && !h.cache_up)
		cd_log(CD_LOG_ERR,
		       "cache %s cannot be used: %s; every answer is probed until it works "
		       "(retried; /healthz says degraded)",
		       shown, h.cache_error);
	if (add_proxies(a->d.ctx, c) < 0 || add_routes(a->d.ctx, c) < 0)
		return -1;
	/* a store that cannot be opened costs the jobs, not the daemon */
	if (cd_http_jobs_start(a->http, err, sizeof(err)) < 0)
		cd_log(CD_LOG_ERR, "%s; /v1/jobs answers 503", err);
	if (a->milter && cd_milter_start(a->milter, err, sizeof(err)) < 0) {
		cd_log(CD_LOG_ERR, "%s", err);
		return -1;
	}
	a->sig_hup = evsignal_new(a->d.base, SIGHUP, on_hup, a);
	a->sig_term = evsignal_new(a->d.base, SIGTERM, on_term, a);
	a->sig_int = evsignal_new(a->d.base, SIGINT, on_term, a);
	if (!a->sig_hup || !a->sig_term || !a->sig_int || event_add(a->sig_hup, NULL) < 0 ||
	    event_add(a->sig_term, NULL) < 0 || event_add(a->sig_int, NULL) < 0) {
		cd_log(CD_LOG_ERR, "cannot set up signal handling");
		return -1;
	}
	cd_log(CD_LOG_INFO, "calloutd %s started: mode %s, cache %s%s%s%s", callout_version(),
	       cd_mode_name(c->mode), shown, a->policy ? ", policy service" : "",
	       a->milter ? ", milter" : "", a->http ? ", HTTP API" : "");
	return 0;
}

static void shutdown_all(app *a)
{
	/* Front ends first (the milter's thread joins), then the engine:
	 * callout_ctx_free answers what is left with ECANCELLED. */
	if (a->milter)
		cd_milter_free(a->milter);
	if (a->policy)
		cd_policy_free(a->policy);
	if (a->http)
		cd_http_free(a->http);
	if (a->d.bridge)
		cd_bridge_free(&a->d);
	/* Stopping already: a second SIGTERM (or a HUP) must not cut the
	 * teardown short once the signal events are gone (the QUITs, the
	 * cache's last writes), nor turn a clean stop into a kill.  Freeing
	 * the events gives the signals back their default action, so they
	 * are blocked over it and ignored after. */
	sigset_t stop_sigs, old_mask;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop_sigs, &old_mask);
	struct event *evs[] = {a->sig_hup, a->sig_term, a->sig_int, a->drain};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	if (a->d.ctx)
		callout_ctx_free(a->d.ctx);
	if (a->d.base) {
		/* Let closing SMTP connections send their QUIT and free
		 * themselves (their lingering is bounded). */
		event_base_dispatch(a->d.base);
		event_base_free(a->d.base);
	}
	cd_metrics_free(a->d.metrics);
	cd_config_free(a->d.cfg);
	if (a->config_fd >= 0)
		close(a->config_fd);
}

int main(int argc, char **argv)
{
	app a = {.config_fd = -1};
	char err[512];
	int rc = parse_args(&a, argc, argv);

	if (rc >= 0)
		return rc;
	/* A peer that hangs up must not kill us on the next write. */
	signal(SIGPIPE, SIG_IGN);
	if (!(a.d.cfg = load(&a, err, sizeof(err)))) {
		/* Out of memory is a failure to start, not an invalid file. */
		rc = errno == ENOMEM ? 3 : 1;
		fprintf(stderr, "calloutd: %s\n", err);
		return rc;
	}
	/* Kept for reload, when only root may open the file. */
	a.config_fd = open(a.config_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (a.config_fd >= 0 && fstat(a.config_fd, &a.config_st) < 0) {
		close(a.config_fd);
		a.config_fd = -1;
	}
	cd_log_open(a.d.cfg);
	if (!(a.d.base = event_base_new())) {
		cd_log(CD_LOG_ERR, "cannot create the event loop");
		cd_config_free(a.d.cfg);
		close(a.config_fd);
		return 3;
	}
	if (start(&a) < 0) {
		shutdown_all(&a);
		return 3;
	}
	event_base_dispatch(a.d.base);
	cd_log(CD_LOG_INFO, "stopped");
	shutdown_all(&a);
	return 0;
}
