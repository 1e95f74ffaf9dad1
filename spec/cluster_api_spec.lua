-- raft.cluster itself (API.md section 7): real `luaraft run` processes on
-- free loopback ports, scripted like raft.sim; close() leaves nothing behind.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local uv = require "luv"

local function alive(pid) return pid and uv.kill(pid, 0) == 0 end
local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

describe("raft.cluster", function()
  it("runs nodes, talks to them over HTTP, records a history and cleans up on close", function()
    local c = cluster.new { nodes = 3, state_machine = "examples/kv.lua", binary = procs.binary() }
    local dir, pids = c.dir, {}
    local ok, err = pcall(function()
      assert.same({ 1, 2, 3 }, c:ids())
      for _, id in ipairs(c:ids()) do
        pids[id] = c:pid(id)
        assert.truthy(alive(pids[id]))
        assert.truthy(c:address(id):match("^127%.0%.0%.1:%d+$"))
        assert.truthy(c:http_address(id):match("^127%.0%.0%.1:%d+$"))
      end
      local l = assert(c:leader(15))
      local f = l % 3 + 1
      assert.equal(true, (c:node(f):propose { op = "set", key = "a", value = "1" })) -- forwarded
      assert.equal(2, (c:node(l):propose { op = "incr", key = "n", by = 2 }))
      assert.equal("1", (c:node(f):read { key = "a" }))
      local _, e = c:node(l):propose { op = "incr", key = "a" }
      assert.equal("apply_error", e.code)
      assert.equal("leader", assert(c:node(l):status()).role)
      assert.equal(3, #assert(c:node(l):members()).members)
      assert.truthy(assert(c:node(l):metrics()):match("luaraft_term"))
      assert.truthy((c:node(l):snapshot()))
      assert.truthy(c:wait_for(function() return c:log(l):match("snapshot taken at index") end, 5))
      local h = c:history()
      assert.equal(4, #h)
      assert.equal("propose", h[1].kind)
      assert.equal("read", h[3].kind)
      assert.truthy(h[1].invoke_ms <= h[1].complete_ms)
      assert.truthy(raft.check.linearizable(h, "kv"))

      -- pause / resume, kill / restart (no --peers: the stored configuration)
      c:pause(l)
      local l2 = assert(c:leader(15))
      assert.are_not.equal(l, l2)
      c:resume(l)
      c:kill(l2)
      assert.is_false(alive(pids[l2]))
      c:restart(l2)
      assert.truthy(c:wait_for(function()
        return c:node(l2):read({ key = "a" }, { consistency = "stale", timeout = 1 }) == "1"
      end, 15))

      -- a partition isolates a node, heal reconnects it
      local l3 = assert(c:leader(15))
      local others = {}
      for _, id in ipairs(c:ids()) do if id ~= l3 then others[#others + 1] = id end end
      c:partition({ l3 }, others)
      local _, perr = c:node(l3):propose({ op = "set", key = "b", value = "x" }, { timeout = 1 })
      assert.truthy(perr)
      c:heal()
      assert.truthy(c:wait_for(function()
        return c:node(l3):read({ key = "a" }, { timeout = 1 }) == "1"
      end, 15))
    end)
    c:close()
    assert(ok, err)
    for _, pid in pairs(pids) do assert.is_false(alive(pid)) end
    assert.is_false(exists(dir), "close() left " .. dir)
  end)

  it("closes through __close", function()
    local dir
    do
      local c <close> = cluster.new { nodes = 1, state_machine = "examples/kv.lua", binary = procs.binary() }
      dir = c.dir
      assert.truthy(c:leader(15))
    end
    assert.is_false(exists(dir))
  end)
end)
