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
    -- one turn of the loop first: after a long spell without one (the specs
    -- before this one in the same process) the node's first election was
    -- seen not to happen in time (report: issue 10 failover helper)
    loop.run_once()
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
  local cut = {} -- nodes partitioned away: nothing can answer through them meanwhile
  local function writes_across(prefix, faults, fault, undo)
    local out, n = {}, 0
    local function round()
      for _, id in ipairs(c:ids()) do
        local p = c.procs[id]
        if p and not p.exited and not p.paused and not cut[id] then
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

  it("writes to every node across partitions of the leader: none times out, each applies once", function()
    check(writes_across("p", 3, function(l)
      local rest = {}
      for _, id in ipairs(c:ids()) do if id ~= l then rest[#rest + 1] = id end end
      cut[l] = true
      c:partition({ l }, rest)
    end, function(l)
      c:heal()
      cut[l] = nil
    end))
  end)
end)

describe("reaching the leader over HTTP from any node (issue 10)", function()
  local cjson = require "cjson"
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(),
                      election_ms = 300, heartbeat_ms = 50 }
  end)
  teardown(function() if c then c:close() end end)

  local function follower_knowing(l)
    for _, id in ipairs(c:ids()) do
      if id ~= l then
        local st = c:node(id):status()
        if st and st.leader == l then return id end
      end
    end
  end

  it("/v1/status gives the pid and the leader's id and HTTP address", function()
    local l = assert(c:leader(15))
    local f = assert(c:wait_for(function() return follower_knowing(l) end, 10))
    local st = assert(c:node(f):status())
    assert.equal(c:pid(f), st.pid)
    assert.equal(l, st.leader)
    assert.equal(c:http_address(l), st.leader_http)
  end)

  it("not_leader errors carry the leader's HTTP address", function()
    local l = assert(c:leader(15))
    local f = assert(c:wait_for(function() return follower_knowing(l) end, 10))
    local status, body = procs.http(c:http_address(f), "POST", "/v1/read?consistency=lease",
      '{"key":"p"}', { ["Content-Type"] = "application/json" })
    assert.equal(421, status, body)
    local e = cjson.decode(body)
    assert.equal(l, e.leader)
    assert.equal(c:http_address(l), e.http)
  end)

  it("redirects membership calls on a follower to the leader (307, Location)", function()
    local l = assert(c:leader(15))
    local f = assert(c:wait_for(function() return follower_knowing(l) end, 10))
    local status, body, raw = procs.http(c:http_address(f), "POST", "/v1/members",
      '{"id":9,"address":"127.0.0.1:9","learner":true}', { ["Content-Type"] = "application/json" })
    assert.equal(307, status, body)
    local e = cjson.decode(body)
    assert.equal(l, e.leader)
    assert.equal(c:http_address(l), e.http)
    assert.truthy(raw:find("\r\nLocation: http://" .. c:http_address(l) .. "/v1/members\r\n", 1, true), raw)
    -- raft.cluster follows it: the change is made by the leader
    assert(c:node(f):add_member(9, "127.0.0.1:9", { learner = true }))
    assert(c:wait_for(function()
      local m = c:node(l):members()
      for _, x in ipairs(m and m.members or {}) do if x.id == 9 then return true end end
    end, 10))
    assert(c:node(f):remove_member(9))
  end)
end)
