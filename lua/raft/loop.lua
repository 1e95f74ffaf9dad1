-- The libuv loop as Lua sees it: raft.run, raft.run_once, raft.stop_loop,
-- raft.spawn, raft.sleep (the C parts: lloop.c and lnode.c), and `wait`,
-- the one helper every waiting call goes through:
--
--   * inside a coroutine started by raft.spawn (or any coroutine while the
--     loop is running) it yields, and the loop resumes it when done;
--   * outside one, with the loop idle, it drives the loop (uv_run ONCE)
--     until done;
--   * outside one while the loop is running (a plain callback) it raises:
--     libuv loops cannot be re-entered.
local core = require "raft.core"

local loop = {}

-- uv_run calls in progress through this module (libuv loops cannot be
-- re-entered, so a waiting call inside one must be in a coroutine).
local depth = 0

local function run(once)
  if depth > 0 then
    error("the raft loop is already running: call waiting functions from a coroutine (raft.spawn)", 3)
  end
  depth = depth + 1
  local ok, alive = pcall(once and core.loop_run_once or core.loop_run)
  depth = depth - 1
  if not ok then error(alive, 0) end
  return alive
end

local function running() return depth > 0 end

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
function loop.wait(start)
  local co, main = coroutine.running()
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
    error("a waiting raft call inside a loop callback: run it in raft.spawn(fn)", 3)
  end
  local results
  start(function(...)
    if not results then results = table.pack(...) end
  end)
  while not results do run(true) end
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
function loop.run() return run(false) end
function loop.run_once() return run(true) end
function loop.stop_loop() core.loop_stop() end
loop.running = running

return loop
