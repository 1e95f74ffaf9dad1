-- raft.check_kv: the built-in "kv" model of raft.check.linearizable, one
-- register per key (API.md section 3's kv with cas and incr). The state of
-- a partition is the key's value, nil if absent. raft.check makes it with
-- make(serialize) for the model name "kv"; docs/checker.md describes the
-- model table (the optional prepare, prune, impossible and start_states
-- are what make this one fast on histories with many unknown outcomes).
local kv = {}

local serialize -- raft.check's (set by kv.make)


local kv_ops = { set = true, del = true, cas = true, incr = true }

local function kv_validate(op)
  if op.kind == "read" then
    if type(op.q) ~= "table" or op.q.key == nil then
      return "is a read without q.key"
    end
    return nil
  end
  local cmd = op.cmd
  if type(cmd) ~= "table" or cmd.key == nil then
    return "is a propose without cmd.key"
  end
  if not kv_ops[cmd.op] then
    return "has cmd.op " .. serialize(cmd.op) ..
      " which the kv model does not know (set, del, cas, incr)"
  end
  if cmd.op == "incr" and cmd.by ~= nil and type(cmd.by) ~= "number" then
    return "is an incr whose 'by' is not a number"
  end
  return nil
end

local function kv_step(state, op)
  if op.kind == "read" then return op.result == state, state end
  local cmd, unknown, result = op.cmd, op.unknown, op.result
  local name = cmd.op
  if name == "set" then
    return unknown or result == true, cmd.value
  elseif name == "del" then
    return unknown or result == (state ~= nil), nil
  elseif name == "cas" then
    local swapped = state == cmd.old
    if not (unknown or result == swapped) then return false end
    if swapped then return true, cmd.new end
    return true, state
  end
  -- incr: a missing key counts as 0; on a value that is not a number the
  -- state machine fails (apply_error, no effect), so only an op of unknown
  -- outcome fits, as a no-op.
  local cur = state
  if cur == nil then cur = 0 end
  if type(cur) ~= "number" then return unknown, state end
  local new = cur + (cmd.by or 1)
  return unknown or result == new, new
end

local function kv_value_text(v)
  if v == nil then return "absent" end
  return serialize(v)
end

local function kv_describe(op)
  if op.kind == "read" then
    return "read " .. serialize(op.q.key)
  end
  local cmd = op.cmd
  local k = serialize(cmd.key)
  if cmd.op == "set" then return "set " .. k .. " = " .. serialize(cmd.value) end
  if cmd.op == "del" then return "del " .. k end
  if cmd.op == "cas" then
    return "cas " .. k .. " " .. serialize(cmd.old) .. " -> " .. serialize(cmd.new)
  end
  return "incr " .. k .. " by " .. serialize(cmd.by or 1)
end

-- The state hash for one key's sub-history. Values that no op of it can
-- tell apart hash alike, so the cache treats them as one state: a value is
-- observed if a completed read returns it or a cas compares with it, and
-- numbers are all observed when the key sees an incr. Any two other values
-- make every op behave the same (reads and cas compares fail, del sees a
-- value, set overwrites), so this merges only equivalent states.
local function kv_hash_for(ops)
  local observed, numbers = {}, false
  for _, op in ipairs(ops) do
    if op.kind == "read" then
      if op.result ~= nil and op.result == op.result then observed[op.result] = true end
    elseif op.cmd.op == "cas" then
      if op.cmd.old ~= nil and op.cmd.old == op.cmd.old then observed[op.cmd.old] = true end
    elseif op.cmd.op == "incr" then
      numbers = true
    end
  end
  local memo = {}
  return function(v)
    if v == nil then return "n" end
    local h = memo[v]
    if h then return h end
    if v ~= v then return "*" end
    if observed[v] or (numbers and type(v) == "number") then
      h = type(v):sub(1, 1) .. serialize(v)
    else
      h = "*"
    end
    memo[v] = h
    return h
  end
end


-- Pruning for the kv model (see "Pruning" below for the generic part and for
-- what "sound" means here). Returns the ops that can change the verdict.
--
-- (1) An unknown-outcome cas whose `old` is a value nothing can produce (not
--     nil, not written by any set or cas, not a number while the key sees an
--     incr) can never swap: wherever it is placed it leaves the state as it
--     was, so it is a no-op, and an optional no-op is dropped without changing
--     any linearization.
-- (2) An unknown-outcome set (or cas) writing a value v that nothing observes
--     (no completed read returns v, no cas compares with v, and v is not a
--     number while the key sees an incr), on a key with no completed del that
--     returned true and no completed cas that returned false: take any
--     linearization L that places it, and remove it. The state differs only on
--     the stretch after it up to the next op that replaces the state; there,
--     L's ops saw v and now see the previous state s. None of them is a
--     completed read (it would have returned the unobserved v), a completed
--     del (it would have returned true), a completed cas (it would have
--     compared v with its old, failed, and returned false) or a completed incr
--     (v is not a number there, so it could not succeed). What remains there
--     is sets and dels of unknown outcome (they do not look at the state), and
--     unknown cas and incr that were no-ops on v: remove those too (optional
--     no-ops), and L without them is a linearization that does not use the
--     write. So the write is never needed.
local function kv_prune(ops)
  local observed, produced, numbers = {}, {}, false
  local del_true, cas_false = false, false
  for _, op in ipairs(ops) do
    if op.kind == "read" then
      if not op.unknown and op.result ~= nil and op.result == op.result then
        observed[op.result] = true
      end
    else
      local cmd = op.cmd
      if cmd.op == "set" then
        if cmd.value ~= nil and cmd.value == cmd.value then produced[cmd.value] = true end
      elseif cmd.op == "cas" then
        if cmd.old ~= nil and cmd.old == cmd.old then observed[cmd.old] = true end
        if cmd.new ~= nil and cmd.new == cmd.new then produced[cmd.new] = true end
        if not op.unknown and op.result == false then cas_false = true end
      elseif cmd.op == "incr" then
        numbers = true
      elseif cmd.op == "del" then
        if not op.unknown and op.result == true then del_true = true end
      end
    end
  end
  local function is_observed(v)
    if v == nil then return true end
    if v ~= v then return false end
    return observed[v] or (numbers and type(v) == "number")
  end
  local kept = {}
  for _, op in ipairs(ops) do
    local keep = true
    if op.unknown and op.kind == "propose" then
      local cmd = op.cmd
      if cmd.op == "cas" and cmd.old ~= nil and (cmd.old ~= cmd.old
          or not (produced[cmd.old] or (numbers and type(cmd.old) == "number"))) then
        keep = false -- (1)
      elseif not del_true and not cas_false then
        local v
        if cmd.op == "set" then v = cmd.value elseif cmd.op == "cas" then v = cmd.new end
        if (cmd.op == "set" or cmd.op == "cas") and not is_observed(v) then
          keep = false -- (2)
        end
      end
    end
    if keep then kept[#kept + 1] = op end
  end
  return kept
end

-- A completed op that no linearization can explain on its own: a read that
-- returns a value nothing writes (not nil, not the value of any set or cas
-- on the key, not a number while the key sees an incr), or a cas that
-- swapped from such a value. Every state of the key is nil or a value some
-- op wrote, so no order helps. Returns the op or nil.
local function kv_impossible(ops)
  local produced, numbers = {}, false
  for _, op in ipairs(ops) do
    if op.kind == "propose" then
      local cmd = op.cmd
      if cmd.op == "set" and cmd.value ~= nil and cmd.value == cmd.value then
        produced[cmd.value] = true
      elseif cmd.op == "cas" and cmd.new ~= nil and cmd.new == cmd.new then
        produced[cmd.new] = true
      elseif cmd.op == "incr" then
        numbers = true
      end
    end
  end
  local function possible(v)
    if v == nil then return true end
    if v ~= v then return false end
    return produced[v] or (numbers and type(v) == "number")
  end
  for _, op in ipairs(ops) do
    if not op.unknown and not op.optional then
      if op.kind == "read" and not possible(op.result) then
        return op, "returns " .. kv_value_text(op.result) .. ", a value no operation on the key writes"
      elseif op.kind == "propose" and op.cmd.op == "cas" and op.result == true
          and not possible(op.cmd.old) then
        return op, "swapped from " .. kv_value_text(op.cmd.old) ..
          ", a value no operation on the key writes"
      end
    end
  end
  return nil
end

-- Every state a window of ops could start from, up to equivalence (see
-- refute_by_windows): nil, each value the window observes, and one value it
-- does not observe (all unobserved values behave alike under set, del, cas
-- and reads, see kv_hash_for). With incrs (by non-negative integers, B in
-- all) a number c only matters through the numbers reached from it, c + S
-- with S in 0..B, meeting a number x that an op compares with (a read's
-- result, a cas's old, a completed incr's result minus its by): so the
-- numbers x - S are listed, plus one number that meets none of them (all
-- such numbers behave alike). Returns nil when it cannot list them (other
-- increments, or too many).
local UNOBSERVED = "\0raft.check: a value no operation observes"
local MAX_STARTS = 400
local function kv_start_states(ops)
  local list, seen = { { nil } }, {}
  local compared, total_by, has_incr = {}, 0, false
  local function add(v)
    if v ~= nil and v == v and not seen[v] then
      seen[v] = true
      list[#list + 1] = { v }
    end
  end
  for _, op in ipairs(ops) do
    if op.kind == "read" then
      if not op.unknown then
        add(op.result)
        if type(op.result) == "number" then compared[#compared + 1] = op.result end
      end
    else
      local cmd = op.cmd
      if cmd.op == "incr" then
        local by = cmd.by or 1
        if math.type(by) ~= "integer" or by < 0 then return nil end
        has_incr, total_by = true, total_by + by
        if not op.unknown and not op.optional and type(op.result) == "number" then
          compared[#compared + 1] = op.result - by
        end
      elseif cmd.op == "cas" then
        add(cmd.old)
        if type(cmd.old) == "number" then compared[#compared + 1] = cmd.old end
      end
    end
  end
  local fresh = UNOBSERVED
  while seen[fresh] do fresh = fresh .. "\0" end
  list[#list + 1] = { fresh }
  if has_incr then
    local far = 0
    for _, x in ipairs(compared) do
      if math.abs(x) > far then far = math.abs(x) end
      for d = 0, total_by do
        add(x - d)
        if #list > MAX_STARTS then return nil end
      end
    end
    list[#list + 1] = { -(far + total_by + 1) * 2 - 1 } -- meets no compared number
  end
  return list
end

--- kv.make(serialize_fn) -> the model table
function kv.make(serialize_fn)
  serialize = serialize_fn
  return {
    init = function() return nil end,
    step = kv_step,
    prepare = kv_hash_for,
    partition = function(op)
      if op.kind == "read" then return op.q.key end
      return op.cmd.key
    end,
    validate = kv_validate,
    prune = kv_prune,
    impossible = kv_impossible,
    start_states = kv_start_states,
    describe = kv_describe,
    describe_state = kv_value_text,
    -- A set or del overwrites the state without looking at it.
    blind = function(op)
      return op.kind == "propose" and (op.cmd.op == "set" or op.cmd.op == "del")
    end,
    partition_noun = "key",
  }
end

return kv
