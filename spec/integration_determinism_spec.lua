-- Deterministic state machines on real processes (issue: the apply sandbox,
-- budgets and divergence detection): three `luaraft run` processes, each
-- with its own Lua hash seed, agree on `pairs` order; a runaway apply is
-- stopped by the instruction budget the same way on every node; a replica
-- that diverges is caught by digest() and stops serving.
local cluster = require "raft.cluster"
local procs = require "support.procs"

local M = "spec/support/det_machines/"

local function read_all(c, q, opts)
  local out = {}
  for _, id in ipairs(c:ids()) do
    local v, err = c:node(id):read(q, opts or { consistency = "stale" })
    out[id] = v == nil and tostring(err) or v
  end
  return out
end

-- waits until every node has applied at least `index`
local function caught_up(c, index)
  return c:wait_for(function()
    for _, id in ipairs(c:ids()) do
      local st = c:node(id):status(1)
      if not st or (st.applied_index or 0) < index then return false end
    end
    return true
  end, 15)
end

describe("deterministic state machines on real processes", function()
  it("agree on the first key pairs gives across three processes", function()
    local c = cluster.new { nodes = 3, state_machine = M .. "first_key.lua", binary = procs.binary() }
    local ok, err = pcall(function()
      local l = assert(c:leader(15))
      local first = assert(c:node(l):propose(500))
      assert.equal("key1", first) -- the canonical order: strings bytewise
      local st = assert(c:node(l):status())
      assert.truthy(caught_up(c, st.commit_index))
      assert.same({ "key1", "key1", "key1" }, read_all(c, {}))
    end)
    c:close()
    assert(ok, err)
  end)

  it("stops a runaway apply with the same budget error on every node and keeps serving", function()
    local c = cluster.new { nodes = 3, state_machine = M .. "runaway.lua", binary = procs.binary(),
                            args = { "--apply-budget", "2000000" } }
    local ok, err = pcall(function()
      local l = assert(c:leader(15))
      local r, perr = c:node(l):propose("loop", { timeout = 10 })
      assert.is_nil(r)
      assert.equal("apply_error", perr.code)
      assert.matches("budget exceeded", perr.message)
      assert.equal(1, c:node(l):propose("count"))
      local st = assert(c:node(l):status())
      assert.truthy(caught_up(c, st.commit_index))
      assert.same({ 1, 1, 1 }, read_all(c, {}))
    end)
    c:close()
    assert(ok, err)
  end)

  it("catches a diverged replica with digest() and stops it serving", function()
    local marker = os.tmpname()
    os.remove(marker)
    local c = cluster.new { nodes = 3, state_machine = M .. "diverge.lua", binary = procs.binary(),
                            args = { "--digest-entries", "5" } }
    local ok, err = pcall(function()
      local l = assert(c:leader(15))
      -- the first replica to apply "mark" counts 1000 more than the others;
      -- keep writing (through whoever leads: a diverged leader halts and
      -- hands over) until a digest checkpoint exposes it
      assert(c:node(l):propose { op = "mark", path = marker })
      local diverged = c:wait_for(function()
        local leader = c:leader(5)
        if leader then c:node(leader):propose({ op = "tick" }, { timeout = 1 }) end
        for _, id in ipairs(c:ids()) do
          local st = c:node(id):status(1)
          if st and st.diverged then return id end
        end
      end, 20)
      assert.truthy(diverged, "no replica reported divergence")
      local _, rerr = c:node(diverged):read({}, { consistency = "stale" })
      assert.equal("stopped", rerr and rerr.code)
      -- the majority keeps serving
      local healthy
      for _, id in ipairs(c:ids()) do if id ~= diverged then healthy = id end end
      local new_leader = assert(c:leader(15))
      assert.truthy(c:node(new_leader):propose { op = "tick" })
      assert.is_number(c:node(healthy):read({}, { consistency = "stale" }))
      assert.matches("diverged", c:log(diverged))
    end)
    c:close()
    os.remove(marker)
    assert(ok, err)
  end)
end)
