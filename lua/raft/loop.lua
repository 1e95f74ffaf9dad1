-- The libuv loop as Lua sees it: raft.run, raft.run_once, raft.stop_loop,
-- raft.spawn, raft.sleep (the C parts: lloop.c and lnode.c), and `wait`,
-- the one helper every waiting call goes through:
--
--   * inside a coroutine started by raft.spawn (or any coroutine while the
--     loop is running) it yields, and the loop resumes it when done;
--   * outside one, with the loop idle, it drives the loop (uv_run ONCE)
--     until done;
--   * outside one while the loop is running (a plain callback) it raises:
--     libuv loops cannot be re-entered. "Running" counts raft's own uv_run
--     calls and, after raft.use_luv(), luv's (uv.loop_mode()), so a luv
--     callback outside a coroutine gets the error instead of a nested uv_run;
--   * in a coroutine managed by another loop whose adapter registered a
--     waiter (raft.use_cqueues: lua/raft/loop_cqueues.lua), that waiter
--     suspends it the other loop's way.
--
-- For any other poll-based loop: raft.backend_fd(), raft.backend_timeout()
-- and raft.step() (docs/loops.md).
local core = require "raft.core"

local loop = {}

-- uv_run calls in progress through this module (libuv loops cannot be
-- re-entered, so a waiting call inside one must be in a coroutine).
local depth = 0

-- luv's module once raft shares its loop (raft.use_luv); its uv.run() runs
-- raft's loop without going through `run` below.
local luv = nil

local function running()
  return depth > 0 or (luv ~= nil and luv.loop_mode() ~= nil)
end

local function run(mode)
  if running() then
    error("the raft loop is already running: call waiting functions from a coroutine (raft.spawn)", 3)
  end
  depth = depth + 1
  local ok, alive
  if mode then
    ok, alive = pcall(core.loop_run_once, mode == "nowait")
  else
    ok, alive = pcall(core.loop_run)
  end
  depth = depth - 1
  if not ok then error(alive, 0) end
  return alive
end

-- Adapters for other loops: waiters[i](start) returns true and done's
-- results when it handled the wait in the current coroutine, or false.
local waiters = {}
function loop.add_waiter(fn) waiters[#waiters + 1] = fn end
-- uv.loop_mode() (luv >= 1.33; Debian 12 has 1.44) tells whether uv.run()
-- is running; an older luv leaves only raft's own runs detectable.
function loop.use_luv(uv)
  if type(uv.loop_mode) == "function" then luv = uv end
end

local spawned = setmetatable({}, { __mode = "k" })

-- Resumes co, reporting (not raising) an error it ends with: a failing
-- coroutine must not unwind through a libuv callback.
function loop.resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    core.log("error", "error", 0, "coroutine failed: " .. debug.traceback(co, tostring(err)))
  end
  return ok
end

-- raft.spawn(fn, ...) -> coroutine: starts fn(...) at once in a coroutine the
-- loop resumes whenever what it waits for is done.
function loop.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local co = coroutine.create(fn)
  spawned[co] = true
  loop.resume(co, ...)
  return co
end

-- wait(start): start(done) begins something that calls done(...) exactly
-- once, maybe before start returns; wait returns done's arguments.
local function foreign_wait(start)
  for _, waiter in ipairs(waiters) do
    local r = table.pack(waiter(start))
    if r[1] then return true, r end
  end
  return false
end

function loop.wait(start)
  local co, main = coroutine.running()
  if not main and not spawned[co] and #waiters > 0 then
    local handled, r = foreign_wait(start)
    if handled then return table.unpack(r, 2, r.n) end
  end
  if not main and (spawned[co] or running()) then
    local results, waiting = nil, false
    start(function(...)
      if waiting then
        waiting = false
        loop.resume(co, ...)
      elseif not results then
        results = table.pack(...)
      end
    end)
    if results then return table.unpack(results, 1, results.n) end
    waiting = true
    return coroutine.yield()
  end
  if running() then
    error("a waiting raft call inside a loop callback"
      .. (depth == 0 and " (luv's uv.run is running raft's loop)" or "")
      .. ": run it in raft.spawn(fn)", 3)
  end
  local results
  start(function(...)
    if not results then results = table.pack(...) end
  end)
  while not results do run("once") end
  return table.unpack(results, 1, results.n)
end

-- raft.sleep(seconds): in a spawned coroutine it yields; outside one it
-- keeps the loop running for that long.
function loop.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("bad argument #1 to 'sleep' (non-negative number expected)", 2)
  end
  loop.wait(function(done) core.timer(seconds * 1000, done) end)
end

-- raft.run() -> alive ; raft.run_once() -> alive ; raft.stop_loop()
function loop.run() return run(nil) end
function loop.run_once() return run("once") end

-- Embedding in a poll-based loop: wait until backend_fd() is readable or
-- backend_timeout() seconds pass (nil: no timer, wait for the fd only), then
-- step(), which never blocks. step() -> alive (false: raft has nothing left).
function loop.step() return run("nowait") end
function loop.backend_fd() return core.loop_backend_fd() end
function loop.backend_timeout()
  local ms = core.loop_backend_timeout()
  if ms < 0 then return nil end
  return ms / 1000
end

local stop_hooks = {}
function loop.on_stop(fn) stop_hooks[#stop_hooks + 1] = fn end
function loop.stop_loop()
  core.loop_stop()
  for _, fn in ipairs(stop_hooks) do fn() end
end
loop.running = running

return loop
