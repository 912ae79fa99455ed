-- report.lua is loaded by every workload script. Its done() prints wrk's
-- summary as one JSON line, prefixed "PODPIN_BENCH ", that the bench program
-- reads; wrk's own text report is printed above it as usual.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'PODPIN_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
