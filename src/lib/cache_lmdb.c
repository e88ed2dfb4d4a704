/*
 * The LMDB backend: one file (and its PATH-lock) shared at the same time
 * by every process of the host, the daemon and the CLI commands alike.
 * Records live in the main database under their keys; every operation is
 * synchronous and runs in one short transaction.
 *
 * Faults never stop verification.  A file that cannot be opened (no
 * directory, not LMDB, truncated, no permission) leaves the object
 * degraded: lookups find nothing, writes are dropped, and opening is
 * tried again at most every RETRY_S seconds.  A file we may not write is
 * used read-only.  A full map first loses its expired and damaged
 * records.  A file that is not ours is never written to.
 *
 * LMDB forbids opening one file twice in a process (closing either handle
 * drops the fcntl locks of both), so the objects of a process on the same
 * file share one environment.
 */
#include <errno.h>
#include <event2/event.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "cache_lmdb.h"

#define MAP_DEFAULT ((size_t)1 << 30)
#define RETRY_S     10
#define PURGE_S     60   /* a full map is purged at most this often */
#define KEY_MAX     511  /* MDB_MAXKEYSIZE of the default build */
#define SCAN_BATCH  64   /* records copied out per read transaction */
#define FILE_MODE   0640 /* the daemon's user and group only */
#define DIR_MODE    0750
#define GROUP_MAX   128 /* writes committed together at most */
/* Not MDB_NOSYNC nor MDB_NOMETASYNC: a commit is on disk when it returns,
 * so a crash loses at most the commit in progress.  With a loop (engine
 * use), the writes of one loop iteration are one commit (group commit):
 * one sync for all of them, not one each.  MDB_NOTLS: read
 * transactions belong to their object, not to the thread. */
#define ENV_FLAGS (MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD)

/* An open environment, shared by the objects of this process on one file. */
typedef struct shared_env {
	SLIST_ENTRY(shared_env) link;
	dev_t dev;
	ino_t ino;
	pid_t pid; /* of the opener: an environment does not survive fork() */
	MDB_env *env;
	MDB_dbi dbi;
	size_t keymax;
	int rdonly_why; /* errno that made it read-only; 0: read-write */
	bool dead;      /* LMDB called it broken: no new users */
	unsigned refs;
	unsigned txns; /* open transactions: mdb_env_set_mapsize() needs none */
} shared_env;

static SLIST_HEAD(, shared_env) shared_envs = SLIST_HEAD_INITIALIZER(shared_envs);
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct lmdb_cache {
	co_cache base;
	char *path;
	size_t mapsize;
	shared_env *sh;   /* NULL: degraded */
	int64_t last_try; /* of opening, co_cache_now() */
	int64_t last_purge;
	bool purged;
	bool write_fault; /* the fault is about writes: good reads do not end it */
	/* group commit: writes waiting for the end of the loop iteration */
	struct event *flush_ev;
	size_t npending;
	struct pending {
		char key[KEY_MAX + 1];
		size_t keylen, vallen;
		uint8_t val[CO_REC_ENCODED_MAX];
	} * pending;
	/* who waits for the commit (sync) */
	struct waiter {
		void (*cb)(void *arg);
		void *arg;
	} * waiters;
	size_t nwaiters, capwaiters;
} lmdb_cache;

/* ---- opening ----------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void set_why(char *why, size_t len, const char *fmt,
                                                          ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap); /* a message: truncation is fine */
	va_end(ap);
}

/* Create the directory the file goes in, with its parents, if missing. */
static int make_parent(const char *path, char *why, size_t whylen)
{
	struct stat st;
	char *dir = strdup(path), *slash;
	int rc = 0;

	if (!dir) {
		set_why(why, whylen, "out of memory");
		return -1;
	}
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		goto out;
	*slash = '\0';
	if (stat(dir, &st) == 0)
		goto out; /* exists: whatever it is, opening will tell */
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir, DIR_MODE) < 0 && errno != EEXIST) {
			set_why(why, whylen, "cannot create directory %s: %s", dir,
			        strerror(errno));
			rc = -1;
			goto out;
		}
		if (c == '\0')
			break;
		*p = c;
	}
out:
	free(dir);
	return rc;
}

/* A truncated file would SIGBUS when its missing pages are touched: its
 * pages must all be there. */
