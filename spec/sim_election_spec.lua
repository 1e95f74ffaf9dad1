-- Leader election in the simulator, and the simulator's determinism.
local sim_util = require "support.sim_util"
local new = sim_util.new
local elect = sim_util.elect

describe("raft.sim election", function()
  it("elects exactly one leader that every node follows", function()
    local sim = new(1)
    local leader = elect(sim)
    sim:advance(500)
    local leaders = 0
    for _, id in ipairs(sim:nodes()) do
      local st = sim:node(id):status()
      if st.role == "leader" then leaders = leaders + 1 end
      assert.equal(leader, st.leader)
    end
    assert.equal(1, leaders)
    sim:check()
  end)

  it("commits a proposal and serves it to a linearizable read on a follower", function()
    local sim = new(2)
    local leader = elect(sim)
    assert.is_true(sim:node(leader):propose({ op = "set", key = "k", value = "v" }))
    local follower = leader % 3 + 1
    assert.equal("v", sim:node(follower):read({ key = "k" }))
    sim:check()
  end)

  it("gives identical traces for equal seeds", function()
    local function run(seed)
      local sim = new(seed)
      elect(sim)
      for _ = 1, 20 do sim:propose({ op = "incr", key = "n" }) end
      sim:net { drop = 0.1, duplicate = 0.1, delay = { 1, 30 }, reorder = true }
      for _ = 1, 20 do sim:propose({ op = "incr", key = "n" }) end
      sim:advance(3000)
      sim:crash(sim:leader() or 1)
      sim:advance(3000)
      return sim:trace()
    end
    local a, b = run(42), run(42)
    assert.equal(a, b)
    assert.not_equal(a, run(43))
  end)

  it("elects a new leader after the leader crashes", function()
    local sim = new(3)
    local old = elect(sim)
    sim:crash(old)
    assert.is_true(sim:run_until(function()
      local l = sim:leader()
      return l ~= nil and l ~= old
    end, 10000))
    sim:check()
  end)
end)
