-- A 3-node cluster of real `luaraft run` processes on loopback (the KV
-- example): replication, writes through a follower, failover after SIGKILL,
-- catch-up after a restart, and durability of every acknowledged write when
-- every node is killed at once.
local cluster = require "raft.cluster"
local procs = require "support.procs"

local KV = "examples/kv.lua"

local function new_cluster(opts)
  opts = opts or {}
  opts.state_machine = opts.state_machine or KV
  opts.binary = procs.binary()
  opts.election_ms = opts.election_ms or 300
  opts.heartbeat_ms = opts.heartbeat_ms or 50
  return cluster.new(opts)
end

local function others(c, id)
  local list = {}
  for _, x in ipairs(c:ids()) do if x ~= id then list[#list + 1] = x end end
  return list
end

describe("a 3-node cluster of luaraft run processes", function()
  local c
  setup(function() c = new_cluster() end)
  teardown(function() if c then c:close() end end)

  local first_leader

  it("elects one leader that every node agrees on", function()
    first_leader = assert(c:leader(15))
    assert.truthy(c:wait_for(function()
      for _, id in ipairs(c:ids()) do
        local st = c:node(id):status(1)
        if not st or st.leader ~= first_leader then return false end
      end
      return true
    end, 10))
  end)

  it("takes a write through a follower and returns the result of its apply", function()
    local f = others(c, first_leader)[1]
    local result, err = c:node(f):propose({ op = "set", key = "a", value = "1" })
    assert.is_nil(err)
    assert.equal(true, result)
    assert.equal(6, c:node(f):propose({ op = "incr", key = "n", by = 6 }))
  end)

  it("serves linearizable reads of that write from every node", function()
    for _, id in ipairs(c:ids()) do
      assert.equal("1", (c:node(id):read({ key = "a" })))
    end
  end)

  it("answers an apply error with 422 apply_error and keeps going", function()
    local _, err = c:node(first_leader):propose({ op = "nope", key = "x" })
    assert.equal("apply_error", err.code)
    assert.equal(true, (c:node(first_leader):propose({ op = "set", key = "b", value = "2" })))
  end)

  it("elects a new leader that takes writes after SIGKILL of the leader", function()
    c:kill(first_leader)
    local l2 = assert(c:leader(15))
    assert.not_equal(first_leader, l2)
    assert.equal(7, c:node(l2):propose({ op = "incr", key = "n" }))
  end)

  it("catches up the killed node after a restart", function()
    c:restart(first_leader)
    assert.truthy(c:wait_for(function()
      local v = c:node(first_leader):read({ key = "n" }, { consistency = "stale", timeout = 1 })
      return v == 7
    end, 15))
    assert.equal("1", (c:node(first_leader):read({ key = "a" })))
  end)

  it("applies exactly once a retried proposal with the same client and seq", function()
    local l = assert(c:leader(10))
    local r1 = c:node(l):propose({ op = "incr", key = "once" }, { client = "spec", seq = 1 })
    local r2 = c:node(l):propose({ op = "incr", key = "once" }, { client = "spec", seq = 1 })
    assert.equal(1, r1)
    assert.equal(1, r2)
    assert.equal(1, (c:node(l):read({ key = "once" })))
  end)
end)

describe("a cluster where every node is SIGKILLed at once", function()
  local c
  setup(function() c = new_cluster() end)
  teardown(function() if c then c:close() end end)

  it("still holds every acknowledged write after a restart of all nodes", function()
    assert(c:leader(15))
    local acked = {}
    local ids = c:ids()
    for i = 1, 60 do
      local via = ids[i % #ids + 1] -- leader and followers alike
      local ok = c:node(via):propose({ op = "set", key = "k" .. i, value = i }, { timeout = 5 })
      if ok then acked[#acked + 1] = i end
    end
    assert.truthy(#acked >= 50, "too few acknowledged writes: " .. #acked)
    for _, id in ipairs(ids) do c:kill(id) end
    for _, id in ipairs(ids) do c:restart(id) end
    local l = assert(c:leader(15))
    for _, i in ipairs(acked) do
      assert.equal(i, (c:node(l):read({ key = "k" .. i })))
    end
    -- and every replica converges on the same state
    for _, id in ipairs(ids) do
      assert.truthy(c:wait_for(function()
        return c:node(id):read({ key = "k" .. acked[#acked] }, { consistency = "stale", timeout = 1 }) == acked[#acked]
      end, 10), "node " .. id .. " did not catch up")
    end
  end)
end)
