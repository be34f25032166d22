-- wrk script for the gateway benchmark (bench/load.ts runs it).
-- Arguments after `--`: groups of four, one per request:
--   <path> <auth header name> <auth header value> <body file>
-- Requests are sent in turn (Anthropic, OpenAI, Anthropic, ...).
-- done() prints one line "BENCHJSON {...}" with counts and latency
-- percentiles in microseconds.

local requests = {}
local count = 0
local n = 0

function init(args)
  for i = 1, #args, 4 do
    local f = assert(io.open(args[i + 3], "rb"))
    local body = f:read("*a")
    f:close()
    local headers = { ["Content-Type"] = "application/json", [args[i + 1]] = args[i + 2] }
    if args[i + 1] == "x-api-key" then
      headers["anthropic-version"] = "2023-06-01"
    end
    count = count + 1
    requests[count] = wrk.format("POST", args[i], headers, body)
  end
end

function request()
  n = n + 1
  return requests[(n % count) + 1]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
