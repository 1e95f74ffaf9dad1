-- raft.check: a linearizability checker for the histories the simulator
-- records (API.md section 4: sim:history() and its tickets).
--
--   check.linearizable(history, model [, opts]) -> ok, counterexample
--
-- The search is Wing & Gong's, with Lowe's memoisation ("Testing for
-- linearizability", 2017; the same algorithm as porcupine): the operations
-- become a list of call and return events sorted by time; the search
-- linearizes, one at a time, any operation whose call comes before the first
-- remaining return, and backtracks when no such operation fits the model. A
-- cache of (set of linearized operations, model state) pairs that were
-- already reached keeps it from exploring the same configuration twice.
--
-- A model that names a partition (the built-in "kv" model partitions by key)
-- is checked one partition at a time: a history is linearizable if and only
-- if each per-key sub-history is (Herlihy & Wing's locality; Lowe calls it
-- P-compositionality), and small searches are much cheaper than one big one.
--
-- Outcomes. An operation that completed without error must take effect once
-- between invoke_ms and complete_ms. An operation whose error says it did
-- not happen (not_leader, too_large, busy, bad_request, apply_error) is left
-- out. A write whose outcome is unknown (timeout, dropped, stopped, storage,
-- any other code, or not done yet) may take effect at any time after its
-- invoke_ms, or never: it is an optional operation whose return is at
-- infinity and whose result is not checked. A read that did not complete is
-- left out: it had no effect.
--
-- Operations touching at the same millisecond count as concurrent: the
-- simulator's clock cannot order them.
--
-- Ops of unknown outcome are what makes the search expensive (each may go
-- anywhere after its call), so the cache also prunes configurations that use
-- more of them than one already reached (see cache_visit), and the search
-- skips orders of "blind" writes that cannot matter (see search). Passing
-- histories of thousands of ops over a few keys take milliseconds; refuting
-- a failing history is the costly case (a 500-op history on one key with 30
-- timed-out writes can take a second), hence opts.max_steps.
--
-- A table model is { init = fn() -> state, step = fn(state, op) -> ok,
-- new_state, partition = fn(op) -> key (optional), hash = fn(state) ->
-- string (optional), describe = fn(op) -> string (optional), blind = fn(op)
-- -> boolean (optional: true if op, when it happens, sets a state that does
-- not depend on the one before) }. step must not modify state; it returns a
-- new one. It receives a copy of the history's op with two more fields:
-- `index` (its position in the history) and `unknown` (true when the outcome
-- is unknown: the op may have happened, and its result is then not known, so
-- step must accept any result). The default hash serializes nil, booleans,
-- numbers, strings and tables of those; states with equal hashes must behave
-- the same under every op.
--
-- opts: { max_steps = n } gives up on a partition after n search steps and
-- returns nil (not false) with counterexample.gave_up = true; { stats = {} }
-- gets stats.steps (model steps tried) and stats.partitions filled in.
local check = {}

local INF = math.huge
local WHERE = "raft.check.linearizable: "

-- Error codes that mean the operation did not change the state machine.
local NO_EFFECT = {
  not_leader = true, too_large = true, busy = true, bad_request = true,
  apply_error = true,
}

------------------------------------------------------------------------
-- Values as text: cache keys for states and descriptions for humans.

local function number_text(v)
  local i = math.tointeger(v)
  if i then return tostring(i) end
  if v ~= v then return "nan" end
  return string.format("%.17g", v)
end

-- Deterministic and injective for nil, booleans, numbers, strings and
-- (acyclic) tables of those, so it can serve both as a hash and as a
-- description.
local function serialize(v, seen)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" then return number_text(v) end
  if t ~= "table" then return tostring(v) end
  seen = seen or {}
  if seen[v] then error(WHERE .. "cannot serialize a cyclic table", 0) end
  seen[v] = true
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = "[" .. serialize(k, seen) .. "]=" .. serialize(x, seen)
  end
  seen[v] = nil
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end
check.serialize = serialize

local function key_text(key)
  if type(key) == "string" then return string.format("'%s'", key) end
  return serialize(key)
end

local function generic_describe(op)
  if op.kind == "read" then return "read " .. serialize(op.q) end
  return "propose " .. serialize(op.cmd)
end

local function resolve_model(model)
  if model == "kv" then return require("raft.check_kv").make(serialize) end
  if type(model) == "string" then
    local found, models = pcall(require, "raft.check_models")
    if found and type(models[model]) == "table" then
      model = models[model]
    else
      return nil, "unknown model '" .. model .. "' (the built-in models are \"kv\" and those of " ..
        "raft.check_models: \"bank\")"
    end
  end
  if type(model) ~= "table" or type(model.init) ~= "function"
      or type(model.step) ~= "function" then
    return nil, "model must be \"kv\" or a table with init and step functions"
  end
  return {
    init = model.init,
    step = model.step,
    hash = model.hash or serialize,
    blind = model.blind,
    prune = model.prune,
    validate = model.validate,
    impossible = model.impossible,
    start_states = model.start_states,
    partition = model.partition,
    describe = model.describe or generic_describe,
    describe_state = model.describe_state or serialize,
    partition_noun = "partition",
  }
end

------------------------------------------------------------------------
-- Reading the history.

-- "ok", "unknown" or "drop".
local function outcome(op)
  if op.err ~= nil then
    if op.kind == "read" then return "drop" end
    local code = op.err
    if type(code) == "table" then code = code.code end
    if NO_EFFECT[code] then return "drop" end
    return "unknown"
  end
  if op.done == true then return "ok" end
  if op.kind == "read" then return "drop" end
  return "unknown"
end

local function validate_op(i, op)
  if type(op) ~= "table" then
    return "op " .. i .. " is a " .. type(op) .. ", not a table"
  end
  if op.kind ~= "propose" and op.kind ~= "read" then
    return "op " .. i .. " has kind " .. serialize(op.kind) ..
      " (expected \"propose\" or \"read\")"
  end
  local t0, t1 = op.invoke_ms, op.complete_ms
  if t0 == nil then return "op " .. i .. " has no invoke_ms" end
  if type(t0) ~= "number" or t0 ~= t0 or t0 == INF or t0 == -INF then
    return "op " .. i .. " has an invoke_ms that is not a finite number"
  end
  if t1 ~= nil and (type(t1) ~= "number" or t1 ~= t1) then
    return "op " .. i .. " has a complete_ms that is not a number"
  end
  if t1 ~= nil and t1 < t0 then
    return "op " .. i .. " completes (complete_ms " .. number_text(t1) ..
      ") before it is invoked (invoke_ms " .. number_text(t0) .. ")"
  end
  return nil
end

-- A copy of op for the model, with `index` and `unknown`.
local function normalize(i, op, how)
  local rec = {}
  for k, v in pairs(op) do rec[k] = v end
  rec.index, rec.unknown, rec.original = i, how == "unknown", op
  rec.call_ms = op.invoke_ms
  rec.return_ms = (how == "ok" and op.complete_ms) or INF
  return rec
end

-- Splits the history into partitions: a list of { key = k, ops = {...} },
-- in order of first appearance. Returns nil, message on malformed input.
local function partition_history(history, m)
  if type(history) ~= "table" then
    return nil, "history must be a list of operations, got a " .. type(history)
  end
  local n, count = #history, 0
  for _ in pairs(history) do count = count + 1 end
  if count ~= n then return nil, "history must be a list (an array of operations)" end
  local parts, by_key = {}, {}
  for i = 1, n do
    local op = history[i]
    local msg = validate_op(i, op)
    if msg then return nil, msg end
    if m.validate then
      msg = m.validate(op)
      if msg then return nil, "op " .. i .. " " .. msg end
    end
    local how = outcome(op)
    if how ~= "drop" then
      local rec = normalize(i, op, how)
      local key = true
      if m.partition then
        key = m.partition(rec)
        if key == nil or key ~= key then
          return nil, "op " .. i .. " has no partition key (model.partition returned nil)"
        end
      end
      local part = by_key[key]
      if not part then
        part = { key = key, ops = {} }
        by_key[key] = part
        parts[#parts + 1] = part
      end
      part.ops[#part.ops + 1] = rec
    end
  end
  return parts
end

------------------------------------------------------------------------
-- The search.

-- A deterministic stream of 64-bit integers (splitmix64) for Zobrist hashing
-- of the linearized set; the global math.random is left alone.
local function splitmix64(seed)
  local x = seed
  return function()
    x = x + 0x9E3779B97F4A7C15
    local z = x
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end
end

-- The call and return events of ops, sorted by time (calls before returns
-- at equal times, so touching operations are concurrent), threaded on a
-- doubly linked list with head 0 and tail 2n + 1.
local function build_events(ops)
  local evs = {}
  for i, op in ipairs(ops) do
    evs[#evs + 1] = { t = op.call_ms, call = true, op = i }
    evs[#evs + 1] = { t = op.return_ms, call = false, op = i }
  end
  table.sort(evs, function(a, b)
    if a.t ~= b.t then return a.t < b.t end
    if a.call ~= b.call then return a.call end
    -- Optional ops' returns (at infinity) after required ones.
    local ua, ub = ops[a.op].unknown or ops[a.op].optional, ops[b.op].unknown or ops[b.op].optional
    if ua ~= ub then return ub end
    return a.op < b.op
  end)
  local tail = #evs + 1
  local L = { nxt = {}, prv = {}, op = {}, call = {}, ret = {}, tail = tail }
  L.nxt[0], L.prv[tail] = 1, #evs
  for e, ev in ipairs(evs) do
    L.nxt[e], L.prv[e] = e + 1, e - 1
    L.op[e], L.call[e] = ev.op, ev.call
    if not ev.call then L.ret[ev.op] = e end
  end
  return L
end

-- Lowe's cache, extended for optional ops. A configuration is (R, U, s):
-- the required ops linearized, the optional ops linearized, the state. It is
-- dominated by a configuration (R, U', s) with U' a subset of U: whatever
-- completes the first completes the second (the ops of U \ U' can stay
-- unused), so once the second was reached the first need not be. With no
-- optional ops this is exactly Lowe's cache of (set, state) pairs.
--
-- Layout: cache[state hash][Zobrist hash of R] = list of { r = words of R,
-- us = { words of U, ... } }, the us of one entry kept free of supersets.
local function same_words(a, b, nw)
  for w = 1, nw do
    if a[w] ~= b[w] then return false end
  end
  return true
end

local function subset_words(a, b, nw)
  for w = 1, nw do
    if a[w] & ~b[w] ~= 0 then return false end
  end
  return true
end

-- Records (R, U, s) and returns true, or returns false if it is dominated by
-- a configuration already recorded. zu is a Zobrist hash of U: exact repeats
-- are found in O(1) through it (exact[zu], words compared), and the subset
-- test runs against a short list of minimal sets only (at most ANTICHAIN of
-- them): with a hundred ops of unknown outcome the full antichain of every
-- (R, s) grows large and scanning it made each step cost milliseconds.
-- Keeping fewer sets only prunes less; it never prunes a configuration that
-- is not dominated.
local ANTICHAIN = 8
local function cache_visit(cache, sh, z, rbits, nrw, ubits, nuw, zu)
  local by_z = cache[sh]
  if not by_z then
    by_z = {}
    cache[sh] = by_z
  end
  local entries = by_z[z]
  if not entries then
    entries = {}
    by_z[z] = entries
  end
  local entry
  for _, e in ipairs(entries) do
    if same_words(e.r, rbits, nrw) then
      entry = e
      break
    end
  end
  if not entry then
    entry = { r = table.move(rbits, 1, nrw, 1, {}), us = {}, exact = {} }
    entries[#entries + 1] = entry
  end
  local same = entry.exact[zu]
  if same then
    for _, u in ipairs(same) do
      if same_words(u, ubits, nuw) then return false end
    end
  end
  local us, kept = entry.us, 0
  for _, u in ipairs(us) do
    if subset_words(u, ubits, nuw) then return false end
  end
  local copy = table.move(ubits, 1, nuw, 1, {})
  if not same then
    same = {}
    entry.exact[zu] = same
  end
  same[#same + 1] = copy
  -- Drop the recorded sets the new one dominates: they add no pruning.
  for j = 1, #us do
    local u = us[j]
    us[j] = nil
    if not subset_words(ubits, u, nuw) then
      kept = kept + 1
      us[kept] = u
    end
  end
  if kept < ANTICHAIN then us[kept + 1] = copy end
  return true
end

-- Blind writes of unknown outcome that reach the same state are
-- interchangeable once both are invoked: either may happen at any later time
-- or never. So each class of them (keyed by the hash of the state they
-- write) is used in invoke order: an op may be placed only when every
-- earlier op of its class already is. Returns blind[i] = class (or false),
-- rank[i] = position in its class, used[class] = 0.
local function blind_classes(ops, m, hash)
  local blind, rank, used, members = {}, {}, {}, {}
  for i, op in ipairs(ops) do
    blind[i] = false
    if op.unknown and m.blind and m.blind(op) then
      local ok, written = m.step(m.init(), op)
      local class = ok and hash(written) or ("op " .. i)
      blind[i] = class
      if not members[class] then
        members[class], used[class] = {}, 0
      end
      table.insert(members[class], i)
    end
  end
  for _, list in pairs(members) do
    table.sort(list, function(a, b)
      if ops[a].call_ms ~= ops[b].call_ms then return ops[a].call_ms < ops[b].call_ms end
      return a < b
    end)
    for r, i in ipairs(list) do rank[i] = r end
  end
  return blind, rank, used
end

-- Searches one partition. Returns true; or false, detail; or nil, detail
-- when max_steps ran out. detail = { prefix = {op indices}, state, steps }.
--
-- Each level scans the list twice: first for required ops, then for optional
-- ones (unknown outcome), so an optional op is only placed where no required
-- op fits, and a linearizable history is usually found without guessing.
-- Besides the cache, two more orders are skipped when the model says which
-- ops are blind writes (they overwrite the state without reading it), for
-- ops of unknown outcome: a blind write right after another one (the second
-- alone gives the same state with one optional op left unused), and one
-- placed out of order in its class (see blind_classes).
-- An optional op that leaves the state as it was is skipped as well.
local function search(ops, m, max_steps, start_state)
  local n = #ops
  local L = build_events(ops)
  local nxt, prv, ev_op, ev_call, ret = L.nxt, L.prv, L.op, L.call, L.ret
  local hash = m.prepare and m.prepare(ops) or m.hash
  -- Each op has a bit in rbits (required) or ubits (optional); zob hashes R.
  local word, mask, zob, zobu, unknown, omittable = {}, {}, {}, {}, {}, {}
  local rnd = splitmix64(n)
  local nr, nu = 0, 0
  for i, op in ipairs(ops) do
    local k
    if op.unknown or op.optional then
      nu = nu + 1
      k = nu
      zob[i], zobu[i] = 0, rnd()
    else
      nr = nr + 1
      k = nr
      zob[i], zobu[i] = rnd(), 0
    end
    word[i], mask[i] = (k - 1) // 64 + 1, 1 << ((k - 1) % 64)
    unknown[i] = op.unknown or op.optional or false
    omittable[i] = op.omittable or false
  end
  local blind, rank, used = blind_classes(ops, m, hash)
  local nrw, nuw = (nr + 63) // 64, (nu + 63) // 64
  local rbits, ubits = {}, {}
  for w = 1, nrw do rbits[w] = 0 end
  for w = 1, nuw do ubits[w] = 0 end

  local required_left, best_required = nr, 0
  local step = m.step
  local state
  if start_state ~= nil then state = start_state[1] else state = m.init() end
  local sh = hash(state)
  local z = 0
  local cache = {}
  local zu = 0
  cache_visit(cache, sh, z, rbits, nrw, ubits, nuw, zu)
  local stack_ev, stack_state, stack_hash, stack_variant, depth = {}, {}, {}, {}, 0
  local next_variant = 1
  local best_prefix, best_state, agree = {}, state, 0
  local steps = 0
  local phase, entry = 1, nxt[0]

  while required_left > 0 do
    if ev_call[entry] then
      local i = ev_op[entry]
      local want = (phase == 1) ~= unknown[i]
      if want and blind[i] and (rank[i] ~= used[blind[i]] + 1
          or (depth > 0 and blind[ev_op[stack_ev[depth]]])) then
        want = false
      end
      local lifted = false
      if want then
        steps = steps + 1
        if max_steps and steps > max_steps then
          return nil, { prefix = best_prefix, state = best_state, steps = steps }
        end
        -- variant 1: the op's step; variant 2 (omittable ops only): left out.
        local variant = next_variant
        next_variant = 1
        local ok, new_state
        if variant == 1 then
          ok, new_state = step(state, ops[i])
        else
          ok, new_state = true, state
        end
        if ok then
          local nh = variant == 1 and hash(new_state) or sh
          local bits = unknown[i] and ubits or rbits
          local w, b = word[i], mask[i]
          bits[w] = bits[w] | b
          if not (unknown[i] and nh == sh)
              and cache_visit(cache, nh, z ~ zob[i], rbits, nrw, ubits, nuw, zu ~ zobu[i]) then
            depth = depth + 1
            stack_ev[depth], stack_state[depth], stack_hash[depth] = entry, state, sh
            stack_variant[depth] = variant
            if blind[i] then used[blind[i]] = used[blind[i]] + 1 end
            state, sh, z, zu = new_state, nh, z ~ zob[i], zu ~ zobu[i]
            if not unknown[i] then required_left = required_left - 1 end
            -- Lift the call and its return out of the list.
            local r = ret[i]
            nxt[prv[entry]], prv[nxt[entry]] = nxt[entry], prv[entry]
            nxt[prv[r]], prv[nxt[r]] = nxt[r], prv[r]
            -- The longest prefix counts required ops: those are the ones a
            -- reader of the counterexample has to explain.
            -- best_prefix is updated in place from the first entry where it
            -- and the stack differ (agree), so a search that goes deep
            -- does not copy the whole stack at every new best.
            if nr - required_left > best_required then
              best_required, best_state = nr - required_left, state
              for d = agree + 1, depth do best_prefix[d] = ev_op[stack_ev[d]] end
              for d = depth + 1, #best_prefix do best_prefix[d] = nil end
              agree = depth
            end
            phase, entry, lifted = 1, nxt[0], true
          else
            bits[w] = bits[w] & ~b
          end
        end
        if not lifted and variant == 1 and omittable[i] then
          -- try leaving it out at the same place
          next_variant, lifted = 2, true
        end
      end
      if not lifted then entry = nxt[entry] end
    elseif phase == 1 then
      -- A return (or the end): no required op fits here; try optional ones.
      phase, entry = 2, nxt[0]
    else
      if depth == 0 then
        return false, { prefix = best_prefix, state = best_state, steps = steps }
      end
      local top = stack_ev[depth]
      local i = ev_op[top]
      state, sh = stack_state[depth], stack_hash[depth]
      local variant = stack_variant[depth]
      stack_ev[depth], stack_state[depth], stack_hash[depth], stack_variant[depth] = nil, nil, nil, nil
      depth = depth - 1
      if agree > depth then agree = depth end
      z, zu = z ~ zob[i], zu ~ zobu[i]
      local bits = unknown[i] and ubits or rbits
      bits[word[i]] = bits[word[i]] & ~mask[i]
      if not unknown[i] then required_left = required_left + 1 end
      if blind[i] then used[blind[i]] = used[blind[i]] - 1 end
      -- Put the return back, then the call (the reverse of lifting).
      local r = ret[i]
      nxt[prv[r]], prv[nxt[r]] = r, r
      nxt[prv[top]], prv[nxt[top]] = top, top
      phase = unknown[i] and 2 or 1
      if omittable[i] and variant == 1 then
        entry, next_variant = top, 2 -- now try leaving it out here
      else
        entry = nxt[top]
      end
    end
  end
  return true, { steps = steps }
end

------------------------------------------------------------------------
-- Counterexamples.

local function time_text(t)
  if t == nil or t == INF then return "?" end
  return number_text(t)
end

local function op_text(m, rec)
  local s = "#" .. rec.index .. " " .. m.describe(rec)
  if rec.unknown then
    local code = rec.err
    if type(code) == "table" then code = code.code end
    s = s .. " -> ? (" .. (code and tostring(code) or "not done") .. ")"
  else
    s = s .. " -> " .. serialize(rec.result)
  end
  s = s .. " [" .. time_text(rec.invoke_ms) .. ", " .. time_text(rec.complete_ms) .. "]"
  if rec.node ~= nil then s = s .. " node " .. tostring(rec.node) end
  return s
end

-- The ops that could come right after the prefix: not linearized, invoked
-- before the earliest return of a required op that is not linearized.
local function frontier(ops, in_prefix)
  local first_return = INF
  for i, op in ipairs(ops) do
    if not in_prefix[i] and not op.unknown and not op.optional and op.return_ms < first_return then
      first_return = op.return_ms
    end
  end
  local list = {}
  for i, op in ipairs(ops) do
    if not in_prefix[i] and op.call_ms <= first_return then list[#list + 1] = i end
  end
  return list
end

local function counterexample(part, m, detail, gave_up, head_override)
  local ops = part.ops
  local originals, prefix_ops, in_prefix = {}, {}, {}
  for i, op in ipairs(ops) do originals[i] = op.original end
  local lines = {}
  for d, i in ipairs(detail.prefix) do
    in_prefix[i] = true
    prefix_ops[d] = ops[i].original
    lines[#lines + 1] = "  " .. op_text(m, ops[i])
  end
  local next_ops, next_lines, optional_lines = {}, {}, {}
  for _, i in ipairs(frontier(ops, in_prefix)) do
    if ops[i].unknown or ops[i].optional then
      optional_lines[#optional_lines + 1] = "  " .. op_text(m, ops[i])
    else
      next_ops[#next_ops + 1] = ops[i].original
      next_lines[#next_lines + 1] = "  " .. op_text(m, ops[i])
    end
  end
  if #optional_lines > 0 then
    next_lines[#next_lines + 1] = "(nor after any of these, of unknown outcome:)"
    table.move(optional_lines, 1, #optional_lines, #next_lines + 1, next_lines)
  end
  local where = ""
  if m.partition then where = " on " .. m.partition_noun .. " " .. key_text(part.key) end
  local head
  if gave_up then
    head = "gave up after " .. detail.steps .. " steps checking " .. #ops ..
      " operations" .. where
  else
    head = "no linearization of " .. #ops .. " operations" .. where
  end
  if head_override then head = head_override .. where end
  local msg = head .. "; the longest linearizable prefix has " ..
    #detail.prefix .. " of them" .. (#lines > 0 and ":\n" or "\n") ..
    table.concat(lines, "\n") .. (#lines > 0 and "\n" or "") .. "after it the state is " ..
    m.describe_state(detail.state) ..
    ", and none of the required operations that could come next fits:\n" ..
    table.concat(next_lines, "\n")
  return {
    key = m.partition and part.key or nil,
    ops = originals,
    linearized = prefix_ops,
    next = next_ops,
    state = detail.state,
    gave_up = gave_up or nil,
    message = msg,
  }
end

------------------------------------------------------------------------

------------------------------------------------------------------------
-- Pruning, refutation by windows, and the search budget.
--
-- Sound means: the pruned history is linearizable if and only if the
-- original is. Generic pruning (every model): an op of unknown outcome
-- invoked after every required op has returned is dropped. In a
-- linearization L, every required op precedes it (each returned before it was
-- invoked), so cutting L just before the first such op leaves a linearization
-- that places every required op and is valid up to there; the cut-off tail
-- holds only optional ops. The model may prune more (model.prune; kv's is
-- above), and name completed ops that no order can explain
-- (model.impossible), which are a violation without any search.
local function generic_prune(ops)
  local last = -INF
  for _, op in ipairs(ops) do
    if not op.unknown and op.return_ms > last then last = op.return_ms end
  end
  local kept = {}
  for _, op in ipairs(ops) do
    if not (op.unknown and op.call_ms > last) then kept[#kept + 1] = op end
  end
  return kept
end

-- Window refutation. A full search must explore every configuration before a
-- violation to refute a history, which on thousands of ops with hundreds of
-- unknown outcomes can be far too many. A window [t0, t1] of the history is:
-- required, the completed ops invoked after t0 that returned before t1;
-- omittable (placed within their interval with their result checked, or left
-- out), the other completed ops invoked before t1 that returned after t0;
-- optional as ever,
-- the unknown-outcome ops invoked before t1; and any starting state.
-- If no starting state lets the window linearize, neither does the history.
-- Proof: take a linearization L of the history. Let i be the first op in L
-- invoked after t0 and j the last op in L that returned before t1. Every op
-- after i in L returned after t0 (an op that returned before i was invoked
-- would have to precede i), and every op before j was invoked before t1 (it
-- was not invoked after j returned). So L[i..j] holds only ops of the window,
-- holds every required op of it (each is invoked after t0, so at or after i,
-- and returned before t1, so at or before j), is valid from the state L
-- reaches before i, and keeps each op inside its interval. The window search
-- tries every order of the window's ops that leaves out only omittable and
-- optional ones (an omitted op is lifted as a no-op no later than its
-- return), L[i..j] among them: if it finds none from any starting
-- state, L cannot exist. Starting states come from model.start_states(ops),
-- which must list one state of every class the window's ops can tell apart
-- (or return nil: then this model is not refuted by windows).
local WINDOW_OPS, WINDOW_STEPS = 16, 30000

local function window_ops(ops, t0, t1)
  local w, nreq = {}, 0
  for _, op in ipairs(ops) do
    if op.call_ms < t1 and op.return_ms > t0 then
      if op.unknown then
        w[#w + 1] = op
      elseif op.call_ms > t0 and op.return_ms < t1 then
        w[#w + 1] = op
        nreq = nreq + 1
      else
        local c = {}
        for k, v in pairs(op) do c[k] = v end
        c.omittable = true
        w[#w + 1] = c
      end
    end
  end
  return w, nreq
end

-- Returns the refuted window { ops, t0, t1, detail } or nil, and the steps used.
-- Windows are tried nearest first to `near` (where the full search got
-- stuck: the violation, if any, is usually there).
local function refute_by_windows(ops, m, budget, near)
  if not m.start_states then return nil, 0 end
  local calls = {}
  for _, op in ipairs(ops) do
    if not op.unknown then calls[#calls + 1] = op.call_ms end
  end
  table.sort(calls)
  local used = 0
  local stride = WINDOW_OPS // 2
  local starts_at = {}
  for a = 1, math.max(1, #calls - stride), stride do starts_at[#starts_at + 1] = a end
  local function dist(a)
    local b = math.min(#calls, a + WINDOW_OPS - 1)
    local mid = (calls[a] + calls[b]) / 2
    return math.abs(mid - near)
  end
  if near then
    table.sort(starts_at, function(x, y) return dist(x) < dist(y) end)
  end
  for _, a in ipairs(starts_at) do
    if used >= budget then break end
    local b = math.min(#calls, a + WINDOW_OPS - 1)
    local t0, t1 = calls[a] - 0.5, calls[b] + 0.5
    local w, nreq = window_ops(ops, t0, t1)
    -- The pruning rules hold for a window too (their proofs take any
    -- linearization of a list of ops, whatever state it starts from, and
    -- count omittable ops as completed ones), and inside a window far more
    -- unknown-outcome writes are unobserved.
    w = generic_prune(w)
    if m.prune then w = m.prune(w) end
    local starts = nreq > 0 and m.start_states(w)
    if starts then
      local refuted, last = true, nil
      for _, box in ipairs(starts) do
        local ok, detail = search(w, m, WINDOW_STEPS, box)
        used = used + detail.steps
        if ok ~= false then
          refuted = false
          break
        end
        last = detail
      end
      if refuted then return { ops = w, t0 = t0, t1 = t1, detail = last }, used end
    end
  end
  return nil, used
end

local DEFAULT_MAX_STEPS = 5000000
local FIRST_TRY = 100000

local function count_unknown(ops)
  local u = 0
  for _, op in ipairs(ops) do if op.unknown then u = u + 1 end end
  return u
end

-- Decides one partition: "ok" | "violation", cex | "inconclusive", info;
-- and the steps it took.
local function decide(part, m, max_steps, first_try)
  local ops = generic_prune(part.ops)
  if m.prune then ops = m.prune(ops) end
  local pruned = { key = part.key, ops = ops }
  if m.impossible then
    local bad, why = m.impossible(ops)
    if bad then
      local lines = "  " .. op_text(m, bad)
      local where = m.partition and (" on " .. m.partition_noun .. " " .. key_text(part.key)) or ""
      local all = {}
      for i, op in ipairs(part.ops) do all[i] = op.original end
      return "violation", {
        key = m.partition and part.key or nil, ops = all, linearized = {},
        next = { bad.original }, impossible = bad.original,
        message = "no linearization" .. where .. ": operation #" .. bad.index .. " " .. why ..
          ", so no order of the history explains it:\n" .. lines,
      }, 0
    end
  end
  local ok, detail = search(ops, m, math.min(max_steps, first_try))
  local steps = detail.steps
  if ok == true then return "ok", nil, steps end
  if ok == false then return "violation", counterexample(pruned, m, detail), steps end
  -- Where the search got stuck: the earliest return among the required ops
  -- its longest linearizable prefix could not place.
  local in_prefix, near = {}, nil
  for _, i in ipairs(detail.prefix) do in_prefix[i] = true end
  for i, op in ipairs(ops) do
    if not in_prefix[i] and not op.unknown and (near == nil or op.return_ms < near) then
      near = op.return_ms
    end
  end
  local win, used = refute_by_windows(ops, m, max_steps // 5, near)
  steps = steps + used
  if win then
    local lines, req, others = {}, {}, 0
    for _, op in ipairs(win.ops) do
      if op.unknown or op.omittable then
        others = others + 1
      else
        req[#req + 1] = op.original
        lines[#lines + 1] = "  " .. op_text(m, op)
      end
    end
    local where = m.partition and (" on " .. m.partition_noun .. " " .. key_text(part.key)) or ""
    local all = {}
    for i, op in ipairs(part.ops) do all[i] = op.original end
    local cex = {
      key = m.partition and part.key or nil, ops = all, window_ops = req, linearized = {}, next = req,
      message = ("no linearization%s: from no starting state can the %d operations that " ..
        "ran between %s ms and %s ms be ordered (with %d more that overlap that window or " ..
        "have an unknown outcome, each placed or left out):\n%s"):format(where, #req,
        number_text(win.t0), number_text(win.t1), others, table.concat(lines, "\n")),
    }
    cex.window = { t0 = win.t0, t1 = win.t1 }
    return "violation", cex, steps
  end
  local rest = max_steps - steps
  if rest > 0 then
    ok, detail = search(ops, m, rest)
    steps = steps + detail.steps
    if ok == true then return "ok", nil, steps end
    if ok == false then return "violation", counterexample(pruned, m, detail), steps end
  end
  local reason = ("the search reached its limit of %d steps on %d operations (%d of unknown " ..
    "outcome) without finding a linearization or proving there is none"):format(
    max_steps, #ops, count_unknown(ops))
  return "inconclusive", { key = m.partition and part.key or nil, reason = reason,
    steps = steps, ops = #ops, unknown = count_unknown(ops) }, steps
end

-- check.linearizable(history, model [, opts]) -> true | false, cex | nil, cex
-- nil means inconclusive (cex.inconclusive = { key, reason, steps, ops,
-- unknown }; cex.gave_up = true as before): never a violation.
function check.linearizable(history, model, opts)
  local m, err = resolve_model(model)
  if not m then error(WHERE .. err, 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error(WHERE .. "opts must be a table", 2)
  end
  local max_steps = opts and opts.max_steps or DEFAULT_MAX_STEPS
  local parts
  parts, err = partition_history(history, m)
  if not parts then error(WHERE .. err, 2) end
  local stats = opts and opts.stats
  if stats then stats.steps, stats.partitions = 0, #parts end
  -- Smallest partitions first: a violation found there is the easiest to read.
  table.sort(parts, function(a, b) return #a.ops < #b.ops end)
  local failed, stuck = nil, {}
  for _, part in ipairs(parts) do
    local verdict, info, steps = decide(part, m, max_steps, opts and opts.first_steps or FIRST_TRY)
    if stats then stats.steps = stats.steps + steps end
    if verdict == "violation" then
      failed = info
      break
    elseif verdict == "inconclusive" then
      stuck[#stuck + 1] = info
    end
  end
  if failed then return false, failed end
  if #stuck > 0 then
    local first = stuck[1]
    local lines = {}
    for _, inc in ipairs(stuck) do
      local where = inc.key ~= nil and (m.partition_noun .. " " .. key_text(inc.key)) or "the history"
      lines[#lines + 1] = "  " .. where .. ": " .. inc.reason
    end
    return nil, {
      key = first.key, gave_up = true, inconclusive = first, all_inconclusive = stuck,
      message = "inconclusive (this is not a violation: the checker could not decide) on " ..
        #stuck .. " " .. (m.partition and m.partition_noun or "partition") ..
        (#stuck == 1 and "" or "s") .. ":\n" .. table.concat(lines, "\n") ..
        "\n(raise opts.max_steps to search further)",
    }
  end
  return true
end

return check
