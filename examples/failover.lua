-- A failover scenario against real processes, readable in a minute:
--   build/luaraft examples/failover.lua
-- starts 3 KV nodes, writes, kills the leader, watches a new one take over,
-- partitions the new leader away, heals, checks every operation for
-- linearizability and prints a short report.
local uv = require "luv"
local t0 = uv.hrtime()
local function say(fmt, ...)
  print(string.format("[%7.1f ms] " .. fmt, (uv.hrtime() - t0) / 1e6, ...))
end

local cluster = raft.cluster { nodes = 3, state_machine = "examples/kv.lua",
                               election_ms = 300, heartbeat_ms = 50 }
local ok, err = pcall(function()

  local leader = assert(cluster:leader())
  say("leader is node %d", leader)
  for i = 1, 20 do
    assert(cluster:node(leader):propose { op = "set", key = "k" .. i % 4, value = tostring(i) })
  end
  say("20 writes acknowledged through node %d", leader)

  local killed = leader
  local t = uv.hrtime()
  cluster:kill(killed)
  say("SIGKILL node %d", killed)
  leader = assert(cluster:leader())
  say("node %d took over after %.0f ms", leader, (uv.hrtime() - t) / 1e6)
  assert(cluster:node(leader):propose { op = "incr", key = "n", by = 1 })

  cluster:restart(killed)
  say("node %d restarted", killed)

  local others = {}
  for _, id in ipairs(cluster:ids()) do if id ~= leader then others[#others + 1] = id end end
  cluster:partition({ leader }, others)
  say("partitioned node %d away from %s", leader, table.concat(others, ","))
  local _, perr = cluster:node(leader):propose({ op = "set", key = "lost?", value = "x" }, { timeout = 1 })
  say("write to the isolated leader: %s", perr and perr.code or "acknowledged (unexpected)")
  local new_leader = assert(cluster:wait_for(function()
    for _, id in ipairs(others) do
      local st = cluster:node(id):status(1)
      if st and st.role == "leader" then return id end
    end
  end, 10), "the majority elected nobody")
  say("majority side elected node %s", tostring(new_leader))
  cluster:heal()
  say("healed")
  assert(cluster:node(new_leader):propose { op = "set", key = "after", value = "heal" })
  for _, id in ipairs(cluster:ids()) do
    -- a node that just rejoined may need a moment to hear of the new leader
    local v, rerr
    for _ = 1, 20 do
      v, rerr = cluster:node(id):read({ key = "after" })
      if not rerr then break end
      require("raft.cluster").sleep(0.1)
    end
    say("node %d reads after=%s%s", id, tostring(v), rerr and (" (" .. tostring(rerr) .. ")") or "")
  end

  local history = cluster:history()
  local lin, counter = raft.check.linearizable(history, "kv")
  say("%d operations, linearizable: %s", #history, tostring(lin))
  if not lin then error(counter and counter.message or "not linearizable", 0) end
end)
local dir = cluster.dir
cluster:close()
if not ok then error(err, 0) end
local f = io.open(dir)
if f then f:close() error("the cluster's folder " .. dir .. " was not removed", 0) end
say("cluster closed, %s removed", dir)
