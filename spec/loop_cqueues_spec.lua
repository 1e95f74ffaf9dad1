-- raft.use_cqueues (docs/loops.md): raft inside a cqueues controller, and
-- examples/cqueues_server.lua embedding a node in a cqueues HTTP server that
-- answers curl while it replicates with two `luaraft run` peers.
local raft = require "raft"
local procs = require "support.procs"

local has_cqueues, cqueues = pcall(require, "cqueues")
if not has_cqueues then
  print("skipped spec/loop_cqueues_spec.lua: lua-cqueues is not installed (scripts/setup installs it)")
  return
end
local socket = require "cqueues.socket"

describe("raft.use_cqueues", function()
  it("runs a node inside a cqueues controller: waiting calls suspend only their coroutine", function()
    local cq = raft.use_cqueues(cqueues.new())
    local node = raft.node {
      id = 1, peers = { [1] = "127.0.0.1:" .. procs.free_port() },
      state_machine = "examples/kv.lua", storage = "memory",
      election_ms = 100, heartbeat_ms = 20, log_level = "warn",
    }
    assert.is_true(node:start())
    local result, read, sleeper_woke, echo_done_while_sleeping
    -- a coroutine of the controller (not raft.spawn) making waiting calls
    cq:wrap(function()
      while node:status().role ~= "leader" do raft.sleep(0.02) end
      result = node:propose({ op = "set", key = "a", value = "x" })
      read = node:read({ key = "a" })
    end)
    -- a long raft wait in one coroutine must not hold up another's socket I/O
    cq:wrap(function()
      raft.sleep(2)
      sleeper_woke = true
    end)
    cq:wrap(function()
      local a, b = socket.pair()
      a:write("ping\n")
      local line = b:read("*l")
      echo_done_while_sleeping = line == "ping" and not sleeper_woke
      a:close(); b:close()
    end)
    cq:wrap(function()
      local deadline = cqueues.monotime() + 30
      while not (sleeper_woke and read) and cqueues.monotime() < deadline do cqueues.sleep(0.02) end
      node:stop()
      raft.stop_loop() -- ends the driver, so cq:loop() returns
    end)
    assert(cq:loop(60))
    assert.equal(true, result)
    assert.equal("x", read)
    assert.is_true(sleeper_woke)
    assert.is_true(echo_done_while_sleeping)
  end)

  it("after raft.stop_loop() ended the driver, a waiting call in a cqueues coroutine drives raft itself", function()
    local cq = cqueues.new()
    local woke = false
    cq:wrap(function()
      raft.sleep(0.01)
      woke = true
    end)
    assert(cq:loop(10))
    assert.is_true(woke)
  end)

  it("rejects a non-controller argument", function()
    assert.has_error(function() raft.use_cqueues(42) end,
      "bad argument #1 to 'use_cqueues' (cqueues controller expected, got number)")
  end)
end)

-- ---- the example server, on real processes -------------------------------
local function http(addr, method, path, body)
  local status, rbody = procs.http(addr, method, path, body, nil, 10)
  return status, rbody
end

local function wait_until(fn, seconds)
  local deadline = os.time() + seconds
  repeat
    local v = fn()
    if v then return v end
    raft.sleep(0.1)
  until os.time() > deadline
  return nil
end

describe("examples/cqueues_server.lua", function()
  local dir, pids = nil, {}
  after_each(function()
    for _, pid in ipairs(pids) do procs.kill(pid) end
    pids = {}
    procs.rmdir(dir)
  end)

  it("answers curl while its node replicates with two luaraft run peers", function()
    dir = procs.mkdtemp()
    local bin = procs.binary()
    local peer = {}
    for id = 1, 3 do peer[id] = "127.0.0.1:" .. procs.free_port() end
    local peers = ("1=%s,2=%s,3=%s"):format(peer[1], peer[2], peer[3])
    local http_of = {}
    for id = 2, 3 do
      http_of[id] = "127.0.0.1:" .. procs.free_port()
      pids[#pids + 1] = procs.spawn({ bin, "run", "--id", id, "--peers", peers, "--http", http_of[id],
        "--storage", "memory", "--data", dir .. "/" .. id, "--election-ms", 200, "--log-level", "warn",
        "examples/kv.lua" }, dir .. "/node" .. id .. ".log")
    end
    local log1 = dir .. "/server.log"
    pids[#pids + 1] = procs.spawn({ bin, "examples/cqueues_server.lua", "--id", 1, "--peers", peers,
      "--http", "127.0.0.1:0" }, log1)
    local addr = wait_until(function()
      return (procs.read_file(log1) or ""):match("http listening on (%S+)")
    end, 20)
    assert.truthy(addr, "the server did not print its address: " .. tostring(procs.read_file(log1)))

    -- a write through the embedded node: retried until the cluster has a leader
    local status, body
    assert.truthy(wait_until(function()
      status, body = http(addr, "PUT", "/kv/greeting", "hello")
      return status == 200
    end, 30), "PUT never succeeded: " .. tostring(status) .. " " .. tostring(body)
      .. "\n" .. tostring(procs.read_file(log1)))
    assert.truthy(body:find('"ok":true', 1, true), body)

    -- curl, as a user would
    local code, out = procs.run(("curl -sS --max-time 10 http://%s/kv/greeting"):format(addr), 20)
    assert.equal(0, code, out)
    assert.truthy(out:find('"value":"hello"', 1, true), out)

    -- replicated: both luaraft run peers apply the write
    for id = 2, 3 do
      assert.truthy(wait_until(function()
        local s, b = http(http_of[id], "POST", "/v1/read?consistency=stale", '{"key":"greeting"}')
        return s == 200 and b:find('"result":"hello"', 1, true)
      end, 20), "node " .. id .. " did not apply the write")
    end

    -- the controller kept its own timer coroutine running meanwhile
    local s, ticks = http(addr, "GET", "/ticks")
    assert.equal(200, s)
    assert.truthy(tonumber(ticks:match('"ticks":(%d+)')) > 0, ticks)
    local st, sbody = http(addr, "GET", "/status")
    assert.equal(200, st)
    assert.truthy(sbody:find('"id":1', 1, true), sbody)
    assert.equal(404, (http(addr, "GET", "/nope")))
  end)
end)
