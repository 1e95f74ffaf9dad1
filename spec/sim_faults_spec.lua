-- Network faults and crashes in the simulator (thesis chapter 3, 6.2, 9.6).
local raft = require "raft"
local sim_util = require "support.sim_util"
local new = sim_util.new
local elect = sim_util.elect
local others = sim_util.others

describe("raft.sim faults", function()
  it("replaces an isolated leader with a new one in a higher term", function()
    local sim = new(11)
    local old = elect(sim)
    local old_term = sim:node(old):status().term
    sim:isolate(old)
    local rest = others(sim, old)
    assert.is_true(sim:run_until(function()
      local st = sim:node(rest[1]):status()
      local l = st.leader
      return l ~= nil and l ~= old and sim:node(l):status().role == "leader"
    end, 10000))
    local new_leader = sim:node(rest[1]):status().leader
    assert.is_true(sim:node(new_leader):status().term > old_term)
    assert.is_true(sim:node(new_leader):propose({ op = "set", key = "a", value = 1 }))
    sim:heal()
    sim:advance(2000)
    assert.equal(1, sim:node(old):read({ key = "a" }))
    sim:check()
  end)

  it("cannot commit in a minority partition", function()
    local sim = new(12)
    local leader = elect(sim)
    local rest = others(sim, leader)
    sim:partition({ leader }, rest)
    local t = sim:propose({ op = "set", key = "x", value = "minority" }, { node = leader, timeout = 2000 })
    sim:advance(2500)
    assert.is_true(t.done)
    assert.is_not_nil(t.err)
    local new_leader = elect(sim, leader)
    assert.is_nil(sim:node(new_leader):read({ key = "x" }))
    sim:heal()
    sim:advance(2000)
    assert.is_nil(sim:node(leader):read({ key = "x" }))
    sim:check()
  end)

  it("keeps a rejoining node from deposing the leader with pre-vote", function()
    local sim = new(13, { pre_vote = true, check_quorum = true })
    local leader = elect(sim)
    local term = sim:node(leader):status().term
    local lonely = others(sim, leader)[1]
    sim:isolate(lonely)
    sim:advance(5000) -- many election timeouts go by on the isolated node
    assert.equal(term, sim:node(lonely):status().term) -- pre-votes never won
    sim:heal()
    sim:advance(2000)
    assert.equal(leader, sim:leader())
    assert.equal(term, sim:node(leader):status().term)
    sim:check()
  end)

  it("makes a leader that lost its quorum step down (check quorum)", function()
    local sim = new(14, { check_quorum = true })
    local leader = elect(sim)
    sim:isolate(leader)
    assert.is_true(sim:run_until(function()
      return sim:node(leader):status().role ~= "leader"
    end, 3000))
    sim:check()
  end)

  it("survives drops, duplicates and reordering", function()
    local sim = new(15)
    elect(sim)
    sim:net { drop = 0.2, duplicate = 0.2, delay = { 1, 40 }, reorder = true }
    local tickets = {}
    for i = 1, 50 do
      tickets[i] = sim:propose({ op = "incr", key = "n" }, { timeout = 20000 })
      sim:advance(20)
    end
    sim:net { drop = 0, duplicate = 0, delay = { 1, 5 }, reorder = false }
    for _, t in ipairs(tickets) do sim:wait(t, 25000) end
    sim:advance(2000)
    local n = sim:node(sim:leader()):read({ key = "n" })
    local ok = 0
    for _, t in ipairs(tickets) do if t.err == nil then ok = ok + 1 end end
    assert.is_true(n >= ok)
    sim:check()
    assert.is_true(raft.check.linearizable(sim:history(), "kv"))
  end)

  it("keeps committed state across a restart of every node", function()
    local sim = new(16)
    local leader = elect(sim)
    for i = 1, 30 do
      assert.equal(i, sim:node(leader):propose({ op = "incr", key = "c" }))
    end
    for _, id in ipairs(sim:nodes()) do sim:crash(id) end
    sim:advance(100)
    for _, id in ipairs(sim:nodes()) do sim:restart(id) end
    leader = elect(sim)
    assert.equal(30, sim:node(leader):read({ key = "c" }))
    assert.equal(31, sim:node(leader):propose({ op = "incr", key = "c" }))
    sim:check()
  end)
end)
