/* The store's slots counted in the fallback (limit_shadow.h). */
#include <stdlib.h>
#include <string.h>

#include "limit_shadow.h"

struct co_shadow {
	co_shadow *next;
	co_lease lease; /* the store's slot */
	co_lease fb;    /* its slot of the fallback; 0: none (over the share) */
	co_limit_key key;
	unsigned char id[];
};

static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool co_shadow_key(const char *key, size_t keylen, co_limit_key *k, unsigned char *buf)
{
	size_t i = keylen;

	while (i > 0 && key[i - 1] != ':')
		i--;
	if (i < 3 || key[i - 3] != ':' || (key[i - 2] != 'd' && key[i - 2] != 'h'))
		return false;
	const char *id = key + i;
	size_t n = keylen - i;
	if (key[i - 2] == 'd') {
		memcpy(buf, id, n);
		*k = (co_limit_key){CO_LIMIT_DOMAIN, buf, n};
		return n > 0;
	}
	if (n == 0 || n % 2)
		return false;
	for (size_t j = 0; j < n / 2; j++) {
		int hi = hex(id[2 * j]), lo = hex(id[2 * j + 1]);
		if (hi < 0 || lo < 0)
			return false;
		buf[j] = (unsigned char)(hi << 4 | lo);
	}
	*k = (co_limit_key){CO_LIMIT_HOST, buf, n / 2};
	return true;
}

unsigned co_shadows_take(co_shadow **list, co_limits *fb, const co_lease_set *held, co_lease fb_bit)
{
	unsigned took = 0;

	for (size_t i = 0; i < held->n; i++) {
		const co_lease_rec *rec = &held->v[i];
		co_shadow *s;
		unsigned out;

		if ((rec->lease & fb_bit) || !rec->keylen ||
		    !(s = calloc(1, sizeof(*s) + rec->keylen)))
			continue;
		if (!co_shadow_key(rec->key, rec->keylen, &s->key, s->id)) {
			free(s);
			continue;
		}
		s->lease = rec->lease;
		if (fb->ops->acquire(fb, &s->key, &s->fb, &out))
			took++;
		else
			s->fb = 0; /* over this node's share: it waits for a slot */
		s->next = *list;
		*list = s;
	}
	return took;
}

static bool same_key(const co_limit_key *a, const co_limit_key *b)
{
	return a->kind == b->kind && a->len == b->len && memcmp(a->id, b->id, a->len) == 0;
}

bool co_shadows_release(co_shadow **list, co_limits *fb, co_lease lease)
{
	co_shadow **pp = list, *s;

	while ((s = *pp) && s->lease != lease)
		pp = &s->next;
	if (!s)
		return false;
	*pp = s->next;
	bool back = false;
	if (s->fb) {
		co_shadow *t = *list;
		while (t && (t->fb || !same_key(&t->key, &s->key)))
			t = t->next;
		if (t) {
			t->fb = s->fb; /* still over the share: the slot stays taken */
		} else {
			fb->ops->release(fb, &s->key, s->fb);
			back = true;
		}
	}
	free(s);
	return back;
}

void co_shadows_clear(co_shadow **list)
{
	co_shadow *s;

	while ((s = *list)) {
		*list = s->next;
		free(s);
	}
}
