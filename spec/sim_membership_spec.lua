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

  -- The operator's override: the same refusal, then force = true.
  it("adds that voter with force = true, and refuses a bad force value", function()
    local sim = new(26)
    local leader = elect(sim)
    assert.is_true(sim:node(leader):barrier())
    sim:crash(leader % 3 + 1)
    sim:advance(1000)
    sim:add_node(4)
    local ok, err = sim:node(leader):add_member(4, "sim:4", { timeout = 3 })
    assert.is_nil(ok)
    assert.equal("bad_request", err.code)
    -- the core's sentence says which voters are unreachable
    assert.matches("fewer reachable voters than a quorum %(force to override%): after this change 2 of 4", err.message)
    assert.is_nil(member(sim:node(leader):status(), 4))
    ok, err = sim:node(leader):add_member(4, "sim:4", { timeout = 3, force = true })
    assert.is_true(ok, tostring(err))
    assert.equal("voter", member(sim:node(leader):status(), 4).role)
    assert.equal(1, sim:node(leader):propose({ op = "incr", key = "after" }))
    sim:check()
  end)

  it("removes a live voter while another is down only with force = true", function()
    local sim = new(27)
    local leader = elect(sim)
    assert.is_true(sim:node(leader):barrier())
    local down, other = leader % 3 + 1, (leader + 1) % 3 + 1
    sim:crash(down)
    sim:advance(1000)
    local ok, err = sim:node(leader):remove_member(other, { timeout = 3 })
    assert.is_nil(ok)
    assert.equal("bad_request", err.code)
    assert.matches("fewer reachable voters than a quorum", err.message)
    assert.equal("voter", member(sim:node(leader):status(), other).role)
    -- forced, it is written (in effect at once); it cannot commit before the
    -- down voter is back (the new configuration is the leader and that
    -- voter), so the call times out: outcome unknown, not refused
    ok, err = sim:node(leader):remove_member(other, { timeout = 1, force = true })
    assert.is_nil(ok)
    assert.equal("timeout", err.code)
    assert.is_nil(member(sim:node(leader):status(), other))
    sim:restart(down)
    assert.is_true(sim:run_until(function()
      local l = sim:leader()
      return l ~= nil and l ~= other and member(sim:node(l):status(), other) == nil
    end, 20000))
    -- a write commits under the two-voter configuration, after the removal
    local l = sim:leader()
    assert.equal(1, sim:node(l):propose({ op = "incr", key = "after" }, { timeout = 5 }))
    sim:check()
  end)
end)
