/* Keyed hashing for in-memory tables (see hash.h). */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

static uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t get64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                          \
		v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                             \
		v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                             \
		v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                          \
	} while (0)

uint64_t co_siphash(const uint8_t key[16], const void *p, size_t n)
{
	const uint8_t *in = p;
	uint64_t k0 = get64le(key), k1 = get64le(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	uint64_t m, last = (uint64_t)n << 56;

	for (; n >= 8; in += 8, n -= 8) {
		m = get64le(in);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < n; i++)
		last |= (uint64_t)in[i] << (8 * i);
	v3 ^= last;
	SIPROUND;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint8_t process_key[16];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void make_key(void)
{
	ssize_t r;

	do
		r = getrandom(process_key, sizeof(process_key), 0);
	while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof(process_key))
		return;
	/* No kernel randomness (a very old kernel, a seccomp filter): the
	 * clock, the pid and where the loader put us.  Weak, but still
	 * unknown to a peer, and never a reason not to run. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t seed[2] = {(uint64_t)ts.tv_sec ^ (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)getpid(),
	                    (uint64_t)(uintptr_t)&ts ^ (uint64_t)(uintptr_t)make_key};
	uint64_t k = co_siphash((const uint8_t *)seed, seed, sizeof(seed));
	memcpy(process_key, &k, 8);
	k = co_siphash((const uint8_t *)seed, &k, sizeof(k));
	memcpy(process_key + 8, &k, 8);
}

size_t co_hash(const void *p, size_t n)
{
	pthread_once(&key_once, make_key);
	return (size_t)co_siphash(process_key, p, n);
}
