/*
 * The hash of every in-memory table: SipHash-2-4 under a key drawn from
 * getrandom() once per process.  The tables are keyed by names others
 * choose (domains, MX hosts, client addresses); with a secret key nobody
 * can compute in advance names that all land in one bucket.
 */
#ifndef CO_HASH_H
#define CO_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of p[0..n) under key (Aumasson and Bernstein, 2012); the
 * 64-bit result as the reference implementation's little-endian output. */
uint64_t co_siphash(const uint8_t key[16], const void *p, size_t n);

/* co_siphash under this process's key, made on the first call from any
 * thread (thread-safe). */
size_t co_hash(const void *p, size_t n);

#endif
