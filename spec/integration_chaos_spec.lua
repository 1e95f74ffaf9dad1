-- Randomized failover against real processes: a raft.cluster of examples/kv.lua
-- nodes, concurrent clients (coroutines over keep-alive HTTP) doing set, cas,
-- incr and linearizable reads on a few keys through random nodes (writes
-- retried with exactly-once sessions until answered), while a
-- nemesis SIGKILLs and restarts nodes, SIGSTOPs/SIGCONTs them, restarts them
-- gracefully and partitions the network (then heals). At the end everything
-- is healed and every node restarted, every key is read through every node,
-- and the whole history must pass raft.check.linearizable(history, "kv"):
-- an acknowledged write that was lost, or a stale read, fails it.
--
-- The seed is printed; replay with LUARAFT_CHAOS_SEED=N (and
-- LUARAFT_CHAOS_SECONDS for the length). scripts/chaos runs it for longer.
-- Loaded outside busted (no `describe`), this file returns the runner:
--   run(seed, seconds, { log = print }) -> ok, message, summary
local uv = require "luv"
local cluster = require "raft.cluster"
local check = require "raft.check"

local function binary()
  local build = os.getenv("LUARAFT_RELEASE_BUILD") or os.getenv("LUARAFT_BUILD") or "build"
  return build .. "/luaraft"
end

