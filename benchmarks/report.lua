-- wrk script for benchmarks/runtime_get.sh: plain requests (headers come from wrk -H), and one
-- machine-readable summary line when the run ends:
--   RESULT requests=N duration_s=S rps=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. non2xx=.. sock_errors=..
-- Latencies are wrk's per-request latencies (microseconds internally). non2xx is wrk's count of
-- responses with status >= 400 (wrk counts 3xx as fine; nothing here redirects).
-- Optional env: WRK_METHOD (default GET), WRK_BODY, WRK_CONTENT_TYPE (default application/json).

wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
end

local function ms(us)
  return us / 1000.0
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1000000.0
  local errors = summary.errors
  local rps = 0
  if seconds > 0 then
    rps = summary.requests / seconds
  end
  io.write(string.format(
    "RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d sock_errors=%d\n",
    summary.requests, seconds, rps,
    ms(latency:percentile(50.0)), ms(latency:percentile(90.0)), ms(latency:percentile(99.0)), ms(latency.max),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
