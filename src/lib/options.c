/*
 * The library's option defaults: callout_options_init().  Callers start
 * from them (the CLI, calloutd's configuration), and the engine takes
 * them where a caller left 0 (engine.c).
 */
#include <string.h>

#include <callout/callout.h>

CALLOUT_API void callout_options_init(callout_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->struct_size = sizeof(*opts);
	opts->port = 25;
	opts->connect_timeout_ms = 30000;
	opts->command_timeout_ms = 30000;
	opts->deadline_ms = 120000;
	opts->max_mx = 5;
	opts->max_connections = 10;
	opts->dns_timeout_ms = 5000;
	opts->cache_positive_ttl = 7 * 86400;
	opts->cache_refresh = 86400;
	opts->cache_negative_ttl = 3 * 3600;
	opts->cache_domain_ttl = 7 * 86400;
	opts->cache_domain_negative_ttl = 3 * 3600;
	opts->cache_unreachable_ttl = 300;
	opts->cache_wait_ms = 15000;
	opts->max_probes = 10000;
	opts->max_queued = 10000;
	opts->domain_sessions = 4;
	opts->host_sessions = 10;
	opts->domain_rate = 60;
	opts->domain_burst = 10;
	opts->host_rate = 300;
	opts->host_burst = 20;
	opts->session_rcpts = 10;
	opts->session_idle_ms = 3000;
	opts->backoff_failures = 3;
	opts->backoff_ms = 60000;
}
