-- A key-value store: the state machine of API.md section 3, plus cas and
-- incr. Commands are tables:
--   { op = "set", key = k, value = v }          -> true
--   { op = "del", key = k }                     -> true if the key existed
--   { op = "cas", key = k, old = a, new = b }   -> true if the value was a
--                                                  (old = nil: absent), then b
--   { op = "incr", key = k, by = n }            -> the new value (absent = 0)
--   { op = "get", key = k }                     -> the value (a write-path read)
-- Queries: { key = k } -> the value, or a key as a plain string.
local kv = {}

local function key_of(cmd)
  if type(cmd) ~= "table" then error("command must be a table, got " .. type(cmd)) end
  if cmd.key == nil then error("command has no key") end
  return cmd.key
end

local ops = {}
function ops.set(cmd)
  kv[key_of(cmd)] = cmd.value
  return true
end
function ops.del(cmd)
  local k = key_of(cmd)
  local had = kv[k] ~= nil
  kv[k] = nil
  return had
end
function ops.cas(cmd)
  local k = key_of(cmd)
  if kv[k] ~= cmd.old then return false end
  kv[k] = cmd.new
  return true
end
function ops.incr(cmd)
  local k = key_of(cmd)
  local v = kv[k] or 0
  if type(v) ~= "number" then error("incr of a non-number value at key " .. tostring(k)) end
  v = v + (cmd.by or 1)
  kv[k] = v
  return v
end
function ops.get(cmd)
  return kv[key_of(cmd)]
end

return {
  apply = function(cmd, meta)
    local op = type(cmd) == "table" and ops[cmd.op]
    if not op then
      error("unknown op " .. tostring(type(cmd) == "table" and cmd.op or cmd))
    end
    return op(cmd)
  end,
  query = function(q)
    if type(q) == "table" then return kv[q.key] end
    return kv[q]
  end,
  snapshot = function() return raft.encode(kv) end,
  restore = function(data) kv = raft.decode(data) end,
}
