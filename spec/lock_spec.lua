-- examples/lock.lua in the simulator: leases expire by the leader's clock
-- (meta.time, carried in the entry), a holder that renews keeps its lock,
-- and the expiry survives a leader crash because it is replicated state.
local raft = require "raft"

local LOCK = "examples/lock.lua"

local function new_sim(seed)
  local sim = raft.sim { nodes = 3, seed = seed, state_machine = LOCK }
  assert(sim:run_until(function() return sim:leader() ~= nil end, 10000), "no leader")
  return sim
end

-- proposes on the leader and waits; -> result, ticket
local function call(sim, cmd)
  local t = sim:propose(cmd, { node = sim:leader() })
  local result, err = sim:wait(t, 10000)
  assert(result ~= nil, tostring(err))
  return result, t
end

local function acquire(sim, owner, ttl)
  return call(sim, { op = "acquire", name = "db", owner = owner, ttl_ms = ttl })
end

describe("examples/lock.lua", function()
  it("refuses a held lock to others until the lease expires by the leader's clock", function()
    local sim <close> = new_sim(3)
    local a, t = acquire(sim, "A", 1000)
    assert.is_true(a.ok)
    -- the lease runs from meta.time: the leader's clock when it proposed
    assert.equal(t.invoke_ms + 1000, a.expires)
    local b = acquire(sim, "B", 1000)
    assert.same({ ok = false, owner = "A", expires = a.expires }, b)
    sim:advance(a.expires - sim:now() - 20) -- 20 ms before the expiry
    b = acquire(sim, "B", 1000)
    assert.is_false(b.ok)
    assert.truthy(sim:now() < a.expires)
    sim:advance(a.expires - sim:now() + 1) -- just after it
    b = acquire(sim, "B", 1000)
    assert.is_true(b.ok)
    assert.equal("B", b.owner)
    assert.truthy(b.token > a.token, "a new grant gets a larger fencing token")
    sim:check()
  end)

  it("keeps the lock for a holder that renews, over many lease periods", function()
    local sim <close> = new_sim(5)
    local first = acquire(sim, "A", 500)
    assert.is_true(first.ok)
    local start = sim:now()
    while sim:now() < start + 5000 do -- ten lease periods
      sim:advance(300)
      local renewed = acquire(sim, "A", 500)
      assert.is_true(renewed.ok)
      assert.equal(first.token, renewed.token)
      local other = acquire(sim, "B", 500)
      assert.is_false(other.ok)
      assert.equal("A", other.owner)
    end
    -- the holder stops renewing: the lease runs out
    sim:advance(600)
    local b = acquire(sim, "B", 500)
    assert.is_true(b.ok)
    assert.equal(first.token + 1, b.token)
    sim:check()
  end)

  it("keeps the lease across a leader crash, judged on the replicated expiry", function()
    local sim <close> = new_sim(7)
    local old = sim:leader()
    local a = acquire(sim, "A", 5000)
    assert.is_true(a.ok)
    sim:crash(old)
    assert(sim:run_until(function() local l = sim:leader() return l ~= nil and l ~= old end, 10000))
    assert.truthy(sim:now() < a.expires - 100, "the new leader came too late for this test")
    local b = acquire(sim, "B", 5000)
    assert.same({ ok = false, owner = "A", expires = a.expires }, b)
    sim:advance(a.expires - sim:now() + 1)
    b = acquire(sim, "B", 5000)
    assert.is_true(b.ok)
    assert.truthy(b.token > a.token)
    sim:restart(old)
    -- every replica agrees who holds it, the restarted one included
    for _, id in ipairs(sim:nodes()) do
      local t = sim:read({ name = "db" }, { node = id, consistency = "linearizable" })
      local held = assert(sim:wait(t, 10000))
      assert.equal("B", held.owner)
      assert.equal(b.expires, held.expires)
    end
    sim:check()
  end)

  it("releases only for the holder", function()
    local sim <close> = new_sim(9)
    assert.is_true(acquire(sim, "A", 60000).ok)
    assert.is_false(call(sim, { op = "release", name = "db", owner = "B" }))
    assert.is_true(call(sim, { op = "release", name = "db", owner = "A" }))
    assert.is_true(acquire(sim, "B", 60000).ok)
  end)

  it("refuses malformed commands with apply_error", function()
    local sim <close> = new_sim(11)
    local t = sim:propose({ op = "acquire", name = "db", owner = "A" }, { node = sim:leader() })
    local r, err = sim:wait(t, 10000)
    assert.is_nil(r)
    assert.equal("apply_error", err.code)
    assert.matches("ttl_ms", err.message)
  end)
end)
