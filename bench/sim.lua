-- Simulator throughput: 3 nodes, no faults, 100-byte entries, a trivial Lua
-- apply, many proposals in flight. Prints entries committed and applied per
-- CPU second (os.clock), counting each entry once (not once per node).
-- Proposals go in bursts through propose_many (one binding call per burst,
-- each entry still its own request, envelope, log entry and apply).
-- Usage: luaraft bench/sim.lua [entries] [inflight] [guarded|unguarded]
--   guarded (default): the deterministic sandbox and the instruction budget
--   unguarded: every sandbox guard lifted (unsafe = true), no budget
local raft = require "raft"

local total = tonumber(arg and arg[1]) or 200000
local inflight = tonumber(arg and arg[2]) or 2000
local mode = arg and arg[3] or "guarded"
assert(mode == "guarded" or mode == "unguarded", "mode: guarded or unguarded")

-- (two factories: a factory cannot capture `mode`, it runs in each node's state)
local guarded_sm = function()
  local n = 0
  return {
    apply = function(cmd, meta) n = n + 1 end,
    -- a trivial snapshot, so the logs are compacted (every
    -- snapshot_entries) and memory stays flat, as in a long run
    snapshot = function() return tostring(n) end,
    restore = function(data) n = tonumber(data) end,
  }
end
local unguarded_sm = function()
  local n = 0
  return {
    unsafe = true,
    apply = function(cmd, meta) n = n + 1 end,
    snapshot = function() return tostring(n) end,
    restore = function(data) n = tonumber(data) end,
  }
end

local sim = raft.sim {
  nodes = 3, seed = 1, trace = false, checks = false,
  state_machine = mode == "guarded" and guarded_sm or unguarded_sm,
  apply_budget = mode == "unguarded" and false or nil,
  delay = { 1, 1 }, disk_ms = { 0, 0 },
}
assert(sim:run_until(function() return sim:leader() ~= nil end, 5000), "no leader")
local leader = sim:leader()
local payload = string.rep("x", 100)
local c = sim.c -- the C object: proposals without ticket bookkeeping

local function applied_everywhere()
  local min = math.huge
  for _, id in ipairs(sim:nodes()) do
    local st = sim:status(id)
    if st.applied_index < min then min = st.applied_index end
  end
  return min
end

local base = applied_everywhere()
local t0 = os.clock()
local proposed, done = 0, 0
local progress = require("raft.progress").new { label = "bench sim", total = total, unit = "entries",
                                                clock = os.clock } -- CPU seconds, like the result
while done < total do
  local n = math.min(inflight - (proposed - done), total - proposed)
  if n > 0 then
    c:propose_many(leader, payload, n, nil, nil, 60000) -- n proposals, one call
    proposed = proposed + n
  end
  c:run(c:now() + 1)
  while c:completion() do done = done + 1 end
  progress:update(done)
end
assert(sim:run_until(function() return applied_everywhere() >= base + total end, 60000))
local cpu = os.clock() - t0
print(string.format("%s: %d entries committed and applied on 3 nodes in %.3f CPU s: %.0f entries/s",
  mode, total, cpu, total / cpu))
