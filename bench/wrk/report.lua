-- Appended to every script: one machine-readable line with the run's counts and latencies,
-- and whatever the script's own report_extra() adds (JSON fields, comma-separated).
function done(summary, latency, requests)
  local e = summary.errors
  local extra = report_extra and report_extra() or ""
  io.write(string.format(
    'BENCH-RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d%s}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max,
    extra ~= "" and ("," .. extra) or ""))
end
