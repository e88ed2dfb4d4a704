-- wrk script for calloutd's GET /v1/verify.
--   BENCH_MODE=unique: every request a new address (uncached):
--       PREFIX<thread>x<counter>SUFFIX
--   BENCH_MODE=cycle:  addresses PREFIX0SUFFIX .. PREFIX<N-1>SUFFIX, cycling
--       (what a first pass put in the cache)
-- done() prints one JSON line: requests, seconds, per_second, errors.
local mode = os.getenv("BENCH_MODE") or "cycle"
local prefix = os.getenv("BENCH_PREFIX") or "user"
local suffix = os.getenv("BENCH_SUFFIX") or "@%5B127.0.0.50%5D"
local count = tonumber(os.getenv("BENCH_N") or "1000")
local threads = 0
local counter = 0
local tid = 0

function setup(thread)
   thread:set("tid", threads)
   threads = threads + 1
end

function init(args)
   counter = tid * 7919
end

function request()
   counter = counter + 1
   local k
   if mode == "unique" then
      k = tid .. "x" .. counter
   else
      k = counter % count
   end
   return wrk.format("GET", "/v1/verify?address=" .. prefix .. k .. suffix)
end

function done(summary, latency, requests)
   local e = summary.errors
   local errs = e.connect + e.read + e.write + e.status + e.timeout
   local secs = summary.duration / 1e6
   io.write(string.format(
      '{"requests":%d,"seconds":%.3f,"per_second":%.1f,"errors":%d,"status_errors":%d,"latency_p50_ms":%.3f,"latency_p99_ms":%.3f}\n',
      summary.requests, secs, summary.requests / secs, errs, e.status,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
