/*
 * The scripts the fleet-wide limits backend (limit_redis.c) runs on the
 * Redis server, by EVALSHA after a SCRIPT LOAD: admitting a session all
 * or nothing, renewing a node's leases and heartbeat, reporting how a
 * session ended to its host's backoff.  Their KEYS and ARGV are
 * described in limit_redis_lua.c.
 */
#ifndef CO_LIMIT_REDIS_LUA_H
#define CO_LIMIT_REDIS_LUA_H

#include <stdbool.h>

enum { CO_LUA_ADMIT, CO_LUA_RENEW, CO_LUA_REPORT, CO_LUA_REFUND, CO_LUA_N };

/* The scripts' text, by the names above. */
extern const char *const co_limit_lua[CO_LUA_N];

/* A script's SHA1 in hex (NUL-terminated), for EVALSHA; false if the
 * digest failed. */
bool co_limit_lua_sha(const char *script, char out[41]);

#endif
