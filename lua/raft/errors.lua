-- Error values of the raft module: every failure returns `nil, err`, where
-- err is a table with `code` and `message` (API.md section 4) that prints as
-- "code: message".
local errors = {}

local mt = {
  __name = "raft.error",
  __tostring = function(e)
    return e.code .. ": " .. tostring(e.message)
  end,
}
errors.mt = mt

-- The codes of API.md; a code outside this set is a bug in luaraft.
errors.codes = {
  not_leader = true, timeout = true, stopped = true, apply_error = true,
  too_large = true, busy = true, bad_request = true, storage = true,
  dropped = true,
}

function errors.new(code, message, extra)
  assert(errors.codes[code], "unknown error code " .. tostring(code))
  local e = { code = code, message = message or code }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return setmetatable(e, mt)
end

-- By the metatable's name, not its identity: a module loaded afresh (busted
-- insulates each spec file's package.loaded) still recognises our errors.
function errors.is(value, code)
  local m = getmetatable(value)
  return type(m) == "table" and m.__name == "raft.error" and (code == nil or value.code == code)
end

return errors
