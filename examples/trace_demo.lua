-- A simulated failover run written as a luaraft-trace file, for
-- `luaraft trace` (docs/trace.md):
--   luaraft examples/trace_demo.lua demo.json [SECONDS=20] [SEED=7]
--   luaraft trace demo.json -o demo.html
-- Clients write and read all along while the run isolates a follower,
-- crashes the leader, partitions the cluster, adds a fourth node and
-- removes it again: the page shows roles, terms, leader changes, crashes,
-- partitions, membership and every operation's outcome.
local raft = require "raft"

local path = assert(arg[1], "usage: luaraft examples/trace_demo.lua OUT.json [SECONDS] [SEED]")
local seconds = tonumber(arg[2]) or 20
local sim <close> = raft.sim { nodes = 3, seed = tonumber(arg[3]) or 7, state_machine = "examples/kv.lua",
                               election_ms = 300, heartbeat_ms = 50 }
local rng_state = 1
local function rnd(n) rng_state = (rng_state * 1103515245 + 12345) % 2147483648 return rng_state % n + 1 end

local function clients(ms)
  local stop = sim:now() + ms
  while sim:now() < stop do
    local node = rnd(3) -- the first three nodes: node 4 comes and goes
    local key = "k" .. rnd(3)
    if rnd(3) == 1 then
      sim:read({ key = key }, { node = node })
    elseif rnd(2) == 1 then
      sim:propose({ op = "set", key = key, value = rnd(100) }, { node = node, timeout = 1500 })
    else
      sim:propose({ op = "incr", key = key }, { node = node, timeout = 1500 })
    end
    sim:advance(20 + rnd(60))
  end
end

sim:run_until(function() return sim:leader() end, 5000)
local round = math.min(1500, math.max(200, math.floor(seconds * 1000 / 8)))
local t_end = sim:now() + seconds * 1000
while sim:now() < t_end do
  clients(round)
  local leader = sim:leader() or 1
  local other = leader % 3 + 1
  sim:isolate(other); clients(round); sim:heal()
  sim:crash(leader); clients(round); sim:restart(leader)
  clients(round)
  sim:partition({ leader }, { other, other % 3 + 1 }); clients(round); sim:heal()
  if not sim:status(4) then
    sim:add_node(4)
    local l = sim:leader()
    if l then sim:wait(sim:propose({ op = "set", key = "joining", value = 4 }, { node = l })) end
    if l then sim:node(l):add_member(4, "sim:4", { learner = true }) end
    clients(round)
    l = sim:leader()
    if l then sim:node(l):promote(4) end
    clients(round)
    l = sim:leader()
    if l then sim:node(l):remove_member(4) end
  end
  clients(round)
end
sim:advance(3000) -- let the last operations finish or time out
sim:check()
assert(sim:export_trace(path, { title = ("raft.sim failover run, %d s, seed %s"):format(seconds, arg[3] or 7) }))
print("wrote " .. path)
