-- Embedding raft's loop in other loops (docs/loops.md): the poll interface
-- (raft.backend_fd, raft.backend_timeout, raft.step) driven by a poll loop
-- written here, and the clear error a waiting call gets when it is made in
-- a luv callback outside a coroutine while luv runs raft's loop.
local raft = require "raft"
local core = require "raft.core"
local loop = require "raft.loop"
local procs = require "support.procs"

local has_cqueues, cqueues = pcall(require, "cqueues")

local function new_node()
  return raft.node {
    id = 1, peers = { [1] = "127.0.0.1:" .. procs.free_port() },
    state_machine = "examples/kv.lua", storage = "memory",
    election_ms = 100, heartbeat_ms = 20, log_level = "warn",
  }
end

describe("the poll interface", function()
  it("reports the next timer as backend_timeout, and step() does not wait for it", function()
    local fired = false
    local timer = core.timer(60000, function() fired = true end)
    -- 0 until a step has run the loop's pending work; never longer than the timer
    assert.truthy(raft.backend_timeout() <= 60)
    assert.is_true(raft.step())   -- returns at once: the timer keeps the loop alive
    assert.is_false(fired)
    local timeout = raft.backend_timeout()
    timer:stop()
    assert.is_number(timeout)
    assert.truthy(timeout > 30 and timeout <= 60, "timeout " .. tostring(timeout))
    for _ = 1, 3 do raft.step() end
  end)

  it("reports a readable backend fd", function()
    local fd = raft.backend_fd()
    assert.is_number(fd)
    assert.truthy(fd >= 0)
    assert.equal(fd, raft.backend_fd())
  end)

  it("lets a poll loop of one's own drive a node: wait on the fd or the timeout, then step", function()
    if not has_cqueues then
      print("skipped: the poll loop here is cqueues.poll and lua-cqueues is not installed")
      return
    end
    local node = new_node()
    assert.is_true(node:start())
    local result, status
    -- the waiting calls run in a raft.spawn coroutine, resumed inside step()
    raft.spawn(function()
      while node:status().role ~= "leader" do raft.sleep(0.02) end
      result = node:propose({ op = "incr", key = "n", by = 7 })
      status = node:status()
    end)
    local cq = cqueues.new()
    local steps = 0
    cq:wrap(function()
      local pollable = { pollfd = raft.backend_fd(), events = "r" }
      local deadline = cqueues.monotime() + 20
      while result == nil and cqueues.monotime() < deadline do
        local timeout = raft.backend_timeout()
        cqueues.poll(pollable, math.min(timeout or 1, 1))
        raft.step()
        steps = steps + 1
      end
    end)
    assert(cq:loop())
    assert.equal(7, result)
    assert.equal("leader", status.role)
    assert.truthy(steps > 1)
    node:stop()
    for _ = 1, 5 do raft.run_once() end
  end)

  it("refuses step() from inside the loop", function()
    local err
    raft.spawn(function()
      raft.sleep(0)
      local ok, e = pcall(raft.step)
      err = not ok and e
    end)
    while err == nil do raft.run_once() end
    assert.truthy(tostring(err):find("already running", 1, true), tostring(err))
  end)
end)

describe("a waiting call in a luv callback", function()
  local uv = raft.use_luv()

  it("raises a clear error outside a coroutine instead of running uv_run inside uv_run", function()
    local err, after
    local t = uv.new_timer()
    t:start(1, 0, function()
      t:close()
      local ok, e = pcall(raft.sleep, 0.01)
      err = not ok and e or false
      after = true
    end)
    uv.run()
    assert.is_true(after)
    assert.truthy(err, "raft.sleep ran inside uv.run's callback")
    assert.truthy(tostring(err):find("inside a loop callback", 1, true), tostring(err))
    assert.truthy(tostring(err):find("raft.spawn", 1, true), tostring(err))
    assert.is_false(loop.running())
  end)

  it("raises the same for raft.run() in a luv callback", function()
    local err
    local t = uv.new_timer()
    t:start(1, 0, function()
      t:close()
      local ok, e = pcall(raft.run_once)
      err = not ok and e or false
    end)
    uv.run()
    assert.truthy(err, "raft.run_once re-entered uv_run")
    assert.truthy(tostring(err):find("already running", 1, true), tostring(err))
  end)

  it("works in raft.spawn from a luv callback, with uv.run driving raft", function()
    local node = new_node()
    node:start()
    local result
    local t = uv.new_timer()
    t:start(1, 0, function()
      t:close()
      raft.spawn(function()
        while node:status().role ~= "leader" do raft.sleep(0.02) end
        result = node:propose({ op = "incr", key = "k", by = 3 })
        node:stop()
      end)
    end)
    uv.run()
    assert.equal(3, result)
  end)
end)
