/*
 * The Lua scripts of the fleet-wide limits backend (see
 * limit_redis_lua.h), as Redis runs them, and their SHA1s.  Each reads
 * the server's clock (TIME), so that the nodes of a fleet need not agree
 * on theirs.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "limit_redis_lua.h"

/* KEYS: dslots hslots dbucket hbucket hbackoff; ARGV: dmember hmember ttl
 * dcap hcap exempt drate dburst hrate hburst failures (0: no limit).
 * {0,trial} | {1,failures,ms left} held | {2,n} | {3,n} full | {4,0,ms}
 * | {5,0,ms} no token. */
static const char admit_lua[] =
    "local t=redis.call('TIME') local now=tonumber(t[1])*1000+math.floor(tonumber(t[2])/1000)\n"
    "local ttl=tonumber(ARGV[3]) local ex=ARGV[6]=='1' local trial=0\n"
    "if not ex then\n"
    " local b=redis.call('HMGET',KEYS[5],'f','u','t')\n"
    " local f=tonumber(b[1]) or 0 local bf=tonumber(ARGV[11])\n"
    " if bf>0 and f>=bf then\n"
    "  local u=tonumber(b[2]) or 0 local tr=tonumber(b[3]) or 0\n"
    "  if now<u then return {1,f,u-now} end\n"
    "  if tr>now then return {1,f,1000} end\n"
    "  trial=1\n"
    " end\n"
    "end\n"
    "local function full(k,cap)\n"
    " if cap==0 then return nil end\n"
    " redis.call('ZREMRANGEBYSCORE',k,'-inf',now)\n"
    " local n=redis.call('ZCARD',k) if n>=cap then return n end return nil\n"
    "end\n"
    "local n=full(KEYS[1],tonumber(ARGV[4])) if n then return {2,n} end\n"
    "n=full(KEYS[2],tonumber(ARGV[5])) if n then return {3,n} end\n"
    "local function bucket(k,rate,burst)\n"
    " if rate==0 then return 0,0,0 end\n"
    " local b=redis.call('HMGET',k,'t','s')\n"
    " local tok=tonumber(b[1]) or burst local s=tonumber(b[2]) or now\n"
    " local per=rate/60000\n"
    " if now>s then tok=tok+(now-s)*per s=now end\n"
    " if tok>burst then tok=burst end\n"
    " if tok>=1 then return 0,tok,s end\n"
    " return math.floor((1-tok)/per)+1,tok,s\n"
    "end\n"
    "if not ex then\n"
    " local dr,db,hr,hb=tonumber(ARGV[7]),tonumber(ARGV[8]),tonumber(ARGV[9]),tonumber(ARGV[10])\n"
    " local dw,dt,ds=bucket(KEYS[3],dr,db) local hw,ht,hs=bucket(KEYS[4],hr,hb)\n"
    " if dw>0 then if hw>0 and hw<dw then dw=hw end return {4,0,dw} end\n"
    " if hw>0 then return {5,0,hw} end\n"
    " if dr>0 then redis.call('HSET',KEYS[3],'t',tostring(dt-1),'s',ds)\n"
    "  redis.call('PEXPIRE',KEYS[3],math.ceil(db*60000/dr)+60000) end\n"
    " if hr>0 then redis.call('HSET',KEYS[4],'t',tostring(ht-1),'s',hs)\n"
    "  redis.call('PEXPIRE',KEYS[4],math.ceil(hb*60000/hr)+60000) end\n"
    "end\n"
    "if tonumber(ARGV[4])>0 then redis.call('ZADD',KEYS[1],now+ttl,ARGV[1])\n"
    " redis.call('PEXPIRE',KEYS[1],ttl*2) end\n"
    "if tonumber(ARGV[5])>0 then redis.call('ZADD',KEYS[2],now+ttl,ARGV[2])\n"
    " redis.call('PEXPIRE',KEYS[2],ttl*2) end\n"
    "if trial==1 then redis.call('HSET',KEYS[5],'t',now+ttl) end\n"
    "return {0,trial}\n";

/* KEYS: nodes, slot keys...; ARGV: token ttl node_ttl, members...
 * Heartbeat, and our leases written with a fresh expiry (again, if the
 * server lost them); the live nodes. */
static const char renew_lua[] =
    "local t=redis.call('TIME') local now=tonumber(t[1])*1000+math.floor(tonumber(t[2])/1000)\n"
    "local ttl=tonumber(ARGV[2]) local nt=tonumber(ARGV[3])\n"
    "redis.call('ZADD',KEYS[1],now+nt,ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE',KEYS[1],'-inf',now)\n"
    "redis.call('PEXPIRE',KEYS[1],nt*2)\n"
    "for i=2,#KEYS do\n"
    " redis.call('ZADD',KEYS[i],now+ttl,ARGV[i+2])\n"
    " redis.call('PEXPIRE',KEYS[i],ttl*2)\n"
    "end\n"
    "return redis.call('ZCARD',KEYS[1])\n";

/* KEYS: hbackoff; ARGV: outcome (0 worked, 1 failed, 2 ended) trial
 * failures base_ms max_level.  {failures, ms held}. */
static const char report_lua[] =
    "local t=redis.call('TIME') local now=tonumber(t[1])*1000+math.floor(tonumber(t[2])/1000)\n"
    "if ARGV[2]=='1' then redis.call('HDEL',KEYS[1],'t') end\n"
    "if ARGV[1]=='2' then return {0,0} end\n"
    "if ARGV[1]=='0' then redis.call('DEL',KEYS[1]) return {0,0} end\n"
    "local f=redis.call('HINCRBY',KEYS[1],'f',1)\n"
    "local base=tonumber(ARGV[4]) local mx=tonumber(ARGV[5])\n"
    "local left=0\n"
    "if f>=tonumber(ARGV[3]) then\n"
    " local l=tonumber(redis.call('HGET',KEYS[1],'l') or 0)\n"
    " if ARGV[2]=='1' and l<mx then l=l+1 redis.call('HSET',KEYS[1],'l',l) end\n"
    " left=base*2^l redis.call('HSET',KEYS[1],'u',now+left)\n"
    "end\n"
    "redis.call('PEXPIRE',KEYS[1],math.floor(base*2^mx)*2+600000)\n"
    "return {f,left}\n";

/* KEYS: bucket; ARGV: burst.  A token back (a session that did not
 * open), never past the burst; a bucket gone is full anyway. */
static const char refund_lua[] = "local t=tonumber(redis.call('HGET',KEYS[1],'t'))\n"
                                 "if t then t=t+1 local b=tonumber(ARGV[1]) if t>b then t=b end\n"
                                 " redis.call('HSET',KEYS[1],'t',tostring(t)) end\n"
                                 "return 0\n";

const char *const co_limit_lua[CO_LUA_N] = {admit_lua, renew_lua, report_lua, refund_lua};

bool co_limit_lua_sha(const char *script, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(script, strlen(script), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return false;
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return true;
}