static int check_size(MDB_env *env, char *why, size_t whylen)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fs;
	int fd, rc;

	if ((rc = mdb_env_info(env, &info)) || (rc = mdb_env_stat(env, &st)) ||
	    (rc = mdb_env_get_fd(env, &fd))) {
		set_why(why, whylen, "%s", mdb_strerror(rc));
		return -1;
	}
	if (fstat(fd, &fs) < 0) {
		set_why(why, whylen, "%s", strerror(errno));
		return -1;
	}
	unsigned long long need = ((unsigned long long)info.me_last_pgno + 1) * st.ms_psize;
	if ((unsigned long long)fs.st_size < need) {
		set_why(why, whylen, "damaged: %lld octets, its data needs %llu",
		        (long long)fs.st_size, need);
		return -1;
	}
	return 0;
}

/* One attempt with these flags; an LMDB or errno code. */
static int try_open(const lmdb_cache *lc, unsigned flags, MDB_env **envp)
{
	MDB_env *env;
	int rc = mdb_env_create(&env);

	if (rc)
		return rc;
	if (!(rc = mdb_env_set_mapsize(env, lc->mapsize)))
		rc = mdb_env_open(env, lc->path, flags, FILE_MODE);
	if (rc) {
		mdb_env_close(env); /* required after a failed open */
		return rc;
	}
	*envp = env;
	return 0;
}

static shared_env *shared_find(dev_t dev, ino_t ino)
{
	pid_t pid = getpid();
	shared_env *sh;

	SLIST_FOREACH(sh, &shared_envs, link)
	if (sh->dev == dev && sh->ino == ino && sh->pid == pid && !sh->dead)
		return sh;
	return NULL;
}

/* Open the file, or join this process's environment on it.  0 with lc->sh
 * set, or -1 with the reason in why.  Called with shared_lock held. */
