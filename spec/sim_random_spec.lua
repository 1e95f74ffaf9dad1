-- Randomized simulation: many seeds of 3- and 5-node clusters under drops,
-- duplicates, delays, reordering, partitions, crashes and restarts, with
-- concurrent clients on a few keys (set/del/cas/incr and linearizable reads,
-- examples/kv.lua). Every run must pass sim:check() (Raft safety) and its
-- history raft.check.linearizable(history, "kv"). A failure prints its seed;
-- replay one with: luaraft scripts/soak.lua SEED NODES  (see scripts/soak).
--
-- Loaded outside busted (no `describe`), this file returns the generator:
--   run(seed, nodes [, { harsh = true }]) -> ok, message, sim
-- harsh: faults three times as often and any number of nodes may be down.
local raft = require "raft"

local KEYS = { "a", "b", "c" }

local function run(seed, nnodes, opts)
  opts = opts or {}
  local rng = {}
  do -- a private PRNG for the workload (math.random is shared with busted)
    local x = seed * 2654435761 % 4294967296 + 1
    function rng.int(lo, hi)
      x = (x * 1103515245 + 12345) % 2147483648
      return lo + (x >> 8) % (hi - lo + 1)
    end
    function rng.chance(p) return rng.int(0, 9999) < p * 10000 end
    function rng.pick(t) return t[rng.int(1, #t)] end
  end
  local sim = raft.sim {
    nodes = nnodes, seed = seed, state_machine = "examples/kv.lua",
    election_ms = 300, heartbeat_ms = 50,
    snapshot_entries = rng.int(20, 120), snapshot_trailing = rng.int(0, 20),
    trace = opts.trace,
  }
  local ids = sim:nodes()
  local down = {}
  local n_down = 0
  local max_down = opts.harsh and nnodes or (nnodes - 1) // 2
  local clients = {}
  for i = 1, nnodes + 1 do clients[i] = { ticket = nil } end

  local function live()
    local t = {}
    for _, id in ipairs(ids) do if not down[id] then t[#t + 1] = id end end
    return t
  end

  local function new_op(c)
    local key = rng.pick(KEYS)
    local node = rng.pick(live())
    local r = rng.int(1, 10)
    local o = { node = node, timeout = rng.int(500, 3000) }
    if r <= 3 then
      c.ticket = sim:read({ key = key }, o)
    elseif r <= 5 then
      c.ticket = sim:propose({ op = "set", key = key, value = rng.int(1, 5) }, o)
    elseif r <= 6 then
      c.ticket = sim:propose({ op = "del", key = key }, o)
    elseif r <= 8 then
      c.ticket = sim:propose({ op = "cas", key = key, old = rng.int(0, 3) > 0 and rng.int(1, 5) or nil,
                               new = rng.int(1, 5) }, o)
    else
      c.ticket = sim:propose({ op = "incr", key = key, by = rng.int(1, 3) }, o)
    end
  end

  local function fault()
    local r = rng.int(1, 9)
    if r == 1 then
      sim:net { drop = rng.int(0, 20) / 100, duplicate = rng.int(0, 10) / 100,
                delay = { 1, rng.int(2, 40) }, reorder = rng.chance(0.5) }
    elseif r == 2 then
      sim:net { drop = 0, duplicate = 0, delay = { 1, 5 }, reorder = false }
    elseif r == 3 then
      local a, b = {}, {}
      for _, id in ipairs(ids) do
        if rng.chance(0.5) then a[#a + 1] = id else b[#b + 1] = id end
      end
      sim:partition(a, b)
    elseif r == 4 then
      sim:isolate(rng.pick(ids))
    elseif r == 5 or r == 6 then
      sim:heal()
    elseif r == 7 and n_down < max_down then
      local id = rng.pick(live())
      sim:crash(id)
      down[id] = true
      n_down = n_down + 1
    elseif r >= 8 and n_down > 0 then
      for _, id in ipairs(ids) do
        if down[id] then
          sim:restart(id)
          down[id] = nil
          n_down = n_down - 1
          break
        end
      end
    end
  end

  local steps = 300
  for _ = 1, steps do
    for _, c in ipairs(clients) do
      if (c.ticket == nil or c.ticket.done) and rng.chance(0.6) then new_op(c) end
    end
    if rng.chance(opts.harsh and 0.45 or 0.15) then fault() end
    if #live() == 0 then -- keep one node up so clients have somewhere to go
      local id = rng.pick(ids)
      sim:restart(id)
      down[id] = nil
      n_down = n_down - 1
    end
    sim:advance(rng.int(5, 80))
  end
  -- calm down: heal everything and let every pending ticket finish
  sim:heal()
  sim:net { drop = 0, duplicate = 0, delay = { 1, 5 }, reorder = false }
  for _, id in ipairs(ids) do if down[id] then sim:restart(id) end end
  sim:advance(4000)
  local ok, err = pcall(sim.check, sim)
  if not ok then return false, "seed " .. seed .. ": " .. tostring(err), sim end
  local lin, cex = raft.check.linearizable(sim:history(), "kv")
  if not lin then
    return false, "seed " .. seed .. " (" .. nnodes .. " nodes): not linearizable: " ..
      tostring(type(cex) == "table" and (cex.message or cex.text or cex[1]) or cex), sim
  end
  return true, nil, sim
end


-- ---- widened mixes ----------------------------------------------------------
-- Every seed picks its own fault mix, so that one mix's blind spot is another
-- mix's daily catch: drop and duplicate rates, a delay range (with or without
-- reordering), how often faults strike and which (network changes,
-- partitions, isolation, crashes, restarts), 3 or 5 nodes, 1 to 8 clients on
-- 1 to 5 keys, the op mix, request timeouts, and which node each request
-- targets (a random live node, any node including crashed ones, or a node
-- fixed per client). One seed in four runs the mix of issue 10's report
-- instead (3 nodes; drop 3 %, duplicate 3 %, delay 1-40 ms with reordering;
-- random crashes, restarts and partitions; five concurrent clients on three
-- keys, each request sent to a random node).

local function new_rng(seed)
  local rng = {}
  local x = seed * 2654435761 % 4294967296 + 1
  function rng.int(lo, hi)
    x = (x * 1103515245 + 12345) % 2147483648
    return lo + (x >> 8) % (hi - lo + 1)
  end
  function rng.chance(p) return rng.int(0, 9999) < p * 10000 end
  function rng.pick(t) return t[rng.int(1, #t)] end
  return rng
end

-- The mix of issue 10's report.
local ISSUE_MIX = {
  name = "issue10", nodes = 3, clients = 5, keys = 3, target = "random",
  drop = 0.03, duplicate = 0.03, delay = { 1, 40 }, reorder = true, vary_net = false,
  fault_rate = 0.15, max_down = 1, timeout = { 500, 3000 }, steps = 300,
  weights = { read = 3, set = 2, del = 1, cas = 2, incr = 2 },
}

-- mix_for(seed) -> the mix that seed runs (a table; see ISSUE_MIX's fields).
local function mix_for(seed)
  local r = new_rng(seed * 31 + 17)
  if r.int(1, 4) == 1 then
    local m = {}
    for k, v in pairs(ISSUE_MIX) do m[k] = v end
    return m
  end
  local nodes = r.chance(0.7) and 3 or 5
  local lo = r.int(0, 10)
  local harsh = r.chance(0.2)
  return {
    name = "mixed", nodes = nodes, clients = r.int(1, 8), keys = r.int(1, 5),
    target = r.pick { "random", "random", "any", "sticky" },
    drop = r.int(0, 15) / 100, duplicate = r.int(0, 10) / 100,
    delay = { lo + 1, lo + r.int(1, 60) }, reorder = r.chance(0.6), vary_net = r.chance(0.5),
    fault_rate = r.int(3, harsh and 45 or 25) / 100,
    max_down = harsh and nodes or (nodes - 1) // 2,
    timeout = { r.int(200, 1000), r.int(1000, 4000) }, steps = r.int(150, 400),
    weights = { read = r.int(0, 4), set = r.int(1, 4), del = r.int(0, 2),
                cas = r.int(0, 3), incr = r.int(0, 3) },
  }
end

local function mix_text(m)
  return ("%s: %d nodes, %d clients on %d keys, target %s, drop %.2f, duplicate %.2f, " ..
    "delay %d-%d ms%s%s, faults %.2f/step, up to %d down, timeouts %d-%d ms, %d steps"):format(
    m.name, m.nodes, m.clients, m.keys, m.target, m.drop, m.duplicate, m.delay[1], m.delay[2],
    m.reorder and " reordered" or "", m.vary_net and " (varied)" or "", m.fault_rate,
    m.max_down, m.timeout[1], m.timeout[2], m.steps)
end

-- mixed(seed [, { mix = table|"issue10", max_steps = n, trace = ... }])
--   -> ok, message, sim, info
-- ok is true (safe and linearizable), false (a violation: message says
-- which), or nil (the checker gave up: inconclusive, message says why).
-- info = { mix = ..., ops = n, unknown = n }.
local function mixed(seed, opts)
  opts = opts or {}
  local m = opts.mix
  if m == "issue10" then m = ISSUE_MIX elseif m == nil then m = mix_for(seed) end
  local rng = new_rng(seed)
  local sim = raft.sim {
    nodes = m.nodes, seed = seed, state_machine = "examples/kv.lua",
    election_ms = 300, heartbeat_ms = 50,
    snapshot_entries = rng.int(20, 200), snapshot_trailing = rng.int(0, 20),
    trace = opts.trace,
  }
  local ids = sim:nodes()
  local keys = {}
  for i = 1, m.keys do keys[i] = string.char(96 + i) end
  local down, n_down = {}, 0
  local function live()
    local t = {}
    for _, id in ipairs(ids) do if not down[id] then t[#t + 1] = id end end
    return t
  end
  local clients = {}
  for i = 1, m.clients do clients[i] = { home = rng.pick(ids) } end
  local w = m.weights
  local wsum = w.read + w.set + w.del + w.cas + w.incr
  local function net(drop, duplicate, delay, reorder)
    sim:net { drop = drop, duplicate = duplicate, delay = delay, reorder = reorder }
  end
  net(m.drop, m.duplicate, m.delay, m.reorder)

  local function new_op(c)
    local key = rng.pick(keys)
    local node
    if m.target == "sticky" then node = c.home
    elseif m.target == "any" then node = rng.pick(ids)
    else node = rng.pick(live()) end
    local o = { node = node, timeout = rng.int(m.timeout[1], m.timeout[2]) }
    local r = rng.int(1, wsum)
    if r <= w.read then
      c.ticket = sim:read({ key = key }, o)
      return
    end
    r = r - w.read
    if r <= w.set then
      c.ticket = sim:propose({ op = "set", key = key, value = rng.int(1, 5) }, o)
      return
    end
    r = r - w.set
    if r <= w.del then
      c.ticket = sim:propose({ op = "del", key = key }, o)
      return
    end
    r = r - w.del
    if r <= w.cas then
      c.ticket = sim:propose({ op = "cas", key = key,
        old = rng.int(0, 3) > 0 and rng.int(1, 5) or nil, new = rng.int(1, 5) }, o)
      return
    end
    c.ticket = sim:propose({ op = "incr", key = key, by = rng.int(1, 3) }, o)
  end

  local function fault()
    local r = rng.int(1, 10)
    if r == 1 and m.vary_net then
      local lo = rng.int(1, m.delay[2])
      net(rng.int(0, math.floor(m.drop * 200)) / 100, rng.int(0, math.floor(m.duplicate * 200)) / 100,
        { lo, rng.int(lo, m.delay[2] * 2) }, rng.chance(0.5))
    elseif r == 2 and m.vary_net then
      net(m.drop, m.duplicate, m.delay, m.reorder)
    elseif r == 3 then
      local a, b = {}, {}
      for _, id in ipairs(ids) do
        if rng.chance(0.5) then a[#a + 1] = id else b[#b + 1] = id end
      end
      sim:partition(a, b)
    elseif r == 4 then
      sim:isolate(rng.pick(ids))
    elseif r == 5 or r == 6 then
      sim:heal()
    elseif r <= 8 and n_down < m.max_down then
      local id = rng.pick(live())
      sim:crash(id)
      down[id], n_down = true, n_down + 1
    elseif r >= 9 and n_down > 0 then
      local list = {}
      for _, id in ipairs(ids) do if down[id] then list[#list + 1] = id end end
      local id = rng.pick(list)
      sim:restart(id)
      down[id], n_down = nil, n_down - 1
    end
  end

  for _ = 1, m.steps do
    for _, c in ipairs(clients) do
      if (c.ticket == nil or c.ticket.done) and rng.chance(0.6) then new_op(c) end
    end
    if rng.chance(m.fault_rate) then fault() end
    if #live() == 0 then
      local id = rng.pick(ids)
      sim:restart(id)
      down[id], n_down = nil, n_down - 1
    end
    sim:advance(rng.int(5, 80))
  end
  sim:heal()
  net(0, 0, { 1, 5 }, false)
  for _, id in ipairs(ids) do if down[id] then sim:restart(id) end end
  sim:advance(m.timeout[2] + 2000)

  -- A request made to a node that is not running completes at once with
  -- `stopped` ("the node is not running", src/sim/sim.c): it never reached
  -- Raft, so it cannot have taken effect. The checker only sees the code
  -- (stopped is of unknown outcome in general: a node that stops with a
  -- request pending may have appended it), so those are left out here.
  local history = {}
  for _, t in ipairs(sim:history()) do
    local e = t.err
    if not (type(e) == "table" and e.code == "stopped" and t.complete_ms == t.invoke_ms
        and tostring(e.message):find("not running", 1, true)) then
      history[#history + 1] = t
    end
  end
  local info = { mix = m, ops = #history, unknown = 0 }
  for _, t in ipairs(history) do
    local code = type(t.err) == "table" and t.err.code or t.err
    if t.kind == "propose" and (not t.done or (code and code ~= "not_leader" and code ~= "busy"
        and code ~= "too_large" and code ~= "bad_request" and code ~= "apply_error")) then
      info.unknown = info.unknown + 1
    end
  end
  local where = ("seed %d (%s)"):format(seed, mix_text(m))
  local ok, err = pcall(sim.check, sim)
  if not ok then return false, where .. ": Raft safety: " .. tostring(err), sim, info end
  local lin, cex = raft.check.linearizable(history, "kv", { max_steps = opts.max_steps or 2e6 })
  if lin == false then
    return false, where .. ": not linearizable: " .. tostring(cex and cex.message), sim, info
  elseif lin == nil then
    local inc = cex and cex.inconclusive or {}
    return nil, where .. ": inconclusive on key " .. tostring(inc.key) .. ": " ..
      tostring(inc.reason or (cex and cex.message)), sim, info
  end
  return true, nil, sim, info
end

local exports = setmetatable({ run = run, mixed = mixed, mix_for = mix_for,
  mix_text = mix_text, ISSUE_MIX = ISSUE_MIX }, { __call = function(_, ...) return run(...) end })

if describe == nil then return exports end

local function seeds(from, count, nnodes, opts)
  it(("keeps Raft safety and linearizability for seeds %d..%d on %d nodes%s"):format(
    from, from + count - 1, nnodes, opts and " (harsh)" or ""), function()
    local failures = {}
    for seed = from, from + count - 1 do
      local ok, msg, sim = run(seed, nnodes, opts)
      if sim then sim:close() end
      if not ok then
        print("FAILED " .. msg)
        failures[#failures + 1] = msg
      end
    end
    assert(#failures == 0, table.concat(failures, "\n"))
  end)
end

describe("raft.sim randomized regressions", function()
  -- Seed 516192 (5 nodes): a follower's divergent suffix reached past the
  -- leader's snapshot, and fast backtracking answered "offset + 1" forever:
  -- the leader probed one index millions of times (with duplicating links,
  -- each reject doubled the storm). It must get the snapshot instead.
  it("sends a snapshot when the conflict lies behind the leader's snapshot (seed 516192)", function()
    local ok, msg, sim = run(516192, 5, { trace = "messages" })
    assert(ok, msg)
    local appends = 0
    for _ in sim:trace():gmatch(" msg APPEND ") do appends = appends + 1 end
    sim:close()
    assert.is_true(appends < 50000, appends .. " APPEND messages")
  end)
end)

-- Seeds of the widened mixes: every history checked, none may fail. A
-- history the checker cannot decide within its step budget (8 clients on one
-- key, hundreds of operations: deciding linearizability is NP-complete) is
-- neither a pass nor a violation; it is printed with its seed, and more than
-- 1 % of them fails the spec, so a checker (or workload) regression shows.
local function mixed_seeds(from, count, mix)
  it(("keeps Raft safety and linearizability for seeds %d..%d of the %s mixes"):format(
    from, from + count - 1, mix or "widened"), function()
    local failures, inconclusive, kinds = {}, {}, {}
    for seed = from, from + count - 1 do
      local ok, msg, sim, info = mixed(seed, { mix = mix })
      if sim then sim:close() end
      kinds[info.mix.name .. "/" .. info.mix.target] = true
      if ok == false then
        print("FAILED " .. msg)
        failures[#failures + 1] = msg
      elseif ok == nil then
        print("INCONCLUSIVE " .. msg)
        inconclusive[#inconclusive + 1] = msg
      end
    end
    assert(#failures == 0, table.concat(failures, "\n"))
    assert(#inconclusive <= count // 100, #inconclusive .. " inconclusive seeds of " .. count .. ":\n" ..
      table.concat(inconclusive, "\n"))
    if not mix then -- the seeds really do spread over the mixes
      for _, k in ipairs { "issue10/random", "mixed/random", "mixed/any", "mixed/sticky" } do
        assert(kinds[k], "no seed ran " .. k)
      end
    end
  end)
end

describe("raft.sim randomized, widened fault mixes", function()
  it("picks its mix from the seed: the same seed, the same mix; different seeds, different mixes", function()
    assert.same(mix_for(12345), mix_for(12345))
    local names = {}
    for seed = 1, 400 do
      local m = mix_for(seed)
      names[("%s %d %d %d %s %.2f"):format(m.name, m.nodes, m.clients, m.keys, m.target, m.drop)] = true
    end
    local n = 0
    for _ in pairs(names) do n = n + 1 end
    assert.is_true(n > 200, n .. " distinct mixes in 400 seeds")
  end)
  mixed_seeds(1, 300)
  mixed_seeds(100001, 150, "issue10")
end)

describe("raft.sim randomized", function()
  seeds(1, 150, 3)
  seeds(1001, 100, 5)
  seeds(2001, 50, 3, { harsh = true })
end)
