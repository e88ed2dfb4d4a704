/*
 * failmalloc.so: allocation-failure injection for the fail-safe tests
 * (tests/integration/test_failsafe.py), loaded with LD_PRELOAD.
 *
 * It wraps malloc, calloc, realloc, reallocarray, strdup, strndup,
 * posix_memalign, aligned_alloc and memalign.  Only allocations whose
 * immediate caller is in one of our objects are counted and may fail:
 * those are the ones our code must handle.  Failing an allocation inside
 * libc, libevent or OpenSSL makes those libraries abort, which is not
 * our bug (and what our code asks of them is counted where it asks).
 *
 * Environment:
 *   FAILMALLOC_NTH=N       fail the Nth counted allocation (1 is the
 *                          first); unset or 0: fail none, only count
 *   FAILMALLOC_MODE=after  fail the Nth and every one after it
 *                          (default "once": the Nth only)
 *   FAILMALLOC_ARM=USR2    count nothing until SIGUSR2 arrives (for a
 *                          daemon: fail after its start-up); every
 *                          SIGUSR2 starts the count again from 0
 *   FAILMALLOC_CONTROL=PATH with FAILMALLOC_ARM: at each SIGUSR2, read
 *                          "N [once|after]" from PATH (instead of
 *                          FAILMALLOC_NTH and _MODE), so that one daemon
 *                          can be swept through every N
 *   FAILMALLOC_OBJECTS=A:B the objects whose calls count, by file name;
 *                          "libcallout.so" also matches libcallout.so.0...
 *                          (default libcallout.so:callout:calloutd)
 *   FAILMALLOC_REPORT=PATH appends "fail N FUNC SIZE OBJECT+0xOFFSET" for
 *                          each failure made (the first 16 per arming);
 *                          at each SIGUSR2 "arm SEQ N MODE previous=C"
 *                          (C: the count since the previous one); at exit
 *                          "count N" and "failed N"
 *
 * The real allocator is glibc's __libc_malloc and friends: no dlsym, so
 * no recursion through dlsym's own allocations.  Who called is decided by
 * the return address: the code segments of every object loaded at start
 * are noted once (dl_iterate_phdr), so that the check is a range lookup,
 * not a dladdr() per allocation (dladdr scans symbol tables, and OpenSSL
 * alone allocates thousands of times at start); dladdr() serves objects
 * loaded later and names the place of each failure in the report.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

#define MAX_OBJECTS  8
#define MAX_RANGES   256
#define MAX_REPORTED 16

static struct {
	bool ready;
	const char *report;
	const char *control;
	const char *objects[MAX_OBJECTS];
	size_t object_len[MAX_OBJECTS];
	size_t nobjects;
	char exe[4096]; /* the main program's path (dl_iterate_phdr names it "") */
	struct range {
		uintptr_t lo, hi;
		bool ours;
	} ranges[MAX_RANGES];
	size_t nranges;
} cfg;

/* Changed by the SIGUSR2 handler while other threads allocate. */
static atomic_bool armed, after;
static atomic_ulong nth, counted, failed, arm_seq;

/* ---- the report, written with write(2): stdio would allocate ---- */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, uintptr_t n, unsigned base)
{
	char tmp[32];
	size_t len = 0;

	do {
		tmp[len++] = "0123456789abcdef"[n % base];
		n /= base;
	} while (n && len < sizeof(tmp));
	while (len && at + 1 < cap)
		buf[at++] = tmp[--len];
	return at;
}

static void report_line(const char *line, size_t len)
{
	int fd;

	if (!cfg.report)
		return;
	fd = open(cfg.report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, len) < 0) {
		/* nothing to do: the test sees the line missing */
	}
	close(fd);
}

