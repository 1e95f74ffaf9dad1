-- Leadership transfer and membership changes in the simulator (thesis 3.10, 4).
local sim_util = require "support.sim_util"
local new = sim_util.new
local elect = sim_util.elect

local function member(st, id)
  for _, m in ipairs(st.members) do if m.id == id then return m end end
end

describe("raft.sim membership", function()
  it("transfers leadership to a chosen follower", function()
    local sim = new(21)
    local leader = elect(sim)
    local target = leader % 3 + 1
    assert.is_true(sim:node(leader):transfer_leadership(target, 3))
    assert.equal(target, sim:leader())
    assert.is_true(sim:node(target):propose({ op = "set", key = "a", value = 1 }))
    sim:check()
  end)

  it("lets a learner catch up, then promotes it to a voter", function()
    local sim = new(22)
    local leader = elect(sim)
    for _ = 1, 20 do sim:node(leader):propose({ op = "incr", key = "n" }) end
    sim:add_node(4)
    assert.is_true(sim:node(leader):add_member(4, "sim:4", { learner = true }))
    assert.is_true(sim:run_until(function()
      return sim:node(4):status().applied_index >= sim:node(leader):status().commit_index
    end, 5000))
    assert.equal("learner", member(sim:node(leader):status(), 4).role)
    assert.equal(20, sim:node(4):read({ key = "n" }, { consistency = "stale" }))
    assert.is_true(sim:node(leader):promote(4))
    assert.equal("voter", member(sim:node(leader):status(), 4).role)
    assert.equal(21, sim:node(leader):propose({ op = "incr", key = "n" }))
    sim:check()
  end)

  it("removes the leader, which hands over to the rest", function()
    local sim = new(23)
    local leader = elect(sim)
    assert.is_true(sim:node(leader):barrier()) -- an entry of its term is committed
    local ok, err = sim:node(leader):remove_member(leader)
    assert.is_true(ok, tostring(err))
    local new_leader = elect(sim, leader)
    assert.is_nil(member(sim:node(new_leader):status(), leader))
    assert.is_true(sim:node(new_leader):propose({ op = "set", key = "after", value = true }))
    sim:check()
  end)

  -- etcd isLearnerReady: the core refuses, and the error says why.
  it("refuses to promote a learner it never heard from", function()
    local sim = new(24)
    local leader = elect(sim)
    assert.is_true(sim:node(leader):barrier())
    sim:add_node(4)
    sim:isolate(4)
    assert.is_true(sim:node(leader):add_member(4, "sim:4", { learner = true }))
    sim:advance(1000)
    local ok, err = sim:node(leader):promote(4)
    assert.is_nil(ok)
    assert.equal("busy", err.code)
    assert.matches("not caught up", err.message)
    assert.equal("learner", member(sim:node(leader):status(), 4).role)
    sim:check()
  end)

  -- etcd IsReadyToAddVotingMember: 2 reachable voters of 4 is no quorum.
  it("refuses to add a voter that is not running while a voter is down", function()
    local sim = new(25)
    local leader = elect(sim)
    assert.is_true(sim:node(leader):barrier())
    sim:crash(leader % 3 + 1)
    sim:advance(1000)
    assert.equal(leader, sim:leader())
    local ok, err = sim:node(leader):add_member(4, "sim:4")
    assert.is_nil(ok)
    assert.equal("bad_request", err.code)
    assert.matches("fewer reachable voters than a quorum", err.message)
    assert.is_nil(member(sim:node(leader):status(), 4))
    sim:check()
  end)
end)
