/*
 * The memory backend: records of this process only, for tests and for
 * library users who configure nothing.  A hash table of encoded records
 * (so the codec is exercised as with the shared backends), with a byte
 * budget: past it, the oldest writes are evicted first.
 */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cache_memory.h"
#include "hash.h"

#define BUDGET_DEFAULT (64u << 20)
#define BUCKETS_MIN    1024u

typedef struct entry {
	struct entry *hnext;         /* hash chain */
	struct entry *older, *newer; /* write order */
	size_t keylen, vallen;
	uint8_t *val;
	char key[]; /* keylen octets + NUL */
} entry;

typedef struct mem_cache {
	co_cache base;
	entry **buckets;
	size_t nbuckets, count, bytes, budget;
	entry *oldest, *newest;
} mem_cache;

static size_t entry_size(const entry *e)
{
	return sizeof(*e) + e->keylen + 1 + e->vallen;
}

static entry **find_slot(mem_cache *m, const char *key, size_t keylen)
{
	entry **pp = &m->buckets[co_hash(key, keylen) & (m->nbuckets - 1)];
	while (*pp && ((*pp)->keylen != keylen || memcmp((*pp)->key, key, keylen) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static void unlink_entry(mem_cache *m, entry **slot)
{
	entry *e = *slot;
	*slot = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		m->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		m->newest = e->older;
	m->count--;
	m->bytes -= entry_size(e);
	free(e->val);
	free(e);
}

static void grow(mem_cache *m)
{
	size_t n = m->nbuckets * 2;
	entry **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (entry *e = m->buckets[i], *next; e; e = next) {
			next = e->hnext;
			size_t h = co_hash(e->key, e->keylen) & (n - 1);
			e->hnext = b[h];
			b[h] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

static int mem_get(co_cache *c, const char *const *keys, size_t n, co_rec *out, bool *found,
                   co_cache_get_cb cb, void *arg, co_cache_req **req)
{
	mem_cache *m = (mem_cache *)c;
	(void)cb;
	(void)arg;
	(void)req;

	for (size_t i = 0; i < n; i++) {
		entry *e = *find_slot(m, keys[i], strlen(keys[i]));
		found[i] = e && co_rec_decode(e->val, e->vallen, &out[i]) == 0;
	}
	return 1;
}

static int mem_put(co_cache *c, const char *key, const co_rec *rec, unsigned ttl_s)
{
	mem_cache *m = (mem_cache *)c;
	uint8_t buf[CO_REC_ENCODED_MAX];
	size_t keylen = strlen(key), vallen = co_rec_encode(rec, buf);
	entry **slot = find_slot(m, key, keylen);

	if (*slot)
		unlink_entry(m, slot);
	entry *e = malloc(sizeof(*e) + keylen + 1);
	uint8_t *val = malloc(vallen);
	if (!e || !val) {
		free(e);
		free(val);
		co_cache_fault(c, "cache memory: out of memory; dropping writes");
		return -1;
	}
	(void)ttl_s; /* the engine checks each record's own expiry */
	memcpy(val, buf, vallen);
	*e = (entry){.keylen = keylen, .vallen = vallen, .val = val};
	memcpy(e->key, key, keylen + 1);
	slot = find_slot(m, key, keylen);
	*slot = e;
	e->older = m->newest;
	if (m->newest)
		m->newest->newer = e;
	else
		m->oldest = e;
	m->newest = e;
	m->count++;
	m->bytes += entry_size(e);
	while (m->bytes > m->budget && m->oldest != e)
		unlink_entry(m, find_slot(m, m->oldest->key, m->oldest->keylen));
	if (m->count > m->nbuckets)
		grow(m);
	co_cache_ok(c);
	return 0;
}

static int mem_scan(co_cache *c, const char *prefix, co_cache_scan_fn fn, void *arg)
{
	mem_cache *m = (mem_cache *)c;
	size_t plen = strlen(prefix);
	co_rec rec;

	for (entry *e = m->oldest; e; e = e->newer) {
		if (e->keylen < plen || memcmp(e->key, prefix, plen) != 0)
			continue;
		bool ok = co_rec_decode(e->val, e->vallen, &rec) == 0;
		if (fn(arg, e->key, e->keylen, ok ? &rec : NULL))
			break;
	}
	return 0;
}

static int mem_del(co_cache *c, const char *const *keys, size_t n, unsigned long *deleted)
{
	mem_cache *m = (mem_cache *)c;
	unsigned long count = 0;

	for (size_t i = 0; i < n; i++) {
		entry **slot = find_slot(m, keys[i], strlen(keys[i]));
		if (*slot) {
			unlink_entry(m, slot);
			count++;
		}
	}
	if (deleted)
		*deleted = count;
	return 0;
}

static int mem_forget(co_cache *c, const char *key)
{
	return mem_del(c, &key, 1, NULL);
}

static int mem_info(co_cache *c, co_cache_info *info)
{
	mem_cache *m = (mem_cache *)c;
	info->backend = "memory";
	info->bytes_used = m->bytes;
	info->bytes_limit = m->budget;
	return 0;
}

static void mem_free(co_cache *c)
{
	mem_cache *m = (mem_cache *)c;
	while (m->oldest)
		unlink_entry(m, find_slot(m, m->oldest->key, m->oldest->keylen));
	free(m->buckets);
	free(m);
}

static const co_cache_ops mem_ops = {
    .name = "memory",
    .get = mem_get,
    .put = mem_put,
    .forget = mem_forget,
    .scan = mem_scan,
    .del = mem_del,
    .info = mem_info,
    .free = mem_free,
};

co_cache *co_cache_memory_new(const co_cache_conf *conf)
{
	mem_cache *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nbuckets = BUCKETS_MIN;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets) {
		free(m);
		return NULL;
	}
	m->base.ops = &mem_ops;
	m->base.conf = *conf;
	m->budget = conf->max_bytes ? conf->max_bytes : BUDGET_DEFAULT;
	return &m->base;
}
