-- A brute-force linearizability check for tiny kv histories, straight from
-- the definition, with none of raft.check's caching or pruning: it tries
-- every order of every subset that contains all required ops. Used to
-- cross-check raft.check on random small histories.
local brute = {}

local NO_EFFECT = { not_leader = true, too_large = true, busy = true,
  bad_request = true, apply_error = true }

local function step(state, op, unknown)
  if op.kind == "read" then return op.result == state, state end
  local cmd, r = op.cmd, op.result
  if cmd.op == "set" then return unknown or r == true, cmd.value end
  if cmd.op == "del" then return unknown or r == (state ~= nil), nil end
  if cmd.op == "cas" then
    local swapped = state == cmd.old
    if not (unknown or r == swapped) then return false end
    if swapped then return true, cmd.new end
    return true, state
  end
  local cur = state or 0
  if type(cur) ~= "number" then return unknown, state end
  return unknown or r == cur + (cmd.by or 1), cur + (cmd.by or 1)
end

-- One key only.
function brute.linearizable(history)
  local ops = {}
  for _, op in ipairs(history) do
    local code = op.err and op.err.code
    local keep, unknown = true, false
    if op.kind == "read" then
      keep = op.done == true and not op.err
    elseif code and NO_EFFECT[code] then
      keep = false
    elseif code or op.done ~= true then
      unknown = true
    end
    if keep then
      ops[#ops + 1] = { op = op, unknown = unknown,
        t0 = op.invoke_ms, t1 = unknown and math.huge or op.complete_ms }
    end
  end
  local used = {}
  local function go(state)
    local done = true
    for _, o in ipairs(ops) do
      if not used[o] and not o.unknown then done = false end
    end
    if done then return true end
    for _, o in ipairs(ops) do
      if not used[o] then
        -- o may go next unless some other unused required op had already
        -- returned before o was invoked.
        local allowed = true
        for _, p in ipairs(ops) do
          if p ~= o and not used[p] and not p.unknown and p.t1 < o.t0 then
            allowed = false
          end
        end
        if allowed then
          local ok, new = step(state, o.op, o.unknown)
          if ok then
            used[o] = true
            if go(new) then return true end
            used[o] = nil
          end
        end
      end
    end
    return false
  end
  return go(nil)
end

return brute
