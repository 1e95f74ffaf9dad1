-- luaraft side by side with etcd, in one run on one machine: a local 3-node
-- luaraft cluster (loopback, SQLite synchronous=FULL, the KV example) and a
-- 3-member etcd (election 300 ms, heartbeat 50 ms), both started here in
-- temporary folders on free ports and removed at the end. One load generator
-- (this file) for both: 100-byte values over 100,000 random keys, keep-alive
-- connections to the leader, luaraft through POST /v1/propose, etcd through
-- its JSON gateway POST /v3/kv/put (base64 key and value). For 1 and for 64
-- clients, ROUNDS rounds, the systems alternating (who goes first swaps each
-- round); prints the medians of writes/s, p50 and p99, the ratios
-- luaraft/etcd, the leader's mean commit (fsync) time at 64 clients from
-- each system's /metrics, the not_leader answers, the disk's floor measured
-- in the same run (4 KiB pwrite+fdatasync p50, overwriting a preallocated
-- file and appending), and the failover median (SIGKILL the leader, time
-- until a write succeeds through a survivor).
--
-- Usage: luaraft bench/compare.lua [rounds] [seconds] [failovers]
--   Environment: ETCD (the etcd binary, default etcd), STORE_COMMIT (the
--   bench/store_commit.c binary for the floor, default build/store_commit),
--   LUARAFT_RELEASE_BUILD (default build). scripts/bench compare runs it.
local uv = require "luv"
local cjson = require "cjson.safe"
local cluster = require "raft.cluster"
local http_client = require "raft.http_client"

local ROUNDS = tonumber(arg and arg[1]) or 3
local SECONDS = tonumber(arg and arg[2]) or 5
local FAILOVERS = tonumber(arg and arg[3]) or 5
local ETCD = os.getenv("ETCD") or "etcd"
local STORE_COMMIT = os.getenv("STORE_COMMIT") or "build/store_commit"
local BUILD = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
local KEYS, VALUE_BYTES = 100000, 100
local ELECTION_MS, HEARTBEAT_MS = 300, 50

local sleep = cluster.sleep

local function now_ms() return uv.hrtime() / 1e6 end

local support = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/support.lua")
local sh, free_port = support.sh, support.free_port

local function median(t)
  local s = { table.unpack(t) }
  table.sort(s)
  if #s == 0 then return 0 / 0 end
  return #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  return sorted[math.max(1, math.min(#sorted, math.ceil(#sorted * p)))]
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = B64:sub((n >> 18) + 1, (n >> 18) + 1) .. B64:sub(((n >> 12) & 63) + 1, ((n >> 12) & 63) + 1)
      .. (b and B64:sub(((n >> 6) & 63) + 1, ((n >> 6) & 63) + 1) or "=")
      .. (c and B64:sub((n & 63) + 1, (n & 63) + 1) or "=")
  end
  return table.concat(out)
end

local function split_addr(a)
  local host, port = a:match("^(.*):(%d+)$")
  return host, tonumber(port)
end

-- ---- the two systems, one interface: leader(), write_body(key), metrics ----
local luaraft = { name = "luaraft", path = "/v1/propose" }

function luaraft.start()
  luaraft.c = cluster.new { nodes = 3, state_machine = "examples/kv.lua",
    binary = BUILD .. "/luaraft", log_level = "warn", election_ms = ELECTION_MS,
    heartbeat_ms = HEARTBEAT_MS }
end

function luaraft.leader(timeout)
  local id = luaraft.c:leader(timeout or 15)
  return id and luaraft.c:http_address(id), id
end

