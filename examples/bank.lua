-- A bank: accounts with balances, and transfers that never overdraw, so the
-- total is conserved. A state machine for `luaraft run` / raft.sim /
-- raft.cluster (API.md section 3); its checker model is
-- require("raft.check_models").bank (docs/checker.md).
-- Commands (tables):
--   { op = "open", account = a, amount = n }   -> true, or false if a exists
--                                                 (n >= 0: the opening deposit)
--   { op = "transfer", from = a, to = b, amount = n }
--       -> true if both accounts exist, a ~= b, n > 0 and a holds at least n
--          (then n moves from a to b); false otherwise (nothing changes)
-- Queries:
--   { account = a }   -> its balance, or nil if it does not exist
--   { total = true }  -> the sum of all balances
--   { all = true }    -> { [account] = balance, ... }
local accounts = {}

local function amount_of(cmd)
  local n = cmd.amount
  if math.type(n) ~= "integer" then error("amount must be an integer") end
  return n
end

local apply = {}
function apply.open(cmd)
  local n = amount_of(cmd)
  if n < 0 then error("an opening deposit cannot be negative") end
  if cmd.account == nil then error("open needs an account") end
  if accounts[cmd.account] ~= nil then return false end
  accounts[cmd.account] = n
  return true
end
function apply.transfer(cmd)
  local n = amount_of(cmd)
  local from, to = cmd.from, cmd.to
  if from == nil or to == nil then error("transfer needs from and to") end
  local have = accounts[from]
  if have == nil or accounts[to] == nil or from == to or n <= 0 or have < n then
    return false
  end
  accounts[from] = have - n
  accounts[to] = accounts[to] + n
  return true
end

return {
  apply = function(cmd)
    if type(cmd) ~= "table" then error("command must be a table") end
    local f = apply[cmd.op]
    if not f then error("unknown op " .. tostring(cmd.op)) end
    return f(cmd)
  end,
  query = function(q)
    if type(q) ~= "table" then error("query must be a table") end
    if q.account ~= nil then return accounts[q.account] end
    local total, all = 0, {}
    for a, n in pairs(accounts) do
      total = total + n
      all[a] = n
    end
    if q.total then return total end
    if q.all then return all end
    error("query needs account, total or all")
  end,
  snapshot = function() return raft.encode(accounts) end,
  restore = function(data) accounts = raft.decode(data) end,
}