static int open_locked(lmdb_cache *lc, char *why, size_t whylen)
{
	/* Read-write; read-only when we may not write the file; and without
	 * the lock file when we may not write that either (a reader then
	 * risks seeing pages a writer reuses: at worst damaged records). */
	static const unsigned modes[] = {0, MDB_RDONLY, MDB_RDONLY | MDB_NOLOCK};
	MDB_env *env = NULL;
	MDB_txn *txn;
	MDB_dbi dbi;
	struct stat st;
	int rc = 0, rdonly_why = 0;
	shared_env *sh;

	if (make_parent(lc->path, why, whylen) < 0)
		return -1;
	if (stat(lc->path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			set_why(why, whylen, "not a regular file");
			return -1;
		}
		if ((sh = shared_find(st.st_dev, st.st_ino))) {
			sh->refs++;
			lc->sh = sh;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		rc = try_open(lc, ENV_FLAGS | modes[i], &env);
		if (rc != EACCES && rc != EROFS && rc != EPERM)
			break;
		if (!rdonly_why)
			rdonly_why = rc;
	}
	if (rc == ENOENT && rdonly_why)
		rc = rdonly_why; /* the file is missing and we may not create it */
	if (rc) {
		set_why(why, whylen, "%s", mdb_strerror(rc));
		return -1;
	}
	if (check_size(env, why, whylen) < 0)
		goto fail;
	int fd;
	if ((rc = mdb_env_get_fd(env, &fd)) || (fstat(fd, &st) < 0 && (rc = errno)) ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) {
		set_why(why, whylen, "%s", mdb_strerror(rc));
		goto fail;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &dbi);
	if (rc) {
		mdb_txn_abort(txn);
		set_why(why, whylen, "%s", mdb_strerror(rc));
		goto fail;
	}
	mdb_txn_commit(txn);
	/* Free the reader slots of processes that died holding them. */
	mdb_reader_check(env, NULL);

	if (!(sh = calloc(1, sizeof(*sh)))) {
		set_why(why, whylen, "out of memory");
		goto fail;
	}
	int keymax = mdb_env_get_maxkeysize(env);
	sh->dev = st.st_dev;
	sh->ino = st.st_ino;
	sh->pid = getpid();
	sh->env = env;
	sh->dbi = dbi;
	sh->keymax = keymax > 0 && keymax < KEY_MAX ? (size_t)keymax : KEY_MAX;
	sh->rdonly_why = rdonly_why;
	sh->refs = 1;
	SLIST_INSERT_HEAD(&shared_envs, sh, link);
	lc->sh = sh;
	return 0;
fail:
	mdb_env_close(env);
	return -1;
}

static int open_env(lmdb_cache *lc, char *why, size_t whylen)
{
	pthread_mutex_lock(&shared_lock);
	int rc = open_locked(lc, why, whylen);
	pthread_mutex_unlock(&shared_lock);
	return rc;
}

/* Leave the environment; the last user closes it. */
static void release(lmdb_cache *lc)
{
	shared_env *sh = lc->sh;

	if (!sh)
		return;
	lc->sh = NULL;
	pthread_mutex_lock(&shared_lock);
	/* A child of fork() may close the parent's environment: LMDB then
	 * clears only the reader slots of the closing process, and a child
	 * holds none of the parent's locks. */
	if (--sh->refs == 0) {
		SLIST_REMOVE(&shared_envs, sh, shared_env, link);
		mdb_env_close(sh->env);
		free(sh);
	}
	pthread_mutex_unlock(&shared_lock);
}

/* Tried and failed: report it, once, and wait before the next try. */
static void open_fault(lmdb_cache *lc, const char *why)
{
	co_cache_fault(&lc->base, "cache lmdb:%s: %s; going on uncached", lc->path, why);
}

/*
 * Make sure there is an environment to use (one that can write when
 * write): a degraded object tries to open the file again at most every
 * RETRY_S seconds, and so does a read-only one asked to write.  0 when
 * usable, -1 when not (reported).
 */
static int ready(lmdb_cache *lc, bool write)
{
	char why[256];

	if (lc->sh && lc->sh->dead)
		release(lc);
	if (lc->sh && (!write || !lc->sh->rdonly_why))
		return 0;
	int64_t now = co_cache_now(&lc->base);
	/* now < last_try: the clock went back, do not wait for it */
	bool due = now - lc->last_try >= RETRY_S || now < lc->last_try;
	if (due) {
		release(lc);
		lc->last_try = now;
		if (open_env(lc, why, sizeof(why)) < 0) {
			open_fault(lc, why);
			return -1;
		}
	}
	if (!lc->sh)
		return -1;
	if (write && lc->sh->rdonly_why) {
		lc->write_fault = true;
		co_cache_fault(&lc->base, "cache lmdb:%s: read-only (%s); not storing", lc->path,
		               strerror(lc->sh->rdonly_why));
		return -1;
	}
	return 0;
}

/* ---- transactions ------------------------------------------------------ */

/* The count of open transactions changes under shared_lock, so that no
 * thread begins one while another remaps. */
static void count_txn(shared_env *sh, int d)
{
	pthread_mutex_lock(&shared_lock);
	sh->txns += (unsigned)d;
	pthread_mutex_unlock(&shared_lock);
}

static int txn_begin(lmdb_cache *lc, unsigned flags, MDB_txn **txn)
{
	shared_env *sh = lc->sh;

	count_txn(sh, 1);
	int rc = mdb_txn_begin(sh->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size, which LMDB
		 * allows only with no transaction open in the process. */
		pthread_mutex_lock(&shared_lock);
		if (sh->txns == 1 && !(rc = mdb_env_set_mapsize(sh->env, 0)))
			rc = mdb_txn_begin(sh->env, NULL, flags, txn);
		pthread_mutex_unlock(&shared_lock);
	} else if (rc == MDB_READERS_FULL) {
		/* Processes that died in a transaction hold their slots until
		 * someone checks. */
		int dead = 0;
		if (mdb_reader_check(sh->env, &dead) == 0 && dead > 0)
			rc = mdb_txn_begin(sh->env, NULL, flags, txn);
	}
	if (rc)
		count_txn(sh, -1);
	return rc;
}

static int txn_commit(lmdb_cache *lc, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	count_txn(lc->sh, -1);
	return rc;
}

static void txn_abort(lmdb_cache *lc, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	count_txn(lc->sh, -1);
}

/* An LMDB error in an operation: report it, and leave an environment
 * LMDB calls broken (reopened after RETRY_S). */
static void op_fault(lmdb_cache *lc, const char *op, int rc, bool write)
{
	if (write)
		lc->write_fault = true;
	if (rc == MDB_PANIC || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
		lc->sh->dead = true;
		release(lc);
		lc->last_try = co_cache_now(&lc->base);
		co_cache_fault(&lc->base, "cache lmdb:%s: %s: %s; going on uncached", lc->path, op,
		               mdb_strerror(rc));
		return;
	}
	co_cache_fault(&lc->base, "cache lmdb:%s: %s: %s", lc->path, op, mdb_strerror(rc));
}

static void read_ok(lmdb_cache *lc)
{
	if (!lc->write_fault)
		co_cache_ok(&lc->base);
}

static void write_ok(lmdb_cache *lc)
{
	lc->write_fault = false;
	co_cache_ok(&lc->base);
}

/* A key LMDB can hold.  Longer ones (CO_REC_KEY_MAX is larger: in
 * practice keys with a sender) are never stored: looked up in vain, their
 * writes dropped. */
static bool key_val(const lmdb_cache *lc, const char *key, MDB_val *k)
{
	k->mv_data = (void *)key; /* LMDB does not write through it */
	k->mv_size = strlen(key);
	return k->mv_size > 0 && k->mv_size <= (lc->sh ? lc->sh->keymax : KEY_MAX);
}

/* ---- operations -------------------------------------------------------- */

static int lmdb_get(co_cache *c, const char *const *keys, size_t n, co_rec *out, bool *found,
                    co_cache_get_cb cb, void *arg, co_cache_req **req)
{
	lmdb_cache *lc = (lmdb_cache *)c;
	MDB_txn *txn;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		found[i] = false;
	if (ready(lc, false) < 0)
		return -1;
	if ((rc = txn_begin(lc, MDB_RDONLY, &txn))) {
		op_fault(lc, "read", rc, false);
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		MDB_val k, v;
		if (!key_val(lc, keys[i], &k))
			continue;
		rc = mdb_get(txn, lc->sh->dbi, &k, &v);
		if (rc == 0)
			found[i] = co_rec_decode(v.mv_data, v.mv_size, &out[i]) == 0;
		else if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	txn_abort(lc, txn);
	if (rc) {
		for (size_t i = 0; i < n; i++)
			found[i] = false;
		op_fault(lc, "read", rc, false);
		return -1;
	}
	/* Our own writes not yet committed are the newest. */
	for (size_t i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);
		for (size_t p = lc->npending; p-- > 0;) {
			const struct pending *w = &lc->pending[p];
			if (w->keylen == kl && memcmp(w->key, keys[i], kl) == 0) {
				found[i] = co_rec_decode(w->val, w->vallen, &out[i]) == 0;
				break;
			}
		}
	}
	read_ok(lc);
	return 1;
}

/* Write n records in one transaction. */
static int put_group(lmdb_cache *lc, const struct pending *w, size_t n)
{
	MDB_txn *txn;
	int rc = txn_begin(lc, 0, &txn);

	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = {.mv_size = w[i].keylen, .mv_data = (void *)w[i].key};
		MDB_val v = {.mv_size = w[i].vallen, .mv_data = (void *)w[i].val};
		/* No value: forget the key (co_cache_forgets). */
		rc = w[i].vallen ? mdb_put(txn, lc->sh->dbi, &k, &v, 0)
		                 : mdb_del(txn, lc->sh->dbi, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
		if (rc) {
			txn_abort(lc, txn);
			return rc;
		}
	}
	return txn_commit(lc, txn);
}

/* What a full map can lose: expired and damaged records. */
static bool doomed(const MDB_val *v, int64_t now)
{
	co_rec r;
	return co_rec_decode(v->mv_data, v->mv_size, &r) < 0 || r.expires < now;
}

/*
 * Make room in a full map.  Deleting needs free pages too (copy on
 * write), so when the one transaction runs out of room, go on in smaller
 * ones: each commit frees the pages the next one needs.  0 or an LMDB
 * code.
 */
static int purge(lmdb_cache *lc)
{
	char from[KEY_MAX], next[KEY_MAX];
	size_t fromlen = 0, nextlen = 0, batch = SIZE_MAX;
	int64_t now = co_cache_now(&lc->base);

	for (;;) {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k = {.mv_size = fromlen, .mv_data = from}, v;
		size_t done = 0;
		bool more = false;
		int rc = txn_begin(lc, 0, &txn);

		if (rc)
			return rc;
		if (!(rc = mdb_cursor_open(txn, lc->sh->dbi, &cur))) {
			rc = mdb_cursor_get(cur, &k, &v, fromlen ? MDB_SET_RANGE : MDB_FIRST);
			while (rc == 0) {
				if (doomed(&v, now)) {
					if (done == batch) {
						nextlen = k.mv_size < sizeof(next) ? k.mv_size
						                                   : sizeof(next);
						memcpy(next, k.mv_data, nextlen);
						more = true;
						break;
					}
					if ((rc = mdb_cursor_del(cur, 0)))
						break;
					done++;
				}
				/* after a delete the cursor already stands on the next
				 * record, and MDB_NEXT knows it */
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
			mdb_cursor_close(cur);
		}
		if (rc == MDB_NOTFOUND)
			rc = 0;
		if (rc == 0) {
			rc = txn_commit(lc, txn);
		} else {
			txn_abort(lc, txn);
		}
		if (rc == MDB_MAP_FULL && done > 1) {
			batch = done / 2;
			continue;
		}
		if (rc || !more)
			return rc;
		memcpy(from, next, nextlen);
		fromlen = nextlen;
		if (batch <= SIZE_MAX / 2)
			batch *= 2;
	}
}

/* Commit records, making room in a full map once in a while.  0 or -1. */
static int write_records(lmdb_cache *lc, const struct pending *w, size_t n)
{
	co_cache *c = &lc->base;
	int rc = put_group(lc, w, n);

	if (rc == MDB_MAP_FULL) {
		/* A purge reads every record: while the map stays full, not at
		 * every write. */
		int64_t now = co_cache_now(c);
		if (!lc->purged || now - lc->last_purge >= PURGE_S || now < lc->last_purge) {
			lc->purged = true;
			lc->last_purge = now;
			rc = purge(lc);
			if (rc == 0 || rc == MDB_MAP_FULL)
				rc = put_group(lc, w, n);
		}
	}
	if (rc == MDB_MAP_FULL) {
		lc->write_fault = true;
		co_cache_fault(c,
		               "cache lmdb:%s: full (map of %zu KiB) even without expired records; "
		               "not storing",
		               lc->path, lc->mapsize >> 10);
		return -1;
	}
	if (rc) {
		op_fault(lc, "write", rc, true);
		return -1;
	}
	write_ok(lc);
	return 0;
}

static void flush_pending(lmdb_cache *lc)
{
	size_t n = lc->npending, nw = lc->nwaiters;

	lc->npending = 0;
	if (n && ready(lc, true) == 0)
		write_records(lc, lc->pending, n);
	/* Committed (or failed): the answers that waited for it go out.  A
	 * callback may queue writes and waiters of the next group. */
	struct waiter *w = lc->waiters;
	lc->waiters = NULL;
	lc->nwaiters = lc->capwaiters = 0;
	for (size_t i = 0; i < nw; i++)
		w[i].cb(w[i].arg);
	free(w);
}

static int lmdb_sync(co_cache *c, void (*cb)(void *arg), void *arg)
{
	lmdb_cache *lc = (lmdb_cache *)c;

	if (lc->npending == 0)
		return 0;
	if (lc->nwaiters == lc->capwaiters) {
		size_t cap = lc->capwaiters ? lc->capwaiters * 2 : 16;
		struct waiter *w = realloc(lc->waiters, cap * sizeof(*w));
		if (!w) {
			flush_pending(lc); /* no room to wait: commit now */
			return 0;
		}
		lc->waiters = w;
		lc->capwaiters = cap;
	}
	lc->waiters[lc->nwaiters++] = (struct waiter){cb, arg};
	return 1;
}

static void lmdb_unsync(co_cache *c, void *arg)
{
	lmdb_cache *lc = (lmdb_cache *)c;
	size_t j = 0;

	for (size_t i = 0; i < lc->nwaiters; i++)
		if (lc->waiters[i].arg != arg)
			lc->waiters[j++] = lc->waiters[i];
	lc->nwaiters = j;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_pending(arg);
}

/* Queue a write for the group commit at the end of this loop iteration;
 * false when there is no loop or no memory (write it now). */
static bool queue_write(lmdb_cache *lc, const MDB_val *k, const uint8_t *val, size_t vallen)
{
	struct timeval now = {0, 0};

	if (!lc->base.conf.base)
		return false;
	if (!lc->pending && !(lc->pending = malloc(GROUP_MAX * sizeof(*lc->pending))))
		return false;
	if (!lc->flush_ev && !(lc->flush_ev = evtimer_new(lc->base.conf.base, on_flush, lc)))
		return false;
	if (lc->npending == GROUP_MAX)
		flush_pending(lc);
	struct pending *w = &lc->pending[lc->npending++];
	memcpy(w->key, k->mv_data, k->mv_size);
	w->keylen = k->mv_size;
	if (vallen)
		memcpy(w->val, val, vallen);
	w->vallen = vallen;
	if (!evtimer_pending(lc->flush_ev, NULL))
		evtimer_add(lc->flush_ev, &now);
	return true;
}

static int lmdb_put(co_cache *c, const char *key, const co_rec *rec, unsigned ttl_s)
{
	lmdb_cache *lc = (lmdb_cache *)c;
	uint8_t buf[CO_REC_ENCODED_MAX];
	MDB_val k;
	size_t len;

	/* ttl_s is not needed: the record says when it expires, and expired
	 * records go when the map is full or the administrator purges. */
	if (ready(lc, true) < 0)
		return -1;
	if (!key_val(lc, key, &k))
		return -1;
	len = co_rec_encode(rec, buf);
	if (queue_write(lc, &k, buf, len))
		return 0;
	struct pending one;
	memcpy(one.key, k.mv_data, k.mv_size);
	one.keylen = k.mv_size;
	memcpy(one.val, buf, len);
	one.vallen = len;
	return write_records(lc, &one, 1);
}

/* A pending write without a value deletes its key (put_group). */
static int lmdb_forget(co_cache *c, const char *key)
{
	lmdb_cache *lc = (lmdb_cache *)c;
	MDB_val k;

	if (ready(lc, true) < 0 || !key_val(lc, key, &k))
		return -1;
	if (queue_write(lc, &k, NULL, 0))
		return 0;
	struct pending one = {.keylen = k.mv_size, .vallen = 0};
	memcpy(one.key, k.mv_data, k.mv_size);
	return write_records(lc, &one, 1);
}

static void lmdb_cancel(co_cache *c, co_cache_req *req)
{
	/* Nothing is ever pending. */
}

static int lmdb_scan(co_cache *c, const char *prefix, co_cache_scan_fn fn, void *arg)
{
	flush_pending((lmdb_cache *)c);
	/* Records are copied out in batches and fn is called with no
	 * transaction open: a slow consumer must not pin old pages, which
	 * would keep writers from reusing them and fill the map. */
	typedef struct item {
		size_t keylen;
		bool ok;
		char key[KEY_MAX + 1];
		co_rec rec;
	} item;
	lmdb_cache *lc = (lmdb_cache *)c;
	size_t plen = strlen(prefix), fromlen = plen, n;
	char from[KEY_MAX];
	bool resume = false;
	item *items;
	int rc;

	if (ready(lc, false) < 0)
		return -1;
	if (plen > lc->sh->keymax)
		return 0; /* no key is that long */
	if (!(items = malloc(SCAN_BATCH * sizeof(*items))))
		return CO_CACHE_ENOMEM;
	memcpy(from, prefix, plen);
	do {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k = {.mv_size = fromlen, .mv_data = from}, v;

		n = 0;
		if ((rc = txn_begin(lc, MDB_RDONLY, &txn)))
			break;
		if (!(rc = mdb_cursor_open(txn, lc->sh->dbi, &cur))) {
			rc = mdb_cursor_get(cur, &k, &v, fromlen ? MDB_SET_RANGE : MDB_FIRST);
			/* Resuming: skip the last record delivered, if still there. */
			if (rc == 0 && resume && k.mv_size == fromlen &&
			    !memcmp(k.mv_data, from, fromlen))
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			for (; rc == 0 && n < SCAN_BATCH; n++) {
				if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0 ||
				    k.mv_size > KEY_MAX) {
					rc = MDB_NOTFOUND;
					break;
				}
				items[n].keylen = k.mv_size;
				memcpy(items[n].key, k.mv_data, k.mv_size);
				items[n].key[k.mv_size] = '\0';
				items[n].ok =
				    co_rec_decode(v.mv_data, v.mv_size, &items[n].rec) == 0;
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
			mdb_cursor_close(cur);
		}
		txn_abort(lc, txn);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		for (size_t i = 0; i < n; i++) {
			if (fn(arg, items[i].key, items[i].keylen,
			       items[i].ok ? &items[i].rec : NULL)) {
				free(items);
				return 0;
			}
		}
		if (n) {
			fromlen = items[n - 1].keylen;
			memcpy(from, items[n - 1].key, fromlen);
			resume = true;
		}
	} while (rc == 0);
	free(items);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		op_fault(lc, "scan", rc, false);
		return -1;
	}
	read_ok(lc);
	return 0;
}

static int lmdb_del(co_cache *c, const char *const *keys, size_t n, unsigned long *deleted)
{
	flush_pending((lmdb_cache *)c);
	lmdb_cache *lc = (lmdb_cache *)c;
	size_t i = 0, batch = n;

	if (deleted)
		*deleted = 0;
	if (ready(lc, true) < 0)
		return -1;
	/* One transaction; smaller ones only when the map is too full for
	 * the copies a delete writes. */
	while (i < n) {
		size_t m = n - i < batch ? n - i : batch;
		unsigned long count = 0;
		MDB_txn *txn = NULL;
		int rc = txn_begin(lc, 0, &txn);

		for (size_t j = i; j < i + m && rc == 0; j++) {
			MDB_val k;
			if (!key_val(lc, keys[j], &k))
				continue;
			rc = mdb_del(txn, lc->sh->dbi, &k, NULL);
			if (rc == 0)
				count++;
			else if (rc == MDB_NOTFOUND)
				rc = 0;
		}
		if (rc == 0) {
			rc = txn_commit(lc, txn);
		} else if (txn) {
			txn_abort(lc, txn);
		}
		if (rc == MDB_MAP_FULL && m > 1) {
			batch = m / 2;
			continue;
		}
		if (rc) {
			op_fault(lc, "delete", rc, true);
			return -1;
		}
		if (deleted)
			*deleted += count;
		i += m;
	}
	write_ok(lc);
	return 0;
}

static int lmdb_info(co_cache *c, co_cache_info *info)
{
	lmdb_cache *lc = (lmdb_cache *)c;
	MDB_envinfo ei;
	MDB_stat st;
	int rc;

	info->backend = "lmdb";
	info->bytes_used = 0;
	info->bytes_limit = 0;
	if (ready(lc, false) < 0)
		return -1;
	if ((rc = mdb_env_info(lc->sh->env, &ei)) || (rc = mdb_env_stat(lc->sh->env, &st))) {
		op_fault(lc, "info", rc, false);
		return -1;
	}
	info->bytes_used = ((unsigned long long)ei.me_last_pgno + 1) * st.ms_psize;
	info->bytes_limit = ei.me_mapsize;
	return 0;
}

static void lmdb_free(co_cache *c)
{
	lmdb_cache *lc = (lmdb_cache *)c;

	lc->nwaiters = 0;  /* their owners are gone before the cache */
	flush_pending(lc); /* nothing queued is lost */
	if (lc->flush_ev)
		event_free(lc->flush_ev);
	free(lc->pending);
	release(lc);
	free(lc->path);
	free(lc);
}

static const co_cache_ops lmdb_ops = {
    .name = "lmdb",
    .get = lmdb_get,
    .put = lmdb_put,
    .forget = lmdb_forget,
    .claim = NULL, /* single flight across processes is Redis's */
    .release = NULL,
    .sync = lmdb_sync,
    .unsync = lmdb_unsync,
    .cancel = lmdb_cancel,
    .scan = lmdb_scan,
    .del = lmdb_del,
    .info = lmdb_info,
    .free = lmdb_free,
};

co_cache *co_cache_lmdb_new(const char *path, const co_cache_conf *conf, char *err, size_t errlen)
{
	lmdb_cache *lc = calloc(1, sizeof(*lc));
	long page = sysconf(_SC_PAGESIZE);
	size_t ps = page > 0 ? (size_t)page : 4096;
	char why[256];

	if (!lc || !(lc->path = strdup(path))) {
		free(lc);
		if (err && errlen)
			set_why(err, errlen, "out of memory");
		return NULL;
	}
	lc->base.ops = &lmdb_ops;
	lc->base.conf = *conf;
	lc->mapsize = conf->max_bytes ? conf->max_bytes : MAP_DEFAULT;
	if (lc->mapsize <= SIZE_MAX - ps)
		lc->mapsize = (lc->mapsize + ps - 1) / ps * ps;
	lc->last_try = co_cache_now(&lc->base);
	if (open_env(lc, why, sizeof(why)) == 0)
		return &lc->base;
	if (conf->strict) {
		if (err && errlen)
			set_why(err, errlen, "lmdb:%s: %s", path, why);
		lmdb_free(&lc->base);
		return NULL;
	}
	open_fault(lc, why);
	return &lc->base;
}
