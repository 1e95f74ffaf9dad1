-- Random histories for spec/check_spec.lua: a random sequential execution of
-- the kv model, each op given an interval around its linearization point, so
-- the history is linearizable by construction.
local gen = {}

-- A small deterministic generator (xorshift64*), so the global math.random
-- is left alone and a seed replays the same history.
function gen.rng(seed)
  local x = seed * 0x9E3779B97F4A7C15 + 1
  return function(lo, hi)
    x = x ~ (x >> 12)
    x = x ~ (x << 25)
    x = x ~ (x >> 27)
    local r = ((x * 0x2545F4914F6CDD1D) >> 11) % (hi - lo + 1)
    return lo + r
  end
end

local function sequential_op(rand, kv, keys, i)
  local key = keys[rand(1, #keys)]
  local roll = rand(1, 100)
  if roll <= 40 then
    return "read", { key = key }, kv[key]
  elseif roll <= 70 then
    return "propose", { op = "set", key = key, value = "v" .. i }, true
  elseif roll <= 80 then
    local had = kv[key] ~= nil
    return "propose", { op = "del", key = key }, had
  elseif roll <= 90 then
    local old = rand(1, 2) == 1 and kv[key] or ("v" .. rand(1, i))
    return "propose", { op = "cas", key = key, old = old, new = "c" .. i }, kv[key] == old
  end
  local cur = kv[key] or 0
  if type(cur) ~= "number" then
    return "propose", { op = "incr", key = key, by = 1 }, nil, "apply_error"
  end
  return "propose", { op = "incr", key = key, by = 1 }, cur + 1
end

local function apply(kv, cmd, result)
  if cmd.op == "set" then kv[cmd.key] = cmd.value
  elseif cmd.op == "del" then kv[cmd.key] = nil
  elseif cmd.op == "cas" then
    if result then kv[cmd.key] = cmd.new end
  elseif cmd.op == "incr" then kv[cmd.key] = result
  end
end

-- opts: n (ops), keys (list), spread (max ms an interval reaches either side
-- of its point), unknown (percent of writes with unknown outcome).
function gen.history(seed, opts)
  local rand = gen.rng(seed)
  local n, keys = opts.n or 200, opts.keys or { "a", "b", "c" }
  local spread, unknown = opts.spread or 30, opts.unknown or 5
  local kv, history, seq = {}, {}, {}
  for i = 1, n do
    local point = i * 10
    local kind, arg, result, code = sequential_op(rand, kv, keys, i)
    local op = { kind = kind, node = rand(1, 3), done = true,
      invoke_ms = point - rand(0, spread), complete_ms = point + rand(0, spread) }
    if kind == "read" then op.q = arg else op.cmd = arg end
    local applies = kind == "propose" and code == nil
    if code then
      op.err = { code = code, message = "boom" }
    elseif kind == "propose" and rand(1, 100) <= unknown then
      -- Unknown outcome: it may or may not have been applied.
      applies = rand(1, 2) == 1
      local r = rand(1, 3)
      if r == 1 then op.done, op.complete_ms = false, nil
      else op.err = { code = r == 2 and "timeout" or "dropped" } end
    elseif kind == "read" and rand(1, 100) <= unknown then
      op.err = { code = "timeout" }
    else
      op.result = result
    end
    if applies then apply(kv, arg, result) end
    history[i], seq[op] = op, i
  end
  -- In invoke order, as the simulator records them.
  table.sort(history, function(a, b)
    if a.invoke_ms ~= b.invoke_ms then return a.invoke_ms < b.invoke_ms end
    return seq[a] < seq[b]
  end)
  return history
end

-- A tiny one-key history with random results (often not linearizable) and
-- many ops of unknown outcome, for cross-checking against brute force.
function gen.tiny(seed, n)
  local rand = gen.rng(seed)
  local vals = { 1, 2, "x" }
  local function val()
    local r = rand(0, 3)
    if r == 0 then return nil end
    return vals[r]
  end
  local history, seq = {}, {}
  for i = 1, n do
    local t0 = rand(0, 20)
    local op = { invoke_ms = t0, complete_ms = t0 + rand(0, 8), done = true }
    local r = rand(1, 6)
    if r <= 2 then
      op.kind, op.q, op.result = "read", { key = "k" }, val()
    else
      op.kind = "propose"
      if r == 3 then
        op.cmd, op.result = { op = "set", key = "k", value = vals[rand(1, 3)] }, true
      elseif r == 4 then
        op.cmd, op.result = { op = "del", key = "k" }, rand(0, 1) == 1
      elseif r == 5 then
        op.cmd = { op = "cas", key = "k", old = val(), new = vals[rand(1, 3)] }
        op.result = rand(0, 1) == 1
      else
        op.cmd, op.result = { op = "incr", key = "k", by = 1 }, rand(1, 3)
      end
      local o = rand(1, 10)
      if o <= 4 then
        op.err, op.result = { code = "timeout" }, nil
      elseif o == 5 then
        op.done, op.complete_ms, op.result = false, nil, nil
      elseif o == 6 then
        op.err, op.result = { code = "not_leader" }, nil
      end
    end
    history[i], seq[op] = op, i
  end
  table.sort(history, function(a, b)
    if a.invoke_ms ~= b.invoke_ms then return a.invoke_ms < b.invoke_ms end
    return seq[a] < seq[b]
  end)
  return history
end

return gen
