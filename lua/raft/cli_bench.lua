-- `luaraft bench`: committed writes per second and latency against running
-- nodes over HTTP, and with --breakdown the per-stage latency from the
-- nodes' /metrics (README "The per-stage breakdown"). raft.cli hands over
-- its flag parser (cli.parse, cli.die, cli.usage, cli.http_target).
local M = {}

local BENCH_SPEC = {
  http = { key = "http", kind = "list" }, clients = { key = "clients", kind = "int" },
  requests = { key = "requests", kind = "int" }, size = { key = "size", kind = "int" },
  timeout = { key = "timeout", kind = "int" }, progress = { key = "progress", kind = "int" },
  breakdown = { key = "breakdown", kind = "flag" }, metrics = { key = "metrics", kind = "list" },
  help = { key = "help", kind = "flag" },
}

local STAGES = { "leader_persist", "follower_persist", "ack_commit", "apply", "write", "snapshot" }

-- The luaraft_stage_seconds histograms of one /metrics text:
-- stages[name] = { sum = seconds, count = n, buckets = { {le, cumulative}... } }
local function stage_histograms(text)
  local st = {}
  for name, le, n in text:gmatch('luaraft_stage_seconds_bucket{stage="([%w_]+)",le="([^"]+)"} (%d+)') do
    st[name] = st[name] or { sum = 0, count = 0, buckets = {} }
    local b = st[name].buckets
    b[#b + 1] = { le == "+Inf" and math.huge or tonumber(le), tonumber(n) }
  end
  for name, sum in text:gmatch('luaraft_stage_seconds_sum{stage="([%w_]+)"} ([%d.e+-]+)') do
    if st[name] then st[name].sum = tonumber(sum) end
  end
  for name, n in text:gmatch('luaraft_stage_seconds_count{stage="([%w_]+)"} (%d+)') do
    if st[name] then st[name].count = tonumber(n) end
  end
  return st
end

-- after - before, summed over the nodes read; the quantile is the upper
-- bound of the bucket that holds it.
local function stage_delta(before, after)
  local out = {}
  for i, a in ipairs(after) do
    local b = before[i] or {}
    for name, h in pairs(a) do
      local hb = b[name] or { sum = 0, count = 0, buckets = {} }
      local o = out[name] or { sum = 0, count = 0, buckets = {} }
      o.sum, o.count = o.sum + h.sum - hb.sum, o.count + h.count - hb.count
      for k, bk in ipairs(h.buckets) do
        local prev = hb.buckets[k] and hb.buckets[k][2] or 0
        o.buckets[k] = { bk[1], (o.buckets[k] and o.buckets[k][2] or 0) + bk[2] - prev }
      end
      out[name] = o
    end
  end
  return out
end

local function bucket_quantile(h, q)
  local want = h.count * q
  for _, b in ipairs(h.buckets) do
    if b[2] >= want then return b[1] end
  end
  return math.huge
end

local function print_breakdown(delta, client_mean_ms)
  print("breakdown (ms, per entry or batch, from /metrics over the run; p50/p99: bucket upper bounds):")
  print(("  %-17s %9s %9s %8s %8s"):format("stage", "count", "mean", "p50<=", "p99<="))
  local inside = 0
  for _, name in ipairs(STAGES) do
    local h = delta[name]
    if h and h.count > 0 then
      local mean = h.sum / h.count * 1000
      if name == "leader_persist" or name == "ack_commit" or name == "apply" then inside = inside + mean end
      local function q(x)
        local v = bucket_quantile(h, x)
        return v == math.huge and "inf" or ("%g"):format(v * 1000)
      end
      print(("  %-17s %9d %9.3f %8s %8s"):format(name, h.count, mean, q(0.5), q(0.99)))
    end
  end
  print(("  %-17s %9s %9.3f   (client mean %.3f - leader_persist - ack_commit - apply:"):format("rest", "",
    client_mean_ms - inside, client_mean_ms))
  print("                                        HTTP parse, propose, event delivery, reply)")
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.max(1, math.min(#sorted, math.ceil(#sorted * p)))
  return sorted[i]
end

function M.run(args, cli)
  local parse, die, http_target = cli.parse, cli.die, cli.http_target
  local o, pos = parse(args, BENCH_SPEC)
  if not o then return die("bench", pos .. " (try luaraft bench --help)") end
  if o.help then io.stdout:write(cli.usage) return 0 end
  if #pos > 0 then return die("bench", "unexpected argument '" .. pos[1] .. "'") end
  local targets = {}
  for _, a in ipairs(o.http or { os.getenv("LUARAFT_HTTP") or "127.0.0.1:8001" }) do
    for part in a:gmatch("[^,]+") do
      local host, port = http_target(part)
      if not host then return die("bench", "--http must be HOST:PORT, not '" .. part .. "'") end
      targets[#targets + 1] = { host, port }
    end
  end
  local nclients, total, size = o.clients or 64, o.requests or 10000, o.size or 100
  if nclients < 1 then return die("bench", "--clients must be at least 1") end
  local uv = require "luv"
  local http_client = require "raft.http_client"
  local progress = require("raft.progress").new { label = "bench", total = total, unit = "requests",
                                                  every = o.progress or 2 }
  local metrics_from = {}
  for _, a in ipairs(o.metrics or o.http or { os.getenv("LUARAFT_HTTP") or "127.0.0.1:8001" }) do
    for part in a:gmatch("[^,]+") do
      local host, port = http_target(part)
      if not host then return die("bench", "--metrics must be HOST:PORT, not '" .. part .. "'") end
      metrics_from[#metrics_from + 1] = { host, port }
    end
  end
  local function read_stages()
    local all = {}
    for i, t in ipairs(metrics_from) do
      local cl = http_client.new(t[1], t[2])
      local status, body = cl:request("GET", "/metrics", nil, nil, 5)
      cl:close()
      all[i] = status == 200 and stage_histograms(body) or {}
    end
    uv.run("nowait") -- the closes complete before anything else (or the exit) runs
    return all
  end
  local stages_before = o.breakdown and read_stages()
  local value = string.rep("x", size)
  local issued, finished, ok_count, errors_seen = 0, 0, 0, {}
  local lat = {}
  local t0 = uv.hrtime()
  local active = 0
  for c = 1, nclients do
    local target = targets[(c - 1) % #targets + 1]
    local client = http_client.new(target[1], target[2])
    active = active + 1
    coroutine.wrap(function()
      while issued < total do
        issued = issued + 1
        local body = '{"op":"set","key":"bench-' .. (issued % 1000) .. '","value":"' .. value .. '"}'
        local start = uv.hrtime()
        local status, rbody = client:request("POST", "/v1/propose", body,
          { ["Content-Type"] = "application/json" }, o.timeout or 10)
        local ms = (uv.hrtime() - start) / 1e6
        finished = finished + 1
        if status == 200 or status == 422 then
          ok_count = ok_count + 1
          lat[#lat + 1] = ms
        else
          local key = status and ("HTTP " .. status .. " " .. tostring(rbody):sub(1, 120)) or tostring(rbody)
          errors_seen[key] = (errors_seen[key] or 0) + 1
          if not status then client:close() end
        end
        progress:update(finished, (finished - ok_count) .. " errors")
      end
      client:close()
      active = active - 1
    end)()
  end
  while active > 0 do uv.run("once") end
  local secs = (uv.hrtime() - t0) / 1e9
  table.sort(lat)
  print(("bench: %d clients, %d requests of %d bytes, %d targets"):format(nclients, total, size, #targets))
  print(("committed: %d in %.2f s = %.0f writes/s"):format(ok_count, secs, ok_count / secs))
  print(("latency ms: p50 %.2f  p99 %.2f  max %.2f"):format(percentile(lat, 0.5), percentile(lat, 0.99),
    lat[#lat] or 0))
  if stages_before then
    local sum = 0
    for _, x in ipairs(lat) do sum = sum + x end
    print_breakdown(stage_delta(stages_before, read_stages()), #lat > 0 and sum / #lat or 0)
  end
  local nerr = 0
  for k, v in pairs(errors_seen) do
    print(("errors: %d x %s"):format(v, k))
    nerr = nerr + v
  end
  return nerr == 0 and 0 or 1
end

-- luaraft trace INPUT [-o OUT.html] [--check MODEL] [--title T]: draws a
-- trace (lua/raft/trace.lua, docs/trace.md) as one self-contained page.

return M
