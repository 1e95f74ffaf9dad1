-- raft.check_models: checker models beyond the built-in "kv", for
-- raft.check.linearizable(history, model). docs/checker.md says how to write
-- one; each function's contract is there.
--
--   local models = require "raft.check_models"
--   raft.check.linearizable(sim:history(), models.bank)   -- or "bank"
local check = require "raft.check"

local models = {}

------------------------------------------------------------------------
-- bank: examples/bank.lua. The state is { [account] = balance }; the whole
-- bank is one partition (a transfer touches two accounts, so the accounts
-- are not independent objects and P-compositionality does not apply).
-- Conservation and "never overdraws" are not extra checks: the model moves
-- money exactly as the state machine must, so an acknowledged transfer that
-- overdraws, a read of a balance or a total that money could not reach, or an
-- open that is answered wrongly has no linearization.

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function total(state)
  local n = 0
  for _, v in pairs(state) do n = n + v end
  return n
end

local function same_balances(a, b)
  if type(b) ~= "table" then return false end
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k, v in pairs(b) do if a[k] ~= v then return false end end
  return true
end

local function bank_step(state, op)
  if op.kind == "read" then
    local q = op.q
    if q.account ~= nil then return op.result == state[q.account], state end
    if q.total then return op.result == total(state), state end
    if q.all then return same_balances(state, op.result), state end
    return false, state
  end
  local cmd, unknown = op.cmd, op.unknown
  if cmd.op == "open" then
    local fresh = state[cmd.account] == nil
    if not (unknown or op.result == fresh) then return false end
    if not fresh then return true, state end
    local s = copy(state)
    s[cmd.account] = cmd.amount
    return true, s
  end
  -- transfer
  local from, to, n = cmd.from, cmd.to, cmd.amount
  local have = state[from]
  local can = have ~= nil and state[to] ~= nil and from ~= to and n > 0 and have >= n
  if not (unknown or op.result == can) then return false end
  if not can then return true, state end
  local s = copy(state)
  s[from], s[to] = have - n, s[to] + n
  return true, s
end

local function bank_describe(op)
  if op.kind == "read" then
    local q = op.q
    if q.account ~= nil then return "balance of " .. check.serialize(q.account) end
    if q.total then return "total" end
    return "all balances"
  end
  local cmd = op.cmd
  if cmd.op == "open" then
    return "open " .. check.serialize(cmd.account) .. " with " .. check.serialize(cmd.amount)
  end
  return "transfer " .. check.serialize(cmd.amount) .. " from " .. check.serialize(cmd.from) ..
    " to " .. check.serialize(cmd.to)
end

-- A completed read of a total that differs from the sum of the completed
-- and possible opening deposits can never be explained: transfers conserve
-- money, so every state's total is the sum of some subset of the opens
-- (those that took effect). Reported at once, without a search.
local function bank_impossible(ops)
  local deposits = {}
  for _, op in ipairs(ops) do
    if op.kind == "propose" and op.cmd.op == "open" then deposits[#deposits + 1] = op.cmd.amount end
  end
  if #deposits > 20 then return nil end -- subset sums: only for small banks
  local sums = { [0] = true }
  for _, d in ipairs(deposits) do
    local more = {}
    for s in pairs(sums) do more[s + d] = true end
    for s in pairs(more) do sums[s] = true end
  end
  for _, op in ipairs(ops) do
    if op.kind == "read" and op.q.total and not op.unknown and not op.optional
        and not sums[op.result] then
      return op, "reads a total of " .. check.serialize(op.result) ..
        ", which no set of opening deposits adds up to (transfers conserve money)"
    end
  end
  return nil
end

local function valid(op)
  if op.kind == "read" then
    if type(op.q) ~= "table" then return "is a read without a query table" end
    return nil
  end
  local cmd = op.cmd
  if type(cmd) ~= "table" then return "is a propose without a command table" end
  if cmd.op == "open" then
    if cmd.account == nil or math.type(cmd.amount) ~= "integer" then
      return "is an open without an account and an integer amount"
    end
  elseif cmd.op == "transfer" then
    if cmd.from == nil or cmd.to == nil or math.type(cmd.amount) ~= "integer" then
      return "is a transfer without from, to and an integer amount"
    end
  else
    return "has cmd.op " .. check.serialize(cmd.op) .. " which the bank model does not know"
  end
  return nil
end

models.bank = {
  init = function() return {} end,
  step = bank_step,
  validate = valid,
  describe = bank_describe,
  impossible = bank_impossible,
}

return models
