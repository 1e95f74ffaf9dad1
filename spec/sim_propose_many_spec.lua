-- sim:propose_many(cmd, n, opts): n proposals of one command at one virtual
-- instant, each its own entry, apply and ticket, as n sim:propose calls.
local raft = require "raft"

describe("raft.sim propose_many", function()
  it("applies every copy once, in order, each with its own ticket", function()
    local sim = raft.sim { nodes = 3, seed = 11, state_machine = "examples/kv.lua" }
    assert.is_true(sim:run_until(function() return sim:leader() ~= nil end, 5000))
    local tickets = sim:propose_many({ op = "incr", key = "n", by = 1 }, 50, { node = sim:leader() })
    assert.equal(50, #tickets)
    assert.is_true(sim:run_until(function() return tickets[50].done end, 5000))
    for i, t in ipairs(tickets) do
      assert.is_nil(t.err)
      assert.equal(i, t.result) -- incr returns the new value: applied in order, once each
      if i > 1 then assert.equal(tickets[i - 1].index + 1, t.index) end
    end
    assert.equal(50, sim:wait(sim:read({ key = "n" })))
    sim:check()
    assert.is_true(raft.check.linearizable(sim:history(), "kv"))
  end)

  it("numbers a client's proposals seq, seq+1, ... and answers a replay from the session", function()
    local sim = raft.sim { nodes = 3, seed = 12, state_machine = "examples/kv.lua" }
    assert.is_true(sim:run_until(function() return sim:leader() ~= nil end, 5000))
    local tickets = sim:propose_many({ op = "incr", key = "c", by = 1 }, 5,
      { node = sim:leader(), client = "cli", seq = 10 })
    assert.is_true(sim:run_until(function() return tickets[5].done end, 5000))
    assert.equal(14, tickets[5].seq)
    assert.equal(5, tickets[5].result)
    -- the same client and last seq again: the saved result, not a sixth incr
    local again = sim:propose({ op = "incr", key = "c", by = 1 }, { node = sim:leader(), client = "cli", seq = 14 })
    assert.equal(5, sim:wait(again))
    assert.equal(5, sim:wait(sim:read({ key = "c" })))
  end)

  it("does nothing for n = 0", function()
    local sim = raft.sim { nodes = 1, seed = 13, state_machine = "examples/kv.lua" }
    assert.is_true(sim:run_until(function() return sim:leader() ~= nil end, 5000))
    assert.same({}, sim:propose_many({ op = "set", key = "k", value = 1 }, 0))
  end)
end)
