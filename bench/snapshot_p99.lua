-- What automatic snapshots cost the writers (issue 12): the 64-client p99
-- of a 3-node luaraft cluster (release build, loopback, SQLite FULL, the KV
-- example, 100-byte values over 100,000 random keys) with snapshots every
-- 10,000 entries, next to the same load with snapshots off, and with the
-- snapshots made on the loop thread as before the fork (LUARAFT_SNAPSHOT_FORK
-- =0). A fresh cluster per run; ROUNDS rounds, the modes alternating; prints
-- the medians and the ratios to "off".
-- Usage: luaraft bench/snapshot_p99.lua [rounds=3] [seconds=10]
local uv = require "luv"
local cluster = require "raft.cluster"
local http_client = require "raft.http_client"

local ROUNDS = tonumber(arg and arg[1]) or 3
local SECONDS = tonumber(arg and arg[2]) or 10
local BUILD = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
local KEYS, CLIENTS = 100000, 64
local value = string.rep("v", 100)

local function now_ms() return uv.hrtime() / 1e6 end
local function median(t)
  local s = { table.unpack(t) }
  table.sort(s)
  if #s == 0 then return 0 / 0 end
  return #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
end

local function load(addr, seconds, seed)
  local host, port = addr:match("^(.*):(%d+)$")
  math.randomseed(seed)
  local lat, not_leader, failed, active = {}, 0, 0, 0
  local headers = { ["Content-Type"] = "application/json" }
  local t0 = now_ms()
  local deadline = t0 + seconds * 1000
  for _ = 1, CLIENTS do
    active = active + 1
    local cl = http_client.new(host, tonumber(port))
    coroutine.wrap(function()
      while now_ms() < deadline do
        local body = '{"op":"set","key":"k' .. math.random(KEYS) .. '","value":"' .. value .. '"}'
        local start = uv.hrtime()
        local status, rbody = cl:request("POST", "/v1/propose", body, headers, 10)
        if status == 200 then
          lat[#lat + 1] = (uv.hrtime() - start) / 1e6
        elseif rbody and tostring(rbody):find("not_leader", 1, true) then
          not_leader = not_leader + 1
        else
          failed = failed + 1
          if not status then cl:close() end
        end
      end
      cl:close()
      active = active - 1
    end)()
  end
  while active > 0 do uv.run("once") end
  table.sort(lat)
  local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or 0 / 0 end
  return { wps = #lat / ((now_ms() - t0) / 1000), p50 = pct(0.5), p99 = pct(0.99),
    not_leader = not_leader, failed = failed }
end

local function metric(c, id, name)
  local text = c:node(id):metrics() or ""
  return tonumber(text:match("\nluaraft_" .. name .. " (%d+)")) or 0
end

local MODES = {
  { name = "off", entries = 0 },
  { name = "every 10,000 (fork)", entries = 10000 },
  { name = "every 10,000 (loop thread)", entries = 10000, fork = "0" },
}
local res = {}
for _, m in ipairs(MODES) do res[m.name] = {} end

for round = 1, ROUNDS do
  local order = {}
  for i = 1, #MODES do order[i] = MODES[(i + round - 2) % #MODES + 1] end
  for _, m in ipairs(order) do
    uv.os_setenv("LUARAFT_SNAPSHOT_FORK", m.fork or "1")
    local c = cluster.new { nodes = 3, state_machine = "examples/kv.lua", binary = BUILD .. "/luaraft",
      log_level = "warn", snapshot_entries = m.entries }
    local ok, err = pcall(function()
      local l = assert(c:leader(20), "no leader")
      local term0 = assert(c:node(l):status()).term
      local r = load(c:http_address(l), SECONDS, round)
      local st = assert(c:node(l):status())
      r.snapshots = metric(c, l, "snapshots_taken_total")
      r.new_terms = st.term - term0
      res[m.name][round] = r
      io.write(("round %d %-27s %6.0f writes/s  p50 %6.2f ms  p99 %7.2f ms  snapshots %d  not_leader %d"
        .. "  failed %d  new terms %d\n"):format(round, m.name, r.wps, r.p50, r.p99, r.snapshots,
        r.not_leader, r.failed, r.new_terms))
      io.flush()
    end)
    c:close()
    if not ok then error(err, 0) end
  end
end
uv.os_unsetenv("LUARAFT_SNAPSHOT_FORK")

local function med(name, field)
  local t = {}
  for _, r in pairs(res[name]) do t[#t + 1] = r[field] end
  return median(t)
end
local off99 = med("off", "p99")
print()
print(("medians of %d rounds of %d s, %d clients:"):format(ROUNDS, SECONDS, CLIENTS))
print("| snapshots | writes/s | p50 | p99 | p99 / off | not_leader (all rounds) |")
print("| --- | --- | --- | --- | --- | --- |")
for _, m in ipairs(MODES) do
  local nl = 0
  for _, r in pairs(res[m.name]) do nl = nl + r.not_leader end
  print(("| %s | %.0f | %.2f ms | %.1f ms | %.2f | %d |"):format(m.name, med(m.name, "wps"),
    med(m.name, "p50"), med(m.name, "p99"), med(m.name, "p99") / off99, nl))
end
