--- The public `raft` module, built from the C parts (`raft.core`) and the
-- pure-Lua parts in lua/raft/. Submodules load on first use.
-- The reference is docs/module.md (the topic "module.md" here).
-- @module raft
-- @field version the version, "x.y.z"
-- @field encode `raft.encode(value) -> string`: deterministic binary encoding
-- @field decode `raft.decode(string) -> value`; raises on malformed input
-- @field run `raft.run() -> alive`: drive the loop until nothing is left
-- @field run_once `raft.run_once() -> alive`: one loop iteration
-- @field stop_loop `raft.stop_loop()`: make `raft.run` return
-- @field spawn `raft.spawn(fn, ...) -> co`: run fn in a coroutine driven by the loop
-- @field sleep `raft.sleep(seconds)`: yields in a spawned coroutine, else drives the loop
-- @field node `raft.node(opts) -> node` (module raft.node)
-- @field sim `raft.sim(opts) -> sim` (docs/sim.md)
-- @field cluster `raft.cluster(opts) -> cluster` (docs/cluster.md)
-- @field check the checker, `raft.check.linearizable` (docs/checker.md)
-- @field json JSON as the HTTP API decodes it (module raft.json)
-- @field errors error values: `raft.errors.is(value [, code])`, `raft.errors.codes`
local core = require "raft.core"
local loop = require "raft.loop"

local raft = {
  version = core.version,
  encode = core.encode,
  decode = core.decode,
  -- The loop: these wrappers (not the bare C functions) let a waiting call
  -- know whether the loop is already running, so it yields instead of
  -- re-entering uv_run.
  run = loop.run,             -- drive the loop until nothing is left
  run_once = loop.run_once,   -- one iteration (true: more to do)
  stop_loop = loop.stop_loop,
  spawn = loop.spawn,         -- run fn(...) in a coroutine driven by the loop
  sleep = loop.sleep,         -- inside a spawned coroutine (or drives the loop)
  -- Any poll-based loop (docs/loops.md): wait for backend_fd() to be
  -- readable or backend_timeout() seconds (nil: no timer), then step().
  step = loop.step,           -- one non-blocking iteration (true: more to do)
  backend_fd = loop.backend_fd,
  backend_timeout = loop.backend_timeout,
}

--- Shares luv's default loop (API.md section 1): call before creating
-- nodes or servers; then one `uv.run()` serves luv's handles and raft's nodes.
-- @return the luv module
function raft.use_luv()
  local uv = require "luv"
  local path = package.searchpath("luv", package.cpath)
  if not path then error("raft.use_luv: luv.so not found on package.cpath", 2) end
  core.use_luv(path)
  loop.use_luv(uv) -- a waiting call in a luv callback now knows the loop runs
  return uv
end

-- Run raft inside a cqueues controller (docs/loops.md); returns it.
function raft.use_cqueues(cq)
  return require("raft.loop_cqueues").use(cq)
end

-- Fields that are whole submodules, loaded lazily: raft.check, raft.errors,
-- raft.trace.
local submodules = { check = "raft.check", errors = "raft.errors", trace = "raft.trace" }
-- Fields that are constructors living in a submodule: raft.sim { ... }.
local constructors = { sim = "raft.sim", node = "raft.node", cluster = "raft.cluster" }
-- raft.json: JSON decoded as the HTTP API decodes it (docs/module.md).
submodules.json = "raft.json"

return setmetatable(raft, {
  __index = function(t, name)
    local mod = submodules[name]
    if mod then
      local value = require(mod)
      rawset(t, name, value)
      return value
    end
    mod = constructors[name]
    if mod then
      local value = require(mod).new
      rawset(t, name, value)
      return value
    end
    return nil
  end,
})
