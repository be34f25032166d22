-- wrk script for the gateway benchmark (bench/load.ts runs it).
-- Arguments after `--`: one group per request:
--   <path> <body file> <number of headers N> <name 1> <value 1> ... <name N> <value N>
-- Requests are sent in turn (Anthropic, OpenAI, Anthropic, ...).
-- done() prints one line "BENCHJSON {...}" with counts and latency
-- percentiles in microseconds.

local requests = {}
local count = 0
local n = 0

function init(args)
  local i = 1
  while i <= #args do
    local path, file, nh = args[i], args[i + 1], tonumber(args[i + 2])
    local f = assert(io.open(file, "rb"))
    local body = f:read("*a")
    f:close()
    local headers = {}
    for h = 0, nh - 1 do
      headers[args[i + 3 + 2 * h]] = args[i + 4 + 2 * h]
    end
    count = count + 1
    requests[count] = wrk.format("POST", path, headers, body)
    i = i + 3 + 2 * nh
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
