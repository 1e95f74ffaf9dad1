-- The instruction budget, divergence detection with digest() and the memory
-- limit (README "Deterministic state machines"), in the simulator.
local raft = require "raft"

local M = "spec/support/det_machines/"

local function elect(sim)
  assert(sim:run_until(function() return sim:leader() ~= nil end, 10000), "no leader")
  sim:advance(300)
  return sim:leader()
end

local function caught_up(sim, id, leader)
  return sim:run_until(function()
    return sim:status(id).applied_index >= sim:status(leader).commit_index
  end, 5000)
end

describe("the instruction budget", function()
  it("stops a runaway apply with the same apply_error on every replica; the cluster goes on", function()
    local sim = raft.sim { nodes = 3, seed = 21, state_machine = M .. "runaway.lua",
                           apply_budget = 1000000 }
    local leader = elect(sim)
    local errs = {}
    for _, id in ipairs(sim:nodes()) do
      local _, err = sim:node(id):propose("loop")
      assert.equal("apply_error", err.code)
      errs[#errs + 1] = err.message
    end
    assert.matches("runaway.lua:%d+: instruction budget exceeded: more than 1000000 Lua "
                   .. "instructions in one call %(apply_budget%)", errs[1])
    assert.equal(errs[1], errs[2])
    assert.equal(errs[1], errs[3])
    assert.equal(1, sim:node(leader):propose("count"))
    for _, id in ipairs(sim:nodes()) do
      assert.is_true(caught_up(sim, id, leader))
      assert.equal(1, sim:node(id):read("q", { consistency = "stale" }))
      assert.equal(3, sim:status(id).budget_exceeded)
    end
    sim:check()
  end)

  it("cannot be swallowed by a pcall in apply", function()
    local sim = raft.sim { nodes = 3, seed = 22, state_machine = M .. "runaway.lua",
                           apply_budget = 100000 }
    local leader = elect(sim)
    local _, err = sim:node(leader):propose("pcall_loop")
    assert.equal("apply_error", err.code)
    assert.matches("instruction budget exceeded", err.message)
    assert.equal(1, sim:node(leader):propose("count"))
  end)

  it("defaults to 100 million instructions and can be turned off", function()
    local sim = raft.sim { nodes = 1, seed = 23, state_machine = M .. "runaway.lua" }
    elect(sim)
    local _, err = sim:node(1):propose("loop", { timeout = 600 })
    assert.matches("more than 100000000 Lua instructions", err.message)
    assert.has_error(function()
      raft.sim { nodes = 1, state_machine = M .. "runaway.lua", apply_budget = 0 }
    end)
  end)
end)

describe("divergence detection", function()
  it("halts the replica whose digest differs from the majority's; the others keep serving", function()
    local marker = os.tmpname()
    os.remove(marker)
    local sim = raft.sim { nodes = 3, seed = 31, state_machine = M .. "diverge.lua",
                           digest_entries = 10 }
    local leader = elect(sim)
    for _ = 1, 12 do assert(sim:node(leader):propose("x")) end
    sim:advance(200)
    for _, id in ipairs(sim:nodes()) do
      local st = sim:status(id)
      assert.is_false(st.halted)
      assert.is_true(st.digests.matched >= 1)
    end
    -- the first replica to apply "mark" (the leader) counts differently
    assert(sim:node(leader):propose({ op = "mark", path = marker }))
    local bad = leader
    local start = sim:status(bad).applied_index
    for _ = 1, 30 do sim:propose("x", { node = sim:leader() }) sim:advance(5) end
    assert.is_true(sim:run_until(function() return sim:status(bad).halted end, 5000))
    local st = sim:status(bad)
    assert.is_table(st.diverged)
    -- caught at the first checkpoint after the mark (interval 10, plus digest entries)
    assert.is_true(st.diverged.index > start and st.diverged.index <= start + 20)
    assert.is_true(st.applied_index >= st.diverged.index)
    assert.matches("^count=%d+$", st.diverged.mine)
    assert.matches("^count=%d+$", st.diverged.majority)
    assert.is_true(st.diverged.mine ~= st.diverged.majority)
    assert.matches("diverged from the majority at index " .. st.diverged.index, st.halt_reason)
    assert.equal(1, st.digests.mismatches)
    assert.matches("HALTED: diverged from the majority", sim:trace())
    -- its reads fail clearly, a healthy majority serves (and leads)
    local _, err = sim:node(bad):read("q", { consistency = "stale" })
    assert.equal("stopped", err.code)
    assert.matches("diverged from the majority", err.message)
    assert.is_true(sim:run_until(function() return sim:leader() and sim:leader() ~= bad end, 5000))
    local good = sim:leader()
    assert(sim:node(good):propose("after"))
    for _, id in ipairs(sim:nodes()) do
      if id ~= bad then
        assert.is_false(sim:status(id).halted)
        assert.is_table(sim:node(id):read("q") and {})
      end
    end
    os.remove(marker)
    sim:check()
  end)

  it("does not let one diverged replica flag the healthy ones (majority rule)", function()
    local marker = os.tmpname()
    os.remove(marker)
    local sim = raft.sim { nodes = 5, seed = 32, state_machine = M .. "diverge.lua",
                           digest_entries = 5 }
    local leader = elect(sim)
    assert(sim:node(leader):propose({ op = "mark", path = marker }))
    for _ = 1, 40 do sim:propose("x", { node = sim:leader() }) sim:advance(10) end
    sim:advance(500)
    local halted = 0
    for _, id in ipairs(sim:nodes()) do
      if sim:status(id).halted then halted = halted + 1 end
    end
    assert.equal(1, halted)
    assert.is_true(sim:status(leader).halted)
    os.remove(marker)
  end)

  it("stays quiet when every replica agrees", function()
    local sim = raft.sim { nodes = 3, seed = 33, state_machine = M .. "diverge.lua",
                           digest_entries = 7 }
    elect(sim)
    for _ = 1, 50 do assert(sim:node(sim:leader()):propose("x")) end
    sim:advance(200)
    for _, id in ipairs(sim:nodes()) do
      local st = sim:status(id)
      assert.is_false(st.halted)
      assert.equal(0, st.digests.mismatches)
      assert.is_true(st.digests.taken >= 5)
    end
    sim:check()
  end)
end)

describe("the memory limit", function()
  it("halts a node whose state machine outgrows memory_max; the others keep going", function()
    local sim = raft.sim { nodes = 3, seed = 41, state_machine = M .. "hog.lua",
                           node_memory_max = { [3] = 4 * 1024 * 1024 } }
    elect(sim)
    for _ = 1, 12 do assert(sim:node(sim:leader()):propose({ op = "grow", kb = 512 })) end
    assert.is_true(sim:run_until(function() return sim:status(3).halted end, 5000))
    local st = sim:status(3)
    assert.matches("memory limit reached: the Lua state needs more than 4194304 bytes "
                   .. "%(memory_max%)", st.halt_reason)
    assert.is_nil(st.diverged)
    assert.matches("n3 state machine HALTED: memory limit reached", sim:trace())
    local _, err = sim:node(3):read("q", { consistency = "stale" })
    assert.equal("stopped", err.code)
    -- the others keep going
    assert.is_true(sim:run_until(function() return sim:leader() and sim:leader() ~= 3 end, 5000))
    local leader = sim:leader()
    assert.equal(13, sim:node(leader):propose("x"))
    for _, id in ipairs({ 1, 2 }) do
      assert.is_true(caught_up(sim, id, leader))
      assert.equal(13, sim:node(id):read("q", { consistency = "stale" }))
      assert.is_false(sim:status(id).halted)
    end
    assert.is_nil(sim:violation()) -- not a Raft safety violation
  end)
end)
