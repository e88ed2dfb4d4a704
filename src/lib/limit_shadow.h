/*
 * Shadows: the slots a node held on the shared store when the store went
 * out of reach, counted in the local fallback too, so that its share of a
 * limit takes in the sessions already open (limit_redis.c).  A node that
 * holds more than its share gets no fallback slot for the extra ones;
 * they take the slots of the others as those end.
 */
#ifndef CO_LIMIT_SHADOW_H
#define CO_LIMIT_SHADOW_H

#include <stdbool.h>

#include "limit.h"

typedef struct co_shadow co_shadow;

/* Count in fb every slot of held that is the store's (not fb_bit): how
 * many slots of fb they took.  *list gets one shadow each. */
unsigned co_shadows_take(co_shadow **list, co_limits *fb, const co_lease_set *held,
                         co_lease fb_bit);

/* The store's slot lease ended: its slot of fb goes to a shadow of the
 * same key that has none, or back to fb.  True when fb got a slot back. */
bool co_shadows_release(co_shadow **list, co_limits *fb, co_lease lease);

/* Forget them all (fb is going); their slots of fb are not given back. */
void co_shadows_clear(co_shadow **list);

/* The key of a store key "...:d:DOMAIN" or "...:h:HEX"; false if it is
 * neither.  id points into buf (at least keylen bytes). */
bool co_shadow_key(const char *key, size_t keylen, co_limit_key *k, unsigned char *buf);

#endif
