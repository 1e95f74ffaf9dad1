-- Real processes (issue 10): membership calls that say what happened.
-- Addresses are checked in one place (host, port 1-65535) by raft.node,
-- the HTTP API and `luaraft ctl`; `force` overrides the reachable-quorum
-- refusal; removing the leader reports success, asked of the leader or of a
-- follower, and the removed leader learns that it was removed.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local cjson = require "cjson"

local KV = "examples/kv.lua"
local BAD = { "127.0.0.1:99999", "127.0.0.1:0", ":80", "host:", "127.0.0.1" }

local function ctl(http, args)
  return procs.run(("%s ctl --http %s %s"):format(procs.binary(), http, args), 40)
end

local function role_of(members, id)
  for _, m in ipairs(members) do if m.id == id then return m.role end end
end

describe("membership addresses", function()
  it("raft.node refuses a bad peer or member address with an error naming it", function()
    local raft = require "raft"
    for _, a in ipairs(BAD) do
      local ok, err = pcall(raft.node, { id = 1, peers = { [1] = a }, state_machine = KV, storage = "memory" })
      assert.is_false(ok, a)
      assert.matches("bad address '" .. a:gsub("%p", "%%%0") .. "' %(want HOST:PORT with a port of 1%-65535%)", err)
    end
    local node = raft.node { id = 1, peers = { [1] = "127.0.0.1:" .. procs.free_port() }, state_machine = KV,
      storage = "memory", election_ms = 100, heartbeat_ms = 20, log_level = "warn" }
    node:start()
    finally(function() node:stop() end)
    for _, a in ipairs(BAD) do
      local ok, err = pcall(node.add_member, node, 2, a, { learner = true })
      assert.is_false(ok, a)
      assert.matches("bad argument #2 to 'add_member' %(bad address", err)
    end
    -- the C binding checks too, for a caller that skips raft.node's check
    for _, a in ipairs(BAD) do
      local ok, err = pcall(node.handle.change, node.handle, 1, "add", 2, a)
      assert.is_false(ok, a)
      assert.matches("bad address '.*' %(want HOST:PORT with a port of 1%-65535%)", err)
    end
    -- force must be a boolean
    local ok, err = pcall(node.remove_member, node, 2, { force = "yes" })
    assert.is_false(ok)
    assert.matches("force must be true or false", err)
  end)

  it("luaraft ctl add refuses them with exit 2 before asking any node", function()
    -- port 1 has no node: a request sent would fail with exit 1, not 2
    for _, a in ipairs(BAD) do
      local code, out = ctl("127.0.0.1:1", "add 4 " .. a)
      assert.equal(2, code, a .. ": " .. out)
      assert.matches("bad address", out)
    end
  end)
end)

