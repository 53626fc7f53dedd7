-- wrk script shared by every row of bench/run.
--
-- Environment:
--   BENCH_USER, BENCH_TOKEN  X-User-Id / X-Auth-Token sent with every request (every row sends them,
--                            nginx and json-server ignore them, so request bytes are equal).
--   BENCH_ROOMS=N            each request asks for roomId=room-<k>, k uniform in [0, N) (the rooms
--                            bench/gen_inquiries.py writes); wrk runs request() per request.
--   BENCH_FIXED_ROOM=RID     request() per request too, but always the same room: the baseline with
--                            exactly the same Lua cost as BENCH_ROOMS.
--   neither                  wrk's static request for the path given on the command line.
-- done() prints one line `BENCHJSON {...}` (latencies in microseconds) that bench/run parses.

wrk.headers["X-User-Id"] = os.getenv("BENCH_USER") or "rbAXPnMktTFbNpwtJ"
wrk.headers["X-Auth-Token"] = os.getenv("BENCH_TOKEN") or "RScctEHSmLGZGywfIhWyRpyofhKOiMoUIpimhvheU3f"

local PREFIX = "/api/v1/livechat/inquiries.getOne?roomId="
local rooms = tonumber(os.getenv("BENCH_ROOMS") or "")
local fixed = os.getenv("BENCH_FIXED_ROOM")

if rooms and rooms > 0 then
  math.randomseed(424242)           -- deterministic sequence of rooms
  function request()
    return wrk.format(nil, PREFIX .. "room-" .. math.random(0, rooms - 1))
  end
elseif fixed and fixed ~= "" then
  function request()
    return wrk.format(nil, PREFIX .. fixed)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
