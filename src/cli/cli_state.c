/*
 * Where the command line keeps its state: the default cache file, shared
 * with calloutd and every other `callout` run on the host when the
 * system state directory is writable, else per user.  And what the
 * environment may set for tests: the clock, private addresses.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* mkdir -p, for the last two components at most (…/state/callout). */
static bool make_dir(const char *dir)
{
	char parent[4096];
	const char *slash = strrchr(dir, '/');

	if (access(dir, W_OK | X_OK) == 0)
		return true;
	if (errno != ENOENT)
		return false;
	if (slash && slash != dir && (size_t)(slash - dir) < sizeof(parent)) {
		memcpy(parent, dir, (size_t)(slash - dir));
		parent[slash - dir] = '\0';
		if (access(parent, F_OK) != 0 && mkdir(parent, 0700) != 0 && errno != EEXIST)
			return false;
	}
	return (mkdir(dir, 0755) == 0 || errno == EEXIST) && access(dir, W_OK | X_OK) == 0;
}

const char *cli_cache_spec(const char *opt, char *buf, size_t len)
{
	const char *env = getenv("CALLOUT_CACHE");
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char dir[4096];

	if (opt)
		return opt;
	if (env && *env)
		return env;
	if (make_dir(CLI_STATE_DIR)) {
		snprintf(buf, len, "lmdb:%s/cache.lmdb", CLI_STATE_DIR);
		return buf;
	}
	if (xdg && xdg[0] == '/')
		snprintf(dir, sizeof(dir), "%s/callout", xdg);
	else
		snprintf(dir, sizeof(dir), "%s/.local/state/callout",
		         home && *home ? home : "/tmp");
	/* A directory we cannot make is the LMDB backend's fault to report:
	 * verification goes on uncached. */
	make_dir(dir);
	snprintf(buf, len, "lmdb:%s/cache.lmdb", dir);
	return buf;
}

/* A file's owner, or its directory's when it does not exist yet. */
static bool cache_owner(const char *path, struct stat *st)
{
	char dir[4096];
	const char *slash;

	if (stat(path, st) == 0)
		return true;
	if (errno != ENOENT || !(slash = strrchr(path, '/')) ||
	    (size_t)(slash - path) >= sizeof(dir))
		return false;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return stat(dir[0] ? dir : "/", st) == 0;
}

int cli_cache_owner_begin(const char *cmd, const char *spec, cli_ids *saved)
{
	struct stat st;

	saved->switched = false;
	if (geteuid() != 0 || !spec || strncmp(spec, "lmdb:", 5) != 0 || !spec[5] ||
	    !cache_owner(spec + 5, &st) || st.st_uid == 0)
		return 0;
	saved->uid = (unsigned)geteuid();
	saved->gid = (unsigned)getegid();
	if (setegid(st.st_gid) < 0 || seteuid(st.st_uid) < 0) {
		int e = errno;
		struct passwd *pw = getpwuid(st.st_uid);

		if (setegid((gid_t)saved->gid) < 0)
			e = errno; /* still root: nothing is opened anyway */
		cli_errorf(cmd,
		           "the cache %s belongs to %s (uid %u); cannot act as that user: %s; "
		           "run as that user instead",
		           spec, pw ? pw->pw_name : "another user", (unsigned)st.st_uid,
		           strerror(e));
		return -1;
	}
	saved->switched = true;
	return 0;
}

void cli_cache_owner_end(cli_ids *saved)
{
	if (!saved->switched)
		return;
	/* the saved set-user-ID (root) brings the ids back */
	if (seteuid((uid_t)saved->uid) == 0 && setegid((gid_t)saved->gid) == 0)
		saved->switched = false;
}

/* $CALLOUT_NOW, read once: the clock is asked for every verification. */
static struct {
	bool read, valid, absolute;
	long long offset;
} clock_env;

static void read_clock_env(void)
{
	const char *s = getenv("CALLOUT_NOW");
	char *end;

	if (clock_env.read)
		return;
	clock_env.read = clock_env.valid = true;
	if (!s || !*s)
		return;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s) {
		clock_env.valid = false;
		return;
	}
	clock_env.offset = v;
	clock_env.absolute = s[0] != '+' && s[0] != '-';
}

bool cli_clock_check(void)
{
	read_clock_env();
	return clock_env.valid;
}

long long cli_clock(void *arg)
{
	(void)arg;
	read_clock_env();
	if (clock_env.absolute)
		return clock_env.offset;
	return (long long)time(NULL) + clock_env.offset;
}

bool cli_allow_private_env(void)
{
	const char *v = getenv("CALLOUT_ALLOW_PRIVATE");
	return v &&
	       (strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0);
}

void cli_log(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s: %s\n", CLI_PROG, msg);
}

void cli_trace(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "%s: trace: %s\n", CLI_PROG, line);
}