describe("membership on a running cluster", function()
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() }
  end)
  teardown(function() if c then c:close() end end)

  it("answers 400 to a bad address or a non-boolean force over HTTP", function()
    local l = assert(c:leader(20))
    local http = c:http_address(l)
    for _, a in ipairs(BAD) do
      local status, body = procs.http(http, "POST", "/v1/members", cjson.encode { id = 4, address = a },
        { ["Content-Type"] = "application/json" }, 10)
      assert.equal(400, status, a)
      assert.matches("bad address", cjson.decode(body).message)
    end
    local status, body = procs.http(http, "POST", "/v1/members",
      cjson.encode { id = 4, address = "127.0.0.1:" .. procs.free_port(), force = "true" },
      { ["Content-Type"] = "application/json" }, 10)
    assert.equal(400, status)
    assert.matches("force must be true or false", cjson.decode(body).message)
    status, body = procs.http(http, "DELETE", "/v1/members/" .. (l % 3 + 1), '{"force":1}',
      { ["Content-Type"] = "application/json" }, 10)
    assert.equal(400, status)
    assert.matches("force must be true or false", cjson.decode(body).message)
    assert.equal(3, #assert(c:node(l):members()).members)
  end)

  -- Asked of the leader itself, through raft.cluster (HTTP).
  it("removes the leader, asked of the leader: success, and the rest go on", function()
    local l = assert(c:leader(20))
    assert.truthy(c:node(l):propose({ op = "set", key = "k", value = 1 }))
    local res, err = c:node(l):remove_member(l, 20)
    assert.is_nil(err)
    assert.is_true(res.ok)
    assert.is_number(res.index)
    local nl
    assert.truthy(c:wait_for(function()
      for _, id in ipairs(c:ids()) do
        local st = id ~= l and c:node(id):status(1)
        if st and st.role == "leader" then nl = id end
      end
      return nl ~= nil
    end, 20), "no new leader among the remaining two")
    assert.truthy(c:wait_for(function()
      return c:node(nl):propose({ op = "set", key = "k", value = 2 }, { timeout = 2 }) ~= nil
    end, 20), "the remaining two do not serve writes")
    assert.is_nil(role_of(assert(c:node(nl):members()).members, l))
    -- the removed node knows: it committed the entry that removes it
    local st = assert(c:node(l):status())
    assert.are_not.equal("leader", st.role)
    assert.truthy(st.commit_index >= res.index, "removed node's commit " .. st.commit_index .. " < " .. res.index)
    assert.is_nil(role_of(st.members, l))
    assert.truthy(c:log(l):find("says this node is not a member: it was removed from the cluster", 1, true))
  end)
end)

describe("membership on a running cluster, asked of a follower", function()
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() }
  end)
  teardown(function() if c then c:close() end end)

  it("luaraft ctl remove <leader> on a follower exits 0 with the index", function()
    local l = assert(c:leader(20))
    assert.truthy(c:node(l):propose({ op = "set", key = "k", value = 1 }))
    local f = l % 3 + 1
    local code, out = ctl(c:http_address(f), "remove " .. l)
    assert.equal(0, code, out)
    local res = cjson.decode(out)
    assert.is_true(res.ok)
    assert.is_number(res.index)
    assert.truthy(c:wait_for(function()
      local st = c:node(f):status(1)
      local nl = st and st.role and st.leader
      return nl and nl ~= l and c:node(nl):propose({ op = "set", key = "k", value = 2 }, { timeout = 2 }) ~= nil
    end, 20), "the remaining two do not elect a leader and serve writes")
    local st = assert(c:node(l):status())
    assert.are_not.equal("leader", st.role)
    assert.truthy(st.commit_index >= res.index)
    assert.is_nil(role_of(st.members, l))
  end)
end)

-- etcd's strict reconfiguration: a voter that is not running yet is not
-- reachable, so adding it to a one-voter cluster is refused; force adds it.
describe("membership force on real processes", function()
  local c
  setup(function()
    c = cluster.new { nodes = 1, state_machine = KV, binary = procs.binary() }
  end)
  teardown(function() if c then c:close() end end)

  it("refuses the unsafe add without --force and makes it with --force", function()
    local l = assert(c:leader(20))
    local http = c:http_address(l)
    local addr = c:add_node(2) -- running (--join), not a member yet
    -- raft.cluster (raft.node behind HTTP) refuses it
    local ok, err = c:node(l):add_member(2, addr)
    assert.is_nil(ok)
    assert.equal("bad_request", err.code)
    assert.matches("fewer reachable voters than a quorum", err.message)
    local code, out = ctl(http, "add 2 " .. addr)
    assert.equal(1, code, out)
    local e = cjson.decode(out)
    assert.equal("bad_request", e.error)
    assert.matches("fewer reachable voters than a quorum %(force to override%)", e.message)
    assert.is_nil(role_of(assert(c:node(l):members()).members, 2))
    code, out = ctl(http, "add 2 " .. addr .. " --force")
    assert.equal(0, code, out)
    assert.is_number(cjson.decode(out).index)
    assert.equal("voter", role_of(assert(c:node(l):members()).members, 2))
    assert.truthy(c:node(l):propose({ op = "set", key = "two", value = 2 }))
  end)
end)
