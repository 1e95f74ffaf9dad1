-- raft.cluster as scripts read it (issue 10): restart/add_node return once
-- the node serves, leader() never returns an isolated leader, the binary is
-- found as docs/cluster.md says, /v1/status carries the pid, and
-- `luaraft ctl kill-leader` signals exactly the leader's process.
-- Real processes; every wait is bounded.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local uv = require "luv"

local function alive(pid) return pid and uv.kill(pid, 0) == 0 end

local function with_cluster(opts, fn)
  opts.state_machine = opts.state_machine or "examples/kv.lua"
  opts.binary = opts.binary or procs.binary()
  local c = cluster.new(opts)
  local ok, err = pcall(fn, c)
  c:close()
  assert(ok, err)
end

local function others(c, id)
  local t = {}
  for _, n in ipairs(c:ids()) do if n ~= id then t[#t + 1] = n end end
  return t
end

describe("raft.cluster waits for what scripts mean", function()
  it("restart(id) returns once the node serves: the very next read on it succeeds", function()
    with_cluster({ nodes = 3 }, function(c)
      local l = assert(c:leader(20))
      assert(c:node(l):propose { op = "set", key = "a", value = "1" })
      for _, f in ipairs(others(c, l)) do
        c:kill(f)
        local st = c:restart(f)
        assert.is_table(st)
        assert.is_not_nil(st.leader, "restart returned before the node heard from a leader")
        -- no ECONNREFUSED, no not_leader: the first call works
        local v, err = c:node(f):read({ key = "a" }, { timeout = 5 })
        assert.is_nil(err)
        assert.equal("1", v)
      end
    end)
  end)

  it("restart of a stopped cluster one node at a time does not wait out a leader that cannot exist", function()
    with_cluster({ nodes = 3 }, function(c)
      assert(c:leader(20))
      for _, id in ipairs(c:ids()) do c:stop(id) end
      local t0 = uv.hrtime()
      c:restart(1) -- alone: no majority, no leader to hear from; HTTP up is enough
      assert.is_true((uv.hrtime() - t0) / 1e9 < 9, "restart waited for a leader that cannot exist")
      c:restart(2)
      c:restart(3)
      assert(c:leader(20))
    end)
  end)

  it("leader() right after partition({l}, others) returns the new leader, never the isolated one", function()
    with_cluster({ nodes = 3 }, function(c)
      local l = assert(c:leader(20))
      c:partition({ l }, others(c, l))
      local l2 = assert(c:leader(20))
      assert.are_not.equal(l, l2)
      -- and the one it returns serves writes
      assert.is_true((c:node(l2):propose({ op = "set", key = "p", value = "q" }, { timeout = 5 })))
      c:heal()
    end)
  end)

  it("leader() waits and fails with timeout while no majority follows anyone", function()
    with_cluster({ nodes = 3 }, function(c)
      local l = assert(c:leader(20))
      local rest = others(c, l)
      c:kill(rest[1])
      c:kill(rest[2])
      -- the old leader may still say "leader" until check-quorum steps it down,
      -- but it has no majority of followers
      local got, err = c:leader(1)
      assert.is_nil(got)
      assert.equal("timeout", err.code)
    end)
  end)

  it("add_node(id, {add = 'learner'}) returns once the new node heard from the leader", function()
    with_cluster({ nodes = 3 }, function(c)
      assert(c:leader(20))
      c:add_node(4, { add = "learner" })
      local st = assert(c:node(4):status())
      assert.is_not_nil(st.leader)
      assert.equal("learner", st.role)
    end)
  end)

  it("wait_for(fn, timeout) returns fn's value, or nil after the timeout", function()
    with_cluster({ nodes = 1 }, function(c)
      local n = 0
      assert.equal("yes", c:wait_for(function() n = n + 1; return n >= 3 and "yes" end, 5))
      local t0 = uv.hrtime()
      assert.is_nil(c:wait_for(function() return false end, 0.2))
      assert.is_true((uv.hrtime() - t0) / 1e9 >= 0.2)
    end)
  end)
end)

describe("raft.cluster finds the binary", function()
  it("takes the option first, then LUARAFT_BIN, then the build trees the scripts name", function()
    assert.same({ "/x/luaraft", "option" }, { cluster.find_binary { binary = "/x/luaraft" } })
    local path, how = cluster.find_binary {}
    if os.getenv("LUARAFT_BIN") then
      assert.equal("LUARAFT_BIN", how)
    elseif os.getenv("LUARAFT_RELEASE_BUILD") or os.getenv("LUARAFT_BUILD") then
      assert.equal("LUARAFT_BUILD", how)
      assert.truthy(path:match("/luaraft$"))
    end
  end)

  it("then the running luaraft, then luaraft on PATH", function()
    local bin = procs.binary()
    local dir = procs.mkdtemp()
    local script = dir .. "/where.lua"
    local f = assert(io.open(script, "w"))
    f:write('local c = require "raft.cluster"; print(c.find_binary({}))\n')
    f:close()
    -- a luaraft with none of the variables set: the running binary
    local code, out = procs.run(("env -u LUARAFT_BIN -u LUARAFT_BUILD -u LUARAFT_RELEASE_BUILD %s %s"):format(
      bin, script), 20)
    assert.equal(0, code, out)
    local path, how = out:match("^(%S+)%s+(%S+)")
    assert.equal("running", how)
    assert.truthy(path:match("/luaraft$"))
    assert.truthy(uv.fs_stat(path))
    -- stock lua5.4 with raft.so: no running luaraft, so PATH
    local so_dir = bin:gsub("/luaraft$", "")
    code, out = procs.run(("env -u LUARAFT_BIN -u LUARAFT_BUILD -u LUARAFT_RELEASE_BUILD lua5.4 -e " ..
      "'package.cpath=\"%s/?.so;\"..package.cpath; require \"raft\"' %s"):format(so_dir, script), 20)
    procs.rmdir(dir)
    assert.equal(0, code, out)
    assert.same({ "luaraft", "PATH" }, { out:match("^(%S+)%s+(%S+)") })
  end)
end)

describe("/v1/status and luaraft ctl kill-leader", function()
  it("status names the node's pid and the leader's id", function()
    with_cluster({ nodes = 3 }, function(c)
      local l = assert(c:leader(20))
      for _, id in ipairs(c:ids()) do
        local st = assert(c:node(id):status())
        assert.equal(c:pid(id), st.pid)
        -- leader() needs a majority; the last follower may hear of l a bit later
        assert.truthy(c:wait_for(function()
          local s2 = c:node(id):status()
          return s2 and s2.leader == l
        end, 10), "node " .. id .. " never named " .. l .. " as its leader")
      end
    end)
  end)

  it("kill-leader SIGKILLs the leader's process and no other", function()
    with_cluster({ nodes = 3 }, function(c)
      local l = assert(c:leader(20))
      local addrs = {}
      for _, id in ipairs(c:ids()) do addrs[#addrs + 1] = c:http_address(id) end
      local code, out = procs.run(("%s ctl --http %s kill-leader"):format(procs.binary(),
        table.concat(addrs, ",")), 20)
      assert.equal(0, code, out)
      assert.matches(("sent SIGKILL to node %d %%(pid %d"):format(l, c:pid(l)), out)
      assert.truthy(c:wait_for(function() return c.procs[l].exited end, 10))
      assert.equal(9, c.procs[l].signal)
      for _, id in ipairs(others(c, l)) do assert.is_true(alive(c:pid(id))) end
      -- the others elect a new leader
      local l2 = assert(c:leader(20))
      assert.are_not.equal(l, l2)
    end)
  end)

  it("kill-leader refuses when no answering node is a leader a majority follows", function()
    with_cluster({ nodes = 1 }, function(c)
      assert(c:leader(20))
      local code, out = procs.run(("%s ctl --http 127.0.0.1:%d kill-leader"):format(procs.binary(),
        procs.free_port()), 20)
      assert.equal(1, code, out)
      assert.truthy(out:find("no node of --http is a leader", 1, true), out)
    end)
  end)
end)
