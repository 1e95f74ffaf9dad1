-- A lock service with leases: named locks that a holder keeps by renewing
-- them, and that expire by the leader's clock when it stops.
--
-- Time comes from meta.time (the wall clock, in ms, of the node that
-- accepted the proposal, carried in the entry), never from os.time: every
-- replica judges expiry on the same number, so they all agree who holds a
-- lock, also after a failover (the expiry is part of the replicated state,
-- not a timer on one node). Propose on the leader (followers forward, but
-- stamp the time with their own clock).
--
-- Commands (tables):
--   { op = "acquire", name = n, owner = o, ttl_ms = t }
--       -> { ok = true, owner = o, expires = ms, token = k }   granted or renewed
--       -> { ok = false, owner = holder, expires = ms }        held by another
--     The lock is free if nobody holds it or its lease expired
--     (meta.time >= expires). The holder acquiring again renews: the lease
--     runs t ms from now and the token stays. Each new grant gets a larger
--     fencing token: a storage service that remembers the largest token it
--     saw can refuse a late write from a holder whose lease expired.
--   { op = "release", name = n, owner = o } -> true if o held it (unexpired)
-- Queries: { name = n } -> { owner, expires, token } as last written, or nil.
--   (A query has no clock: compare `expires` with your own time, or propose
--   an acquire to be told.)
local locks = {}    -- name -> { owner, expires, token }
local next_token = 1

local function check(cmd)
  if type(cmd) ~= "table" then error("command must be a table, got " .. type(cmd)) end
  if type(cmd.name) ~= "string" or cmd.name == "" then error("command needs a lock name") end
  if type(cmd.owner) ~= "string" or cmd.owner == "" then error("command needs an owner") end
end

local ops = {}

function ops.acquire(cmd, now)
  local ttl = math.tointeger(cmd.ttl_ms)
  if not ttl or ttl <= 0 then error("acquire needs ttl_ms, a positive integer") end
  local l = locks[cmd.name]
  if l and now < l.expires and l.owner ~= cmd.owner then
    return { ok = false, owner = l.owner, expires = l.expires }
  end
  if not (l and now < l.expires) then -- free or expired: a new grant
    l = { owner = cmd.owner, token = next_token }
    next_token = next_token + 1
    locks[cmd.name] = l
  end
  l.expires = now + ttl
  return { ok = true, owner = l.owner, expires = l.expires, token = l.token }
end

function ops.release(cmd, now)
  local l = locks[cmd.name]
  if l and l.owner == cmd.owner and now < l.expires then
    locks[cmd.name] = nil
    return true
  end
  return false
end

return {
  apply = function(cmd, meta)
    check(cmd)
    local op = ops[cmd.op]
    if not op then error("unknown op " .. tostring(cmd.op) .. " (acquire, release)") end
    return op(cmd, meta.time)
  end,
  query = function(q)
    local name = type(q) == "table" and q.name or q
    local l = locks[name]
    if not l then return nil end
    return { owner = l.owner, expires = l.expires, token = l.token }
  end,
  snapshot = function()
    return raft.encode { locks = locks, next_token = next_token }
  end,
  restore = function(data)
    local s = raft.decode(data)
    locks, next_token = s.locks, s.next_token
  end,
}
