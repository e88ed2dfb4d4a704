/*
 * Opening a cache by its spec, the text a user writes (--cache, the
 * config file's [cache] store): the factory of the backends, apart from
 * the base they share (cache.h).
 */
#ifndef CO_CACHE_OPEN_H
#define CO_CACHE_OPEN_H

#include <stddef.h>

#include "cache.h"

/*
 * Open the cache a spec names:
 *   lmdb:PATH                                        LMDB file
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P]
 *                                                    Redis (port 6379, db 0, prefix "callout:");
 *                                                    USER and PASSWORD percent-decoded
 *   memory                                           this process only
 *   none                                             *out = NULL
 * Returns 0, or -1 with a message in err for a bad spec, CO_CACHE_ENOMEM
 * when out of memory (not a bad spec: the caller must not blame the
 * user), or CO_CACHE_EOPEN (conf->strict) for a store that cannot be
 * opened.
 */
#define CO_CACHE_EOPEN (-2)
int co_cache_open(const char *spec, const co_cache_conf *conf, co_cache **out, char *err,
                  size_t errlen);

#endif
