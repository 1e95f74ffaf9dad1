-- Issue 10 on real nodes: requests made with no leader known wait for one,
-- and writes sent to every live node keep succeeding while the leader is
-- SIGKILLed or SIGSTOPped (src/drive: forwarded proposals go to each new
-- leader; lua/raft/cluster.lua drives the processes).
local raft = require "raft"
local loop = require "raft.loop"
local cluster = require "raft.cluster"
local procs = require "support.procs"

local KV = "examples/kv.lua"

describe("failover on real nodes (issue 10)", function()
  it("propose and barrier on a fresh single node wait for the first election", function()
    local node = raft.node {
      id = 1, peers = { [1] = "127.0.0.1:" .. procs.free_port() }, state_machine = KV,
      storage = "memory", election_ms = 200, heartbeat_ms = 40, log_level = "warn",
    }
    assert(node:start())
    -- at once: no election has happened yet
    local ok, err = node:propose({ op = "set", key = "a", value = 1 }, { timeout = 5 })
    assert.is_nil(err)
    assert.is_true(ok)
    assert.is_true((node:barrier(5)))
    node:stop()
    for _ = 1, 5 do loop.run_once() end
  end)

  local ELECTION = 300
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(),
                      election_ms = ELECTION, heartbeat_ms = 50 }
  end)
  teardown(function() if c then c:close() end end)

  -- Writes to every live node in turn, across `faults` faults of the
  -- leader; returns the writes { node, key, ok, err }.
  local function writes_across(prefix, faults, fault, undo)
    local out, n = {}, 0
    local function round()
      for _, id in ipairs(c:ids()) do
        local p = c.procs[id]
        if p and not p.exited and not p.paused then
          n = n + 1
          local key = prefix .. n
          local r, e = c:node(id):propose({ op = "incr", key = key, by = 1 }, { timeout = 10 })
          out[#out + 1] = { node = id, key = key, ok = r ~= nil, err = e }
        end
      end
    end
    for _ = 1, faults do
      local l = assert(c:leader(15))
      for _ = 1, 3 do round() end
      fault(l)
      for _ = 1, 6 do round() end
      undo(l)
      assert(c:leader(15))
    end
    return out
  end

  local function check(out)
    local l = assert(c:leader(15))
    for _, w in ipairs(out) do
      -- a request to a live node never waits out its timeout: another node
      -- leads within a few election timeouts (a refused connection is a
      -- node restarting: the request never reached it)
      local refused = w.err and tostring(w.err.message):find("ECONNREFUSED", 1, true)
      assert(refused or not (w.err and w.err.code == "timeout"),
        ("write %s on node %d: %s"):format(w.key, w.node, tostring(w.err)))
      local v = c:node(l):read({ key = w.key }, { timeout = 10 }) or 0
      assert(v <= 1, "applied twice: " .. w.key)
      if w.ok then assert(v == 1, "acknowledged, not applied: " .. w.key) end
    end
    local lin, cex = raft.check.linearizable(c:history(), "kv")
    assert(lin, cex and cex.message)
  end

  it("writes to every node across SIGKILLs of the leader: none times out, each applies once", function()
    check(writes_across("k", 3, function(l) c:kill(l) end, function(l) c:restart(l) end))
  end)

  it("writes to every node across SIGSTOPs of the leader: none times out, each applies once", function()
    check(writes_across("s", 3, function(l) c:pause(l) end, function(l) c:resume(l) end))
  end)
end)
