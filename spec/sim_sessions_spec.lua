-- Exactly-once proposals (client sessions) and deterministic apply errors.
local raft = require "raft"
local sim_util = require "support.sim_util"
local elect = sim_util.elect

describe("raft.sim sessions and apply errors", function()
  it("applies a retried client/seq proposal once and returns the first result", function()
    local sim = raft.sim { nodes = 3, seed = 41, state_machine = "examples/kv.lua" }
    local leader = elect(sim)
    local node = sim:node(leader)
    assert.equal(1, node:propose({ op = "incr", key = "n" }, { client = "c1", seq = 1 }))
    assert.equal(1, node:propose({ op = "incr", key = "n" }, { client = "c1", seq = 1 }))
    assert.equal(2, node:propose({ op = "incr", key = "n" }, { client = "c1", seq = 2 }))
    local _, err = node:propose({ op = "incr", key = "n" }, { client = "c1", seq = 1 })
    assert.equal("bad_request", err.code)
    assert.equal(2, node:read({ key = "n" }))
    -- another client has its own sequence
    assert.equal(3, node:propose({ op = "incr", key = "n" }, { client = "c2", seq = 1 }))
    sim:check()
  end)

  it("keeps sessions across snapshots and restarts", function()
    local sim = raft.sim { nodes = 3, seed = 42, state_machine = "examples/kv.lua",
                           snapshot_entries = 10 }
    local leader = elect(sim)
    assert.equal(1, sim:node(leader):propose({ op = "incr", key = "n" }, { client = "c", seq = 7 }))
    for i = 1, 30 do sim:node(leader):propose({ op = "set", key = "x", value = i }) end
    for _, id in ipairs(sim:nodes()) do sim:crash(id) end
    for _, id in ipairs(sim:nodes()) do sim:restart(id) end
    leader = elect(sim)
    assert.equal(1, sim:node(leader):propose({ op = "incr", key = "n" }, { client = "c", seq = 7 }))
    assert.equal(1, sim:node(leader):read({ key = "n" }))
    sim:check()
  end)

  it("turns an error in apply into apply_error on every replica and keeps going", function()
    local sim = raft.sim { nodes = 3, seed = 43, state_machine = "examples/kv.lua" }
    local leader = elect(sim)
    sim:advance(500) -- every follower knows the leader
    local results = {}
    for _, id in ipairs(sim:nodes()) do
      local _, err = sim:node(id):propose({ op = "nope", key = "k" })
      assert.equal("apply_error", err.code)
      results[#results + 1] = err.message
    end
    assert.matches("examples/kv.lua:%d+: unknown op nope", results[1])
    assert.equal(results[1], results[2])
    assert.equal(results[1], results[3])
    assert.is_true(sim:node(leader):propose({ op = "set", key = "k", value = 1 }))
    for _, id in ipairs(sim:nodes()) do
      sim:run_until(function()
        return sim:node(id):status().applied_index == sim:node(leader):status().commit_index
      end, 2000)
      assert.equal(1, sim:node(id):read({ key = "k" }, { consistency = "stale" }))
    end
    sim:check()
  end)

  it("accepts a factory function whose only upvalue is _ENV", function()
    local sim = raft.sim { nodes = 3, seed = 44, state_machine = function()
      local count = 0
      return { apply = function(cmd) count = count + 1 return count end }
    end }
    local leader = elect(sim)
    assert.equal(1, sim:node(leader):propose("x"))
  end)

  it("refuses a factory function with other upvalues, pointing to a path", function()
    local captured = {}
    assert.has_error(function()
      raft.sim { nodes = 3, state_machine = function() return { apply = function() return captured end } end }
    end)
    local ok, err = pcall(raft.sim, { nodes = 3, state_machine = function()
      return captured
    end })
    assert.is_false(ok)
    assert.matches("path", err)
  end)

  it("refuses a script that does not return a state machine", function()
    local ok, err = pcall(raft.sim, { nodes = 3, state_machine = function() return 42 end })
    assert.is_false(ok)
    assert.matches("must return a table with an apply function", err)
  end)
end)