function luaraft.members()
  local t = {}
  for _, id in ipairs(luaraft.c:ids()) do t[#t + 1] = id end
  return t
end

function luaraft.address(id) return luaraft.c:http_address(id) end

local value = string.rep("v", VALUE_BYTES)
function luaraft.body(k)
  return '{"op":"set","key":"k' .. k .. '","value":"' .. value .. '"}'
end

function luaraft.commit_ms(addr)
  local m = sh("curl -s --max-time 5 http://" .. addr .. "/metrics")
  return tonumber(m:match("\nluaraft_fsync_seconds_sum ([%d.e+-]+)")),
    tonumber(m:match("\nluaraft_fsync_seconds_count ([%d.e+-]+)"))
end

function luaraft.kill(id) luaraft.c:kill(id) end

function luaraft.restart(id)
  luaraft.c:restart(id)
  luaraft.c:wait_for(function()
    local st = luaraft.c:node(id):status(1)
    return st and st.leader ~= nil and st.leader ~= 0
  end, 20)
end

function luaraft.stop() if luaraft.c then luaraft.c:close() end end

local etcd = { name = "etcd", path = "/v3/kv/put", members_ = {} }
local value64 = base64(value)
local keys64 = {}
function etcd.body(k)
  local key = keys64[k]
  if not key then key = base64("k" .. k); keys64[k] = key end
  return '{"key":"' .. key .. '","value":"' .. value64 .. '"}'
end

function etcd.spawn(m)
  local log = assert(uv.fs_open(etcd.dir .. "/" .. m.name .. ".log", "a", 420))
  local args = { "--name", m.name, "--data-dir", etcd.dir .. "/" .. m.name,
    "--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
    "--listen-client-urls", "http://" .. m.client, "--advertise-client-urls", "http://" .. m.client,
    "--initial-cluster", etcd.initial, "--initial-cluster-state", "new",
    "--initial-cluster-token", "luaraft-compare",
    "--election-timeout", tostring(ELECTION_MS), "--heartbeat-interval", tostring(HEARTBEAT_MS),
    "--logger", "zap", "--log-level", "error" }
  local handle, pid
  handle, pid = uv.spawn(ETCD, { args = args, stdio = { nil, log, log } }, function()
    handle:close()
    m.handle = nil
  end)
  uv.fs_close(log)
  assert(handle, "cannot start " .. ETCD .. ": " .. tostring(pid))
  m.handle = handle
end

function etcd.start()
  etcd.dir = sh("mktemp -d /tmp/luaraft-compare-etcd.XXXXXX"):gsub("%s+$", "")
  local parts = {}
  for i = 1, 3 do
    local m = { name = "e" .. i, peer = "http://127.0.0.1:" .. free_port(),
                client = "127.0.0.1:" .. free_port() }
    etcd.members_[i] = m
    parts[i] = m.name .. "=" .. m.peer
  end
  etcd.initial = table.concat(parts, ",")
  for _, m in ipairs(etcd.members_) do etcd.spawn(m) end
end

-- {member_id, leader} of member i, or nil.
local function etcd_status(i, timeout)
  local host, port = split_addr(etcd.members_[i].client)
  local cl = http_client.new(host, port)
  local status, body = cl:request("POST", "/v3/maintenance/status", "{}",
    { ["Content-Type"] = "application/json" }, timeout or 1)
  cl:close()
  if status ~= 200 then return nil end
  local t = cjson.decode(body)
  if not t or not t.header then return nil end
  return t.header.member_id, t.leader
end

function etcd.leader(timeout)
  local deadline = now_ms() + (timeout or 15) * 1000
  repeat
    for i, m in ipairs(etcd.members_) do
      if m.handle then
        local id, leader = etcd_status(i, 0.5)
        if id and leader and leader ~= "0" and id == leader then return m.client, i end
      end
    end
    sleep(0.05)
  until now_ms() > deadline
  return nil
end

function etcd.members() return { 1, 2, 3 } end
function etcd.address(i) return etcd.members_[i].client end

function etcd.commit_ms(addr)
  local m = sh("curl -s --max-time 5 http://" .. addr .. "/metrics")
  return tonumber(m:match("\netcd_disk_wal_fsync_duration_seconds_sum ([%d.e+-]+)")),
    tonumber(m:match("\netcd_disk_wal_fsync_duration_seconds_count ([%d.e+-]+)"))
end

function etcd.kill(i)
  local m = etcd.members_[i]
  if m.handle then m.handle:kill("sigkill") end
  while m.handle do uv.run("once") end
end

function etcd.restart(i)
  etcd.spawn(etcd.members_[i])
  local deadline = now_ms() + 20000
  repeat
    local id, leader = etcd_status(i, 0.5)
    if id and leader and leader ~= "0" then return end
    sleep(0.05)
  until now_ms() > deadline
  error("etcd member " .. i .. " did not rejoin within 20 s")
end

function etcd.stop()
  for i in ipairs(etcd.members_) do etcd.kill(i) end
  if etcd.dir and etcd.dir:match("^/tmp/luaraft%-compare%-etcd") then sh("rm -rf " .. etcd.dir) end
end

-- ---- load ----------------------------------------------------------------------------------
-- `clients` keep-alive connections to addr for `seconds`, each writing
-- random keys one after another. Returns writes/s, p50, p99 (ms), the
-- not_leader answers and the other failures.
local function load(sys, addr, clients, seconds, seed)
  local host, port = split_addr(addr)
  math.randomseed(seed)
  local lat, not_leader, failed, active = {}, 0, 0, 0
  local headers = { ["Content-Type"] = "application/json" }
  local t0 = now_ms()
  local deadline = t0 + seconds * 1000
  for _ = 1, clients do
    active = active + 1
    local cl = http_client.new(host, port)
    coroutine.wrap(function()
      while now_ms() < deadline do
        local body = sys.body(math.random(KEYS))
        local start = uv.hrtime()
        local status, rbody = cl:request("POST", sys.path, body, headers, 10)
        local ms = (uv.hrtime() - start) / 1e6
        if status == 200 then
          lat[#lat + 1] = ms
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
  local secs = (now_ms() - t0) / 1000
  table.sort(lat)
  return { wps = #lat / secs, p50 = percentile(lat, 0.5), p99 = percentile(lat, 0.99),
    not_leader = not_leader, failed = failed }
end

-- The disk's floor now: p50 of 4 KiB pwrite+fdatasync, overwriting a
-- preallocated file and appending (bench/store_commit.c, in /tmp's disk,
-- where both systems keep their data).
local function floor_now()
  local out = sh(STORE_COMMIT .. " -d /tmp -n 400 -r 2 -p 0 -o overwrite; "
    .. STORE_COMMIT .. " -d /tmp -n 400 -r 2 -p 0 -o append")
  return tonumber(out:match("floor overwrite[^\n]-%)%s+([%d.]+)")),
    tonumber(out:match("floor append[^\n]-%)%s+([%d.]+)"))
end

-- SIGKILL of the leader, then writes through the survivors every 5 ms
-- (each on a new connection, 2 s timeout) until one succeeds: the time from
-- the kill to that success. The killed member is restarted and rejoins.
local function failover(sys, seed)
  local _, victim = sys.leader(20)
  assert(victim, sys.name .. ": no leader before the kill")
  local survivors = {}
  for _, id in ipairs(sys.members()) do if id ~= victim then survivors[#survivors + 1] = id end end
  local t0 = now_ms()
  sys.kill(victim)
  local done_at, attempts, outstanding = nil, 0, 0
  math.randomseed(seed)
  while not done_at and now_ms() - t0 < 15000 do
    attempts = attempts + 1
    local addr = sys.address(survivors[attempts % #survivors + 1])
    local host, port = split_addr(addr)
    outstanding = outstanding + 1
    coroutine.wrap(function()
      local cl = http_client.new(host, port)
      local status = cl:request("POST", sys.path, sys.body(math.random(KEYS)),
        { ["Content-Type"] = "application/json" }, 2)
      cl:close()
      outstanding = outstanding - 1
      if status == 200 and not done_at then done_at = now_ms() end
    end)()
    sleep(0.005)
  end
  while outstanding > 0 do uv.run("once") end
  assert(done_at, sys.name .. ": no write succeeded within 15 s of the kill")
  sys.restart(victim)
  return done_at - t0
end

-- ---- the run ------------------------------------------------------------------------------
local function fmt(x, d) return x ~= x and "-" or string.format("%." .. (d or 0) .. "f", x) end

local results = { luaraft = { [1] = {}, [64] = {} }, etcd = { [1] = {}, [64] = {} } }
local commit = { luaraft = {}, etcd = {} }
local floors = { over = {}, append = {} }
local fails = { luaraft = {}, etcd = {} }

local ok, err = pcall(function()
  etcd.start()
  luaraft.start()
  assert(etcd.leader(20), "etcd elected no leader within 20 s (see its logs in " .. etcd.dir .. ")")
  assert(luaraft.leader(20), "luaraft elected no leader within 20 s")
  local o, a = floor_now()
  floors.over[#floors.over + 1], floors.append[#floors.append + 1] = o, a
  for round = 1, ROUNDS do
    local order = round % 2 == 1 and { luaraft, etcd } or { etcd, luaraft }
    for _, sys in ipairs(order) do
      local addr = assert(sys.leader(20), sys.name .. ": no leader")
      for _, clients in ipairs { 1, 64 } do
        local s0, n0 = sys.commit_ms(addr)
        local r = load(sys, addr, clients, SECONDS, round * 100 + clients)
        local s1, n1 = sys.commit_ms(addr)
        if clients == 64 and s0 and s1 and n1 > n0 then
          commit[sys.name][#commit[sys.name] + 1] = (s1 - s0) / (n1 - n0) * 1000
        end
        results[sys.name][clients][round] = r
        io.write(("round %d %-7s %2d clients: %7.0f writes/s  p50 %6.2f ms  p99 %6.2f ms  not_leader %d  failed %d\n")
          :format(round, sys.name, clients, r.wps, r.p50, r.p99, r.not_leader, r.failed))
        io.flush()
      end
    end
    o, a = floor_now()
    floors.over[#floors.over + 1], floors.append[#floors.append + 1] = o, a
  end
  for run = 1, FAILOVERS do
    for _, sys in ipairs(run % 2 == 1 and { luaraft, etcd } or { etcd, luaraft }) do
      local ms = failover(sys, run)
      fails[sys.name][#fails[sys.name] + 1] = ms
      io.write(("failover %d %-7s %.0f ms\n"):format(run, sys.name, ms))
      io.flush()
    end
  end
end)
luaraft.stop()
etcd.stop()
if not ok then error(err, 0) end

local function med(sys, clients, field)
  local t = {}
  for _, r in pairs(results[sys][clients]) do t[#t + 1] = r[field] end
  return median(t)
end
local function total(sys, field)
  local n = 0
  for _, c in ipairs { 1, 64 } do for _, r in pairs(results[sys][c]) do n = n + r[field] end end
  return n
end

print()
print(("medians of %d rounds of %d s; disk floor in this run (4 KiB pwrite+fdatasync p50): "
  .. "overwrite %s ms, append %s ms"):format(ROUNDS, SECONDS, fmt(median(floors.over), 3),
  fmt(median(floors.append), 3)))
print("| figure | luaraft | etcd | luaraft / etcd |")
print("| --- | --- | --- | --- |")
for _, c in ipairs { 1, 64 } do
  local lw, ew = med("luaraft", c, "wps"), med("etcd", c, "wps")
  print(("| %d client%s, writes/s | %s | %s | %.2f |"):format(c, c > 1 and "s" or "", fmt(lw), fmt(ew), lw / ew))
  local l50, e50 = med("luaraft", c, "p50"), med("etcd", c, "p50")
  local l99, e99 = med("luaraft", c, "p99"), med("etcd", c, "p99")
  print(("| %d client%s, p50 / p99 | %s / %s ms | %s / %s ms | %.2f / %.2f |"):format(c, c > 1 and "s" or "",
    fmt(l50, 2), fmt(l99, 1), fmt(e50, 2), fmt(e99, 1), l50 / e50, l99 / e99))
end
local lc, ec = median(commit.luaraft), median(commit.etcd)
print(("| leader commit (fsync) mean at 64 clients | %s ms | %s ms | %.2f |"):format(fmt(lc, 2), fmt(ec, 2), lc / ec))
local lf, ef = median(fails.luaraft), median(fails.etcd)
if #fails.luaraft > 0 then
  print(("| failover median (%d runs) | %s ms | %s ms | %.2f |"):format(#fails.luaraft, fmt(lf), fmt(ef), lf / ef))
end
print(("| not_leader answers (all rounds) | %d | %d | |"):format(total("luaraft", "not_leader"),
  total("etcd", "not_leader")))
print(("| other failed writes (all rounds) | %d | %d | |"):format(total("luaraft", "failed"), total("etcd", "failed")))
