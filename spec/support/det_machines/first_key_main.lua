-- luaraft first_key_main.lua [raw]: prints the first pairs key of a 200-key
-- table built inside a state machine's sandboxed Lua state (a one-node
-- simulated cluster), so separate processes can be compared.
local raft = require "raft"
local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local raw = arg and arg[1] == "raw"
local sim = raft.sim { nodes = 1, seed = 1, trace = false,
                       state_machine = dir .. (raw and "/first_key_raw.lua" or "/first_key.lua") }
assert(sim:run_until(function() return sim:leader() ~= nil end, 10000), "no leader")
print(assert(sim:node(sim:leader()):propose(200)))