-- A private PRNG (splitmix64): math.random is shared with busted.
local function prng(seed)
  local state = seed
  local r = {}
  function r.next()
    state = state + 0x9e3779b97f4a7c15
    local z = state
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    return z ~ (z >> 31)
  end
  function r.int(lo, hi) return lo + (r.next() >> 1) % (hi - lo + 1) end
  function r.real(lo, hi) return lo + (hi - lo) * ((r.next() >> 11) / 2 ^ 53) end
  function r.pick(t) return t[r.int(1, #t)] end
  return r
end

local KEYS = { "x", "y" } -- set and cas (strings)
local COUNTER = "n"       -- incr (a number)

local function run(seed, seconds, opts)
  opts = opts or {}
  local log = opts.log or print
  local rng = prng(seed)
  local c = cluster.new { nodes = opts.nodes or 3, state_machine = "examples/kv.lua", binary = binary(),
    election_ms = 300, heartbeat_ms = 50, snapshot_entries = 100, log_level = "info" }
  local summary = { seed = seed, ops = 0, acked = 0, failed = {}, nemesis = {} }
  local ok, err = pcall(function()
    assert(c:leader(15), "no first leader")
    local ids = c:ids()
    local down, paused = {}, {}
    local deadline = uv.hrtime() / 1e6 + seconds * 1000
    local function now() return uv.hrtime() / 1e6 end
    local active, failures = 0, {}
    local function go(name, fn)
      active = active + 1
      coroutine.wrap(function()
        local okf, e = pcall(fn)
        if not okf then failures[#failures + 1] = name .. ": " .. tostring(e) end
        active = active - 1
      end)()
    end
    local function live_node()
      local list = {}
      for _, id in ipairs(ids) do if not down[id] and not paused[id] then list[#list + 1] = id end end
      return rng.pick(list)
    end

    -- clients. A write is retried (on another node) with the same
    -- Raft-Client-Id/Raft-Seq until it gets an answer, so it is applied at
    -- most once and its outcome is known: few "unknown" writes keep the
    -- linearizability check cheap. Each logical operation is one history
    -- entry, from its first attempt to its answer.
    local hist = {}
    local t0 = now()
    local function write(k, seq, cmd)
      local op = { kind = "propose", cmd = cmd, invoke_ms = now() - t0 }
      hist[#hist + 1] = op
      local give_up = now() + 10000
      local res, e
      repeat
        local id = live_node()
        op.node = id
        res, e = c:node(id):propose(cmd, { client = "chaos-" .. k, seq = seq, timeout = 1.5 })
        if e then cluster.sleep(0.05) end
      until not e or e.code == "apply_error" or e.code == "bad_request" or now() > give_up
      op.complete_ms = now() - t0
      if e then
        op.err = e.code == "apply_error" and e or { code = "timeout", message = tostring(e) }
      else
        op.done, op.result = true, res
      end
      return res, e
    end
    local function read(key)
      local id = live_node()
      local op = { kind = "read", q = { key = key }, node = id, invoke_ms = now() - t0 }
      local res, e = c:node(id):read({ key = key }, { timeout = 1.5 })
      op.complete_ms = now() - t0
      if e then op.err = e else op.done, op.result = true, res end
      hist[#hist + 1] = op
      return res, e
    end
    for k = 1, opts.clients or 6 do
      go("client " .. k, function()
        local n, seen = 0, {}
        while now() < deadline do
          n = n + 1
          local r = rng.int(1, 10)
          local res, e, _
          if r <= 3 then
            _, e = write(k, n, { op = "set", key = rng.pick(KEYS), value = "c" .. k .. "-" .. n })
          elseif r <= 5 then
            local key = rng.pick(KEYS)
            _, e = write(k, n, { op = "cas", key = key, old = seen[key], new = "c" .. k .. "-" .. n })
          elseif r <= 6 then
            _, e = write(k, n, { op = "incr", key = COUNTER, by = 1 })
          else
            local key = rng.pick { KEYS[1], KEYS[2], COUNTER }
            res, e = read(key)
            if not e and key ~= COUNTER then seen[key] = res end
          end
          summary.ops = summary.ops + 1
          if e then
            local code = type(e) == "table" and e.code or tostring(e)
            summary.failed[code] = (summary.failed[code] or 0) + 1
            cluster.sleep(0.05)
          else
            summary.acked = summary.acked + 1
            cluster.sleep(0.005) -- keeps the history (and its check) a few 10k ops long
          end
        end
      end)
    end

    -- the nemesis: one fault at a time, each undone before the next
    go("nemesis", function()
      local function note(what)
        summary.nemesis[#summary.nemesis + 1] = ("%.1fs %s"):format(seconds - (deadline - now()) / 1000, what)
      end
      while now() < deadline - 2000 do
        cluster.sleep(rng.real(0.3, 1.5))
        local action = rng.int(1, 5)
        local id = rng.pick(ids)
        if action == 1 then
          note("SIGKILL " .. id)
          down[id] = true
          c:kill(id)
          cluster.sleep(rng.real(0.2, 2))
          c:restart(id)
          down[id] = nil
          note("restarted " .. id)
        elseif action == 2 then
          note("SIGSTOP " .. id)
          paused[id] = true
          c:pause(id)
          cluster.sleep(rng.real(0.2, 2))
          c:resume(id)
          paused[id] = nil
          note("SIGCONT " .. id)
        elseif action == 3 then
          local a, b = {}, {}
          for _, x in ipairs(ids) do
            if rng.int(0, 1) == 0 then a[#a + 1] = x else b[#b + 1] = x end
          end
          note("partition {" .. table.concat(a, ",") .. "} {" .. table.concat(b, ",") .. "}")
          c:partition(a, b)
          cluster.sleep(rng.real(0.3, 3))
          c:heal()
          note("healed")
        elseif action == 4 then
          local l = c:leader(2)
          if l then
            local rest = {}
            for _, x in ipairs(ids) do if x ~= l then rest[#rest + 1] = x end end
            note("isolate leader " .. l)
            c:partition({ l }, rest)
            cluster.sleep(rng.real(0.5, 3))
            c:heal()
            note("healed")
          end
        else
          note("restart (SIGTERM) " .. id)
          down[id] = true
          c:restart(id)
          down[id] = nil
        end
      end
    end)
    while active > 0 do uv.run("once") end
    assert(#failures == 0, table.concat(failures, "\n"))

    -- heal, restart everything, read every key through every node
    c:heal()
    for _, id in ipairs(ids) do c:stop(id) end
    for _, id in ipairs(ids) do c:restart(id) end
    assert(c:leader(20), "no leader after restarting everything")
    for _, id in ipairs(ids) do
      for _, key in ipairs { KEYS[1], KEYS[2], COUNTER } do
        local got = false
        for _ = 1, 20 do
          local _, e = read(key) -- through any node; and through this one:
          if not e then
            local op = { kind = "read", q = { key = key }, node = id, invoke_ms = now() - t0 }
            local res
            res, e = c:node(id):read({ key = key }, { timeout = 3 })
            op.complete_ms = now() - t0
            if e then op.err = e else op.done, op.result = true, res end
            hist[#hist + 1] = op
          end
          if not e then got = true break end
          cluster.sleep(0.25)
        end
        assert(got, "node " .. id .. " never answered a linearizable read of " .. key .. "\n" .. c:log(id):sub(-3000))
      end
    end
    local history = hist
    summary.history = #history
    local lin, counter = check.linearizable(history, "kv", { max_steps = 5e6 })
    if lin == nil then error("linearizability check gave up (history of " .. #history .. " ops)") end
    if not lin then
      error("NOT linearizable (seed " .. seed .. "): " .. tostring(counter and counter.message))
    end
  end)
  if not ok then
    summary.error = tostring(err)
    summary.dir = c.dir
    if opts.keep_on_failure then
      c.owns_dir = false -- leave the logs for a look
      log("logs kept in " .. c.dir)
    end
  end
  c:close()
  local failed = {}
  for code, count in pairs(summary.failed) do failed[#failed + 1] = code .. "=" .. count end
  table.sort(failed)
  local msg = ("chaos seed %d: %ds, %d ops (%d ok; failed: %s), %d faults injected, history %s ops: %s"):format(
    seed, seconds, summary.ops, summary.acked, table.concat(failed, " "), #summary.nemesis // 2,
    tostring(summary.history), ok and "linearizable" or ("FAILED: " .. summary.error))
  return ok, msg, summary
end

if describe == nil then return run end

describe("raft.cluster under random faults", function()
  it("keeps a linearizable history and every acknowledged write (kill, stop, partition, restart)", function()
    local seed = tonumber(os.getenv("LUARAFT_CHAOS_SEED") or "") or (os.time() % 100000)
    local seconds = tonumber(os.getenv("LUARAFT_CHAOS_SECONDS") or "") or 50
    print("chaos seed " .. seed .. " (replay: LUARAFT_CHAOS_SEED=" .. seed .. ")")
    local ok, msg, summary = run(seed, seconds)
    print(msg)
    if not ok then print(table.concat(summary.nemesis, "\n")) end
    assert.truthy(ok, msg)
    assert.truthy(summary.acked > 100, "too few acknowledged operations: " .. msg)
  end)
end)