static void report_failure(unsigned long n, const char *fn, size_t size, const void *ra)
{
	char buf[512];
	size_t at = 0;
	Dl_info info;
	const char *obj = "?";
	uintptr_t off = (uintptr_t)ra;

	if (dladdr(ra, &info) && info.dli_fname) {
		obj = info.dli_fname[0] ? info.dli_fname : cfg.exe;
		/* the call instruction is just before the return address */
		off = (uintptr_t)ra - 1 - (uintptr_t)info.dli_fbase;
	}
	at = put_str(buf, at, sizeof(buf), "fail ");
	at = put_num(buf, at, sizeof(buf), n, 10);
	at = put_str(buf, at, sizeof(buf), " ");
	at = put_str(buf, at, sizeof(buf), fn);
	at = put_str(buf, at, sizeof(buf), " ");
	at = put_num(buf, at, sizeof(buf), size, 10);
	at = put_str(buf, at, sizeof(buf), " ");
	at = put_str(buf, at, sizeof(buf), obj);
	at = put_str(buf, at, sizeof(buf), "+0x");
	at = put_num(buf, at, sizeof(buf), off, 16);
	at = put_str(buf, at, sizeof(buf), "\n");
	report_line(buf, at);
}

/* ---- whose call is it ---- */

static bool is_ours(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (size_t i = 0; i < cfg.nobjects; i++) {
		size_t len = cfg.object_len[i];

		/* exact, or a versioned shared object: libcallout.so.0.1.0 */
		if (strncmp(base, cfg.objects[i], len) == 0 &&
		    (base[len] == '\0' || base[len] == '.'))
			return true;
	}
	return false;
}

static int note_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : cfg.exe;
	bool ours = is_ours(name);

	(void)size;
	(void)arg;
	for (unsigned i = 0; i < info->dlpi_phnum && cfg.nranges < MAX_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		cfg.ranges[cfg.nranges].lo = info->dlpi_addr + ph->p_vaddr;
		cfg.ranges[cfg.nranges].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		cfg.ranges[cfg.nranges].ours = ours;
		cfg.nranges++;
	}
	return 0;
}

static bool caller_is_ours(const void *ra)
{
	uintptr_t a = (uintptr_t)ra;
	Dl_info info;

	for (size_t i = 0; i < cfg.nranges; i++)
		if (a >= cfg.ranges[i].lo && a < cfg.ranges[i].hi)
			return cfg.ranges[i].ours;
	/* loaded after the start (dlopen) */
	return dladdr(ra, &info) && info.dli_fname && is_ours(info.dli_fname);
}

/* ---- arming ---- */

static unsigned long parse_ulong(const char *s)
{
	unsigned long n = 0;

	while (s && *s >= '0' && *s <= '9')
		n = n * 10 + (unsigned long)(*s++ - '0');
	return n;
}

/* "N [once|after]" */
static void parse_control(const char *s)
{
	while (*s == ' ')
		s++;
	atomic_store(&nth, parse_ulong(s));
	while (*s >= '0' && *s <= '9')
		s++;
	while (*s == ' ')
		s++;
	atomic_store(&after, strncmp(s, "after", 5) == 0);
}

/* Only async-signal-safe calls: open, read, write, close. */
static void on_arm(int sig)
{
	char buf[128];
	size_t at = 0;
	int saved = errno;
	unsigned long prev = atomic_exchange(&counted, 0);

	(void)sig;
	atomic_store(&armed, false);
	if (cfg.control) {
		int fd = open(cfg.control, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		parse_control(buf);
	}
	atomic_store(&failed, 0);
	atomic_store(&armed, true);
	at = put_str(buf, at, sizeof(buf), "arm ");
	at = put_num(buf, at, sizeof(buf), atomic_fetch_add(&arm_seq, 1) + 1, 10);
	at = put_str(buf, at, sizeof(buf), " ");
	at = put_num(buf, at, sizeof(buf), atomic_load(&nth), 10);
	at = put_str(buf, at, sizeof(buf), atomic_load(&after) ? " after" : " once");
	at = put_str(buf, at, sizeof(buf), " previous=");
	at = put_num(buf, at, sizeof(buf), prev, 10);
	at = put_str(buf, at, sizeof(buf), "\n");
	report_line(buf, at);
	errno = saved;
}

/* Runs once every object of the start is mapped; allocations before it
 * are neither counted nor failed. */
__attribute__((constructor)) static void failmalloc_init(void)
{
	static const char default_objects[] = "libcallout.so:callout:calloutd";
	const char *objs = getenv("FAILMALLOC_OBJECTS");
	const char *arm = getenv("FAILMALLOC_ARM");
	const char *mode = getenv("FAILMALLOC_MODE");
	ssize_t len;

	atomic_store(&nth, parse_ulong(getenv("FAILMALLOC_NTH")));
	atomic_store(&after, mode && strcmp(mode, "after") == 0);
	cfg.report = getenv("FAILMALLOC_REPORT");
	cfg.control = getenv("FAILMALLOC_CONTROL");
	/* Split in place without allocating: remember start and length. */
	for (const char *p = objs && *objs ? objs : default_objects;
	     *p && cfg.nobjects < MAX_OBJECTS;) {
		size_t n = strcspn(p, ":");

		if (n) {
			cfg.objects[cfg.nobjects] = p;
			cfg.object_len[cfg.nobjects++] = n;
		}
		p += n + (p[n] == ':');
	}
	len = readlink("/proc/self/exe", cfg.exe, sizeof(cfg.exe) - 1);
	cfg.exe[len > 0 ? len : 0] = '\0';
	dl_iterate_phdr(note_object, NULL);
	if (arm && strcmp(arm, "USR2") == 0) {
		struct sigaction sa = {.sa_handler = on_arm};

		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR2, &sa, NULL);
	} else {
		atomic_store(&armed, true);
	}
	cfg.ready = true;
}

