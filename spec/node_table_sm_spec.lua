-- raft.node { state_machine = TABLE } (API.md section 4; src/sm/sm.h "the
-- in-state mode"): the embedder's own table, whose functions close over the
-- embedder's locals, runs in this Lua state with the same results, errors,
-- sessions and snapshots as a script, under the instruction budget, and
-- without the sandbox or memory_max.
local raft = require "raft"
local loop = require "raft.loop"
local procs = require "support.procs"

local function wait_for(fn, seconds, what)
  local deadline = os.time() + (seconds or 5)
  while not fn() do
    if os.time() > deadline then error("timed out waiting for " .. (what or "a condition")) end
    loop.sleep(0.02)
  end
end

local function wait_leader(node)
  wait_for(function() return node:status().role == "leader" end, 5, "a leader")
end

local function new_node(opts)
  opts.id = opts.id or 1
  opts.peers = opts.peers or { [opts.id] = "127.0.0.1:" .. procs.free_port() }
  opts.storage = opts.storage or "memory"
  opts.election_ms = opts.election_ms or 100
  opts.heartbeat_ms = opts.heartbeat_ms or 20
  opts.log_level = opts.log_level or "error"
  return raft.node(opts)
end

-- A key-value table over the caller's local `kv`; restore replaces it.
local function kv_machine(kv, counters)
  counters = counters or {}
  local sm = {}
  function sm.apply(cmd, meta)
    if cmd.op == "set" then kv[cmd.key] = cmd.value return meta.index end
    if cmd.op == "fail" then error("no such op: " .. cmd.op) end
    error("unknown op " .. tostring(cmd.op))
  end
  function sm.query(q) return kv[q.key] end
  function sm.snapshot()
    counters.snapshots = (counters.snapshots or 0) + 1
    return raft.encode(kv)
  end
  function sm.restore(data)
    counters.restores = (counters.restores or 0) + 1
    for k in pairs(kv) do kv[k] = nil end
    for k, v in pairs(raft.decode(data)) do kv[k] = v end
  end
  return sm
end

describe("raft.node with a state machine table", function()
  local node
  after_each(function()
    if node then node:stop() end
    node = nil
    for _ = 1, 5 do loop.run_once() end
  end)

  it("applies through functions that close over the caller's locals", function()
    local kv = {}
    node = new_node({ state_machine = kv_machine(kv) })
    assert.is_true(node:start())
    wait_leader(node)
    local index = node:propose({ op = "set", key = "a", value = "x" })
    assert.equal("number", math.type(index) and "number")
    assert.equal("x", kv.a) -- the caller's own table changed
    assert.equal("x", node:read({ key = "a" }))
    assert.equal("x", node:read({ key = "a" }, { consistency = "stale" }))
    local st = node:status().state_machine
    assert.equal(0, st.memory_used)
    assert.equal(0, st.memory_max)
  end)

  it("gives the same apply_error as a script and keeps applying", function()
    local kv = {}
    node = new_node({ state_machine = kv_machine(kv) })
    node:start()
    wait_leader(node)
    local r, err = node:propose({ op = "fail" })
    assert.is_nil(r)
    assert.equal("apply_error", err.code)
    assert.matches("^node_table_sm_spec%.lua:%d+: no such op: fail$", err.message:match("[^/]*$"))
    assert.truthy(node:propose({ op = "set", key = "k", value = 1 }))
    assert.equal(1, kv.k)
  end)

  it("applies a (client, seq) pair exactly once", function()
    local n = 0
    node = new_node({ state_machine = { apply = function() n = n + 1 return n end } })
    node:start()
    wait_leader(node)
    assert.equal(1, node:propose("x", { client = "me", seq = 1 }))
    assert.equal(1, node:propose("x", { client = "me", seq = 1 }))
    assert.equal(2, node:propose("x", { client = "me", seq = 2 }))
    assert.equal(2, n)
  end)

  it("stops a runaway apply at the budget, and never limits the caller's own code", function()
    local co
    node = new_node({ apply_budget = 1e6, state_machine = { apply = function(cmd)
      if cmd == "spin" then while true do end end
      if cmd == "co" then
        -- made during the call: inherits the budget hook, must drop it later
        co = coroutine.create(function() local x = 0 for i = 1, 3e6 do x = x + i end return x end)
        return true
      end
      return cmd
    end } })
    node:start()
    wait_leader(node)
    local r, err = node:propose("spin")
    assert.is_nil(r)
    assert.equal("apply_error", err.code)
    assert.matches("instruction budget exceeded: more than 1000000 Lua instructions", err.message)
    assert.equal(1, node:status().state_machine.budget_exceeded)
    assert.equal(7, node:propose(7)) -- the cluster goes on
    -- the caller's code after the call: far more than the budget, unlimited
    assert.is_nil(debug.gethook())
    local x = 0
    for i = 1, 5e6 do x = x + i end
    assert.equal(12500002500000, x)
    assert.is_true(node:propose("co"))
    local ok, v = coroutine.resume(co)
    assert.is_true(ok, v)
    assert.equal(4500001500000, v)
  end)

  it("refuses node methods called from inside apply", function()
    local inner
    node = new_node({ state_machine = { apply = function() inner = pcall(node.status, node) return inner end } })
    node:start()
    wait_leader(node)
    local r, err = node:propose(1)
    assert.equal(false, r, tostring(err))
    local saw
    node:stop()
    node = new_node({ state_machine = { apply = function() node:propose(2) end } })
    node:start()
    wait_leader(node)
    r, err = node:propose(1)
    assert.is_nil(r)
    saw = err.message
    assert.matches("node methods cannot be called from inside a state machine", saw)
  end)

  it("snapshots through the table and restores into it after a restart", function()
    local dir = procs.mkdtemp()
    local peers = { [1] = "127.0.0.1:" .. procs.free_port() }
    local ok, err = pcall(function()
      local kv1, c1 = {}, {}
      node = new_node({ storage = "sqlite", data_dir = dir .. "/1", peers = peers, snapshot_entries = 5,
                        state_machine = kv_machine(kv1, c1) })
      node:start()
      wait_leader(node)
      for i = 1, 12 do assert.truthy(node:propose({ op = "set", key = "p" .. i, value = i })) end
      wait_for(function() return node:status().snapshot_index >= 10 end, 30, "a snapshot")
      -- automatic snapshots run the table's snapshot() in a forked child,
      -- on a copy of this Lua state: what it changes does not come back
      assert.is_nil(c1.snapshots)
      node:stop()
      for _ = 1, 5 do loop.run_once() end
      -- a new table, with something stale in it that restore must replace
      local kv2, c2 = { stale = true }, {}
      node = new_node({ storage = "sqlite", data_dir = dir .. "/1", peers = peers, snapshot_entries = 5,
                        state_machine = kv_machine(kv2, c2) })
      assert.is_true(node:start())
      assert.equal(1, c2.restores)
      wait_leader(node)
      for i = 1, 12 do assert.equal(i, node:read({ key = "p" .. i })) end
      assert.is_nil(kv2.stale)
      for i = 1, 12 do assert.equal(i, kv2["p" .. i]) end
    end)
    procs.rmdir(dir)
    assert(ok, err)
  end)

  it("halts when restore raises (the table's state is unknown)", function()
    local dir = procs.mkdtemp()
    local peers = { [1] = "127.0.0.1:" .. procs.free_port() }
    local ok, err = pcall(function()
      node = new_node({ storage = "sqlite", data_dir = dir .. "/1", peers = peers,
                        state_machine = kv_machine({}) })
      node:start()
      wait_leader(node)
      assert.truthy(node:propose({ op = "set", key = "a", value = 1 }))
      assert.is_true(node:snapshot())
      wait_for(function() return node:status().snapshot_index > 0 end, 30, "a snapshot")
      node:stop()
      for _ = 1, 5 do loop.run_once() end
      local sm = kv_machine({})
      sm.restore = function() error("cannot restore") end
      node = new_node({ storage = "sqlite", data_dir = dir .. "/1", peers = peers, state_machine = sm })
      local started, serr = node:start()
      assert.is_nil(started)
      assert.matches("cannot restore", tostring(serr))
    end)
    procs.rmdir(dir)
    assert(ok, err)
  end)

  it("does not keep the table alive once the node is stopped", function()
    local weak = setmetatable({}, { __mode = "k" })
    do
      local sm = kv_machine({})
      weak[sm] = true
      node = new_node({ state_machine = sm })
    end
    node:start()
    wait_leader(node)
    assert.truthy(node:propose({ op = "set", key = "a", value = 1 }))
    collectgarbage()
    assert.is_not_nil(next(weak)) -- held while the node runs
    node:stop()
    for _ = 1, 5 do loop.run_once() end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("replicates to three nodes in one process, each with its own table", function()
    local ports = { procs.free_port(), procs.free_port(), procs.free_port() }
    local peers = {}
    for i = 1, 3 do peers[i] = "127.0.0.1:" .. ports[i] end
    local nodes, kvs = {}, {}
    local ok, err = pcall(function()
      for i = 1, 3 do
        kvs[i] = {}
        nodes[i] = new_node({ id = i, peers = peers, state_machine = kv_machine(kvs[i]) })
        assert.is_true(nodes[i]:start())
      end
      local leader
      wait_for(function()
        for i = 1, 3 do if nodes[i]:status().role == "leader" then leader = nodes[i] return true end end
      end, 10, "a leader")
      assert.truthy(leader:propose({ op = "set", key = "r", value = "all" }))
      wait_for(function() return kvs[1].r and kvs[2].r and kvs[3].r end, 5, "every replica")
      for i = 1, 3 do assert.equal("all", kvs[i].r) end
    end)
    for i = 1, 3 do if nodes[i] then nodes[i]:stop() end end
    assert(ok, err)
  end)

  it("is refused by raft.node options that do not apply to it, and by raft.sim", function()
    assert.has_error(function() new_node({ state_machine = { query = function() end } }) end,
      "raft.node: state_machine table must have an apply function")
    assert.has_error(function() new_node({ state_machine = { apply = print }, memory_max = 1e6 }) end)
    local ok, err = pcall(raft.sim, { nodes = 1, state_machine = { apply = print } })
    assert.is_false(ok)
    assert.matches("cannot be a table in raft.sim", tostring(err))
  end)
end)
