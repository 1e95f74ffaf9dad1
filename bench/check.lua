-- raft.check.linearizable on large histories: how long a verdict takes.
--   linearizable  5,000 ops on 3 keys, 500 writes of unknown outcome (about
--                 half of them applied), built from a sequential execution
--                 with overlapping intervals (linearizable by construction)
--   violation     the same history with one read made stale (it returns the
--                 value of a write that nine later completed writes replaced)
--   one key       the same 5,000 ops on a single key
--   sim           a simulator history (issue 10's fault mix, run until it has
--                 5,000 ops), every outcome as the simulator recorded it
-- Prints ops, unknown outcomes, verdict, search steps and wall-clock seconds.
-- Usage: luaraft bench/check.lua [ops=5000] [unknown=500]
package.path = "lua/?.lua;spec/?.lua;" .. package.path
local check = require "raft.check"
local gen = require "helpers.check_gen"

local n = tonumber(arg and arg[1]) or 5000
local want_unknown = tonumber(arg and arg[2]) or 500

local function now()
  local ok, uv = pcall(require, "luv")
  if ok then return uv.hrtime() / 1e9 end
  return os.clock()
end

local function is_unknown(op)
  if op.kind ~= "propose" then return false end
  local code = type(op.err) == "table" and op.err.code or op.err
  if code == nil then return op.done ~= true end
  return not (code == "not_leader" or code == "too_large" or code == "busy"
    or code == "bad_request" or code == "apply_error")
end

local function count_unknown(h)
  local u = 0
  for _, op in ipairs(h) do if is_unknown(op) then u = u + 1 end end
  return u
end

-- A generated history with exactly `want_unknown` writes of unknown outcome:
-- gen.history draws them at a rate (below the target), then completed writes
-- spread over the history are turned into timeouts until the count is
-- reached (a write that happened may be reported as unknown: the history
-- stays linearizable).
local function generated(keys)
  local h = gen.history(42, { n = n, keys = keys, spread = 40, unknown = 10 })
  local u = count_unknown(h)
  local stride = 7
  while u < want_unknown do
    local changed = false
    for i = stride, #h, stride do
      local op = h[i]
      if u < want_unknown and op.kind == "propose" and op.done and op.err == nil then
        op.done, op.result, op.err = nil, nil, { code = "timeout", message = "timeout" }
        u, changed = u + 1, true
      end
    end
    if not changed then break end
    stride = stride + 2
  end
  return h, u
end

local function corrupt(h)
  local copy = {}
  for i, op in ipairs(h) do
    local o = {}
    for k, v in pairs(op) do o[k] = v end
    copy[i] = o
  end
  for i = #copy // 2, #copy do
    local op = copy[i]
    if op.kind == "read" and op.done and op.err == nil and op.result ~= nil then
      local seen = {}
      for j = i - 1, 1, -1 do
        local w = copy[j]
        if w.kind == "propose" and w.cmd.key == op.q.key and w.cmd.op == "set" and w.done
            and w.err == nil and w.cmd.value ~= op.result then
          seen[#seen + 1] = w.cmd.value
          if #seen == 10 then
            op.result = w.cmd.value
            return copy, i
          end
        end
      end
    end
  end
  error("no read to corrupt")
end

local function sim_history()
  local g = dofile("spec/sim_random_spec.lua")
  local m = {}
  for k, v in pairs(g.ISSUE_MIX) do m[k] = v end
  m.steps = math.ceil(n / 1.2) -- about 1.2 ops per step with 5 clients
  local ok, msg, sim, info = g.mixed(7, { mix = m })
  local h = sim:history()
  sim:close()
  return h, info.unknown, ok, msg
end

local function run(name, h, unknown)
  local stats = {}
  local t0 = now()
  local ok, cex = check.linearizable(h, "kv", { stats = stats, max_steps = 5e6 })
  local dt = now() - t0
  local verdict = ok == true and "linearizable" or ok == false and "NOT linearizable"
    or ("inconclusive (" .. tostring(cex.inconclusive and cex.inconclusive.reason) .. ")")
  print(("%-14s %5d ops %4d unknown  %-18s %9d steps  %.2f s"):format(
    name, #h, unknown, verdict, stats.steps or 0, dt))
  return ok, dt
end

local h, u = generated({ "a", "b", "c" })
run("linearizable", h, u)
local bad = corrupt(h)
run("violation", bad, u)
local h1, u1 = generated({ "a" })
run("one key", h1, u1)
run("one key bad", (corrupt(h1)), u1)
local hs, us = sim_history()
run("sim", hs, us)