__attribute__((destructor)) static void failmalloc_fini(void)
{
	char buf[96];
	size_t at = 0;
	int saved = errno;

	at = put_str(buf, at, sizeof(buf), "count ");
	at = put_num(buf, at, sizeof(buf), atomic_load(&counted), 10);
	at = put_str(buf, at, sizeof(buf), "\nfailed ");
	at = put_num(buf, at, sizeof(buf), atomic_load(&failed), 10);
	at = put_str(buf, at, sizeof(buf), "\n");
	report_line(buf, at);
	errno = saved;
}

/* ---- the decision ---- */

/* Count an allocation made from ra; true when it must fail. */
static bool should_fail(const void *ra, const char *fn, size_t size)
{
	unsigned long n, limit;
	bool fail;

	if (!cfg.ready || !atomic_load(&armed) || !caller_is_ours(ra))
		return false;
	n = atomic_fetch_add(&counted, 1) + 1;
	limit = atomic_load(&nth);
	fail = limit && (atomic_load(&after) ? n >= limit : n == limit);
	if (fail) {
		int saved = errno;

		if (atomic_fetch_add(&failed, 1) < MAX_REPORTED)
			report_failure(n, fn, size, ra);
		errno = saved;
	}
	return fail;
}

#define CALLER __builtin_return_address(0)

void *malloc(size_t size)
{
	if (should_fail(CALLER, "malloc", size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total))
		total = SIZE_MAX; /* only reported: __libc_calloc refuses it */
	if (should_fail(CALLER, "calloc", total)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	if (should_fail(CALLER, "realloc", size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (should_fail(CALLER, "reallocarray", total)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, total);
}

/* Wrapped so that the caller of strdup is the one counted: libc's own
 * strdup calls malloc from inside libc. */
char *strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *copy;

	if (should_fail(CALLER, "strdup", len)) {
		errno = ENOMEM;
		return NULL;
	}
	if ((copy = __libc_malloc(len)))
		memcpy(copy, s, len);
	return copy;
}

char *strndup(const char *s, size_t max)
{
	size_t len = strnlen(s, max);
	char *copy;

	if (should_fail(CALLER, "strndup", len + 1)) {
		errno = ENOMEM;
		return NULL;
	}
	if ((copy = __libc_malloc(len + 1))) {
		memcpy(copy, s, len);
		copy[len] = '\0';
	}
	return copy;
}

static bool bad_alignment(size_t alignment)
{
	return alignment == 0 || (alignment & (alignment - 1)) != 0;
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
	void *p;

	if (bad_alignment(alignment) || alignment % sizeof(void *) != 0)
		return EINVAL;
	if (should_fail(CALLER, "posix_memalign", size))
		return ENOMEM;
	if (!(p = __libc_memalign(alignment, size)))
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t alignment, size_t size)
{
	if (bad_alignment(alignment)) {
		errno = EINVAL;
		return NULL;
	}
	if (should_fail(CALLER, "aligned_alloc", size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size)
{
	if (should_fail(CALLER, "memalign", size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_memalign(alignment, size);
}
