-- Helpers the simulator specs share.
local raft = require "raft"

local sim_util = {}

-- A 3-node KV simulation with `seed`, options in `extra` overriding.
function sim_util.new(seed, extra)
  local opts = { nodes = 3, seed = seed, state_machine = "examples/kv.lua" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return raft.sim(opts)
end

-- Runs until there is a leader (other than `not_id`, if given); returns it.
function sim_util.elect(sim, not_id)
  assert(sim:run_until(function()
    local l = sim:leader()
    return l ~= nil and l ~= not_id
  end, 10000), "no leader")
  return sim:leader()
end

-- Every node id but `id`.
function sim_util.others(sim, id)
  local t = {}
  for _, n in ipairs(sim:nodes()) do if n ~= id then t[#t + 1] = n end end
  return t
end

return sim_util
