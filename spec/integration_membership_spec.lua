-- Real processes: a follower far behind catches up through a snapshot, and
-- a fresh node joins (--join), is promoted, and a member is removed.
local cluster = require "raft.cluster"
local procs = require "support.procs"

local KV = "examples/kv.lua"

describe("a cluster that compacts its log", function()
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(), snapshot_entries = 20 }
  end)
  teardown(function() if c then c:close() end end)

  it("brings a follower that missed compacted entries up to date with a snapshot", function()
    local l = assert(c:leader(15))
    local f = l % 3 + 1
    c:kill(f)
    -- enough entries that the leader's log (snapshot plus 100 trailing
    -- entries) no longer holds what the follower misses
    for i = 1, 400 do
      assert.equal(true, (c:node(l):propose({ op = "set", key = "s" .. i, value = i })))
    end
    local st = assert(c:node(l):status())
    assert.truthy(st.snapshot_index >= 300, "leader did not snapshot: " .. tostring(st.snapshot_index))
    c:restart(f)
    assert.truthy(c:wait_for(function()
      return c:node(f):read({ key = "s400" }, { consistency = "stale", timeout = 1 }) == 400
    end, 20), "follower did not catch up\n" .. c:log(f))
    assert.equal(1, (c:node(f):read({ key = "s1" }, { consistency = "stale" })))
    assert.truthy(c:log(f):match("restored snapshot at index %d+"), "no snapshot install in the follower's log")
  end)
end)

describe("membership changes", function()
  local c, pid4
  setup(function() c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() } end)
  teardown(function()
    procs.kill(pid4)
    if c then c:close() end
  end)

  -- A joining node is given every member's address (--join --peers with all
  -- of them): until it is added nobody accepts it, and once added it must
  -- be able to dial the leader back.
  local function start_joiner(id)
    local addr, http = "127.0.0.1:" .. procs.free_port(), "127.0.0.1:" .. procs.free_port()
    local peers = { id .. "=" .. addr }
    for _, x in ipairs(c:ids()) do peers[#peers + 1] = x .. "=" .. c:address(x) end
    pid4 = procs.spawn({ procs.binary(), "run", "--id", id, "--join", "--peers", table.concat(peers, ","),
      "--http", http, "--data", c.dir .. "/" .. id, KV }, c.dir .. "/node-" .. id .. ".log")
    return addr, http
  end

  it("adds a joining node as a learner, promotes it, and removes another member", function()
    local l = assert(c:leader(15))
    assert.equal(true, (c:node(l):propose({ op = "set", key = "m", value = "before" })))
    local addr, http = start_joiner(4)
    local ok, err = c:node(l):add_member(4, addr, { learner = true })
    assert.is_nil(err)
    assert.truthy(ok)
    local cjson = require "cjson"
    assert.truthy(c:wait_for(function()
      local status, body = procs.http(http, "POST", "/v1/read?consistency=stale", '{"key":"m"}',
        { ["Content-Type"] = "application/json" }, 1)
      return status == 200 and cjson.decode(body).result == "before"
    end, 15), "the learner did not catch up\n" .. c:log(4))
    assert.truthy((c:node(l):promote(4)))
    local members = assert(c:node(l):members()).members
    local roles = {}
    for _, m in ipairs(members) do roles[m.id] = m.role end
    assert.equal("voter", roles[4])
    local victim = l % 3 + 1
    assert.truthy((c:node(l):remove_member(victim)))
    members = assert(c:node(l):members()).members
    assert.equal(3, #members)
    assert.equal(true, (c:node(l):propose({ op = "set", key = "m", value = "after" })))
    local status, body = procs.http(http, "POST", "/v1/read", '{"key":"m"}', { ["Content-Type"] = "application/json" })
    assert.equal(200, status)
    assert.equal("after", cjson.decode(body).result)
  end)

  it("transfers leadership on request", function()
    local l = assert(c:leader(15))
    local members = assert(c:node(l):members()).members
    local target
    for _, m in ipairs(members) do if m.id ~= l then target = m.id break end end
    assert.truthy((c:node(l):transfer_leadership(target)))
    assert.truthy(c:wait_for(function()
      local st = c:node(target):status(1)
      return st and st.role == "leader"
    end, 10))
  end)
end)
