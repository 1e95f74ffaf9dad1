-- Failover as the clients see it, on a local 3-node cluster of the KV
-- example (real processes, SQLite). Clients write without pause to every
-- node (followers included: they forward to the leader, and re-forward to
-- the next one, issue 10) while the leader is SIGKILLed (then restarted)
-- `runs` times and SIGSTOPped (then resumed) `runs` times. Reports:
--   - per fault, the time from the fault until the first write sent after it
--     is acknowledged;
--   - the longest gap between two acknowledged writes (any client);
--   - the slowest single request;
--   - requests that reached their timeout;
-- against election_ms (goals: gap < 2x, slowest < 3x, no timeout).
-- A client does not send to the node that is down or stopped (no system
-- can answer from a frozen process); a request already waiting on it when
-- the fault hits is counted apart ("on the faulted node").
-- Usage: luaraft bench/failover.lua [runs] [election_ms] [clients per node]
local uv = require "luv"
local cjson = require "cjson"
local http_client = require "raft.http_client"
local cluster = require "raft.cluster"

local runs = tonumber(arg and arg[1]) or 10
local election_ms = tonumber(arg and arg[2]) or 300
local per_node = tonumber(arg and arg[3]) or 2
local TIMEOUT_S = 10

local c = raft.cluster { nodes = 3, state_machine = "examples/kv.lua",
                         election_ms = election_ms, heartbeat_ms = 50, log_level = "warn" }
local function now() return uv.hrtime() / 1e6 end

local faulted = {}     -- id -> true while killed or stopped
local fault_n = {}     -- id -> faults of that node so far
local inflight = {}    -- id -> requests waiting on that node
local stop = false
local last_ok, t_start
local longest_gap, gap_at = 0, 0
local slowest, slowest_what = 0, ""
local n_ok, n_err, n_timeout, n_on_faulted, n_refused = 0, 0, 0, 0, 0
local errs = {}
local fault_at, fault_first_ok = nil, nil
local per_fault = {}

local function client(k)
  local ids = c:ids()
  local clients = {}
  local i = k
  local seq = 0
  while not stop do
    i = i % #ids + 1
    local id = ids[i]
    if not faulted[id] then
      if not clients[id] then
        local host, port = c:http_address(id):match("^(.*):(%d+)$")
        clients[id] = http_client.new(host, port)
      end
      seq = seq + 1
      local body = cjson.encode { op = "incr", key = "c" .. k .. "-" .. seq, by = 1 }
      local t0 = now()
      local f0 = fault_n[id] or 0
      inflight[id] = (inflight[id] or 0) + 1
      local status, rbody = clients[id]:request("POST", "/v1/propose?timeout=" .. TIMEOUT_S, body,
        { ["Content-Type"] = "application/json" }, TIMEOUT_S + 2)
      local t1 = now()
      inflight[id] = inflight[id] - 1
      -- faulted at any moment while it waited: a request caught by the
      -- SIGSTOP waits out the pause (the bench's choice: first write after
      -- it acknowledged + 1.5 election_ms), then is answered within a few
      -- ms of SIGCONT; it is counted apart, as the header says
      local was_faulted = faulted[id] or (fault_n[id] or 0) ~= f0
      if status == 200 then
        n_ok = n_ok + 1
        if last_ok and t1 - last_ok > longest_gap then longest_gap, gap_at = t1 - last_ok, t1 - t_start end
        last_ok = math.max(last_ok or t1, t1)
        if fault_at and not fault_first_ok and t0 >= fault_at then fault_first_ok = t1 end
      elseif was_faulted then
        n_on_faulted = n_on_faulted + 1
      elseif not status and tostring(rbody):find("ECONNREFUSED", 1, true) then
        n_refused = n_refused + 1 -- a node restarting: the request never reached it
      else
        local code = status and (cjson.decode(rbody) or {}).error or tostring(rbody)
        if code == "timeout" or not status then n_timeout = n_timeout + 1 end
        n_err = n_err + 1
        errs[code] = (errs[code] or 0) + 1
      end
      if status and not was_faulted and t1 - t0 > slowest then
        slowest, slowest_what = t1 - t0, ("node %d, %s, at %.1f s"):format(id, status, (t0 - t_start) / 1000)
      end
      if not status then clients[id]:close(); clients[id] = nil end
    else
      cluster.sleep(0.005)
    end
  end
  for _, cl in pairs(clients) do cl:close() end
end

local function start_client(k)
  local t = uv.new_timer()
  t:start(0, 0, function()
    t:close()
    coroutine.wrap(function()
      local ok, err = pcall(client, k)
      if not ok then print("client " .. k .. ": " .. tostring(err)) end
    end)()
  end)
end

local function one_fault(kind, run)
  local leader = assert(c:leader(15))
  cluster.sleep(0.5)
  fault_first_ok = nil
  faulted[leader] = true
  fault_n[leader] = (fault_n[leader] or 0) + 1
  fault_at = now()
  if kind == "kill" then c:kill(leader) else c:pause(leader) end
  local caught = inflight[leader] or 0
  assert(c:wait_for(function() return fault_first_ok end, 15), "no write acknowledged after the fault")
  local ms = fault_first_ok - fault_at
  per_fault[#per_fault + 1] = ms
  print(("%-4s %2d: node %d (%d of %d clients waiting on it), first write sent after it "
    .. "acknowledged after %4.0f ms (%.2fx election_ms)"):format(kind, run, leader, caught,
    3 * per_node, ms, ms / election_ms))
  cluster.sleep(1.5 * election_ms / 1000)
  fault_at = nil
  if kind == "kill" then c:restart(leader) else c:resume(leader) end
  c:wait_for(function()
    local st = c:node(leader):status(1)
    return st and st.leader ~= nil and st.leader ~= cjson.null
  end, 15)
  faulted[leader] = nil
end

local ok, err = pcall(function()
  assert(c:leader(15))
  t_start = now()
  for k = 1, 3 * per_node do start_client(k) end
  cluster.sleep(1)
  for run = 1, runs do one_fault("kill", run) end
  for run = 1, runs do one_fault("stop", run) end
  cluster.sleep(1)
  stop = true
  cluster.sleep(TIMEOUT_S + 3)
end)
c:close()
if not ok then error(err, 0) end
table.sort(per_fault)
local errlist = {}
for code, n in pairs(errs) do errlist[#errlist + 1] = code .. " " .. n end
print(("%d clients on 3 nodes, %d SIGKILLs and %d SIGSTOPs of the leader, election_ms %d:"):format(
  3 * per_node, runs, runs, election_ms))
print(("  writes acknowledged %d, failed %d (%s), timed out %d, refused by a restarting node %d, "
  .. "lost with the faulted node %d"):format(n_ok, n_err, table.concat(errlist, ", "), n_timeout,
  n_refused, n_on_faulted))
print(("  fault -> first write sent after it acknowledged: median %.0f ms, max %.0f ms (%.2fx election_ms)"):format(
  per_fault[(#per_fault + 1) // 2], per_fault[#per_fault], per_fault[#per_fault] / election_ms))
print(("  longest gap between two acknowledged writes: %.0f ms (%.2fx election_ms, at %.1f s)"):format(
  longest_gap, longest_gap / election_ms, gap_at / 1000))
print(("  slowest request: %.0f ms (%.2fx election_ms; %s)"):format(slowest, slowest / election_ms, slowest_what))
