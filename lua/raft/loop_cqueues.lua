-- raft.use_cqueues([cq]) -> cq: runs raft's loop inside a cqueues controller.
--
-- One coroutine of the controller (the driver) waits until raft's backend fd
-- is readable or its next timer is due, then takes one non-blocking step of
-- raft's loop (raft.step). A waiting raft call (propose, read, sleep ...) made
-- in a coroutine the controller manages suspends that coroutine on a cqueues
-- condition until raft's callback signals it, so the controller keeps serving
-- everything else meanwhile. raft.spawn coroutines work as usual.
--
-- When raft has nothing alive (no node, server or timer yet), the driver
-- sleeps on a condition that every waiting call signals, and looks again at
-- least every IDLE_S seconds, for handles created without a waiting call
-- (node:start()). raft.stop_loop() ends the driver.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local loop = require "raft.loop"

local M = {}

local IDLE_S = 0.05

local installed = nil -- { cq, kick, stopped }

-- The waiter raft.loop consults in coroutines it did not spawn.
local function waiter(start)
  -- without a driver (none yet, or stopped) nobody would step raft's loop:
  -- the caller then drives it itself, as outside any other loop
  if not installed or installed.stopped then return false end
  local _, managed = cqueues.running()
  if not managed then return false end
  local cond = condition.new()
  local results
  start(function(...)
    if not results then
      results = table.pack(...)
      cond:signal()
    end
  end)
  installed.kick:signal()
  while not results do cond:wait() end
  return true, table.unpack(results, 1, results.n)
end

function M.use(cq)
  if cq ~= nil and type(cq) ~= "userdata" then
    error("bad argument #1 to 'use_cqueues' (cqueues controller expected, got " .. type(cq) .. ")", 2)
  end
  if installed and not installed.stopped then
    if cq == nil or cq == installed.cq then return installed.cq end
    error("raft.use_cqueues: raft already runs inside another cqueues controller", 2)
  end
  cq = cq or cqueues.new()
  local state = { cq = cq, kick = condition.new(), stopped = false }
  if installed == nil then
    loop.add_waiter(waiter)
    loop.on_stop(function()
      if installed then
        installed.stopped = true
        installed.kick:signal()
      end
    end)
  end
  installed = state
  local pollable = { pollfd = loop.backend_fd(), events = "r" }
  cq:wrap(function()
    while not state.stopped do
      local alive = loop.step()
      if state.stopped then break end
      -- poll always yields, even with a 0 timeout: raft's pending work
      -- never starves the controller's other coroutines.
      cqueues.poll(pollable, state.kick, alive and loop.backend_timeout() or IDLE_S)
    end
    if installed == state then installed = nil end
  end)
  return cq
end

return M
